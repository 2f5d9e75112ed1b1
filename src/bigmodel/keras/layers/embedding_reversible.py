"""``ReversibleEmbedding`` (Keras 3): an ``Embedding`` that also maps vectors back to vocabulary
logits, ``layer(x, reverse=True) = x @ embeddings.T`` (tied weights, the usual language-model
head) or ``x @ reverse_embeddings`` with ``tie_weights=False``.
"""

from __future__ import annotations

from typing import Any

import torch

from bigmodel.errors import ConfigError, ShapeError
from bigmodel.keras import regularizers
from bigmodel.keras.layers.core import cast_inputs
from bigmodel.keras.layers.embedding import Embedding
from bigmodel.keras.layers.symbolic import KerasTensor, Shape

__all__ = ["ReversibleEmbedding"]


class ReversibleEmbedding(Embedding):
    """Embedding with a reverse projection to logits.

    Args:
        input_dim / output_dim / embeddings_*: as ``Embedding``.
        tie_weights: reuse the ``(input_dim, output_dim)`` table for the reverse projection;
            ``False`` adds a ``reverse_embeddings`` weight of shape ``(output_dim, input_dim)``.
        reverse_dtype: only None / ``"float32"`` (the dtype of the reverse matmul).
        logit_soft_cap: if set, reverse logits become ``tanh(logits / cap) * cap``.

    Call: ``layer(ids)`` -> ``(..., output_dim)``; ``layer(x, reverse=True)`` with ``x`` of shape
    ``(..., output_dim)`` -> ``(..., input_dim)``.

    Raises:
        ConfigError: an unsupported ``reverse_dtype`` or a non-positive ``logit_soft_cap``.
        ShapeError: a reverse input whose last axis is not ``output_dim``.
    """

    def __init__(self, input_dim: int, output_dim: int, tie_weights: bool = True,
                 embeddings_initializer: Any = "uniform", embeddings_regularizer: Any = None,
                 embeddings_constraint: Any = None, mask_zero: bool = False,
                 reverse_dtype: Any = None, logit_soft_cap: float | None = None,
                 quantization_config: Any = None, **kwargs: Any):
        super().__init__(input_dim, output_dim, embeddings_initializer=embeddings_initializer,
                         embeddings_regularizer=embeddings_regularizer,
                         embeddings_constraint=embeddings_constraint, mask_zero=mask_zero,
                         **kwargs)
        where = f"Layer '{self.name}' (ReversibleEmbedding)"
        if reverse_dtype not in (None, "float32"):
            raise ConfigError(f"{where}: only reverse_dtype=None or 'float32' is supported. "
                              f"Received: reverse_dtype={reverse_dtype!r}")
        if logit_soft_cap is not None and (isinstance(logit_soft_cap, bool) or not isinstance(
                logit_soft_cap, (int, float)) or logit_soft_cap <= 0):
            raise ConfigError(f"{where}: `logit_soft_cap` must be a positive number or None. "
                              f"Received: logit_soft_cap={logit_soft_cap!r}")
        if quantization_config is not None:
            raise ConfigError(f"{where}: argument `quantization_config` is not supported. "
                              f"Received: quantization_config={quantization_config!r}")
        self.tie_weights = bool(tie_weights)
        self.reverse_dtype = reverse_dtype
        self.logit_soft_cap = logit_soft_cap
        self._symbolic_reverse = False

    def build(self, input_shape: Shape) -> None:
        super().build(input_shape)
        if not self.tie_weights:
            self.add_weight("reverse_embeddings", (self.output_dim, self.input_dim),
                            self.embeddings_initializer)

    def _call_symbolic(self, inputs: Any, *args: Any, **kwargs: Any) -> KerasTensor:
        # The output shape depends on ``reverse``; compute_output_shape reads it from here.
        self._symbolic_reverse = bool(kwargs.get("reverse", False))
        try:
            return super()._call_symbolic(inputs, *args, **kwargs)
        finally:
            self._symbolic_reverse = False

    def _maybe_build(self, shape: Shape, device: torch.device | None = None) -> None:
        # A first call with reverse=True gets vectors, not ids: the table does not depend on it.
        super()._maybe_build(shape[:-1] if self._symbolic_reverse else shape, device)

    def call(self, inputs: torch.Tensor, training: bool = False,
             reverse: bool = False) -> torch.Tensor:
        if not reverse:
            return super().call(inputs)
        if inputs.shape[-1] != self.output_dim:
            raise ShapeError(f"Layer '{self.name}' (ReversibleEmbedding): reverse=True expects "
                             f"inputs whose last axis is output_dim={self.output_dim}; received "
                             f"shape {tuple(inputs.shape)}")
        kernel = self.embeddings.T if self.tie_weights else self.reverse_embeddings
        logits = torch.matmul(cast_inputs(inputs, kernel), kernel)
        if self.logit_soft_cap is not None:
            logits = torch.tanh(logits / self.logit_soft_cap) * self.logit_soft_cap
        return logits

    def compute_mask(self, inputs: torch.Tensor, mask: Any = None) -> torch.Tensor | None:
        # Only the forward lookup makes a mask; a float reverse input never does.
        if self.mask_zero and not inputs.is_floating_point():
            return inputs != 0
        return None

    def compute_output_shape(self, input_shape: Shape, reverse: bool = False) -> Shape:
        if reverse or self._symbolic_reverse:
            return (*tuple(input_shape)[:-1], self.input_dim)
        return (*tuple(input_shape), self.output_dim)

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "activity_regularizer": regularizers.serialize(self.activity_regularizer),
                "quantization_config": None,
                "tie_weights": self.tie_weights, "reverse_dtype": self.reverse_dtype,
                "logit_soft_cap": self.logit_soft_cap}
