"""Structured pruning beyond plain channels: hidden units of bigmodel's recurrent layers and whole
attention heads.

* Hidden units of :mod:`bigmodel.nn.recurrent` ``LSTM`` / ``GRU`` / ``SimpleRNN`` stacks
  (unidirectional; Keras weight layout, gates stacked ``G x hidden`` along the rows): a
  :class:`~bigmodel.compress.channels.ChannelHandler` registered here lets
  :func:`~bigmodel.compress.structured.structured_prune` find them by probing, through the outputs
  *and* the final states (``h_n`` / ``c_n``), so a classifier reading the last hidden state is
  coupled correctly. The top layer's units are the channels; inner layers keep as many units,
  those with the largest gate-row norms.
* Attention heads of :class:`bigmodel.nn.attention.MultiHeadAttention`: :func:`prune_heads` removes
  given heads (rows of the query / key / value projections, columns of the output projection);
  :func:`head_scores` ranks heads by the size of what they add to the output (the norm of their
  slice of the output projection's input times that slice of its weight, on example inputs, or
  from the weights alone); ``structured_prune(..., heads=True)`` removes heads with the same
  per-family fraction as channels. A head whose output-projection columns are zero contributes
  nothing, so removing it leaves the model's outputs unchanged.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

import torch
from torch import nn

from bigmodel.compress.channels import ChannelHandler, register_channel_handler
from bigmodel.errors import ConfigError
from bigmodel.nn.attention import MultiHeadAttention
from bigmodel.nn.recurrent import RecurrentBase
from bigmodel.nn.recurrent_kernels import GATES
from bigmodel.nn.slicing import slice_param

__all__ = ["attention_modules", "head_scores", "keep_heads", "prune_heads"]


# -- recurrent hidden units ---------------------------------------------------------------------


def _gate_rows(keep: torch.Tensor, hidden: int, gates: int) -> torch.Tensor:
    return torch.cat([keep + g * hidden for g in range(gates)])


def _layer_units(m: RecurrentBase, layer: int, count: int) -> torch.Tensor:
    """An inner layer keeps the ``count`` units with the largest input-kernel gate-row norms."""
    gates, hidden = GATES[m.cell], m.hidden_size
    rows = getattr(m, f"kernel_l{layer}").detach().reshape(gates, hidden, -1)
    return torch.sort(torch.topk(rows.pow(2).sum(dim=(0, 2)), count).indices).values


def _recurrent_out(m: RecurrentBase, keep: torch.Tensor) -> None:
    gates, hidden, count = GATES[m.cell], m.hidden_size, len(keep)
    previous = None
    for layer in range(m.num_layers):
        units = keep if layer == m.num_layers - 1 else _layer_units(m, layer, count)
        rows = _gate_rows(units, hidden, gates)
        suffix = f"_l{layer}"
        slice_param(m, "kernel" + suffix, rows, 0)
        slice_param(m, "recurrent_kernel" + suffix, rows, 0)
        slice_param(m, "recurrent_kernel" + suffix, units, 1)
        bias = getattr(m, "bias" + suffix)
        if bias is not None:
            slice_param(m, "bias" + suffix, rows, bias.dim() - 1)  # GRU: (2, G * hidden)
        if previous is not None:
            slice_param(m, "kernel" + suffix, previous, 1)
        previous = units
    m.hidden_size = count


def _recurrent_in(m: RecurrentBase, keep: torch.Tensor) -> None:
    slice_param(m, "kernel_l0", keep, 1)
    m.input_size = len(keep)


def _recurrent_out_weights(m: RecurrentBase) -> torch.Tensor:
    gates, hidden = GATES[m.cell], m.hidden_size
    kernel = getattr(m, f"kernel_l{m.num_layers - 1}").detach().reshape(gates, hidden, -1)
    return kernel.permute(1, 0, 2).reshape(hidden, -1)


def _recurrent_macs(m: RecurrentBase, x: torch.Tensor, y: torch.Tensor) -> int:
    steps = y.numel() // max(1, y.shape[-1])  # batch * time
    return steps * sum(k.numel() + r.numel() for _, k, r, _ in m._triples())


def _recurrent_mark(m: RecurrentBase, output: Any, index: torch.Tensor) -> Any:
    """NaN into unit ``b`` of sample ``b``: in the outputs and in the final states (h_n, c_n)."""
    out, state = output
    out = out.clone()
    out[index, :, index] = float("nan")
    states = state if isinstance(state, tuple) else (state,)
    marked = []
    for s in states:
        s = s.clone()
        s[:, index, index] = float("nan")  # (layers, B, hidden): every layer's unit b
        marked.append(s)
    return out, (tuple(marked) if isinstance(state, tuple) else marked[0])


register_channel_handler(RecurrentBase, ChannelHandler(
    in_axis=lambda m: -1, prune_in=_recurrent_in, out_axis=lambda m: -1,
    num_out=lambda m: m.hidden_size, prune_out=_recurrent_out,
    out_weights=_recurrent_out_weights, macs=_recurrent_macs,
    applies=lambda m: not m.bidirectional, mark_out=_recurrent_mark))


# -- attention heads ----------------------------------------------------------------------------


def attention_modules(model: nn.Module) -> dict[str, MultiHeadAttention]:
    """Every :class:`MultiHeadAttention` of ``model`` by name."""
    return {n: m for n, m in model.named_modules() if isinstance(m, MultiHeadAttention)}


def _head_rows(m: MultiHeadAttention, keep: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Rows of the q/k projections and of the v projection that belong to heads ``keep``."""
    qk = torch.cat([torch.arange(h * m.key_dim, (h + 1) * m.key_dim) for h in keep.tolist()])
    vv = torch.cat([torch.arange(h * m.value_dim, (h + 1) * m.value_dim) for h in keep.tolist()])
    return qk, vv


