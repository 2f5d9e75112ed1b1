"""Freeze and unfreeze parts of any model by name, and count what is left to train.

Patterns are shell globs (``fnmatch``) matched against module names and parameter names as
``model.named_modules()`` / ``named_parameters()`` spell them (``"conv1"``, ``"encoder.layers.[0-3]"``,
``"*.norm*"``, ``"classifier.*"``), and against the ``name`` of Keras layers (``"dense_1"``). A
pattern that names a module covers every parameter inside it.

Frozen means: ``requires_grad=False`` on the parameters, and normalization layers with running
statistics (``BatchNorm*``, Keras ``BatchNormalization``) kept in inference mode -- they normalize
with their moving statistics and stop updating them, even while the rest of the model trains. This
is what Keras does for ``layer.trainable = False`` and what fine-tuning recipes for BatchNorm
networks want (a small target set would otherwise overwrite statistics learned on the large one).
"""

from __future__ import annotations

import difflib
import fnmatch
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from torch import nn
from torch.nn.modules.batchnorm import _BatchNorm

from bigmodel.errors import ConfigError, InputTypeError

__all__ = ["TrainableSummary", "freeze", "match_parameters", "summary", "unfreeze"]

Patterns = str | Sequence[str] | None


def _as_patterns(patterns: Patterns, owner: str) -> list[str] | None:
    if patterns is None:
        return None
    if isinstance(patterns, str):
        return [patterns]
    if not isinstance(patterns, Iterable) or not all(isinstance(p, str) for p in patterns):
        raise InputTypeError(f"{owner}: 'patterns' must be a glob string or a list of them; "
                             f"received {patterns!r}")
    patterns = list(patterns)
    if not patterns:
        raise ConfigError(f"{owner}: 'patterns' is an empty list; pass None for the whole model")
    return patterns


def layer_name(module: nn.Module) -> str | None:
    """The name a pattern may use for ``module`` besides its path: its ``name`` when that is a
    string (the protocol Keras layers implement; plain ``torch.nn`` modules have none)."""
    name = getattr(module, "name", None)
    return name if isinstance(name, str) else None


def _module_aliases(model: nn.Module) -> dict[str, list[str]]:
    """Module path -> the names a pattern may use for it (the path, and a Keras layer's name)."""
    aliases: dict[str, list[str]] = {}
    for path, module in model.named_modules():
        names = [path] if path else []
        if module is not model and layer_name(module) is not None:
            names.append(layer_name(module))
        aliases[path] = names
    return aliases


def _prefixes(param_name: str) -> list[str]:
    parts = param_name.split(".")
    return [".".join(parts[:i]) for i in range(len(parts) - 1, -1, -1)]  # owner first, root last


def match_parameters(model: nn.Module, patterns: Patterns, owner: str = "match_parameters",
                     ) -> dict[str, list[str]]:
    """``{pattern: [parameter names]}`` for each pattern (every parameter when ``patterns`` is None).

    Raises:
        ConfigError: a pattern matches no module and no parameter (names it, with close names).
    """
    if not isinstance(model, nn.Module):
        raise InputTypeError(f"{owner}: 'model' must be a torch.nn.Module; received "
                             f"{type(model).__name__}")
    names = [name for name, _ in model.named_parameters()]
    pattern_list = _as_patterns(patterns, owner)
    if pattern_list is None:
        return {"*": names}
    aliases = _module_aliases(model)
    out: dict[str, list[str]] = {}
    for pattern in pattern_list:
        hits = []
        for name in names:
            candidates = [name] + [a for prefix in _prefixes(name) for a in aliases.get(prefix, [])]
            if any(fnmatch.fnmatchcase(c, pattern) for c in candidates):
                hits.append(name)
        if not hits:
            known = sorted({a for names_ in aliases.values() for a in names_})
            close = difflib.get_close_matches(pattern, known, n=3)
            hint = f" (did you mean {', '.join(repr(c) for c in close)}?)" if close else ""
            shown = ", ".join(known[:12]) + (", ..." if len(known) > 12 else "")
            raise ConfigError(f"{owner}: pattern {pattern!r} matches no module or parameter of "
                              f"{type(model).__name__}{hint}; module names: {shown}")
        out[pattern] = hits
    return out


def _matched_modules(model: nn.Module, params: set[str]) -> list[nn.Module]:
    """Modules whose every (direct or nested) parameter is in ``params``, and parameterless
    modules inside such a module (e.g. a BatchNorm without affine weights)."""
    out = []
    for path, module in model.named_modules():
        own = [f"{path}.{n}" if path else n for n, _ in module.named_parameters()]
        if own and all(n in params for n in own):
            out.extend(module.modules())
    return list({id(m): m for m in out}.values())


def _freeze_norm_hook(module: nn.Module, args):  # forward pre-hook
    if getattr(module, "_bigmodel_frozen", False):
        module.training = False


