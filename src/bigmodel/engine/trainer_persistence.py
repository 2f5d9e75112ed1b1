"""The ``Trainer``'s weights and checkpoints: weight snapshots for callbacks, safetensors weight files,
full training checkpoints (single-process directories or sharded ones under torchrun) and the
per-epoch checkpoint policy (keep the last N, copy the best by the monitored value), checkpoints
within epochs and the stop a signal asks for (``engine.step_checkpoints``).

A mixin of :class:`bigmodel.engine.trainer.Trainer`; it uses the trainer's ``model``, ``_dist``,
``_checkpoints``, ``checkpoint_monitor``/``checkpoint_mode``, ``_best_value``, ``_policy``,
``_tracked`` and ``_check_finite``.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import torch

from bigmodel.engine import checkpoint as ckpt
from bigmodel.engine import dist_checkpoint, distributed, run_lock, step_checkpoints, training_state
from bigmodel.engine.callbacks import infer_direction
from bigmodel.errors import CheckpointError, Preempted, TrainingError
from bigmodel.utils.io import atomic_path


def holding_run_dir(method: Callable) -> Callable:
    """Wrap a ``Trainer`` method that writes into ``run_dir`` (``fit``): it runs holding the run
    directory's lock (:mod:`bigmodel.engine.run_lock`; rank 0 only under torchrun), after the
    temporary files a killed write left in the checkpoint folders are removed.

    Raises:
        ConfigError: another process holds the run directory (names its pid and host).
    """
    @functools.wraps(method)
    def wrapper(self, *args: Any, **kwargs: Any) -> Any:
        main = self._dist is None or self._dist.is_main
        with run_lock.hold(self.run_dir, enabled=self._checkpoints is not None and main):
            if self._checkpoints is not None and main:
                self._checkpoints.remove_temporary()
            return method(self, *args, **kwargs)

    return wrapper


class PersistenceMixin:
    """Weights and checkpoints of a :class:`~bigmodel.engine.trainer.Trainer`."""

    # --- the protocol callbacks use (shared with the Keras Model) -----------------------------

    def get_weights(self) -> dict[str, torch.Tensor]:
        """A detached copy of the model's ``state_dict`` (opaque snapshot for ``set_weights``)."""
        return {key: value.detach().clone() for key, value in self.model.state_dict().items()}

    def set_weights(self, weights: Mapping[str, torch.Tensor]) -> None:
        """Load a snapshot from :meth:`get_weights` (strict: same keys and shapes)."""
        self.model.load_state_dict(weights)

    def save(self, path: str | Path, overwrite: bool = True) -> None:
        """Write the model weights to ``path`` as safetensors, atomically.

        Raises:
            CheckpointError: ``path`` exists and ``overwrite`` is False.
        """
        if not overwrite and Path(path).exists():
            raise CheckpointError(f"{path} exists; pass overwrite=True to replace it")
        if self._dist is None:
            ckpt.save_weights(self.model, path)
            return
        state = dist_checkpoint.full_state_dict(self.model)  # collective; rank 0 writes
        if self._dist.is_main:
            from safetensors.torch import save_file

            with atomic_path(path) as temporary:
                save_file(ckpt.unshare_tensors(state), str(temporary))
        self._dist.barrier()

    save_weights = save

    def load_weights(self, path: str | Path) -> None:
        """Load weights written by :meth:`save` (safetensors only; never unpickles).

        Raises:
            CheckpointError: missing, pickle-like or unreadable file, or keys/shapes that differ.
        """
        ckpt.load_weights(self.model, path)

    # --- checkpoints ------------------------------------------------------------------------------

    def save_checkpoint(self, directory: str | Path) -> Path:
        """Write a full training checkpoint (weights, optimizer, scheduler, RNG, counters) atomically."""
        return ckpt.write_checkpoint(directory, *training_state.capture(self))

    def load_checkpoint(self, directory: str | Path | ckpt.LoadedCheckpoint) -> Path:
        """Restore a checkpoint: ``directory`` is a checkpoint, or a run dir / checkpoints dir (newest).

        Returns:
            The checkpoint directory that was loaded.

        Raises:
            CheckpointError: nothing found, a file missing/truncated/altered/pickle-like, or state
                that does not fit this model/optimizer (names the file).
        """
        if self._dist is not None:
            return dist_checkpoint.load(self, directory)
        self._last_checkpoint = training_state.restore(self, directory)
        return self._last_checkpoint

    def _latest_checkpoint(self) -> Path | None:
        if self._dist is not None:
            return dist_checkpoint.latest(self._checkpoints.root / "sharded")
        return self._checkpoints.latest()

    def _resume_checkpoint(self) -> Path | None:
        """Load the newest valid checkpoint of ``run_dir`` (a damaged newest one is passed over
        with a warning); ``None`` when there is none yet."""
        if self._dist is not None:
            latest = self._latest_checkpoint()
            return None if latest is None else self.load_checkpoint(latest)
        loaded = ckpt.read_latest_valid(self._checkpoints.root)
        return None if loaded is None else self.load_checkpoint(loaded)

    def _save_step_checkpoint(self, step: int, position: dict) -> Path:
        """Write ``epoch-NNNN-step-SSSSSSSS`` (``step`` batches into the epoch in progress), with
        ``position`` (:func:`bigmodel.engine.step_checkpoints.epoch_position`) in it."""
        self._check_weights_finite()
        if self._dist is not None:  # each process's running loss, metrics and RNG go in too
            own = {"loss": position.pop("loss"), "metrics": position.pop("metrics")}
            self._position = position
            try:
                self._last_checkpoint = dist_checkpoint.save(
                    self, self._checkpoints.root / "sharded", self._checkpoints.keep_last, step, own)
            finally:
                self._position = None
            return self._last_checkpoint
        self._position = position
        try:
            tensors, documents = training_state.capture(self)
        finally:
            self._position = None
        self._last_checkpoint = self._checkpoints.save(self.epoch, tensors, documents, step=step)
        return self._last_checkpoint

    def _step_boundary(self, epoch: int, step: int, tracker: Any) -> None:
        """Write a mid-epoch checkpoint (``step`` batches done); stop if a signal asked for it."""
        self._check_finite(tracker, epoch)
        self._save_step_checkpoint(step, step_checkpoints.epoch_position(
            self._tracked, step, tracker, self.metrics))
        self._policy.saved()
        if self._policy.signal is not None:
            self._preempted(epoch, step)

    def _preempted(self, epochs_done: int, step: int) -> None:
        """Raise :class:`Preempted` after the checkpoint a signal asked for was written."""
        import signal

        signum = self._policy.signal
        where = f"epoch {epochs_done + 1}, batch {step}" if step else f"the end of epoch {epochs_done}"
        raise Preempted(
            f"{signal.Signals(signum).name} received: training stopped at {where}; checkpoint "
            f"{self._last_checkpoint}. Resume with fit(..., resume=True) on a Trainer with "
            f"run_dir={str(self.run_dir)!r}", signum, self._last_checkpoint)

    def _save_epoch_checkpoint(self, logs: Mapping[str, float]) -> None:
        self._check_weights_finite()
        if self._dist is not None:  # sharded, every process writes its part; no "best" copy
            self._last_checkpoint = dist_checkpoint.save(
                self, self._checkpoints.root / "sharded", self._checkpoints.keep_last)
            return
        tensors, documents = training_state.capture(self)
        improved = False
        value = logs.get(self.checkpoint_monitor) if self.checkpoint_monitor else None
        if value is not None:
            direction = {"min": "down", "max": "up"}.get(self.checkpoint_mode) \
                or infer_direction(self.checkpoint_monitor, self) or "down"
            best = self._best_value
            improved = best is None or (value > best if direction == "up" else value < best)
            if improved:
                self._best_value = documents["trainer"]["best_value"] = float(value)
        path = self._checkpoints.save(self.epoch, tensors, documents)
        if improved:
            self._checkpoints.save_best(path)
        self._last_checkpoint = path

    def _check_weights_finite(self) -> None:
        """Refuse to checkpoint non-finite weights or optimizer state, so a NaN never replaces the
        last good checkpoint (the epoch's mean loss can be finite while its last step ruined the
        weights). Under torchrun every process checks its shard and all agree.

        Raises:
            TrainingError: naming the first bad tensor and the last good checkpoint.
        """
        bad = ckpt.first_nonfinite({"model": self.model.state_dict(),
                                    "optimizer": self.optimizer.state_dict().get("state", {})})
        if self._dist is not None:
            votes = distributed.all_reduce_weighted({"bad": float(bad is not None)}, 1.0, self.device)
            if votes["bad"] > 0 and bad is None:
                bad = "a tensor of another process"
        if bad is None:
            return
        last = self._last_checkpoint or self._latest_checkpoint()
        raise TrainingError(
            f"The weights became NaN or Inf during epoch {self.epoch} ({bad} is not finite), "
            f"although the epoch's mean loss was finite; the checkpoint was not written. Training "
            f"stopped; last good checkpoint: {last or 'none written yet'}")


__all__ = ["PersistenceMixin"]
