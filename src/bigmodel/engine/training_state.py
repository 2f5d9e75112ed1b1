"""What a ``Trainer`` puts into a checkpoint, and how it takes it back.

``capture(trainer)`` gathers everything an exact resume needs -- weights, optimizer and scheduler
state, every RNG (global torch/CUDA/NumPy/Python and the trainer's shuffling generator), epoch
and step counters, history, callback states, grad-scaler state -- as safetensors groups and JSON
documents for :func:`bigmodel.engine.checkpoint.write_checkpoint`. ``restore`` is its inverse, after
:func:`bigmodel.engine.checkpoint.read_checkpoint` has verified every file.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from bigmodel.engine import checkpoint as ckpt
from bigmodel.engine import checkpoint_state
from bigmodel.errors import CheckpointError

TensorGroups = dict[str, dict[str, torch.Tensor]]


def capture(trainer: Any) -> tuple[TensorGroups, dict[str, Any]]:
    """The trainer's full training state as ``(tensor groups, JSON documents)``."""
    optimizer_doc, optimizer_tensors = checkpoint_state.encode_state(trainer.optimizer.state_dict(), "optimizer")
    rng_tensors, rng_doc = checkpoint_state.capture_rng_state()
    if trainer._generator is not None:
        rng_tensors["shuffle"] = trainer._generator.get_state()
    states = [{"class": type(cb).__name__, "state": cb.get_state()}
              for cb in trainer._callbacks if hasattr(cb, "get_state")]
    callbacks_doc, callbacks_tensors = checkpoint_state.encode_state(states, "callbacks")
    scaler = trainer._scaler
    trainer_doc = {
        "epoch": trainer.epoch, "global_step": trainer.global_step,
        "history": trainer.history.history, "history_epochs": trainer.history.epoch,
        "callbacks": callbacks_doc, "best_value": trainer._best_value,
        "precision": trainer.precision, "grad_scaler": scaler.state_dict() if scaler is not None else None,
    }
    tensors = {"model": trainer.model.state_dict(), "optimizer": optimizer_tensors, "rng": rng_tensors,
               "callbacks": callbacks_tensors}
    position = getattr(trainer, "_position", None)  # mid-epoch / mid-pass (engine.step_checkpoints)
    if position is not None:
        trainer_doc["position"], tensors["position"] = checkpoint_state.encode_state(position, "position")
    documents = {"optimizer": optimizer_doc, "rng": rng_doc, "trainer": trainer_doc}
    if trainer.scheduler is not None:
        documents["scheduler"], tensors["scheduler"] = checkpoint_state.encode_state(
            trainer.scheduler.state_dict(), "scheduler")
    return {name: group for name, group in tensors.items() if group}, documents


def resolve_checkpoint_dir(path: Path) -> Path:
    """``path`` itself when it is a checkpoint, else the newest one in ``path/checkpoints`` or ``path``.

    Raises:
        CheckpointError: no checkpoint there.
    """
    if (path / ckpt.MANIFEST).exists():
        return path
    for root in (path / "checkpoints", path):
        latest = ckpt.latest_checkpoint(root)
        if latest is not None:
            return latest
    raise CheckpointError(f"No checkpoint found at {path} (expected a directory with {ckpt.MANIFEST}, "
                          "or a run directory holding checkpoints/epoch-NNNN)")


