"""Keras 3 recurrent cells: ``SimpleRNNCell``, ``LSTMCell``, ``GRUCell`` and ``StackedRNNCells``.

A cell computes ONE time step: ``cell(inputs, states, training=None) -> (output, new_states)``
with ``inputs`` ``(batch, features)`` and ``states`` a list of ``(batch, size)`` tensors, one per
entry of ``cell.state_size``. ``keras.layers.RNN`` (``rnn_layer.py``) runs a cell over a
sequence.

Weights are Keras's (names, shapes, order, gate layout), stored transposed like the ``LSTM`` /
``GRU`` / ``SimpleRNN`` layers (``recurrent.py``), so the RNN layer can hand a built-in cell's
weights to the same fused recurrent kernels those layers use::

    SimpleRNNCell  kernel (in, u)    recurrent_kernel (u, u)    bias (u,)
    LSTMCell       kernel (in, 4u)   recurrent_kernel (u, 4u)   bias (4u,)      gates i, f, c, o
    GRUCell        kernel (in, 3u)   recurrent_kernel (u, 3u)   bias (2, 3u)    gates z, r, h
                                                                (3u,) with reset_after=False

The step equations are ``nn/recurrent_kernels.loop`` run for one step, the same code the
recurrent layers use off their fused path. Dropout masks (``dropout``, ``recurrent_dropout``)
are drawn once per sequence, one per gate, as in Keras: :meth:`reset_dropout_mask` starts a new
sequence (the RNN layer calls it after each call).
"""

from __future__ import annotations

import inspect
from typing import Any

import torch

from bigmodel.errors import ConfigError, InputTypeError, ShapeError, describe
from bigmodel.keras import activations, constraints, initializers, regularizers
from bigmodel.keras.layers.base import Layer
from bigmodel.keras.layers.call_signature import call_signature
from bigmodel.keras.layers.core import cast_inputs, check_positive_int, resolve
from bigmodel.keras.layers.layer_registry import deserialize_layer, serialize_layer
from bigmodel.keras.layers.symbolic import Shape, is_shape_list
from bigmodel.nn.augment import SeededGenerators
from bigmodel.nn.recurrent_kernels import GATES, loop

__all__ = ["GRUCell", "LSTMCell", "SimpleRNNCell", "StackedRNNCells", "call_cell", "cell_output_size",
           "check_cell", "check_rate"]


