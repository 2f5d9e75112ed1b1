"""Quantization-aware training and weight-only quantization.

QAT (:func:`prepare_qat`): while training, every Linear / convolution (and Keras Dense / Conv2D)
sees its weights rounded to per-channel symmetric int8 and its input rounded to uint8 with a moving
min/max range, with straight-through gradients, so the network learns weights that survive int8.
:meth:`QATHandle.remove` takes the simulation out again (keeping the trained fp32 weights), after
which :func:`~bigmodel.compress.quantize.quantize_int8` produces the real int8 model.

Weight-only (:func:`quantize_weight_only`): torchao's int8 / int4 weight-only ``nn.Linear`` kernels,
for Transformers served on a GPU (int4 needs CUDA; int8 also runs on CPU, slowly). The result lives
in memory; save the fp32 model and re-apply after loading.
"""

from __future__ import annotations

import contextlib
import io
import logging
import warnings

import torch
from torch import nn
from torch.nn.utils import parametrize

from bigmodel.errors import ConfigError


class _FakeQuantWeight(nn.Module):
    """Per-output-channel symmetric int8 rounding of a weight (straight-through gradient)."""

    def forward(self, weight: torch.Tensor) -> torch.Tensor:
        flat = weight.detach().reshape(weight.shape[0], -1)
        scale = (flat.abs().amax(dim=1) / 127.0).clamp_min(1e-12).float()
        zero = torch.zeros_like(scale, dtype=torch.int32)
        return torch.fake_quantize_per_channel_affine(weight, scale, zero, 0, -127, 127)


class _FakeQuantInput(nn.Module):
    """uint8 affine rounding of an activation; range tracked as a moving min/max in training."""

    def __init__(self, momentum: float = 0.01) -> None:
        super().__init__()
        self.momentum = momentum
        self.register_buffer("low", torch.tensor(float("inf")))
        self.register_buffer("high", torch.tensor(float("-inf")))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.training:
            low, high = x.detach().min().float(), x.detach().max().float()
            if torch.isinf(self.low):
                self.low.copy_(low)
                self.high.copy_(high)
            else:
                self.low.lerp_(low, self.momentum)
                self.high.lerp_(high, self.momentum)
        low, high = torch.clamp(self.low, max=0.0), torch.clamp(self.high, min=0.0)
        scale = float(((high - low) / 255.0).clamp_min(1e-8))
        zero = int(torch.clamp(torch.round(-low / scale), 0, 255))
        return torch.fake_quantize_per_tensor_affine(x, scale, zero, 0, 255)


def _qat_targets(model: nn.Module) -> list[tuple[nn.Module, str]]:
    """``(module, weight name)`` of every layer to fake-quantize: torch's linear and convolution
    layers, and any built layer whose class names its weight in ``quantized_weight`` (the protocol
    the Keras-surface ``Dense`` and ``Conv2D`` implement)."""
    found = []
    for module in model.modules():
        if isinstance(module, (nn.Linear, nn.Conv1d, nn.Conv2d)):
            found.append((module, "weight"))
        elif getattr(type(module), "quantized_weight", None) and getattr(module, "built", False):
            found.append((module, type(module).quantized_weight))
    return found


class QATHandle:
    """What :func:`prepare_qat` attached; :meth:`remove` restores plain fp32 layers."""

    def __init__(self, targets: list[tuple[nn.Module, str]], hooks: list) -> None:
        self.targets, self.hooks = targets, hooks

    def remove(self) -> None:
        for module, name in self.targets:
            if parametrize.is_parametrized(module, name):
                parametrize.remove_parametrizations(module, name, leave_parametrized=False)
            if hasattr(module, "_qat_input"):
                del module._qat_input
        for hook in self.hooks:
            hook.remove()
        self.hooks = []


def prepare_qat(model: nn.Module) -> QATHandle:
    """Simulate int8 weights and inputs in every quantizable layer of ``model`` (in place).

    Raises:
        ConfigError: the model has no Linear / convolution layer.
    """
    targets = _qat_targets(model)
    if not targets:
        raise ConfigError(f"prepare_qat: {type(model).__name__} has no Linear / convolution layer "
                          "to train with int8 simulation")
    hooks = []
    for module, name in targets:
        parametrize.register_parametrization(module, name, _FakeQuantWeight())
        module._qat_input = _FakeQuantInput().to(getattr(module, name).device)

        def pre_hook(mod, args):
            if args and torch.is_tensor(args[0]) and args[0].is_floating_point():
                return (mod._qat_input(args[0]), *args[1:])
            return None

        hooks.append(module.register_forward_pre_hook(pre_hook))
    return QATHandle(targets, hooks)


def quantize_weight_only(model: nn.Module, bits: int = 8, group_size: int = 128) -> nn.Module:
    """Replace every ``nn.Linear`` weight with torchao int8 / int4 weight-only storage (in place).

    Args:
        model: the model, already on its serving device (CUDA for ``bits=4``).
        bits: 8 (per-channel int8) or 4 (grouped int4, CUDA only).
        group_size: int4 group size along the input dimension (32, 64, 128 or 256).

    Raises:
        ConfigError: torchao missing, bits not 4/8, int4 off CUDA, or no ``nn.Linear`` layer.
    """
    if bits not in (4, 8):
        raise ConfigError(f"quantize_weight_only: 'bits' must be 4 or 8; received {bits!r}")
    if not any(isinstance(m, nn.Linear) for m in model.modules()):
        raise ConfigError(f"quantize_weight_only: {type(model).__name__} has no nn.Linear layer")
    device = next(model.parameters()).device
    if bits == 4 and device.type != "cuda":
        raise ConfigError(f"quantize_weight_only: int4 weight-only kernels need a CUDA device; the "
                          f"model is on {device}. Use bits=8, or int8 via quantize_int8 on CPU")
    if bits == 4 and group_size not in (32, 64, 128, 256):
        raise ConfigError(f"quantize_weight_only: 'group_size' must be 32, 64, 128 or 256; "
                          f"received {group_size!r}")
    torchao_logger = logging.getLogger("torchao")
    level = torchao_logger.level
    try:
        # torchao's import reports optional C++ extensions it cannot load; quiet for the import
        # only, so the user's own logging setup for torchao is left as it was.
        with warnings.catch_warnings(), contextlib.redirect_stderr(io.StringIO()):
            warnings.simplefilter("ignore")
            torchao_logger.setLevel(logging.ERROR)
            from torchao.quantization import Int4WeightOnlyConfig, Int8WeightOnlyConfig, quantize_
    except ImportError:
        raise ConfigError("quantize_weight_only needs torchao: pip install torchao") from None
    finally:
        torchao_logger.setLevel(level)
    config = Int8WeightOnlyConfig() if bits == 8 else Int4WeightOnlyConfig(group_size=group_size)
    quantize_(model, config)
    return model