def keep_heads(m: MultiHeadAttention, keep: torch.Tensor) -> None:
    """Keep only heads ``keep`` (sorted indices) of ``m``, in place."""
    # On the CPU even when the model is built on "meta" (load_any checks shapes so): the
    # indices are read back with tolist().
    keep = torch.as_tensor(keep, dtype=torch.long, device="cpu")
    if keep.numel() < 1:
        raise ConfigError("prune_heads: every attention layer must keep at least one head")
    qk_rows, v_rows = _head_rows(m, keep)
    if m.fused:
        qk_total = m.num_heads * m.key_dim
        rows = torch.cat([qk_rows, qk_rows + qk_total, v_rows + 2 * qk_total])
        if type(m.in_proj) is not nn.Linear:
            raise ConfigError(f"prune_heads: the input projection is wrapped "
                              f"({type(m.in_proj).__name__}); merge the wrapper first")
        slice_param(m.in_proj, "weight", rows, 0)
        slice_param(m.in_proj, "bias", rows, 0)
        m.in_proj.out_features = len(rows)
    else:
        for proj, rows in ((m.q_proj, qk_rows), (m.k_proj, qk_rows), (m.v_proj, v_rows)):
            slice_param(proj, "weight", rows, 0)
            slice_param(proj, "bias", rows, 0)
            proj.out_features = len(rows)
    slice_param(m.out_proj, "weight", v_rows, 1)
    m.out_proj.in_features = len(v_rows)
    m.num_heads = int(keep.numel())
    qk, vv = m.num_heads * m.key_dim, m.num_heads * m.value_dim
    m._sizes = (qk, qk, vv)


def prune_heads(model: nn.Module, heads: Mapping[str, Iterable[int]]) -> dict[str, dict[str, int]]:
    """Remove attention heads in place: ``{"encoder.layers.0.self_attn": [1, 3]}``.

    Returns:
        The new structure ``{module name: {"heads": remaining}}`` (for ``save_compressed``).

    Raises:
        ConfigError: an unknown module name, a head index out of range, or all heads of a layer.
    """
    modules = attention_modules(model)
    structure: dict[str, dict[str, int]] = {}
    for name, drop in heads.items():
        if name not in modules:
            raise ConfigError(f"prune_heads: {type(model).__name__} has no MultiHeadAttention "
                              f"named '{name}'; it has: {', '.join(modules) or '(none)'}")
        m = modules[name]
        drop = sorted({int(h) for h in drop})
        if any(not 0 <= h < m.num_heads for h in drop):
            raise ConfigError(f"prune_heads: '{name}' has heads 0..{m.num_heads - 1}; received "
                              f"{drop}")
        if len(drop) >= m.num_heads:
            raise ConfigError(f"prune_heads: '{name}' would lose all {m.num_heads} heads; keep at "
                              "least one")
        if not drop:
            continue
        keep_heads(m, torch.tensor([h for h in range(m.num_heads) if h not in drop]))
        structure[name] = {"heads": m.num_heads}
    return structure


def head_scores(model: nn.Module, example: Any = None) -> dict[str, torch.Tensor]:
    """Importance of every head, ``{module name: (num_heads,)}``, larger = more important.

    With ``example`` (a batch of inputs), a head's score is the mean norm of what it adds to the
    attention output (its slice of the output projection's input, times that slice of the
    weight); without, the Frobenius norm of its value rows times its output-projection columns.
    """
    modules = attention_modules(model)
    scores: dict[str, torch.Tensor] = {}
    if example is None:
        for name, m in modules.items():
            v_weight = (m.in_proj.weight[-m.num_heads * m.value_dim:] if m.fused
                        else m.v_proj.weight).detach()
            v = v_weight.reshape(m.num_heads, m.value_dim, -1).norm(dim=(1, 2))
            o = m.out_proj.weight.detach().reshape(m.output_dim, m.num_heads, m.value_dim)
            scores[name] = v * o.norm(dim=(0, 2))
        return scores
    sums: dict[str, torch.Tensor] = {}
    counts: dict[str, int] = {}

    def hook(name, m):
        def pre_hook(module, args):
            x = args[0].detach()  # (..., H * value_dim)
            heads = x.reshape(-1, m.num_heads, m.value_dim)
            weight = module.weight.detach().reshape(-1, m.num_heads, m.value_dim)
            contribution = torch.einsum("nhd,ohd->nho", heads, weight).norm(dim=-1)  # (N, H)
            sums[name] = sums.get(name, 0) + contribution.sum(0)
            counts[name] = counts.get(name, 0) + contribution.shape[0]
        return pre_hook

    handles = [m.out_proj.register_forward_pre_hook(hook(n, m)) for n, m in modules.items()]
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            model(*(example if isinstance(example, (tuple, list)) else (example,)))
    finally:
        model.train(was_training)
        for handle in handles:
            handle.remove()
    return {name: sums[name] / counts[name] for name in sums}


def choose_heads(scores: Mapping[str, torch.Tensor], ratio: float,
                 min_heads: int = 1) -> dict[str, list[int]]:
    """Per attention layer, the ``int(ratio * heads)`` lowest-scoring heads (keeping ``min_heads``)."""
    chosen = {}
    for name, score in scores.items():
        count = min(int(ratio * len(score) + 1e-9), max(0, len(score) - min_heads))
        if count:
            chosen[name] = sorted(torch.argsort(score)[:count].tolist())
    return chosen
