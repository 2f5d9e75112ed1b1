"""``ConvLSTM1D`` / ``ConvLSTM2D`` / ``ConvLSTM3D``: LSTMs whose input and recurrent
transformations are convolutions (Shi et al. 2015), Keras 3 arguments, defaults and weights.

Input ``(batch, time, *spatial, channels)`` (``channels_first``: ``(batch, time, channels,
*spatial)``); output ``(batch, *spatial_out, filters)``, or every step with ``return_sequences``.
The states ``h`` and ``c`` have the output's per-step shape. Weights live on the layer's ``cell``
(Keras's ``.keras`` layout ``conv_lstm2d/cell/vars/i``)::

    kernel            (*kernel_size, channels, 4 * filters)   gates i, f, c, o
    recurrent_kernel  (*kernel_size, filters, 4 * filters)    'same' padding, stride 1
    bias              (4 * filters,)

The input convolution of every step runs as one batched convolution before the loop (the steps
folded into the batch); only the recurrent convolution runs per step. Masks, ``go_backwards``,
``stateful`` and ``initial_state`` behave as in ``keras.layers.RNN``.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from bigmodel.errors import ConfigError, ShapeError, describe
from bigmodel.keras import activations, constraints, initializers, regularizers
from bigmodel.keras.layers.base import Layer
from bigmodel.keras.layers.call_context import DIRECT_DISPATCH
from bigmodel.keras.layers.convolution import (
    conv_output_length,
    normalize_data_format,
    normalize_padding,
    normalize_tuple,
)
from bigmodel.keras.layers.convolution_nd import pad_spatial
from bigmodel.keras.layers.core import cast_inputs, check_positive_int, resolve
from bigmodel.keras.layers.recurrent import call_with_initial_state
from bigmodel.keras.layers.rnn_cells import check_rate
from bigmodel.keras.layers.symbolic import Shape, is_shape_list
from bigmodel.nn.augment import SeededGenerators
from bigmodel.nn.recurrent import check_mask

__all__ = ["ConvLSTM1D", "ConvLSTM2D", "ConvLSTM3D", "ConvLSTMCell"]

_CONV = {1: F.conv1d, 2: F.conv2d, 3: F.conv3d}


class ConvLSTMCell(Layer):
    """The weights (and one step) of a ConvLSTM; ``ConvLSTM{1,2,3}D`` create and run it."""

    def __init__(self, rank: int, filters: int, kernel_size: tuple[int, ...],
                 strides: tuple[int, ...], padding: str, dilation_rate: tuple[int, ...],
                 activation: Any, recurrent_activation: Any, use_bias: bool,
                 kernel_initializer: Any, recurrent_initializer: Any, bias_initializer: Any,
                 unit_forget_bias: bool, kernel_regularizer: Any, recurrent_regularizer: Any,
                 bias_regularizer: Any, kernel_constraint: Any, recurrent_constraint: Any,
                 bias_constraint: Any, **kwargs: Any):
        super().__init__(**kwargs)
        self.rank, self.filters, self.kernel_size = rank, filters, kernel_size
        self.strides, self.padding, self.dilation_rate = strides, padding, dilation_rate
        self.activation, self.recurrent_activation = activation, recurrent_activation
        self.use_bias, self.unit_forget_bias = use_bias, unit_forget_bias
        self.kernel_initializer = kernel_initializer
        self.recurrent_initializer = recurrent_initializer
        self.bias_initializer = bias_initializer
        self.kernel_regularizer = kernel_regularizer
        self.recurrent_regularizer = recurrent_regularizer
        self.bias_regularizer = bias_regularizer
        self.kernel_constraint = kernel_constraint
        self.recurrent_constraint = recurrent_constraint
        self.bias_constraint = bias_constraint
        self.register_parameter("bias", None)

    def build(self, input_shape: Shape) -> None:
        """``input_shape``: one step, channels first ``(batch, channels, *spatial)``."""
        channels = input_shape[1]
        rank = self.rank
        # Keras (*k, in, out) -> torch (out, in, *k)
        perm = (rank + 1, rank, *range(rank))
        self.add_weight("kernel", (*self.kernel_size, channels, 4 * self.filters),
                        self.kernel_initializer, self.kernel_regularizer, torch_perm=perm,
                        constraint=self.kernel_constraint)
        self.add_weight("recurrent_kernel", (*self.kernel_size, self.filters, 4 * self.filters),
                        self.recurrent_initializer, self.recurrent_regularizer, torch_perm=perm,
                        constraint=self.recurrent_constraint)
        if self.use_bias:
            base, filters = self.bias_initializer, self.filters

            def forget_bias_one(shape: tuple[int, ...]) -> torch.Tensor:
                return torch.cat([base((filters,)), torch.ones(filters), base((2 * filters,))])

            self.add_weight("bias", (4 * filters,),
                            forget_bias_one if self.unit_forget_bias else base,
                            self.bias_regularizer, constraint=self.bias_constraint)
        super().build(input_shape)

    def input_conv(self, x: torch.Tensor, masks: list[torch.Tensor] | None) -> torch.Tensor:
        """Input projections ``(N, 4 * filters, *spatial_out)`` of ``x`` ``(N, C, *spatial)``;
        with dropout ``masks`` (one per gate) each gate sees its own masked input."""
        conv = _CONV[self.rank]
        if masks is None:
            padded, pad = pad_spatial(x, self.padding, self.kernel_size, self.strides,
                                      self.dilation_rate)
            return conv(padded, self.kernel, self.bias, self.strides, pad, self.dilation_rate)
        gates = []
        for g, (kernel, mask) in enumerate(zip(self.kernel.chunk(4), masks)):
            padded, pad = pad_spatial(x * mask, self.padding, self.kernel_size, self.strides,
                                      self.dilation_rate)
            bias = None if self.bias is None else self.bias.chunk(4)[g]
            gates.append(conv(padded, kernel, bias, self.strides, pad, self.dilation_rate))
        return torch.cat(gates, dim=1)

    def recurrent_conv(self, h: torch.Tensor, masks: list[torch.Tensor] | None) -> torch.Tensor:
        ones = (1,) * self.rank
        conv = _CONV[self.rank]
        if masks is None:
            padded, pad = pad_spatial(h, "same", self.kernel_size, ones, ones)
            return conv(padded, self.recurrent_kernel, None, ones, pad)
        gates = []
        for kernel, mask in zip(self.recurrent_kernel.chunk(4), masks):
            padded, pad = pad_spatial(h * mask, "same", self.kernel_size, ones, ones)
            gates.append(conv(padded, kernel, None, ones, pad))
        return torch.cat(gates, dim=1)

    def step(self, projected: torch.Tensor, h: torch.Tensor, c: torch.Tensor,
             recurrent_masks: list[torch.Tensor] | None) -> tuple[torch.Tensor, torch.Tensor]:
        z = projected + self.recurrent_conv(h, recurrent_masks)
        i, f, g, o = z.chunk(4, dim=1)
        sigma = self.recurrent_activation
        c = sigma(f) * c + sigma(i) * self.activation(g)
        return sigma(o) * self.activation(c), c


class _ConvLSTM(Layer):
    """What ConvLSTM1D/2D/3D share."""

    rank = 2
    supports_masking = True

    def __init__(self, filters: int, kernel_size: Any, strides: Any = 1, padding: str = "valid",
                 data_format: str | None = None, dilation_rate: Any = 1,
                 activation: Any = "tanh", recurrent_activation: Any = "sigmoid",
                 use_bias: bool = True, kernel_initializer: Any = "glorot_uniform",
                 recurrent_initializer: Any = "orthogonal", bias_initializer: Any = "zeros",
                 unit_forget_bias: bool = True, kernel_regularizer: Any = None,
                 recurrent_regularizer: Any = None, bias_regularizer: Any = None,
                 activity_regularizer: Any = None, kernel_constraint: Any = None,
                 recurrent_constraint: Any = None, bias_constraint: Any = None,
                 dropout: float = 0.0, recurrent_dropout: float = 0.0, seed: Any = None,
                 return_sequences: bool = False, return_state: bool = False,
                 go_backwards: bool = False, stateful: bool = False, unroll: bool = False,
                 zero_output_for_mask: bool = False, **kwargs: Any):
        super().__init__(activity_regularizer=activity_regularizer, **kwargs)
        rank = self.rank
        self.filters = check_positive_int(self, "filters", filters)
        self.kernel_size = normalize_tuple(kernel_size, rank, "kernel_size", self)
        self.strides = normalize_tuple(strides, rank, "strides", self)
        self.padding = normalize_padding(padding, self)
        self.data_format = normalize_data_format(data_format, self)
        self.dilation_rate = normalize_tuple(dilation_rate, rank, "dilation_rate", self)
        if max(self.strides) > 1 and max(self.dilation_rate) > 1:
            raise ConfigError(f"Layer '{self.name}' ({type(self).__name__}): strides > 1 is not "
                              f"compatible with dilation_rate > 1. Received: strides="
                              f"{self.strides}, dilation_rate={self.dilation_rate}")
        values = {name: resolve(self, name, value) for name, value in (
            ("activation", activation), ("recurrent_activation", recurrent_activation),
            ("kernel_initializer", kernel_initializer),
            ("recurrent_initializer", recurrent_initializer),
            ("bias_initializer", bias_initializer), ("kernel_regularizer", kernel_regularizer),
            ("recurrent_regularizer", recurrent_regularizer),
            ("bias_regularizer", bias_regularizer), ("kernel_constraint", kernel_constraint),
            ("recurrent_constraint", recurrent_constraint), ("bias_constraint", bias_constraint))}
        self.dropout = check_rate(self, "dropout", dropout)
        self.recurrent_dropout = check_rate(self, "recurrent_dropout", recurrent_dropout)
        self.seed = seed
        self._generators = SeededGenerators(seed)
        self.return_sequences = bool(return_sequences)
        self.return_state = bool(return_state)
        self.go_backwards = bool(go_backwards)
        self.stateful = bool(stateful)
        self.unroll = bool(unroll)
        self.zero_output_for_mask = bool(zero_output_for_mask)
        self.cell = ConvLSTMCell(rank, self.filters, self.kernel_size, self.strides, self.padding,
                                 self.dilation_rate, use_bias=bool(use_bias),
                                 unit_forget_bias=bool(unit_forget_bias), **values,
                                 name=f"{self.name}_cell")
        self.states: list[torch.Tensor] | None = None

    def __getattr__(self, name: str) -> Any:
        # activation, kernel_initializer, ...: the cell holds them (as Keras's ConvLSTM).
        if name in ("activation", "recurrent_activation", "use_bias", "unit_forget_bias",
                    "kernel_initializer", "recurrent_initializer", "bias_initializer",
                    "kernel_regularizer", "recurrent_regularizer", "bias_regularizer",
                    "kernel_constraint", "recurrent_constraint", "bias_constraint",
                    "kernel", "recurrent_kernel", "bias"):
            return getattr(self._modules["cell"], name)
        return super().__getattr__(name)

    # ----------------------------------------------------------------------------- shapes
    def _spatial(self, shape: Shape) -> tuple[Any, ...]:
        return tuple(shape[3:]) if self.data_format == "channels_first" else tuple(shape[2:-1])

    def _step_output(self, shape: Shape) -> tuple[Any, ...]:
        spatial = tuple(conv_output_length(n, k, self.padding, s, d) for n, k, s, d in zip(
            self._spatial(shape), self.kernel_size, self.strides, self.dilation_rate))
        if self.data_format == "channels_first":
            return (self.filters, *spatial)
        return (*spatial, self.filters)

    def build(self, input_shape: Shape) -> None:
        shape = tuple(input_shape[0]) if is_shape_list(input_shape) else tuple(input_shape)
        owner = f"Layer '{self.name}' ({type(self).__name__})"
        if len(shape) != self.rank + 3:
            raise ShapeError(f"Input 0 of {owner} is incompatible with the layer: expected ndim="
                             f"{self.rank + 3} (batch, time, ...), found ndim={len(shape)}. Full "
                             f"shape received: {shape}")
        channels = shape[2] if self.data_format == "channels_first" else shape[-1]
        if channels is None or None in self._spatial(shape):
            raise ShapeError(f"{owner}: the channel and spatial dimensions must be defined. Full "
                             f"input shape received: {shape}")
        if any(n is not None and n < 1 for n in self._step_output(shape)):
            raise ShapeError(f"{owner}: the input {shape} is too small for kernel_size="
                             f"{self.kernel_size} with padding='valid'")
        self.cell._maybe_build((None, channels, *self._spatial(shape)), self._build_device)
        axis = 2 if self.data_format == "channels_first" else -1
        self.input_axes = {axis: channels}
        super().build(shape)

    def _check_input_shape(self, shape: Shape) -> None:
        if len(shape) != self.rank + 3:
            raise ShapeError(f"Input 0 of layer '{self.name}' ({type(self).__name__}) is "
                             f"incompatible with the layer: expected ndim={self.rank + 3}, found "
                             f"ndim={len(shape)}. Full shape received: {tuple(shape)}")
        super()._check_input_shape(shape)

    def compute_output_shape(self, input_shape: Shape) -> Any:
        shape = tuple(input_shape[0]) if is_shape_list(input_shape) else tuple(input_shape)
        step = self._step_output(shape)
        output = (shape[0], shape[1], *step) if self.return_sequences else (shape[0], *step)
        if self.return_state:
            return [output, (shape[0], *step), (shape[0], *step)]
        return output

    def compute_mask(self, inputs: Any, mask: Any = None) -> Any:
        if isinstance(mask, (list, tuple)):
            mask = mask[0]
        output_mask = mask if self.return_sequences else None
        return [output_mask, None, None] if self.return_state else output_mask

    # ----------------------------------------------------------------------------- call
    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return call_with_initial_state(super().__call__, args, kwargs)

    def reset_states(self, states: Any = None) -> None:
        if not self.stateful:
            raise ConfigError(f"Layer '{self.name}' ({type(self).__name__}) is not stateful; "
                              "reset_states() needs stateful=True")
        if states is not None:
            self.states = [torch.as_tensor(np.asarray(s), dtype=torch.float32,
                                           device=self.cell.kernel.device)
                           for s in states]
        elif self.states is not None:
            self.states = [torch.zeros_like(s) for s in self.states]

    reset_state = reset_states

    def _to_cf(self, t: torch.Tensor) -> torch.Tensor:
        """A per-step channels-last tensor (N, *S, C) -> channels-first (N, C, *S)."""
        if self.data_format == "channels_first":
            return t
        return t.permute(0, t.dim() - 1, *range(1, t.dim() - 1))

    def _from_cf(self, t: torch.Tensor) -> torch.Tensor:
        if self.data_format == "channels_first":
            return t
        return t.permute(0, *range(2, t.dim()), 1)

    def _initial(self, initial_state: Any, x: torch.Tensor, shape: tuple[int, ...]) -> list[Any]:
        batch = x.shape[0]
        expected = (batch, *self._step_output((None, None, *x.shape[2:])))
        if initial_state is not None:
            states = list(initial_state) if isinstance(initial_state, (list, tuple)) else [
                initial_state]
            states = [torch.as_tensor(s, device=x.device).to(x.dtype) for s in states]
            got = [tuple(s.shape) for s in states]
            if got != [expected, expected]:
                raise ShapeError(f"Layer '{self.name}' ({type(self).__name__}): initial_state "
                                 f"must be 2 tensors [h, c] of shape {expected}; received "
                                 f"{[describe(s) for s in states]}")
            return [self._to_cf(s) for s in states]
        if self.stateful and self.states is not None:
            if tuple(self.states[0].shape) != expected:
                raise ShapeError(f"Stateful layer '{self.name}' keeps states of shape "
                                 f"{tuple(self.states[0].shape)}; this batch needs {expected}")
            return [self._to_cf(s.to(device=x.device, dtype=x.dtype)) for s in self.states]
        zeros = x.new_zeros(expected)
        return [self._to_cf(zeros), self._to_cf(zeros)]

    def _masks(self, like: torch.Tensor, rate: float) -> list[torch.Tensor]:
        keep = 1.0 - rate
        return [torch.empty_like(like).bernoulli_(keep, generator=self._generators.get(like.device))
                / keep for _ in range(4)]

    def call(self, inputs: Any, training: bool = False, mask: Any = None,
             initial_state: Any = None) -> Any:
        owner = f"Layer '{self.name}' ({type(self).__name__})"
        if isinstance(inputs, (list, tuple)):  # [sequences, h, c] (functional API)
            inputs, initial_state = inputs[0], list(inputs[1:]) or None
        if isinstance(mask, (list, tuple)):
            mask = mask[0]
        x = cast_inputs(inputs, self.cell.kernel)
        batch, steps = x.shape[:2]
        if mask is not None:
            mask = check_mask(owner, mask, batch, steps, x.device)
        h, c = self._initial(initial_state, x, tuple(x.shape))
        frames = self._to_cf(x.reshape(batch * steps, *x.shape[2:]))
        input_masks = recurrent_masks = None
        if training and self.dropout > 0:  # one mask per gate and sequence, as Keras's cells
            input_masks = [m.repeat_interleave(steps, dim=0)
                           for m in self._masks(frames[::steps], self.dropout)]
        if training and self.recurrent_dropout > 0:
            recurrent_masks = self._masks(h, self.recurrent_dropout)
        projected = self.cell.input_conv(frames, input_masks)
        projected = projected.view(batch, steps, *projected.shape[1:])
        order = reversed(range(steps)) if self.go_backwards else range(steps)
        outputs, previous = [], torch.zeros_like(h)
        for t in order:
            h_new, c_new = self.cell.step(projected[:, t], h, c, recurrent_masks)
            if mask is not None:
                keep = mask[:, t].view(-1, *([1] * (h.dim() - 1)))
                out = torch.where(keep, h_new, torch.zeros_like(h_new)
                                  if self.zero_output_for_mask else previous)
                h, c = torch.where(keep, h_new, h), torch.where(keep, c_new, c)
            else:
                out, h, c = h_new, h_new, c_new
            previous = out
            if self.return_sequences:
                outputs.append(out)
        if self.stateful:
            self.states = [self._from_cf(h.detach()), self._from_cf(c.detach())]
        if self.return_sequences:
            seq = torch.stack(outputs, dim=1)
            output = self._from_cf(seq.flatten(0, 1)).reshape(
                batch, steps, *self._from_cf(previous).shape[1:])
        else:
            output = self._from_cf(previous)
        if self.return_state:
            return [output, self._from_cf(h), self._from_cf(c)]
        return output

    def get_config(self) -> dict[str, Any]:
        cell = self.cell
        return {**super().get_config(), "return_sequences": self.return_sequences,
                "return_state": self.return_state, "go_backwards": self.go_backwards,
                "stateful": self.stateful, "unroll": self.unroll,
                "zero_output_for_mask": self.zero_output_for_mask, "filters": self.filters,
                "kernel_size": list(self.kernel_size), "strides": list(self.strides),
                "padding": self.padding, "data_format": self.data_format,
                "dilation_rate": list(self.dilation_rate),
                "activation": activations.serialize(cell.activation),
                "recurrent_activation": activations.serialize(cell.recurrent_activation),
                "use_bias": cell.use_bias,
                "kernel_initializer": initializers.serialize(cell.kernel_initializer),
                "recurrent_initializer": initializers.serialize(cell.recurrent_initializer),
                "bias_initializer": initializers.serialize(cell.bias_initializer),
                "unit_forget_bias": cell.unit_forget_bias,
                "kernel_regularizer": regularizers.serialize(cell.kernel_regularizer),
                "recurrent_regularizer": regularizers.serialize(cell.recurrent_regularizer),
                "bias_regularizer": regularizers.serialize(cell.bias_regularizer),
                "activity_regularizer": regularizers.serialize(self.activity_regularizer),
                "kernel_constraint": constraints.serialize(cell.kernel_constraint),
                "recurrent_constraint": constraints.serialize(cell.recurrent_constraint),
                "bias_constraint": constraints.serialize(cell.bias_constraint),
                "dropout": self.dropout, "recurrent_dropout": self.recurrent_dropout,
                "seed": self.seed}


class ConvLSTM1D(_ConvLSTM):
    """1-D convolutional LSTM: input ``(batch, time, steps, channels)``."""

    rank = 1


class ConvLSTM2D(_ConvLSTM):
    """2-D convolutional LSTM: input ``(batch, time, rows, cols, channels)``."""

    rank = 2


class ConvLSTM3D(_ConvLSTM):
    """3-D convolutional LSTM: input ``(batch, time, dim1, dim2, dim3, channels)``."""

    rank = 3


# _ConvLSTM.__call__ only turns symbolic initial states into graph inputs: a plain tensor call keeps
# Layer's dispatch, so a verified one may take the direct path (Layer._call_direct).
DIRECT_DISPATCH.add(_ConvLSTM.__call__)