def _set_frozen_norm(module: nn.Module, frozen: bool, training: bool) -> None:
    # Only torch's batch norms; the Keras layer follows its own ``trainable`` flag (set by the
    # caller through ``set_trainable_flag``).
    if not isinstance(module, _BatchNorm):
        return
    module._bigmodel_frozen = frozen
    if frozen and not hasattr(module, "_bigmodel_freeze_hook"):
        module._bigmodel_freeze_hook = module.register_forward_pre_hook(_freeze_norm_hook)
        module.training = False
    elif not frozen:
        module.training = training


def _apply(model: nn.Module, patterns: Patterns, trainable: bool, norm_eval: bool,
           owner: str) -> list[str]:
    matched = match_parameters(model, patterns, owner)
    chosen = {name for names in matched.values() for name in names}
    params = dict(model.named_parameters())
    for name in chosen:
        params[name].requires_grad_(trainable)
    modules = list(model.modules()) if patterns is None else _matched_modules(model, chosen)
    for module in modules:
        set_flag = getattr(module, "set_trainable_flag", None)
        if set_flag is not None:  # the protocol of Keras layers: BatchNormalization follows it
            set_flag(trainable)
        if norm_eval or trainable:
            _set_frozen_norm(module, not trainable, model.training)
    return sorted(chosen)


def freeze(model: nn.Module, patterns: Patterns = None, *, norm_eval: bool = True) -> list[str]:
    """Stop training the parameters ``patterns`` name (all of them when ``patterns`` is None).

    Args:
        model: any ``nn.Module`` (plain PyTorch or Keras surface).
        patterns: a glob or a list of globs (see the module docstring).
        norm_eval: keep frozen BatchNorm layers in inference mode (moving statistics used and not
            updated), as Keras does for a frozen ``BatchNormalization``.

    Returns:
        The names of the parameters frozen.

    Raises:
        ConfigError: a pattern matches nothing (names the pattern and close module names).
    """
    return _apply(model, patterns, False, norm_eval, "freeze")


def unfreeze(model: nn.Module, patterns: Patterns = None) -> list[str]:
    """Train the parameters ``patterns`` name again (all when None); BatchNorm follows the model's
    train/eval mode again.

    Returns:
        The names of the parameters unfrozen.

    Raises:
        ConfigError: a pattern matches nothing.
    """
    return _apply(model, patterns, True, True, "unfreeze")


# -- counting -------------------------------------------------------------------------------------


@dataclass
class TrainableSummary:
    """Trainable and frozen parameter counts, per top-level module (``rows``) and in total."""

    rows: list[tuple[str, str, int, int]] = field(default_factory=list)  # name, type, train, frozen
    trainable: int = 0
    frozen: int = 0

    @property
    def total(self) -> int:
        return self.trainable + self.frozen

    @property
    def trainable_fraction(self) -> float:
        return self.trainable / self.total if self.total else 0.0

    def __str__(self) -> str:
        header = ("module", "type", "trainable", "frozen")
        cells = [header] + [(n, t, f"{a:,}", f"{b:,}") for n, t, a, b in self.rows]
        widths = [max(len(row[i]) for row in cells) for i in range(4)]
        lines = ["  ".join(c.ljust(w) if i < 2 else c.rjust(w) for i, (c, w) in
                           enumerate(zip(row, widths))) for row in cells]
        lines.insert(1, "-" * len(lines[0]))
        lines.append("-" * len(lines[0]))
        lines.append(f"trainable {self.trainable:,} / total {self.total:,} "
                     f"({100 * self.trainable_fraction:.2f}%); frozen {self.frozen:,}")
        return "\n".join(lines)


def summary(model: nn.Module, depth: int = 1) -> TrainableSummary:
    """Count trainable vs frozen parameters of each module ``depth`` levels down (1: children).

    Shared parameters (tied weights) are counted once, with the first module that holds them.
    """
    if not isinstance(model, nn.Module):
        raise InputTypeError(f"summary: 'model' must be a torch.nn.Module; received "
                             f"{type(model).__name__}")
    if not isinstance(depth, int) or depth < 0:
        raise ConfigError(f"summary: 'depth' must be an int >= 0; received {depth!r}")
    seen: set[int] = set()
    result = TrainableSummary()
    groups: dict[str, list[int]] = {}
    types: dict[str, str] = {}
    for name, param in model.named_parameters():
        if id(param) in seen:
            continue
        seen.add(id(param))
        key = ".".join(name.split(".")[:depth]) if depth else ""
        if key == name:  # a parameter that sits directly on a module at this depth
            key = ".".join(name.split(".")[:-1]) or "(root)"
        module = model.get_submodule(key) if key and key != "(root)" else model
        types.setdefault(key, type(module).__name__)
        counts = groups.setdefault(key, [0, 0])
        counts[0 if param.requires_grad else 1] += param.numel()
        if param.requires_grad:
            result.trainable += param.numel()
        else:
            result.frozen += param.numel()
    result.rows = [(k or "(root)", types[k], a, b) for k, (a, b) in groups.items()]
    return result
