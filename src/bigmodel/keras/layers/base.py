"""The Keras layer contract on ``torch.nn.Module``.

``__init__`` stores arguments -> ``build(input_shape)`` creates weights -> ``call`` computes ->
``get_config`` serializes. Shapes are Keras shapes: a tuple whose first entry is the batch size
(``None`` when unknown); images are channels-last ``(batch, height, width, channels)``.

Weights are stored in whatever layout PyTorch computes fastest with (e.g. a Conv2D kernel is
``(out, in, kh, kw)``), and ``add_weight(torch_perm=...)`` records how to turn the Keras layout into it,
so ``get_weights``/``set_weights`` speak Keras shapes and order and weights move between Keras and
bigmodel unchanged.
"""

from __future__ import annotations

import re
import weakref
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import torch
from torch import nn

from bigmodel.errors import ConfigError, InputTypeError, ShapeError, UnknownNameError
from bigmodel.keras.layers import tracking
from bigmodel.keras.variables import Variable

Shape = tuple  # (batch, ...) with None for unknown sizes

LAYER_CLASSES: dict[str, type[Layer]] = {}
_CONTAINER_TYPES = (list, tuple, dict, tracking.TrackedList, tracking.TrackedDict)
_NAME_COUNTS: dict[str, int] = {}


def snake_case(name: str) -> str:
    name = re.sub(r"(.)([A-Z][a-z]+)", r"\1_\2", name)
    return re.sub(r"([a-z])([A-Z])", r"\1_\2", name).lower()


def unique_name(prefix: str) -> str:
    """Keras-style automatic names: ``dense``, ``dense_1``, ``dense_2``, ..."""
    count = _NAME_COUNTS.get(prefix, 0)
    _NAME_COUNTS[prefix] = count + 1
    return prefix if count == 0 else f"{prefix}_{count}"


def reset_names() -> None:
    """Start automatic names again at ``dense``, ``dense_1``... (``keras.backend.clear_session``)."""
    _NAME_COUNTS.clear()


def get_layer_class(class_name: str) -> type[Layer]:
    try:
        return LAYER_CLASSES[class_name]
    except KeyError:
        known = ", ".join(sorted(LAYER_CLASSES))
        raise UnknownNameError(f"Unknown layer class '{class_name}'. Known layers: {known}") from None


def serialize_layer(layer: Layer) -> dict[str, Any]:
    return {"class_name": type(layer).__name__, "config": layer.get_config()}


def deserialize_layer(spec: dict[str, Any]) -> Layer:
    if not isinstance(spec, dict) or "class_name" not in spec:
        raise ConfigError(f"A layer spec must be a dict with 'class_name' and 'config'; received {spec!r}")
    return get_layer_class(spec["class_name"]).from_config(dict(spec.get("config", {})))


class KerasTensor:
    """A symbolic tensor of the functional API: a shape, and the layer call that produced it."""

    call_training: bool | None = None  # ``training=`` given explicitly at the symbolic call

    def __init__(self, shape: Shape, dtype: str = "float32", layer: Layer | None = None,
                 parents: Sequence[KerasTensor] = (), name: str | None = None,
                 output_index: int | None = None, call: object | None = None):
        self.shape = tuple(shape)
        self.dtype = dtype
        self.layer = layer
        self.parents = tuple(parents)
        self.name = name
        # A layer with several outputs (e.g. an RNN with return_state) gives one KerasTensor per
        # output; they share ``call`` (one layer call computes them all) and differ by index.
        self.output_index = output_index
        self.call = call

    @property
    def ndim(self) -> int:
        return len(self.shape)

    def __repr__(self) -> str:
        return f"<KerasTensor shape={self.shape}, dtype={self.dtype}, name={self.name}>"


class CallRecord:
    """A layer's first symbolic call (inputs and outputs). Copies and pickles of the layer do
    not carry it (it points into one graph), as a copied Keras layer has no inbound nodes."""

    def __init__(self, inputs: Any = None, outputs: Any = None) -> None:
        self.inputs, self.outputs = inputs, outputs

    def __deepcopy__(self, memo: dict) -> CallRecord:
        return CallRecord()

    def __reduce__(self) -> tuple:
        return (CallRecord, ())


