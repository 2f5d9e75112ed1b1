"""``keras.applications.imagenet_utils``: ImageNet input preprocessing, top-k class names, and the
argument checks every application shares (input shape, classifier activation).

Images are channels-last ``(..., height, width, 3)`` RGB values in ``[0, 255]``, as in Keras
(bigmodel's image data format is channels-last only).
"""

from __future__ import annotations

import json
from typing import Any

import numpy as np
import torch

from bigmodel.errors import ConfigError, ShapeError
from bigmodel.keras import activations, ops
from bigmodel.keras.layers.symbolic import KerasTensor
from bigmodel.keras.unsupported import unsupported_attribute
from bigmodel.keras.utils_files import get_file

#: Keras's ImageNet class index (``{"0": ["n01440764", "tench"], ...}``) and its MD5
CLASS_INDEX_PATH = ("https://storage.googleapis.com/download.tensorflow.org/"
                    "data/imagenet_class_index.json")
CLASS_INDEX_HASH = "c2c37ea517e94d9795004a39431a14cb"
CLASS_INDEX: dict[str, list[str]] | None = None

# the per-channel statistics of the ImageNet training set the published weights were trained on
_CAFFE_MEAN = (103.939, 116.779, 123.68)  # BGR order
_TORCH_MEAN = (0.485, 0.456, 0.406)
_TORCH_STD = (0.229, 0.224, 0.225)
_MODES = ("caffe", "tf", "torch")


def _check_data_format(data_format: Any) -> None:
    if data_format not in (None, "channels_last"):
        raise ConfigError("keras.applications preprocess_input: data_format must be None or "
                          f"'channels_last' (bigmodel images are channels-last); received "
                          f"data_format={data_format!r}")


def preprocess_input(x: Any, data_format: Any = None, mode: str = "caffe") -> Any:
    """Scale a batch of RGB images in ``[0, 255]`` the way a pretrained network expects.

    Args:
        x: a NumPy array, torch tensor or symbolic ``keras.Input`` ``(..., H, W, 3)``. A float
            NumPy array is changed in place, as in Keras (pass ``np.copy(x)`` to keep it);
            integers are converted to float32.
        data_format: ``None`` or ``"channels_last"``.
        mode: ``"caffe"`` (RGB -> BGR, minus the ImageNet mean per channel), ``"tf"`` (to
            ``[-1, 1]``) or ``"torch"`` (to ``[0, 1]``, then ImageNet mean / std per channel).

    Returns:
        The preprocessed array (NumPy in, NumPy out) or tensor.

    Raises:
        ConfigError: an unknown ``mode`` or a ``data_format`` other than channels-last.
    """
    if mode not in _MODES:
        raise ConfigError("keras.applications preprocess_input: mode must be one of "
                          f"{_MODES}; received mode={mode!r}")
    _check_data_format(data_format)
    if isinstance(x, np.ndarray):
        if not issubclass(x.dtype.type, np.floating):
            x = x.astype(np.float32, copy=False)
        return _preprocess(x, mode, flip=lambda a: a[..., ::-1])
    if isinstance(x, KerasTensor):  # a functional model's input: the same steps as ops
        return _preprocess_symbolic(x, mode)
    x = torch.as_tensor(x)
    if not x.is_floating_point():
        x = x.float()
    return _preprocess(x, mode, flip=lambda a: a.flip(-1))


def _preprocess(x: Any, mode: str, flip: Any) -> Any:
    if mode == "tf":
        x /= 127.5
        x -= 1.0
        return x
    if mode == "torch":
        x /= 255.0
        mean, std = _TORCH_MEAN, _TORCH_STD
    else:
        x = flip(x)
        mean, std = _CAFFE_MEAN, None
    for channel in range(3):
        x[..., channel] -= mean[channel]
        if std is not None:
            x[..., channel] /= std[channel]
    return x


def _preprocess_symbolic(x: KerasTensor, mode: str) -> KerasTensor:
    if mode == "tf":
        return x / 127.5 - 1.0
    if mode == "torch":
        return (x / 255.0 - np.array(_TORCH_MEAN, np.float32)) / np.array(_TORCH_STD, np.float32)
    return ops.flip(x, axis=-1) - np.array(_CAFFE_MEAN, np.float32)


