"""Sharded training checkpoints with ``torch.distributed.checkpoint`` (DCP): each process writes its
own shard; a run saved by N processes loads on M (DCP reshards by each tensor's global offsets).

Layout (``run_dir/checkpoints/sharded/``)::

    epoch-0003/
        tensors/shard-0000R-model-00001-of-00001.safetensors
                         model weights and optimizer tensors of rank R's shard (DCP's safetensors
                         storage: global offsets in each file's header; no pickle anywhere)
        state/           bigmodel checkpoint (engine.checkpoint): RNG, scheduler, counters, history,
                         callback states, optimizer hyper-parameters -- written by rank 0
        COMMIT.json      written last: epoch, step, world size, strategy, the model signature
                         (every key's global shape and dtype) and every tensors/ file with its size

The directory is assembled as ``.epoch-0003.partial`` and renamed once COMMIT.json is in it, so a
checkpoint is complete or invisible; a worker killed mid-save leaves only a hidden partial
directory that the next save removes. Loading checks the model signature (a checkpoint of another
model) and every shard file (missing or truncated) before reading any tensor.
"""

from __future__ import annotations

import os
import re
import shutil
import time
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist
from torch import nn

from bigmodel.engine import checkpoint as ckpt
from bigmodel.engine import checkpoint_state, training_state
from bigmodel.errors import CheckpointError, ConfigError
from bigmodel.utils.io import atomic_write_json

FORMAT = "bigmodel-sharded-checkpoint"
VERSION = 1
COMMIT = "COMMIT.json"
# epoch-0003 after 3 epochs; epoch-0003-step-00000012 12 batches into the 4th (step checkpoints).
_EPOCH_DIR = re.compile(r"^epoch-(\d+)(?:-step-(\d+))?$")


def _is_main() -> bool:
    return not dist.is_initialized() or dist.get_rank() == 0


def _barrier() -> None:
    if dist.is_initialized() and dist.get_world_size() > 1:
        dist.barrier()


def _require_group(action: str) -> None:
    if not dist.is_initialized():
        raise ConfigError(f"Sharded checkpoints need a process group to {action}; use strategy "
                          "'ddp', 'fsdp' or 'hybrid' (a single process gets a one-process group)")


def _options():
    from torch.distributed.checkpoint.state_dict import StateDictOptions

    return StateDictOptions(flatten_optimizer_state_dict=True)


def _state_dicts(model: nn.Module, optimizer: torch.optim.Optimizer) -> tuple[dict, dict, dict]:
    """``(model tensors, optimizer tensors, optimizer plain values)``, keyed by parameter name."""
    from torch.distributed.checkpoint.state_dict import get_state_dict

    model_state, optim_state = get_state_dict(model, optimizer, options=_options())
    tensors = {k: v for k, v in optim_state.items() if isinstance(v, torch.Tensor)}
    plain = {k: v for k, v in optim_state.items() if not isinstance(v, torch.Tensor)}
    return model_state, tensors, plain


def _storage_key(tensor: torch.Tensor) -> tuple:
    local = tensor.to_local() if hasattr(tensor, "to_local") else tensor
    return (local.untyped_storage().data_ptr(), local.storage_offset(), tuple(local.shape),
            local.dtype)


def split_aliases(state: dict[str, Any]) -> tuple[dict[str, Any], dict[str, str]]:
    """Drop keys whose tensor is another key's tensor (tied weights, e.g. an LM head sharing the
    embedding): ``(state without them, {dropped key: key kept})``. Safetensors stores each once."""
    kept: dict[str, Any] = {}
    aliases: dict[str, str] = {}
    owners: dict[tuple, str] = {}
    for key, value in state.items():
        if isinstance(value, torch.Tensor) and value.numel() > 0:
            storage = _storage_key(value)
            if storage in owners:
                aliases[key] = owners[storage]
                continue
            owners[storage] = key
        kept[key] = value
    return kept, aliases


def model_signature(model_state: dict[str, torch.Tensor]) -> dict[str, list]:
    """``{key: [global shape, dtype]}`` (a DTensor's shape is its global shape)."""
    return {key: [list(value.shape), str(value.dtype).removeprefix("torch.")]
            for key, value in model_state.items() if isinstance(value, torch.Tensor)}


