"""Loss and metrics of token sequences with padding: what sequence-to-sequence training logs.

``targets (B, T)`` hold token ids right-padded with ``pad_id``; ``logits (B, T, V)`` are the model's
next-token scores. Padding positions count nowhere: not in the loss, not in the token accuracy, and
a sequence is exactly right when every one of its non-padding tokens is.

The metrics follow the engine's metric protocol (:mod:`bigmodel.engine.metric_base`:
``update(y_pred, y_true)``, ``result()``, ``reset()``), so a ``Trainer`` logs them by name; both
the Keras surface (``bigmodel.keras.seq2seq_training``) and the recipes' ``seq2seq`` task use them.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F

from bigmodel.engine.metric_base import Metric

__all__ = ["MaskedTokenAccuracy", "SequenceExactMatch", "masked_cross_entropy"]


def masked_cross_entropy(logits: torch.Tensor, targets: torch.Tensor, pad_id: int = 0,
                         label_smoothing: float = 0.0) -> torch.Tensor:
    """Mean cross-entropy over the non-padding positions of ``targets (B, T)``.

    Args:
        logits: ``(B, T, V)`` scores (computed in float32 whatever their dtype).
        targets: ``(B, T)`` token ids; ``pad_id`` positions are ignored.
        pad_id: the padding id.
        label_smoothing: torch's (uniform over the ``V`` classes), e.g. the paper's 0.1.

    Returns:
        A scalar tensor.
    """
    return F.cross_entropy(logits.reshape(-1, logits.shape[-1]).float(), targets.reshape(-1),
                           ignore_index=pad_id, label_smoothing=label_smoothing)


class MaskedTokenAccuracy(Metric):
    """Share of non-padding target positions whose argmax prediction is right.

    Args:
        pad_id: the padding id of the targets.
        name: the key under which the value is logged.
    """

    def __init__(self, pad_id: int = 0, name: str = "accuracy") -> None:
        self.pad_id = pad_id
        super().__init__(name)

    def reset(self) -> None:
        self._correct: torch.Tensor | int = 0
        self._total: torch.Tensor | int = 0

    def update(self, y_pred: torch.Tensor, y_true: torch.Tensor, sample_weight: Any = None) -> None:
        keep = y_true != self.pad_id
        self._correct = self._correct + ((y_pred.argmax(-1) == y_true) & keep).sum()
        self._total = self._total + keep.sum()

    def result(self) -> float:
        total = float(self._total)
        return float(self._correct) / total if total else 0.0


class SequenceExactMatch(MaskedTokenAccuracy):
    """Share of sequences whose every non-padding target token is predicted right (teacher-forced)."""

    def __init__(self, pad_id: int = 0, name: str = "sequence_accuracy") -> None:
        super().__init__(pad_id, name)

    def update(self, y_pred: torch.Tensor, y_true: torch.Tensor, sample_weight: Any = None) -> None:
        wrong = (y_pred.argmax(-1) != y_true) & (y_true != self.pad_id)
        self._correct = self._correct + (~wrong.any(dim=1)).sum()
        self._total = self._total + y_true.shape[0]
