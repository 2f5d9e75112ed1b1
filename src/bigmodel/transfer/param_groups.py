"""Parameter groups with their own learning rates: discriminative fine-tuning.

Two ways to make them, both returning a list of dicts any ``torch.optim`` optimizer accepts
(``torch.optim.AdamW(groups, lr=...)``), each with ``lr``, ``params`` and for the record ``name``
and ``param_names``:

* :func:`param_groups` -- explicit ``{glob pattern: lr}`` (first matching pattern wins; the rest
  get ``default_lr``);
* :func:`layerwise_lr` -- ULMFiT / BERT-style decay: the top block (the head) gets ``base_lr``, each
  block below it ``decay`` times the one above (Howard & Ruder, 2018, use ``decay = 1/2.6``).

Frozen parameters are included by default, so unfreezing them later (e.g. with
:class:`~bigmodel.transfer.unfreezing.GradualUnfreezing`) needs no change to the optimizer; an
optimizer skips parameters whose gradient is ``None``, so frozen ones cost nothing and do not decay.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from torch import nn

from bigmodel.errors import ConfigError, InputTypeError
from bigmodel.transfer.freezing import match_parameters
from bigmodel.utils import checks

__all__ = ["layer_blocks", "layerwise_lr", "param_groups"]


def _split_decay(group: dict, weight_decay: float | None) -> list[dict]:
    """With ``weight_decay``, biases and norm scales (1-D tensors) go to a twin group without it."""
    if weight_decay is None:
        return [group]
    named = list(zip(group["param_names"], group["params"]))
    decayed = [(n, p) for n, p in named if p.dim() > 1]
    plain = [(n, p) for n, p in named if p.dim() <= 1]
    out = []
    for items, decay, suffix in ((decayed, weight_decay, ""), (plain, 0.0, " (no decay)")):
        if items:
            out.append({**group, "name": group["name"] + suffix, "weight_decay": decay,
                        "param_names": [n for n, _ in items], "params": [p for _, p in items]})
    return out


def param_groups(model: nn.Module, lrs: Mapping[str, float] | Sequence[tuple[str, float]],
                 default_lr: float | None = None, weight_decay: float | None = None,
                 include_frozen: bool = True) -> list[dict]:
    """Optimizer groups from ``{pattern: lr}``.

    Args:
        model: any module.
        lrs: glob patterns (as in :func:`~bigmodel.transfer.freezing.freeze`) -> learning rate, in
            priority order (a parameter goes to the first pattern that matches it).
        default_lr: learning rate of the parameters no pattern matches; None leaves them out of the
            optimizer (they will not train).
        weight_decay: when given, every group is split into a decayed group (matrices, kernels) and
            one without decay (biases, norm scales).
        include_frozen: keep parameters with ``requires_grad=False`` (so they can be unfrozen later).

    Raises:
        ConfigError: a pattern matches nothing, a learning rate is not > 0, or no parameter is left.
    """
    items = list(lrs.items()) if isinstance(lrs, Mapping) else list(lrs)
    if not items:
        raise ConfigError("param_groups: 'lrs' is empty; give at least one {pattern: lr}")
    for entry in items:
        if not (isinstance(entry, (tuple, list)) and len(entry) == 2 and isinstance(entry[0], str)):
            raise InputTypeError(f"param_groups: each entry of 'lrs' must be (pattern, lr); "
                                 f"received {entry!r}")
        checks.positive_number("param_groups", f"lr of {entry[0]!r}", entry[1])
    if default_lr is not None:
        checks.positive_number("param_groups", "default_lr", default_lr)
    matched = match_parameters(model, [p for p, _ in items], "param_groups")
    params = dict(model.named_parameters())
    taken: set[str] = set()
    groups = []
    for pattern, lr in items:
        names = [n for n in matched[pattern] if n not in taken
                 and (include_frozen or params[n].requires_grad)]
        taken.update(names)
        if names:
            groups.append({"name": pattern, "lr": float(lr), "param_names": names,
                           "params": [params[n] for n in names]})
    rest = [n for n in params if n not in taken and (include_frozen or params[n].requires_grad)]
    if rest and default_lr is not None:
        groups.append({"name": "default", "lr": float(default_lr), "param_names": rest,
                       "params": [params[n] for n in rest]})
    if not groups:
        raise ConfigError(f"param_groups: no parameter of {type(model).__name__} is left to "
                          "optimize (all frozen and include_frozen=False?)")
    return [g for group in groups for g in _split_decay(group, weight_decay)]


def layer_blocks(model: nn.Module) -> list[str]:
    """Module names of the model's blocks from the input to the output.

    The children of the model in registration order, with each ``ModuleList`` / ``Sequential`` (or a
    child holding one as ``layers``, like an encoder) expanded into its items -- for a
    ``bert-classifier``: ``embeddings``, ``encoder.layers.0`` ... ``encoder.layers.5``,
    ``head_dropout`` is skipped (no parameters), ``classifier``. Blocks without parameters are left
    out; parameters sitting directly on the model (e.g. a [CLS] token) get the lowest learning
    rate in :func:`layerwise_lr`. For a Keras model: the names of its layers that hold weights.
    """
    layers = getattr(model, "layers", None)
    if isinstance(layers, list):  # the Keras surface's protocol: a list of named layers
        return [layer.name for layer in layers if any(True for _ in layer.parameters())]
    blocks: list[str] = []

    def visit(prefix: str, module: nn.Module) -> None:
        for name, child in module.named_children():
            path = f"{prefix}{name}"
            if not any(True for _ in child.parameters()):
                continue
            if isinstance(child, (nn.ModuleList, nn.Sequential)):
                visit(path + ".", child)
            elif isinstance(getattr(child, "layers", None), nn.ModuleList):
                visit(path + ".", child)  # its other children (a final norm) follow the layers
            else:
                blocks.append(path)

    visit("", model)
    return list(dict.fromkeys(blocks))


def layerwise_lr(model: nn.Module, base_lr: float, decay: float = 1 / 2.6,
                 blocks: Sequence[str] | None = None, weight_decay: float | None = None,
                 include_frozen: bool = True) -> list[dict]:
    """Discriminative learning rates: ``lr(block) = base_lr * decay ** (blocks above it)``.

    Args:
        base_lr: learning rate of the top block (the head).
        decay: factor per block going down, in (0, 1].
        blocks: module names or globs from input to output (default :func:`layer_blocks`).

    Raises:
        ConfigError: bad ``base_lr`` / ``decay``, or a block name matching nothing.
    """
    base_lr = checks.positive_number("layerwise_lr", "base_lr", base_lr)
    decay = checks.positive_number("layerwise_lr", "decay", decay)
    if decay > 1:
        raise ConfigError(f"layerwise_lr: 'decay' must be in (0, 1]; received {decay!r}")
    blocks = list(blocks) if blocks is not None else layer_blocks(model)
    if not blocks:
        raise ConfigError(f"layerwise_lr: {type(model).__name__} has no parameter blocks")
    depth = len(blocks)
    # top first: the head must win over a broader pattern lower down
    lrs = [(block, base_lr * decay ** (depth - 1 - i)) for i, block in reversed(list(enumerate(blocks)))]
    groups = param_groups(model, lrs, default_lr=base_lr * decay ** (depth - 1),
                          weight_decay=weight_decay, include_frozen=include_frozen)
    return sorted(groups, key=lambda g: g["lr"])
