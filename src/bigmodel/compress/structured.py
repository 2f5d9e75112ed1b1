"""Structured pruning: remove whole channels / hidden units so the model really gets smaller.

Which slices of which layers belong together is found by running the model, not by knowing it:
for each layer that produces channels (a *producer*), one batched forward pass puts NaN into output
channel ``b`` of sample ``b`` and records, at the input of every layer with parameters, which input
channels turn NaN (the channel's *footprint*; each layer cleans its input after recording, so a NaN
stops at the first layer it reaches). Channel-wise layers (batch norm) let it through. Channels whose
footprints overlap are coupled (residual additions, attention heads, flatten into a dense layer) and
are removed together as one group. A group is removable when its NaN never reaches the model output
and only reaches layers that a :class:`~bigmodel.compress.channels.ChannelHandler` can slice; everything
else (layer norm over channels, custom modules) blocks the group, so the result is always a valid,
smaller model. Removing channels whose weights and bias are zero leaves the outputs unchanged.

Groups are ranked by the L2 norm of their producers' weight rows (each producer's norms divided by
their mean, so layers compare); every family of groups (same producer layers) loses the same fraction,
chosen by bisection to hit a FLOPs target.

>>> result = structured_prune(model, example_input, flops_ratio=0.5)   # half the multiply-adds
>>> result.macs_before, result.macs_after, result.structure           # structure: new layer sizes
"""

from __future__ import annotations

import copy
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from bigmodel.compress.channels import channel_handler, count_macs
from bigmodel.compress.units import choose_heads, head_scores, keep_heads, prune_heads
from bigmodel.errors import ConfigError, ShapeError
from bigmodel.nn.attention import MultiHeadAttention


class _Groups:
    """Union-find over channel nodes ``(producer name, channel)``."""

    def __init__(self) -> None:
        self.parent: dict[tuple[str, int], tuple[str, int]] = {}

    def find(self, node):
        self.parent.setdefault(node, node)
        while self.parent[node] != node:
            self.parent[node] = self.parent[self.parent[node]]
            node = self.parent[node]
        return node

    def union(self, a, b) -> None:
        self.parent[self.find(a)] = self.find(b)


@dataclass
class ChannelGroup:
    """Channels removed together: producer channels and the input slices of their consumers."""

    members: list[tuple[str, int]]  # (producer name, output channel)
    footprint: dict[str, set[int]] = field(default_factory=dict)  # consumer name -> input channels
    blocked: str | None = None  # why the group cannot be removed
    score: float = 0.0

    @property
    def family(self) -> tuple[str, ...]:
        return tuple(sorted({name for name, _ in self.members}))


def _named_layers(model: nn.Module) -> dict[str, nn.Module]:
    """Modules that have a handler or own parameters directly (the layers a NaN can reach)."""
    layers = {}
    for name, module in model.named_modules():
        if module is model:
            continue
        if channel_handler(module) is not None or any(
                p is not None for p in module._parameters.values()):
            layers[name] = module
    return layers


def _repeat(example: Any, batch: int) -> Any:
    if torch.is_tensor(example):
        return example[:1].repeat(batch, *([1] * (example.ndim - 1)))
    if isinstance(example, (tuple, list)):
        return type(example)(_repeat(e, batch) for e in example)
    raise ShapeError(f"structured pruning needs the example input as a tensor or a tuple of tensors "
                     f"with a batch dimension; received {type(example).__name__}")


def _channel_view(tensor: torch.Tensor, axis: int, batch_axis: int = 0) -> torch.Tensor:
    """``(B, C)`` bool: does sample b have a NaN anywhere in channel c along ``axis``."""
    moved = _batch_channel_last(torch.isnan(tensor), axis, batch_axis)
    return moved.reshape(tensor.shape[0], -1, moved.shape[-1]).any(dim=1)


def _batch_channel_last(tensor: torch.Tensor, axis: int, batch_axis: int) -> torch.Tensor:
    axis, batch_axis = axis % tensor.ndim, batch_axis % tensor.ndim
    return torch.movedim(tensor, (batch_axis, axis), (0, tensor.ndim - 1))


