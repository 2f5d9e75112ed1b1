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

from bigmodel.errors import ConfigError
from bigmodel.keras.scopes import scoped_path

__all__ = ["Variable"]


class Variable(nn.Parameter):
    """A parameter with Keras's variable API (see the module docstring).

    ``Variable(initializer, shape=None, dtype=None, trainable=True, name=None)`` is Keras's
    constructor (``keras.Variable``): ``initializer`` is an initial value (array, number or
    tensor), or an initializer (``"zeros"``, ``keras.initializers.HeNormal()``, a callable
    ``(shape, dtype) -> value``) called with ``shape``. Inside ``keras.name_scope("a")`` the
    ``path`` is ``"a/<name>"``, as in Keras.

    Args:
        initializer: the initial value, or an initializer with ``shape``.
        shape: the shape (needed with an initializer; checked against a value).
        dtype: a dtype name (``"float32"``) or torch dtype; float32 unless given or
            ``initializer`` is a floating tensor (then its dtype is kept).
        trainable: whether it is trained (``requires_grad``).
        autocast / aggregation / synchronization: Keras's arguments, accepted with no effect
            here (torch autocast and DDP do that work).
        name: the Keras name (``"kernel"``), kept as ``path``.
        requires_grad: bigmodel's spelling of ``trainable`` (wins when given; the layers and
            metrics pass it). A bool in the place of ``shape`` is read as it too (torch's
            ``Parameter(data, requires_grad)`` form).

    Raises:
        ConfigError: an initializer without ``shape``, a value whose shape differs from
            ``shape``, an unknown dtype name, a name with ``/``.
    """

    # Read by the engine (bigmodel.engine.optimizers.fused_kwargs): a parameter in every respect
    # that torch's fused optimizer kernels treat like nn.Parameter.
    plain_parameter = True

    def __new__(cls, initializer: Any = None, shape: Any = None, dtype: Any = None,
                trainable: bool = True, autocast: bool = True, aggregation: str = "none",
                synchronization: str = "auto", name: str | None = None, *,
                requires_grad: bool | None = None):
        if isinstance(shape, bool):  # torch's Parameter(data, requires_grad) form
            requires_grad, shape = shape, None
        if requires_grad is None:
            requires_grad = bool(trainable)
        dtype = _torch_dtype(dtype)
        tensor = _initial_value(initializer, shape, dtype)
        variable = super().__new__(cls, tensor, requires_grad)
        if name is not None and (not isinstance(name, str) or "/" in name):
            raise ConfigError(f"keras.Variable: argument `name` must be a string and cannot "
                              f"contain character `/`. Received: name={name!r}")
        # ``name`` is a read-only attribute of torch tensors: the Keras name is kept in ``path``
        # (add_weight makes it ``"layer/kernel"``, as Keras's ``variable.path``).
        variable.path = scoped_path(name or "variable")
        variable._torch_perm = None
        return variable

    def __deepcopy__(self, memo: dict) -> Variable:
        if id(self) in memo:
            return memo[id(self)]
        result = type(self)(self.data.clone(memory_format=torch.preserve_format),
                            requires_grad=self.requires_grad, dtype=self.dtype)
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


def _torch_dtype(dtype: Any) -> torch.dtype | None:
    """A torch dtype from Keras's dtype name (``"float32"``), a torch dtype or ``None``."""
    if dtype is None or isinstance(dtype, torch.dtype):
        return dtype
    name = np.dtype(dtype).name if isinstance(dtype, (type, np.dtype)) else dtype
    found = getattr(torch, name, None) if isinstance(name, str) else None
    if not isinstance(found, torch.dtype):
        raise ConfigError(f"keras.Variable: unknown dtype {dtype!r}; expected a name such as "
                          "'float32' or a torch dtype")
    return found


def _initial_value(initializer: Any, shape: Any, dtype: torch.dtype | None) -> torch.Tensor:
    """The first value of a variable (Keras: a value, or an initializer called with shape)."""
    if shape is not None:
        shape = (shape,) if isinstance(shape, int) else tuple(int(s) for s in shape)
    if isinstance(initializer, str) or (callable(initializer)
                                        and not isinstance(initializer, torch.Tensor)):
        from bigmodel.keras import initializers  # noqa: PLC0415 - initializers build on torch only

        if shape is None:
            raise ConfigError(f"keras.Variable: when creating a Variable from an initializer, "
                              f"the `shape` argument should be specified. Received: "
                              f"initializer={initializer!r} and shape={shape}")
        tensor = torch.as_tensor(initializers.get(initializer)(shape))
        return tensor.to(dtype or torch.float32)
    if isinstance(initializer, torch.Tensor):
        tensor = initializer.detach()
        if dtype is not None or not tensor.is_floating_point():
            tensor = tensor.to(dtype or torch.float32)
    else:
        array = np.asarray(0.0 if initializer is None else initializer)
        # Keras keeps the dtype of a floating NumPy value (float64 stays float64); Python numbers
        # and integers become float32 (an int weight cannot be trained in torch)
        keep = isinstance(initializer, (np.ndarray, np.generic)) and array.dtype.kind == "f"
        tensor = torch.as_tensor(array, dtype=dtype or (None if keep else torch.float32))
    if shape is not None and tuple(tensor.shape) != shape:
        raise ConfigError(f"keras.Variable: initial value of shape {tuple(tensor.shape)} does not "
                          f"match the `shape` argument {shape}")
    return tensor
