"""``keras.callbacks``: the engine's callbacks, which follow Keras's hooks and arguments.

``ModelCheckpoint`` is the engine's, plus Keras 3's check of the file name when the callback is
created: a name the model cannot be saved under would otherwise fail at the first save, after an
epoch of training.
"""

import os
from typing import Any

from bigmodel.engine.backup import BackupAndRestore  # noqa: F401
from bigmodel.engine.callbacks import *  # noqa: F403
from bigmodel.engine.callbacks import Callback, CallbackList, History  # noqa: F401
from bigmodel.engine.callbacks import ModelCheckpoint as _EngineModelCheckpoint
from bigmodel.errors import ConfigError
from bigmodel.keras.callbacks_extra import ProgbarLogger, RemoteMonitor, SwapEMAWeights  # noqa: F401
from bigmodel.keras.saving import MODEL_SUFFIXES, WEIGHTS_SUFFIXES
from bigmodel.keras.unsupported import unsupported_attribute


class ModelCheckpoint(_EngineModelCheckpoint):
    """Keras 3's ``ModelCheckpoint``: saves the model (or its weights) while training.

    Args:
        filepath: the file name, formatted with ``epoch``, ``batch`` and the logs; it must end in
            ``.keras`` or ``.safetensors`` (``save_weights_only``: ``.weights.h5`` or
            ``.safetensors``), as ``model.save`` / ``save_weights`` require.
        **kwargs: the engine callback's arguments (``monitor``, ``save_best_only``, ...).

    Raises:
        ConfigError: a file name that ``save``/``save_weights`` would refuse (Keras 3 raises
            ``ValueError`` here too; ConfigError is one).
    """

    def __init__(self, filepath: str | os.PathLike, monitor: str = "val_loss", verbose: int = 0,
                 save_best_only: bool = False, save_weights_only: bool = False, mode: str = "auto",
                 save_freq: str | int = "epoch", initial_value_threshold: float | None = None,
                 **kwargs: Any) -> None:
        if kwargs:
            raise ConfigError(f"ModelCheckpoint: unknown argument(s) {', '.join(sorted(kwargs))}")
        name = os.fspath(filepath)
        allowed = WEIGHTS_SUFFIXES if save_weights_only else MODEL_SUFFIXES
        if not name.endswith(allowed):
            what = "save_weights_only=True" if save_weights_only else "saving the whole model"
            raise ConfigError(
                f"ModelCheckpoint: filepath '{name}' must end in "
                f"{' or '.join(repr(s) for s in allowed)} when {what} (the file name decides the "
                "format: .keras / .weights.h5 are Keras 3's files, .safetensors bigmodel's)")
        super().__init__(filepath, monitor=monitor, verbose=verbose, save_best_only=save_best_only,
                         save_weights_only=save_weights_only, mode=mode, save_freq=save_freq,
                         initial_value_threshold=initial_value_threshold)


def __getattr__(name: str) -> object:
    raise unsupported_attribute("keras.callbacks", name)
