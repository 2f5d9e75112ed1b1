"""``keras.Variable``-style state for user metrics: a tensor with ``assign``/``assign_add``.

A Keras ``Metric`` subclass creates its state with ``self.add_variable(shape, initializer)`` and
updates it with ``var.assign_add(value)``; arithmetic on a variable (``self.total / self.count``)
gives a plain tensor, as Keras's does.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from torch import nn

__all__ = ["Variable"]


class Variable(nn.Parameter):
    """A tensor holding state, updated in place with Keras's ``assign*`` methods.

    Built on ``nn.Parameter`` (``requires_grad=False`` by default) so it moves with ``.to`` and
    takes part in nothing else: operations on it return plain tensors.
    """

    def __new__(cls, data: Any = None, requires_grad: bool = False, name: str | None = None):
        tensor = torch.as_tensor(np.asarray(data) if not isinstance(data, torch.Tensor) else data,
                                 dtype=torch.float32)
        variable = super().__new__(cls, tensor, requires_grad)
        variable.path = name or "variable"
        return variable

    @property
    def value(self) -> torch.Tensor:
        return self

    def _cast(self, value: Any) -> torch.Tensor:
        return torch.as_tensor(value, dtype=self.dtype).to(self.device)

    def assign(self, value: Any) -> Variable:
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

    def numpy(self) -> np.ndarray:
        return self.detach().cpu().numpy()
