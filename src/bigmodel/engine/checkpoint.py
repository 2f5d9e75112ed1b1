"""Training checkpoints: safetensors + JSON directories, written atomically, verified before loading.

A checkpoint is a directory::

    run_dir/checkpoints/epoch-0003/
        model.safetensors        weights (state_dict)
        optimizer.safetensors    optimizer tensors;  optimizer.json  the rest of its state_dict
        scheduler.json           LR scheduler state (when there is one)
        rng.safetensors          torch CPU/CUDA generator states (uint8);  rng.json  numpy, random
        trainer.json             epoch, global step, history, callback states, grad-scaler state
        manifest.json            sha256 and size of every file above (written last)

It is written into a hidden temporary directory beside its final name and renamed into place, so a
reader sees either no directory or a complete one. Loading checks every file against the manifest
before reading any of them: a missing, truncated or altered file raises :class:`CheckpointError`
naming it, and a file that starts like a pickle or a ``torch.save`` archive is refused unread
(nothing here ever unpickles). ``latest`` means the newest ``epoch-*`` directory whose manifest
parses.
"""

from __future__ import annotations

import errno
import json
import os
import re
import shutil
import tempfile
import time
import warnings
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from bigmodel.errors import CheckpointError, ConfigError
from bigmodel.utils.io import atomic_path, sha256_file
from bigmodel.utils.loading import (
    confined_path,
    loads_json,
    looks_like_pickle,
    read_json,
    read_safetensors_header,
)

FORMAT = "bigmodel-checkpoint"
VERSION = 1
MANIFEST = "manifest.json"
# epoch-0003: 3 epochs done; epoch-0003-step-00000012: 3 epochs and 12 batches of the 4th done.
_EPOCH_DIR = re.compile(r"^epoch-(\d+)(?:-step-(\d+))?$")
_SAFE_NAME = re.compile(r"^[A-Za-z0-9_.-]+$")


# --- writing and reading one checkpoint directory -----------------------------------------------

def first_nonfinite(state: Any, prefix: str = "") -> str | None:
    """The name (``group.key...``) of the first floating-point tensor in a nested state holding NaN
    or Inf, or ``None`` when all are finite. One device sync for the whole state."""
    names: list[str] = []
    flags: list[torch.Tensor] = []

    def visit(value: Any, path: str) -> None:
        if isinstance(value, torch.Tensor):
            local = value.to_local() if hasattr(value, "to_local") else value  # a DTensor's shard
            if local.is_floating_point() or local.is_complex():
                names.append(path)
                flags.append(torch.isfinite(local.detach()).all())
        elif isinstance(value, Mapping):
            for key, item in value.items():
                visit(item, f"{path}.{key}" if path else str(key))
        elif isinstance(value, (list, tuple)):
            for index, item in enumerate(value):
                visit(item, f"{path}.{index}" if path else str(index))

    visit(state, prefix)
    if not flags:
        return None
    finite = torch.stack([flag.to(flags[0].device) for flag in flags]).cpu()
    if bool(finite.all()):
        return None
    return names[int((~finite).nonzero()[0])]


def _state_bytes(tensors: Mapping[str, Mapping[str, torch.Tensor]], documents: Mapping[str, Any]) -> int:
    """About how many bytes a checkpoint of these tensors and documents takes on disk."""
    size = sum(t.numel() * t.element_size() + 256 for group in tensors.values() for t in group.values())
    return size + sum(len(json.dumps(document)) for document in documents.values()) + 4096


def _is_disk_full(err: BaseException) -> bool:
    if isinstance(err, OSError) and err.errno in (errno.ENOSPC, errno.EDQUOT):
        return True
    # safetensors reports the OS error only in its message ("... No space left on device (os error 28)")
    return isinstance(err, SafetensorError) and ("os error 28" in str(err) or "No space left" in str(err))


def disk_full_error(folder: Path, needed: int) -> CheckpointError:
    """The :class:`CheckpointError` for a write that found the disk full (names folder and sizes)."""
    try:
        free = f"{shutil.disk_usage(folder).free:,} bytes free"
    except OSError:
        free = "free space unknown"
    return CheckpointError(
        f"No space left on the disk holding {folder}: writing the checkpoint needs about {needed:,} "
        f"bytes ({free}). Nothing was replaced: the previous checkpoints are intact. Free some space "
        "(or point run_dir elsewhere) and resume")


