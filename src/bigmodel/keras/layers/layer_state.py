"""What a Keras-surface layer holds: its weights (created in Keras shapes and stored in the layout
PyTorch computes with, listed and set in Keras's order), its losses (regularization penalties,
``add_loss``) and its nested layers. ``Layer`` (``layers/base.py``) inherits it.
"""

from __future__ import annotations

import weakref
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from torch import nn

from bigmodel.errors import ConfigError, InputTypeError, ShapeError
from bigmodel.keras.variables import Variable

__all__ = ["LOSS_LAYERS", "LayerState", "child_layers"]

# add_loss bookkeeping: layers holding losses from their last call (cleared when an outermost
# call starts, as in Keras).
LOSS_LAYERS: weakref.WeakSet = weakref.WeakSet()


def child_layers(module: nn.Module) -> list[Any]:
    """Nearest Layer descendants, looking through plain containers such as ``nn.ModuleList`` and
    tracked lists/dicts; each layer once (one layer may be held in two attributes)."""
    found: list[Any] = []
    seen: set[int] = set()
    for child in module.children():
        for layer in [child] if isinstance(child, LayerState) else child_layers(child):
            if id(layer) not in seen:
                seen.add(id(layer))
                found.append(layer)
    return found


class LayerState:
    """Weights, losses and weight lists of ``Layer`` (a mixin: ``Layer`` sets ``name``,
    ``_trainable``, ``_build_device``, ``_weight_perms``, ``_weight_regularizers`` and
    ``_activity_loss``)."""

    # ----------------------------------------------------------------------------- weights
    def add_weight(self, name: Any = None, shape: Any = None, initializer: Any = None,
                   regularizer: Any = None, trainable: bool = True,
                   torch_perm: Sequence[int] | None = None,
                   constraint: Any = None, dtype: Any = None, **kwargs: Any) -> Variable:
        """Create a weight of Keras shape ``shape`` and register it as parameter ``name``.

        The initializer sees the Keras shape (so fan-in/fan-out match Keras); ``torch_perm`` then
        permutes it into the stored layout. Weights are listed by :meth:`get_weights` in creation
        order, like Keras. As in Keras 3, ``name`` is optional (an unnamed weight assigned to
        ``self.w`` is registered as ``w``), ``shape`` may come first
        (``add_weight((3, 4), "zeros")``) and ``initializer`` defaults to ``glorot_uniform``;
        ``autocast``, ``aggregation`` and ``overwrite_with_gradient`` are accepted and ignored.

        Raises:
            ConfigError: an unknown keyword argument, a dtype other than float32.
        """
        from bigmodel.keras import initializers, regularizers

        if name is not None and not isinstance(name, str):  # Keras 3 order: shape first
            if shape is not None and initializer is None:
                initializer = shape
            name, shape = None, name
        unknown = set(kwargs) - {"autocast", "aggregation", "overwrite_with_gradient", "synchronization"}
        if unknown:
            raise ConfigError(f"Layer '{self.name}': add_weight() got unknown arguments "
                              f"{sorted(unknown)}")
        if shape is None:
            shape = ()
        if dtype not in (None, "float32", torch.float32):
            raise ConfigError(f"Layer '{self.name}': add_weight supports dtype float32 only; "
                              f"received dtype={dtype!r}")
        if name is None:
            name = self._auto_weight_name()
        init = initializers.get("glorot_uniform" if initializer is None else initializer)
        value = init(tuple(int(s) for s in shape))
        if torch_perm is not None:
            value = value.permute(*torch_perm).contiguous()
        if self._build_device is not None:
            value = value.to(self._build_device)
        # An nn.Parameter with Keras's variable API (value, assign*, numpy): keras/variables.py.
        param = Variable(value, requires_grad=bool(trainable) and self._trainable, name=name)
        param.path = f"{self.name}/{name}"
        param._set_torch_layout(torch_perm)
        self.register_parameter(name, param)
        if not trainable:
            self.__dict__.setdefault("_fixed_weights", set()).add(name)
        self._weight_perms[name] = tuple(torch_perm) if torch_perm is not None else None
        reg = regularizers.get(regularizer)
        if reg is not None:
            self._weight_regularizers[name] = reg
        if constraint is not None:
            from bigmodel.keras import constraints

            # Read by the optimizers after each step (keras/constraints.py: apply_constraints).
            param._keras_constraint = (constraints.get(constraint), self._weight_perms[name])
        return param

    def _auto_weight_name(self) -> str:
        auto = self.__dict__.setdefault("_auto_weight_names", set())
        index, name = 0, "variable"
        while name in self._parameters or name in self.__dict__ or name in self._modules:
            index += 1
            name = f"variable_{index}"
        auto.add(name)
        return name

    def add_buffer(self, name: str, value: torch.Tensor) -> None:
        """A non-trainable state tensor listed by ``get_weights`` (e.g. BatchNorm moving stats)."""
        if self._build_device is not None:
            value = value.to(self._build_device)
        self.register_buffer(name, value)
        self._weight_perms[name] = None

    def _own_weight_tensors(self) -> list[tuple[str, torch.Tensor]]:
        out = []
        for name in self._weight_perms:
            tensor = getattr(self, name)
            if tensor is not None:
                out.append((name, tensor))
        return out

    def _ordered_weight_items(self) -> list[tuple[LayerState, str]]:
        """(layer, attribute) for this layer's weights, then those of nested layers, Keras order."""
        items: list[tuple[LayerState, str]] = [(self, n) for n in self._weight_perms]
        for child in child_layers(self):
            items.extend(child._ordered_weight_items())
        return items

    def get_weights(self) -> list[np.ndarray]:
        """Weights as NumPy arrays in Keras shapes and order.

        Keras lists each layer's weights in creation order (e.g. BatchNormalization: gamma, beta,
        moving_mean, moving_variance), then those of nested layers; freezing does not reorder them.
        """
        arrays = []
        for lay, n in self._ordered_weight_items():
            tensor = getattr(lay, n).detach()
            if hasattr(tensor, "full_tensor"):  # a DTensor shard (keras.distribution): gathered
                tensor = tensor.full_tensor()  # whole on every process (each calls get_weights)
            perm = lay._weight_perms[n]
            if perm is not None:
                tensor = tensor.permute(*np.argsort(perm).tolist())
            arrays.append(tensor.cpu().numpy().copy())
        return arrays

    def set_weights(self, weights: Sequence[Any]) -> None:
        """Load Keras-shaped arrays, in the order :meth:`get_weights` returns them."""
        ordered = self._ordered_weight_items()
        weights = list(weights)
        if len(weights) != len(ordered):
            raise ShapeError(f"Layer '{self.name}' expects {len(ordered)} weight arrays; "
                             f"received {len(weights)}")
        for (lay, n), value in zip(ordered, weights):
            target = getattr(lay, n)
            array = torch.as_tensor(np.asarray(value), dtype=target.dtype)
            perm = lay._weight_perms[n]
            expected = tuple(target.shape) if perm is None else tuple(
                target.shape[i] for i in np.argsort(perm))
            if tuple(array.shape) != expected:
                raise ShapeError(f"Layer '{lay.name}' weight '{n}': expected shape {expected}, "
                                 f"received {tuple(array.shape)}")
            if perm is not None:
                array = array.permute(*perm)
            if hasattr(target, "full_tensor"):  # a DTensor shard: this process keeps its slice
                from torch.distributed.tensor import distribute_tensor

                array = distribute_tensor(array.to(target.device).contiguous(), target.device_mesh,
                                          target.placements, src_data_rank=None)
            with torch.no_grad():
                target.copy_(array.to(target.device))

    def count_params(self) -> int:
        return sum(p.numel() for p in self.parameters()) + sum(
            getattr(lay, n).numel() for lay, n in self._ordered_weight_items()
            if not isinstance(getattr(lay, n), nn.Parameter))

    # ----------------------------------------------------------------------------- losses
    def regularization_losses(self) -> list[torch.Tensor]:
        """Penalties of kernel/bias regularizers and the last activity penalty, this layer and nested."""
        losses = []
        for module in self.modules():
            if not isinstance(module, LayerState):
                continue
            for name, reg in module._weight_regularizers.items():
                weight, perm = getattr(module, name), module._weight_perms.get(name)
                if perm is not None and getattr(reg, "keras_layout", False):
                    # a layout-dependent penalty (OrthogonalRegularizer) sees Keras's layout
                    weight = weight.permute(*np.argsort(perm).tolist())
                losses.append(reg(weight))
            if module._activity_loss is not None:
                losses.append(module._activity_loss)
        return losses

    def add_loss(self, loss: Any) -> None:
        """Add a loss tensor computed in ``call`` (Keras ``add_loss``): it joins the training loss
        and :attr:`losses` until the next outermost call clears it, as in Keras.

        Raises:
            InputTypeError: ``loss`` is not a number or a tensor.
        """
        if not isinstance(loss, torch.Tensor):
            try:
                loss = torch.as_tensor(float(loss))
            except (TypeError, ValueError):
                raise InputTypeError(f"Layer '{self.name}': add_loss() needs a scalar tensor or "
                                     f"number; received {type(loss).__name__}") from None
        added = self.__dict__.get("_added_losses")
        if added is None:
            added = []
            object.__setattr__(self, "_added_losses", added)
        if not added:
            LOSS_LAYERS.add(self)
        added.append(loss)

    def _clear_added_losses(self) -> None:
        for module in self.modules():
            if module in LOSS_LAYERS:
                module._added_losses.clear()
                LOSS_LAYERS.discard(module)

    @property
    def losses(self) -> list[torch.Tensor]:
        """``add_loss`` losses of the last call, then regularization penalties (this layer and
        nested ones)."""
        added = [loss for module in self.modules()
                 for loss in module.__dict__.get("_added_losses", ())] if LOSS_LAYERS else []
        return added + self.regularization_losses()

    # ----------------------------------------------------------------------------- weight lists
    def _all_weights(self) -> list[torch.Tensor]:
        items = [getattr(lay, n) for lay, n in self._ordered_weight_items()]
        seen = {id(t) for t in items}
        return items + [p for p in self.parameters() if id(p) not in seen]

    @property
    def weights(self) -> list[torch.Tensor]:
        """All weights (parameters and state such as BatchNorm moving statistics), Keras order."""
        return self._all_weights()

    @property
    def variables(self) -> list[torch.Tensor]:
        return self._all_weights()

    @property
    def trainable_weights(self) -> list[nn.Parameter]:
        return [w for w in self._all_weights()
                if isinstance(w, nn.Parameter) and w.requires_grad]

    @property
    def trainable_variables(self) -> list[nn.Parameter]:
        return self.trainable_weights

    @property
    def non_trainable_weights(self) -> list[torch.Tensor]:
        return [w for w in self._all_weights()
                if not (isinstance(w, nn.Parameter) and w.requires_grad)]

    @property
    def non_trainable_variables(self) -> list[torch.Tensor]:
        return self.non_trainable_weights
