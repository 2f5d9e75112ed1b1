"""``layers.Discretization``: numbers -> bucket ids by ``bin_boundaries`` (``np.digitize``), or by
``num_bins`` quantile boundaries learnt by ``adapt`` with Keras 3's own approximate-quantile
summary (the same NumPy steps, so the same boundaries)."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from bigmodel.errors import ConfigError, DataError, NotSupportedError
from bigmodel.keras.layers.base import Layer
from bigmodel.keras.layers.categorical_outputs import encode_ids

__all__ = ["Discretization"]

_MODES = ("int", "one_hot", "multi_hot", "count")


def _summarize(values: np.ndarray, epsilon: float) -> np.ndarray:
    values = np.sort(np.reshape(values, [-1]))
    step = max(np.size(values) / (1.0 / epsilon), 1)
    boundaries = values[int(step - 1)::int(step)]
    return np.stack([boundaries, np.ones_like(boundaries) * step])


def _compress(summary: np.ndarray, epsilon: float) -> np.ndarray:
    if summary.shape[1] * epsilon < 1:
        return summary
    percents = epsilon + np.arange(0.0, 1.0, epsilon)
    cum_weights = summary[1].cumsum()
    cum_percents = cum_weights / cum_weights[-1]
    new_bins = np.interp(percents, cum_percents, summary[0])
    cum_weights = np.interp(percents, cum_percents, cum_weights)
    new_weights = cum_weights - np.concatenate((np.array([0]), cum_weights[:-1]))
    return np.stack((new_bins, new_weights)).astype("float32")


class Discretization(Layer):
    """Bucket ids of numbers (Keras 3's arguments, defaults, outputs and ``adapt``).

    Raises:
        ConfigError: both or neither of ``bin_boundaries`` / ``num_bins``, a negative
            ``num_bins``, an unknown ``output_mode``; ``adapt`` with ``bin_boundaries``.
        NotSupportedError: ``sparse=True``.
        DataError: a call before boundaries are known.
    """

    def __init__(self, bin_boundaries: Any = None, num_bins: int | None = None,
                 epsilon: float = 0.01, output_mode: str = "int", sparse: bool = False,
                 dtype: Any = None, name: str | None = None, **kwargs: Any):
        super().__init__(name=name, **kwargs)  # outputs: int32 ids or float32 vectors
        where = f"Layer '{self.name}' (Discretization)"
        if sparse:
            raise NotSupportedError(f"{where}: sparse=True is not supported by bigmodel")
        if output_mode not in _MODES:
            raise ConfigError(f"{where}: invalid output_mode; expected one of {_MODES}. "
                              f"Received: output_mode={output_mode!r}")
        if num_bins is not None and (isinstance(num_bins, bool) or not isinstance(num_bins, int)
                                     or num_bins < 0):
            raise ConfigError(f"{where}: `num_bins` must be an integer >= 0. Received: "
                              f"num_bins={num_bins!r}")
        if num_bins is not None and bin_boundaries is not None:
            raise ConfigError(f"{where}: both `num_bins` and `bin_boundaries` should not be set. "
                              f"Received: num_bins={num_bins} and bin_boundaries={bin_boundaries}")
        if num_bins is None and bin_boundaries is None:
            raise ConfigError(f"{where}: you need to set either `num_bins` or `bin_boundaries`")
        if bin_boundaries is not None:
            bin_boundaries = [float(b) for b in np.asarray(bin_boundaries).reshape(-1)]
            if any(b > a for b, a in zip(bin_boundaries, bin_boundaries[1:])):
                raise ConfigError(f"{where}: bin_boundaries must be sorted. Received: "
                                  f"bin_boundaries={bin_boundaries}")
        self.bin_boundaries, self.num_bins = bin_boundaries, num_bins
        self.epsilon, self.output_mode, self.sparse = epsilon, output_mode, False
        self.summary = None if bin_boundaries else np.array([[], []], dtype="float32")
        self.built = True

    def reset_state(self) -> None:
        if self.num_bins is not None:
            self.summary = np.array([[], []], dtype="float32")

    def update_state(self, data: Any) -> None:
        values = data.detach().cpu().numpy() if isinstance(data, torch.Tensor) else data
        summary = _summarize(np.array(values).astype("float32"), self.epsilon)
        merged = np.concatenate((summary, self.summary), axis=1)
        merged = np.take(merged, np.argsort(merged[0]), axis=1)
        self.summary = _compress(merged, self.epsilon)

    def finalize_state(self) -> None:
        if self.num_bins is not None:
            self.bin_boundaries = _compress(self.summary, 1.0 / self.num_bins)[0, :-1].tolist()

    def adapt(self, data: Any, steps: int | None = None) -> None:
        """Learn ``num_bins - 1`` quantile boundaries from an array or an iterable of batches."""
        if self.num_bins is None:
            raise ConfigError(f"Layer '{self.name}' (Discretization): cannot adapt a "
                              "Discretization layer that has been initialized with "
                              "`bin_boundaries`, use `num_bins` instead")
        self.reset_state()
        if isinstance(data, (np.ndarray, torch.Tensor, list, tuple)):
            self.update_state(data)
        else:
            for i, batch in enumerate(data):
                if steps is not None and i >= steps:
                    break
                self.update_state(batch[0] if isinstance(batch, tuple) else batch)
        self.finalize_state()

    def call(self, inputs: Any, training: bool = False) -> torch.Tensor:
        if self.bin_boundaries is None:
            raise DataError(f"Layer '{self.name}' (Discretization): you need to either pass the "
                            "`bin_boundaries` argument at construction time or call "
                            "`adapt(dataset)` before you can start using the layer")
        x = torch.as_tensor(inputs) if not isinstance(inputs, torch.Tensor) else inputs
        if not x.is_floating_point():
            x = x.to(torch.float32)
        bounds = torch.tensor(self.bin_boundaries, dtype=x.dtype, device=x.device)
        ids = torch.bucketize(x, bounds, right=True)  # np.digitize: bins[i-1] <= x < bins[i]
        if self.output_mode == "int":
            return ids.to(torch.int32)
        return encode_ids(ids.cpu().numpy(), self.output_mode, len(self.bin_boundaries) + 1,
                          f"Layer '{self.name}' (Discretization)").to(x.device)

    def compute_output_shape(self, input_shape: Any) -> Any:
        shape = tuple(input_shape)
        if self.output_mode == "int":
            return shape
        depth = len(self.bin_boundaries) + 1 if self.bin_boundaries is not None else self.num_bins
        if self.output_mode == "one_hot":
            return (*shape[:-1], depth) if len(shape) > 1 and shape[-1] == 1 else (*shape, depth)
        return (shape[0], *shape[2:], depth) if len(shape) >= 2 else (depth,)

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "bin_boundaries": self.bin_boundaries,
                "num_bins": self.num_bins, "epsilon": self.epsilon,
                "output_mode": self.output_mode, "sparse": self.sparse}

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> Discretization:
        config = dict(config)
        if config.get("bin_boundaries") is not None and config.get("num_bins") is not None:
            boundaries = config.pop("bin_boundaries")
            layer = cls(**config)
            layer.bin_boundaries = boundaries
            return layer
        return cls(**config)
