"""``keras.layers.RNN``: runs a cell (``rnn_cells.py``, a list of cells, or a user's own cell) over
the time axis.

A user's cell is a ``Layer`` with ``state_size`` and ``call(inputs, states)`` returning
``(output, new_states)``; optional ``output_size`` (else the first state size; a list means
several outputs) and ``get_initial_state(batch_size)``. Without the latter the states are zeros
shaped by ``state_size``: ``(batch, size)`` per int entry, ``(batch, *sizes)`` per entry that is a
list of ints (the multi-axis state of the "Working with RNNs" guide's nested cell, which Keras 3
cannot build). Built-in and stacked cells define ``get_initial_state``, whose structure (e.g.
``[[h, c], h2]`` for ``StackedRNNCells``) the states keep. Sequences are ``(batch, timesteps,
...)``, or a tuple or dict of such tensors (eager or in a functional graph): each step then gives
the cell the same structure of ``(batch, ...)`` slices.

Semantics follow Keras 3's ``backend.rnn``: ``go_backwards`` reads the steps last to first and
returns the outputs in that (reversed) order; a masked step (``Embedding(mask_zero=True)``,
``Masking`` or ``mask=``) keeps every state and repeats the previous output (zeros before the
first valid step, and always with ``zero_output_for_mask=True``); ``stateful=True`` carries the
final states of one batch into the next (detached) until ``reset_states()``; ``unroll`` is
accepted and changes nothing (a Python loop is already unrolled).

Speed: when the cell is a built-in ``SimpleRNNCell``/``LSTMCell``/``GRUCell`` (or a
``StackedRNNCells`` of them) the layer runs the same fused recurrent kernels as the
``SimpleRNN``/``LSTM``/``GRU`` layers (oneDNN/cuDNN, like Keras's cuDNN path), one cell after
the other; otherwise it calls the cell once per step.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import torch

from bigmodel.errors import ConfigError, InputTypeError, ShapeError, describe
from bigmodel.keras import activations
from bigmodel.keras.layers.base import Layer
from bigmodel.keras.layers.call_context import DIRECT_DISPATCH
from bigmodel.keras.layers.core import cast_inputs
from bigmodel.keras.layers.layer_registry import deserialize_layer, serialize_layer
from bigmodel.keras.layers.recurrent import call_with_initial_state
from bigmodel.keras.layers.rnn_cells import (
    GRUCell,
    LSTMCell,
    SimpleRNNCell,
    StackedRNNCells,
    call_cell,
    cell_output_size,
    check_cell,
)
from bigmodel.keras.layers.symbolic import Shape, flatten_symbolic, is_shape_list
from bigmodel.nn.recurrent import check_mask
from bigmodel.nn.recurrent_kernels import run_sequence

__all__ = ["RNN"]

_BUILTIN_CELLS = (SimpleRNNCell, LSTMCell, GRUCell)


# ------------------------------------------------------------------------------- structures
def flatten(value: Any) -> list[Any]:
    """The leaves of nested lists / tuples / dicts (dicts by sorted key), in order."""
    if isinstance(value, dict):
        return [leaf for key in sorted(value) for leaf in flatten(value[key])]
    if isinstance(value, (list, tuple)):
        return [leaf for item in value for leaf in flatten(item)]
    return [value]


def pack_like(structure: Any, leaves: list[Any]) -> Any:
    """``leaves`` put back into the nesting of ``structure`` (the inverse of :func:`flatten`)."""
    remaining = iter(leaves)

    def pack(node: Any) -> Any:
        if isinstance(node, dict):
            return {key: pack(node[key]) for key in sorted(node)}
        if isinstance(node, (list, tuple)):
            return type(node)(pack(item) for item in node) if isinstance(node, tuple) \
                else [pack(item) for item in node]
        return next(remaining)

    return pack(structure)


def map_leaves(fn: Callable[[Any], Any], value: Any) -> Any:
    return pack_like(value, [fn(leaf) for leaf in flatten(value)])


def _where(keep: torch.Tensor, new: torch.Tensor, old: torch.Tensor) -> torch.Tensor:
    """``new`` on the rows where ``keep`` (``(batch,)`` bool) is True, else ``old``."""
    return torch.where(keep.view(-1, *([1] * (new.dim() - 1))), new, old)


# ------------------------------------------------------------------------------- the layer
class RNN(Layer):
    """Base class of recurrent layers: ``keras.layers.RNN(cell, ...)``.

    Args:
        cell: an RNN cell (a ``Layer`` with ``state_size`` and ``call(inputs, states)``), or a list
            of cells (stacked with ``StackedRNNCells``).
        return_sequences: return every step's output ``(batch, timesteps, output_size)`` instead
            of the last one ``(batch, output_size)``.
        return_state: also return the final states (``[output, *states]``).
        go_backwards: process the steps last to first (outputs in that order).
        stateful: keep the final states as the next batch's initial states.
        unroll: accepted for Keras compatibility; no effect.
        zero_output_for_mask: masked steps output zeros instead of the previous output.

    Call: ``rnn(sequences, initial_state=None, mask=None, training=None)``.

    Raises:
        ConfigError: a cell that is not a ``Layer``, has no ``state_size`` / ``call``, or a
            ``state_size`` that is not an int or (nested) list of ints.
        ShapeError: ``initial_state`` with the wrong number or shapes of tensors; inputs that are
            not ``(batch, timesteps, ...)``.
    """

    supports_masking = True

    def __init__(self, cell: Any, return_sequences: bool = False, return_state: bool = False,
                 go_backwards: bool = False, stateful: bool = False, unroll: bool = False,
                 zero_output_for_mask: bool = False, **kwargs: Any):
        if isinstance(cell, (list, tuple)):
            cell = StackedRNNCells(list(cell))
        where = f"Layer '{kwargs.get('name') or 'rnn'}' (RNN)"
        check_cell(cell, where)
        state_size = cell.state_size
        if not all(isinstance(s, (int, np.integer)) and not isinstance(s, bool) and s > 0
                   for s in flatten(state_size)):
            raise ConfigError(f"{where}: the cell's state_size must be a positive integer or a "
                              f"(nested) list of them, one per state; received "
                              f"state_size={state_size!r}")
        super().__init__(**kwargs)
        self.cell = cell
        self.return_sequences = bool(return_sequences)
        self.return_state = bool(return_state)
        self.go_backwards = bool(go_backwards)
        self.stateful = bool(stateful)
        self.unroll = bool(unroll)
        self.zero_output_for_mask = bool(zero_output_for_mask)
        self.states: list[Any] | None = None  # stateful layers only
        self._flat_state_outputs = False  # set when called in a functional graph
        # Set when called on a tuple/dict of symbolic sequences: the graph then passes a list,
        # which is those sequences (None: a list is [sequences, *initial_states]).
        self._nested_inputs: tuple[str, Any] | None = None
        self._graph_counts = (1, 0)  # graph outputs: (outputs, states), see compute_output_shape

    @property
    def state_size(self) -> list[Any]:
        """The cell's state sizes as a list (a single int becomes ``[int]``), as Keras."""
        size = self.cell.state_size
        return list(size) if isinstance(size, (list, tuple)) else [size]

    # ----------------------------------------------------------------------------- build
    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        if args and isinstance(args[0], (tuple, dict)):
            sequences = args[0]
            values = [sequences[k] for k in sorted(sequences)] if isinstance(sequences, dict) \
                else list(sequences)
            if flatten_symbolic(values):
                if kwargs.get("initial_state") is not None:
                    raise ConfigError(f"Layer '{self.name}' (RNN): nested sequences and "
                                      "initial_state together are not supported in a "
                                      "functional graph")
                self._nested_inputs = ("dict", sorted(sequences)) if isinstance(
                    sequences, dict) else ("tuple", len(values))
                return super().__call__(values, *args[1:], **kwargs)
            if not self.built:
                self._build_nested(sequences)
        return call_with_initial_state(super().__call__, args, kwargs)

    def _unflatten_inputs(self, values: list[Any]) -> Any:
        kind, spec = self._nested_inputs
        return dict(zip(spec, values)) if kind == "dict" else tuple(values)

    def _build_nested(self, sequences: Any) -> None:
        """Build the cell from a tuple/dict of sequences: step shapes in the same structure."""
        leaves = flatten(sequences)
        if not leaves or not all(isinstance(t, (torch.Tensor, np.ndarray)) and t.ndim >= 3
                                 for t in leaves):
            raise InputTypeError(f"Layer '{self.name}' (RNN): nested inputs must be tensors "
                                 f"(batch, timesteps, ...); received {describe(sequences)}")
        steps = pack_like(sequences, [(None, *t.shape[2:]) for t in leaves])
        if not self.cell.built:
            self.cell.build(steps if isinstance(steps, dict) else list(steps))
            self.cell.built = True
        self.built = True

    def build(self, input_shape: Shape) -> None:
        if self._nested_inputs is not None and is_shape_list(input_shape):
            steps = [(s[0], *s[2:]) for s in input_shape]
            if not self.cell.built:
                nested = self._unflatten_inputs(steps)
                self.cell.build(nested if isinstance(nested, dict) else list(nested))
                self.cell.built = True
            super().build(input_shape)
            return
        # A list is [sequences, *initial_states] (functional calls with initial_state).
        shape = tuple(input_shape[0]) if is_shape_list(input_shape) else tuple(input_shape)
        if len(shape) < 3:
            raise ShapeError(f"Input 0 of layer '{self.name}' (RNN) is incompatible with the "
                             f"layer: expected ndim>=3 (batch, timesteps, ...), found ndim="
                             f"{len(shape)}. Full shape received: {shape}")
        if not self.cell.built:
            self.cell._maybe_build((shape[0], *shape[2:]), self._build_device)
        if shape[-1] is not None:
            self.input_axes = {-1: shape[-1]}  # the features the cell was built for
        super().build(input_shape)

    # ----------------------------------------------------------------------------- states
    def get_initial_state(self, batch_size: int) -> list[Any]:
        """The cell's ``get_initial_state(batch_size)``; else zeros per ``state_size`` entry:
        ``(batch, size)`` for an int, ``(batch, *sizes)`` for a list of ints (the multi-axis
        state of the "Working with RNNs" guide's nested cell, where Keras 3 raises)."""
        make = getattr(self.cell, "get_initial_state", None)
        if make is not None:
            states = make(batch_size=batch_size)
            return list(states) if isinstance(states, (list, tuple)) else [states]
        return [torch.zeros(batch_size, *(size if isinstance(size, (list, tuple)) else [size]))
                for size in self.state_size]

    def _check_initial_state(self, given: Any, batch: int, like: torch.Tensor) -> list[Any]:
        reference = self.get_initial_state(batch)
        expected = flatten(reference)
        leaves = flatten(given)
        if len(leaves) != len(expected):
            raise ShapeError(f"Layer '{self.name}' (RNN): initial_state must hold {len(expected)} "
                             f"tensor(s) (cell state_size={self.cell.state_size!r}); received "
                             f"{len(leaves)}: {[describe(s) for s in leaves]}")
        tensors = [torch.as_tensor(np.asarray(s) if not isinstance(s, torch.Tensor) else s,
                                   device=like.device).to(like.dtype) for s in leaves]
        for index, (tensor, ref) in enumerate(zip(tensors, expected)):
            want = tuple(np.shape(ref))
            if tuple(tensor.shape) != want:
                raise ShapeError(f"Layer '{self.name}' (RNN): initial_state[{index}] must have "
                                 f"shape {want}; received {tuple(tensor.shape)}")
        return pack_like(reference, tensors)

    def reset_states(self, states: Any = None) -> None:
        """Zero the states of a stateful layer (or set them to ``states``)."""
        if not self.stateful:
            raise ConfigError(f"Layer '{self.name}' (RNN) is not stateful; reset_states() needs "
                              "stateful=True")
        if states is not None:
            device = next((p.device for p in self.cell.parameters()), None)
            first = torch.as_tensor(np.asarray(flatten(states)[0]))
            self.states = self._check_initial_state(states, first.shape[0],
                                                    torch.zeros((), device=device))
        elif self.states is not None:
            self.states = map_leaves(torch.zeros_like, self.states)

    reset_state = reset_states

    def _start_states(self, initial_state: Any, batch: int, x: torch.Tensor) -> list[Any]:
        if initial_state is not None:
            return self._check_initial_state(initial_state, batch, x)
        if self.stateful and self.states is not None:
            kept = flatten(self.states)[0].shape[0]
            if kept != batch:
                raise ShapeError(f"Stateful layer '{self.name}' (RNN) keeps states for batches "
                                 f"of {kept}; received a batch of {batch}. Use a fixed batch "
                                 "size (and shuffle=False)")
            return self.states
        return map_leaves(lambda s: torch.as_tensor(s).to(device=x.device, dtype=x.dtype),
                          self.get_initial_state(batch))

    # ----------------------------------------------------------------------------- call
    def call(self, inputs: Any, training: bool = False, mask: Any = None,
             initial_state: Any = None) -> Any:
        owner = f"Layer '{self.name}' (RNN)"
        if isinstance(inputs, list) and self._nested_inputs is not None:
            inputs = self._unflatten_inputs(inputs)  # nested sequences (functional API)
        if isinstance(inputs, list):  # [sequences, *initial_states] (functional API)
            if initial_state is not None:
                raise ConfigError(f"{owner}: initial states were given twice (as inputs and as "
                                  "initial_state)")
            inputs, initial_state = inputs[0], list(inputs[1:]) or None
        if isinstance(mask, list):
            mask = mask[0]
        leaves = [torch.as_tensor(t) for t in flatten(inputs)]
        if not all(isinstance(t, torch.Tensor) and t.dim() >= 3 for t in leaves):
            raise ShapeError(f"{owner} expects sequences (batch, timesteps, ...); received "
                             f"{describe(inputs)}")
        sequences = pack_like(inputs, leaves)
        first = leaves[0]
        batch, steps = first.shape[0], first.shape[1]
        if mask is not None:
            mask = check_mask(owner, mask, batch, steps, first.device)
            if bool(mask.all()):
                mask = None
        states = self._start_states(initial_state, batch, first)
        cells = self._builtin_cells(sequences)
        if cells is not None:
            outputs, last, final = self._run_builtin(cells, sequences, states, mask,
                                                     bool(training))
        else:
            outputs, last, final = self._run_cell(sequences, states, mask, training)
        if self.stateful:
            self.states = map_leaves(lambda s: s.detach(), final)
        output = outputs if self.return_sequences else last
        if self._flat_state_outputs:  # in a functional graph: one flat list of tensors
            return [*flatten(output), *(flatten(final) if self.return_state else [])]
        if not self.return_state:
            return output
        return [output, *final]

    def _builtin_cells(self, sequences: Any) -> list[Any] | None:
        """The built-in cells to run on fused kernels (exact classes: a subclass may change
        ``call``), or ``None`` for the per-step loop."""
        if not isinstance(sequences, torch.Tensor) or sequences.dim() != 3:
            return None
        cells = self.cell.cells if type(self.cell) is StackedRNNCells else [self.cell]
        if all(type(cell) in _BUILTIN_CELLS for cell in cells):
            return cells
        return None

    def _run_builtin(self, cells: list[Any], x: torch.Tensor, states: list[Any],
                     mask: torch.Tensor | None, training: bool) -> tuple[Any, Any, list[Any]]:
        per_cell = states if type(self.cell) is StackedRNNCells else [states]
        if self.go_backwards:
            x = x.flip(1)
            mask = mask.flip(1) if mask is not None else None
        finals = []
        for index, (cell, state) in enumerate(zip(cells, per_cell)):
            state = list(state) if isinstance(state, (list, tuple)) else [state]
            x = cast_inputs(x, cell.kernel)
            simple = cell.cell == "simple"
            act = activations.serialize(cell.activation)
            fusable = ((act in ("tanh", "relu") if simple else
                        act == "tanh"
                        and activations.serialize(cell.recurrent_activation) == "sigmoid"
                        and getattr(cell, "reset_after", True))
                       and not (training and cell.recurrent_dropout > 0))
            input_masks = recurrent_masks = None
            if training and cell.dropout > 0:
                input_masks = cell._mask(x[:, 0], cell.dropout)
                if fusable:  # one mask per sequence on the inputs, the fused op after it
                    x, input_masks = x * input_masks[0][:, None, :], None
            if training and cell.recurrent_dropout > 0:
                recurrent_masks = cell._mask(state[0], cell.recurrent_dropout)
            last_cell = index == len(cells) - 1
            x, final = run_sequence(
                cell.cell, x, cell.kernel, cell.recurrent_kernel, cell.bias, state, mask,
                use_fused=fusable, activation=cell.activation,
                recurrent_activation=cell.recurrent_activation,
                nonlinearity=act if simple else "tanh",
                reset_after=getattr(cell, "reset_after", True),
                zero_output_for_mask=self.zero_output_for_mask and last_cell,
                need_cell_state=True, input_masks=input_masks, recurrent_masks=recurrent_masks)
            finals.append(list(final))
        last = x[:, -1] if mask is not None else finals[-1][0]
        return x, last, finals if type(self.cell) is StackedRNNCells else finals[0]

    def _run_cell(self, sequences: Any, states: list[Any], mask: torch.Tensor | None,
                  training: Any) -> tuple[Any, Any, list[Any]]:
        """Keras's ``backend.rnn``: one cell call per step."""
        leaves = flatten(sequences)
        order = range(leaves[0].shape[1])
        if self.go_backwards:
            order = reversed(order)
        outputs: list[Any] = []
        previous: Any = None
        try:
            for t in order:
                step = pack_like(sequences, [leaf[:, t] for leaf in leaves])
                output, new_states = call_cell(self.cell, step, states, training)
                if not isinstance(new_states, (list, tuple)):
                    new_states = [new_states]
                new_states = list(new_states)
                if len(flatten(new_states)) != len(flatten(states)):
                    raise ShapeError(f"RNN cell '{self.cell.name}' returned "
                                     f"{len(flatten(new_states))} state tensor(s); its "
                                     f"state_size declares {len(flatten(states))}")
                if mask is not None:
                    keep = mask[:, t]
                    if previous is None:
                        previous = map_leaves(torch.zeros_like, output)
                    old = previous
                    if self.zero_output_for_mask:
                        old = map_leaves(torch.zeros_like, output)
                    output = pack_like(output, [_where(keep, n, o) for n, o in
                                                zip(flatten(output), flatten(old))])
                    new_states = pack_like(new_states, [
                        _where(keep, n, o) for n, o in zip(flatten(new_states), flatten(states))])
                previous = output
                states = new_states
                if self.return_sequences:
                    outputs.append(output)
        finally:
            if hasattr(self.cell, "reset_dropout_mask"):
                self.cell.reset_dropout_mask()
        if previous is None:
            raise ShapeError(f"Layer '{self.name}' (RNN): the sequences have no time steps")
        sequence = None
        if self.return_sequences:
            sequence = pack_like(previous, [torch.stack(list(step), dim=1) for step in
                                            zip(*[flatten(o) for o in outputs])])
        return sequence, previous, states

    # ----------------------------------------------------------------------------- shapes
    def compute_output_shape(self, input_shape: Shape) -> Any:
        shape = tuple(input_shape[0]) if is_shape_list(input_shape) else tuple(input_shape)
        batch = shape[0]
        lead = (batch, shape[1]) if self.return_sequences else (batch,)
        size = cell_output_size(self.cell)
        if isinstance(size, (int, np.integer)):
            outputs = [(*lead, int(size))]
        else:  # several outputs, each an int or a list of sizes (the guide's nested cell)
            outputs = [(*lead, *(int(d) for d in (entry if isinstance(entry, (list, tuple))
                                                  else [entry]))) for entry in size]
        states = [(batch, *np.shape(t)[1:]) for t in flatten(self.get_initial_state(1))] \
            if self.return_state else []
        if len(outputs) + len(states) == 1:
            return outputs[0]
        # Graph outputs are one flat list of tensors: call() returns that list from now on.
        self._flat_state_outputs = True
        self._graph_counts = (len(outputs), len(states))
        return [*outputs, *states]

    def compute_mask(self, inputs: Any, mask: Any = None) -> Any:
        if isinstance(mask, (list, tuple)):
            mask = mask[0]
        output_mask = mask if self.return_sequences else None
        if self._flat_state_outputs:
            outputs, states = self._graph_counts
            return [output_mask] * outputs + [None] * states
        if self.return_state:
            return [output_mask, *[None] * len(self.state_size)]
        return output_mask

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "return_sequences": self.return_sequences,
                "return_state": self.return_state, "go_backwards": self.go_backwards,
                "stateful": self.stateful, "unroll": self.unroll,
                "zero_output_for_mask": self.zero_output_for_mask,
                "cell": serialize_layer(self.cell)}

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> RNN:
        config = dict(config)
        cell = config.pop("cell")
        if isinstance(cell, dict):
            cell = deserialize_layer(cell)
        return cls(cell, **config)


# RNN.__call__ only turns symbolic initial states into graph inputs: a plain tensor call keeps
# Layer's dispatch, so a verified one may take the direct path (Layer._call_direct).
DIRECT_DISPATCH.add(RNN.__call__)