def find_channel_groups(model: nn.Module, example: Any) -> list[ChannelGroup]:
    """Probe ``model`` with NaN channels and return every channel group (see the module doc).

    Args:
        model: the model (left unchanged, run in eval mode).
        example: one valid input (tensor or tuple of tensors, batch first; only the first sample
            is used).
    """
    layers = _named_layers(model)
    producers = {n: m for n, m in layers.items()
                 if (h := channel_handler(m)) is not None and h.prune_out is not None}
    uf = _Groups()
    hits: dict[tuple[str, int], dict[str, set[int]]] = defaultdict(lambda: defaultdict(set))
    blocked: dict[tuple[str, int], str] = {}
    was_training = model.training
    model.eval()
    try:
        for pname, producer in producers.items():
            handler = channel_handler(producer)
            channels = handler.num_out(producer)
            _probe(model, example, pname, producer, handler, channels, layers, hits, blocked)
    finally:
        model.train(was_training)
    # Couple channels whose footprints share an input channel of some layer.
    owners: dict[tuple[str, int], tuple[str, int]] = {}
    for node, footprint in hits.items():
        uf.find(node)
        for layer, indices in footprint.items():
            for index in indices:
                key = (layer, index)
                if key in owners:
                    uf.union(node, owners[key])
                else:
                    owners[key] = node
    for pname, producer in producers.items():
        for c in range(channel_handler(producer).num_out(producer)):
            uf.find((pname, c))
    groups: dict[tuple[str, int], ChannelGroup] = {}
    for node in uf.parent:
        root = uf.find(node)
        group = groups.setdefault(root, ChannelGroup(members=[]))
        group.members.append(node)
        for layer, indices in hits.get(node, {}).items():
            group.footprint.setdefault(layer, set()).update(indices)
        if node in blocked and group.blocked is None:
            group.blocked = blocked[node]
    for group in groups.values():
        group.members.sort()
    return list(groups.values())


def _probe(model, example, pname, producer, handler, channels, layers, hits, blocked) -> None:
    axis, batch_axis = handler.out_axis(producer), handler.batch_axis(producer)

    def inject(module, args, output):
        if handler.mark_out is not None:
            main = output[0] if isinstance(output, tuple) else output
            index = torch.arange(min(channels, main.shape[batch_axis]))
            return handler.mark_out(module, output, index)
        main = output[0] if isinstance(output, tuple) else output
        main = main.clone()
        moved = _batch_channel_last(main, axis, batch_axis)  # a view of main
        index = torch.arange(min(channels, moved.shape[0]))
        moved[index, ..., index] = float("nan")
        return (main, *output[1:]) if isinstance(output, tuple) else main

    def record(name, module):
        def pre_hook(mod, args):
            if not args or not torch.is_tensor(args[0]) or not args[0].is_floating_point():
                return None
            x = args[0]
            if not torch.isnan(x).any():
                return None
            handler_c = channel_handler(mod)
            if handler_c is None:
                for b in torch.nonzero(_channel_view(x, -1).any(1)).flatten():
                    blocked.setdefault((pname, int(b)), f"reaches layer '{name}' "
                                       f"({type(mod).__name__}), which cannot be sliced")
            else:
                view = _channel_view(x, handler_c.in_axis(mod), handler_c.batch_axis(mod))
                for b, c in torch.nonzero(view).tolist():
                    hits[(pname, b)][name].add(c)
                if handler_c.passthrough:
                    return None  # channel-wise: the NaN goes on to the next layer
            return (torch.nan_to_num(x, nan=0.0), *args[1:])
        return pre_hook

    handles = [producer.register_forward_hook(inject)]
    handles += [m.register_forward_pre_hook(record(n, m)) for n, m in layers.items()]
    try:
        with torch.no_grad():
            output = model(*_as_args(_repeat(example, channels)))
    except Exception as exc:
        raise ShapeError(f"structured pruning: probing layer '{pname}' failed: "
                         f"{type(exc).__name__}: {exc}") from exc
    finally:
        for handle in handles:
            handle.remove()
    outputs = output if isinstance(output, (tuple, list)) else (output,)
    for out in outputs:
        if torch.is_tensor(out) and out.is_floating_point():
            reached = torch.isnan(out).reshape(out.shape[0], -1).any(1)
            for b in torch.nonzero(reached).flatten().tolist():
                blocked.setdefault((pname, b), "reaches the model output")