def decode_predictions(preds: Any, top: int = 5) -> list[list[tuple[str, str, float]]]:
    """The ``top`` ImageNet classes of each prediction, best first.

    The class index JSON is downloaded once into ``~/.keras/models`` (MD5-checked), as Keras does.

    Args:
        preds: array ``(samples, 1000)`` of class scores.
        top: how many classes per sample.

    Returns:
        One list per sample of ``(wordnet id, class name, score)`` tuples.

    Raises:
        ShapeError: ``preds`` is not ``(samples, 1000)``.
    """
    global CLASS_INDEX
    preds = preds.detach().cpu().numpy() if isinstance(preds, torch.Tensor) else np.asarray(preds)
    if preds.ndim != 2 or preds.shape[1] != 1000:
        raise ShapeError("decode_predictions expects a batch of predictions (a 2D array of shape "
                         f"(samples, 1000)); received an array of shape {preds.shape}")
    if CLASS_INDEX is None:
        path = get_file("imagenet_class_index.json", CLASS_INDEX_PATH, cache_subdir="models",
                        file_hash=CLASS_INDEX_HASH)
        with open(path, encoding="utf-8") as file:
            CLASS_INDEX = json.load(file)
    results = []
    for pred in preds:
        best = pred.argsort()[-top:][::-1]
        result = [(*CLASS_INDEX[str(i)], pred[i]) for i in best]
        result.sort(key=lambda item: item[2], reverse=True)
        results.append(result)
    return results


def obtain_input_shape(input_shape: Any, default_size: int, min_size: int, data_format: str,
                       require_flatten: bool, weights: Any = None) -> tuple:
    """The model's input shape ``(H, W, C)`` from the user's ``input_shape`` (Keras's rules).

    Raises:
        ConfigError: channels-first format; ``include_top`` with ImageNet weights and another
            shape; not 3 sizes; not 3 channels with ImageNet weights; a side under ``min_size``;
            ``include_top`` with an unknown side.
    """
    if data_format != "channels_last":
        raise ConfigError("keras.applications: only data_format='channels_last' is supported; "
                          f"received {data_format!r}")
    if input_shape is not None:
        input_shape = tuple(input_shape)
    if weights != "imagenet" and input_shape and len(input_shape) == 3:
        default_shape = (default_size, default_size, input_shape[-1])
    else:
        default_shape = (default_size, default_size, 3)
    if weights == "imagenet" and require_flatten:
        if input_shape is not None and input_shape != default_shape:
            raise ConfigError("When setting `include_top=True` and loading `imagenet` weights, "
                              f"`input_shape` should be {default_shape}.  Received: "
                              f"input_shape={input_shape}")
        return default_shape
    if input_shape:
        if len(input_shape) != 3:
            raise ConfigError("`input_shape` must be a tuple of three integers; received "
                              f"input_shape={input_shape}")
        if input_shape[-1] != 3 and weights == "imagenet":
            raise ConfigError(f"The input must have 3 channels; Received `input_shape="
                              f"{input_shape}`")
        if any(side is not None and side < min_size for side in input_shape[:2]):
            raise ConfigError(f"Input size must be at least {min_size}x{min_size}; Received: "
                              f"input_shape={input_shape}")
    else:
        input_shape = default_shape if require_flatten else (None, None, 3)
    if require_flatten and None in input_shape:
        raise ConfigError("If `include_top` is True, you should specify a static `input_shape`. "
                          f"Received: input_shape={input_shape}")
    return input_shape


def correct_pad(inputs: Any, kernel_size: Any) -> tuple[tuple[int, int], tuple[int, int]]:
    """The ``ZeroPadding2D`` padding before a strided "valid" convolution that keeps TF's "same"
    alignment (one more row/column at the bottom/right when a side is even)."""
    size = inputs.shape[1:3]
    if isinstance(kernel_size, int):
        kernel_size = (kernel_size, kernel_size)
    adjust = (1, 1) if size[0] is None else (1 - size[0] % 2, 1 - size[1] % 2)
    correct = (kernel_size[0] // 2, kernel_size[1] // 2)
    return ((correct[0] - adjust[0], correct[0]), (correct[1] - adjust[1], correct[1]))


def validate_activation(classifier_activation: Any, weights: Any) -> None:
    """Pretrained weights allow only a softmax or no classifier activation (Keras's rule).

    Raises:
        ConfigError: another activation with ``weights`` given.
    """
    if weights is None:
        return
    chosen = activations.get(classifier_activation)
    if chosen not in (activations.get("softmax"), activations.get(None)):
        raise ConfigError("Only `None` and `softmax` activations are allowed for the "
                          "`classifier_activation` argument when using pretrained weights, with "
                          f"`include_top=True`; Received: classifier_activation="
                          f"{classifier_activation!r}")


def __getattr__(name: str) -> object:
    raise unsupported_attribute("keras.applications.imagenet_utils", name)