def restore(trainer: Any, directory: str | Path | ckpt.LoadedCheckpoint) -> Path:
    """Load a verified checkpoint (a path, or one already read) into ``trainer``.

    Parts that only exist once ``fit`` starts (a scheduler built from a spec, the history and the
    callbacks) are kept in ``trainer._restored`` and applied there.

    Returns:
        The checkpoint directory loaded.

    Raises:
        CheckpointError: nothing found, a damaged or unsafe file, or state that does not fit this
            model/optimizer (names the file).
    """
    if isinstance(directory, ckpt.LoadedCheckpoint):
        path, loaded = directory.path, directory
    else:
        path = resolve_checkpoint_dir(Path(directory))
        loaded = ckpt.read_checkpoint(path)
    tensors, documents = loaded.tensors, loaded.documents
    for part, file in (("model", "model.safetensors"), ("rng", "rng.safetensors"),
                       ("trainer", "trainer.json"), ("optimizer", "optimizer.json")):
        if part not in (tensors if file.endswith(".safetensors") else documents):
            raise CheckpointError(f"Checkpoint {path} has no {file}")
    try:
        trainer.model.load_state_dict(tensors["model"])
    except (RuntimeError, KeyError) as err:
        raise CheckpointError(f"{path / 'model.safetensors'} does not fit this model: {err}") from None
    try:
        trainer.optimizer.load_state_dict(checkpoint_state.decode_state(documents["optimizer"], tensors.get("optimizer", {})))
    except (ValueError, KeyError, RuntimeError) as err:
        raise CheckpointError(f"{path / 'optimizer.json'} does not fit this optimizer: {err}") from None
    restore_counters(trainer, documents, tensors, path)
    return path


def restore_counters(trainer: Any, documents: dict, tensors: dict, path: Any) -> None:
    """Restore everything but the weights and the optimizer: scheduler, RNGs (global and shuffling),
    epoch/step counters, best value, grad scaler, and (for ``fit``) history and callback states.
    Shared by single-process and sharded (:mod:`bigmodel.engine.dist_checkpoint`) checkpoints.

    Raises:
        CheckpointError: the documents do not hold a valid training state (names ``path``).
    """
    try:
        _restore_counters(trainer, documents, tensors)
    except (CheckpointError, KeyError, TypeError, ValueError, IndexError, AttributeError,
            RuntimeError) as err:
        # a crafted trainer.json / rng.json / scheduler.json (re-hashed into the manifest)
        raise CheckpointError(f"Checkpoint {path} does not hold a valid training state "
                              f"(trainer.json, rng.json, scheduler.json): {type(err).__name__}: "
                              f"{err}") from None


def _restore_counters(trainer: Any, documents: dict, tensors: dict) -> None:
    if "scheduler" in documents:
        state = checkpoint_state.decode_state(documents["scheduler"], tensors.get("scheduler", {}))
        if trainer.scheduler is not None:
            trainer.scheduler.load_state_dict(state)
        else:
            trainer._restored["scheduler"] = state
    rng = dict(tensors.get("rng", {}))
    if "shuffle" in rng:
        trainer._shuffle_generator().set_state(rng.pop("shuffle"))
    checkpoint_state.restore_rng_state(rng, documents["rng"])
    state = documents["trainer"]
    trainer.epoch, trainer.global_step = int(state["epoch"]), int(state["global_step"])
    trainer._best_value = state.get("best_value")
    if trainer._scaler is not None and state.get("grad_scaler"):
        trainer._scaler.load_state_dict(state["grad_scaler"])
    trainer._restored["history"] = (state.get("history", {}), state.get("history_epochs", []))
    trainer._restored["callbacks"] = checkpoint_state.decode_state(state.get("callbacks", []), tensors.get("callbacks", {}))
    trainer._restored.pop("position", None)
    if state.get("position") is not None:
        trainer._restored["position"] = checkpoint_state.decode_state(state["position"], tensors.get("position", {}))


def apply_restored(trainer: Any) -> None:
    """Put a restored history and callback states into the ``fit`` that just began."""
    restored = trainer._restored
    if "history" in restored:
        history, epochs = restored.pop("history")
        trainer.history.history = {key: list(values) for key, values in history.items()}
        trainer.history.epoch = list(epochs)
    stateful = [cb for cb in trainer._callbacks if hasattr(cb, "set_state")]
    for cb, saved in zip(stateful, restored.pop("callbacks", None) or []):
        if saved.get("class") == type(cb).__name__:  # same callbacks in the same order
            cb.set_state(saved.get("state") or {})


__all__ = ["apply_restored", "capture", "resolve_checkpoint_dir", "restore", "restore_counters"]
