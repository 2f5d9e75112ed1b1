"""Plain-PyTorch recurrent layers with Keras weight layouts: ``SimpleRNN``, ``LSTM``, ``GRU``.

``SimpleRNN`` is the textbook recurrence, one step per input::

    h_t = tanh(W h_{t-1} + U x_t + b)          (W: recurrent_kernel, U: kernel, one bias b)

``LSTM`` (gates i, f, c, o) and ``GRU`` (gates z, r, h, reset applied after the matrix product, as
Keras 3 and cuDNN do) follow Keras's equations. All three run on PyTorch's fused kernels (see
:mod:`bigmodel.nn.recurrent_kernels`) and hold Keras's parameters: an LSTM has **one** bias
vector of ``4 * hidden_size`` (PyTorch's ``nn.LSTM`` has two), so parameter counts equal Keras's.

Inputs are batch-first ``(B, T, input_size)``. Variable-length batches: pass ``lengths`` ``(B,)`` (each
in ``[1, T]``, steps past it are padding) or a boolean ``mask`` ``(B, T)`` whose valid steps form
one block per row (right- or left-padding). Each sequence then gives exactly what it gives alone:
outputs at padded steps are zero, final states are those of its last valid step. While a graph is
captured for export (``torch.export`` / ONNX), ``lengths`` take a branch-free path with the same
outputs and ``h_n`` (:func:`~bigmodel.nn.recurrent_kernels.fused_padded`; an LSTM's ``c_n`` is then
``None``) and the lengths' values are not checked.

Parameters, per layer ``k`` and direction (suffix ``_reverse`` for the backward one)::

    kernel_l{k}            (G * hidden_size, input_size_k)   Keras kernel, transposed
    recurrent_kernel_l{k}  (G * hidden_size, hidden_size)    Keras recurrent_kernel, transposed
    bias_l{k}              (G * hidden_size,) or GRU (2, 3 * hidden_size)

``get_keras_weights`` / ``set_keras_weights`` read and write them in Keras shapes, and
``from_torch`` converts a trained ``nn.LSTM`` / ``nn.GRU`` / ``nn.RNN``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from torch import nn

from bigmodel.errors import ConfigError, DataError, InputTypeError, ShapeError, describe
from bigmodel.nn.graph_mode import capturing_graph
from bigmodel.nn.recurrent_kernels import (
    GATES,
    fused,
    fused_packed,
    fused_padded,
    gru_rows_to_torch,
    roll_rows,
    torch_weights,
    valid_block,
)

__all__ = ["GRU", "LSTM", "SimpleRNN", "check_lengths"]

_WEIGHT_INITS = ("keras", "torch_default")


def check_lengths(owner: str, lengths: Any, batch: int, steps: int,
                  device: torch.device) -> torch.Tensor:
    """``lengths`` as an int64 tensor ``(B,)``, each in ``[1, steps]``.

    Raises:
        ShapeError: not one length per sequence.
        DataError: a length is zero/negative or longer than the padded sequence.
    """
    lengths = torch.as_tensor(lengths, device=device)
    if lengths.dim() != 1 or lengths.shape[0] != batch:
        raise ShapeError(f"{owner}: `lengths` must hold one length per sequence, shape ({batch},); "
                         f"received {describe(lengths)}")
    if lengths.is_floating_point() or lengths.dtype == torch.bool:
        raise InputTypeError(f"{owner}: `lengths` must be integers; received {describe(lengths)}")
    lengths = lengths.long()
    if capturing_graph():  # a graph cannot hold a check of values; the shape checks above stay
        return lengths
    low, high = int(lengths.min()), int(lengths.max())
    if low < 1 or high > steps:
        raise DataError(f"{owner}: every length must be in [1, {steps}] (the padded sequence has "
                        f"{steps} steps); received lengths in [{low}, {high}]")
    return lengths


def check_mask(owner: str, mask: Any, batch: int, steps: int, device: torch.device) -> torch.Tensor:
    """``mask`` as a boolean tensor ``(B, T)`` (0/1 numbers accepted).

    Raises:
        ShapeError: the mask is not ``(batch, timesteps)`` of the inputs.
    """
    mask = torch.as_tensor(mask, device=device)
    if tuple(mask.shape) != (batch, steps):
        raise ShapeError(f"{owner}: the mask must have shape (batch, timesteps) = ({batch}, "
                         f"{steps}), one entry per step of the inputs; received {describe(mask)}")
    return mask if mask.dtype == torch.bool else mask != 0


class RecurrentBase(nn.Module):
    """Shared machinery of the three layers (a stack of ``num_layers``, one or two directions)."""

    cell = "simple"

    def __init__(self, input_size: int, hidden_size: int, num_layers: int = 1,
                 bidirectional: bool = False, dropout: float = 0.0, bias: bool = True,
                 weight_init: str = "keras") -> None:
        super().__init__()
        name = type(self).__name__
        for arg, value in (("input_size", input_size), ("hidden_size", hidden_size),
                           ("num_layers", num_layers)):
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ConfigError(f"{name}: '{arg}' must be a positive int; received {value!r}")
        if not isinstance(dropout, (int, float)) or not 0.0 <= dropout < 1.0:
            raise ConfigError(f"{name}: 'dropout' must be in [0, 1); received {dropout!r}")
        if weight_init not in _WEIGHT_INITS:
            raise ConfigError(f"{name}: 'weight_init' must be one of {', '.join(_WEIGHT_INITS)}; "
                              f"received {weight_init!r}")
        self.input_size = input_size
        self.hidden_size = hidden_size
        self.num_layers = num_layers
        self.bidirectional = bool(bidirectional)
        self.num_directions = 2 if bidirectional else 1
        self.dropout = float(dropout)
        self.use_bias = bool(bias)
        self.weight_init = weight_init
        gates = GATES[self.cell]
        for layer in range(num_layers):
            layer_input = input_size if layer == 0 else hidden_size * self.num_directions
            for suffix in self._suffixes(layer):
                self.register_parameter(
                    "kernel" + suffix, nn.Parameter(torch.empty(gates * hidden_size, layer_input)))
                self.register_parameter(
                    "recurrent_kernel" + suffix,
                    nn.Parameter(torch.empty(gates * hidden_size, hidden_size)))
                bias_shape = (2, gates * hidden_size) if self.cell == "gru" else (gates * hidden_size,)
                self.register_parameter(
                    "bias" + suffix, nn.Parameter(torch.empty(bias_shape)) if bias else None)
        self.reset_parameters()

    def _suffixes(self, layer: int) -> list[str]:
        return [f"_l{layer}", f"_l{layer}_reverse"][: self.num_directions]

    def _triples(self) -> list[tuple[str, torch.Tensor, torch.Tensor, torch.Tensor | None]]:
        return [(suffix, getattr(self, "kernel" + suffix), getattr(self, "recurrent_kernel" + suffix),
                 getattr(self, "bias" + suffix))
                for layer in range(self.num_layers) for suffix in self._suffixes(layer)]

    def reset_parameters(self) -> None:
        """Keras's initialization (``weight_init="keras"``): Glorot-uniform kernels, orthogonal
        recurrent kernels, zero biases (an LSTM's forget gate bias 1); or PyTorch's uniform
        ``(-1/sqrt(H), 1/sqrt(H))``."""
        bound = 1.0 / math.sqrt(self.hidden_size)
        with torch.no_grad():
            for _, kernel, recurrent, bias in self._triples():
                if self.weight_init == "torch_default":
                    for tensor in (kernel, recurrent, bias):
                        if tensor is not None:
                            tensor.uniform_(-bound, bound)
                    continue
                nn.init.xavier_uniform_(kernel)
                nn.init.orthogonal_(recurrent)  # (G*H, H): orthonormal columns = Keras's rows
                if bias is not None:
                    bias.zero_()
                    if self.cell == "lstm":
                        bias[self.hidden_size:2 * self.hidden_size] = 1.0

    # ----------------------------------------------------------------------------- forward
    def _check_inputs(self, x: Any) -> torch.Tensor:
        name = type(self).__name__
        if not isinstance(x, torch.Tensor):
            raise InputTypeError(f"{name} expects a torch.Tensor (B, T, {self.input_size}); "
                                 f"received {describe(x)}")
        if x.dim() != 3:
            raise ShapeError(f"{name} expects inputs of rank 3 (batch, timesteps, features) = "
                             f"(B, T, {self.input_size}); received {describe(x)}")
        if x.shape[-1] != self.input_size:
            raise ShapeError(f"{name} was built for {self.input_size} features per step; received "
                             f"inputs with {x.shape[-1]}: {describe(x)}")
        if x.shape[1] == 0:
            raise ShapeError(f"{name}: inputs have no time steps: {describe(x)}")
        weight = self.kernel_l0
        if x.dtype != weight.dtype and not torch.is_autocast_enabled(x.device.type):
            x = x.to(weight.dtype)
        return x

    def _initial_state(self, x: torch.Tensor, state: Any) -> torch.Tensor | tuple:
        shape = (self.num_layers * self.num_directions, x.shape[0], self.hidden_size)
        if state is None:
            zeros = x.new_zeros(shape)
            return (zeros, zeros) if self.cell == "lstm" else zeros
        parts = state if self.cell == "lstm" else (state,)
        if self.cell == "lstm" and (not isinstance(state, (tuple, list)) or len(state) != 2):
            raise InputTypeError(f"{type(self).__name__}: the state must be a pair (h0, c0); "
                                 f"received {describe(state)}")
        for part in parts:
            if tuple(part.shape) != shape:
                raise ShapeError(f"{type(self).__name__}: initial state must have shape "
                                 f"(num_layers * num_directions, B, hidden_size) = {shape}; "
                                 f"received {describe(part)}")
        return tuple(p.to(x.dtype) for p in parts) if self.cell == "lstm" else state.to(x.dtype)

    def forward(self, x: torch.Tensor, state: Any = None, lengths: Any = None,
                mask: Any = None) -> tuple[torch.Tensor, Any]:
        """Run the stack over ``x``.

        Args:
            x: ``(B, T, input_size)``.
            state: ``h0`` ``(num_layers * D, B, hidden_size)``; for an LSTM ``(h0, c0)``.
            lengths: ``(B,)`` valid steps per sequence (right padding), each in ``[1, T]``.
            mask: ``(B, T)`` boolean, ``True`` at valid steps, one contiguous block per row.

        Returns:
            ``(outputs (B, T, D * hidden_size), h_n)``, or ``(outputs, (h_n, c_n))`` for an LSTM;
            ``h_n`` is ``(num_layers * D, B, hidden_size)``, backward direction second.

        Raises:
            ShapeError / InputTypeError: wrong rank, feature size, state, lengths or mask shape.
            DataError: a length outside ``[1, T]``, a mask with holes or an empty row.
        """
        name = type(self).__name__
        x = self._check_inputs(x)
        batch, steps = x.shape[:2]
        hx = self._initial_state(x, state)
        start = None
        if lengths is not None and mask is not None:
            raise ConfigError(f"{name}: pass either `lengths` or `mask`, not both")
        if lengths is not None:
            lengths = check_lengths(name, lengths, batch, steps, x.device)
        elif mask is not None:
            mask = check_mask(name, mask, batch, steps, x.device)
            block = valid_block(mask)
            if block is None:
                raise DataError(f"{name}: each row of the mask must be one block of valid steps "
                                "(padding before and/or after); this mask has gaps. Use the "
                                "Keras layers for masks with gaps (they skip masked steps)")
            start, lengths = block
            if int(lengths.min()) < 1:
                raise DataError(f"{name}: every sequence needs at least one valid step; the mask "
                                f"has {int((lengths == 0).sum())} empty row(s)")
            if not bool((start > 0).any()):
                start = None
        weights = [w for _, k, r, b in self._triples() for w in torch_weights(self.cell, k, r, b)]
        options = {"num_layers": self.num_layers, "bidirectional": self.bidirectional,
                   "dropout": self.dropout, "training": self.training,
                   "nonlinearity": getattr(self, "nonlinearity", "tanh")}
        if lengths is not None and start is None and capturing_graph():
            out, h, c = fused_padded(self.cell, x, lengths, weights, hx, **options)
        elif lengths is None or bool((lengths == steps).all()):
            out, h, c = fused(self.cell, x, weights, hx, **options)
        else:
            if start is not None:
                x = roll_rows(x, start)
            out, h, c = fused_packed(self.cell, x, lengths, weights, hx, **options)
            if start is not None:
                out = roll_rows(out, -start)
        return out, ((h, c) if self.cell == "lstm" else h)

    # ----------------------------------------------------------------------------- Keras weights
    def _weights_of(self, layer: int, reverse: bool) -> tuple[torch.Tensor, torch.Tensor, Any]:
        if not 0 <= layer < self.num_layers or (reverse and not self.bidirectional):
            raise ConfigError(f"{type(self).__name__} has {self.num_layers} layer(s), "
                              f"{self.num_directions} direction(s); no layer={layer}, "
                              f"reverse={reverse}")
        suffix = f"_l{layer}" + ("_reverse" if reverse else "")
        return (getattr(self, "kernel" + suffix), getattr(self, "recurrent_kernel" + suffix),
                getattr(self, "bias" + suffix))

    def get_keras_weights(self, layer: int = 0, reverse: bool = False) -> list[np.ndarray]:
        """``[kernel, recurrent_kernel(, bias)]`` of one layer/direction in Keras shapes."""
        kernel, recurrent, bias = self._weights_of(layer, reverse)
        arrays = [kernel.detach().T.cpu().numpy().copy(), recurrent.detach().T.cpu().numpy().copy()]
        if bias is not None:
            arrays.append(bias.detach().cpu().numpy().copy())
        return arrays

    def set_keras_weights(self, weights: Sequence[Any], layer: int = 0,
                          reverse: bool = False) -> None:
        """Load Keras arrays ``[kernel (in, G*H), recurrent_kernel (H, G*H)(, bias)]``.

        Raises:
            ShapeError: wrong number of arrays or a shape that differs from Keras's.
        """
        targets = [t for t in self._weights_of(layer, reverse) if t is not None]
        weights = list(weights)
        if len(weights) != len(targets):
            raise ShapeError(f"{type(self).__name__}.set_keras_weights expects {len(targets)} "
                             f"arrays (kernel, recurrent_kernel, bias); received {len(weights)}")
        for index, (target, value) in enumerate(zip(targets, weights)):
            array = torch.as_tensor(np.asarray(value), dtype=target.dtype)
            if index < 2:
                array = array.T
            if tuple(array.shape) != tuple(target.shape):
                expected = tuple(target.shape[::-1]) if index < 2 else tuple(target.shape)
                raise ShapeError(f"{type(self).__name__}.set_keras_weights: array {index} must "
                                 f"have Keras shape {expected}; received {tuple(np.shape(value))}")
            with torch.no_grad():
                target.copy_(array.to(target.device))

    @classmethod
    def from_torch(cls, module: nn.RNNBase) -> RecurrentBase:
        """A bigmodel layer with the weights of a PyTorch ``nn.LSTM``/``nn.GRU``/``nn.RNN``.

        Two biases collapse into one (their sum) for LSTM/SimpleRNN; GRU gates are reordered.

        Raises:
            ConfigError: a module of another kind, with ``proj_size`` or ``batch_first=False``.
        """
        expected = {"lstm": nn.LSTM, "gru": nn.GRU, "simple": nn.RNN}[cls.cell]
        if type(module) is not expected or getattr(module, "proj_size", 0):
            raise ConfigError(f"{cls.__name__}.from_torch expects an nn.{expected.__name__} without "
                              f"projections; received {type(module).__name__}")
        kwargs = {"num_layers": module.num_layers, "bidirectional": module.bidirectional,
                  "dropout": module.dropout, "bias": module.bias}
        if cls.cell == "simple":
            kwargs["nonlinearity"] = module.nonlinearity
        layer = cls(module.input_size, module.hidden_size, **kwargs)
        # r, z, n -> z, r, h swaps the first two blocks: the same swap as Keras -> torch.
        order = gru_rows_to_torch if cls.cell == "gru" else (lambda w: w)
        with torch.no_grad():
            for suffix, kernel, recurrent, bias in layer._triples():
                kernel.copy_(order(getattr(module, "weight_ih" + suffix)))
                recurrent.copy_(order(getattr(module, "weight_hh" + suffix)))
                if bias is None:
                    continue
                b_ih, b_hh = getattr(module, "bias_ih" + suffix), getattr(module, "bias_hh" + suffix)
                if cls.cell == "gru":
                    bias.copy_(torch.stack([order(b_ih), order(b_hh)]))
                else:
                    bias.copy_(b_ih + b_hh)
        return layer.to(module.weight_ih_l0.device)

    def extra_repr(self) -> str:
        text = f"{self.input_size}, {self.hidden_size}"
        if self.num_layers != 1:
            text += f", num_layers={self.num_layers}"
        if self.bidirectional:
            text += ", bidirectional=True"
        if self.dropout:
            text += f", dropout={self.dropout}"
        if not self.use_bias:
            text += ", bias=False"
        return text


class SimpleRNN(RecurrentBase):
    """``h_t = act(W h_{t-1} + U x_t + b)`` with ``act`` = ``tanh`` (default) or ``relu``.

    Args:
        input_size, hidden_size, num_layers, bidirectional, bias, weight_init: as for LSTM.
        nonlinearity: ``"tanh"`` or ``"relu"`` (the activations with a fused kernel).
        dropout: dropout on the outputs of each layer but the last.
    """

    cell = "simple"

    def __init__(self, input_size: int, hidden_size: int, num_layers: int = 1,
                 bidirectional: bool = False, dropout: float = 0.0, bias: bool = True,
                 nonlinearity: str = "tanh", weight_init: str = "keras") -> None:
        if nonlinearity not in ("tanh", "relu"):
            raise ConfigError(f"SimpleRNN: 'nonlinearity' must be 'tanh' or 'relu'; received "
                              f"{nonlinearity!r} (the Keras layer accepts any activation)")
        super().__init__(input_size, hidden_size, num_layers, bidirectional, dropout, bias,
                         weight_init)
        self.nonlinearity = nonlinearity


class LSTM(RecurrentBase):
    """Long short-term memory with Keras's gates (i, f, c, o) and one bias vector.

    Args:
        input_size: features per step.
        hidden_size: units.
        num_layers: stacked layers (one fused call runs the stack, as ``nn.LSTM``).
        bidirectional: add a backward direction; outputs concatenate (forward, backward).
        dropout: dropout on the outputs of each layer but the last (training only).
        bias: use the bias vector.
        weight_init: ``"keras"`` (Glorot/orthogonal/forget bias 1) or ``"torch_default"``.
    """

    cell = "lstm"


class GRU(RecurrentBase):
    """Gated recurrent unit, Keras 3 / cuDNN convention (``reset_after=True``), gates z, r, h.

    ``h_t = z * h_{t-1} + (1 - z) * tanh(x W_h + b_h + r * (h_{t-1} U_h + b'_h))``; the bias is
    ``(2, 3 * hidden_size)``: input biases, then recurrent biases. Arguments as for LSTM.
    """

    cell = "gru"
