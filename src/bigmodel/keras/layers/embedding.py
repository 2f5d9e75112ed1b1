"""Embedding: integer indices -> dense vectors, Keras 3 arguments and defaults."""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F

from bigmodel.errors import DataError
from bigmodel.keras import constraints, initializers, regularizers
from bigmodel.keras.layers.base import Layer
from bigmodel.keras.layers.core import check_positive_int, resolve
from bigmodel.keras.layers.symbolic import Shape

__all__ = ["Embedding"]


class Embedding(Layer):
    """Looks up row ``i`` of an ``(input_dim, output_dim)`` table for every index ``i``.

    Args:
        input_dim: vocabulary size; indices must lie in ``[0, input_dim)``.
        output_dim: size of each vector.
        embeddings_initializer: default ``"uniform"`` (Keras: RandomUniform(-0.05, 0.05)).
        mask_zero: index 0 is padding (stored; masks are propagated by the models that use them).

    Input ``(batch, ...)`` integers (floats are cast, as Keras does); output ``(batch, ..., output_dim)``.

    Raises:
        DataError: an index is negative or ``>= input_dim`` (the message names the layer).
    """

    def __init__(self, input_dim: int, output_dim: int, embeddings_initializer: Any = "uniform",
                 embeddings_regularizer: Any = None, embeddings_constraint: Any = None,
                 mask_zero: bool = False, weights: Any = None, **kwargs: Any):
        super().__init__(**kwargs)
        self.input_dim = check_positive_int(self, "input_dim", input_dim)
        self.output_dim = check_positive_int(self, "output_dim", output_dim)
        self.embeddings_constraint = resolve(self, "embeddings_constraint", embeddings_constraint)
        self.embeddings_initializer = resolve(self, "embeddings_initializer",
                                              embeddings_initializer)
        self.embeddings_regularizer = resolve(self, "embeddings_regularizer",
                                              embeddings_regularizer)
        self.mask_zero = bool(mask_zero)
        if weights is not None:  # Keras accepts initial weights; build now and load them
            self._maybe_build((None, None))
            self.set_weights(weights if isinstance(weights, (list, tuple)) else [weights])

    def build(self, input_shape: Shape) -> None:
        self.add_weight("embeddings", (self.input_dim, self.output_dim),
                        self.embeddings_initializer, self.embeddings_regularizer,
                        constraint=self.embeddings_constraint)
        super().build(input_shape)

    def call(self, inputs: torch.Tensor, training: bool = False) -> torch.Tensor:
        ids = inputs if inputs.dtype in (torch.int64, torch.int32) else inputs.long()
        if ids.device.type != "cpu":
            # Out-of-range indices are a device-side assert on accelerators: check first.
            self._check_range(ids)
            return F.embedding(ids, self.embeddings)
        try:
            return F.embedding(ids, self.embeddings)
        except IndexError as exc:  # checked only on failure: no cost on the happy path
            error = exc
        self._check_range(ids)
        raise error

    def _check_range(self, ids: torch.Tensor) -> None:
        if ids.numel() == 0:
            return
        low, high = int(ids.min()), int(ids.max())
        if low < 0 or high >= self.input_dim:
            bad = low if low < 0 else high
            raise DataError(f"Layer '{self.name}' (Embedding): index {bad} is out of range; "
                            f"indices must be in [0, {self.input_dim}) (input_dim="
                            f"{self.input_dim}). Received indices in [{low}, {high}]")

    def compute_mask(self, inputs: torch.Tensor, mask: Any = None) -> torch.Tensor | None:
        """``inputs != 0`` when ``mask_zero``, else ``None`` (Keras semantics)."""
        return inputs != 0 if self.mask_zero else None

    def compute_output_shape(self, input_shape: Shape) -> Shape:
        return (*tuple(input_shape), self.output_dim)

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "input_dim": self.input_dim,
                "output_dim": self.output_dim,
                "embeddings_initializer": initializers.serialize(self.embeddings_initializer),
                "embeddings_regularizer": regularizers.serialize(self.embeddings_regularizer),
                "embeddings_constraint": constraints.serialize(self.embeddings_constraint),
                "mask_zero": self.mask_zero}
