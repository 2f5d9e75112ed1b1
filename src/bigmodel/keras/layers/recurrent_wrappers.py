"""Sequence wrappers and masks: ``Bidirectional``, ``TimeDistributed``, ``Masking``."""

from __future__ import annotations

from typing import Any

import torch

from bigmodel.errors import ConfigError, InputTypeError, ShapeError, describe
from bigmodel.keras.layers.base import Layer
from bigmodel.keras.layers.call_context import DIRECT_DISPATCH, direct_calls_allowed
from bigmodel.keras.layers.call_signature import call_takes_mask
from bigmodel.keras.layers.core import PreActivationMixin, cast_inputs
from bigmodel.keras.layers.layer_registry import deserialize_layer, serialize_layer
from bigmodel.keras.layers.recurrent import GRU, LSTM, SimpleRNN, call_with_initial_state
from bigmodel.keras.layers.symbolic import Shape, is_shape_list
from bigmodel.nn.recurrent_kernels import fused, torch_weights

__all__ = ["Bidirectional", "Masking", "TimeDistributed"]

_MERGE_MODES = ("sum", "mul", "ave", "concat", None)
# Recurrent layers whose two directions one bidirectional fused op computes (exact classes: a
# subclass may change ``call``).
_FUSED_PAIRS = (LSTM, GRU, SimpleRNN)


def _hooks_or_tracing(*layers: Layer) -> bool:
    """A hook would see the directions' own calls, a tracer or compiler their ops: keep them."""
    return bool(
        not direct_calls_allowed() or torch.compiler.is_exporting()
        or any(layer._forward_hooks or layer._forward_pre_hooks or layer._backward_hooks
               or layer._backward_pre_hooks or "forward" in layer.__dict__
               or "call" in layer.__dict__ for layer in layers))


def _renamed_copy(layer: Layer, prefix: str, **changes: Any) -> Layer:
    """A fresh layer from ``layer``'s config (new weights), named ``prefix + name``."""
    spec = serialize_layer(layer)
    config = dict(spec["config"])
    name = config.get("name", layer.name)
    config["name"] = prefix + name.removeprefix(prefix)
    config.update(changes)
    return deserialize_layer({"class_name": spec["class_name"], "config": config})


