"""Let Captum's DeepLift see nonlinearities that a model calls as functions.

Captum's DeepLift / DeepLiftShap apply their rules (Rescale for ReLU, sigmoid, tanh, ELU, leaky ReLU,
softplus; the max-pool rule) through hooks on ``nn.ReLU``, ``nn.MaxPool2d``... *modules*. Models
that call ``F.relu`` or ``F.max_pool2d`` directly -- the seed CNN, every Keras-surface layer with an
``activation=`` -- would silently get plain gradients there, and the attributions would no longer
add up to ``f(x) - f(baseline)`` (shap's DeepExplainer has the same limitation).

:class:`ModularNonlinearities` wraps such a model: a probe forward pass records each functional
nonlinearity call in order and creates one module per call; later forward passes run under a
``TorchFunctionMode`` that sends the k-th call to the k-th module, where Captum's hooks find it.
Numbers are unchanged (the module computes the same function); calls made inside the model's own
nonlinearity modules are left alone (Captum already hooks those). Nonlinearities Captum has no rule
for (GELU, SiLU, softmax inside the model) keep plain gradients; the convergence delta DeepSHAP
reports shows how much that costs.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import nn
from torch.overrides import TorchFunctionMode

_RELU = {F.relu, torch.relu, torch.Tensor.relu}
_SIGMOID = {torch.sigmoid, torch.Tensor.sigmoid, F.sigmoid}
_TANH = {torch.tanh, torch.Tensor.tanh, F.tanh}
_OWN_TYPES = (nn.ReLU, nn.ELU, nn.LeakyReLU, nn.Sigmoid, nn.Tanh, nn.Softplus, nn.MaxPool1d,
              nn.MaxPool2d, nn.MaxPool3d, nn.Softmax)


def _argument(args: tuple, kwargs: dict, index: int, name: str, default: Any) -> Any:
    if len(args) > index:
        return args[index]
    return kwargs.get(name, default)


def _describe(func: Any, args: tuple, kwargs: dict) -> tuple | None:
    """A key naming the nonlinearity ``func(*args, **kwargs)`` computes, or None if unsupported."""
    if func in _RELU:
        return ("relu",)
    if func in _SIGMOID:
        return ("sigmoid",)
    if func in _TANH:
        return ("tanh",)
    if func is F.elu:
        return ("elu", float(_argument(args, kwargs, 1, "alpha", 1.0)))
    if func is F.leaky_relu:
        return ("leaky_relu", float(_argument(args, kwargs, 1, "negative_slope", 0.01)))
    if func is F.softplus:
        return ("softplus", float(_argument(args, kwargs, 1, "beta", 1.0)),
                float(_argument(args, kwargs, 2, "threshold", 20.0)))
    if func in (F.max_pool1d, F.max_pool2d):
        if _argument(args, kwargs, 6, "return_indices", False):
            return None
        kernel = _plain(_argument(args, kwargs, 1, "kernel_size", None))
        stride = _plain(_argument(args, kwargs, 2, "stride", None))
        if stride is None or stride == ():
            stride = kernel
        return ("max_pool1d" if func is F.max_pool1d else "max_pool2d", kernel, stride,
                _plain(_argument(args, kwargs, 3, "padding", 0)),
                _plain(_argument(args, kwargs, 4, "dilation", 1)),
                bool(_argument(args, kwargs, 5, "ceil_mode", False)))
    return None


def _build(key: tuple) -> nn.Module:
    kind, *values = key
    simple = {"relu": nn.ReLU, "sigmoid": nn.Sigmoid, "tanh": nn.Tanh, "elu": nn.ELU,
              "leaky_relu": nn.LeakyReLU, "softplus": nn.Softplus}
    if kind in simple:
        return simple[kind](*values)
    cls = nn.MaxPool1d if kind == "max_pool1d" else nn.MaxPool2d
    kernel, stride, padding, dilation, ceil_mode = values
    return cls(kernel, stride, padding, dilation, ceil_mode=ceil_mode)


def _plain(value: Any) -> Any:
    return tuple(value) if isinstance(value, (list, tuple)) else value


class _Router(TorchFunctionMode):
    def __init__(self, owner: ModularNonlinearities, recording: bool) -> None:
        super().__init__()
        self.owner = owner
        self.recording = recording
        self.position = 0

    def __torch_function__(self, func: Any, types: Any, args: tuple = (),
                           kwargs: dict | None = None) -> Any:
        kwargs = kwargs or {}
        owner = self.owner
        if owner._inside_own > 0:
            return func(*args, **kwargs)
        try:
            key = _describe(func, args, kwargs)
        except TypeError:  # an unhashable func or unexpected arguments: leave it alone
            key = None
        if key is None:
            return func(*args, **kwargs)
        if self.recording:
            owner.routed.append(_build(key))
            owner._keys.append(key)
        position = self.position
        self.position += 1
        if position >= len(owner.routed) or owner._keys[position] != key:
            owner.mismatched = True  # control flow changed since the probe: plain gradients
            return func(*args, **kwargs)
        return owner.routed[position](args[0])


class ModularNonlinearities(nn.Module):
    """``inner`` with its functional nonlinearities routed through modules (see module docstring).

    Args:
        inner: the model (any ``nn.Module``).
        example: an input batch used for the probe pass (one example is enough).
    """

    def __init__(self, inner: nn.Module, example: torch.Tensor) -> None:
        super().__init__()
        self.inner = inner
        self.routed = nn.ModuleList()
        self._keys: list[tuple] = []
        self._inside_own = 0
        self.mismatched = False
        handles = []

        def enter(_m: nn.Module, _args: Any) -> None:
            self._inside_own += 1

        def leave(_m: nn.Module, _args: Any, _out: Any) -> None:
            self._inside_own -= 1

        for module in inner.modules():
            if isinstance(module, _OWN_TYPES):
                handles.append(module.register_forward_pre_hook(enter))
                handles.append(module.register_forward_hook(leave))
        self._own_handles = handles
        with torch.no_grad(), _Router(self, recording=True):
            inner(example)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self._inside_own = 0
        with _Router(self, recording=False):
            return self.inner(x)

    def close(self) -> None:
        """Remove the hooks put on the model's own nonlinearity modules."""
        for handle in self._own_handles:
            handle.remove()
        self._own_handles = []
