"""The training engine: ``Trainer`` for any ``nn.Module``, plus metrics, schedules, callbacks and
checkpoints (see ``docs/INTERFACES.md``)."""

from bigmodel.engine.callbacks import (
    Callback,
    CallbackList,
    CSVLogger,
    EarlyStopping,
    History,
    LambdaCallback,
    LearningRateScheduler,
    ModelCheckpoint,
    ReduceLROnPlateau,
    TensorBoard,
    TerminateOnNaN,
)
from bigmodel.engine.checkpoint import CheckpointManager, latest_checkpoint, read_checkpoint
from bigmodel.engine.metrics import Metric
from bigmodel.engine.schedules import build_scheduler, get_learning_rate, set_learning_rate
from bigmodel.engine.trainer import Trainer, seed_everything

__all__ = [
    "CSVLogger", "Callback", "CallbackList", "CheckpointManager", "EarlyStopping", "History",
    "LambdaCallback", "LearningRateScheduler", "Metric", "ModelCheckpoint", "ReduceLROnPlateau",
    "TensorBoard", "TerminateOnNaN", "Trainer", "build_scheduler", "get_learning_rate",
    "latest_checkpoint", "read_checkpoint", "seed_everything", "set_learning_rate",
]
