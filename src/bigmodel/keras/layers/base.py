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

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import torch
from torch import nn

from bigmodel.errors import ConfigError, InputTypeError, ShapeError
from bigmodel.keras.layers import tracking
from bigmodel.keras.layers.call_context import (
    BASE_METHODS,
    CALL_DEPTH,
    CALL_TRAINING,
    DIRECT_ALLOWED,
    DIRECT_DISPATCH,
    DirectCalls,
    set_direct_allowed,
)
from bigmodel.keras.layers.call_signature import call_signature
from bigmodel.keras.layers.input_spec import InputSpec, assert_input_compatibility
from bigmodel.keras.layers.layer_registry import (
    LAYER_CLASSES,
    snake_case,
    unique_name,
)
from bigmodel.keras.layers.layer_state import LOSS_LAYERS, LayerState, child_layers
from bigmodel.keras.layers.symbolic import (
    Shape,
    checked_shape,
    flatten_symbolic,
    get_keras_mask,
    is_symbolic_shape_unknown,
    set_keras_mask,
)
from bigmodel.keras.layers.symbolic_calls import SymbolicCalls

_CONTAINER_TYPES = (list, tuple, dict, tracking.TrackedList, tracking.TrackedDict)


class Layer(DirectCalls, SymbolicCalls, LayerState, nn.Module):
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
    # Set by the ``input_spec`` setter: a class-level False keeps calls without a spec free of
    # any extra check (tests/test_keras_call_overhead.py counts the calls per batch).
    _has_input_spec: bool = False

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        LAYER_CLASSES[cls.__name__] = cls

    def __init__(self, *, name: str | None = None, trainable: bool = True, dtype: Any = None,
                 input_shape: Sequence[int | None] | None = None,
                 batch_input_shape: Sequence[int | None] | None = None,
                 input_dim: int | None = None, activity_regularizer: Any = None,
                 autocast: bool = True, **kwargs: Any):
        super().__init__()
        # Keras 3's flag for casting inputs to a mixed policy's compute dtype; here torch.autocast
        # (the engine's precision) casts inside the ops, so it is kept for configs only.
        self.autocast = bool(autocast)
        # Keras 3: a layer or model called without ``training=`` (and outside a call that gave
        # one) runs in inference mode; fit switches to training mode for its duration only.
        # (torch modules start in training mode; ``train()`` / ``eval()`` still set the mode.)
        self.training = False
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
        if name in self._FORGET_ON:
            self.__dict__.pop("_verified_inputs", None)  # the direct path's checks change
        if name in self.__dict__.get("_tracked_attrs", ()):
            self._untrack(name)
        if isinstance(value, nn.Parameter) and self._rename_auto_weight(name, value):
            return
        super().__setattr__(name, value)

    def __delattr__(self, name: str) -> None:
        if name in self._FORGET_ON:
            self.__dict__.pop("_verified_inputs", None)  # the direct path's checks change
        if name in self.__dict__.get("_tracked_attrs", ()):
            self._untrack(name)
            object.__delattr__(self, name)
            return
        super().__delattr__(name)

    def _set_tracked(self, name: str, value: Any) -> None:
        if name in self._FORGET_ON:
            self.__dict__.pop("_verified_inputs", None)  # the direct path's checks change
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

    @property
    def input_spec(self) -> Any:
        """``keras.InputSpec`` (or a list, one per input) checked on every call; None: none."""
        return self.__dict__.get("_input_spec")

    @input_spec.setter
    def input_spec(self, value: Any) -> None:
        specs = value if isinstance(value, (list, tuple)) else [value]
        if value is not None and not all(s is None or isinstance(s, InputSpec) for s in specs):
            raise ConfigError(f"Layer '{self.name}': `input_spec` must be a keras.InputSpec, a "
                              f"list of them, or None; received {value!r}")
        self.__dict__["_input_spec"] = value
        self.__dict__["_has_input_spec"] = bool(value)
        self.__dict__.pop("_verified_inputs", None)  # calls go through the checks again

    def _assert_input_spec(self, inputs: Any) -> None:
        assert_input_compatibility(self.__dict__.get("_input_spec"), inputs, self.name)

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
        if (self.input_ndim is not None and ndim != self.input_ndim) or (
                self.min_ndim is not None and ndim < self.min_ndim):
            expected = (f"expected ndim={self.input_ndim}" if self.input_ndim is not None
                        else f"expected min_ndim={self.min_ndim}")
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
            # weights are ordinary tensors even when the first call runs under inference_mode
            # (they could not be trained afterwards otherwise)
            with torch.inference_mode(False):
                self.build(tuple(shape))
            self.built = True
            self._build_device = None
            if self._runs_call_for_shape() and not is_symbolic_shape_unknown(shape) and any(
                    not layer.built for layer in child_layers(self)):
                self._shape_by_running(tuple(shape))  # Keras builds nested layers by calling

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        if len(args) == 1 and type(args[0]) is torch.Tensor and (
                not kwargs or (len(kwargs) == 1 and "training" in kwargs)):
            state = self.__dict__
            verified = state.get("_verified_inputs")
            if verified:  # the direct path (see _remember_input), written out: it runs per layer
                x = args[0]
                if (x.shape[1:], x.dtype, x.device, x.dim()) in verified and not (
                        state["_forward_hooks"] or state["_forward_pre_hooks"]
                        or state["_backward_hooks"] or state["_backward_pre_hooks"]
                        or "forward" in state or "_compiled_call_impl" in state
                        or getattr(x, "_keras_mask", None) is not None
                        or not (DIRECT_ALLOWED[0] if CALL_DEPTH[0] else set_direct_allowed())):
                    return self._call_direct(x, kwargs.get("training"))
        if not args or type(args[0]) is not torch.Tensor:  # an eager tensor is never symbolic
            if not args and kwargs:  # layer(inputs=x) or layer(x=x): the first argument by keyword
                first = call_signature(type(self)).first
                key = first if first in kwargs else "inputs" if "inputs" in kwargs else None
                if key is None:
                    raise InputTypeError(f"Layer '{self.name}' was called without inputs; "
                                         f"received only keyword arguments {sorted(kwargs)}")
                args = (kwargs.pop(key),)
            if args and flatten_symbolic(args[0]):
                if len(args) > 1:  # layer(x, y): the arguments after the inputs are replayed
                    return self._call_symbolic(args[0], *args[1:], **kwargs)
                return self._call_symbolic(args[0], **kwargs)
        if CALL_DEPTH[0] == 0:
            set_direct_allowed()
            if LOSS_LAYERS:
                self._clear_added_losses()  # an outermost call starts: add_loss values start afresh
        enclosing = CALL_TRAINING[0]
        training = kwargs.get("training")
        if training is None:
            training = self._default_training(enclosing)
            if training is not None:
                kwargs["training"] = training
        CALL_DEPTH[0] += 1
        CALL_TRAINING[0] = None if training is None else bool(training)
        try:
            return super().__call__(*args, **kwargs)
        finally:
            CALL_DEPTH[0] -= 1
            CALL_TRAINING[0] = enclosing

    def train(self, mode: bool = True) -> Layer:
        """torch's mode switch (``eval()`` calls it too); once given, a call without
        ``training=`` runs in this mode rather than in its ``call``'s default (see ``__call__``)."""
        self.__dict__["_mode_given"] = True
        return super().train(mode)

    def _runs_call_for_shape(self) -> bool:
        """A user-defined layer without ``compute_output_shape``: its output shape is found by
        running ``call`` (Keras traces ``call`` symbolically for the same purpose)."""
        cls = type(self)
        return (not cls.__module__.startswith("bigmodel.")
                and cls.compute_output_shape is Layer.compute_output_shape
                and cls.call is not Layer.call)

    def forward(self, inputs: Any, *args: Any, training: bool | None = None, **kwargs: Any) -> Any:
        if isinstance(inputs, np.ndarray):
            inputs = torch.as_tensor(inputs)
        if self._has_input_spec:
            self._assert_input_spec(inputs)
        if isinstance(inputs, torch.Tensor):
            if not self.built:
                self._maybe_build((None, *inputs.shape[1:]) if inputs.dim() else (), inputs.device)
            self._check_input_shape(inputs.shape)
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
                with torch.inference_mode(False):  # ordinary weights (see _maybe_build)
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
        # ``layer(a, b)``: arguments after the inputs fill call's next parameters, as in Keras
        filled = signature.positional[:len(args)] if args else ()
        plain = not args and not kwargs and mask is None and type(inputs) is torch.Tensor
        if signature.mask and "mask" not in filled:
            kwargs["mask"] = mask
        if signature.training and "training" not in filled:
            kwargs["training"] = training
        outputs = self.call(inputs, *args, **kwargs)
        if plain:
            self._remember_input(inputs)
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


DIRECT_DISPATCH.update((Layer.__call__, Layer.forward))
BASE_METHODS.update(forward=Layer.forward, compute_mask=Layer.compute_mask)
