"""LoRA (Hu et al., 2021) on the Linear and Conv layers of any model, through PEFT.

``W x`` becomes ``W x + (alpha / rank) * B A x`` with ``A`` ``(rank, in)`` random, ``B`` ``(out, rank)``
zero (so the model starts unchanged) and ``W`` frozen. PEFT's ``inject_adapter_in_model`` does the
module swap on plain ``nn.Module`` trees (no Hugging Face model class needed); this file adds what a
bigmodel user expects around it: glob targets checked up front (a pattern matching nothing, or a
layer type LoRA cannot wrap, is an error naming it), extra modules left trainable (a new head), the
adapter saved alone (safetensors + JSON), and :func:`merge_lora` folding ``B A`` back into ``W`` so the
model is plain PyTorch again, as fast as before and saveable with the registry.

Targets are module names or globs (``"*.self_attn.in_proj"``, ``"*.ffn.linear1"``, ``"conv3"``). In
bigmodel's attention the query, key and value projections are one fused ``in_proj`` matrix, so
``*.self_attn.in_proj`` adapts all three.
"""

from __future__ import annotations

import fnmatch
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
from torch import nn

from bigmodel.errors import CheckpointError, ConfigError, InputTypeError
from bigmodel.models.model_files import (
    FileFormat,
    read_model_document,
    read_safetensors,
    weights_file,
    write_model_files,
)
from bigmodel.transfer.freezing import layer_name
from bigmodel.utils import checks

__all__ = ["LORA_TYPES", "add_lora", "load_lora", "lora_state_dict", "merge_lora", "save_lora"]

LORA_TYPES = (nn.Linear, nn.Conv1d, nn.Conv2d, nn.Conv3d)
ADAPTER_WEIGHTS = "adapter.safetensors"
ADAPTER_JSON = "adapter.json"
_FORMAT = "bigmodel-lora"
#: ``adapter.json`` (targets, rank, alpha, ...) + ``adapter.safetensors`` (adapters, extra trainables).
ADAPTER_FILE = FileFormat(_FORMAT, 1, "a bigmodel LoRA adapter file", what="LoRA adapter file",
                          weights_what="LoRA adapter weights", noun="LoRA adapter",
                          json_name=ADAPTER_JSON, weights_name=ADAPTER_WEIGHTS,
                          max_bytes=1024 * 1024)  # targets and a few numbers


def _peft():
    try:
        import peft
    except ImportError:
        raise ConfigError("LoRA needs the package 'peft': .venv/bin/pip install -c constraints.txt "
                          "peft") from None
    return peft


def _lora_layer_type():
    from peft.tuners.lora import LoraLayer

    return LoraLayer


def _target_modules(model: nn.Module, target: Sequence[str]) -> list[str]:
    """Module names the patterns select; every pattern must select a LoRA-able layer."""
    named = [(name, module) for name, module in model.named_modules() if name]
    chosen: list[str] = []
    for pattern in target:
        hits = [(n, m) for n, m in named if fnmatch.fnmatchcase(n, pattern)
                or (layer_name(m) is not None and fnmatch.fnmatchcase(layer_name(m), pattern))]
        if not hits:
            import difflib

            close = difflib.get_close_matches(pattern, [n for n, _ in named], n=3)
            hint = f" (did you mean {', '.join(repr(c) for c in close)}?)" if close else ""
            raise ConfigError(f"add_lora: target {pattern!r} matches no module of "
                              f"{type(model).__name__}{hint}")
        bad = [(n, m) for n, m in hits if not isinstance(m, LORA_TYPES)]
        if bad:
            name, module = bad[0]
            kinds = ", ".join(f"nn.{t.__name__}" for t in LORA_TYPES)
            raise ConfigError(f"add_lora: target {pattern!r} selects module {name!r} of type "
                              f"{type(module).__name__}, which LoRA does not support; supported "
                              f"types: {kinds} (choose the Linear/Conv layers inside it, e.g. "
                              f"'{name}.*')")
        chosen.extend(n for n, _ in hits if n not in chosen)
    return chosen