def get_keras_mask(x: Any) -> Any:
    """The mask a layer attached to ``x`` (``None`` when there is none); a list for a list input.

    Masks follow Keras 3: a layer that produces one (``Embedding(mask_zero=True)``, ``Masking``)
    attaches a boolean ``(batch, timesteps)`` tensor to its output as ``output._keras_mask``; the
    next layer receives it as ``call(..., mask=...)`` when its ``call`` has a ``mask`` argument.
    """
    if isinstance(x, (list, tuple)):
        masks = [get_keras_mask(t) for t in x]
        return None if all(m is None for m in masks) else masks
    return getattr(x, "_keras_mask", None) if isinstance(x, torch.Tensor) else None


def set_keras_mask(x: Any, mask: Any) -> None:
    """Attach ``mask`` to tensor ``x`` (element-wise when both are lists); ``None`` detaches."""
    if isinstance(x, (list, tuple)):
        masks = list(mask) if isinstance(mask, (list, tuple)) else [mask] * len(x)
        for tensor, item in zip(x, masks):
            set_keras_mask(tensor, item)
    elif isinstance(x, torch.Tensor):
        x._keras_mask = mask


def call_takes_mask(cls: type) -> bool:
    """Whether ``cls.call`` has a ``mask`` parameter (cached per class)."""
    return call_signature(cls).mask


def is_shape_list(shape: Any) -> bool:
    """True for a list of shapes (several tensors), False for one shape (a tuple of sizes)."""
    return (isinstance(shape, (list, tuple)) and len(shape) > 0
            and isinstance(shape[0], (list, tuple)))


def checked_shape(shape: Any, argument: str, where: str, batch: bool = False) -> tuple:
    """``shape`` as a tuple after checking each size is a positive integer or ``None``.

    Args:
        shape: the sizes as given (``input_shape=(28, 28)``); an int means a 1-tuple.
        argument: the argument's name for the message (``"input_shape"``).
        where: who received it (``"Layer 'dense' (Dense)"``).
        batch: ``shape`` starts with the batch axis (``batch_input_shape``), which may be ``None``.

    Raises:
        ConfigError: not a sequence of sizes, or a size that is negative, zero or not an integer.
    """
    if isinstance(shape, (int, np.integer)) and not isinstance(shape, bool):
        shape = (shape,)
    if not isinstance(shape, (list, tuple)):
        raise ConfigError(f"{where}: {argument} must be a tuple of sizes; received "
                          f"{argument}={shape!r} ({type(shape).__name__})")
    for size in shape:
        if size is None:
            continue
        if isinstance(size, bool) or not isinstance(size, (int, np.integer)) or size < 1:
            raise ConfigError(f"{where}: every size in {argument} must be a positive integer or "
                              f"None{' (the batch axis)' if batch else ''}; received "
                              f"{argument}={tuple(shape)!r}")
    return tuple(None if size is None else int(size) for size in shape)


def flatten_symbolic(args: Any) -> list[KerasTensor]:
    if isinstance(args, KerasTensor):
        return [args]
    if isinstance(args, (list, tuple)):
        return [t for a in args for t in flatten_symbolic(a)]
    return []


def child_layers(module: nn.Module) -> list[Layer]:
    """Nearest Layer descendants, looking through plain containers such as ``nn.ModuleList`` and
    tracked lists/dicts; each layer once (one layer may be held in two attributes)."""
    found: list[Layer] = []
    seen: set[int] = set()
    for child in module.children():
        for layer in [child] if isinstance(child, Layer) else child_layers(child):
            if id(layer) not in seen:
                seen.add(id(layer))
                found.append(layer)
    return found


def _is_symbolic_shape_unknown(shape: Any) -> bool:
    return not isinstance(shape, (list, tuple)) or len(shape) == 0