def _rest_of_state(trainer: Any, plain_optimizer: dict, ranks: list | None = None) -> tuple[dict, dict]:
    """Tensor groups and JSON documents for everything but weights and optimizer tensors
    (``ranks``: each process's own RNG, running loss and metrics, for a mid-epoch checkpoint)."""
    rng_tensors, rng_doc = checkpoint_state.capture_rng_state()
    if trainer._generator is not None:
        rng_tensors["shuffle"] = trainer._generator.get_state()
    states = [{"class": type(cb).__name__, "state": cb.get_state()}
              for cb in trainer._callbacks if hasattr(cb, "get_state")]
    callbacks_doc, callbacks_tensors = checkpoint_state.encode_state(states, "callbacks")
    optimizer_doc, _ = checkpoint_state.encode_state(plain_optimizer, "optimizer")
    scaler = trainer._scaler
    trainer_doc = {
        "epoch": trainer.epoch, "global_step": trainer.global_step,
        "history": trainer.history.history, "history_epochs": trainer.history.epoch,
        "callbacks": callbacks_doc, "best_value": trainer._best_value, "precision": trainer.precision,
        "grad_scaler": scaler.state_dict() if scaler is not None else None,
    }
    tensors = {"rng": rng_tensors, "callbacks": callbacks_tensors}
    documents = {"rng": rng_doc, "trainer": trainer_doc, "optimizer_values": optimizer_doc}
    position = getattr(trainer, "_position", None)  # mid-epoch (engine.step_checkpoints)
    if position is not None:
        trainer_doc["position"], tensors["position"] = checkpoint_state.encode_state(position, "position")
    if ranks is not None:
        documents["ranks"], tensors["ranks"] = checkpoint_state.encode_state(ranks, "ranks")
    if trainer.scheduler is not None:
        documents["scheduler"], tensors["scheduler"] = checkpoint_state.encode_state(
            trainer.scheduler.state_dict(), "scheduler")
    return {name: group for name, group in tensors.items() if group}, documents


def save(trainer: Any, root: str | os.PathLike, keep_last: int = 2, step: int | None = None,
         own_state: dict | None = None) -> Path:
    """Write ``root/epoch-NNNN`` (NNNN = ``trainer.epoch``) from every process; collective.

    With ``step`` (batches done in the epoch in progress) it is ``epoch-NNNN-step-SSSSSSSS``, and
    ``own_state`` (this process's running loss and metrics) is gathered with every process's RNG
    state, so each process resumes its own streams (:func:`load`).

    Returns:
        The committed checkpoint directory.
    """
    from torch.distributed.checkpoint import save as dcp_save
    from torch.distributed.checkpoint.hf_storage import HuggingFaceStorageWriter

    _require_group("save")
    root = Path(root)
    final = root / (f"epoch-{trainer.epoch:04d}" if not step else f"epoch-{trainer.epoch:04d}-step-{step:08d}")
    ranks = None
    if own_state is not None:
        rng_tensors, rng_doc = checkpoint_state.capture_rng_state()
        mine = {"rng": {**rng_doc, "torch_cpu": rng_tensors["torch_cpu"]}, **own_state}
        ranks = [None] * dist.get_world_size()
        dist.all_gather_object(ranks, mine)  # in memory, between the processes of this job
    partial = root / f".{final.name}.partial"
    if _is_main():
        shutil.rmtree(partial, ignore_errors=True)
        (partial / "tensors").mkdir(parents=True)
    _barrier()
    model_state, optim_tensors, optim_plain = _state_dicts(trainer.model, trainer.optimizer)
    unique, aliases = split_aliases(model_state)
    dcp_save({"model": unique, "optim": optim_tensors},
             storage_writer=HuggingFaceStorageWriter(str(partial / "tensors"), save_distributed=True))
    if _is_main():
        tensors, documents = _rest_of_state(trainer, optim_plain, ranks)
        ckpt.write_checkpoint(partial / "state", tensors, documents)
        files = {path.name: path.stat().st_size for path in sorted((partial / "tensors").iterdir())}
        atomic_write_json(partial / COMMIT, {
            "format": FORMAT, "version": VERSION, "created": time.time(), "epoch": trainer.epoch,
            "global_step": trainer.global_step, "world_size": dist.get_world_size(),
            "strategy": getattr(trainer, "strategy", None), "model": model_signature(model_state),
            "aliases": aliases, "files": files})
        old = None
        if final.exists():
            old = root / f".{final.name}.old-{os.getpid()}-{time.monotonic_ns()}"
            os.rename(final, old)
        os.rename(partial, final)
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)
        for _, path in find_checkpoints(root)[:-max(int(keep_last), 1)]:
            shutil.rmtree(path, ignore_errors=True)
    _barrier()
    return final


