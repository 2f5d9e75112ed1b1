"""Keras recurrent layers: ``SimpleRNN``, ``LSTM``, ``GRU`` (Keras 3 arguments, defaults, weights).

Weights are Keras's, in Keras's order and gate layout (``get_weights``/``set_weights`` speak Keras
shapes, so weights exported from Keras load unchanged)::

    SimpleRNN  kernel (in, u)    recurrent_kernel (u, u)    bias (u,)
    LSTM       kernel (in, 4u)   recurrent_kernel (u, 4u)   bias (4u,)      gates i, f, c, o
    GRU        kernel (in, 3u)   recurrent_kernel (u, 3u)   bias (2, 3u)    gates z, r, h
                                                            (3u,) with reset_after=False

Computation runs on PyTorch's fused recurrent kernels (oneDNN/cuDNN) whenever the options allow:
``activation="tanh"`` (SimpleRNN: or ``"relu"``), ``recurrent_activation="sigmoid"``, GRU
``reset_after=True``, no ``recurrent_dropout`` while training, and a mask that is absent or whose
valid steps form one contiguous block per sequence (right/left padding). Otherwise -- and with
``use_cudnn=False`` -- a per-time-step Python loop computes the same equations.

Masks (``Embedding(mask_zero=True)``, ``Masking``, or ``mask=`` in the call) follow Keras: a masked
step leaves the state unchanged and outputs the previous output (zeros with
``zero_output_for_mask=True``). ``unroll`` is accepted and has no effect (the fused kernels are
faster than an unrolled graph). ``stateful=True`` keeps the final states of each batch as the
initial states of the next (same batch size; detached, so gradients stop at batch boundaries);
``reset_states()`` zeroes them.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch

from bigmodel.errors import ConfigError, InputTypeError, ShapeError, describe
from bigmodel.keras import activations, initializers, regularizers
from bigmodel.keras.layers.base import Layer
from bigmodel.keras.layers.call_context import DIRECT_DISPATCH
from bigmodel.keras.layers.core import cast_inputs, check_positive_int, reject_constraints, resolve
from bigmodel.keras.layers.symbolic import Shape, flatten_symbolic, is_shape_list
from bigmodel.nn.augment import SeededGenerators
from bigmodel.nn.recurrent import check_mask
from bigmodel.nn.recurrent_kernels import GATES, run_sequence

__all__ = ["GRU", "LSTM", "SimpleRNN", "call_with_initial_state"]


def _rate(layer: Layer, name: str, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0.0 <= value <= 1.0:
        raise ConfigError(f"Layer '{layer.name}' ({type(layer).__name__}): `{name}` must be a float "
                          f"between 0 and 1. Received: {name}={value!r}")
    return float(value)


def call_with_initial_state(call: Any, args: tuple, kwargs: dict[str, Any]) -> Any:
    """``layer(x, initial_state=states)``: symbolic states (functional API) become extra inputs
    ``[x, *states]``, so the graph records them as parents of the call."""
    initial_state = kwargs.get("initial_state")
    if args and initial_state is not None and flatten_symbolic(args[0]):
        kwargs = {k: v for k, v in kwargs.items() if k != "initial_state"}
        states = initial_state if isinstance(initial_state, (list, tuple)) else [initial_state]
        return call([args[0], *states], *args[1:], **kwargs)
    return call(*args, **kwargs)


class _Recurrent(Layer):
    """What SimpleRNN, LSTM and GRU share: arguments, weights, masks, states and the call."""

    input_ndim = 3
    supports_masking = True
    cell = "simple"

    def __init__(self, units: int, *, activation: Any, recurrent_activation: Any, use_bias: bool,
                 kernel_initializer: Any, recurrent_initializer: Any, bias_initializer: Any,
                 kernel_regularizer: Any, recurrent_regularizer: Any, bias_regularizer: Any,
                 activity_regularizer: Any, kernel_constraint: Any, recurrent_constraint: Any,
                 bias_constraint: Any, dropout: float, recurrent_dropout: float, seed: Any,
                 return_sequences: bool, return_state: bool, go_backwards: bool, stateful: bool,
                 unroll: bool, zero_output_for_mask: bool, use_cudnn: Any, **kwargs: Any):
        super().__init__(activity_regularizer=activity_regularizer, **kwargs)
        self.units = check_positive_int(self, "units", units)
        reject_constraints(self, kernel_constraint=kernel_constraint,
                           recurrent_constraint=recurrent_constraint,
                           bias_constraint=bias_constraint)
        self.activation = resolve(self, "activation", activation)
        self.recurrent_activation = resolve(self, "recurrent_activation", recurrent_activation)
        self.use_bias = bool(use_bias)
        self.kernel_initializer = resolve(self, "kernel_initializer", kernel_initializer)
        self.recurrent_initializer = resolve(self, "recurrent_initializer", recurrent_initializer)
        self.bias_initializer = resolve(self, "bias_initializer", bias_initializer)
        self.kernel_regularizer = resolve(self, "kernel_regularizer", kernel_regularizer)
        self.recurrent_regularizer = resolve(self, "recurrent_regularizer", recurrent_regularizer)
        self.bias_regularizer = resolve(self, "bias_regularizer", bias_regularizer)
        self.dropout = _rate(self, "dropout", dropout)
        self.recurrent_dropout = _rate(self, "recurrent_dropout", recurrent_dropout)
        self.seed = seed
        self._generators = SeededGenerators(seed)
        self.return_sequences = bool(return_sequences)
        self.return_state = bool(return_state)
        self.go_backwards = bool(go_backwards)
        self.stateful = bool(stateful)
        self.unroll = bool(unroll)
        self.zero_output_for_mask = bool(zero_output_for_mask)
        if use_cudnn not in ("auto", True, False):
            raise ConfigError(f"Layer '{self.name}' ({type(self).__name__}): invalid value for "
                              f"argument `use_cudnn`. Expected one of 'auto', True, False. "
                              f"Received: use_cudnn={use_cudnn!r}")
        self.use_cudnn = use_cudnn
        self.register_parameter("bias", None)
        self.states: list[torch.Tensor] | None = None  # stateful layers only

    @property
    def state_size(self) -> list[int]:
        return [self.units, self.units] if self.cell == "lstm" else [self.units]

    # ----------------------------------------------------------------------------- weights
    def _bias_shape(self) -> tuple[int, ...]:
        return (GATES[self.cell] * self.units,)

    def _bias_initializer(self) -> Any:
        return self.bias_initializer

    def build(self, input_shape: Shape) -> None:
        shape = tuple(input_shape[0]) if is_shape_list(input_shape) else tuple(input_shape)
        if len(shape) != 3:
            raise ShapeError(f"Input 0 of layer '{self.name}' ({type(self).__name__}) is "
                             f"incompatible with the layer: expected ndim=3, found ndim="
                             f"{len(shape)}. Full shape received: {shape}")
        input_dim = shape[-1]
        if input_dim is None:
            raise ShapeError(f"Layer '{self.name}' ({type(self).__name__}): the last dimension of "
                             f"the inputs (features per step) must be defined. Found None. Full "
                             f"input shape received: {shape}")
        width = GATES[self.cell] * self.units
        # Keras shapes for the initializers; stored transposed, the layout the fused ops take.
        self.add_weight("kernel", (input_dim, width), self.kernel_initializer,
                        self.kernel_regularizer, torch_perm=(1, 0))
        self.add_weight("recurrent_kernel", (self.units, width), self.recurrent_initializer,
                        self.recurrent_regularizer, torch_perm=(1, 0))
        if self.use_bias:
            self.add_weight("bias", self._bias_shape(), self._bias_initializer(),
                            self.bias_regularizer)
        self.input_axes = {-1: input_dim}
        super().build(shape)

    # ----------------------------------------------------------------------------- states
    def reset_states(self, states: Sequence[Any] | None = None) -> None:
        """Zero the states of a stateful layer, or set them to ``states`` (arrays ``(B, units)``)."""
        if not self.stateful:
            raise ConfigError(f"Layer '{self.name}' ({type(self).__name__}) is not stateful; "
                              "reset_states() needs stateful=True")
        if states is None:
            if self.states is not None:
                self.states = [torch.zeros_like(s) for s in self.states]
            return
        states = list(states) if isinstance(states, (list, tuple)) else [states]
        device = self.kernel.device if self.built else None
        self.states = [torch.as_tensor(np.asarray(s), dtype=torch.float32, device=device)
                       for s in states]
        self._check_states(self.states, self.states[0].shape[0], "reset_states")

    reset_state = reset_states

    def _check_states(self, states: Sequence[Any], batch: int, what: str) -> None:
        expected = [(batch, size) for size in self.state_size]
        got = [tuple(getattr(s, "shape", ())) for s in states]
        if len(states) != len(expected) or got != expected:
            raise ShapeError(f"Layer '{self.name}' ({type(self).__name__}): {what} must be "
                             f"{len(expected)} tensor(s) of shape {expected}; received "
                             f"{[describe(s) for s in states]}")

    def _initial_state(self, x: torch.Tensor, initial_state: Any) -> list[torch.Tensor]:
        batch = x.shape[0]
        if initial_state is not None:
            states = list(initial_state) if isinstance(initial_state, (list, tuple)) else [
                initial_state]
            states = [torch.as_tensor(s, device=x.device) for s in states]
            self._check_states(states, batch, "initial_state")
            return [s.to(x.dtype) for s in states]
        if self.stateful:
            if self.states is None:
                declared = (self._declared_input_shape or (None,))[0]
                if declared is not None and declared != batch:
                    raise ShapeError(f"Stateful layer '{self.name}' was declared with batch size "
                                     f"{declared}; received a batch of {batch}")
                self.states = [x.new_zeros(batch, size) for size in self.state_size]
            if self.states[0].shape[0] != batch:
                raise ShapeError(f"Stateful layer '{self.name}' ({type(self).__name__}) keeps "
                                 f"states for batches of {self.states[0].shape[0]}; received a "
                                 f"batch of {batch}. Use a fixed batch size (and shuffle=False)")
            return [s.to(device=x.device, dtype=x.dtype) for s in self.states]
        return [x.new_zeros(batch, size) for size in self.state_size]

    # ----------------------------------------------------------------------------- call
    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return call_with_initial_state(super().__call__, args, kwargs)

    def _standard_activations(self) -> bool:
        # asked on every call (fused or not): the answer is kept for the activation objects
        known = self.__dict__.get("_standard_known")
        if known is None or known[0] is not self.activation \
                or known[1] is not self.recurrent_activation:
            known = (self.activation, self.recurrent_activation,
                     activations.serialize(self.activation) == "tanh"
                     and activations.serialize(self.recurrent_activation) == "sigmoid")
            self.__dict__["_standard_known"] = known
        return known[2]

    def _fusable(self, training: bool) -> bool:
        """Whether a fused kernel computes this configuration (the ``use_cudnn`` criteria)."""
        ok = self._standard_activations() and not (training and self.recurrent_dropout > 0)
        if self.use_cudnn is True and not ok:
            raise ConfigError(f"Layer '{self.name}' ({type(self).__name__}): use_cudnn=True was "
                              "specified, but no fused kernel supports this configuration "
                              "(activation, recurrent_activation, recurrent_dropout"
                              + (", reset_after" if self.cell == "gru" else "")
                              + "). Pass use_cudnn='auto' to fall back to the step loop")
        return ok and self.use_cudnn is not False

    def _dropout_mask(self, rows: int, width: int, rate: float, like: torch.Tensor) -> torch.Tensor:
        keep = 1.0 - rate
        mask = torch.empty(rows, width, dtype=like.dtype, device=like.device)
        return mask.bernoulli_(keep, generator=self._generators.get(like.device)) / keep

    def call(self, inputs: Any, training: bool = False, mask: Any = None,
             initial_state: Any = None) -> Any:
        owner = f"Layer '{self.name}' ({type(self).__name__})"
        if isinstance(inputs, (list, tuple)):  # [sequences, *initial_states] (functional API)
            if initial_state is not None:
                raise ConfigError(f"{owner}: initial states were given twice (as inputs and as "
                                  "initial_state)")
            inputs, initial_state = inputs[0], list(inputs[1:]) or None
            if not isinstance(inputs, torch.Tensor):
                raise InputTypeError(f"{owner} expects a tensor; received {describe(inputs)}")
            self._check_input_shape(tuple(inputs.shape))
        if isinstance(mask, (list, tuple)):
            mask = mask[0]
        x = cast_inputs(inputs, self.kernel)
        batch, steps, features = x.shape
        if mask is not None:
            mask = check_mask(owner, mask, batch, steps, x.device)
        state = self._initial_state(x, initial_state)
        training = bool(training)
        fusable = self._fusable(training)
        gates = GATES[self.cell]
        input_masks = recurrent_masks = None
        if training and self.dropout > 0:
            if fusable:  # one mask per sequence, shared by all steps (Keras 3)
                x = x * self._dropout_mask(batch, features, self.dropout, x)[:, None, :]
            else:  # Keras's step implementation: one mask per gate
                input_masks = [self._dropout_mask(batch, features, self.dropout, x)
                               for _ in range(gates)]
        if training and self.recurrent_dropout > 0:
            recurrent_masks = [self._dropout_mask(batch, self.units, self.recurrent_dropout, x)
                               for _ in range(gates)]
        if self.go_backwards:
            x = x.flip(1)
            mask = mask.flip(1) if mask is not None else None
        outputs, final = run_sequence(
            self.cell, x, self.kernel, self.recurrent_kernel, self.bias, state, mask,
            use_fused=fusable, activation=self.activation,
            recurrent_activation=self.recurrent_activation,
            nonlinearity=self._nonlinearity(), reset_after=getattr(self, "reset_after", True),
            zero_output_for_mask=self.zero_output_for_mask,
            need_cell_state=self.return_state or self.stateful, input_masks=input_masks,
            recurrent_masks=recurrent_masks)
        if self.stateful:
            self.states = [s.detach() for s in final]
        output = outputs if self.return_sequences else final[0]
        if self.return_state:
            return [output, *final]
        return output

    def _nonlinearity(self) -> str:
        return "tanh"

    def compute_output_shape(self, input_shape: Shape) -> Any:
        shape = tuple(input_shape[0]) if is_shape_list(input_shape) else tuple(input_shape)
        batch = shape[0]
        output = (batch, shape[1], self.units) if self.return_sequences else (batch, self.units)
        if self.return_state:
            return [output, *[(batch, size) for size in self.state_size]]
        return output

    def compute_mask(self, inputs: Any, mask: Any = None) -> Any:
        if isinstance(mask, (list, tuple)):
            mask = mask[0]
        output_mask = mask if self.return_sequences else None
        if self.return_state:
            return [output_mask, *[None for _ in self.state_size]]
        return output_mask

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "units": self.units,
                "activation": activations.serialize(self.activation),
                "use_bias": self.use_bias,
                "kernel_initializer": initializers.serialize(self.kernel_initializer),
                "recurrent_initializer": initializers.serialize(self.recurrent_initializer),
                "bias_initializer": initializers.serialize(self.bias_initializer),
                "kernel_regularizer": regularizers.serialize(self.kernel_regularizer),
                "recurrent_regularizer": regularizers.serialize(self.recurrent_regularizer),
                "bias_regularizer": regularizers.serialize(self.bias_regularizer),
                "kernel_constraint": None, "recurrent_constraint": None, "bias_constraint": None,
                "dropout": self.dropout, "recurrent_dropout": self.recurrent_dropout,
                "seed": self.seed, "return_sequences": self.return_sequences,
                "return_state": self.return_state, "go_backwards": self.go_backwards,
                "stateful": self.stateful, "unroll": self.unroll,
                "zero_output_for_mask": self.zero_output_for_mask}


class SimpleRNN(_Recurrent):
    """Fully-connected recurrence ``h_t = activation(x_t @ kernel + h_{t-1} @ recurrent_kernel + b)``.

    Input ``(batch, timesteps, features)``; output ``(batch, units)``, or ``(batch, timesteps,
    units)`` with ``return_sequences``; ``return_state`` adds the final state. Fused kernel for
    ``activation`` tanh or relu.
    """

    cell = "simple"

    def __init__(self, units: int, activation: Any = "tanh", use_bias: bool = True,
                 kernel_initializer: Any = "glorot_uniform",
                 recurrent_initializer: Any = "orthogonal", bias_initializer: Any = "zeros",
                 kernel_regularizer: Any = None, recurrent_regularizer: Any = None,
                 bias_regularizer: Any = None, activity_regularizer: Any = None,
                 kernel_constraint: Any = None, recurrent_constraint: Any = None,
                 bias_constraint: Any = None, dropout: float = 0.0, recurrent_dropout: float = 0.0,
                 return_sequences: bool = False, return_state: bool = False,
                 go_backwards: bool = False, stateful: bool = False, unroll: bool = False,
                 seed: Any = None, zero_output_for_mask: bool = False, use_cudnn: Any = "auto",
                 **kwargs: Any):
        super().__init__(
            units, activation=activation, recurrent_activation="sigmoid", use_bias=use_bias,
            kernel_initializer=kernel_initializer, recurrent_initializer=recurrent_initializer,
            bias_initializer=bias_initializer, kernel_regularizer=kernel_regularizer,
            recurrent_regularizer=recurrent_regularizer, bias_regularizer=bias_regularizer,
            activity_regularizer=activity_regularizer, kernel_constraint=kernel_constraint,
            recurrent_constraint=recurrent_constraint, bias_constraint=bias_constraint,
            dropout=dropout, recurrent_dropout=recurrent_dropout, seed=seed,
            return_sequences=return_sequences, return_state=return_state,
            go_backwards=go_backwards, stateful=stateful, unroll=unroll,
            zero_output_for_mask=zero_output_for_mask, use_cudnn=use_cudnn, **kwargs)

    def _standard_activations(self) -> bool:
        return activations.serialize(self.activation) in ("tanh", "relu")

    def _nonlinearity(self) -> str:
        return activations.serialize(self.activation)


class LSTM(_Recurrent):
    """Long short-term memory (Hochreiter 1997), Keras 3 arguments and defaults.

    ``unit_forget_bias=True`` starts the forget-gate bias at 1 (and forces ``bias_initializer``
    zeros for the rest, as Keras). Input ``(batch, timesteps, features)``; output ``(batch, units)``
    or the sequence with ``return_sequences``; ``return_state`` adds ``h`` and ``c``.
    """

    cell = "lstm"

    def __init__(self, units: int, activation: Any = "tanh", recurrent_activation: Any = "sigmoid",
                 use_bias: bool = True, kernel_initializer: Any = "glorot_uniform",
                 recurrent_initializer: Any = "orthogonal", bias_initializer: Any = "zeros",
                 unit_forget_bias: bool = True, kernel_regularizer: Any = None,
                 recurrent_regularizer: Any = None, bias_regularizer: Any = None,
                 activity_regularizer: Any = None, kernel_constraint: Any = None,
                 recurrent_constraint: Any = None, bias_constraint: Any = None,
                 dropout: float = 0.0, recurrent_dropout: float = 0.0, seed: Any = None,
                 return_sequences: bool = False, return_state: bool = False,
                 go_backwards: bool = False, stateful: bool = False, unroll: bool = False,
                 zero_output_for_mask: bool = False, use_cudnn: Any = "auto", **kwargs: Any):
        self.unit_forget_bias = bool(unit_forget_bias)
        super().__init__(
            units, activation=activation, recurrent_activation=recurrent_activation,
            use_bias=use_bias, kernel_initializer=kernel_initializer,
            recurrent_initializer=recurrent_initializer, bias_initializer=bias_initializer,
            kernel_regularizer=kernel_regularizer, recurrent_regularizer=recurrent_regularizer,
            bias_regularizer=bias_regularizer, activity_regularizer=activity_regularizer,
            kernel_constraint=kernel_constraint, recurrent_constraint=recurrent_constraint,
            bias_constraint=bias_constraint, dropout=dropout,
            recurrent_dropout=recurrent_dropout, seed=seed, return_sequences=return_sequences,
            return_state=return_state, go_backwards=go_backwards, stateful=stateful,
            unroll=unroll, zero_output_for_mask=zero_output_for_mask, use_cudnn=use_cudnn,
            **kwargs)

    def _bias_initializer(self) -> Any:
        if not self.unit_forget_bias:
            return self.bias_initializer
        units, base = self.units, self.bias_initializer

        def forget_bias_one(shape: tuple[int, ...]) -> torch.Tensor:
            return torch.cat([base((units,)), torch.ones(units), base((2 * units,))])

        return forget_bias_one

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "unit_forget_bias": self.unit_forget_bias,
                "recurrent_activation": activations.serialize(self.recurrent_activation)}


class GRU(_Recurrent):
    """Gated recurrent unit (Cho et al. 2014), Keras 3 arguments and defaults.

    ``reset_after=True`` (default; cuDNN-compatible) applies the reset gate after the recurrent
    matrix product and keeps two biases ``(2, 3 * units)``; ``reset_after=False`` applies it before,
    with one bias ``(3 * units,)``, and runs the step loop (no fused kernel has that form).
    """

    cell = "gru"

    def __init__(self, units: int, activation: Any = "tanh", recurrent_activation: Any = "sigmoid",
                 use_bias: bool = True, kernel_initializer: Any = "glorot_uniform",
                 recurrent_initializer: Any = "orthogonal", bias_initializer: Any = "zeros",
                 kernel_regularizer: Any = None, recurrent_regularizer: Any = None,
                 bias_regularizer: Any = None, activity_regularizer: Any = None,
                 kernel_constraint: Any = None, recurrent_constraint: Any = None,
                 bias_constraint: Any = None, dropout: float = 0.0, recurrent_dropout: float = 0.0,
                 seed: Any = None, return_sequences: bool = False, return_state: bool = False,
                 go_backwards: bool = False, stateful: bool = False, unroll: bool = False,
                 reset_after: bool = True, zero_output_for_mask: bool = False,
                 use_cudnn: Any = "auto", **kwargs: Any):
        self.reset_after = bool(reset_after)
        super().__init__(
            units, activation=activation, recurrent_activation=recurrent_activation,
            use_bias=use_bias, kernel_initializer=kernel_initializer,
            recurrent_initializer=recurrent_initializer, bias_initializer=bias_initializer,
            kernel_regularizer=kernel_regularizer, recurrent_regularizer=recurrent_regularizer,
            bias_regularizer=bias_regularizer, activity_regularizer=activity_regularizer,
            kernel_constraint=kernel_constraint, recurrent_constraint=recurrent_constraint,
            bias_constraint=bias_constraint, dropout=dropout,
            recurrent_dropout=recurrent_dropout, seed=seed, return_sequences=return_sequences,
            return_state=return_state, go_backwards=go_backwards, stateful=stateful,
            unroll=unroll, zero_output_for_mask=zero_output_for_mask, use_cudnn=use_cudnn,
            **kwargs)

    def _bias_shape(self) -> tuple[int, ...]:
        return (2, 3 * self.units) if self.reset_after else (3 * self.units,)

    def _standard_activations(self) -> bool:
        return super()._standard_activations() and self.reset_after

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "reset_after": self.reset_after,
                "recurrent_activation": activations.serialize(self.recurrent_activation)}


# _Recurrent.__call__ only turns symbolic initial states into graph inputs: a plain tensor call keeps
# Layer's dispatch, so a verified one may take the direct path (Layer._call_direct).
DIRECT_DISPATCH.add(_Recurrent.__call__)
