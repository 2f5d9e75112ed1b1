"""Attention maps: raw per-head weights and attention rollout.

How a model shows its attention (the hook any attention module can implement)
------------------------------------------------------------------------------
A module takes part when it has a boolean attribute ``store_attention_weights``. While explaining,
bigmodel sets it to ``True``; in ``forward`` the module then keeps its post-softmax attention
weights as ``self.last_attention_weights``, a tensor ``(B, num_heads, T_query, T_key)`` (it may
keep them detached). Afterwards the attribute is restored. Nothing else is required::

    class SelfAttention(nn.Module):
        store_attention_weights = False

        def forward(self, x):
            weights = torch.softmax(q @ k.transpose(-2, -1) / scale, dim=-1)   # (B, H, T, T)
            if self.store_attention_weights:
                self.last_attention_weights = weights.detach()
            return ...

Modules that can already return their weights work without changes: those whose ``forward`` takes
``need_weights`` and returns ``(output, weights)`` (``torch.nn.MultiheadAttention`` -- asked for
per-head weights --, ``bigmodel.nn.attention.MultiHeadAttention``), and those taking
``return_attention_scores`` (the Keras ``MultiHeadAttention`` layer). Forward hooks switch the flag on
for the call, keep the weights and hand the caller exactly what it asked for. A module that wraps
another attention module (a Transformer layer passing ``need_weights`` down) is not counted twice:
only the innermost attention modules are used.

Rollout (Abnar & Zuidema, "Quantifying Attention Flow in Transformers", 2020)
----------------------------------------------------------------------------
With ``A_l`` the layer-``l`` weights fused over heads (mean, max or min), residual connections are
accounted for by ``Â_l = (A_l + I) / 2`` rows renormalized to sum to 1, and the rollout is the
product ``R = Â_L ··· Â_2 Â_1``: row ``i`` of ``R`` says how much each input token flows into
position ``i`` of the last layer. A classifier reading a ``[CLS]`` token at index ``c`` is explained
by ``R[c]``; one that pools every position by the mean of the rows.
"""

from __future__ import annotations

import contextlib
import inspect
from collections.abc import Iterator, Sequence
from typing import Any

import torch
from torch import nn

from bigmodel.errors import ConfigError, ShapeError, describe

HEAD_FUSIONS = ("mean", "max", "min")
_CONTRACT = {
    "store": "it must set last_attention_weights when store_attention_weights is True",
    "need_weights": "called with need_weights=True it must return (output, weights)",
    "scores": "called with return_attention_scores=True it must return (output, scores)",
    None: "it follows none of the attention conventions",
}


def attention_kind(module: nn.Module) -> str | None:
    """How a module shows its attention: ``"store"``, ``"need_weights"``, ``"scores"`` or None."""
    if hasattr(module, "store_attention_weights"):
        return "store"
    try:
        parameters = inspect.signature(module.forward).parameters
    except (TypeError, ValueError):
        return None
    if "need_weights" in parameters:
        return "need_weights"
    if "return_attention_scores" in parameters:
        return "scores"
    return None


def is_attention_module(module: nn.Module) -> bool:
    """Modules following one of the conventions above."""
    return attention_kind(module) is not None


def _flag_hooks(module: nn.Module, flag: str, found: list) -> list:
    """Hooks forcing ``flag=True`` on each call, keeping ``output[1]`` and returning the caller's
    own form of the output (``(out, None)`` / ``out`` when it had not asked for weights)."""
    names = list(inspect.signature(module.forward).parameters)
    position = names.index(flag)
    asked: list[bool] = []

    def pre(_m: nn.Module, args: tuple, kwargs: dict) -> tuple:
        kwargs = dict(kwargs)
        if len(args) > position:
            asked.append(bool(args[position]))
            args = (*args[:position], True, *args[position + 1:])
        else:
            asked.append(bool(kwargs.get(flag, False)))
            kwargs[flag] = True
        if isinstance(_m, nn.MultiheadAttention):
            kwargs["average_attn_weights"] = False
        return args, kwargs

    def post(_m: nn.Module, _args: Any, output: Any) -> Any:
        wanted = asked.pop() if asked else True
        if isinstance(output, (tuple, list)) and len(output) > 1:
            if isinstance(output[1], torch.Tensor):
                found.append(output[1].detach())
            if not wanted:
                return (output[0], None) if flag == "need_weights" else output[0]
        return output

    return [module.register_forward_pre_hook(pre, with_kwargs=True),
            module.register_forward_hook(post)]


@contextlib.contextmanager
def recording(modules: Sequence[tuple[str, nn.Module]]) -> Iterator[dict[str, list]]:
    """Context in which each listed attention module's weights of every call are collected.

    Yields a dict ``name -> [weights (B, H, Tq, Tk), ...]`` (one entry per call) filled by the
    forward passes run inside the context.
    """
    found: dict[str, list] = {name: [] for name, _ in modules}
    handles = []
    previous: dict[str, Any] = {}
    try:
        for name, module in modules:
            kind = attention_kind(module)
            if kind == "store":
                previous[name] = module.store_attention_weights
                module.store_attention_weights = True

                def read(m: nn.Module, _args: Any, _output: Any, name: str = name) -> None:
                    weights = getattr(m, "last_attention_weights", None)
                    if weights is not None:
                        found[name].append(weights.detach())

                handles.append(module.register_forward_hook(read))
            elif kind is not None:
                flag = "need_weights" if kind == "need_weights" else "return_attention_scores"
                handles.extend(_flag_hooks(module, flag, found[name]))
        yield found
    finally:
        for handle in handles:
            handle.remove()
        for name, module in modules:
            if name in previous:
                module.store_attention_weights = previous[name]