def check_rate(layer: Layer, name: str, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0.0 <= value <= 1.0:
        raise ConfigError(f"Layer '{layer.name}' ({type(layer).__name__}): `{name}` must be a float "
                          f"between 0 and 1. Received: {name}={value!r}")
    return float(value)


_CALL_PARAMETERS: dict[type, list[str]] = {}  # a cell class -> its call's parameter names


def call_cell(cell: Layer, inputs: Any, states: list[Any], training: Any = None) -> tuple[Any, Any]:
    """``cell(inputs, states)`` for any Keras-style cell: the states go by the name of ``call``'s
    second parameter (a bigmodel ``Layer``'s ``forward`` takes ``training`` second)."""
    names = _CALL_PARAMETERS.get(type(cell))
    if names is None:
        names = _CALL_PARAMETERS[type(cell)] = list(
            inspect.signature(type(cell).call).parameters)[1:]
    if len(names) < 2:
        raise ConfigError(f"RNN cell '{cell.name}' ({type(cell).__name__}): `call` must take "
                          f"(inputs, states); its parameters are {names}")
    kwargs: dict[str, Any] = {names[1]: states}
    if training is not None and call_signature(type(cell)).training:
        kwargs["training"] = training
    result = cell(inputs, **kwargs)
    if not isinstance(result, (list, tuple)) or len(result) != 2:
        raise InputTypeError(f"RNN cell '{cell.name}' ({type(cell).__name__}): `call` must return "
                             f"(output, new_states); it returned {describe(result)}")
    return result[0], result[1]


def cell_output_size(cell: Any) -> Any:
    """``cell.output_size``, else the first state size (Keras's rule)."""
    size = getattr(cell, "output_size", None)
    if size is not None:
        return size
    state_size = cell.state_size
    return state_size[0] if isinstance(state_size, (list, tuple)) else state_size


class _Cell(Layer):
    """What SimpleRNNCell, LSTMCell and GRUCell share: arguments, weights, dropout, the step."""

    cell = "simple"

    def __init__(self, units: int, *, activation: Any, recurrent_activation: Any, use_bias: bool,
                 kernel_initializer: Any, recurrent_initializer: Any, bias_initializer: Any,
                 kernel_regularizer: Any, recurrent_regularizer: Any, bias_regularizer: Any,
                 kernel_constraint: Any, recurrent_constraint: Any, bias_constraint: Any,
                 dropout: float, recurrent_dropout: float, seed: Any, **kwargs: Any):
        kwargs.pop("implementation", None)  # Keras 2/3 legacy argument, no effect on results
        super().__init__(**kwargs)
        self.units = check_positive_int(self, "units", units)
        self.activation = resolve(self, "activation", activation)
        self.recurrent_activation = resolve(self, "recurrent_activation", recurrent_activation)
        self.use_bias = bool(use_bias)
        for argument, value in (("kernel_initializer", kernel_initializer),
                                ("recurrent_initializer", recurrent_initializer),
                                ("bias_initializer", bias_initializer),
                                ("kernel_regularizer", kernel_regularizer),
                                ("recurrent_regularizer", recurrent_regularizer),
                                ("bias_regularizer", bias_regularizer),
                                ("kernel_constraint", kernel_constraint),
                                ("recurrent_constraint", recurrent_constraint),
                                ("bias_constraint", bias_constraint)):
            setattr(self, argument, resolve(self, argument, value))
        self.dropout = check_rate(self, "dropout", dropout)
        self.recurrent_dropout = check_rate(self, "recurrent_dropout", recurrent_dropout)
        self.seed = seed
        self._generators = SeededGenerators(seed)
        self._dropout_masks: tuple[Any, Any] | None = None
        self.register_parameter("bias", None)

    @property
    def state_size(self) -> Any:
        return self.units

    @property
    def output_size(self) -> int:
        return self.units

    # ----------------------------------------------------------------------------- weights
    def _bias_shape(self) -> tuple[int, ...]:
        return (GATES[self.cell] * self.units,)

    def _bias_initializer(self) -> Any:
        return self.bias_initializer

    def build(self, input_shape: Shape) -> None:
        shape = tuple(input_shape[0]) if is_shape_list(input_shape) else tuple(input_shape)
        input_dim = shape[-1] if shape else None
        if input_dim is None:
            raise ShapeError(f"Layer '{self.name}' ({type(self).__name__}): the last dimension of "
                             f"the step inputs (features) must be defined. Full input shape "
                             f"received: {shape}")
        width = GATES[self.cell] * self.units
        # Keras shapes for the initializers; stored transposed, the layout the fused ops take.
        self.add_weight("kernel", (input_dim, width), self.kernel_initializer,
                        self.kernel_regularizer, torch_perm=(1, 0),
                        constraint=self.kernel_constraint)
        self.add_weight("recurrent_kernel", (self.units, width), self.recurrent_initializer,
                        self.recurrent_regularizer, torch_perm=(1, 0),
                        constraint=self.recurrent_constraint)
        if self.use_bias:
            self.add_weight("bias", self._bias_shape(), self._bias_initializer(),
                            self.bias_regularizer, constraint=self.bias_constraint)
        self.input_axes = {-1: input_dim}
        super().build(shape)

    # ----------------------------------------------------------------------------- states
    def get_initial_state(self, batch_size: int | None = None) -> list[torch.Tensor]:
        """Zero states, one ``(batch_size, size)`` tensor per entry of ``state_size``."""
        sizes = self.state_size if isinstance(self.state_size, list) else [self.state_size]
        device = self.kernel.device if self.built else None
        return [torch.zeros(int(batch_size or 1), size, device=device) for size in sizes]

    def _check_states(self, states: Any, batch: int) -> list[torch.Tensor]:
        states = list(states) if isinstance(states, (list, tuple)) else [states]
        sizes = self.state_size if isinstance(self.state_size, list) else [self.state_size]
        got = [tuple(getattr(s, "shape", ())) for s in states]
        if got != [(batch, size) for size in sizes]:
            raise ShapeError(f"Layer '{self.name}' ({type(self).__name__}): states must be "
                             f"{len(sizes)} tensor(s) of shape {[(batch, s) for s in sizes]}; "
                             f"received {[describe(s) for s in states]}")
        return states

    # ----------------------------------------------------------------------------- dropout
    def _mask(self, like: torch.Tensor, rate: float) -> list[torch.Tensor]:
        keep = 1.0 - rate
        return [torch.empty_like(like).bernoulli_(keep, generator=self._generators.get(like.device))
                / keep for _ in range(GATES[self.cell])]

    def dropout_masks(self, inputs: torch.Tensor, state: torch.Tensor) -> tuple[Any, Any]:
        """The ``(input masks, recurrent masks)`` of the current sequence (drawn on first use)."""
        if self._dropout_masks is None:
            self._dropout_masks = (self._mask(inputs, self.dropout) if self.dropout else None,
                                   self._mask(state, self.recurrent_dropout)
                                   if self.recurrent_dropout else None)
        return self._dropout_masks

    def reset_dropout_mask(self) -> None:
        """Forget the dropout masks: the next step draws new ones (a new sequence)."""
        self._dropout_masks = None

    reset_recurrent_dropout_mask = reset_dropout_mask

    # ----------------------------------------------------------------------------- call
    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        if len(args) >= 2:  # Keras's cell(inputs, states[, training]): states by keyword here
            kwargs["states"] = args[1]
            if len(args) == 3:
                kwargs["training"] = args[2]
            args = args[:1]
        return super().__call__(*args, **kwargs)

    def call(self, inputs: Any, states: Any, training: bool = False) -> tuple[Any, Any]:
        if not isinstance(inputs, torch.Tensor) or inputs.dim() != 2:
            raise InputTypeError(f"Layer '{self.name}' ({type(self).__name__}) takes one time "
                                 f"step (batch, features); received {describe(inputs)}")
        nested = isinstance(states, (list, tuple))
        x = cast_inputs(inputs, self.kernel)
        state = [s.to(x.dtype) for s in self._check_states(states, x.shape[0])]
        input_masks = recurrent_masks = None
        if training and (self.dropout or self.recurrent_dropout):
            input_masks, recurrent_masks = self.dropout_masks(x, state[0])
        out, new_states = loop(self.cell, x[:, None], self.kernel, self.recurrent_kernel,
                               self.bias, state, activation=self.activation,
                               recurrent_activation=self.recurrent_activation,
                               reset_after=getattr(self, "reset_after", True),
                               input_masks=input_masks, recurrent_masks=recurrent_masks)
        output = out[:, 0]
        if self.cell == "lstm":
            return output, list(new_states)
        return output, list(new_states) if nested else new_states[0]

    def compute_output_shape(self, input_shape: Shape) -> Any:
        shape = tuple(input_shape[0]) if is_shape_list(input_shape) else tuple(input_shape)
        return (shape[0], self.units)

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
                "kernel_constraint": constraints.serialize(self.kernel_constraint),
                "recurrent_constraint": constraints.serialize(self.recurrent_constraint),
                "bias_constraint": constraints.serialize(self.bias_constraint),
                "dropout": self.dropout, "recurrent_dropout": self.recurrent_dropout,
                "seed": self.seed}


