"""The Trainer's per-batch step pieces, shared by ``fit`` and ``evaluate``: unpacking a batch,
the memory format, autocast, and the forward pass with the (weighted) loss and ``extra_loss``.

A mixin like :mod:`bigmodel.engine.trainer_inference`: it reads the Trainer's ``network``,
``loss``, ``_per_sample_loss``, ``extra_loss``, ``channels_last``, ``device`` and
``_autocast_dtype``.
"""

from __future__ import annotations

import contextlib
from typing import Any

import torch

from bigmodel.data.batching import tree_map
from bigmodel.errors import DataError


class StepMixin:
    """Per-batch helpers of :class:`bigmodel.engine.trainer.Trainer`."""

    def _autocast(self) -> contextlib.AbstractContextManager:
        if self._autocast_dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(device_type=self.device.type, dtype=self._autocast_dtype)

    def _forward(self, x: Any, y: Any, weight: torch.Tensor | None) -> tuple[Any, torch.Tensor]:
        """``(outputs, loss)`` for one batch, the loss weighted and with ``extra_loss`` added."""
        outputs = self.network(x)
        if weight is None:
            loss = self.loss(outputs, y)
        elif self._per_sample_loss is None:
            loss = self.loss(outputs, y, weight)
        else:
            values = self._per_sample_loss(outputs, y)
            if values.ndim > 1:
                values = values.reshape(values.shape[0], -1).mean(dim=1)
            # Keras's "sum_over_batch_size": weighted sum divided by the number of samples.
            loss = (values * weight.to(values.dtype)).sum() / values.shape[0]
        if self.extra_loss is not None:
            loss = loss + self.extra_loss()
        return outputs, loss

    def _unpack(self, batch: tuple, caller: str) -> tuple[Any, Any, Any]:
        if len(batch) < 2 or batch[1] is None:
            raise DataError(f"{caller} needs batches (x, y) or (x, y, sample_weight); "
                            f"received a batch of {len(batch)} element(s)")
        x = self._to_memory_format(batch[0]) if self.channels_last else batch[0]
        return x, batch[1], batch[2] if len(batch) > 2 else None

    def _to_memory_format(self, x: Any) -> Any:
        if not self.channels_last:
            return x
        return tree_map(lambda t: t.contiguous(memory_format=torch.channels_last) if t.ndim == 4 else t, x)