def unshare_tensors(tensors: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Contiguous CPU copies safetensors accepts; tensors sharing memory (tied weights) are cloned."""
    seen: set[int] = set()
    out = {}
    for key, tensor in tensors.items():
        tensor = tensor.detach()
        if tensor.device.type != "cpu":
            tensor = tensor.cpu()
        storage = tensor.untyped_storage().data_ptr()
        if storage in seen and tensor.numel() > 0:
            tensor = tensor.clone()  # safetensors refuses tensors that share memory
        seen.add(storage)
        out[key] = tensor.contiguous()
    return out


def _fsync(path: Path) -> None:
    flags = os.O_RDONLY | getattr(os, "O_DIRECTORY", 0) if path.is_dir() else os.O_RDONLY
    try:
        fd = os.open(path, flags)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass  # some file systems cannot fsync directories
    finally:
        os.close(fd)


def write_checkpoint(directory: str | os.PathLike, tensors: Mapping[str, Mapping[str, torch.Tensor]],
                     documents: Mapping[str, Any]) -> Path:
    """Write a checkpoint directory atomically (temporary directory, then rename).

    Args:
        directory: final path; an existing checkpoint there is replaced.
        tensors: ``{group: {key: tensor}}`` -> ``group.safetensors``.
        documents: ``{name: JSON value}`` -> ``name.json``.

    Returns:
        The final directory path.
    """
    target = Path(directory)
    target.parent.mkdir(parents=True, exist_ok=True)
    temporary = Path(tempfile.mkdtemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent))
    old: Path | None = None
    try:
        for group, values in tensors.items():
            save_file(unshare_tensors(values), str(temporary / f"{group}.safetensors"))
        for name, document in documents.items():
            (temporary / f"{name}.json").write_text(json.dumps(document, indent=1, sort_keys=True))
        files = {}
        for path in sorted(temporary.iterdir()):
            _fsync(path)
            files[path.name] = {"sha256": sha256_file(path), "bytes": path.stat().st_size}
        manifest = {"format": FORMAT, "version": VERSION, "created": time.time(), "files": files}
        (temporary / MANIFEST).write_text(json.dumps(manifest, indent=1, sort_keys=True))
        _fsync(temporary / MANIFEST)
        _fsync(temporary)
        if target.exists():
            old = target.parent / f".{target.name}.old-{os.getpid()}-{time.monotonic_ns()}"
            os.rename(target, old)
        os.rename(temporary, target)
        _fsync(target.parent)
    except BaseException as err:
        shutil.rmtree(temporary, ignore_errors=True)
        if old is not None and not target.exists():
            os.rename(old, target)
        if _is_disk_full(err):
            raise disk_full_error(target.parent, _state_bytes(tensors, documents)) from None
        raise
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)
    return target


def read_json_record(path: Path, missing: str, what: str) -> Any:
    """The parsed JSON of a checkpoint's record file ``path`` (``what`` names it in errors).

    Raises:
        CheckpointError: ``missing`` when the file is absent; a pickle payload (refused unread);
        not valid JSON.
    """
    if not path.is_file():
        raise CheckpointError(missing)
    return read_json(path, what)  # bounded size and depth; a pickle payload is refused unread


def read_manifest(directory: str | os.PathLike) -> dict[str, Any]:
    """Parse ``manifest.json`` (no file checks).

    Raises:
        CheckpointError: missing, unparsable, unsafe or of another format.
    """
    path = Path(directory) / MANIFEST
    manifest = read_json_record(
        path, f"Checkpoint {directory} has no {MANIFEST}: {path} is missing", "Checkpoint manifest")
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT \
            or not isinstance(manifest.get("files"), dict):
        raise CheckpointError(f"{path} is not a {FORMAT} manifest")
    return manifest


def verify_checkpoint(directory: str | os.PathLike) -> dict[str, Any]:
    """Check every file of a checkpoint against its manifest, reading none of them as data.

    Returns:
        The manifest.

    Raises:
        CheckpointError: naming the file that is missing, pickle-like, truncated or altered.
    """
    directory = Path(directory)
    manifest = read_manifest(directory)
    for name, entry in manifest["files"].items():
        if not _SAFE_NAME.match(name) or name == MANIFEST or not isinstance(entry, dict):
            raise CheckpointError(f"Checkpoint manifest {directory / MANIFEST} lists an invalid file name {name!r}")
        path = confined_path(directory, name, "Checkpoint file")  # missing, or a symlink out: refused
        if not name.endswith(".safetensors") and looks_like_pickle(path):
            raise CheckpointError(
                f"Refusing to unpickle {path}: it looks like a pickle/torch.save file, and checkpoints "
                "hold only safetensors and JSON"
            )
        size = path.stat().st_size
        if size != entry.get("bytes"):
            raise CheckpointError(
                f"Checkpoint file {path} is truncated or altered: {size} bytes, manifest says {entry.get('bytes')}"
            )
        if sha256_file(path) != entry.get("sha256"):
            raise CheckpointError(f"Checkpoint file {path} was altered: its sha256 does not match the manifest")
        if name.endswith(".safetensors"):
            read_safetensors_header(path)  # refuses pickles and non-safetensors bytes, unread
    return manifest


@dataclass
class LoadedCheckpoint:
    """What :func:`read_checkpoint` returns: tensor groups and JSON documents by name."""

    path: Path
    tensors: dict[str, dict[str, torch.Tensor]] = field(default_factory=dict)
    documents: dict[str, Any] = field(default_factory=dict)


def read_checkpoint(directory: str | os.PathLike) -> LoadedCheckpoint:
    """Verify (:func:`verify_checkpoint`) then read a checkpoint onto the CPU.

    Raises:
        CheckpointError: verification failed, or a file does not parse (names the file).
    """
    directory = Path(directory)
    manifest = verify_checkpoint(directory)
    loaded = LoadedCheckpoint(path=directory)
    for name in manifest["files"]:
        path = directory / name
        stem, suffix = os.path.splitext(name)
        try:
            if suffix == ".safetensors":
                loaded.tensors[stem] = load_file(str(path), device="cpu")
            elif suffix == ".json":
                loaded.documents[stem] = loads_json(path.read_bytes(), f"Checkpoint file {path}")
        except (SafetensorError, ValueError, UnicodeDecodeError, OSError) as err:
            raise CheckpointError(f"Checkpoint file {path} cannot be read: {err}") from None
    return loaded


# --- plain weight files ---------------------------------------------------------------------

def save_weights(module: torch.nn.Module, path: str | os.PathLike) -> None:
    """Write ``module.state_dict()`` to ``path`` as safetensors, atomically (tied tensors allowed).

    Raises:
        CheckpointError: the disk is full (names the folder and the bytes needed; ``path`` untouched).
    """
    state = unshare_tensors(module.state_dict())
    try:
        with atomic_path(path) as temporary:
            save_file(state, str(temporary))
    except (OSError, SafetensorError) as err:
        if _is_disk_full(err):
            raise disk_full_error(Path(path).parent, _state_bytes({"model": state}, {})) from None
        raise


def load_weights(module: torch.nn.Module, path: str | os.PathLike) -> None:
    """Load safetensors weights into ``module`` (strict), never unpickling anything.

    Raises:
        CheckpointError: missing, pickle-like or unreadable file, or keys/shapes that differ.
    """
    if not Path(path).is_file():
        raise CheckpointError(f"Weights file {path} does not exist")
    read_safetensors_header(path)  # refuses pickles and anything else that is not safetensors
    try:
        module.load_state_dict(load_file(str(path), device="cpu"))
    except (SafetensorError, RuntimeError) as err:
        raise CheckpointError(f"Cannot load weights from {path}: {err}") from None


# --- a run's checkpoint directory ---------------------------------------------------------------

def _inside(root: Path, path: Path) -> bool:
    """False for a checkpoint directory that is a symlink out of ``root`` (never read)."""
    try:
        confined_path(root, path.name, "Checkpoint directory", kind="dir")
    except CheckpointError:
        return False
    return True


def _checkpoint_dirs(root: Path) -> list[tuple[tuple[int, int], Path]]:
    """``((epoch, step), path)`` of every ``epoch-NNNN[-step-SSSSSSSS]`` directory, oldest first."""
    if not root.is_dir():
        return []
    found = []
    for path in root.iterdir():
        match = _EPOCH_DIR.match(path.name)
        if match and path.is_dir() and _inside(root, path):
            found.append(((int(match.group(1)), int(match.group(2) or 0)), path))
    return sorted(found)


def find_checkpoints(root: str | os.PathLike) -> list[tuple[int, Path]]:
    """``(epochs done, path)`` of the epoch and step checkpoints under ``root`` with a parsable
    manifest, oldest first (a step checkpoint sorts after its epoch's start, before its end)."""
    found = []
    for (epoch, _), path in _checkpoint_dirs(Path(root)):
        try:
            read_manifest(path)
        except CheckpointError:
            continue
        found.append((epoch, path))
    return found


def read_latest_valid(root: str | os.PathLike) -> LoadedCheckpoint | None:
    """Read the newest checkpoint under ``root`` that passes verification; a damaged newer one
    (truncated, altered, no manifest) is passed over with a warning naming it and the one used.

    Returns:
        The loaded checkpoint, or ``None`` when ``root`` holds no checkpoint directory at all.

    Raises:
        CheckpointError: checkpoint directories exist but none is valid (names each and why).
    """
    damaged: list[tuple[Path, CheckpointError]] = []
    for _, path in reversed(_checkpoint_dirs(Path(root))):
        try:
            loaded = read_checkpoint(path)
        except CheckpointError as err:
            damaged.append((path, err))
            continue
        if damaged:
            names = "; ".join(f"{bad} ({err})" for bad, err in damaged)
            warnings.warn(f"Newest checkpoint is damaged, resuming from the previous valid one, "
                          f"{path}. Passed over: {names}", RuntimeWarning, stacklevel=2)
        return loaded
    if damaged:
        names = "; ".join(f"{bad} ({err})" for bad, err in damaged)
        raise CheckpointError(f"No valid checkpoint under {root}: {names}")
    return None


def latest_checkpoint(root: str | os.PathLike) -> Path | None:
    """Newest complete checkpoint under ``root`` (``run_dir/checkpoints``), or ``None``."""
    found = find_checkpoints(root)
    return found[-1][1] if found else None


class CheckpointManager:
    """Epoch checkpoints of one run: ``run_dir/checkpoints/epoch-NNNN``, the newest ``keep_last`` kept,
    plus ``best`` (a copy of the best epoch's checkpoint) when asked.

    Args:
        run_dir: the run directory.
        keep_last: how many epoch checkpoints to keep (>= 1).
    """

    def __init__(self, run_dir: str | os.PathLike, keep_last: int = 2) -> None:
        if int(keep_last) < 1:
            raise ConfigError(f"keep_last must be >= 1; received keep_last={keep_last}")
        self.root = Path(run_dir) / "checkpoints"
        self.keep_last = int(keep_last)

    def path_for(self, epoch: int, step: int | None = None) -> Path:
        """``epoch-NNNN`` after ``epoch`` epochs; ``epoch-NNNN-step-SSSSSSSS`` ``step`` batches later."""
        name = f"epoch-{epoch:04d}" if not step else f"epoch-{epoch:04d}-step-{step:08d}"
        return self.root / name

    @property
    def best_path(self) -> Path:
        return self.root / "best"

    def latest(self) -> Path | None:
        return latest_checkpoint(self.root)

    def save(self, epoch: int, tensors: Mapping[str, Mapping[str, torch.Tensor]],
             documents: Mapping[str, Any], step: int | None = None) -> Path:
        """Write ``epoch-NNNN`` (``epoch`` = completed epochs; with ``step``, the batches done in
        the next epoch: ``epoch-NNNN-step-SSSSSSSS``) and prune older ones."""
        path = write_checkpoint(self.path_for(epoch, step), tensors, documents)
        self.prune()
        return path

    def save_best(self, source: Path) -> Path:
        """Make ``best`` a copy of the checkpoint at ``source`` (hard links when possible), atomically."""
        temporary = Path(tempfile.mkdtemp(prefix=".best.", suffix=".tmp", dir=self.root))
        try:
            for path in source.iterdir():
                try:
                    os.link(path, temporary / path.name)
                except OSError:
                    shutil.copy2(path, temporary / path.name)
            old = self.root / f".best.old-{os.getpid()}-{time.monotonic_ns()}"
            if self.best_path.exists():
                os.rename(self.best_path, old)
            os.rename(temporary, self.best_path)
        except BaseException:
            shutil.rmtree(temporary, ignore_errors=True)
            raise
        shutil.rmtree(old, ignore_errors=True)
        return self.best_path

    def remove_temporary(self) -> None:
        """Delete what killed writes left: hidden ``.*.tmp`` / ``.*.partial`` / ``.*.old-*`` entries
        under ``checkpoints`` (and its ``sharded`` folder) and ``.*.tmp`` files in the run directory.
        Call it only while holding the run directory's lock (:mod:`bigmodel.engine.run_lock`): then
        no other writer can be using them."""
        patterns = (".*.tmp", ".*.partial", ".*.old-*")
        for folder in (self.root, self.root / "sharded"):
            if not folder.is_dir():
                continue
            for pattern in patterns:
                for path in folder.glob(pattern):
                    if path.is_dir() and not path.is_symlink():
                        shutil.rmtree(path, ignore_errors=True)
                    else:
                        path.unlink(missing_ok=True)
        for path in self.root.parent.glob(".*.tmp"):
            if path.is_file() or path.is_symlink():
                path.unlink(missing_ok=True)

    def prune(self) -> None:
        """Delete all but the newest ``keep_last`` epoch checkpoints and stale temporary directories."""
        for _, path in find_checkpoints(self.root)[:-self.keep_last]:
            shutil.rmtree(path, ignore_errors=True)
        for path in self.root.glob(".*.tmp"):
            if path.is_dir() and time.time() - path.stat().st_mtime > 3600:
                shutil.rmtree(path, ignore_errors=True)  # left by a crash; an hour is long past any write


__all__ = [
    "CheckpointManager", "disk_full_error", "find_checkpoints", "first_nonfinite",
    "latest_checkpoint", "load_weights", "LoadedCheckpoint", "read_checkpoint",
    "read_latest_valid", "read_manifest", "save_weights", "unshare_tensors", "verify_checkpoint",
    "write_checkpoint",
]