def add_lora(model: nn.Module, target: str | Sequence[str], rank: int = 8, alpha: float = 16,
             dropout: float = 0.0, trainable: str | Sequence[str] = ()) -> nn.Module:
    """Wrap the targeted layers with LoRA adapters; freeze everything else.

    Args:
        model: any ``nn.Module``; changed in place (and returned).
        target: module names or globs of ``nn.Linear`` / ``nn.Conv1d/2d/3d`` layers.
        rank: rank ``r`` of the update ``B A``.
        alpha: scaling numerator: the update is multiplied by ``alpha / rank``.
        dropout: dropout on the adapter's input (training only).
        trainable: modules (globs) left trainable besides the adapters, e.g. a new head
            ``"classifier"``; they are saved with the adapter.

    Returns:
        The model, with only the adapters (and ``trainable``) having ``requires_grad``.

    Raises:
        ConfigError: a target matches nothing or a layer type LoRA cannot wrap; bad rank / alpha /
            dropout; LoRA already added.
    """
    from bigmodel.transfer.freezing import match_parameters

    peft = _peft()
    if not isinstance(model, nn.Module):
        raise InputTypeError(f"add_lora: 'model' must be a torch.nn.Module; received "
                             f"{type(model).__name__}")
    if getattr(model, "_bigmodel_lora", None) is not None:
        raise ConfigError("add_lora: this model already has LoRA adapters; merge_lora() first")
    targets = [target] if isinstance(target, str) else list(target)
    if not targets:
        raise ConfigError("add_lora: 'target' is empty; name the Linear/Conv layers to adapt")
    extra = [trainable] if isinstance(trainable, str) else list(trainable)
    checks.int_at_least("add_lora", "rank", rank, 1)
    if isinstance(alpha, bool) or not isinstance(alpha, (int, float)) or alpha <= 0:
        raise ConfigError(f"add_lora: 'alpha' must be a number > 0; received {alpha!r}")
    if isinstance(dropout, bool) or not isinstance(dropout, (int, float)) or not 0 <= dropout < 1:
        raise ConfigError(f"add_lora: 'dropout' must be in [0, 1); received {dropout!r}")
    modules = _target_modules(model, targets)
    extra_params = sorted({n for names in match_parameters(model, extra, "add_lora").values()
                           for n in names}) if extra else []
    overlap = [n for n in extra_params if any(n.startswith(m + ".") for m in modules)]
    if overlap:
        raise ConfigError(f"add_lora: 'trainable' {extra} overlaps the LoRA targets ({overlap[0]})")
    before = {n: p.requires_grad for n, p in model.named_parameters()}
    config = peft.LoraConfig(r=rank, lora_alpha=alpha, lora_dropout=float(dropout),
                             target_modules=modules, bias="none")
    model = peft.inject_adapter_in_model(config, model)
    params = dict(model.named_parameters())
    for name, param in params.items():
        param.requires_grad_("lora_" in name)
    for name in extra_params:
        params[name].requires_grad_(True)
    model._bigmodel_lora = {"target": targets, "modules": modules, "rank": rank,
                            "alpha": float(alpha), "dropout": float(dropout), "trainable": extra,
                            "trainable_params": extra_params, "requires_grad_before": before}
    return model


def _lora_info(model: nn.Module, owner: str) -> dict:
    info = getattr(model, "_bigmodel_lora", None)
    if info is None:
        raise ConfigError(f"{owner}: the model has no LoRA adapters (call add_lora first)")
    return info


def merge_lora(model: nn.Module) -> nn.Module:
    """Fold every adapter into its layer (``W += alpha/rank * B A``) and remove the wrappers.

    The model is plain PyTorch again (same state-dict names as before :func:`add_lora`), with each
    parameter's ``requires_grad`` as it was before ``add_lora`` (the merged ones and the extra
    trainable ones set to True).

    Raises:
        ConfigError: the model has no adapters.
    """
    info = _lora_info(model, "merge_lora")
    lora_layer = _lora_layer_type()
    for name in info["modules"]:
        module = model.get_submodule(name)
        if not isinstance(module, lora_layer):
            raise ConfigError(f"merge_lora: module {name!r} is no longer a LoRA layer")
        with torch.no_grad():
            module.merge()
        parent_name, _, attr = name.rpartition(".")
        parent = model.get_submodule(parent_name) if parent_name else model
        setattr(parent, attr, module.get_base_layer())
    restored = dict(info["requires_grad_before"])
    for name in info["modules"]:
        for key in list(restored):
            if key.startswith(name + "."):
                restored[key] = True
    for name in info["trainable_params"]:
        restored[name] = True
    for name, param in model.named_parameters():
        param.requires_grad_(restored.get(name, True))
    model._bigmodel_lora = None
    return model


