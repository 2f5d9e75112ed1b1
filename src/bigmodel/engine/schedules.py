"""Learning-rate schedules as ``torch.optim.lr_scheduler.LambdaLR`` factors, stepped per optimizer step.

A schedule is chosen by a small spec, e.g. ``{"name": "cosine", "warmup_steps": 100,
"total_steps": 10_000}``, and multiplies the optimizer's base learning rate. Every factor below is a
function of ``step``, the 1-based index of the optimizer step the rate is used for (LambdaLR calls
the factor with the number of steps already taken, ``step - 1``):

- ``constant``: ``warmup(step)``, then 1.
- ``cosine``: linear warmup ``step / warmup_steps`` up to ``warmup_steps``, then
  ``min_lr_ratio + (1 - min_lr_ratio) * 0.5 * (1 + cos(pi * p))`` with
  ``p = clamp((step - warmup_steps) / (total_steps - warmup_steps), 0, 1)``.
- ``step``: warmup, then ``gamma ** ((step - warmup_steps - 1) // step_size)``.
- ``noam``: ``d_model ** -0.5 * min(step ** -0.5, step * warmup_steps ** -1.5)`` (Vaswani et al.;
  use ``lr=1.0`` for the paper's rates).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from typing import Any

import torch
from torch.optim.lr_scheduler import LambdaLR, LRScheduler

from bigmodel.errors import ConfigError, InputTypeError, UnknownNameError

Factor = Callable[[int], float]


def get_learning_rate(optimizer: torch.optim.Optimizer) -> float:
    """The learning rate of the optimizer's first parameter group, as a float."""
    return float(optimizer.param_groups[0]["lr"])


def set_learning_rate(optimizer: torch.optim.Optimizer, value: float) -> None:
    """Set the learning rate to ``value``, keeping the ratios between parameter groups.

    With one group (the usual case) this sets that group's rate. With several groups (e.g.
    a smaller rate for a pretrained backbone), every group is scaled by ``value / first_group_lr``
    so ``get_learning_rate`` returns ``value`` and the ratios survive. A ``LambdaLR`` attached to the
    optimizer recomputes the rate from its own base rates at its next step, so a schedule wins over
    a value set here.

    Raises:
        ConfigError: ``value`` is negative or not finite.
    """
    value = float(value)
    if not math.isfinite(value) or value < 0:
        raise ConfigError(f"A learning rate must be a finite number >= 0; received {value}")
    first = get_learning_rate(optimizer)
    for group in optimizer.param_groups:
        new = value if first <= 0 else float(group["lr"]) * value / first
        if isinstance(group["lr"], torch.Tensor):
            group["lr"].fill_(new)  # capturable/fused optimizers keep lr as a tensor
        else:
            group["lr"] = new


def _warmup(step: int, warmup_steps: int) -> float | None:
    """Linear warmup factor ``step / warmup_steps`` while ``step <= warmup_steps``, else None."""
    if warmup_steps > 0 and step <= warmup_steps:
        return step / warmup_steps
    return None


def constant(warmup_steps: int = 0) -> Factor:
    """Factor 1 after an optional linear warmup. Argument of the result: steps already taken."""
    def factor(steps_done: int) -> float:
        warm = _warmup(steps_done + 1, warmup_steps)
        return 1.0 if warm is None else warm
    return factor


def warmup_cosine(total_steps: int, warmup_steps: int = 0, min_lr_ratio: float = 0.0) -> Factor:
    """Linear warmup then cosine decay to ``min_lr_ratio`` at ``total_steps`` (module docstring)."""
    span = max(1, total_steps - warmup_steps)

    def factor(steps_done: int) -> float:
        step = steps_done + 1
        warm = _warmup(step, warmup_steps)
        if warm is not None:
            return warm
        progress = min(1.0, max(0.0, (step - warmup_steps) / span))
        return min_lr_ratio + (1.0 - min_lr_ratio) * 0.5 * (1.0 + math.cos(math.pi * progress))
    return factor


