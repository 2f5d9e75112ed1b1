"""``keras.config``: global settings read by ``keras.ops``, ``keras.random`` and ``keras.backend``.

Only what runs on PyTorch here: the backend is always ``"torch"``; weights are float32 (mixed
precision is the engine's job), so :func:`set_floatx` accepts ``"float32"`` only; images are
channels-last, so :func:`set_image_data_format` accepts ``"channels_last"`` only.
"""

from __future__ import annotations

import os
import warnings

from bigmodel.engine.progress import interactive_output, set_interactive_output
from bigmodel.errors import ConfigError, NotSupportedError
from bigmodel.keras.mixed_precision import dtype_policy, set_dtype_policy  # noqa: F401 - as Keras
from bigmodel.keras.unsupported import (  # noqa: F401 - public here, as the error of every module
    UnsupportedAPIError,
    UnsupportedImportError,
    unsupported_attribute,
)

DOCS = "docs/keras.md"

_STATE = {"floatx": "float32", "epsilon": 1e-7, "image_data_format": "channels_last"}


def backend() -> str:
    """The name of the backend: always ``"torch"``."""
    return "torch"


def floatx() -> str:
    """The default float dtype name, ``"float32"``."""
    return _STATE["floatx"]


def set_floatx(value: str) -> None:
    """Set the default float dtype.

    Raises:
        NotSupportedError: for anything but ``"float32"`` (bigmodel layers hold float32 weights;
            use the engine's ``precision`` for bf16/fp16 training).
        ConfigError: for a name that is no float dtype at all.
    """
    if value not in ("float16", "bfloat16", "float32", "float64"):
        raise ConfigError(f"set_floatx: unknown `floatx` value {value!r}; expected one of "
                          "'float16', 'bfloat16', 'float32', 'float64'")
    if value != "float32":
        raise NotSupportedError(
            f"keras.config.set_floatx({value!r}) is not supported: bigmodel layers hold float32 "
            f"weights (train in bf16/fp16 with the engine's precision setting). See {DOCS}")
    _STATE["floatx"] = value


def epsilon() -> float:
    """The fuzz factor used to avoid division by zero, ``1e-7`` by default."""
    return _STATE["epsilon"]


def set_epsilon(value: float) -> None:
    """Set the fuzz factor returned by :func:`epsilon`."""
    _STATE["epsilon"] = float(value)


def image_data_format() -> str:
    """The image layout, ``"channels_last"``."""
    return _STATE["image_data_format"]


def set_image_data_format(data_format: str) -> None:
    """Set the image layout.

    Raises:
        NotSupportedError: for ``"channels_first"`` (bigmodel's Keras layers are channels-last).
        ConfigError: for any other value.
    """
    if data_format not in ("channels_last", "channels_first"):
        raise ConfigError(f"set_image_data_format: expected 'channels_last' or 'channels_first'; "
                          f"received {data_format!r}")
    if data_format == "channels_first":
        raise NotSupportedError(
            "keras.config.set_image_data_format('channels_first') is not supported: bigmodel's "
            f"Keras layers take channels-last images. See {DOCS}")
    _STATE["image_data_format"] = data_format


def enable_interactive_logging() -> None:
    """Progress of ``fit`` / ``evaluate`` / ``predict`` and ``keras.utils.Progbar`` to standard
    output (the default)."""
    set_interactive_output(True)


def disable_interactive_logging() -> None:
    """Progress and ``Progbar`` lines to the Python logger ``bigmodel.progress`` (INFO) instead
    of standard output, as Keras sends them to absl logging (for jobs on a server)."""
    set_interactive_output(False)


def is_interactive_logging_enabled() -> bool:
    """Whether progress goes to standard output (see :func:`disable_interactive_logging`)."""
    return interactive_output()


def _limit(value: object, what: str) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int):
        raise ConfigError(f"keras.config.set_{what}: expected a positive int or None; "
                          f"received {value!r} ({type(value).__name__})")
    if value < 1:
        raise ConfigError(f"keras.config.set_{what}: expected a positive int or None; "
                          f"received {value}")
    return value


def _from_environment(variable: str) -> int | None:
    # Keras reads KERAS_MAX_EPOCHS / KERAS_MAX_STEPS_PER_EPOCH once, when it is imported.
    text = os.environ.get(variable)
    return int(text) if text else None


_LIMITS = {"max_epochs": _from_environment("KERAS_MAX_EPOCHS"),
           "max_steps_per_epoch": _from_environment("KERAS_MAX_STEPS_PER_EPOCH")}


def set_max_epochs(max_epochs: int | None) -> None:
    """Cap the number of epochs of every ``fit`` (for debugging runs), as Keras does; ``None``
    removes the cap. ``KERAS_MAX_EPOCHS`` sets it when bigmodel is imported.

    Raises:
        ConfigError: anything but a positive int or ``None``.
    """
    _LIMITS["max_epochs"] = _limit(max_epochs, "max_epochs")


def set_max_steps_per_epoch(max_steps_per_epoch: int | None) -> None:
    """Cap the number of batches of every epoch of ``fit`` and of ``evaluate`` / ``predict``
    (for debugging runs), as Keras does; ``None`` removes the cap. ``KERAS_MAX_STEPS_PER_EPOCH``
    sets it when bigmodel is imported.

    Raises:
        ConfigError: anything but a positive int or ``None``.
    """
    _LIMITS["max_steps_per_epoch"] = _limit(max_steps_per_epoch, "max_steps_per_epoch")


def max_epochs() -> int | None:
    """The cap on ``fit``'s epochs set by :func:`set_max_epochs`, or ``None``."""
    return _LIMITS["max_epochs"]


def max_steps_per_epoch() -> int | None:
    """The cap on the batches per epoch set by :func:`set_max_steps_per_epoch`, or ``None``."""
    return _LIMITS["max_steps_per_epoch"]


def capped_epochs(epochs: int) -> int:
    """``epochs`` limited by :func:`max_epochs`, with Keras's warning when it cuts."""
    cap = max_epochs()
    if cap and cap < epochs:
        warnings.warn(f"Limiting epochs to {cap}", stacklevel=3)
        return cap
    return epochs


def capped_steps(steps: int | None) -> int | None:
    """``steps`` (per epoch; ``None``: the whole data) limited by :func:`max_steps_per_epoch`,
    with Keras's warning when it cuts."""
    cap = max_steps_per_epoch()
    if cap and (not steps or cap < steps):
        warnings.warn(f"Limiting steps_per_epoch to {cap}", stacklevel=3)
        return cap
    return steps


def __getattr__(name: str) -> object:
    raise unsupported_attribute("keras.config", name)