class _CallSignature:
    """What ``call`` accepts (Keras inspects it once per class): ``training``, ``mask``, and the
    name of its first argument (for ``layer(inputs=x)`` / ``layer(x=x)`` keyword calls)."""

    __slots__ = ("first", "mask", "training")

    def __init__(self, fn: Callable) -> None:
        import inspect

        params = list(inspect.signature(fn).parameters.values())[1:]  # drop self
        var_kw = any(p.kind is p.VAR_KEYWORD for p in params)
        names = {p.name for p in params}
        self.training = var_kw or "training" in names
        self.mask = "mask" in names
        positional = [p for p in params if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
        self.first = positional[0].name if positional else None


_CALL_SIGNATURES: dict[type, _CallSignature] = {}


def call_signature(cls: type) -> _CallSignature:
    """The :class:`_CallSignature` of ``cls.call`` (cached per class)."""
    known = _CALL_SIGNATURES.get(cls)
    if known is None:
        known = _CALL_SIGNATURES[cls] = _CallSignature(cls.call)
    return known


# add_loss bookkeeping: layers holding losses from their last call, and how deep we are in nested
# layer calls (losses are cleared when an outermost call starts, as in Keras).
LOSS_LAYERS: weakref.WeakSet = weakref.WeakSet()
_CALL_DEPTH = [0]


class Layer(nn.Module):
    """Base class of every Keras-surface layer.

    Subclasses implement ``build(input_shape)`` (create weights with :meth:`add_weight`, then call
    ``super().build(input_shape)``), ``call(inputs, training=False)`` and
    ``compute_output_shape(input_shape)``, and extend ``get_config``.

    Class attributes ``input_ndim`` / ``min_ndim`` declare the rank the layer accepts; after build,
    ``self.input_axes = {axis: size}`` pins the sizes later inputs must have.
    """

    input_ndim: int | None = None
    min_ndim: int | None = None
    #: Masks (Keras 3 semantics): a layer that passes an incoming timestep mask through unchanged
    #: sets ``supports_masking = True``; one that makes or changes a mask overrides
    #: :meth:`compute_mask`; one that uses the mask declares ``call(self, inputs, ..., mask=None)``.
    supports_masking: bool = False

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        LAYER_CLASSES[cls.__name__] = cls

    def __init__(self, *, name: str | None = None, trainable: bool = True, dtype: Any = None,
                 input_shape: Sequence[int | None] | None = None,
                 batch_input_shape: Sequence[int | None] | None = None,
                 input_dim: int | None = None, activity_regularizer: Any = None,
                 **kwargs: Any):
        super().__init__()
        if kwargs:
            raise ConfigError(
                f"Unrecognized keyword arguments passed to {type(self).__name__}: {kwargs}")
        from bigmodel.keras import regularizers

        self._layer_name = name or unique_name(snake_case(type(self).__name__))
        self._trainable = bool(trainable)
        self.built = False
        self.input_axes: dict[int, int] = {}
        from bigmodel.keras import mixed_precision

        # A dtype policy (or its name) sets the compute dtype; weights stay float32.
        policy_given = isinstance(dtype, (mixed_precision.DTypePolicy, dict)) or (
            isinstance(dtype, str) and dtype.startswith("mixed_"))
        if not policy_given and dtype not in (None, "float32", torch.float32):
            raise ConfigError(f"Layer '{self._layer_name}': only dtype float32 is supported "
                              f"for weights; received dtype={dtype!r} (use the engine's precision)")
        self._dtype_policy = mixed_precision.get(dtype if policy_given else
                                                 ("float32" if dtype is not None else None))
        where = f"Layer '{self._layer_name}' ({type(self).__name__})"
        if batch_input_shape is not None:
            self._declared_input_shape: Shape | None = checked_shape(
                batch_input_shape, "batch_input_shape", where, batch=True)
        elif input_shape is not None:
            self._declared_input_shape = (None, *checked_shape(input_shape, "input_shape", where))
        elif input_dim is not None:
            self._declared_input_shape = (None, *checked_shape(input_dim, "input_dim", where))
        else:
            self._declared_input_shape = None
        self.activity_regularizer = regularizers.get(activity_regularizer)
        self._weight_perms: dict[str, tuple[int, ...] | None] = {}
        self._weight_regularizers: dict[str, Callable[[torch.Tensor], torch.Tensor]] = {}
        self._activity_loss: torch.Tensor | None = None
        self._build_device: torch.device | None = None

    # ----------------------------------------------------------------------------- identity
    @property
    def name(self) -> str:
        return self._layer_name

    @property
    def dtype_policy(self) -> Any:
        """The layer's ``keras.mixed_precision.DTypePolicy`` (the global one at construction)."""
        return self._dtype_policy

    @property
    def compute_dtype(self) -> str:
        return self._dtype_policy.compute_dtype

    @property
    def variable_dtype(self) -> str:
        return self._dtype_policy.variable_dtype

    @property
    def trainable(self) -> bool:
        return self._trainable

    @trainable.setter
    def trainable(self, value: bool) -> None:
        self._trainable = bool(value)
        for module in self.modules():
            if isinstance(module, Layer) and module is not self:
                module._trainable = bool(value)
        # A weight created with add_weight(trainable=False) stays frozen when its layer is
        # made trainable again (Keras: a weight trains when it and its layer are trainable).
        fixed = {id(getattr(m, n)) for m in self.modules() if isinstance(m, Layer)
                 for n in getattr(m, "_fixed_weights", ())}
        for param in self.parameters():
            param.requires_grad_(bool(value) and id(param) not in fixed)

    def set_trainable_flag(self, value: bool) -> None:
        """Set this layer's own ``trainable`` flag only: its weights and sub-layers are left as
        they are. The protocol through which ``bigmodel.transfer`` (which freezes weights one by
        one) tells a layer, e.g. ``BatchNormalization``, whether it is being trained."""
        self._trainable = bool(value)

    # ----------------------------------------------------------------------------- tracking
    def __setattr__(self, name: str, value: Any) -> None:
        # Keras tracks layers and weights held in lists, tuples and dicts (layers/tracking.py).
        if type(value) in _CONTAINER_TYPES and "_modules" in self.__dict__ \
                and tracking.should_track(name, value):
            self._set_tracked(name, value)
            return
        if name in self.__dict__.get("_tracked_attrs", ()):
            self._untrack(name)
        if isinstance(value, nn.Parameter) and self._rename_auto_weight(name, value):
            return
        super().__setattr__(name, value)

    def __delattr__(self, name: str) -> None:
        if name in self.__dict__.get("_tracked_attrs", ()):
            self._untrack(name)
            object.__delattr__(self, name)
            return
        super().__delattr__(name)

    def _set_tracked(self, name: str, value: Any) -> None:
        if name in self.__dict__.get("_tracked_attrs", ()):
            self._untrack(name)
        for registry in (self._parameters, self._buffers, self._modules):
            registry.pop(name, None)
        wrapped = tracking.wrap(value, lambda: self._sync_tracked(name))
        object.__setattr__(self, name, wrapped)
        self.__dict__.setdefault("_tracked_attrs", set()).add(name)
        self._sync_tracked(name)

    def _sync_tracked(self, name: str) -> None:
        """Register the modules/parameters now held in tracked attribute ``name``."""
        container = tracking.TrackedModules()
        for path, item in tracking.iter_trackables(self.__dict__.get(name)):
            if isinstance(item, nn.Parameter):
                container.register_parameter(path, item)
            elif item is not self:
                container.add_module(path, item)
        if container._modules or container._parameters:
            self._modules[name] = container
        else:
            self._modules.pop(name, None)

    def _untrack(self, name: str) -> None:
        old = self.__dict__.get(name)
        if isinstance(old, (tracking.TrackedList, tracking.TrackedDict)):
            old._on_change = None
        self._modules.pop(name, None)
        self.__dict__["_tracked_attrs"].discard(name)

    def _rename_auto_weight(self, name: str, value: nn.Parameter) -> bool:
        """``self.w = self.add_weight(shape=...)``: the unnamed weight takes the name ``w``
        (one registration, in creation order) instead of being registered twice."""
        auto = self.__dict__.get("_auto_weight_names")
        if not auto or name in self._parameters or name in self.__dict__:
            return False
        old = next((n for n in auto if self._parameters.get(n) is value), None)
        if old is None:
            return False
        for table in (self._parameters, self._weight_perms, self._weight_regularizers):
            if old in table:
                items = [(name if k == old else k, v) for k, v in table.items()]
                table.clear()
                table.update(items)
        fixed = self.__dict__.get("_fixed_weights")
        if fixed and old in fixed:
            fixed.discard(old)
            fixed.add(name)
        auto.discard(old)
        return True

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

    def _ordered_weight_items(self) -> list[tuple[Layer, str]]:
        """(layer, attribute) for this layer's weights, then those of nested layers, Keras order."""
        items: list[tuple[Layer, str]] = [(self, n) for n in self._weight_perms]
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
            if not isinstance(module, Layer):
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

    # ----------------------------------------------------------------------------- build / call
    def build(self, input_shape: Shape) -> None:
        self.built = True

    def call(self, inputs: Any, training: bool = False) -> Any:  # pragma: no cover - abstract
        raise NotImplementedError(f"{type(self).__name__}.call")

    def compute_output_shape(self, input_shape: Shape) -> Shape:
        if self._runs_call_for_shape():
            return self._shape_by_running(input_shape)
        return tuple(input_shape)

    def accepts_nchw(self) -> bool:
        """Whether ``call_nchw(x_nchw, training=...)`` computes ``call`` on an NCHW view of a
        channels-last input (see ``keras/direct_call.py``); plain layers: no."""
        return False

    def compute_mask(self, inputs: Any, mask: Any = None) -> Any:
        """The mask of this layer's output, given its inputs and their mask (Keras signature).

        Default: the incoming mask when ``supports_masking``, else ``None`` (the mask stops here).
        """
        return mask if self.supports_masking else None

    def _attach_output_mask(self, inputs: Any, outputs: Any, mask: Any) -> None:
        """Set the output's ``_keras_mask`` after ``call`` (see :func:`get_keras_mask`)."""
        makes_mask = type(self).compute_mask is not Layer.compute_mask
        if self.supports_masking or makes_mask:
            output_mask = self.compute_mask(inputs, mask)
            if output_mask is not None:
                set_keras_mask(outputs, output_mask)
        elif mask is not None and not getattr(self, "_mask_warned", False):
            import warnings

            self._mask_warned = True
            warnings.warn(f"Layer '{self.name}' ({type(self).__name__}) was passed an input with a "
                          "mask attached to it, but it does not support masking: the mask stops "
                          "here and later layers will not see it", stacklevel=3)

    def _check_input_shape(self, shape: Shape) -> None:
        ndim = len(shape)
        expected = (f"expected ndim={self.input_ndim}" if self.input_ndim is not None
                    else f"expected min_ndim={self.min_ndim}")
        if (self.input_ndim is not None and ndim != self.input_ndim) or (
                self.min_ndim is not None and ndim < self.min_ndim):
            raise ShapeError(
                f"Input 0 of layer '{self.name}' ({type(self).__name__}) is incompatible with the "
                f"layer: {expected}, found ndim={ndim}. Full shape received: {tuple(shape)}")
        for axis, size in self.input_axes.items():
            got = shape[axis]
            if got is not None and got != size:
                raise ShapeError(
                    f"Input 0 of layer '{self.name}' ({type(self).__name__}) is incompatible with "
                    f"the layer: expected axis {axis} of input shape to have value {size}, but "
                    f"received input with shape {tuple(shape)}")

    def _maybe_build(self, shape: Shape, device: torch.device | None = None) -> None:
        if not self.built:
            self._check_input_shape(shape)
            self._build_device = device
            self.build(tuple(shape))
            self.built = True
            self._build_device = None
            if self._runs_call_for_shape() and not _is_symbolic_shape_unknown(shape) and any(
                    not layer.built for layer in child_layers(self)):
                self._shape_by_running(tuple(shape))  # Keras builds nested layers by calling

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        if not args and kwargs:  # layer(inputs=x) or layer(x=x): the first argument by keyword
            first = call_signature(type(self)).first
            key = first if first in kwargs else "inputs" if "inputs" in kwargs else None
            if key is None:
                raise InputTypeError(f"Layer '{self.name}' was called without inputs; received "
                                     f"only keyword arguments {sorted(kwargs)}")
            args = (kwargs.pop(key),)
        symbolic = flatten_symbolic(args[0]) if args else []
        if symbolic:
            return self._call_symbolic(args[0], **kwargs)
        if _CALL_DEPTH[0] == 0 and LOSS_LAYERS:
            self._clear_added_losses()  # an outermost call starts: add_loss values start afresh
        _CALL_DEPTH[0] += 1
        try:
            return super().__call__(*args, **kwargs)
        finally:
            _CALL_DEPTH[0] -= 1

    def _runs_call_for_shape(self) -> bool:
        """A user-defined layer without ``compute_output_shape``: its output shape is found by
        running ``call`` (Keras traces ``call`` symbolically for the same purpose)."""
        cls = type(self)
        return (not cls.__module__.startswith("bigmodel.")
                and cls.compute_output_shape is Layer.compute_output_shape
                and cls.call is not Layer.call)

    def _shape_by_running(self, shape: Any) -> Any:
        """Output shape of ``call`` on zeros of ``shape``; a ``None`` axis stays ``None`` when the
        output's size changes with it (two runs with different sizes)."""
        def run(fill: int) -> Any:
            def zeros(one: Any) -> torch.Tensor:
                return torch.zeros([1 if i == 0 else fill if d is None else int(d)
                                    for i, d in enumerate(one)])
            x = [zeros(t) for t in shape] if is_shape_list(shape) else zeros(shape)
            was_training = self.training
            # Losses this trial run adds (add_loss) are dropped again afterwards.
            counts = {id(m): len(m.__dict__.get("_added_losses", ())) for m in self.modules()}
            self.eval()
            try:
                with torch.no_grad():
                    try:
                        out = self.forward(x, training=False)
                    except Exception:
                        # A call that needs the mask its input carries in the graph (the masking
                        # guide's TemporalSoftmax asserts one): try again with an all-True mask,
                        # timesteps = every axis but the features.
                        if not (call_signature(type(self)).mask and isinstance(x, torch.Tensor)):
                            raise
                        mask = torch.ones(x.shape[:-1] if x.dim() >= 3 else x.shape,
                                          dtype=torch.bool)
                        out = self.forward(x, training=False, mask=mask)
            finally:
                self.train(was_training)
                for module in self.modules():
                    added = module.__dict__.get("_added_losses")
                    if added:
                        del added[counts.get(id(module), 0):]
            if isinstance(out, (list, tuple)):
                return [tuple(o.shape) for o in out]
            return tuple(out.shape)

        key = repr(shape)
        cache = self.__dict__.setdefault("_shape_cache", {})
        if key in cache:
            return cache[key]
        first = run(3)
        dynamic = any(d is None for one in (shape if is_shape_list(shape) else [shape])
                      for d in list(one)[1:])
        second = run(5) if dynamic else first

        def merge(a: tuple, b: tuple) -> tuple:
            return (None, *[x if x == y else None for x, y in zip(a[1:], b[1:])])
        result = ([merge(a, b) for a, b in zip(first, second)] if isinstance(first, list)
                  else merge(first, second))
        cache[key] = result
        return result

    def _call_symbolic(self, inputs: Any, **kwargs: Any) -> KerasTensor:
        shape = inputs.shape if isinstance(inputs, KerasTensor) else [t.shape for t in inputs]
        if isinstance(inputs, KerasTensor):
            self._maybe_build(shape)
            self._check_input_shape(shape)
        elif not self.built:
            self.build(shape)
            self.built = True
        out_shape = self.compute_output_shape(shape)
        parents = flatten_symbolic(inputs)
        if is_shape_list(out_shape):  # several outputs: one KerasTensor each, one shared call
            call = object()
            outputs = [KerasTensor(part, layer=self, parents=parents, name=self.name,
                                   output_index=index, call=call)
                       for index, part in enumerate(out_shape)]
        else:
            outputs = [KerasTensor(out_shape, layer=self, parents=parents, name=self.name)]
        # Keras: ``layer(x, training=False)`` in a functional graph pins that call's mode (e.g. a
        # frozen base model's BatchNormalization stays in inference mode after unfreezing).
        training = kwargs.get("training")
        for output in outputs:
            output.call_training = None if training is None else bool(training)
        result = outputs if is_shape_list(out_shape) else outputs[0]
        if "_first_call" not in self.__dict__:  # Keras's node 0: what layer.input/.output read
            self.__dict__["_first_call"] = CallRecord(inputs, result)
        return result

    @property
    def input(self) -> Any:
        """The symbolic input of this layer's first call in a functional graph (Keras 3)."""
        return self._first_symbolic_call("input").inputs

    @property
    def output(self) -> Any:
        """The symbolic output of this layer's first call in a functional graph (Keras 3): a
        ``KerasTensor``, or a list of them for a layer with several outputs."""
        return self._first_symbolic_call("output").outputs

    def _first_symbolic_call(self, what: str) -> CallRecord:
        record = self.__dict__.get("_first_call")
        if record is None or record.outputs is None:
            raise AttributeError(f"The layer {self.name} has never been called on a symbolic "
                                 f"input (keras.Input) and thus has no defined {what}")
        return record

    def forward(self, inputs: Any, training: bool | None = None, **kwargs: Any) -> Any:
        if isinstance(inputs, np.ndarray):
            inputs = torch.as_tensor(inputs)
        if isinstance(inputs, torch.Tensor):
            shape = (None, *inputs.shape[1:]) if inputs.dim() else ()
            if not self.built:
                self._maybe_build(shape, inputs.device)
            self._check_input_shape(tuple(inputs.shape))
        elif not isinstance(inputs, (list, tuple, dict)):
            raise InputTypeError(f"Layer '{self.name}' expects a tensor or array input; "
                                 f"received {type(inputs).__name__}")
        elif not self.built:
            def shape_of(t: Any) -> Any:
                return (None, *t.shape[1:]) if isinstance(t, torch.Tensor) and t.dim() else None
            leaves = list(inputs.values()) if isinstance(inputs, dict) else list(inputs)
            device = next((t.device for t in leaves if isinstance(t, torch.Tensor)), None)
            self._build_device = device
            try:
                self.build({k: shape_of(t) for k, t in inputs.items()}
                           if isinstance(inputs, dict) else [shape_of(t) for t in inputs])
            finally:
                self._build_device = None
            self.built = True
        if training is None:
            training = self.training
        # The incoming mask: given explicitly, or attached to the inputs by the previous layer.
        mask = kwargs.pop("mask") if "mask" in kwargs else get_keras_mask(inputs)
        # Keras passes ``training``/``mask`` only to a ``call`` that declares them.
        signature = call_signature(type(self))
        if signature.mask:
            kwargs["mask"] = mask
        if signature.training:
            kwargs["training"] = training
        outputs = self.call(inputs, **kwargs)
        if self.activity_regularizer is not None and isinstance(outputs, torch.Tensor):
            # Keras divides the activity penalty by the batch size.
            self._activity_loss = self.activity_regularizer(outputs) / outputs.shape[0]
        if mask is not None or type(self).compute_mask is not Layer.compute_mask:
            self._attach_output_mask(inputs, outputs, mask)
        return outputs

    # ----------------------------------------------------------------------------- config
    def get_config(self) -> dict[str, Any]:
        from bigmodel.keras import regularizers

        config: dict[str, Any] = {"name": self.name, "trainable": self.trainable}
        if self._declared_input_shape is not None:
            config["batch_input_shape"] = list(self._declared_input_shape)
        if self.activity_regularizer is not None:
            config["activity_regularizer"] = regularizers.serialize(self.activity_regularizer)
        return config

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> Layer:
        return cls(**config)

    def extra_repr(self) -> str:
        return f"name={self.name!r}"