def step_decay(step_size: int, gamma: float = 0.1, warmup_steps: int = 0) -> Factor:
    """Multiply by ``gamma`` every ``step_size`` steps after the warmup (module docstring)."""
    def factor(steps_done: int) -> float:
        step = steps_done + 1
        warm = _warmup(step, warmup_steps)
        if warm is not None:
            return warm
        return gamma ** ((step - warmup_steps - 1) // step_size)
    return factor


def noam(d_model: int, warmup_steps: int = 4000) -> Factor:
    """The Transformer schedule ``d_model**-0.5 * min(step**-0.5, step * warmup**-1.5)``."""
    def factor(steps_done: int) -> float:
        step = steps_done + 1
        return d_model ** -0.5 * min(step ** -0.5, step * warmup_steps ** -1.5)
    return factor


# name -> (factor builder, required keys, optional keys)
_SCHEDULES: dict[str, tuple[Callable[..., Factor], tuple[str, ...], tuple[str, ...]]] = {
    "constant": (constant, (), ("warmup_steps",)),
    "cosine": (warmup_cosine, ("total_steps",), ("warmup_steps", "min_lr_ratio")),
    "step": (step_decay, ("step_size",), ("gamma", "warmup_steps")),
    "noam": (noam, ("d_model",), ("warmup_steps",)),
}


def needs_total_steps(spec: Any) -> bool:
    """True when ``spec`` names a schedule whose ``total_steps`` is missing (the trainer fills it)."""
    spec = _as_mapping(spec) if isinstance(spec, (str, Mapping)) else None
    return bool(spec) and str(spec.get("name", "")).lower() == "cosine" and "total_steps" not in spec


def _as_mapping(spec: str | Mapping[str, Any]) -> dict[str, Any]:
    return {"name": spec} if isinstance(spec, str) else dict(spec)


def build_scheduler(optimizer: torch.optim.Optimizer, spec: Any,
                    total_steps: int | None = None) -> LRScheduler | None:
    """Build the per-step scheduler described by ``spec``.

    Args:
        optimizer: the optimizer whose rate is scheduled.
        spec: ``None``; a name or a dict ``{"name": ..., **arguments}`` (module docstring); an
            ``LRScheduler`` already bound to ``optimizer``; or a callable ``optimizer -> scheduler``.
        total_steps: fills ``total_steps`` when the spec leaves it out (cosine).

    Returns:
        The scheduler, or ``None`` when ``spec`` is ``None``.

    Raises:
        UnknownNameError: unknown schedule name.
        ConfigError: missing, unknown or invalid arguments.
        InputTypeError: ``spec`` has an unusable type.
    """
    if spec is None:
        return None
    if isinstance(spec, LRScheduler):
        if spec.optimizer is not optimizer:
            raise ConfigError("The scheduler passed to the trainer is bound to a different optimizer")
        return spec
    if isinstance(spec, (str, Mapping)):
        arguments = _as_mapping(spec)
        name = str(arguments.pop("name", "")).lower()
        if name not in _SCHEDULES:
            raise UnknownNameError(
                f"Unknown schedule {name!r}. Known schedules: {', '.join(sorted(_SCHEDULES))}"
            )
        builder, required, optional = _SCHEDULES[name]
        if "total_steps" in required and "total_steps" not in arguments and total_steps is not None:
            arguments["total_steps"] = total_steps
        missing = [key for key in required if key not in arguments]
        unknown = sorted(set(arguments) - set(required) - set(optional))
        if missing or unknown:
            raise ConfigError(
                f"Schedule {name!r} takes {list(required)} and optionally {list(optional)}; "
                f"missing {missing}, unknown {unknown}"
            )
        for key in ("total_steps", "step_size", "d_model"):
            if key in arguments and int(arguments[key]) < 1:
                raise ConfigError(f"Schedule {name!r}: {key} must be >= 1; received {arguments[key]}")
        return LambdaLR(optimizer, builder(**arguments))
    if callable(spec):
        scheduler = spec(optimizer)
        if not isinstance(scheduler, LRScheduler):
            raise InputTypeError(
                f"scheduler(optimizer) must return an LRScheduler; received {type(scheduler).__name__}"
            )
        return scheduler
    raise InputTypeError(
        "scheduler must be None, a name, a dict spec, an LRScheduler or a callable; "
        f"received {type(spec).__name__}"
    )


__all__ = [
    "build_scheduler", "constant", "get_learning_rate", "needs_total_steps", "noam",
    "set_learning_rate", "step_decay", "warmup_cosine",
]
