"""Vision Transformer (Dosovitskiy et al., 2021): an image as a sequence of patches.

Layout (sizes for a 28x28x1 image, ``patch_size=4``, ``d_model=64``)::

    image (B, 1, 28, 28) -> patch embedding (conv 4x4, stride 4) -> (B, 49, 64)
    [CLS] token prepended, learned positions added, dropout          -> (B, 50, 64)
    num_layers x pre-norm encoder block [self-attention, MLP (GELU)] -> final LayerNorm
                                                                        <- forward_features
    pool: the [CLS] token (or the mean of the patch tokens)          -> (B, 64)
    head: Linear -> logits (B, num_classes)                             <- forward_head

Images may be ``(B, C, H, W)``, channels-last ``(B, H, W, C)`` or ``(B, H, W)`` (one channel).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from torch import nn

from bigmodel.errors import ConfigError, InputTypeError, ShapeError, describe
from bigmodel.models.registry import register_model
from bigmodel.nn.transformer import TransformerEncoder

__all__ = ["ViT", "vit"]


def _pair(value: int | Sequence[int], name: str) -> tuple[int, int]:
    if isinstance(value, int) and not isinstance(value, bool):
        return value, value
    if isinstance(value, Sequence) and len(value) == 2 and all(
            isinstance(v, int) and not isinstance(v, bool) for v in value):
        return int(value[0]), int(value[1])
    raise ConfigError(f"ViT: '{name}' must be an int or a pair of ints; received {value!r}")


class ViT(nn.Module):
    """Vision Transformer classifier.

    Args:
        image_size: ``H`` or ``(H, W)``; must be a multiple of ``patch_size``.
        patch_size: side of the square patches.
        in_channels / num_classes: image channels / output logits.
        d_model, num_heads, num_layers, dff: encoder sizes.
        dropout: on embeddings and residual branches; attention_dropout on attention weights.
        pool: ``"cls"`` (the [CLS] token) or ``"mean"`` (average of patch tokens).

    Raises:
        ConfigError: a size that does not divide, a bad pool name, ``d_model`` not divisible by
            ``num_heads``.
    """

    def __init__(self, image_size: int | Sequence[int] = 28, patch_size: int = 4,
                 in_channels: int = 1, num_classes: int = 10, d_model: int = 64,
                 num_heads: int = 4, num_layers: int = 4, dff: int = 128, dropout: float = 0.1,
                 attention_dropout: float = 0.0, pool: str = "cls",
                 layer_norm_epsilon: float = 1e-6) -> None:
        super().__init__()
        height, width = _pair(image_size, "image_size")
        for name, value in (("patch_size", patch_size), ("in_channels", in_channels),
                            ("num_classes", num_classes), ("d_model", d_model)):
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ConfigError(f"ViT: '{name}' must be a positive int; received {value!r}")
        if height % patch_size or width % patch_size:
            raise ConfigError(f"ViT: image_size {(height, width)} must be a multiple of "
                              f"patch_size={patch_size}")
        if d_model % num_heads:
            raise ConfigError(f"ViT: d_model must be divisible by num_heads; received "
                              f"d_model={d_model}, num_heads={num_heads}")
        if pool not in ("cls", "mean"):
            raise ConfigError(f"ViT: 'pool' must be 'cls' or 'mean'; received {pool!r}")
        self.image_size, self.patch_size = (height, width), patch_size
        self.in_channels, self.num_classes, self.d_model = in_channels, num_classes, d_model
        self.num_heads, self.num_layers, self.dff = num_heads, num_layers, dff
        self.dropout, self.attention_dropout = float(dropout), float(attention_dropout)
        self.pool, self.layer_norm_epsilon = pool, float(layer_norm_epsilon)
        self.num_patches = (height // patch_size) * (width // patch_size)
        self.patch_embedding = nn.Conv2d(in_channels, d_model, patch_size, stride=patch_size)
        self.cls_token = nn.Parameter(torch.zeros(1, 1, d_model))
        self.position = nn.Parameter(torch.empty(1, self.num_patches + 1, d_model))
        self.embedding_dropout = nn.Dropout(dropout)
        self.encoder = TransformerEncoder(num_layers, d_model, num_heads, dff, dropout=dropout,
                                          attention_dropout=attention_dropout, activation="gelu",
                                          norm_first=True, layer_norm_eps=layer_norm_epsilon)
        self.head = nn.Linear(d_model, num_classes)
        nn.init.normal_(self.position, std=0.02)
        nn.init.normal_(self.cls_token, std=0.02)
        for module in self.encoder.modules():
            if isinstance(module, nn.Linear):
                nn.init.xavier_uniform_(module.weight)
                nn.init.zeros_(module.bias)
        _init_head(self.head)

    def _to_nchw(self, x: torch.Tensor) -> torch.Tensor:
        if not isinstance(x, torch.Tensor) or not x.is_floating_point():
            raise InputTypeError(f"ViT expects a floating-point image tensor (scale pixels to "
                                 f"[0, 1]); received {describe(x)}")
        (height, width), channels = self.image_size, self.in_channels
        shape = tuple(x.shape)
        if x.dim() == 4 and shape[1:] == (channels, height, width):
            return x
        if x.dim() == 4 and shape[1:] == (height, width, channels):
            return x.permute(0, 3, 1, 2)
        if x.dim() == 3 and channels == 1 and shape[1:] == (height, width):
            return x.unsqueeze(1)
        raise ShapeError(f"ViT expects images (B, {channels}, {height}, {width}) or (B, {height}, "
                         f"{width}, {channels}); received {describe(x)}")

    def _tokens(self, x: torch.Tensor) -> torch.Tensor:
        patches = self.patch_embedding(self._to_nchw(x)).flatten(2).transpose(1, 2)  # (B, N, d)
        cls = self.cls_token.expand(patches.shape[0], -1, -1)
        return self.embedding_dropout(torch.cat([cls, patches], dim=1) + self.position)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """Token states after the final LayerNorm: ``(B, 1 + num_patches, d_model)``."""
        tokens, _ = self.encoder(self._tokens(x))
        return tokens

    def attention_maps(self, x: torch.Tensor) -> list[torch.Tensor]:
        """Attention weights of every layer, each ``(B, num_heads, 1 + N, 1 + N)``."""
        _, weights = self.encoder(self._tokens(x), need_weights=True)
        return weights

    def forward_head(self, features: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        """Pool tokens ``(B, 1 + N, d)`` and classify: logits ``(B, num_classes)``
        (or the pooled ``(B, d)`` with ``pre_logits``)."""
        pooled = features[:, 0] if self.pool == "cls" else features[:, 1:].mean(dim=1)
        return pooled if pre_logits else self.head(pooled)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_head(self.forward_features(x))

    def get_classifier(self) -> nn.Module:
        return self.head

    def reset_classifier(self, num_classes: int) -> None:
        """A fresh head with ``num_classes`` outputs."""
        if not isinstance(num_classes, int) or isinstance(num_classes, bool) or num_classes < 1:
            raise ConfigError(f"reset_classifier: 'num_classes' must be a positive int; received "
                              f"{num_classes!r}")
        weight = self.head.weight
        self.head = nn.Linear(self.d_model, num_classes, device=weight.device, dtype=weight.dtype)
        _init_head(self.head)
        self.num_classes = num_classes

    def get_config(self) -> dict[str, Any]:
        return {"image_size": list(self.image_size), "patch_size": self.patch_size,
                "in_channels": self.in_channels, "num_classes": self.num_classes,
                "d_model": self.d_model, "num_heads": self.num_heads,
                "num_layers": self.num_layers, "dff": self.dff, "dropout": self.dropout,
                "attention_dropout": self.attention_dropout, "pool": self.pool,
                "layer_norm_epsilon": self.layer_norm_epsilon}


def _init_head(head: nn.Linear) -> None:
    # Small random weights (not zeros, as the paper's fine-tuning heads): with a zero head no
    # gradient would reach the encoder on the first step.
    nn.init.normal_(head.weight, std=0.02)
    nn.init.zeros_(head.bias)


@register_model("vit", example_input=lambda batch: torch.rand(batch, 1, 28, 28))
def vit(image_size: int | list[int] = 28, patch_size: int = 4, in_channels: int = 1,
        num_classes: int = 10, d_model: int = 64, num_heads: int = 4, num_layers: int = 4,
        dff: int = 128, dropout: float = 0.1, attention_dropout: float = 0.0, pool: str = "cls",
        layer_norm_epsilon: float = 1e-6) -> ViT:
    """A small ViT for 28x28 grey images (Fashion-MNIST): 49 patches of 4x4."""
    return ViT(image_size=image_size, patch_size=patch_size, in_channels=in_channels,
               num_classes=num_classes, d_model=d_model, num_heads=num_heads,
               num_layers=num_layers, dff=dff, dropout=dropout,
               attention_dropout=attention_dropout, pool=pool,
               layer_norm_epsilon=layer_norm_epsilon)
