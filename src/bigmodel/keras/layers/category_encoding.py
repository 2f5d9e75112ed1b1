"""``layers.CategoryEncoding``: integer category ids to one-hot, multi-hot or count vectors
(Keras 3's arguments, defaults and shapes)."""

from __future__ import annotations

from typing import Any

import torch

from bigmodel.errors import ConfigError, DataError, NotSupportedError, ShapeError
from bigmodel.keras.layers.base import Layer
from bigmodel.keras.layers.symbolic import Shape

__all__ = ["CategoryEncoding"]

_MODES = ("one_hot", "multi_hot", "count")


class CategoryEncoding(Layer):
    """Encodes integer ids in ``[0, num_tokens)``.

    - ``"one_hot"``: ``(batch,)`` or ``(batch, 1)`` -> ``(batch, num_tokens)``; ``(batch, k)`` ->
      ``(batch, k, num_tokens)``;
    - ``"multi_hot"`` (default): ``(batch, k)`` -> ``(batch, num_tokens)`` with 1 for each id
      present; a rank-1 input is one sample -> ``(num_tokens,)``;
    - ``"count"``: as multi-hot, with the number of times each id occurs (weighted by
      ``count_weights`` of the input's shape when given at call time).

    Args:
        num_tokens: the number of categories.
        output_mode: ``"one_hot"``, ``"multi_hot"`` or ``"count"``.
        sparse: must be False (dense tensors only).

    Raises:
        ConfigError: ``num_tokens`` missing or not positive, an unknown ``output_mode``.
        NotSupportedError: ``sparse=True``.
        DataError: ids that are not integers or lie outside ``[0, num_tokens)``.
        ShapeError: multi-hot / count inputs of rank above 2.
    """

    def __init__(self, num_tokens: int | None = None, output_mode: str = "multi_hot",
                 sparse: bool = False, **kwargs: Any):
        super().__init__(**kwargs)
        if isinstance(num_tokens, bool) or not isinstance(num_tokens, int) or num_tokens < 1:
            raise ConfigError(f"Layer '{self.name}' (CategoryEncoding): num_tokens must be a "
                              f"positive int. Received: num_tokens={num_tokens!r}")
        if output_mode not in _MODES:
            raise ConfigError(f"Layer '{self.name}' (CategoryEncoding): unknown output_mode; "
                              f"expected one of {_MODES}. Received: output_mode={output_mode!r}")
        if sparse:
            raise NotSupportedError(f"Layer '{self.name}' (CategoryEncoding): sparse=True is not "
                                    "supported by bigmodel (dense outputs only)")
        self.num_tokens, self.output_mode, self.sparse = num_tokens, output_mode, False

    def compute_output_shape(self, input_shape: Shape) -> Shape:
        shape = tuple(input_shape)
        if self.output_mode == "one_hot":
            if len(shape) >= 2 and shape[-1] == 1:
                shape = shape[:-1]
            return (*shape, self.num_tokens)
        if len(shape) > 2:
            raise ShapeError(f"Layer '{self.name}' (CategoryEncoding): output_mode="
                             f"{self.output_mode!r} takes inputs of rank 1 or 2 (samples, ids); "
                             f"received shape {shape}")
        return (self.num_tokens,) if len(shape) <= 1 else (shape[0], self.num_tokens)

    def _ids(self, inputs: Any) -> torch.Tensor:
        ids = torch.as_tensor(inputs)
        if ids.is_floating_point():
            if not torch.equal(ids, ids.round()):
                raise DataError(f"Layer '{self.name}' (CategoryEncoding): inputs must be integer "
                                f"ids; received non-integer values (dtype {ids.dtype})")
        ids = ids.long()
        if ids.numel() and (int(ids.min()) < 0 or int(ids.max()) >= self.num_tokens):
            raise DataError(f"Layer '{self.name}' (CategoryEncoding): ids must lie in "
                            f"[0, {self.num_tokens}); received ids in [{int(ids.min())}, "
                            f"{int(ids.max())}]")
        return ids

    def call(self, inputs: Any, count_weights: Any = None, training: bool = False) -> Any:
        ids = self._ids(inputs)
        if self.output_mode == "one_hot":
            if ids.dim() >= 2 and ids.shape[-1] == 1:
                ids = ids.squeeze(-1)
            return torch.nn.functional.one_hot(ids, self.num_tokens).float()
        out_shape = self.compute_output_shape(tuple(ids.shape))
        rows = ids.reshape(1, -1) if ids.dim() <= 1 else ids
        weights = torch.ones(rows.shape, dtype=torch.float32, device=rows.device)
        if count_weights is not None and self.output_mode == "count":
            weights = torch.as_tensor(count_weights, dtype=torch.float32,
                                      device=rows.device).reshape(rows.shape)
        counts = torch.zeros(rows.shape[0], self.num_tokens, device=rows.device)
        counts = counts.scatter_add(1, rows, weights)
        if self.output_mode == "multi_hot":
            counts = (counts > 0).float()
        return counts.reshape(out_shape)

    def _call_symbolic(self, inputs: Any, **kwargs: Any) -> Any:
        if kwargs.get("count_weights") is not None:
            raise NotSupportedError(f"Layer '{self.name}' (CategoryEncoding): count_weights on "
                                    "symbolic inputs is not supported by bigmodel (a graph node "
                                    "replays the plain call); pass it in an eager call")
        return super()._call_symbolic(inputs, **kwargs)

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "num_tokens": self.num_tokens,
                "output_mode": self.output_mode}