class SimpleRNNCell(_Cell):
    """One step of ``h_t = activation(x_t @ kernel + h_{t-1} @ recurrent_kernel + bias)``.

    Args:
        units: size of the output and of the single state.
        activation, use_bias, *_initializer, *_regularizer, *_constraint, dropout,
        recurrent_dropout, seed: as ``keras.layers.SimpleRNNCell``.
    """

    cell = "simple"

    def __init__(self, units: int, activation: Any = "tanh", use_bias: bool = True,
                 kernel_initializer: Any = "glorot_uniform",
                 recurrent_initializer: Any = "orthogonal", bias_initializer: Any = "zeros",
                 kernel_regularizer: Any = None, recurrent_regularizer: Any = None,
                 bias_regularizer: Any = None, kernel_constraint: Any = None,
                 recurrent_constraint: Any = None, bias_constraint: Any = None,
                 dropout: float = 0.0, recurrent_dropout: float = 0.0, seed: Any = None,
                 **kwargs: Any):
        super().__init__(
            units, activation=activation, recurrent_activation="sigmoid", use_bias=use_bias,
            kernel_initializer=kernel_initializer, recurrent_initializer=recurrent_initializer,
            bias_initializer=bias_initializer, kernel_regularizer=kernel_regularizer,
            recurrent_regularizer=recurrent_regularizer, bias_regularizer=bias_regularizer,
            kernel_constraint=kernel_constraint, recurrent_constraint=recurrent_constraint,
            bias_constraint=bias_constraint, dropout=dropout, recurrent_dropout=recurrent_dropout,
            seed=seed, **kwargs)


