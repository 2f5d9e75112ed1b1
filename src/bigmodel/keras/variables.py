"""``keras.Variable``-style state: a tensor with ``assign``/``assign_add``/``value``/``numpy``.

Every weight a Keras layer creates (``add_weight``) and every state variable of a Keras metric
(``add_variable``) is a :class:`Variable`. It *is* an ``nn.Parameter`` (a subclass), so torch sees
an ordinary parameter: ``module.parameters()``, ``state_dict()`` (plain tensors), optimizers,
``torch.equal``, DDP and ``.to`` all work as with ``nn.Parameter``; operations on it return plain
tensors. On top it has Keras 3's variable API, as Keras's torch backend does:

- ``v.value`` is the torch parameter itself (the Keras torch guide reads ``v.value.grad``);
- ``v.assign(x)`` / ``assign_add`` / ``assign_sub`` update in place, outside autograd;
- ``v.numpy()`` gives the value as a NumPy array (no error for a trainable weight).

A weight stored in torch's layout (a Dense kernel is ``(out, in)`` here, ``(in, out)`` in Keras; a
Conv kernel ``(out, in, kh, kw)``, ``(kh, kw, in, out)`` in Keras) reads in that stored layout:
``numpy()`` (and ``np.asarray``) must agree with what torch and its exporters see (the ONNX exporter
calls ``numpy(force=True)``). ``assign`` takes the stored layout, or Keras's layout when the shape
tells them apart; ``get_weights`` / ``set_weights`` always speak Keras's layout. Pickling gives
back a plain ``nn.Parameter`` (``torch.load(weights_only=True)`` keeps working);
``copy.deepcopy`` keeps the subclass.
"""

from __future__ import annotations

import copy
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from torch import nn

__all__ = ["Variable"]


class Variable(nn.Parameter):
    """A parameter with Keras's variable API (see the module docstring).

    Args:
        data: the initial value (array, number or tensor); float32 unless ``dtype`` is given or
            ``data`` is a floating tensor (then its dtype is kept).
        requires_grad: whether it is trained (``False`` for metric state and non-trainable
            weights).
        name: the Keras name (``"kernel"``), kept as ``path``.
        dtype: the torch dtype to store.
    """

    # Read by the engine (bigmodel.engine.optimizers.fused_kwargs): a parameter in every respect
    # that torch's fused optimizer kernels treat like nn.Parameter.
    plain_parameter = True

    def __new__(cls, data: Any = None, requires_grad: bool = False, name: str | None = None,
                dtype: torch.dtype | None = None):
        if isinstance(data, torch.Tensor):
            tensor = data.detach()
            if dtype is not None or not tensor.is_floating_point():
                tensor = tensor.to(dtype or torch.float32)
        else:
            tensor = torch.as_tensor(np.asarray(0.0 if data is None else data),
                                     dtype=dtype or torch.float32)
        variable = super().__new__(cls, tensor, requires_grad)
        # ``name`` is a read-only attribute of torch tensors: the Keras name is kept in ``path``
        # (add_weight makes it ``"layer/kernel"``, as Keras's ``variable.path``).
        variable.path = name or "variable"
        variable._torch_perm = None
        return variable

    def __deepcopy__(self, memo: dict) -> Variable:
        if id(self) in memo:
            return memo[id(self)]
        result = type(self)(self.data.clone(memory_format=torch.preserve_format),
                            self.requires_grad, dtype=self.dtype)
        memo[id(self)] = result
        result.__dict__.update(copy.deepcopy(self.__dict__, memo))
        return result

    def _set_torch_layout(self, perm: Sequence[int] | None) -> None:
        """Record that the stored tensor is the Keras value permuted by ``perm``."""
        self._torch_perm = tuple(perm) if perm is not None else None

    @property
    def name(self) -> str:
        """Keras's short name (``"kernel"``, ``"moving_mean"``); ``path`` holds ``"layer/kernel"``.
        (torch tensors answer ``name`` with ``None``.)"""
        return self.__dict__.get("path", "variable").rsplit("/", 1)[-1]

    @property
    def value(self) -> torch.Tensor:
        """The torch parameter itself (Keras's torch backend: ``variable.value``)."""
        return self

    @property
    def trainable(self) -> bool:
        return self.requires_grad

    def _cast(self, value: Any) -> torch.Tensor:
        tensor = value.detach() if isinstance(value, torch.Tensor) else torch.as_tensor(
            np.asarray(value))
        tensor = tensor.to(device=self.device, dtype=self.dtype)
        perm = self.__dict__.get("_torch_perm")
        if perm is not None and tensor.dim() == len(perm) and tensor.shape != self.shape:
            stored = tuple(self.shape)
            keras_shape = tuple(stored[i] for i in np.argsort(perm))
            if tuple(tensor.shape) == keras_shape:  # Keras's layout, told apart by its shape
                tensor = tensor.permute(*perm)
        return tensor

    def assign(self, value: Any) -> Variable:
        """Set the value (Keras layout), in place and outside autograd."""
        with torch.no_grad():
            self.copy_(self._cast(value).expand_as(self))
        return self

    def assign_add(self, value: Any) -> Variable:
        with torch.no_grad():
            self.add_(self._cast(value))
        return self

    def assign_sub(self, value: Any) -> Variable:
        with torch.no_grad():
            self.sub_(self._cast(value))
        return self

    def numpy(self, *, force: bool = False) -> np.ndarray:
        """The value as a NumPy array, in the stored layout (a trainable weight too, unlike
        ``Tensor.numpy``, as a Keras variable allows)."""
        return self.detach().numpy(force=force)
