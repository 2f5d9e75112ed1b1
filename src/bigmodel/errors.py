"""One small error hierarchy for bigmodel.

Every error a user can cause derives from :class:`BigModelError`. Where Keras or Python would raise
``ValueError``/``TypeError``/``FileNotFoundError``, the bigmodel error also derives from that builtin so
code written against Keras keeps catching it.
"""

from __future__ import annotations


class BigModelError(Exception):
    """Base class of every error bigmodel raises on bad input or bad state."""


class ConfigError(BigModelError, ValueError):
    """A recipe, argument or configuration value is invalid (names the key and what was expected)."""


class UnknownNameError(ConfigError, KeyError):
    """A name (layer, loss, optimizer, metric, model, ...) is not registered.

    Message lists the names that are known.
    """

    def __str__(self) -> str:  # KeyError would otherwise quote the message
        return str(self.args[0]) if self.args else ""


class ShapeError(BigModelError, ValueError):
    """An input has the wrong rank, shape or dtype for a layer or loss."""


class InputTypeError(BigModelError, TypeError):
    """An input has a type that cannot be used (e.g. a string where an array is needed)."""


class DataError(BigModelError, ValueError):
    """Training/evaluation data is invalid: empty, mismatched lengths, NaN, labels out of range."""


class DataFileError(BigModelError, OSError):
    """A data file is missing, truncated or corrupt (names the file and what was expected)."""


class CheckpointError(BigModelError, OSError):
    """A checkpoint or saved model is missing, truncated, tampered with, or unsafe to load."""


class TrainingError(BigModelError, RuntimeError):
    """Training cannot continue (e.g. the loss became NaN/Inf); names epoch and step."""


class Preempted(TrainingError):
    """Training stopped on SIGTERM/SIGINT at a step boundary, after writing a checkpoint.

    Attributes:
        signal_number: the signal received (``signal.SIGTERM`` = 15, ``signal.SIGINT`` = 2).
        exit_code: ``128 + signal_number`` (143 for SIGTERM, 130 for SIGINT), what a shell expects.
        checkpoint: the checkpoint written (``None`` when there was nowhere to write one).
    """

    def __init__(self, message: str, signal_number: int, checkpoint: object = None) -> None:
        super().__init__(message)
        self.signal_number = int(signal_number)
        self.exit_code = 128 + self.signal_number
        self.checkpoint = checkpoint


class NotBuiltError(BigModelError, ValueError):
    """A model or layer was used before its shapes were known (no input_shape, never called)."""


class NotSupportedError(BigModelError, NotImplementedError):
    """A Keras (or other) API that bigmodel does not implement; names it and points to the docs."""


def describe(value: object) -> str:
    """Short description of a value for error messages: shape and dtype for arrays."""
    shape = getattr(value, "shape", None)
    dtype = getattr(value, "dtype", None)
    if shape is not None:
        return f"{type(value).__name__}(shape={tuple(shape)}, dtype={dtype})"
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."
