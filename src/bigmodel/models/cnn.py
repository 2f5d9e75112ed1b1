"""The seed CNN of ``seed-examples/seed_cnn.py`` as a plain ``nn.Module``.

Layout (sizes for a 28×28 single-channel image)::

    input (B, 1, 28, 28)
    conv1  Conv 32 3×3 valid + ReLU   -> (B, 32, 26, 26)
    pool1  MaxPool 2×2                -> (B, 32, 13, 13)
    conv2  Conv 64 3×3 valid + ReLU   -> (B, 64, 11, 11)
    pool2  MaxPool 2×2                -> (B, 64, 5, 5)
    conv3  Conv 64 3×3 valid + ReLU   -> (B, 64, 3, 3)      <- forward_features
    flatten in Keras order (H, W, C)  -> (B, 576)
    dropout (dropout_rate, default 0)
    fc     Dense 64 + ReLU            -> (B, 64)
    dropout (dropout_rate, default 0)
    classifier Dense num_classes      -> (B, 10) logits     <- forward_head

93,322 parameters with the defaults, exactly as Keras counts the seed program.

Sharing weights with Keras: the flatten step permutes the feature map to ``(B, H, W, C)`` before
flattening, which is the order Keras's ``Flatten`` uses on channels-last images. So a Keras
``Dense`` kernel ``(in, out)`` is this module's ``fc.weight`` transposed, with no row shuffling;
Keras ``Conv2D`` kernels ``(kh, kw, in, out)`` become ``conv.weight`` via ``permute(3, 2, 0, 1)``.

The model returns logits (the Keras program's final softmax lives in the loss / ``predict``), and it
initializes weights like Keras by default (Glorot-uniform kernels, zero biases) so a recipe with Keras
defaults trains like the seed program.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from bigmodel.errors import ConfigError, InputTypeError, ShapeError, describe
from bigmodel.models.registry import register_model

_WEIGHT_INITS = ("glorot_uniform", "torch_default")


def _pair(value: int | Sequence[int], name: str) -> tuple[int, int]:
    if isinstance(value, int) and not isinstance(value, bool):
        return (value, value)
    if (isinstance(value, Sequence) and len(value) == 2
            and all(isinstance(v, int) and not isinstance(v, bool) for v in value)):
        return (int(value[0]), int(value[1]))
    raise ConfigError(f"SeedCNN: '{name}' must be an int or a pair of ints; received {value!r}")


def _feature_size(size: int) -> int:
    """Spatial size after conv3/pool/conv3/pool/conv3 (valid padding, floor pooling)."""
    return ((size - 2) // 2 - 2) // 2 - 2


class SeedCNN(nn.Module):
    """Three 3×3 convolutions and two dense layers: the seed program's classifier.

    Args:
        in_channels: image channels (1 for Fashion-MNIST).
        num_classes: number of output logits.
        image_size: ``H`` or ``(H, W)`` of the input; fixes the size of the first dense layer.
        dropout_rate: dropout probability applied before each dense layer (0 disables it).
        weight_init: ``"glorot_uniform"`` (Keras: Glorot-uniform kernels, zero biases) or
            ``"torch_default"`` (PyTorch's own initialization).

    Raises:
        ConfigError: an argument is out of range or the image is too small for three convolutions.
    """

    def __init__(self, in_channels: int = 1, num_classes: int = 10,
                 image_size: int | Sequence[int] = 28, dropout_rate: float = 0.0,
                 weight_init: str = "glorot_uniform") -> None:
        super().__init__()
        for name, value in (("in_channels", in_channels), ("num_classes", num_classes)):
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ConfigError(f"SeedCNN: '{name}' must be a positive int; received {value!r}")
        if not isinstance(dropout_rate, (int, float)) or not 0.0 <= dropout_rate < 1.0:
            raise ConfigError(f"SeedCNN: 'dropout_rate' must be in [0, 1); received {dropout_rate!r}")
        if weight_init not in _WEIGHT_INITS:
            raise ConfigError(f"SeedCNN: 'weight_init' must be one of {', '.join(_WEIGHT_INITS)}; "
                              f"received {weight_init!r}")
        height, width = _pair(image_size, "image_size")
        feat_h, feat_w = _feature_size(height), _feature_size(width)
        if feat_h < 1 or feat_w < 1:
            raise ConfigError(f"SeedCNN: 'image_size' {(height, width)} is too small for three 3×3 "
                              "convolutions and two 2×2 poolings; each side must be at least 18")
        self.in_channels = in_channels
        self.num_classes = num_classes
        self.image_size = (height, width)
        self.dropout_rate = float(dropout_rate)
        self.weight_init = weight_init
        self.num_features = 64 * feat_h * feat_w  # flattened size entering the dense layers

        self.conv1 = nn.Conv2d(in_channels, 32, kernel_size=3)
        self.conv2 = nn.Conv2d(32, 64, kernel_size=3)
        self.conv3 = nn.Conv2d(64, 64, kernel_size=3)
        self.dropout = nn.Dropout(self.dropout_rate)
        self.fc = nn.Linear(self.num_features, 64)
        self.classifier = nn.Linear(64, num_classes)
        if weight_init == "glorot_uniform":
            for module in (self.conv1, self.conv2, self.conv3, self.fc, self.classifier):
                _keras_init(module)

    # -- input handling ---------------------------------------------------------------------------

    def _to_nchw(self, x: torch.Tensor) -> torch.Tensor:
        """Accept ``(B, C, H, W)``, ``(B, H, W)`` (one channel) or channels-last ``(B, H, W, C)``."""
        if not isinstance(x, torch.Tensor):
            raise InputTypeError(f"SeedCNN expects a torch.Tensor; received {describe(x)}")
        if not x.is_floating_point():
            raise InputTypeError(f"SeedCNN expects a floating-point tensor (scale images to [0, 1] "
                                 f"first); received {describe(x)}")
        height, width = self.image_size
        channels = self.in_channels
        shape = tuple(x.shape)
        if x.ndim == 4 and shape[1:] == (channels, height, width):
            return x
        if x.ndim == 4 and shape[1:] == (height, width, channels):
            return x.permute(0, 3, 1, 2)  # NHWC -> NCHW view, no copy
        if x.ndim == 3 and channels == 1 and shape[1:] == (height, width):
            return x.unsqueeze(1)
        expected = f"(B, {channels}, {height}, {width}) or (B, {height}, {width}, {channels})"
        if channels == 1:
            expected += f" or (B, {height}, {width})"
        raise ShapeError(f"SeedCNN expects input of shape {expected}; received {describe(x)}")

    # -- classifier surface -----------------------------------------------------------------------

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """Convolutional trunk.

        Args:
            x: images ``(B, C, H, W)``, ``(B, H, W, C)`` or ``(B, H, W)``; floating point.

        Returns:
            The last convolution's feature map ``(B, 64, H', W')`` (``(B, 64, 3, 3)`` for 28×28),
            after its ReLU: the layer Grad-CAM and feature extraction look at.

        Raises:
            ShapeError: the input shape does not match ``in_channels`` / ``image_size``.
            InputTypeError: the input is not a floating-point tensor.
        """
        x = self._to_nchw(x)
        x = F.max_pool2d(F.relu(self.conv1(x)), 2)  # (B, 32, 13, 13)
        x = F.max_pool2d(F.relu(self.conv2(x)), 2)  # (B, 64, 5, 5)
        return F.relu(self.conv3(x))  # (B, 64, 3, 3)

    def forward_head(self, features: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        """Dense head on a feature map from :meth:`forward_features`.

        Args:
            features: ``(B, 64, H', W')``.
            pre_logits: return the 64-wide hidden activation instead of the logits.

        Returns:
            Logits ``(B, num_classes)``, or ``(B, 64)`` when ``pre_logits``.
        """
        # Flatten in Keras order (H, W, C) so Dense kernels port from Keras without reordering.
        x = features.permute(0, 2, 3, 1).flatten(1)  # (B, H'*W'*64)
        x = F.relu(self.fc(self.dropout(x)))  # (B, 64)
        if pre_logits:
            return x
        return self.classifier(self.dropout(x))  # (B, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Logits ``(B, num_classes)`` for images ``(B, C, H, W)`` / ``(B, H, W, C)`` / ``(B, H, W)``."""
        return self.forward_head(self.forward_features(x))

    def get_classifier(self) -> nn.Module:
        return self.classifier

    def reset_classifier(self, num_classes: int) -> None:
        """Replace the final dense layer with a freshly initialized one of ``num_classes`` outputs."""
        if not isinstance(num_classes, int) or isinstance(num_classes, bool) or num_classes < 1:
            raise ConfigError(f"reset_classifier: 'num_classes' must be a positive int; "
                              f"received {num_classes!r}")
        old = self.classifier
        self.classifier = nn.Linear(64, num_classes, device=old.weight.device, dtype=old.weight.dtype)
        if self.weight_init == "glorot_uniform":
            _keras_init(self.classifier)
        self.num_classes = num_classes

    def get_config(self) -> dict:
        """Constructor arguments that rebuild this model (reflects :meth:`reset_classifier`)."""
        return {"in_channels": self.in_channels, "num_classes": self.num_classes,
                "image_size": list(self.image_size), "dropout_rate": self.dropout_rate,
                "weight_init": self.weight_init}


def _keras_init(module: nn.Conv2d | nn.Linear) -> None:
    # Keras's Glorot-uniform uses fan_in/fan_out over the receptive field, which is what
    # nn.init.xavier_uniform_ computes for a conv weight (out, in, kh, kw).
    nn.init.xavier_uniform_(module.weight)
    nn.init.zeros_(module.bias)


@register_model("seed-cnn", example_input=lambda batch: torch.rand(batch, 1, 28, 28))
def seed_cnn(in_channels: int = 1, num_classes: int = 10, image_size: int | list[int] = 28,
             dropout_rate: float = 0.0, weight_init: str = "glorot_uniform") -> SeedCNN:
    """The seed program's CNN (93,322 parameters for 28×28×1 inputs and 10 classes)."""
    return SeedCNN(in_channels=in_channels, num_classes=num_classes, image_size=image_size,
                   dropout_rate=dropout_rate, weight_init=weight_init)
