"""Optimizer by name: the one place a name (``"adam"``, ``"sgd"``, ...) becomes a ``torch.optim``
optimizer.

:func:`create_optimizer` uses torch's own defaults for everything left out (``epsilon=None`` is
torch's ``eps``, 1e-8 for Adam); a surface with other defaults passes them explicitly (the Keras
surface and recipes pass Keras's ``epsilon=1e-7`` and ``rho=0.9``). Every optimizer it builds runs
torch's fused or multi-tensor kernels where the parameters allow (:func:`fused_kwargs`).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

import torch
from torch import nn

from bigmodel.errors import ConfigError, UnknownNameError
from bigmodel.utils import checks

__all__ = ["OPTIMIZERS", "create_optimizer", "fused_kwargs"]

OPTIMIZERS: dict[str, type[torch.optim.Optimizer]] = {
    "adam": torch.optim.Adam, "adamw": torch.optim.AdamW, "sgd": torch.optim.SGD,
    "rmsprop": torch.optim.RMSprop, "adagrad": torch.optim.Adagrad,
}

# Optimizers that have a fused (single-kernel, multi-tensor) implementation on CPU and CUDA.
_FUSABLE = (torch.optim.Adam, torch.optim.AdamW, torch.optim.SGD, torch.optim.Adagrad)
# Optimizers without a fused kernel but with a multi-tensor (foreach) one.
_FOREACH = (torch.optim.RMSprop, torch.optim.Adadelta, torch.optim.Adamax, torch.optim.NAdam,
            torch.optim.RAdam, torch.optim.Rprop, torch.optim.ASGD)


def _plain(tensor: torch.Tensor) -> bool:
    """An ``nn.Parameter``, or a subclass that declares itself one in every respect the fused
    kernels see (``plain_parameter = True``: Keras variables) -- not a sharded FSDP/DTensor one."""
    kind = type(tensor)
    return kind is nn.Parameter or (issubclass(kind, nn.Parameter)
                                    and getattr(kind, "plain_parameter", False) is True)


def fused_kwargs(optimizer_class: type, params: Any) -> dict[str, bool]:
    """``{"fused": True}`` when ``optimizer_class`` has a fused kernel for ``params``, else ``{}``.

    The fused kernels compute the same update as the per-tensor loop torch uses by default on CPU
    (equal up to float rounding) in one pass over all parameters: for the seed CNN's Adam step on one
    CPU thread, 187 µs instead of 388 µs (``benchmarks/fit_throughput.py`` counts it as engine
    speed; BENCHMARKS.md gives both figures). Only plain parameters qualify -- all on one CPU or
    CUDA device, floating point. Sharded (DTensor, FSDP flat) parameters, other devices and mixed
    placements keep torch's default implementation. Keras weights (``keras.Variable``, an
    ``nn.Parameter`` subclass that sets ``plain_parameter = True``) count as plain parameters; for
    them, optimizers without a fused kernel (RMSprop, ...) get ``{"foreach": True}``, the
    multi-tensor kernels torch chooses by itself for ``nn.Parameter`` on CUDA but not for a
    subclass (asked for on CPU too, the same update up to float rounding: a model is often moved to
    the GPU after its optimizer is built).

    ``params`` is what an optimizer takes: parameters, or param-group dicts with a ``"params"`` key.
    """
    if optimizer_class not in _FUSABLE and optimizer_class not in _FOREACH:
        return {}
    tensors: list[torch.Tensor] = []
    for item in params:
        if isinstance(item, Mapping):
            group = item["params"]
            tensors.extend([group] if isinstance(group, torch.Tensor) else list(group))
        else:
            tensors.append(item)
    if not tensors:
        return {}
    devices = {t.device for t in tensors}
    ok = (len(devices) == 1 and next(iter(devices)).type in ("cpu", "cuda")
          and all(_plain(t) and t.is_floating_point() for t in tensors))
    if optimizer_class in _FOREACH:
        # torch picks its multi-tensor (foreach) kernels by itself only for exact nn.Parameter /
        # Tensor types: ask for them when a Keras variable would make it fall back to a loop.
        subclassed = any(type(t) is not nn.Parameter for t in tensors)
        return {"foreach": True} if ok and subclassed else {}
    return {"fused": True} if ok else {}


def create_optimizer(name: str, parameters: Iterable[Any], *, lr: float,
                     weight_decay: float | None = None,
                     momentum: float = 0.0, epsilon: float | None = None, rho: float | None = None,
                     nesterov: bool = False, betas: tuple[float, float] | None = None,
                     amsgrad: bool = False, centered: bool = False,
                     initial_accumulator_value: float = 0.0) -> torch.optim.Optimizer:
    """A ``torch.optim`` optimizer from its name.

    One set of training settings fits every name: an argument the named optimizer does not have
    (``momentum`` for Adam, ``rho`` or ``epsilon`` for SGD, ...) is not used. ``nesterov``,
    ``amsgrad``, ``centered`` and ``initial_accumulator_value`` are choices of one optimizer and
    are refused with any other.

    Args:
        name: ``adam``, ``adamw``, ``sgd``, ``rmsprop`` or ``adagrad`` (any case).
        parameters: what a torch optimizer takes: parameters or param-group dicts.
        lr: the learning rate (>= 0).
        weight_decay: torch's (added to the gradient; decoupled for ``adamw``), >= 0; ``None``
            is torch's default (0, AdamW 0.01).
        momentum: SGD's and RMSprop's, in [0, 1].
        epsilon: Adam/AdamW/RMSprop/Adagrad's ``eps``; ``None`` is torch's default (1e-8, Adagrad
            1e-10). Keras's is 1e-7.
        rho: RMSprop's moving-average factor (torch's ``alpha``), in [0, 1]; ``None`` is torch's
            0.99 (Keras's is 0.9).
        nesterov: SGD with Nesterov momentum (needs ``momentum > 0``).
        betas: Adam/AdamW's ``(beta_1, beta_2)``, each in [0, 1); ``None`` is torch's (0.9, 0.999).
        amsgrad: Adam/AdamW's AMSGrad variant.
        centered: centered RMSprop.
        initial_accumulator_value: Adagrad's starting accumulator (>= 0; Keras's is 0.1).

    Returns:
        The optimizer, with ``{"fused": True}`` / ``{"foreach": True}`` where the parameters allow.

    Raises:
        UnknownNameError: an unknown name (the message lists the known ones).
        ConfigError: a bad value (negative, NaN, a bool or string for a number, out of range), an
            option the named optimizer does not have, or no parameters.
    """
    owner = "create_optimizer"
    key = name.lower() if isinstance(name, str) else name
    if key not in OPTIMIZERS:
        raise UnknownNameError(
            f"Unknown optimizer {name!r}. Known optimizers: {', '.join(sorted(OPTIMIZERS))}")
    lr = checks.number_at_least(owner, "lr", lr, 0.0)
    if weight_decay is not None:
        weight_decay = checks.number_at_least(owner, "weight_decay", weight_decay, 0.0)
    momentum = checks.rate(owner, "momentum", momentum, high_inclusive=True)
    if epsilon is not None:
        epsilon = checks.number_at_least(owner, "epsilon", epsilon, 0.0)
    if rho is not None:
        rho = checks.rate(owner, "rho", rho, high_inclusive=True)
    for flag, value, only in (("nesterov", nesterov, "sgd"), ("amsgrad", amsgrad, "adam/adamw"),
                              ("centered", centered, "rmsprop")):
        if not isinstance(value, bool):
            raise ConfigError(f"{owner}: '{flag}' must be a bool; received {value!r}")
        if value and key not in only.split("/"):
            raise ConfigError(f"{owner}: '{flag}' is an option of {only}, not of {key!r}")
    if nesterov and momentum == 0:
        raise ConfigError(f"{owner}: nesterov=True needs momentum > 0; received momentum={momentum}")
    if betas is not None:
        if not isinstance(betas, (tuple, list)) or len(betas) != 2:
            raise ConfigError(f"{owner}: 'betas' must be a pair (beta_1, beta_2); received {betas!r}")
        betas = (checks.rate(owner, "beta_1", betas[0]), checks.rate(owner, "beta_2", betas[1]))
        if key not in ("adam", "adamw"):
            raise ConfigError(f"{owner}: 'betas' is an option of adam/adamw, not of {key!r}")
    initial_accumulator_value = checks.number_at_least(
        owner, "initial_accumulator_value", initial_accumulator_value, 0.0)
    if initial_accumulator_value and key != "adagrad":
        raise ConfigError(f"{owner}: 'initial_accumulator_value' is an option of adagrad, "
                          f"not of {key!r}")
    params = list(parameters)
    if not params:
        raise ConfigError("The model has no trainable parameters to optimize")

    cls = OPTIMIZERS[key]
    options: dict[str, Any] = {"lr": lr}
    if weight_decay is not None:
        options["weight_decay"] = weight_decay
    if epsilon is not None and key != "sgd":
        options["eps"] = epsilon
    if key in ("adam", "adamw"):
        options["amsgrad"] = amsgrad
        if betas is not None:
            options["betas"] = betas
    elif key == "sgd":
        options.update(momentum=momentum, nesterov=nesterov)
    elif key == "rmsprop":
        options.update(momentum=momentum, centered=centered)
        if rho is not None:
            options["alpha"] = rho
    else:  # adagrad
        options["initial_accumulator_value"] = initial_accumulator_value
    return cls(params, **options, **fused_kwargs(cls, params))