def read_commit(directory: str | os.PathLike) -> dict[str, Any]:
    """Parse ``COMMIT.json``.

    Raises:
        CheckpointError: missing (an uncommitted checkpoint), not JSON, or of another format.
    """
    path = Path(directory) / COMMIT
    commit = ckpt.read_json_record(
        path, f"{directory} is not a committed sharded checkpoint: {path} is missing",
        "Commit marker")
    if not isinstance(commit, dict) or commit.get("format") != FORMAT:
        raise CheckpointError(f"{path} is not a {FORMAT} commit marker")
    return commit


def find_checkpoints(root: str | os.PathLike) -> list[tuple[int, Path]]:
    """``(epoch, path)`` of the committed checkpoints under ``root``, oldest first."""
    root = Path(root)
    if not root.is_dir():
        return []
    found = []
    for path in root.iterdir():
        match = _EPOCH_DIR.match(path.name)
        if match and (path / COMMIT).is_file():
            found.append(((int(match.group(1)), int(match.group(2) or 0)), path))
    return [(epoch, path) for (epoch, _), path in sorted(found)]


def latest(root: str | os.PathLike) -> Path | None:
    """The newest committed checkpoint under ``root``, or ``None``."""
    found = find_checkpoints(root)
    return found[-1][1] if found else None


def is_sharded_checkpoint(path: str | os.PathLike) -> bool:
    path = Path(path)
    return (path / COMMIT).is_file() or bool(find_checkpoints(path))


def verify(directory: str | os.PathLike, model_state: dict[str, torch.Tensor] | None = None) -> dict:
    """Check a checkpoint against its commit marker (and, given ``model_state``, against the model).

    Raises:
        CheckpointError: a shard file missing or truncated; the model signature differs (names up
            to five keys); the state part damaged.
    """
    directory = Path(directory)
    commit = read_commit(directory)
    tensors_dir = directory / "tensors"
    for name, size in commit.get("files", {}).items():
        path = tensors_dir / name
        if not path.is_file():
            raise CheckpointError(f"Sharded checkpoint {directory} is missing shard file {path} "
                                  f"(listed in {COMMIT}; saved by {commit.get('world_size')} processes)")
        if path.stat().st_size != size:
            raise CheckpointError(f"Shard file {path} is truncated or altered: {path.stat().st_size} "
                                  f"bytes, {COMMIT} says {size}")
    if not commit.get("files"):
        raise CheckpointError(f"{directory / COMMIT} lists no shard files")
    if model_state is not None:
        expected, found = model_signature(model_state), commit.get("model", {})
        if expected != found:
            missing = sorted(set(expected) - set(found))
            extra = sorted(set(found) - set(expected))
            changed = sorted(k for k in set(expected) & set(found) if expected[k] != found[k])
            parts = []
            if missing:
                parts.append(f"keys this model has but the checkpoint lacks: {missing[:5]}")
            if extra:
                parts.append(f"keys the checkpoint has but this model lacks: {extra[:5]}")
            if changed:
                key = changed[0]
                parts.append(f"different shapes/dtypes for {changed[:5]} (e.g. {key}: checkpoint "
                             f"{found[key]}, model {expected[key]})")
            raise CheckpointError(f"Checkpoint {directory} was saved from another model: "
                                  + "; ".join(parts))
    ckpt.verify_checkpoint(directory / "state")
    return commit


