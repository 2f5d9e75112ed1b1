"""``keras.callbacks``: the engine's callbacks, which follow Keras's hooks and arguments."""

from bigmodel.engine.backup import BackupAndRestore  # noqa: F401
from bigmodel.engine.callbacks import *  # noqa: F403
from bigmodel.engine.callbacks import Callback, CallbackList, History  # noqa: F401
