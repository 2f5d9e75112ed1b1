"""What every ``keras.applications`` model shares: the argument checks (Keras's rules and
messages, raised as :class:`~bigmodel.errors.ConfigError`), the image input, the classifier top or
the feature pooling, and the weights (``None``, ``"imagenet"`` or a file path).

Each family (``resnet.py``, ``vgg16.py``, ...) writes only its body between :func:`image_input`
and :func:`finish`.
"""

from __future__ import annotations

import os
from typing import Any

from bigmodel.errors import ConfigError
from bigmodel.keras import layers
from bigmodel.keras.applications import imagenet_utils
from bigmodel.keras.applications.weights_file import WeightsFile
from bigmodel.keras.functional import Functional
from bigmodel.keras.layers.symbolic import KerasTensor
from bigmodel.keras.legacy_weights import load_legacy_weights


def check_weights(weights: Any, include_top: bool, classes: int,
                  imagenet_classes: int = 1000) -> None:
    """Keras's first two checks of every application.

    Raises:
        ConfigError: ``weights`` is neither None, ``"imagenet"`` nor an existing file; ImageNet
            weights with the classifier and ``classes`` other than ``imagenet_classes``.
    """
    if not (weights in ("imagenet", None) or (isinstance(weights, (str, os.PathLike))
                                               and os.path.exists(weights))):
        raise ConfigError("The `weights` argument should be either `None` (random "
                          "initialization), 'imagenet' (pre-training on ImageNet), or the path "
                          f"to the weights file to be loaded.  Received: weights={weights}")
    if weights == "imagenet" and include_top and classes != imagenet_classes:
        raise ConfigError("If using `weights='imagenet'` with `include_top=True`, `classes` "
                          f"should be {imagenet_classes}.  Received classes={classes}")


def source_inputs(tensor: KerasTensor) -> list[KerasTensor]:
    """The model inputs a symbolic tensor was computed from (Keras's ``get_source_inputs``)."""
    found: list[KerasTensor] = []
    stack, seen = [tensor], set()
    while stack:
        node = stack.pop()
        if id(node) in seen:
            continue
        seen.add(id(node))
        if not node.parents:
            found.append(node)
        stack.extend(reversed(node.parents))
    return found


def image_input(input_tensor: Any, input_shape: Any, *, default_size: int, min_size: int,
                include_top: bool, weights: Any) -> tuple[KerasTensor, Any]:
    """The symbolic image ``(batch, H, W, C)`` a model starts from, and the model's inputs.

    Raises:
        ConfigError: a bad ``input_shape`` (see ``imagenet_utils.obtain_input_shape``) or an
            ``input_tensor`` that is not a symbolic ``keras.Input`` / layer output.
    """
    shape = imagenet_utils.obtain_input_shape(
        input_shape, default_size=default_size, min_size=min_size,
        data_format="channels_last", require_flatten=include_top, weights=weights)
    if input_tensor is None:
        image = layers.Input(shape=shape)
        return image, image
    if not isinstance(input_tensor, KerasTensor):
        raise ConfigError("keras.applications: input_tensor must be a symbolic tensor "
                          "(keras.Input or a layer's output on one); received "
                          f"{type(input_tensor).__name__}")
    inputs = source_inputs(input_tensor)
    return input_tensor, inputs[0] if len(inputs) == 1 else inputs


def check_pooling(pooling: Any) -> None:
    """Raises ConfigError for a ``pooling`` other than None, ``"avg"`` or ``"max"``."""
    if pooling not in (None, "avg", "max"):
        raise ConfigError("keras.applications: pooling must be None, 'avg' or 'max'; received "
                          f"pooling={pooling!r}")


def pooled(x: KerasTensor, pooling: Any, avg_name: str | None = "avg_pool",
           max_name: str | None = "max_pool") -> KerasTensor:
    """Global average / max pooling of the features, or them unchanged for ``pooling=None``."""
    check_pooling(pooling)
    if pooling == "avg":
        return layers.GlobalAveragePooling2D(name=avg_name)(x)
    if pooling == "max":
        return layers.GlobalMaxPooling2D(name=max_name)(x)
    return x


def predictions(x: KerasTensor, classes: int, classifier_activation: Any,
                weights: Any) -> KerasTensor:
    """The classifier layer ``predictions`` (Keras checks the activation against the weights)."""
    imagenet_utils.validate_activation(classifier_activation, weights)
    return layers.Dense(classes, activation=classifier_activation, name="predictions")(x)


def finish(inputs: Any, outputs: KerasTensor, name: str, weights: Any,
           imagenet: tuple[WeightsFile, WeightsFile] | None, include_top: bool) -> Functional:
    """The functional model with its weights loaded.

    Args:
        inputs, outputs: the graph's ends.
        name: the model's name.
        weights: None, ``"imagenet"``, a legacy HDF5 file path or a Keras 3 ``.weights.h5`` /
            ``.keras`` file.
        imagenet: the published (with top, without top) files, or None where Keras has none.
        include_top: which of the two files ``"imagenet"`` means.

    Raises:
        ConfigError: ``"imagenet"`` for a configuration Keras publishes no weights for.
        CheckpointError: the file does not fit the model (names the layer).
        DataFileError: the download failed or its hash did not match.
    """
    model = Functional(inputs, outputs, name=name)
    if weights == "imagenet":
        if imagenet is None:
            raise ConfigError(f"keras.applications: Keras publishes no ImageNet weights for "
                              f"model '{name}' in this configuration")
        weights = imagenet[0 if include_top else 1].fetch()
    if weights is not None and str(weights).endswith((".weights.h5", ".keras")):
        model.load_weights(weights)  # a Keras 3 file, which Keras's load_weights also takes
    elif weights is not None:
        load_legacy_weights(model, weights)
    return model