def load(trainer: Any, directory: str | os.PathLike) -> Path:
    """Load a sharded checkpoint (``directory`` itself, or the newest one under it) into ``trainer``
    on however many processes this run has; collective.

    Returns:
        The checkpoint directory loaded.

    Raises:
        CheckpointError: nothing committed there, a missing/truncated shard, another model's
            checkpoint, or state that does not fit the optimizer.
    """
    from torch.distributed.checkpoint import load as dcp_load
    from torch.distributed.checkpoint.hf_storage import HuggingFaceStorageReader
    from torch.distributed.checkpoint.state_dict import set_state_dict

    _require_group("load")
    directory = Path(directory)
    if not (directory / COMMIT).is_file():
        newest = latest(directory)
        if newest is None:
            raise CheckpointError(f"No committed sharded checkpoint at {directory} (expected a "
                                  f"directory holding {COMMIT} or epoch-NNNN/{COMMIT})")
        directory = newest
    model_state, optim_tensors, _ = _state_dicts(trainer.model, trainer.optimizer)
    commit = verify(directory, model_state)
    loaded = ckpt.read_checkpoint(directory / "state")
    documents, tensors = loaded.documents, loaded.tensors
    optim_plain = checkpoint_state.decode_state(documents["optimizer_values"], {})
    unique, _ = split_aliases(model_state)
    aliases = commit.get("aliases", {})
    state = {"model": {k: v for k, v in unique.items() if k not in aliases}, "optim": optim_tensors}
    try:
        dcp_load(state, storage_reader=HuggingFaceStorageReader(str(directory / "tensors")))
        loaded_model = dict(state["model"])
        for key, source in aliases.items():
            loaded_model[key] = loaded_model[source]
        for key, value in model_state.items():
            loaded_model.setdefault(key, value)  # tied in this model: shares the loaded storage
        set_state_dict(trainer.model, trainer.optimizer, model_state_dict=loaded_model,
                       optim_state_dict={**state["optim"], **optim_plain}, options=_options())
    except (RuntimeError, KeyError, ValueError) as err:
        raise CheckpointError(f"Sharded checkpoint {directory} does not fit this model/optimizer: "
                              f"{err}") from None
    training_state.restore_counters(trainer, documents, tensors, directory)
    if "ranks" in documents and "position" in trainer._restored:
        _restore_own_state(trainer, checkpoint_state.decode_state(documents["ranks"], tensors.get("ranks", {})))
    trainer._last_checkpoint = directory
    return directory


def _restore_own_state(trainer: Any, ranks: list[dict]) -> None:
    """Give this process its own RNG, running loss and metrics of a mid-epoch checkpoint. Saved by
    as many processes: each takes its own, exactly. By another number (2 -> 1): the running sums
    of all are added up (the epoch's logged means stay exact) and rank 0's RNG state is used."""
    position = trainer._restored["position"]
    world, rank = dist.get_world_size(), dist.get_rank()
    if len(ranks) == world:
        own = ranks[rank]
        rng = own["rng"]
        checkpoint_state.restore_rng_state({"torch_cpu": rng["torch_cpu"]}, rng)
    else:
        own = {"loss": _add_states([r["loss"] for r in ranks]),
               "metrics": [_add_states(list(states)) for states in zip(*[r["metrics"] for r in ranks])]}
    position["loss"], position["metrics"] = own["loss"], own["metrics"]


def _add_states(states: list) -> Any:
    """Element-wise sum of running states (counts, totals) saved by several processes."""
    first = states[0]
    if isinstance(first, dict):
        return {key: _add_states([state[key] for state in states]) for key in first}
    if isinstance(first, torch.Tensor) and all(isinstance(s, torch.Tensor) for s in states):
        return sum(states[1:], first.clone()) if first.dtype.is_floating_point or first.dtype in (
            torch.int32, torch.int64) else first
    if all(isinstance(s, (int, float)) and not isinstance(s, bool) for s in states):
        return sum(states)
    return first  # names, flags, None: the same on every process


def full_state_dict(model: nn.Module) -> dict[str, torch.Tensor]:
    """The unsharded CPU ``state_dict`` of a (possibly FSDP) model; collective when sharded."""
    from torch.distributed.checkpoint.state_dict import StateDictOptions, get_model_state_dict

    if not dist.is_initialized():
        return {k: v.detach().cpu().clone() for k, v in model.state_dict().items()}
    return get_model_state_dict(model, options=StateDictOptions(full_state_dict=True, cpu_offload=True,
                                                                broadcast_from_rank0=False))


__all__ = ["COMMIT", "find_checkpoints", "full_state_dict", "is_sharded_checkpoint", "latest", "load",
           "model_signature", "read_commit", "save", "verify"]
