"""Turn the ``Trainer``'s arguments (names, callables, objects) into torch objects, with errors that
name the argument, what was received and what is accepted."""

from __future__ import annotations

import copy
import random
from collections.abc import Callable, Mapping
from typing import Any

import numpy as np
import torch
from torch import nn

from bigmodel.engine.optimizers import create_optimizer
from bigmodel.errors import ConfigError, InputTypeError, UnknownNameError

LOSSES = {"cross_entropy": nn.CrossEntropyLoss, "mse": nn.MSELoss, "mae": nn.L1Loss, "l1": nn.L1Loss,
          "bce": nn.BCELoss, "bce_with_logits": nn.BCEWithLogitsLoss, "nll": nn.NLLLoss,
          "huber": nn.HuberLoss}
PRECISIONS = {"fp32": None, "32": None, "float32": None, "bf16": torch.bfloat16,
              "bfloat16": torch.bfloat16, "bf16-mixed": torch.bfloat16, "fp16": torch.float16,
              "float16": torch.float16, "16-mixed": torch.float16}


def seed_everything(seed: int) -> None:
    """Seed Python ``random``, NumPy and torch (CPU and every CUDA device)."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def resolve_device(device: Any) -> torch.device:
    """``"auto"``/``None`` -> CUDA when present, else CPU; otherwise ``torch.device(device)``.

    Raises:
        ConfigError: an invalid device, or CUDA asked for where there is none.
    """
    if device is None or device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        resolved = torch.device(device)
    except (RuntimeError, TypeError):
        raise ConfigError(f"device must be 'auto', 'cpu', 'cuda[:N]' or a torch.device; received {device!r}") from None
    if resolved.type == "cuda" and not torch.cuda.is_available():
        raise ConfigError(f"device={device!r} but CUDA is not available on this machine")
    return resolved


def resolve_precision(precision: str, device: torch.device) -> torch.dtype | None:
    """The autocast dtype for ``precision`` on ``device`` (``None`` for fp32).

    Raises:
        ConfigError: unknown precision; fp16 off CUDA; bf16 on a GPU without it.
    """
    if precision not in PRECISIONS:
        raise ConfigError(f"precision must be one of {sorted(PRECISIONS)}; received {precision!r}")
    dtype = PRECISIONS[precision]
    if dtype == torch.float16 and device.type != "cuda":
        raise ConfigError(f"precision='fp16' needs a CUDA device (device is {device}); use 'bf16'")
    if dtype == torch.bfloat16 and device.type == "cuda" and not torch.cuda.is_bf16_supported():
        raise ConfigError("precision='bf16' is not supported by this GPU; use 'fp16'")
    return dtype


def resolve_loss(loss: Any) -> tuple[Callable[..., torch.Tensor] | None, Callable[..., torch.Tensor] | None]:
    """The loss callable, and for torch loss modules an unreduced twin used with sample weights.
    ``None`` stays ``None`` (a trainer that only predicts).

    Raises:
        UnknownNameError: unknown loss name. InputTypeError: not callable.
    """
    if loss is None:
        return None, None
    if isinstance(loss, str):
        if loss.lower() not in LOSSES:
            raise UnknownNameError(f"Unknown loss {loss!r}. Known losses: {', '.join(sorted(LOSSES))}")
        loss = LOSSES[loss.lower()]()
    if not callable(loss):
        raise InputTypeError(f"loss must be a callable or a loss name; received {type(loss).__name__}")
    per_sample = None
    if isinstance(loss, nn.modules.loss._Loss):
        per_sample = copy.copy(loss)  # shares parameters/buffers; only the reduction differs
        per_sample.reduction = "none"
    return loss, per_sample


def resolve_optimizer(optimizer: Any, lr: float, model: nn.Module) -> torch.optim.Optimizer | None:
    """A name (over the trainable parameters, with ``lr`` and torch's defaults), an Optimizer, or ``params -> Optimizer``;
    ``None`` stays ``None`` (a trainer that only evaluates or predicts).

    Raises:
        UnknownNameError: unknown name. InputTypeError: unusable type. ConfigError: nothing to train.
    """
    params = [p for p in model.parameters() if p.requires_grad]
    if optimizer is None or isinstance(optimizer, torch.optim.Optimizer):
        return optimizer
    if isinstance(optimizer, str):  # torch's defaults (engine.optimizers.create_optimizer)
        return create_optimizer(optimizer, params, lr=lr)
    if callable(optimizer):
        built = optimizer(params)
        if not isinstance(built, torch.optim.Optimizer):
            raise InputTypeError(
                f"optimizer(params) must return a torch.optim.Optimizer; received {type(built).__name__}")
        return built
    raise InputTypeError(
        f"optimizer must be a name, an Optimizer or a callable; received {type(optimizer).__name__}")


def class_weight_table(class_weight: Mapping[int, float] | None, device: torch.device) -> torch.Tensor | None:
    """``{class: weight}`` -> a lookup tensor (classes not listed weigh 1).

    Raises:
        ConfigError: not a non-empty dict.
    """
    if class_weight is None:
        return None
    if not isinstance(class_weight, Mapping) or not class_weight:
        raise ConfigError(f"class_weight must be a non-empty dict {{class: weight}}; received {class_weight!r}")
    table = torch.ones(max(int(k) for k in class_weight) + 1)
    for key, value in class_weight.items():
        table[int(key)] = float(value)
    return table.to(device)


def class_weights(y: torch.Tensor, table: torch.Tensor, weight: torch.Tensor | None) -> torch.Tensor:
    """Per-sample weights ``table[class]`` times ``weight``; the class is the arg-max of one-hot
    labels ``(N, C)``, else the (rounded) label ``(N,)`` / ``(N, 1)`` (Keras)."""
    if y.ndim > 1 and y.shape[-1] > 1:
        classes = y.argmax(dim=-1)
    else:
        classes = y.reshape(y.shape[0])
        classes = classes.round().long() if classes.is_floating_point() else classes
    known = classes < table.shape[0]
    weights = torch.where(known, table[classes.clamp(0, table.shape[0] - 1)], 1.0)
    return weights if weight is None else weights * weight


__all__ = ["LOSSES", "PRECISIONS", "class_weight_table", "class_weights", "resolve_device", "resolve_loss", "resolve_optimizer", "resolve_precision", "seed_everything"]