class LSTMCell(_Cell):
    """One LSTM step; states ``[h, c]`` (``state_size == [units, units]``), output ``h``.

    ``unit_forget_bias=True`` starts the forget-gate bias at 1 (Keras's default).
    """

    cell = "lstm"

    def __init__(self, units: int, activation: Any = "tanh", recurrent_activation: Any = "sigmoid",
                 use_bias: bool = True, kernel_initializer: Any = "glorot_uniform",
                 recurrent_initializer: Any = "orthogonal", bias_initializer: Any = "zeros",
                 unit_forget_bias: bool = True, kernel_regularizer: Any = None,
                 recurrent_regularizer: Any = None, bias_regularizer: Any = None,
                 kernel_constraint: Any = None, recurrent_constraint: Any = None,
                 bias_constraint: Any = None, dropout: float = 0.0,
                 recurrent_dropout: float = 0.0, seed: Any = None, **kwargs: Any):
        self.unit_forget_bias = bool(unit_forget_bias)
        super().__init__(
            units, activation=activation, recurrent_activation=recurrent_activation,
            use_bias=use_bias, kernel_initializer=kernel_initializer,
            recurrent_initializer=recurrent_initializer, bias_initializer=bias_initializer,
            kernel_regularizer=kernel_regularizer, recurrent_regularizer=recurrent_regularizer,
            bias_regularizer=bias_regularizer, kernel_constraint=kernel_constraint,
            recurrent_constraint=recurrent_constraint, bias_constraint=bias_constraint,
            dropout=dropout, recurrent_dropout=recurrent_dropout, seed=seed, **kwargs)

    @property
    def state_size(self) -> list[int]:
        return [self.units, self.units]

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


class GRUCell(_Cell):
    """One GRU step; one state ``h``. ``reset_after=True`` (Keras's default) applies the reset
    gate after the recurrent product and keeps a bias ``(2, 3 * units)``."""

    cell = "gru"

    def __init__(self, units: int, activation: Any = "tanh", recurrent_activation: Any = "sigmoid",
                 use_bias: bool = True, kernel_initializer: Any = "glorot_uniform",
                 recurrent_initializer: Any = "orthogonal", bias_initializer: Any = "zeros",
                 kernel_regularizer: Any = None, recurrent_regularizer: Any = None,
                 bias_regularizer: Any = None, kernel_constraint: Any = None,
                 recurrent_constraint: Any = None, bias_constraint: Any = None,
                 dropout: float = 0.0, recurrent_dropout: float = 0.0, reset_after: bool = True,
                 seed: Any = None, **kwargs: Any):
        self.reset_after = bool(reset_after)
        super().__init__(
            units, activation=activation, recurrent_activation=recurrent_activation,
            use_bias=use_bias, kernel_initializer=kernel_initializer,
            recurrent_initializer=recurrent_initializer, bias_initializer=bias_initializer,
            kernel_regularizer=kernel_regularizer, recurrent_regularizer=recurrent_regularizer,
            bias_regularizer=bias_regularizer, kernel_constraint=kernel_constraint,
            recurrent_constraint=recurrent_constraint, bias_constraint=bias_constraint,
            dropout=dropout, recurrent_dropout=recurrent_dropout, seed=seed, **kwargs)

    def _bias_shape(self) -> tuple[int, ...]:
        return (2, 3 * self.units) if self.reset_after else (3 * self.units,)

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "reset_after": self.reset_after,
                "recurrent_activation": activations.serialize(self.recurrent_activation)}