class Bidirectional(Layer):
    """Runs a recurrent layer forwards and a copy backwards and merges the two outputs.

    Args:
        layer: an RNN layer (``LSTM``, ``GRU``, ``SimpleRNN``); a fresh copy (new weights) becomes
            the forward layer.
        merge_mode: ``"concat"`` (default), ``"sum"``, ``"mul"``, ``"ave"`` or ``None`` (a list of
            the two outputs).
        backward_layer: optional layer for the backward direction (must have
            ``go_backwards`` different from ``layer``'s); default: a copy with ``go_backwards=True``.
        weights: optional initial weights (forward layer's, then backward layer's).

    With ``return_sequences`` the backward output is flipped back to the input's time order and
    masked steps output zeros (Keras forces ``zero_output_for_mask``). ``return_state`` appends the
    forward states then the backward states. ``initial_state`` is split in two halves the same way.
    Weights are listed forward layer first, as in Keras.
    """

    supports_masking = True

    def __init__(self, layer: Layer, merge_mode: str | None = "concat", weights: Any = None,
                 backward_layer: Layer | None = None, **kwargs: Any):
        if not isinstance(layer, Layer):
            raise ConfigError(f"Please initialize `Bidirectional` layer with a Keras layer "
                              f"instance. Received: {layer!r}")
        if backward_layer is not None and not isinstance(backward_layer, Layer):
            raise ConfigError(f"`backward_layer` needs to be a Keras layer instance. Received: "
                              f"{backward_layer!r}")
        if merge_mode not in _MERGE_MODES:
            raise ConfigError(f"Invalid merge mode. Received: {merge_mode!r}. Merge mode should "
                              "be one of 'sum', 'mul', 'ave', 'concat', None")
        for attribute in ("go_backwards", "return_sequences", "return_state", "stateful"):
            if not hasattr(layer, attribute):
                raise ConfigError(f"Bidirectional needs a recurrent layer (with `{attribute}`); "
                                  f"received {type(layer).__name__} '{layer.name}'")
        super().__init__(**kwargs)
        self.forward_layer = _renamed_copy(layer, "forward_")
        if backward_layer is None:
            self.backward_layer = _renamed_copy(layer, "backward_", go_backwards=True)
        else:
            self.backward_layer = backward_layer
        self._verify_layers()
        for child in (self.forward_layer, self.backward_layer):
            if hasattr(child, "zero_output_for_mask"):
                child.zero_output_for_mask = child.return_sequences
        self.merge_mode = merge_mode
        self.return_sequences = self.forward_layer.return_sequences
        self.return_state = self.forward_layer.return_state
        self.stateful = self.forward_layer.stateful
        self._initial_weights = list(weights) if weights is not None else None
        declared = getattr(layer, "_declared_input_shape", None)
        if self._declared_input_shape is None and declared is not None:
            self._declared_input_shape = declared

    def _verify_layers(self) -> None:
        forward, backward = self.forward_layer, self.backward_layer
        if forward.go_backwards == backward.go_backwards:
            raise ConfigError("Forward layer and backward layer should have different "
                              f"`go_backwards` value. Received: forward_layer.go_backwards="
                              f"{forward.go_backwards}, backward_layer.go_backwards="
                              f"{backward.go_backwards}")
        for attribute in ("stateful", "return_sequences", "return_state"):
            if getattr(forward, attribute) != getattr(backward, attribute):
                raise ConfigError(f"Forward layer and backward layer are expected to have the "
                                  f"same value for attribute '{attribute}', got "
                                  f"{getattr(forward, attribute)} for the forward layer and "
                                  f"{getattr(backward, attribute)} for the backward layer")

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return call_with_initial_state(super().__call__, args, kwargs)

    def build(self, input_shape: Shape) -> None:
        shape = tuple(input_shape[0]) if is_shape_list(input_shape) else tuple(input_shape)
        for child in (self.forward_layer, self.backward_layer):
            if not child.built:
                child._maybe_build(shape, self._build_device)
        super().build(input_shape)
        if self._initial_weights is not None:
            weights, self._initial_weights = self._initial_weights, None
            self.set_weights(weights)

    def _check_input_shape(self, shape: Shape) -> None:
        self.forward_layer._check_input_shape(shape)

    def call(self, inputs: Any, training: bool = False, mask: Any = None,
             initial_state: Any = None) -> Any:
        if isinstance(inputs, (list, tuple)):  # [sequences, *states] from the functional API
            inputs, initial_state = inputs[0], list(inputs[1:]) or None
        forward_state = backward_state = None
        if initial_state is not None:
            states = list(initial_state)
            if len(states) % 2:
                raise ShapeError(f"Layer '{self.name}' (Bidirectional): initial_state must hold "
                                 f"the forward states then the backward states (an even number); "
                                 f"received {len(states)}")
            forward_state, backward_state = states[: len(states) // 2], states[len(states) // 2:]
        elif isinstance(inputs, torch.Tensor) and self._fuses(inputs, training, mask):
            return self._merge(*self._call_fused(inputs))
        y = self.forward_layer(inputs, training=training, mask=mask, initial_state=forward_state)
        y_rev = self.backward_layer(inputs, training=training, mask=mask,
                                    initial_state=backward_state)
        states: list[torch.Tensor] = []
        if self.return_state:
            states = [*y[1:], *y_rev[1:]]
            y, y_rev = y[0], y_rev[0]
        if self.return_sequences:
            y_rev = y_rev.flip(1)
        return self._merge(y, y_rev, states)

    def _fuses(self, inputs: torch.Tensor, training: Any, mask: Any) -> bool:
        """Whether one bidirectional fused op (``nn.LSTM(bidirectional=True)``'s) computes both
        directions exactly as their own calls would: the default pair (same class and options, the
        second ``go_backwards``), no mask, no initial or kept state, no input dropout while
        training, a fused kernel for the options, and no hook, tracer or activity penalty that
        would see the two calls."""
        forward, backward = self.forward_layer, self.backward_layer
        cls = type(forward)
        if cls not in _FUSED_PAIRS or type(backward) is not cls or forward.go_backwards \
                or not backward.go_backwards or forward.stateful or backward.stateful:
            return False
        if not (forward.built and backward.built) or inputs.dim() != 3 or mask is not None:
            return False
        training = bool(training)
        if training and (forward.dropout > 0 or backward.dropout > 0):
            return False  # each direction draws its own input mask
        return (forward.units == backward.units and forward.use_bias == backward.use_bias
                and forward.activity_regularizer is None and backward.activity_regularizer is None
                and forward._fusable(training) and backward._fusable(training)
                and forward._nonlinearity() == backward._nonlinearity()
                and forward.kernel.dtype == backward.kernel.dtype
                and not _hooks_or_tracing(forward, backward))

    def _call_fused(self, inputs: torch.Tensor) -> tuple[Any, Any, list[torch.Tensor]]:
        """Both directions in one fused op: ``(y, y_rev, states)`` as :meth:`call` merges them
        (``y_rev`` already in input order). The op runs the backward direction over the reversed
        steps internally, so outputs equal the two one-direction calls with their flips."""
        forward, backward = self.forward_layer, self.backward_layer
        forward._check_input_shape(tuple(inputs.shape))
        x = cast_inputs(inputs, forward.kernel)
        cell = forward.cell
        weights = [*torch_weights(cell, forward.kernel, forward.recurrent_kernel, forward.bias),
                   *torch_weights(cell, backward.kernel, backward.recurrent_kernel, backward.bias)]
        zeros = x.new_zeros(2, x.shape[0], forward.units)
        out, h, c = fused(cell, x, weights, (zeros, zeros) if cell == "lstm" else zeros,
                          bidirectional=True, nonlinearity=forward._nonlinearity())
        states: list[torch.Tensor] = []
        if self.return_state:
            states = [h[0], c[0], h[1], c[1]] if cell == "lstm" else [h[0], h[1]]
        if self.return_sequences:
            if self.merge_mode == "concat":
                # already [forward, backward] on the last axis, as the op hands it back: a
                # batch-first view of time-major memory, which a next recurrent layer reads
                # without a copy (a contiguous copy here would make it copy again)
                return out, None, states
            units = forward.units
            return out[..., :units].contiguous(), out[..., units:].contiguous(), states
        return h[0], h[1], states

    def _merge(self, y: Any, y_rev: Any, states: list[torch.Tensor]) -> Any:
        """The directions' outputs merged by ``merge_mode``, then the states (``return_state``);
        ``y_rev`` ``None``: ``y`` is the concatenation already."""
        if y_rev is None:
            output: Any = y
        elif self.merge_mode == "concat":
            output = torch.cat([y, y_rev], dim=-1)
        elif self.merge_mode == "sum":
            output = y + y_rev
        elif self.merge_mode == "ave":
            output = (y + y_rev) / 2
        elif self.merge_mode == "mul":
            output = y * y_rev
        else:
            output = [y, y_rev]
        if self.return_state:
            return [*output, *states] if self.merge_mode is None else [output, *states]
        return output

    def compute_output_shape(self, input_shape: Shape) -> Any:
        shape = tuple(input_shape[0]) if is_shape_list(input_shape) else tuple(input_shape)
        output = self.forward_layer.compute_output_shape(shape)
        state_shapes: list[Any] = []
        if self.return_state:
            output, state_shapes = output[0], list(output[1:])
        output = tuple(output)
        if self.merge_mode == "concat":
            output = (*output[:-1], output[-1] * 2)
        outputs = [output, output] if self.merge_mode is None else [output]
        if self.return_state:
            return [*outputs, *state_shapes, *state_shapes]
        return outputs if self.merge_mode is None else output

    def compute_mask(self, inputs: Any, mask: Any = None) -> Any:
        if isinstance(mask, (list, tuple)):
            mask = mask[0]
        output_mask = mask if self.return_sequences else None
        outputs = [output_mask, output_mask] if self.merge_mode is None else [output_mask]
        if self.return_state:
            count = len(getattr(self.forward_layer, "state_size", [None]))
            return [*outputs, *([None] * (2 * count))]
        return outputs if self.merge_mode is None else output_mask

    def reset_states(self, states: Any = None) -> None:
        if not self.stateful:
            raise ConfigError(f"Layer '{self.name}' (Bidirectional) is not stateful")
        if states is None:
            self.forward_layer.reset_states()
            self.backward_layer.reset_states()
            return
        states = list(states)
        self.forward_layer.reset_states(states[: len(states) // 2])
        self.backward_layer.reset_states(states[len(states) // 2:])

    reset_state = reset_states

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "merge_mode": self.merge_mode,
                "layer": serialize_layer(self.forward_layer),
                "backward_layer": serialize_layer(self.backward_layer)}

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> Bidirectional:
        config = dict(config)
        config["layer"] = deserialize_layer(config["layer"])
        if config.get("backward_layer") is not None:
            config["backward_layer"] = deserialize_layer(config["backward_layer"])
        return cls(**config)


class TimeDistributed(PreActivationMixin, Layer):
    """Applies ``layer`` to every time step: input ``(batch, timesteps, ...)``.

    The steps are folded into the batch (one call on ``(batch * timesteps, ...)``), which equals
    Keras's per-step calls for any layer without state across samples. A timestep mask passes
    through (and reaches ``layer`` as a per-sample mask if its ``call`` takes one). When ``layer``
    has a softmax/sigmoid activation, ``call_logits`` gives its pre-activation outputs so the model
    trains on the stable log-softmax.
    """

    min_ndim = 3
    supports_masking = True

    def __init__(self, layer: Layer, **kwargs: Any):
        if not isinstance(layer, Layer):
            raise ConfigError(f"Please initialize `TimeDistributed` layer with a Keras layer "
                              f"instance. Received: {layer!r}")
        super().__init__(**kwargs)
        self.layer = layer

    @property
    def activation(self) -> Any:
        return getattr(self.layer, "activation", None)

    def _step_shape(self, input_shape: Shape) -> Shape:
        return (input_shape[0], *tuple(input_shape)[2:])

    def build(self, input_shape: Shape) -> None:
        if len(input_shape) < 3:
            raise ShapeError(f"Layer '{self.name}' (TimeDistributed): `TimeDistributed` requires "
                             f"input with at least 3 dimensions. Received: "
                             f"input_shape={tuple(input_shape)}")
        self.layer._maybe_build((None, *tuple(input_shape)[2:]), self._build_device)
        super().build(input_shape)

    def call(self, inputs: torch.Tensor, training: bool = False, mask: Any = None,
             logits: bool = False) -> torch.Tensor:
        if not isinstance(inputs, torch.Tensor):
            raise InputTypeError(f"Layer '{self.name}' (TimeDistributed) expects a tensor; "
                                 f"received {describe(inputs)}")
        batch, steps = inputs.shape[:2]
        kwargs: dict[str, Any] = {"training": training}
        if mask is not None:
            if tuple(mask.shape[:2]) != (batch, steps):
                raise ShapeError(f"Layer '{self.name}' (TimeDistributed): the mask must start with "
                                 f"(batch, timesteps) = ({batch}, {steps}); received mask of "
                                 f"shape {tuple(mask.shape)}")
            if call_takes_mask(type(self.layer)):
                kwargs["mask"] = mask.reshape(batch * steps, *mask.shape[2:])
        if logits:
            kwargs["logits"] = True
        folded = inputs.reshape(batch * steps, *inputs.shape[2:])
        outputs = self.layer(folded, **kwargs)
        return outputs.reshape(batch, steps, *outputs.shape[1:])

    def compute_output_shape(self, input_shape: Shape) -> Shape:
        inner = self.layer.compute_output_shape(self._step_shape(input_shape))
        return (input_shape[0], input_shape[1], *tuple(inner)[1:])

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "layer": serialize_layer(self.layer)}

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> TimeDistributed:
        config = dict(config)
        config["layer"] = deserialize_layer(config["layer"])
        return cls(**config)


class Masking(Layer):
    """Masks time steps whose features all equal ``mask_value``.

    Output: the input with masked steps zeroed; its mask (``(batch, timesteps)``, True where some
    feature differs from ``mask_value``) goes to the following layers (RNNs skip masked steps).
    """

    supports_masking = True

    def __init__(self, mask_value: float = 0.0, **kwargs: Any):
        super().__init__(**kwargs)
        if isinstance(mask_value, bool) or not isinstance(mask_value, (int, float)):
            raise ConfigError(f"Layer '{self.name}' (Masking): `mask_value` must be a number. "
                              f"Received: mask_value={mask_value!r}")
        self.mask_value = float(mask_value)

    def compute_mask(self, inputs: torch.Tensor, mask: Any = None) -> torch.Tensor:
        return (inputs != self.mask_value).any(dim=-1)

    def call(self, inputs: torch.Tensor, training: bool = False) -> torch.Tensor:
        keep = self.compute_mask(inputs)[..., None]
        return inputs * keep.to(inputs.dtype)

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "mask_value": self.mask_value}


# Bidirectional.__call__ only turns symbolic initial states into graph inputs: a plain tensor call keeps
# Layer's dispatch, so a verified one may take the direct path (Layer._call_direct).
DIRECT_DISPATCH.add(Bidirectional.__call__)
