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
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import torch
from torch import nn

from bigmodel.errors import ConfigError, InputTypeError, ShapeError, UnknownNameError

Shape = tuple  # (batch, ...) with None for unknown sizes

_LAYER_CLASSES: dict[str, type[Layer]] = {}
_NAME_COUNTS: dict[str, int] = {}


def _snake(name: str) -> str:
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
        return _LAYER_CLASSES[class_name]
    except KeyError:
        known = ", ".join(sorted(_LAYER_CLASSES))
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


_CALL_TAKES_MASK: dict[type, bool] = {}


def _call_takes_mask(cls: type) -> bool:
    """Whether ``cls.call`` has a ``mask`` parameter (cached per class)."""
    known = _CALL_TAKES_MASK.get(cls)
    if known is None:
        import inspect

        known = "mask" in inspect.signature(cls.call).parameters
        _CALL_TAKES_MASK[cls] = known
    return known


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


def _flatten_symbolic(args: Any) -> list[KerasTensor]:
    if isinstance(args, KerasTensor):
        return [args]
    if isinstance(args, (list, tuple)):
        return [t for a in args for t in _flatten_symbolic(a)]
    return []


def _child_layers(module: nn.Module) -> list[Layer]:
    """Nearest Layer descendants, looking through plain containers such as ``nn.ModuleList``."""
    found: list[Layer] = []
    for child in module.children():
        if isinstance(child, Layer):
            found.append(child)
        else:
            found.extend(_child_layers(child))
    return found


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
        _LAYER_CLASSES[cls.__name__] = cls

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

        self._layer_name = name or unique_name(_snake(type(self).__name__))
        self._trainable = bool(trainable)
        self.built = False
        self.input_axes: dict[int, int] = {}
        if dtype not in (None, "float32", torch.float32):
            raise ConfigError(f"Layer '{self._layer_name}': only dtype float32 is supported "
                              f"for weights; received dtype={dtype!r} (use the engine's precision)")
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

    # ----------------------------------------------------------------------------- weights
    def add_weight(self, name: str, shape: Sequence[int], initializer: Any = "glorot_uniform",
                   regularizer: Any = None, trainable: bool = True,
                   torch_perm: Sequence[int] | None = None,
                   constraint: Any = None) -> nn.Parameter:
        """Create a weight of Keras shape ``shape`` and register it as parameter ``name``.

        The initializer sees the Keras shape (so fan-in/fan-out match Keras); ``torch_perm`` then
        permutes it into the stored layout. Weights are listed by :meth:`get_weights` in creation
        order, like Keras.
        """
        from bigmodel.keras import initializers, regularizers

        init = initializers.get(initializer)
        value = init(tuple(int(s) for s in shape))
        if torch_perm is not None:
            value = value.permute(*torch_perm).contiguous()
        if self._build_device is not None:
            value = value.to(self._build_device)
        param = nn.Parameter(value, requires_grad=bool(trainable) and self._trainable)
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
        for child in _child_layers(self):
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
                losses.append(reg(getattr(module, name)))
            if module._activity_loss is not None:
                losses.append(module._activity_loss)
        return losses

    @property
    def losses(self) -> list[torch.Tensor]:
        return self.regularization_losses()

    # ----------------------------------------------------------------------------- build / call
    def build(self, input_shape: Shape) -> None:
        self.built = True

    def call(self, inputs: Any, training: bool = False) -> Any:  # pragma: no cover - abstract
        raise NotImplementedError(f"{type(self).__name__}.call")

    def compute_output_shape(self, input_shape: Shape) -> Shape:
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

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        symbolic = _flatten_symbolic(args[0]) if args else []
        if symbolic:
            return self._call_symbolic(args[0], **kwargs)
        return super().__call__(*args, **kwargs)

    def _call_symbolic(self, inputs: Any, **kwargs: Any) -> KerasTensor:
        shape = inputs.shape if isinstance(inputs, KerasTensor) else [t.shape for t in inputs]
        if isinstance(inputs, KerasTensor):
            self._maybe_build(shape)
            self._check_input_shape(shape)
        elif not self.built:
            self.build(shape)
            self.built = True
        out_shape = self.compute_output_shape(shape)
        parents = _flatten_symbolic(inputs)
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
        return outputs if is_shape_list(out_shape) else outputs[0]

    def forward(self, inputs: Any, training: bool | None = None, **kwargs: Any) -> Any:
        if isinstance(inputs, np.ndarray):
            inputs = torch.as_tensor(inputs)
        if isinstance(inputs, torch.Tensor):
            shape = (None, *inputs.shape[1:]) if inputs.dim() else ()
            if not self.built:
                self._maybe_build(shape, inputs.device)
            self._check_input_shape(tuple(inputs.shape))
        elif not isinstance(inputs, (list, tuple)):
            raise InputTypeError(f"Layer '{self.name}' expects a tensor or array input; "
                                 f"received {type(inputs).__name__}")
        elif not self.built:
            self.build([(None, *t.shape[1:]) for t in inputs])
            self.built = True
        if training is None:
            training = self.training
        # The incoming mask: given explicitly, or attached to the inputs by the previous layer.
        mask = kwargs.pop("mask") if "mask" in kwargs else get_keras_mask(inputs)
        if _call_takes_mask(type(self)):
            kwargs["mask"] = mask
        outputs = self.call(inputs, training=training, **kwargs)
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
