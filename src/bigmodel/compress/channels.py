"""How each layer type loses whole output channels / input channels (structured pruning handlers).

A :class:`ChannelHandler` knows, for one layer type, which axis of its output holds channels (when it
produces them), which axis of its input holds the channels it consumes, how to slice its weights to
keep a subset of either, a per-output-channel weight matrix for importance, and its multiply-adds.
Handlers exist for ``nn.Linear``, ``nn.Conv1d/2d`` (ungrouped), ``nn.BatchNorm1d/2d``, ``nn.LSTM`` /
``nn.GRU`` (unidirectional: hidden units). A new layer family plugs in with
:func:`register_channel_handler`, or by carrying a ``channel_spec`` class attribute (a mapping of
:class:`ChannelHandler`'s fields): the protocol the Keras-surface ``Dense``, ``Conv2D`` and
``BatchNormalization`` implement, so this package never imports ``keras``. Nothing in the pruning
algorithm names a model.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import nn

from bigmodel.nn.slicing import slice_param


@dataclass(frozen=True)
class ChannelHandler:
    """Structured-pruning operations of one layer type.

    Attributes:
        out_axis: ``module -> axis`` of output channels, or None when the layer does not produce
            prunable channels (normalization layers pass theirs through instead).
        in_axis: ``module -> axis`` of the input channels the layer consumes.
        num_out: ``module -> number of output channels``.
        prune_out: ``(module, keep) -> None`` keeps output channels ``keep`` (sorted LongTensor).
        prune_in: ``(module, keep) -> None`` keeps input channels ``keep``.
        out_weights: ``module -> (num_out, -1)`` weights whose row norms rank the channels.
        macs: ``(module, input, output) -> multiply-adds`` for one forward call.
        passthrough: the layer is channel-wise (input channel ``i`` is output channel ``i``).
        batch_axis: ``module -> axis`` of the batch in its input and output (1 for time-major RNNs).
        applies: ``module -> bool``: False for configurations the handler cannot slice.
        mark_out: ``(module, output, index) -> output`` with NaN in channel ``b`` of sample ``b``
            for ``b`` in ``index``, for layers whose channels also leave through other outputs
            (a recurrent layer's final states); default: the main output along ``out_axis``.
    """

    in_axis: Callable[[nn.Module], int]
    prune_in: Callable[[nn.Module, torch.Tensor], None]
    out_axis: Callable[[nn.Module], int] | None = None
    num_out: Callable[[nn.Module], int] | None = None
    prune_out: Callable[[nn.Module, torch.Tensor], None] | None = None
    out_weights: Callable[[nn.Module], torch.Tensor] | None = None
    macs: Callable[[nn.Module, torch.Tensor, torch.Tensor], int] | None = None
    passthrough: bool = False
    batch_axis: Callable[[nn.Module], int] = lambda module: 0
    applies: Callable[[nn.Module], bool] = lambda module: True
    mark_out: Callable[[nn.Module, object, torch.Tensor], object] | None = None


_HANDLERS: list[tuple[type, ChannelHandler]] = []


def register_channel_handler(layer_type: type, handler: ChannelHandler) -> None:
    """Teach structured pruning a layer type (later registrations win over earlier ones)."""
    _HANDLERS.insert(0, (layer_type, handler))


_SPEC_HANDLERS: dict[type, ChannelHandler] = {}


def channel_handler(module: nn.Module) -> ChannelHandler | None:
    """The handler for ``module``'s type, or None when structured pruning cannot slice it.

    Registered types first; else a layer class that carries ``channel_spec`` (the protocol Keras
    layers implement: a mapping of :class:`ChannelHandler`'s fields) gets a handler built from it.
    """
    for layer_type, handler in _HANDLERS:
        if isinstance(module, layer_type) and handler.applies(module):
            return handler
    spec = getattr(type(module), "channel_spec", None)
    if spec is None:
        return None
    handler = _SPEC_HANDLERS.get(type(module))
    if handler is None:
        handler = _SPEC_HANDLERS[type(module)] = ChannelHandler(**spec)
    return handler if handler.applies(module) else None


# -- helpers ------------------------------------------------------------------------------------


def _rows(weight: torch.Tensor) -> torch.Tensor:
    return weight.detach().reshape(weight.shape[0], -1)


# -- torch.nn -----------------------------------------------------------------------------------


def _linear_out(m: nn.Linear, keep: torch.Tensor) -> None:
    slice_param(m, "weight", keep, 0)
    slice_param(m, "bias", keep, 0)
    m.out_features = len(keep)


def _linear_in(m: nn.Linear, keep: torch.Tensor) -> None:
    slice_param(m, "weight", keep, 1)
    m.in_features = len(keep)


def _linear_macs(m, x, y) -> int:
    return y.numel() * m.weight.shape[1]


def _conv_out(m: nn.Module, keep: torch.Tensor) -> None:
    slice_param(m, "weight", keep, 0)
    slice_param(m, "bias", keep, 0)
    m.out_channels = len(keep)


def _conv_in(m: nn.Module, keep: torch.Tensor) -> None:
    slice_param(m, "weight", keep, 1)
    m.in_channels = len(keep)


def _conv_macs(m, x, y) -> int:
    return y.numel() * m.weight[0].numel()


def _norm_in(m: nn.Module, keep: torch.Tensor) -> None:
    for name in ("weight", "bias", "running_mean", "running_var"):
        if getattr(m, name, None) is not None:
            slice_param(m, name, keep, 0)
    m.num_features = len(keep)


def _gates(m: nn.RNNBase) -> int:
    return 4 if isinstance(m, nn.LSTM) else 3


def _is_simple_rnn(m: nn.RNNBase) -> bool:
    return not m.bidirectional and getattr(m, "proj_size", 0) == 0


def _gate_rows(keep: torch.Tensor, hidden: int, gates: int) -> torch.Tensor:
    return torch.cat([keep + g * hidden for g in range(gates)])


def _rnn_layer_keep(m: nn.RNNBase, layer: int, count: int) -> torch.Tensor:
    """Inner layers keep the ``count`` hidden units with the largest gate-row norms."""
    hidden, gates = m.hidden_size, _gates(m)
    rows = getattr(m, f"weight_ih_l{layer}").detach().reshape(gates, hidden, -1)
    score = rows.pow(2).sum(dim=(0, 2))
    return torch.sort(torch.topk(score, count).indices).values


def _rnn_out(m: nn.RNNBase, keep: torch.Tensor) -> None:
    """Keep hidden units ``keep`` of the last layer (inner layers keep as many, by norm)."""
    hidden, gates, count = m.hidden_size, _gates(m), len(keep)
    previous = None
    for layer in range(m.num_layers):
        units = keep if layer == m.num_layers - 1 else _rnn_layer_keep(m, layer, count)
        rows = _gate_rows(units, hidden, gates)
        for kind in ("ih", "hh"):
            slice_param(m, f"weight_{kind}_l{layer}", rows, 0)
            if m.bias:
                slice_param(m, f"bias_{kind}_l{layer}", rows, 0)
        slice_param(m, f"weight_hh_l{layer}", units, 1)
        if previous is not None:
            slice_param(m, f"weight_ih_l{layer}", previous, 1)
        previous = units
    m.hidden_size = count
    m._init_flat_weights()


def _rnn_in(m: nn.RNNBase, keep: torch.Tensor) -> None:
    slice_param(m, "weight_ih_l0", keep, 1)
    m.input_size = len(keep)
    m._init_flat_weights()


def _rnn_out_weights(m: nn.RNNBase) -> torch.Tensor:
    last = m.num_layers - 1
    gates, hidden = _gates(m), m.hidden_size
    w = getattr(m, f"weight_ih_l{last}").detach().reshape(gates, hidden, -1)
    return w.permute(1, 0, 2).reshape(hidden, -1)


def _rnn_macs(m: nn.RNNBase, x, y) -> int:
    steps = y.numel() // max(1, y.shape[-1])  # batch * time
    total = 0
    for layer in range(m.num_layers):
        total += getattr(m, f"weight_ih_l{layer}").numel() + getattr(m, f"weight_hh_l{layer}").numel()
    return steps * total


register_channel_handler(nn.Linear, ChannelHandler(
    in_axis=lambda m: -1, prune_in=_linear_in, out_axis=lambda m: -1,
    num_out=lambda m: m.out_features, prune_out=_linear_out,
    out_weights=lambda m: _rows(m.weight), macs=_linear_macs))
for _conv in (nn.Conv1d, nn.Conv2d):
    register_channel_handler(_conv, ChannelHandler(
        in_axis=lambda m: 1, prune_in=_conv_in, out_axis=lambda m: 1,
        num_out=lambda m: m.out_channels, prune_out=_conv_out,
        out_weights=lambda m: _rows(m.weight), macs=_conv_macs,
        applies=lambda m: m.groups == 1))
for _norm in (nn.BatchNorm1d, nn.BatchNorm2d):
    register_channel_handler(_norm, ChannelHandler(
        in_axis=lambda m: 1, prune_in=_norm_in, passthrough=True))
for _rnn in (nn.LSTM, nn.GRU):
    register_channel_handler(_rnn, ChannelHandler(
        in_axis=lambda m: -1, prune_in=_rnn_in, out_axis=lambda m: -1,
        num_out=lambda m: m.hidden_size, prune_out=_rnn_out, out_weights=_rnn_out_weights,
        macs=_rnn_macs, applies=_is_simple_rnn,
        batch_axis=lambda m: 0 if m.batch_first else 1))




def count_macs(model: nn.Module, *inputs) -> int:
    """Multiply-adds of one forward pass over ``inputs``, summed over every handled layer."""
    total = 0
    handles = []

    def hook(module, args, output):
        nonlocal total
        handler = channel_handler(module)
        out = output[0] if isinstance(output, tuple) else output
        if handler is not None and handler.macs is not None and args and torch.is_tensor(out):
            total += int(handler.macs(module, args[0], out))

    for module in model.modules():
        if channel_handler(module) is not None:
            handles.append(module.register_forward_hook(hook))
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            model(*inputs)
    finally:
        for handle in handles:
            handle.remove()
        model.train(was_training)
    return total