def check_cell(cell: Any, where: str) -> None:
    if not isinstance(cell, Layer):
        raise ConfigError(f"{where}: a cell must be a keras Layer (with `call(inputs, states)` and "
                          f"`state_size`); received {describe(cell)}")
    if getattr(cell, "state_size", None) is None:
        raise ConfigError(f"{where}: the RNN cell '{cell.name}' ({type(cell).__name__}) should "
                          "have a `state_size` attribute (an integer, or a list of integers, one "
                          "per state)")
    if type(cell).call is Layer.call:
        raise ConfigError(f"{where}: the RNN cell '{cell.name}' ({type(cell).__name__}) has no "
                          "`call(inputs, states)` method")


class StackedRNNCells(Layer):
    """Cells stacked into one cell: each step runs them in order, each one's output feeding the
    next. ``state_size`` lists the cells' state sizes (nested), the output is the last cell's.

    Args:
        cells: a non-empty list of cells.

    Raises:
        ConfigError: an empty list, or an entry that is not a cell (a Layer with ``state_size``).
    """

    def __init__(self, cells: Any, **kwargs: Any):
        super().__init__(**kwargs)
        if not isinstance(cells, (list, tuple)) or not cells:
            raise ConfigError(f"StackedRNNCells '{self.name}': `cells` must be a non-empty list of "
                              f"RNN cells; received {describe(cells)}")
        for cell in cells:
            check_cell(cell, f"StackedRNNCells '{self.name}'")
        self.cells = list(cells)

    @property
    def state_size(self) -> list[Any]:
        return [cell.state_size for cell in self.cells]

    @property
    def output_size(self) -> Any:
        return cell_output_size(self.cells[-1])

    def get_initial_state(self, batch_size: int | None = None) -> list[Any]:
        states = []
        for cell in self.cells:
            if hasattr(cell, "get_initial_state"):
                states.append(cell.get_initial_state(batch_size=batch_size))
            elif isinstance(cell.state_size, int):
                states.append(torch.zeros(int(batch_size or 1), cell.state_size))
            else:
                states.append([torch.zeros(int(batch_size or 1), size)
                               for size in cell.state_size])
        return states

    def build(self, input_shape: Shape) -> None:
        shape = tuple(input_shape)
        for cell in self.cells:
            if not cell.built:
                cell._maybe_build(shape, self._build_device)
            shape = (shape[0], cell_output_size(cell))
        super().build(input_shape)

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        if len(args) >= 2:
            kwargs["states"] = args[1]
            args = args[:1]
        return super().__call__(*args, **kwargs)

    def call(self, inputs: Any, states: Any, training: bool = False) -> tuple[Any, Any]:
        if not isinstance(states, (list, tuple)) or len(states) != len(self.cells):
            raise ShapeError(f"StackedRNNCells '{self.name}': expected one state entry per cell "
                             f"({len(self.cells)}); received {describe(states)}")
        new_states = []
        for cell, state in zip(self.cells, states):
            is_list = isinstance(state, (list, tuple))
            inputs, state = call_cell(cell, inputs, list(state) if is_list else [state],
                                      training)
            if isinstance(state, (list, tuple)) and len(state) == 1 and not is_list:
                state = state[0]
            new_states.append(state)
        return inputs, new_states

    def reset_dropout_mask(self) -> None:
        for cell in self.cells:
            if hasattr(cell, "reset_dropout_mask"):
                cell.reset_dropout_mask()

    def compute_output_shape(self, input_shape: Shape) -> Any:
        return (tuple(input_shape)[0], self.output_size)

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "cells": [serialize_layer(cell) for cell in self.cells]}

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> StackedRNNCells:
        config = dict(config)
        config["cells"] = [deserialize_layer(spec) for spec in config["cells"]]
        return cls(**config)
