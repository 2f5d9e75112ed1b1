"""The base of Keras losses here: :class:`Loss` (call order, reduction, masks) and Keras 3's
``squeeze_or_expand_to_same_rank``.

Call order is Keras's: ``loss(y_true, y_pred, sample_weight=None)`` -> scalar. The reductions are
Keras 3's: ``"sum_over_batch_size"`` (and its alias ``"mean"``) divides the weighted sum of the
per-sample losses by their number (not by the sum of the weights), ``"mean_with_sample_weight"``
by the sum of the weights, ``"sum"`` sums, ``"none"``/None keeps them.

A loss whose per-sample values carry a mask (Keras's ``set_keras_mask``, e.g. Circle's "only the
positive values count") returns it from :meth:`Loss.output_mask`; masked-out values then weigh 0 and
the mean runs over the valid ones, as Keras's ``apply_mask``.
"""

from __future__ import annotations

from typing import Any

import torch

from bigmodel.errors import ConfigError, NotSupportedError, UnknownNameError

EPSILON = 1e-7

REDUCTIONS = ("sum_over_batch_size", "sum", "mean", "mean_with_sample_weight", "none", None)


def squeeze_or_expand_to_same_rank(x1: torch.Tensor, x2: torch.Tensor,
                                   expand_rank_1: bool = True) -> tuple[torch.Tensor, torch.Tensor]:
    """``x1`` and ``x2`` at the same rank when their ranks differ by one and the longer one ends
    in a dimension of 1, as Keras 3's ``squeeze_or_expand_to_same_rank``: a rank-1 tensor is
    expanded (``(batch,)`` against ``(batch, 1)`` gives ``(batch, 1)``), otherwise the trailing 1
    is squeezed. Any other pair is returned unchanged.

    Args:
        x1, x2: the two tensors (``y_true``, ``y_pred`` in a loss).
        expand_rank_1: expand a rank-1 tensor rather than squeeze the other.

    Returns:
        ``(x1, x2)``, one of them reshaped where the rule applies.
    """
    rank1, rank2 = x1.dim(), x2.dim()
    if rank1 == rank2 + 1 and x1.shape[-1] == 1:
        if rank2 == 1 and expand_rank_1:
            x2 = x2.unsqueeze(-1)
        else:
            x1 = x1.squeeze(-1)
    elif rank2 == rank1 + 1 and x2.shape[-1] == 1:
        if rank1 == 1 and expand_rank_1:
            x1 = x1.unsqueeze(-1)
        else:
            x2 = x2.squeeze(-1)
    return x1, x2


def check_reduction(owner: str, reduction: Any) -> Any:
    """``reduction`` when it is one of Keras 3's, else a ConfigError naming it."""
    if reduction not in REDUCTIONS:
        raise ConfigError(f"{owner}: invalid value for argument `reduction`. Expected one of "
                          f"{[r for r in REDUCTIONS if r is not None]} or None. Received: "
                          f"reduction={reduction!r}")
    return reduction


def reduce_values(values: torch.Tensor, sample_weight: Any, reduction: Any,
                  mask: torch.Tensor | None = None) -> torch.Tensor:
    """Keras 3's ``reduce_weighted_values``: the per-sample ``values`` weighted by
    ``sample_weight`` and ``mask`` (see the module docstring), then reduced.

    Raises:
        UnknownNameError: an unknown ``reduction``.
    """
    if reduction not in REDUCTIONS:
        raise UnknownNameError(f"Unknown reduction '{reduction}'; expected one of "
                               f"{[r for r in REDUCTIONS if r is not None]} or None")
    weight = sample_weight = None if sample_weight is None else torch.as_tensor(
        sample_weight, device=values.device).to(values.dtype)
    if mask is not None:
        float_mask = mask.to(values.dtype)
        if reduction in ("sum_over_batch_size", "mean"):
            valid = float_mask.sum()
            scale = float_mask.numel() / valid if float(valid) > 0 else torch.zeros(())
            float_mask = float_mask * scale
        weight = float_mask if weight is None else _at_rank(weight, float_mask) * float_mask
    if weight is not None:
        values = values * _at_rank(weight, values)
    if reduction in ("none", None) or values.dim() == 0 or values.numel() == 0:
        return values
    if reduction == "sum":
        return values.sum()
    if reduction == "mean_with_sample_weight" and sample_weight is not None:
        total, divisor = values.sum(), weight.sum()
        # divide_no_nan, as Keras: weights summing to 0 give 0, not NaN
        return torch.where(divisor != 0, total / torch.where(divisor != 0, divisor, 1.0),
                           torch.zeros_like(total))
    return values.mean()  # the sum over the number of values (Keras's divisor)


def _at_rank(weight: torch.Tensor, values: torch.Tensor) -> torch.Tensor:
    # Keras meets sample weights and values at one rank (a trailing 1 squeezed, else expanded)
    weight, _ = squeeze_or_expand_to_same_rank(weight, values)
    while weight.dim() < values.dim():
        weight = weight.unsqueeze(-1)
    return weight


class Loss:
    """Base class: subclasses implement ``call(y_true, y_pred) -> per-sample losses``."""

    name = "loss"
    #: Which activation's pre-activation this loss can consume exactly (``"softmax"``/``"sigmoid"``).
    logits_of: str | None = None

    def __init__(self, name: str | None = None, reduction: str = "sum_over_batch_size",
                 dtype: Any = None, *, from_logits: bool = False):
        """Keras 3's ``Loss(name=None, reduction="sum_over_batch_size", dtype=None)``.

        Raises:
            ConfigError: an unknown ``reduction``.
            NotSupportedError: a ``dtype`` other than float32 (losses are computed in float32).
        """
        self.reduction = check_reduction(type(self).__name__, reduction)
        self.from_logits = from_logits
        if dtype is not None and str(getattr(dtype, "name", dtype)) not in ("float32",
                                                                             "mixed_float16",
                                                                             "mixed_bfloat16"):
            raise NotSupportedError(f"{type(self).__name__}(dtype={dtype!r}): bigmodel computes "
                                    "losses in float32; see docs/keras_api.md")
        if name is not None:
            self.name = name

    def call(self, y_true: torch.Tensor, y_pred: torch.Tensor) -> torch.Tensor:  # pragma: no cover
        raise NotImplementedError

    def __call__(self, y_true: Any, y_pred: torch.Tensor,
                 sample_weight: torch.Tensor | None = None) -> torch.Tensor:
        y_true = torch.as_tensor(y_true, device=y_pred.device)
        values = self.call(y_true, y_pred)
        return reduce_values(values, sample_weight, self.reduction, self.output_mask(values))

    def output_mask(self, values: torch.Tensor) -> torch.Tensor | None:
        """Which per-sample values count (Keras's mask on the loss values); None: all."""
        return None

    def with_logits(self) -> Loss:
        """The same loss computed from pre-activation outputs (``from_logits=True``)."""
        clone = type(self).__new__(type(self))
        clone.__dict__.update(self.__dict__)
        clone.from_logits = True
        return clone

    def get_config(self) -> dict[str, Any]:
        return {"name": self.name, "reduction": self.reduction, "from_logits": self.from_logits}