def _as_args(example: Any) -> tuple:
    return tuple(example) if isinstance(example, (tuple, list)) else (example,)


def _score_groups(model: nn.Module, groups: list[ChannelGroup]) -> None:
    modules = dict(model.named_modules())
    norms: dict[str, torch.Tensor] = {}
    for name in {n for g in groups for n, _ in g.members}:
        module = modules[name]
        rows = channel_handler(module).out_weights(module).float()
        norm = rows.norm(dim=1)
        norms[name] = norm / norm.mean().clamp_min(1e-12)
    for group in groups:
        group.score = float(sum(norms[n][c] for n, c in group.members))


def apply_channel_removal(model: nn.Module, groups: list[ChannelGroup]) -> dict[str, dict[str, int]]:
    """Remove ``groups`` from ``model`` in place; returns the new sizes of every changed layer."""
    modules = dict(model.named_modules())
    drop_out: dict[str, set[int]] = defaultdict(set)
    drop_in: dict[str, set[int]] = defaultdict(set)
    for group in groups:
        for name, channel in group.members:
            drop_out[name].add(channel)
        for name, indices in group.footprint.items():
            drop_in[name].update(indices)
    structure: dict[str, dict[str, int]] = {}
    for name, dropped in drop_out.items():
        module = modules[name]
        handler = channel_handler(module)
        total = handler.num_out(module)
        keep = torch.tensor([c for c in range(total) if c not in dropped], dtype=torch.long)
        handler.prune_out(module, keep)
        structure.setdefault(name, {})["out"] = len(keep)
    for name, dropped in drop_in.items():
        module = modules[name]
        handler = channel_handler(module)
        total = _input_channels(module, handler)
        keep = torch.tensor([c for c in range(total) if c not in dropped], dtype=torch.long)
        handler.prune_in(module, keep)
        structure.setdefault(name, {})["in"] = len(keep)
    return structure


def _input_channels(module: nn.Module, handler) -> int:
    for attr in ("in_features", "in_channels", "input_size", "num_features"):
        if isinstance(getattr(module, attr, None), int):
            return getattr(module, attr)
    axes = getattr(module, "input_axes", None)
    if axes:
        return int(next(iter(axes.values())))
    raise ShapeError(f"cannot tell how many input channels layer {type(module).__name__} has")


def apply_structure(model: nn.Module, structure: dict[str, dict[str, int]]) -> nn.Module:
    """Shrink a freshly built model to recorded layer sizes (before loading pruned weights).

    Raises:
        ConfigError: a recorded layer does not exist or cannot be sliced.
    """
    modules = dict(model.named_modules())
    for name, sizes in structure.items():
        module = modules.get(name)
        if "heads" in sizes and isinstance(module, MultiHeadAttention):
            # CPU indices even for a model on "meta" (slicing meta weights by them works)
            keep_heads(module, torch.arange(int(sizes["heads"]), device="cpu"))
            continue
        handler = channel_handler(module) if module is not None else None
        if handler is None:
            raise ConfigError(f"pruned structure names layer '{name}', which "
                              f"{type(model).__name__} has not or which cannot be sliced")
        if "out" in sizes:
            handler.prune_out(module, torch.arange(int(sizes["out"]), device="cpu"))
        if "in" in sizes:
            handler.prune_in(module, torch.arange(int(sizes["in"]), device="cpu"))
    return model


@dataclass
class StructuredPruneResult:
    """What :func:`structured_prune` did."""

    structure: dict[str, dict[str, int]]  # layer -> {"in": n, "out": m} new sizes
    macs_before: int
    macs_after: int
    params_before: int
    params_after: int
    ratio: float  # fraction of channels removed from each removable family
    blocked: dict[str, str]  # family -> reason it was left alone

    @property
    def macs_ratio(self) -> float:
        return self.macs_after / self.macs_before if self.macs_before else 1.0


