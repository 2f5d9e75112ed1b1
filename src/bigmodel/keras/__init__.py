"""Keras 3-compatible API on PyTorch.

``from bigmodel import keras`` and ``from bigmodel.keras import layers`` stand in for
``tensorflow.keras``: same layer names, arguments, defaults, shapes and parameter counts, trained by
bigmodel's engine. Images are channels-last ``(batch, height, width, channels)`` as in Keras.
"""

from bigmodel.keras import (
    activations,
    applications,
    backend,
    callbacks,
    config,
    constraints,
    datasets,
    distillation,
    distribution,
    dtype_policies,
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
    tree,
    utils,
    visualization,
    wrappers,
)
from bigmodel.keras import scopes as _scopes
from bigmodel.keras import variables as _variables
from bigmodel.keras.functional import Functional, Input
from bigmodel.keras.image_utils import smart_resize as _smart_resize
from bigmodel.keras.layers.base import Layer
from bigmodel.keras.layers.input_spec import InputSpec
from bigmodel.keras.layers.symbolic import KerasTensor
from bigmodel.keras.model import Model
from bigmodel.keras.saving import load_model
from bigmodel.keras.sequential import Sequential
from bigmodel.keras.unsupported import namespace, unsupported_attribute

# Keras 3's top-level aliases of classes that live in the submodules.
DTypePolicy = mixed_precision.DTypePolicy
FloatDTypePolicy = dtype_policies.FloatDTypePolicy
Variable = _variables.Variable
device, name_scope, version = _scopes.device, _scopes.name_scope, _scopes.version
Initializer = initializers.Initializer
Loss = losses.Loss
Metric = metrics.Metric
Optimizer = optimizers.Optimizer
Regularizer = regularizers.Regularizer

# Keras 3 modules bigmodel does not implement: stand-ins whose every name raises, naming itself and
# docs/keras_api.md (the state of every Keras 3 API here).
export = namespace("keras.export")
legacy = namespace("keras.legacy")
preprocessing = namespace("keras.preprocessing")
# the names of keras.preprocessing bigmodel has (the same functions as keras.utils', as in Keras)
preprocessing.sequence.pad_sequences = utils.pad_sequences
preprocessing.image_dataset_from_directory = utils.image_dataset_from_directory
preprocessing.text_dataset_from_directory = utils.text_dataset_from_directory
preprocessing.timeseries_dataset_from_array = utils.timeseries_dataset_from_array
for _name in ("array_to_img", "img_to_array", "load_img", "save_img"):
    setattr(preprocessing.image, _name, getattr(utils, _name))
del _name
preprocessing.image.smart_resize = _smart_resize
quantizers = namespace("keras.quantizers")

__all__ = [
    "Functional", "Input", "KerasTensor", "Layer", "Model", "Sequential", "activations",
    "applications",
    "backend", "callbacks", "config", "constraints", "datasets", "distillation", "distribution", "initializers", "layers",
    "load_model", "losses", "metrics", "mixed_precision", "models", "ops", "optimizers", "random", "regularizers", "tree", "utils", "visualization", "wrappers",
    "DTypePolicy", "Initializer", "Loss", "Metric", "Optimizer", "Regularizer",
    "FloatDTypePolicy", "Variable", "device", "dtype_policies", "name_scope", "version",
    "InputSpec",
]


def __getattr__(name: str) -> object:
    raise unsupported_attribute("keras", name)
