"""Recurrent kernels: PyTorch's fused recurrent ops fed with Keras weight layouts, and the per-step
loop used where no fused op exists.

Every recurrent weight in bigmodel is kept in **Keras gate order** and **torch axis layout**::

    kernel            (G * units, input_size)   = Keras ``kernel`` (input_size, G * units) transposed
    recurrent_kernel  (G * units, units)        = Keras ``recurrent_kernel`` transposed
    bias              (G * units,)              one vector (LSTM, SimpleRNN, GRU reset_after=False)
                      (2, G * units)            GRU reset_after=True: input bias, recurrent bias

with ``G = 1`` for SimpleRNN, ``4`` for LSTM (gates i, f, c, o: the same order as PyTorch's i, f, g,
o) and ``3`` for GRU (gates z, r, h; PyTorch orders them r, z, n).

Which path runs
    * **fused** -- ``torch._VF.lstm`` / ``gru`` / ``rnn_tanh`` / ``rnn_relu``, the ops behind
      ``nn.LSTM``/``nn.GRU``/``nn.RNN`` (oneDNN for LSTM on CPU, cuDNN on GPU). PyTorch's LSTM adds two
      bias vectors; Keras has one, so the second is passed as zeros: the same kernel runs and the
      parameter count stays Keras's. GRU gates are reordered z, r, h -> r, z, n on the fly (a copy of
      the weights per call, not per step). Used for tanh/sigmoid LSTM and GRU (reset_after=True),
      tanh/relu SimpleRNN, no recurrent dropout, and no mask or a mask whose valid steps form one
      contiguous block per sequence (right- or left-padding).
    * **loop** -- one Python iteration per time step: any other activation, GRU with
      ``reset_after=False``, ``recurrent_dropout`` in training, and masks with holes.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Sequence

import torch
import torch.nn.functional as F
from torch import _VF
from torch.nn.utils.rnn import PackedSequence, pack_padded_sequence, pad_packed_sequence

GATES = {"simple": 1, "lstm": 4, "gru": 3}

Activation = Callable[[torch.Tensor], torch.Tensor]


# ------------------------------------------------------------------------------- weight layouts
def gru_rows_to_torch(weight: torch.Tensor) -> torch.Tensor:
    """Rows z, r, h (Keras) -> r, z, n (PyTorch) along the first axis."""
    units = weight.shape[0] // 3
    return torch.cat([weight[units:2 * units], weight[:units], weight[2 * units:]])


def torch_weights(cell: str, kernel: torch.Tensor, recurrent_kernel: torch.Tensor,
                  bias: torch.Tensor | None) -> list[torch.Tensor]:
    """The ``[w_ih, w_hh(, b_ih, b_hh)]`` list a fused op takes, from Keras-ordered weights."""
    if cell == "gru":
        weights = [gru_rows_to_torch(kernel), gru_rows_to_torch(recurrent_kernel)]
        if bias is not None:
            weights += [gru_rows_to_torch(bias[0]), gru_rows_to_torch(bias[1])]
        return weights
    weights = [kernel, recurrent_kernel]
    if bias is not None:
        # One Keras bias; the op adds b_ih + b_hh, so b_hh is zero (no gradient, no parameter).
        weights += [bias, _zeros_like(bias)]
    return weights


_ZEROS: dict[tuple, torch.Tensor] = {}


def _zeros_like(bias: torch.Tensor) -> torch.Tensor:
    """A zero vector like ``bias``, made once per (shape, dtype, device): the fused ops only read
    it, and a fresh one per call was an allocation per layer and batch. (Bounded: one per bias
    shape in use.)"""
    key = (bias.shape, bias.dtype, bias.device)
    zeros = _ZEROS.get(key)
    if zeros is None:
        if len(_ZEROS) > 64:
            _ZEROS.clear()
        # an ordinary tensor even when first asked under inference_mode (training uses it too)
        with torch.inference_mode(False), torch.no_grad():
            zeros = _ZEROS[key] = torch.zeros(bias.shape, dtype=bias.dtype, device=bias.device)
    return zeros


# ------------------------------------------------------------------------------- fused ops
def fused(cell: str, x: torch.Tensor, weights: Sequence[torch.Tensor], state: torch.Tensor | tuple,
          *, num_layers: int = 1, bidirectional: bool = False, dropout: float = 0.0,
          training: bool = False, nonlinearity: str = "tanh",
          batch_sizes: torch.Tensor | None = None,
          ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
    """Run a fused recurrent op over a stack of layers.

    Args:
        cell: ``"lstm"``, ``"gru"`` or ``"simple"``.
        x: ``(B, T, F)`` batch-first, or packed data ``(N, F)`` when ``batch_sizes`` is given.
        weights: :func:`torch_weights` of every layer and direction, in order (layer 0 forward,
            layer 0 backward, layer 1 forward, ...).
        state: ``h0`` ``(num_layers * D, B, H)``, or ``(h0, c0)`` for an LSTM.
        nonlinearity: ``"tanh"`` or ``"relu"`` for a SimpleRNN.

    Returns:
        ``(outputs, h_n, c_n)``; outputs ``(B, T, D * H)`` (packed data when packed), ``c_n`` is
        ``None`` except for an LSTM.
    """
    per_layer = len(weights) // (num_layers * (2 if bidirectional else 1))
    has_bias = per_layer == 4
    weights = list(weights)
    if x.is_cuda:
        # cuDNN wants one flat weight buffer and copies separate weights into one per call (cheap
        # next to the recurrence); its warning about it is expected here.
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message="RNN module weights are not part")
            return _fused(cell, x, weights, state, has_bias, num_layers, bidirectional, dropout,
                          training, nonlinearity, batch_sizes)
    return _fused(cell, x, weights, state, has_bias, num_layers, bidirectional, dropout, training,
                  nonlinearity, batch_sizes)


def _fused(cell, x, weights, state, has_bias, num_layers, bidirectional, dropout, training,
           nonlinearity, batch_sizes):
    if cell == "lstm":
        if batch_sizes is None:
            out, h, c = _VF.lstm(x, state, weights, has_bias, num_layers, dropout, training,
                                 bidirectional, True)
        else:
            out, h, c = _VF.lstm(x, batch_sizes, state, weights, has_bias, num_layers, dropout,
                                 training, bidirectional)
        return out, h, c
    if cell == "gru":
        op = _VF.gru
    else:
        op = _VF.rnn_relu if nonlinearity == "relu" else _VF.rnn_tanh
    if batch_sizes is None:
        out, h = op(x, state, weights, has_bias, num_layers, dropout, training, bidirectional, True)
    else:
        out, h = op(x, batch_sizes, state, weights, has_bias, num_layers, dropout, training,
                    bidirectional)
    return out, h, None


def fused_packed(cell: str, x: torch.Tensor, lengths: torch.Tensor,
                 weights: Sequence[torch.Tensor], state: torch.Tensor | tuple, **options,
                 ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
    """:func:`fused` on right-padded ``x`` ``(B, T, F)`` with ``lengths`` ``(B,)`` in ``[1, T]``.

    Each sequence is run over its own steps only (packing): outputs past a sequence's length are
    zero, and its final states are those of its last valid step -- what running it alone gives.
    """
    packed = pack_padded_sequence(x, lengths.cpu(), batch_first=True, enforce_sorted=False)
    order, unorder = packed.sorted_indices, packed.unsorted_indices
    if isinstance(state, tuple):
        state = tuple(s.index_select(1, order) for s in state)
    else:
        state = state.index_select(1, order)
    out, h, c = fused(cell, packed.data, weights, state, batch_sizes=packed.batch_sizes, **options)
    out, _ = pad_packed_sequence(PackedSequence(out, packed.batch_sizes, order, unorder),
                                 batch_first=True, total_length=x.shape[1])
    h = h.index_select(1, unorder)
    c = c.index_select(1, unorder) if c is not None else None
    return out, h, c


def fused_padded(cell: str, x: torch.Tensor, lengths: torch.Tensor,
                 weights: Sequence[torch.Tensor], state: torch.Tensor | tuple, *,
                 num_layers: int = 1, bidirectional: bool = False, dropout: float = 0.0,
                 training: bool = False, nonlinearity: str = "tanh",
                 ) -> tuple[torch.Tensor, torch.Tensor, None]:
    """:func:`fused_packed` without packing: no value-dependent step, so a graph (ONNX) can hold it.

    Layer by layer, the forward direction runs over the padded batch (a recurrence is causal, so
    the steps before each length are exact), and the backward direction over each sequence
    reversed within its length (:func:`reverse_padded`, padding stays after the tokens). Outputs
    (zero past each length) and ``h_n`` equal :func:`fused_packed`'s; the LSTM cell state ``c_n``
    at each sequence's last step is not recoverable from the per-step outputs and is ``None``.
    """
    directions = 2 if bidirectional else 1
    per_direction = len(weights) // (num_layers * directions)
    h0, c0 = state if isinstance(state, tuple) else (state, None)
    lengths = lengths.to(x.device)
    valid = lengths_to_mask(lengths, x.shape[1])[..., None]
    rows = torch.arange(x.shape[0], device=x.device)
    last = lengths - 1
    # Sizes come from the input: the exporter may give a recurrent op's output a fixed length.
    reverse = reverse_index(lengths, x.shape[1]) if bidirectional else None
    layer_input, finals = x, []
    for layer in range(num_layers):
        outputs = []
        for direction in range(directions):
            index = layer * directions + direction
            layer_weights = weights[index * per_direction:(index + 1) * per_direction]
            hx = h0[index:index + 1] if c0 is None else (h0[index:index + 1],
                                                         c0[index:index + 1])
            steps = reverse_padded(layer_input, lengths, reverse) if direction else layer_input
            out, _, _ = fused(cell, steps, layer_weights, hx, nonlinearity=nonlinearity)
            finals.append(out[rows, last])
            outputs.append(reverse_padded(out, lengths, reverse) if direction else out)
        out = torch.cat(outputs, dim=-1) if directions == 2 else outputs[0]
        out = torch.where(valid, out, torch.zeros((), dtype=out.dtype, device=out.device))
        if dropout and training and layer < num_layers - 1:
            out = F.dropout(out, dropout, training=True)
        layer_input = out
    return layer_input, torch.stack(finals), None


def reverse_padded(x: torch.Tensor, lengths: torch.Tensor,
                   index: torch.Tensor | None = None) -> torch.Tensor:
    """``out[b, t] = x[b, lengths[b] - 1 - t]`` for ``t < lengths[b]``, padded steps unchanged.

    Reverses each right-padded sequence of ``x`` ``(B, T, ...)`` within its length; its own
    inverse. ``index``: :func:`reverse_index` already computed (for several tensors of one batch).
    """
    if index is None:
        index = reverse_index(lengths, x.shape[1])
    return x[torch.arange(x.shape[0], device=x.device)[:, None], index.to(x.device)]


def reverse_index(lengths: torch.Tensor, steps: int) -> torch.Tensor:
    """``(B, T)`` step indices that reverse each sequence within its length (padding stays)."""
    position = torch.arange(steps, device=lengths.device)[None, :]
    length = lengths[:, None]
    return torch.where(position < length, length - 1 - position, position)


# ------------------------------------------------------------------------------- masks
def valid_block(mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor] | None:
    """``(start, length)`` per row when each row's ``True`` steps form one contiguous block.

    Right padding gives ``start == 0``; left padding ``start == T - length``. A row with no valid
    step has ``start == 0, length == 0``. Returns ``None`` when some row has holes.
    """
    steps = mask.to(torch.int32)
    length = steps.sum(1)
    rises = (torch.diff(steps, dim=1, prepend=steps.new_zeros(steps.shape[0], 1)) == 1).sum(1)
    if bool((rises > 1).any()):
        return None
    start = (steps.cumsum(1) == 0).sum(1)
    start = torch.where(length == 0, torch.zeros_like(start), start)
    return start, length


def roll_rows(x: torch.Tensor, shift: torch.Tensor) -> torch.Tensor:
    """``out[b, t] = x[b, (t + shift[b]) % T]`` for ``x`` ``(B, T, ...)``."""
    steps = x.shape[1]
    index = (torch.arange(steps, device=x.device)[None, :] + shift[:, None].to(x.device)) % steps
    index = index.view(*index.shape, *([1] * (x.dim() - 2))).expand_as(x)
    return x.gather(1, index)


def lengths_to_mask(lengths: torch.Tensor, steps: int) -> torch.Tensor:
    """``(B, T)`` boolean mask, ``True`` for the first ``lengths[b]`` steps of row ``b``."""
    return torch.arange(steps, device=lengths.device)[None, :] < lengths[:, None]


# ------------------------------------------------------------------------------- one layer
def run_sequence(cell: str, x: torch.Tensor, kernel: torch.Tensor, recurrent_kernel: torch.Tensor,
                 bias: torch.Tensor | None, state: Sequence[torch.Tensor],
                 mask: torch.Tensor | None = None, *, use_fused: bool = True,
                 activation: Activation = torch.tanh,
                 recurrent_activation: Activation = torch.sigmoid, nonlinearity: str = "tanh",
                 reset_after: bool = True, zero_output_for_mask: bool = False,
                 need_cell_state: bool = True,
                 input_masks: Sequence[torch.Tensor] | None = None,
                 recurrent_masks: Sequence[torch.Tensor] | None = None,
                 ) -> tuple[torch.Tensor, list[torch.Tensor | None]]:
    """One recurrent layer, one direction, over ``x`` ``(B, T, F)`` with Keras's mask semantics.

    A masked step leaves the states unchanged; its output is the previous ``h`` (zeros when
    ``zero_output_for_mask``). Steps run in the given order (flip ``x`` and ``mask`` beforehand
    for ``go_backwards``).

    Args:
        state: ``[h0]`` or ``[h0, c0]`` for an LSTM, each ``(B, units)``.
        mask: ``(B, T)`` boolean, ``True`` where the step is used.
        use_fused: the caller's verdict that the configuration has a fused op (standard
            activations, GRU reset_after, no recurrent dropout); masks with holes still loop.
        need_cell_state: an LSTM's final ``c`` is needed (return_state / stateful). When it is not,
            a padded batch runs the faster unpacked kernel and reads ``h`` at each length.
        input_masks / recurrent_masks: dropout masks (already scaled), one per gate for the loop,
            ``(B, F)`` and ``(B, units)``; with the fused path apply input dropout to ``x`` first.

    Returns:
        ``(outputs (B, T, units), final states [h] or [h, c])``.
    """
    if mask is not None and bool(mask.all()):
        mask = None
    if use_fused and recurrent_masks is None and input_masks is None:
        block = valid_block(mask) if mask is not None else None
        if mask is None or block is not None:
            return _fused_layer(cell, x, kernel, recurrent_kernel, bias, state, mask, block,
                                nonlinearity, zero_output_for_mask, need_cell_state)
    return loop(cell, x, kernel, recurrent_kernel, bias, state, mask, activation=activation,
                recurrent_activation=recurrent_activation, reset_after=reset_after,
                zero_output_for_mask=zero_output_for_mask, input_masks=input_masks,
                recurrent_masks=recurrent_masks)


def _fused_layer(cell, x, kernel, recurrent_kernel, bias, state, mask, block, nonlinearity,
                 zero_output_for_mask, need_cell_state):
    weights = torch_weights(cell, kernel, recurrent_kernel, bias)
    lstm = cell == "lstm"
    hx = (state[0][None], state[1][None]) if lstm else state[0][None]
    if block is None:
        out, h, c = fused(cell, x, weights, hx, nonlinearity=nonlinearity)
        return out, [h[0], c[0]] if lstm else [h[0]]
    start, length = block
    shifted = bool((start > 0).any())
    rolled = roll_rows(x, start) if shifted else x  # valid block first: right padding
    if lstm and need_cell_state:
        out, h, c = fused_packed(cell, rolled, length.clamp(min=1), weights, hx,
                                 nonlinearity=nonlinearity)
        h, c = h[0], c[0]
    else:
        # Recurrence is causal: outputs before each length are exact on the padded batch.
        out, _, _ = fused(cell, rolled, weights, hx, nonlinearity=nonlinearity)
        last = (length - 1).clamp(min=0).to(out.device)
        h = out[torch.arange(out.shape[0], device=out.device), last]
        c = None  # not needed: the caller asked for outputs and h only
    empty = (length == 0)[:, None].to(h.device)
    h = torch.where(empty, state[0], h)
    if c is not None:
        c = torch.where(empty, state[1], c)
    if shifted:
        out = roll_rows(out, -start)
    valid = mask[..., None]
    if zero_output_for_mask:
        out = torch.where(valid, out, torch.zeros((), dtype=out.dtype, device=out.device))
    else:
        steps = torch.arange(x.shape[1], device=x.device)[None, :]
        before = (steps < start[:, None].to(x.device))[..., None]
        out = torch.where(valid, out, torch.where(before, state[0][:, None], h[:, None]))
    return out, [h, c] if lstm else [h]


def _split_bias(bias: torch.Tensor | None) -> tuple[torch.Tensor | None, torch.Tensor | None]:
    if bias is None:
        return None, None
    if bias.dim() == 2:
        return bias[0], bias[1]
    return bias, None


def _project(h: torch.Tensor, weight: torch.Tensor, units: int, first: int, last: int,
             masks: Sequence[torch.Tensor] | None) -> torch.Tensor:
    """``h @ weight[gates first..last].T``, each gate with its own dropout mask when given."""
    if masks is None:
        return F.linear(h, weight[first * units:last * units])
    return torch.cat([F.linear(h * masks[g], weight[g * units:(g + 1) * units])
                      for g in range(first, last)], dim=-1)


def loop(cell: str, x: torch.Tensor, kernel: torch.Tensor, recurrent_kernel: torch.Tensor,
         bias: torch.Tensor | None, state: Sequence[torch.Tensor], mask: torch.Tensor | None = None,
         *, activation: Activation = torch.tanh, recurrent_activation: Activation = torch.sigmoid,
         reset_after: bool = True, zero_output_for_mask: bool = False,
         input_masks: Sequence[torch.Tensor] | None = None,
         recurrent_masks: Sequence[torch.Tensor] | None = None,
         ) -> tuple[torch.Tensor, list[torch.Tensor]]:
    """The per-step loop of Keras's cell equations (same arguments as :func:`run_sequence`).

    The input projection of every step is one matrix product before the loop; each step then
    multiplies the previous state by the recurrent kernel.
    """
    units = recurrent_kernel.shape[1]
    gates = GATES[cell]
    input_bias, recurrent_bias = _split_bias(bias)
    if input_masks is None:
        projected = F.linear(x, kernel, input_bias)  # (B, T, G*units)
    else:
        projected = torch.cat([
            F.linear(x * input_masks[g][:, None, :], kernel[g * units:(g + 1) * units],
                     None if input_bias is None else input_bias[g * units:(g + 1) * units])
            for g in range(gates)], dim=-1)
    h = state[0]
    c = state[1] if cell == "lstm" else None
    outputs = []
    zero = torch.zeros((), dtype=x.dtype, device=x.device)
    for step in range(x.shape[1]):
        x_t = projected[:, step]
        if cell == "simple":
            h_new = activation(x_t + _project(h, recurrent_kernel, units, 0, 1, recurrent_masks))
            c_new = None
        elif cell == "lstm":
            z = x_t + _project(h, recurrent_kernel, units, 0, 4, recurrent_masks)
            i, f, g, o = z.split(units, dim=-1)
            c_new = recurrent_activation(f) * c + recurrent_activation(i) * activation(g)
            h_new = recurrent_activation(o) * activation(c_new)
        else:
            x_z, x_r, x_h = x_t.split(units, dim=-1)
            if reset_after:
                inner = _project(h, recurrent_kernel, units, 0, 3, recurrent_masks)
                if recurrent_bias is not None:
                    inner = inner + recurrent_bias
                r_z, r_r, r_h = inner.split(units, dim=-1)
                z = recurrent_activation(x_z + r_z)
                r = recurrent_activation(x_r + r_r)
                candidate = activation(x_h + r * r_h)
            else:
                r_z, r_r = _project(h, recurrent_kernel, units, 0, 2, recurrent_masks).split(
                    units, dim=-1)
                z = recurrent_activation(x_z + r_z)
                r = recurrent_activation(x_r + r_r)
                h_h = h if recurrent_masks is None else h * recurrent_masks[2]
                candidate = activation(x_h + F.linear(r * h_h, recurrent_kernel[2 * units:]))
            h_new = z * h + (1 - z) * candidate
            c_new = None
        if mask is None:
            h, c = h_new, c_new
            outputs.append(h)
            continue
        keep = mask[:, step, None]
        outputs.append(torch.where(keep, h_new, zero) if zero_output_for_mask
                       else torch.where(keep, h_new, h))
        h = torch.where(keep, h_new, h)
        if c is not None:
            c = torch.where(keep, c_new, c)
    out = torch.stack(outputs, dim=1) if outputs else x.new_zeros(x.shape[0], 0, units)
    return out, [h, c] if cell == "lstm" else [h]
