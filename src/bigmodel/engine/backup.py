"""``BackupAndRestore``: Keras 3's fault-tolerance callback, on the ``Trainer``'s own checkpoints.

Keras 3 semantics: ``fit`` with ``BackupAndRestore(backup_dir)`` checkpoints into ``backup_dir``
(every epoch, or every ``save_freq`` batches); a ``fit`` started again after a crash restores the
weights, optimizer and training state from there and goes on; a ``fit`` that ends normally deletes
``backup_dir`` (``delete_checkpoint=True``); ``double_checkpoint=True`` keeps the previous checkpoint
too, used when the newest is damaged.

Unlike Keras, which restarts an interrupted epoch from its first batch, a resumed run continues
exactly where the last checkpoint was written, mid-epoch included (``engine.step_checkpoints``):
the resumed weights equal those of a run that was never interrupted. The files are the engine's
checkpoints (``backup_dir/checkpoints/epoch-*``), not Keras's.
"""

from __future__ import annotations

import functools
import inspect
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

from bigmodel.engine import checkpoint as ckpt
from bigmodel.engine.callbacks import Callback
from bigmodel.engine.step_checkpoints import CheckpointPolicy
from bigmodel.errors import ConfigError, NotSupportedError


class BackupAndRestore(Callback):
    """Back up the training state to ``backup_dir`` and resume from it after an interruption.

    Args:
        backup_dir: folder for the checkpoints (created; one training run per folder).
        save_freq: ``"epoch"`` (at each epoch end) or an int N (also every N batches).
        double_checkpoint: keep the previous checkpoint as well, as a fallback.
        delete_checkpoint: delete ``backup_dir`` when ``fit`` ends normally.

    Raises:
        ConfigError: an empty ``backup_dir`` or a ``save_freq`` that is neither ``"epoch"`` nor a
            positive int (Keras raises ``ValueError``; ConfigError is one).
    """

    def __init__(self, backup_dir: str | Path, save_freq: str | int = "epoch",
                 double_checkpoint: bool = False, delete_checkpoint: bool = True) -> None:
        super().__init__()
        if not backup_dir:
            raise ConfigError(f"Empty `backup_dir` argument passed. Received: backup_dir={backup_dir!r}")
        if save_freq != "epoch" and (isinstance(save_freq, bool) or not isinstance(save_freq, int)
                                     or save_freq < 1):
            raise ConfigError("Invalid value for argument `save_freq`: expected 'epoch' or a positive "
                              f"integer. Received: save_freq={save_freq!r}")
        self.backup_dir = str(backup_dir)
        self.save_freq = save_freq
        self.double_checkpoint = bool(double_checkpoint)
        self.delete_checkpoint = bool(delete_checkpoint)
        self._attached = False

    def on_train_begin(self, logs: dict[str, float] | None = None) -> None:
        if not self._attached:  # e.g. Keras's custom train_step loop, which has no checkpoints
            raise NotSupportedError(
                "BackupAndRestore needs fit to run through bigmodel's Trainer; this fit (a custom "
                "train_step / several outputs) does not support it")


def with_backup(fit: Callable) -> Callable:
    """Wrap ``Trainer.fit``: with a :class:`BackupAndRestore` among the callbacks, the call
    checkpoints into (and resumes from) its ``backup_dir`` instead of the trainer's ``run_dir``,
    and deletes it when training ends normally (``delete_checkpoint``)."""
    signature = inspect.signature(fit)

    @functools.wraps(fit)
    def wrapper(self, *args: Any, **kwargs: Any) -> Any:
        bound = signature.bind(self, *args, **kwargs)
        backups = [cb for cb in bound.arguments.get("callbacks") or () if isinstance(cb, BackupAndRestore)]
        if not backups:
            return fit(self, *args, **kwargs)
        if len(backups) > 1:
            raise ConfigError(f"fit got {len(backups)} BackupAndRestore callbacks; pass one")
        backup = backups[0]
        saved = self.run_dir, self._checkpoints, self._policy, self._last_checkpoint
        self.run_dir = Path(backup.backup_dir)
        self._checkpoints = ckpt.CheckpointManager(self.run_dir, 2 if backup.double_checkpoint else 1)
        self._policy = CheckpointPolicy(None if backup.save_freq == "epoch" else backup.save_freq)
        bound.arguments["resume"] = True
        backup._attached = True
        try:
            history = fit(*bound.args, **bound.kwargs)
        finally:
            backup._attached = False
            self.run_dir, self._checkpoints, self._policy, self._last_checkpoint = saved
        if backup.delete_checkpoint:
            shutil.rmtree(backup.backup_dir, ignore_errors=True)
        return history

    return wrapper


__all__ = ["BackupAndRestore", "with_backup"]
