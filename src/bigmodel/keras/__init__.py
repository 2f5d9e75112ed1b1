"""Keras 3-compatible API on PyTorch.

``from bigmodel import keras`` and ``from bigmodel.keras import layers`` stand in for
``tensorflow.keras``: same layer names, arguments, defaults, shapes and parameter counts, trained by
bigmodel's engine. Images are channels-last ``(batch, height, width, channels)`` as in Keras.
"""

from bigmodel.keras import (
    activations,
    backend,
    callbacks,
    config,
    constraints,
    datasets,
    distribution,
    initializers,
    layers,
    losses,
    metrics,
    mixed_precision,
    models,
    ops,
    optimizers,
    random,
    regularizers,
    utils,
)
from bigmodel.keras.functional import Functional, Input
from bigmodel.keras.layers.base import Layer
from bigmodel.keras.layers.symbolic import KerasTensor
from bigmodel.keras.model import Model
from bigmodel.keras.saving import load_model
from bigmodel.keras.sequential import Sequential

__all__ = [
    "Functional", "Input", "KerasTensor", "Layer", "Model", "Sequential", "activations",
    "backend", "callbacks", "config", "constraints", "datasets", "distribution", "initializers", "layers",
    "load_model", "losses", "metrics", "mixed_precision", "models", "ops", "optimizers", "random", "regularizers", "utils",
]