def _choose(groups: list[ChannelGroup], ratio: float, min_keep: int,
            multiple: int = 1) -> list[ChannelGroup]:
    families: dict[tuple[str, ...], list[ChannelGroup]] = defaultdict(list)
    for group in groups:
        if group.blocked is None:
            families[group.family].append(group)
    chosen = []
    for members in families.values():
        members.sort(key=lambda g: g.score)
        count = min(int(ratio * len(members) + 1e-9), max(0, len(members) - min_keep))
        if multiple > 1 and count and len(members) > multiple:
            keep = -(-(len(members) - count) // multiple) * multiple  # round up to the multiple
            count = len(members) - min(len(members), keep)
        chosen += members[:count]
    return chosen


def structured_prune(model: nn.Module, example: Any, flops_ratio: float | None = None,
                     channel_ratio: float | None = None, min_channels: int = 1,
                     heads: bool = False, channel_multiple: int = 1) -> StructuredPruneResult:
    """Remove whole channels / hidden units from ``model`` in place.

    Args:
        model: any module whose layers have channel handlers (others block their groups).
        example: one valid input (tensor or tuple of tensors, batch first).
        flops_ratio: target multiply-adds after pruning as a fraction of before (e.g. 0.5); the
            per-family channel fraction is found by bisection.
        channel_ratio: instead, remove this fraction of every removable family's channels.
        min_channels: channels each family keeps at least.
        channel_multiple: keep a multiple of this many channels in every family (8 suits CPU
            kernels that work on blocks of 8 / 16 channels: ONNX Runtime ran the seed CNN pruned
            to 22 / 44 channels slower than unpruned, see ``BENCHMARKS.md``).
        heads: also remove whole attention heads of every ``MultiHeadAttention`` (each layer
            loses the same fraction as the channel families, its weakest heads by
            :func:`~bigmodel.compress.units.head_scores` on ``example``; one head stays).

    Returns:
        A :class:`StructuredPruneResult` (new layer sizes, MACs and parameters before/after).

    Raises:
        ConfigError: neither or both of ``flops_ratio`` / ``channel_ratio``, a ratio outside
            (0, 1) / [0, 1), or no removable channel group.
        ShapeError: the example input does not run through the model.
    """
    if (flops_ratio is None) == (channel_ratio is None):
        raise ConfigError("structured_prune: give exactly one of 'flops_ratio' (MACs kept) or "
                          f"'channel_ratio' (channels removed); received flops_ratio={flops_ratio!r}, "
                          f"channel_ratio={channel_ratio!r}")
    if flops_ratio is not None and not (isinstance(flops_ratio, (int, float))
                                        and 0.0 < flops_ratio < 1.0):
        raise ConfigError(f"structured_prune: 'flops_ratio' is the fraction of multiply-adds to keep "
                          f"and must be in (0, 1); received {flops_ratio!r}")
    if isinstance(channel_multiple, bool) or not isinstance(channel_multiple, int) \
            or channel_multiple < 1:
        raise ConfigError(f"structured_prune: 'channel_multiple' must be a positive int; "
                          f"received {channel_multiple!r}")
    if channel_ratio is not None and not (isinstance(channel_ratio, (int, float))
                                          and 0.0 <= channel_ratio < 1.0):
        raise ConfigError(f"structured_prune: 'channel_ratio' must be in [0, 1); received "
                          f"{channel_ratio!r}")
    args = _as_args(example)
    macs_before = count_macs(model, *args)
    params_before = sum(p.numel() for p in model.parameters())
    groups = find_channel_groups(model, example)
    _score_groups(model, groups)
    _block_breaking_families(model, groups, args)
    blocked = {"/".join(g.family): g.blocked for g in groups if g.blocked is not None}
    scores = head_scores(model, args) if heads else {}
    if all(g.blocked is not None for g in groups) and not scores:
        raise ConfigError(f"structured_prune: {type(model).__name__} has no removable channel group "
                          f"({'; '.join(f'{k}: {v}' for k, v in sorted(blocked.items()))})")

    def remove(target: nn.Module, ratio: float) -> dict[str, dict[str, int]]:
        structure = apply_channel_removal(target, _choose(groups, ratio, min_channels,
                                                          channel_multiple))
        structure.update(prune_heads(target, choose_heads(scores, ratio)))
        return structure

    def macs_at(ratio: float) -> int:
        candidate = copy.deepcopy(model)
        remove(candidate, ratio)
        return count_macs(candidate, *args)

    if channel_ratio is not None:
        ratio = float(channel_ratio)
    else:
        low, high = 0.0, 1.0
        for _ in range(14):
            mid = (low + high) / 2
            if macs_at(mid) > flops_ratio * macs_before:
                low = mid
            else:
                high = mid
        ratio = high
    try:  # on a copy first: a failure leaves the caller's model untouched
        macs_at(ratio)
    except Exception as exc:
        raise ShapeError(f"structured_prune: {type(model).__name__} no longer runs after removing "
                         f"channels together ({type(exc).__name__}: {exc}); prune fewer families "
                         "or register a handler for the layer that failed") from exc
    structure = remove(model, ratio)
    macs_after = count_macs(model, *args)
    return StructuredPruneResult(structure, macs_before, macs_after, params_before,
                                 sum(p.numel() for p in model.parameters()), ratio,
                                 {k: v for k, v in blocked.items() if k not in _removable(groups)})


def prune_to_widths(model: nn.Module, example: Any, widths: dict[str, int],
                    ) -> StructuredPruneResult:
    """Remove channels in place until each named producer layer keeps ``widths[name]`` outputs.

    For layer sizes chosen by measured latency rather than by FLOPs (see
    ``benchmarks/structured_speed.py``): the weakest channel groups of each named layer go (the
    same ranking as :func:`structured_prune`); coupled layers follow.

    Raises:
        ConfigError: a name that is not a prunable producer, or a width outside ``[1, current]``.
    """
    args = _as_args(example)
    macs_before = count_macs(model, *args)
    params_before = sum(p.numel() for p in model.parameters())
    groups = find_channel_groups(model, example)
    _score_groups(model, groups)
    by_layer: dict[str, list[ChannelGroup]] = defaultdict(list)
    for group in groups:
        if group.blocked is None and len(group.family) == 1:
            by_layer[group.family[0]].append(group)
    chosen = []
    for name, width in widths.items():
        members = by_layer.get(name)
        if not members:
            raise ConfigError(f"prune_to_widths: '{name}' is not a prunable layer of "
                              f"{type(model).__name__}; prunable: {', '.join(sorted(by_layer))}")
        if not isinstance(width, int) or not 1 <= width <= len(members):
            raise ConfigError(f"prune_to_widths: width of '{name}' must be an int in [1, "
                              f"{len(members)}]; received {width!r}")
        chosen += sorted(members, key=lambda g: g.score)[: len(members) - width]
    structure = apply_channel_removal(model, chosen)
    return StructuredPruneResult(structure, macs_before, count_macs(model, *args), params_before,
                                 sum(p.numel() for p in model.parameters()), float("nan"), {})


def _output_shapes(output: Any) -> list:
    outputs = output if isinstance(output, (tuple, list)) else (output,)
    return [tuple(o.shape) for o in outputs if torch.is_tensor(o)]


def _block_breaking_families(model: nn.Module, groups: list[ChannelGroup], args: tuple) -> None:
    """Try removing a quarter of each family alone; block families whose removal breaks forward.

    Code that hard-wires a size (``qkv.split(d_model)``, ``view(B, T, num_heads, head_dim)``)
    cannot follow a slimmer layer; such families are left whole instead of failing later.
    """
    was_training = model.training
    model.eval()
    with torch.no_grad():
        reference = _output_shapes(model(*args))
    model.train(was_training)
    families: dict[tuple[str, ...], list[ChannelGroup]] = defaultdict(list)
    for group in groups:
        if group.blocked is None:
            families[group.family].append(group)
    for members in families.values():
        if len(members) < 2:
            continue
        chosen = sorted(members, key=lambda g: g.score)[: max(1, len(members) // 4)]
        candidate = copy.deepcopy(model).eval()
        try:
            apply_channel_removal(candidate, chosen)
            with torch.no_grad():
                shapes = _output_shapes(candidate(*args))
            reason = None if shapes == reference else f"output shapes change to {shapes}"
        except Exception as exc:  # any failure means the code does not follow the new sizes
            reason = f"{type(exc).__name__}: {str(exc).splitlines()[0][:160]}"
        if reason is not None:
            for group in members:
                group.blocked = f"removing its channels breaks the forward pass ({reason})"


def _removable(groups: list[ChannelGroup]) -> set[str]:
    return {"/".join(g.family) for g in groups if g.blocked is None}