def collect_attention(model: nn.Module, x: torch.Tensor, modules: Sequence[tuple[str, nn.Module]],
                      batch_size: int = 256) -> list[tuple[str, torch.Tensor]]:
    """Per-head attention of each module: ``[(name, (B, H, Tq, Tk)), ...]`` in execution order.

    A module called several times (weight sharing) gives one entry per call (``name#2``, ...).

    Raises:
        ConfigError: an attention module ran but did not provide its weights.
        ShapeError: weights that are not ``(B, H, Tq, Tk)``.
    """
    per_chunk: list[list[tuple[str, torch.Tensor]]] = []
    for start in range(0, len(x), batch_size):
        chunk = x[start: start + batch_size]
        with recording(modules) as found, torch.no_grad():
            model(chunk)
        entries = []
        for name, module in modules:
            if not found[name]:
                raise ConfigError(f"explain: attention module {name!r} gave no attention weights "
                                  f"({_CONTRACT[attention_kind(module)]})")
            for call, weights in enumerate(found[name]):
                if weights.ndim == 3:  # (B, Tq, Tk): a single head
                    weights = weights.unsqueeze(1)
                if weights.ndim != 4 or weights.shape[0] != len(chunk):
                    raise ShapeError(f"explain: attention module {name!r} stored weights "
                                     f"{describe(weights)}; expected (B={len(chunk)}, heads, "
                                     "T_query, T_key)")
                entries.append((name if call == 0 else f"{name}#{call + 1}", weights.float()))
        per_chunk.append(entries)
    names = [name for name, _ in per_chunk[0]]
    return [(name, torch.cat([chunk[i][1] for chunk in per_chunk]).cpu())
            for i, name in enumerate(names)]


def fuse_heads(weights: torch.Tensor, head_fusion: str = "mean") -> torch.Tensor:
    """``(B, H, Tq, Tk) -> (B, Tq, Tk)`` by the mean, max or min over heads."""
    if head_fusion not in HEAD_FUSIONS:
        raise ConfigError(f"explain: unknown head_fusion {head_fusion!r}; expected one of "
                          f"{', '.join(HEAD_FUSIONS)}")
    if head_fusion == "mean":
        return weights.mean(dim=1)
    return weights.amax(dim=1) if head_fusion == "max" else weights.amin(dim=1)


def attention_rollout(maps: Sequence[torch.Tensor], head_fusion: str = "mean",
                      residual: bool = True) -> torch.Tensor:
    """Rollout ``(B, T, T)`` of per-layer maps ``(B, H, T, T)`` given first layer first.

    Raises:
        ShapeError: no maps, non-square maps or maps of different sizes.
    """
    if not maps:
        raise ShapeError("explain: attention rollout needs at least one attention map")
    rollout = None
    for weights in maps:
        if weights.ndim != 4 or weights.shape[-1] != weights.shape[-2]:
            raise ShapeError(f"explain: attention rollout needs self-attention maps (B, H, T, T); "
                             f"received {describe(weights)}")
        fused = fuse_heads(weights.double(), head_fusion)
        if residual:
            eye = torch.eye(fused.shape[-1], dtype=fused.dtype, device=fused.device)
            fused = fused + eye
        fused = fused / fused.sum(dim=-1, keepdim=True).clamp_min(1e-12)
        if rollout is not None and rollout.shape != fused.shape:
            raise ShapeError(f"explain: attention maps of different sizes {tuple(rollout.shape)} "
                             f"and {tuple(fused.shape)} cannot be rolled out")
        rollout = fused if rollout is None else fused @ rollout
    return rollout.float()


def token_relevance(rollout: torch.Tensor, query: Any = "mean") -> torch.Tensor:
    """Relevance of each input token ``(B, T)``: row ``query`` of the rollout or the mean row.

    Raises:
        ConfigError: a query index outside ``[0, T)`` or an unknown value.
    """
    length = rollout.shape[-1]
    if query == "mean":
        return rollout.mean(dim=1)
    if isinstance(query, int) and not isinstance(query, bool):
        if not -length <= query < length:
            raise ConfigError(f"explain: attention query={query} is out of range for {length} "
                              "tokens")
        return rollout[:, query, :]
    raise ConfigError(f"explain: attention query must be 'mean' or a token index (e.g. 0 for a "
                      f"[CLS] token); received {query!r}")


def frames_to_image(relevance: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """Time-frame relevance ``(B, L)`` of a spectrogram model (its tokens are frames, possibly
    subsampled) as a ``(B, F, T)`` map: each of the ``T`` columns takes its frame's value (nearest,
    frames spread evenly over time), the same at every frequency."""
    import torch.nn.functional as F

    bands, frames = size
    columns = F.interpolate(relevance[:, None, :].float(), size=frames, mode="nearest")
    return columns.expand(len(relevance), bands, frames)


def tokens_to_image(relevance: torch.Tensor, size: tuple[int, int],
                    drop: int | None = None) -> torch.Tensor:
    """Patch-token relevance ``(B, T)`` of an image model as a ``(B, H, W)`` map.

    ``drop`` removes one token (a ``[CLS]`` index) first; the remaining tokens must form a square
    grid of patches, which is resized to the image.

    Raises:
        ShapeError: the tokens do not form a square grid.
    """
    import math

    import torch.nn.functional as F

    if drop is not None:
        keep = [i for i in range(relevance.shape[1]) if i != drop % relevance.shape[1]]
        relevance = relevance[:, keep]
    side = math.isqrt(relevance.shape[1])
    if side * side != relevance.shape[1]:
        raise ShapeError(f"explain: {relevance.shape[1]} attention tokens do not form a square grid "
                         "of image patches; pass query=<CLS index> if the model has a class token")
    grid = relevance.reshape(len(relevance), 1, side, side)
    return F.interpolate(grid, size=size, mode="nearest").squeeze(1)