def lora_state_dict(model: nn.Module) -> dict[str, torch.Tensor]:
    """The adapter tensors (``...lora_A.weight`` / ``...lora_B.weight``) and the extra trainable
    parameters, detached CPU copies keyed by their names in the model."""
    info = _lora_info(model, "lora_state_dict")
    keep = set(info["trainable_params"])
    return {name: tensor.detach().cpu().contiguous() for name, tensor in model.state_dict().items()
            if ".lora_" in name or name in keep}


def save_lora(model: nn.Module, directory: str | os.PathLike,
              metadata: dict[str, Any] | None = None) -> Path:
    """Write ``adapter.safetensors`` (adapters + extra trainable tensors) and ``adapter.json``.

    Returns:
        The path of ``adapter.json``.
    """
    info = _lora_info(model, "save_lora")
    document = {"target": info["target"], "rank": info["rank"], "alpha": info["alpha"],
                "dropout": info["dropout"], "trainable": info["trainable"],
                "metadata": metadata or {}}
    return write_model_files(directory, ADAPTER_FILE, document, lora_state_dict(model))


def _check_declared_rank(spec: dict, header: Any, path: Path) -> None:
    """Refuse an ``adapter.json`` whose keys are missing or whose rank differs from the adapter
    tensors' shapes, before :func:`add_lora` allocates anything (``rank=10000000`` costs nothing)."""
    missing = [key for key in ("target", "rank", "alpha", "dropout") if key not in spec]
    if missing:
        raise CheckpointError(f"{path} lacks {', '.join(repr(k) for k in missing)}")
    for key in ("target", "trainable"):
        names = spec.get(key, ())
        if not isinstance(names, str) and not (isinstance(names, list)
                                              and all(isinstance(n, str) for n in names)):
            raise CheckpointError(f"{path}: '{key}' must be a module name or a list of them; "
                                  f"received {names!r}")
    rank = spec["rank"]
    if type(rank) is not int or rank < 1:
        raise CheckpointError(f"{path}: 'rank' must be an int >= 1; received {rank!r}")
    ranks = {name: info.shape[0] if ".lora_A." in name else info.shape[1]
             for name, info in header.tensors.items()
             if (".lora_A." in name and info.shape) or (".lora_B." in name and len(info.shape) > 1)}
    if not ranks:
        raise CheckpointError(f"{header.path} holds no LoRA adapter tensors (lora_A / lora_B)")
    wrong = [f"{name} {header.tensors[name].shape}" for name, r in ranks.items() if r != rank]
    if wrong:
        raise CheckpointError(f"{path} declares rank {rank}, but {header.path} holds "
                              f"{', '.join(wrong[:3])}")


def load_lora(model: nn.Module, directory: str | os.PathLike) -> nn.Module:
    """Add the adapters saved by :func:`save_lora` to ``model`` (the same base model) and load them.

    Raises:
        CheckpointError: files missing, not bigmodel LoRA files, modified since saving, or tensors
            that do not fit the model (names them).
    """
    directory = Path(directory)
    spec, _ = read_model_document(directory, ADAPTER_FILE)
    path = directory / ADAPTER_JSON
    weights, header = weights_file(directory, spec, ADAPTER_FILE)  # confined, checksummed, unread
    _check_declared_rank(spec, header, path)
    try:
        add_lora(model, spec["target"], rank=spec["rank"], alpha=spec["alpha"],
                 dropout=spec["dropout"], trainable=spec.get("trainable", ()))
    except (ConfigError, InputTypeError) as exc:
        raise CheckpointError(f"{path} does not describe adapters for this model: {exc}") from None
    state = read_safetensors(weights)[0]
    own = model.state_dict()
    unknown = sorted(set(state) - set(own))
    wrong = [f"{k}: file {tuple(v.shape)} vs model {tuple(own[k].shape)}"
             for k, v in state.items() if k in own and tuple(v.shape) != tuple(own[k].shape)]
    expected = set(lora_state_dict(model))
    missing = sorted(expected - set(state))
    if unknown or wrong or missing:
        raise CheckpointError(f"{weights} does not fit this model: "
                              + "; ".join(part for part in (
                                  f"unknown {unknown[:3]}" if unknown else "",
                                  f"missing {missing[:3]}" if missing else "",
                                  f"shape mismatch {wrong[:3]}" if wrong else "") if part))
    model.load_state_dict(state, strict=False)
    return model
