"""Weight initializers with Keras 3 names, arguments and defaults.

An initializer is called with a *Keras* shape (e.g. a Conv2D kernel is ``(kh, kw, in, out)``) and
returns a float32 ``torch.Tensor`` of that shape; fan-in/fan-out follow Keras: for rank > 2 the
receptive field is the product of all but the last two dimensions.

Without a ``seed`` the global torch RNG is used (so ``torch.manual_seed`` makes a model
reproducible); with a ``seed`` every call returns the same values, as in Keras 3.

The math (fans, truncated normal, variance scaling, orthogonal, identity) is
:mod:`bigmodel.nn.init`'s; the classes here hold Keras's names, arguments, defaults, seeds and
serialization.

``get(identifier)`` accepts a name (``"glorot_uniform"``, ``"GlorotUniform"``, ``"uniform"``, ...),
a ``{"class_name", "config"}`` dict, an :class:`Initializer` instance or class, or any callable
``fn(shape) -> tensor``; ``serialize`` gives the JSON-able dict back.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from typing import Any

import torch

from bigmodel.errors import ConfigError, UnknownNameError
from bigmodel.keras.unsupported import unsupported_attribute
from bigmodel.nn.init import (
    channels_last_fans,
    fourier_kernel,
    identity_,
    orthogonal_,
    truncated_normal_,
    variance_scaling_,
)

__all__ = [
    "Constant", "GlorotNormal", "GlorotUniform", "HeNormal", "HeUniform", "Identity", "Initializer",
    "LecunNormal", "LecunUniform", "Ones", "OrthogonalInitializer", "RandomNormal", "RandomUniform",
    "TruncatedNormal", "VarianceScaling", "Zeros", "compute_fans", "deserialize", "get", "serialize",
    "STFT",
]

Shape = Sequence[int]


# Keras's name for the fans of a Keras-layout (channels-last) weight shape.
compute_fans = channels_last_fans


def _generator(seed: int | None) -> torch.Generator | None:
    if seed is None:
        return None
    return torch.Generator().manual_seed(int(seed))


class Initializer:
    """Base class: ``__call__(shape, dtype=None) -> torch.Tensor`` and ``get_config``."""

    def __call__(self, shape: Shape, dtype: Any = None) -> torch.Tensor:  # pragma: no cover
        raise NotImplementedError

    def get_config(self) -> dict[str, Any]:
        return {}

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> Initializer:
        return cls(**config)

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.get_config().items())
        return f"{type(self).__name__}({args})"


def _empty(shape: Shape, dtype: Any) -> torch.Tensor:
    return torch.empty(tuple(int(s) for s in shape), dtype=dtype or torch.float32)


class Zeros(Initializer):
    def __call__(self, shape: Shape, dtype: Any = None) -> torch.Tensor:
        return _empty(shape, dtype).zero_()


class Ones(Initializer):
    def __call__(self, shape: Shape, dtype: Any = None) -> torch.Tensor:
        return _empty(shape, dtype).fill_(1.0)


class Constant(Initializer):
    """Fill with ``value`` (a scalar)."""

    def __init__(self, value: float = 0.0):
        self.value = float(value)

    def __call__(self, shape: Shape, dtype: Any = None) -> torch.Tensor:
        return _empty(shape, dtype).fill_(self.value)

    def get_config(self) -> dict[str, Any]:
        return {"value": self.value}


class _Seeded(Initializer):
    def __init__(self, seed: int | None = None):
        if seed is not None and not isinstance(seed, int):
            raise ConfigError(f"{type(self).__name__}: `seed` must be an integer or None. "
                              f"Received: seed={seed!r}")
        self.seed = seed

    def get_config(self) -> dict[str, Any]:
        return {"seed": self.seed}


class RandomNormal(_Seeded):
    def __init__(self, mean: float = 0.0, stddev: float = 0.05, seed: int | None = None):
        super().__init__(seed)
        self.mean, self.stddev = float(mean), float(stddev)

    def __call__(self, shape: Shape, dtype: Any = None) -> torch.Tensor:
        return _empty(shape, dtype).normal_(self.mean, self.stddev, generator=_generator(self.seed))

    def get_config(self) -> dict[str, Any]:
        return {"mean": self.mean, "stddev": self.stddev, "seed": self.seed}


class RandomUniform(_Seeded):
    def __init__(self, minval: float = -0.05, maxval: float = 0.05, seed: int | None = None):
        super().__init__(seed)
        self.minval, self.maxval = float(minval), float(maxval)

    def __call__(self, shape: Shape, dtype: Any = None) -> torch.Tensor:
        return _empty(shape, dtype).uniform_(self.minval, self.maxval,
                                             generator=_generator(self.seed))

    def get_config(self) -> dict[str, Any]:
        return {"minval": self.minval, "maxval": self.maxval, "seed": self.seed}


def _truncated_normal(shape: Shape, dtype: Any, mean: float, stddev: float,
                      seed: int | None) -> torch.Tensor:
    """Normal(mean, stddev) truncated to two standard deviations (Keras/TensorFlow convention)."""
    return truncated_normal_(_empty(shape, dtype), mean, stddev, _generator(seed))


class TruncatedNormal(_Seeded):
    """Normal(mean, stddev) with values beyond two standard deviations redrawn."""

    def __init__(self, mean: float = 0.0, stddev: float = 0.05, seed: int | None = None):
        super().__init__(seed)
        self.mean, self.stddev = float(mean), float(stddev)

    def __call__(self, shape: Shape, dtype: Any = None) -> torch.Tensor:
        return _truncated_normal(shape, dtype, self.mean, self.stddev, self.seed)

    def get_config(self) -> dict[str, Any]:
        return {"mean": self.mean, "stddev": self.stddev, "seed": self.seed}


def _axes(value: Any, name: str, where: str) -> list[int] | None:
    """Keras 3's ``input_axes``/``output_axes``: None or a list of integer axes."""
    if value is None:
        return None
    if isinstance(value, int) and not isinstance(value, bool):
        value = [value]
    if not isinstance(value, (list, tuple)) or not all(
            isinstance(a, int) and not isinstance(a, bool) for a in value):
        raise ConfigError(f"{where}: `{name}` must be a list of integer axes or None. "
                          f"Received: {name}={value!r}")
    return list(value)


class VarianceScaling(_Seeded):
    """Samples with variance ``scale / n``, n = fan_in, fan_out or their mean.

    ``distribution``: ``"truncated_normal"`` (``"normal"`` is an alias), ``"untruncated_normal"``
    or ``"uniform"`` (limit ``sqrt(3 * scale / n)``).
    """

    _MODES = ("fan_in", "fan_out", "fan_avg")
    _DISTRIBUTIONS = ("truncated_normal", "untruncated_normal", "uniform")

    def __init__(self, scale: float = 1.0, mode: str = "fan_in",
                 distribution: str = "truncated_normal", seed: int | None = None,
                 input_axes: Sequence[int] | None = None,
                 output_axes: Sequence[int] | None = None):
        super().__init__(seed)
        self.input_axes = _axes(input_axes, "input_axes", type(self).__name__)
        self.output_axes = _axes(output_axes, "output_axes", type(self).__name__)
        if not isinstance(scale, (int, float)) or scale <= 0.0:
            raise ConfigError("Argument `scale` must be positive float. "
                              f"Received: scale={scale!r}")
        if mode not in self._MODES:
            raise ConfigError(f"Invalid `mode` argument: expected one of {set(self._MODES)}. "
                              f"Received: mode={mode!r}")
        distribution = str(distribution).lower()
        if distribution == "normal":
            distribution = "truncated_normal"
        if distribution not in self._DISTRIBUTIONS:
            raise ConfigError("Invalid `distribution` argument: expected one of "
                              f"{set(self._DISTRIBUTIONS)}. Received: distribution={distribution!r}")
        self.scale, self.mode, self.distribution = float(scale), mode, distribution

    def __call__(self, shape: Shape, dtype: Any = None) -> torch.Tensor:
        fan_in, fan_out = compute_fans(shape, self.input_axes, self.output_axes)
        return variance_scaling_(_empty(shape, dtype), fan_in, fan_out, self.scale, self.mode,
                                 self.distribution, _generator(self.seed))

    def get_config(self) -> dict[str, Any]:
        return {"scale": self.scale, "mode": self.mode, "distribution": self.distribution,
                "seed": self.seed, "input_axes": self.input_axes, "output_axes": self.output_axes}


class _FixedVarianceScaling(VarianceScaling):
    """A named VarianceScaling whose arguments are ``seed`` and the fan axes."""

    _ARGS: tuple[float, str, str] = (1.0, "fan_in", "truncated_normal")

    def __init__(self, seed: int | None = None, input_axes: Sequence[int] | None = None,
                 output_axes: Sequence[int] | None = None):
        scale, mode, distribution = self._ARGS
        super().__init__(scale=scale, mode=mode, distribution=distribution, seed=seed,
                         input_axes=input_axes, output_axes=output_axes)

    def get_config(self) -> dict[str, Any]:
        return {"seed": self.seed, "input_axes": self.input_axes, "output_axes": self.output_axes}


class GlorotUniform(_FixedVarianceScaling):
    """Uniform in ``[-limit, limit]``, ``limit = sqrt(6 / (fan_in + fan_out))``."""

    _ARGS = (1.0, "fan_avg", "uniform")


class GlorotNormal(_FixedVarianceScaling):
    _ARGS = (1.0, "fan_avg", "truncated_normal")


class HeNormal(_FixedVarianceScaling):
    _ARGS = (2.0, "fan_in", "truncated_normal")


class HeUniform(_FixedVarianceScaling):
    _ARGS = (2.0, "fan_in", "uniform")


class LecunNormal(_FixedVarianceScaling):
    _ARGS = (1.0, "fan_in", "truncated_normal")


class LecunUniform(_FixedVarianceScaling):
    _ARGS = (1.0, "fan_in", "uniform")


class OrthogonalInitializer(_Seeded):
    """A (flattened to 2-D) orthogonal matrix times ``gain``, from the QR of a normal matrix."""

    def __init__(self, gain: float = 1.0, seed: int | None = None):
        super().__init__(seed)
        self.gain = float(gain)

    def __call__(self, shape: Shape, dtype: Any = None) -> torch.Tensor:
        return orthogonal_(_empty(shape, dtype), self.gain, _generator(self.seed))

    def get_config(self) -> dict[str, Any]:
        return {"gain": self.gain, "seed": self.seed}


class Identity(Initializer):
    """``gain`` times the identity matrix (2-D shapes only; rectangular ones get ones on the diagonal)."""

    def __init__(self, gain: float = 1.0):
        self.gain = float(gain)

    def __call__(self, shape: Shape, dtype: Any = None) -> torch.Tensor:
        return identity_(_empty(shape, dtype), self.gain)

    def get_config(self) -> dict[str, Any]:
        return {"gain": self.gain}


def stft_window(window: Any, length: int, periodic: bool, where: str) -> torch.Tensor | None:
    """``window`` as a tensor of ``length`` values: a SciPy window name (as Keras reads it), an
    array, or None (no window).

    Raises:
        ConfigError: an unknown name, an array of another length, SciPy missing for a name.
    """
    if window is None:
        return None
    if isinstance(window, str):
        try:
            import scipy.signal
        except ImportError:  # pragma: no cover - scipy comes with the speech / dev extras
            raise ConfigError(f"{where}: window={window!r} needs SciPy: pip install "
                              "'bigmodel[speech]'") from None
        try:
            values = scipy.signal.get_window(window, length, periodic)
        except ValueError as exc:
            raise ConfigError(f"{where}: invalid value for argument `window`: {exc}. "
                              f"Received: window={window!r}") from None
        return torch.as_tensor(values, dtype=torch.float32)
    values = torch.as_tensor(window, dtype=torch.float32)
    if tuple(values.shape) != (length,):
        raise ConfigError(f"{where}: the shape of `window` must be equal to [frame_length] = "
                          f"[{length}]; received window shape {tuple(values.shape)}")
    return values


class STFT(Initializer):
    """Fourier kernels of a convolutional STFT (``layers.STFTSpectrogram``'s), Keras 3's class.

    Args:
        side: ``"real"`` (cosines) or ``"imag"`` (sines).
        window: a SciPy window name, an array, or None.
        scaling: ``"density"``, ``"spectrum"`` or None.
        periodic: a periodic window (SciPy's ``fftbins``).

    Called with shape ``(frame_length, 1, bins)`` (``bins = fft_length // 2 + 1``).

    Raises:
        ConfigError: a bad side / scaling / window, or a shape that is not ``(T, 1, F)``.
    """

    def __init__(self, side: str = "real", window: Any = "hann", scaling: str | None = "density",
                 periodic: bool = False):
        if side not in ("real", "imag"):
            raise ConfigError(f"STFT initializer: side should be 'real' or 'imag'. Received: "
                              f"side={side!r}")
        if scaling not in ("density", "spectrum", None):
            raise ConfigError(f"STFT initializer: scaling should be None, 'density' or "
                              f"'spectrum'. Received: scaling={scaling!r}")
        if isinstance(window, str):
            stft_window(window, 1, bool(periodic), "STFT initializer")  # fail early on a bad name
        self.side, self.window, self.scaling, self.periodic = side, window, scaling, bool(periodic)

    def __call__(self, shape: Shape, dtype: Any = None) -> torch.Tensor:
        if len(shape) != 3 or shape[1] != 1:
            raise ConfigError(f"STFT initializer: the shape must be (frame_length, 1, bins); "
                              f"received {tuple(shape)}")
        frame_length, _, bins = (int(s) for s in shape)
        window = stft_window(self.window, frame_length, self.periodic, "STFT initializer")
        return fourier_kernel(self.side, frame_length, bins, window, self.scaling)

    def get_config(self) -> dict[str, Any]:
        window = self.window if self.window is None or isinstance(self.window, str) else [
            float(v) for v in self.window]
        return {"side": self.side, "window": window, "periodic": self.periodic,
                "scaling": self.scaling}


# Keras 3's other names of the same classes (``keras.initializers.glorot_uniform is GlorotUniform``).
constant = Constant
glorot_normal = GlorotNormal
glorot_uniform = GlorotUniform
he_normal = HeNormal
he_uniform = HeUniform
identity = IdentityInitializer = Identity
lecun_normal = LecunNormal
lecun_uniform = LecunUniform
ones = Ones
orthogonal = Orthogonal = OrthogonalInitializer
random_normal = RandomNormal
random_uniform = RandomUniform
truncated_normal = TruncatedNormal
variance_scaling = VarianceScaling
zeros = Zeros
STFTInitializer = stft = STFT


def _snake(name: str) -> str:
    name = re.sub(r"(.)([A-Z][a-z]+)", r"\1_\2", name)
    return re.sub(r"([a-z0-9])([A-Z])", r"\1_\2", name).lower()


_CLASSES: list[type[Initializer]] = [
    Constant, Identity, Ones, Zeros, GlorotNormal, GlorotUniform, HeNormal, HeUniform, LecunNormal,
    LecunUniform, RandomNormal, RandomUniform, TruncatedNormal, VarianceScaling,
    OrthogonalInitializer, STFT,
]
_REGISTRY: dict[str, type[Initializer]] = {cls.__name__: cls for cls in _CLASSES}
_REGISTRY.update({_snake(cls.__name__): cls for cls in _CLASSES})
_REGISTRY.update({"uniform": RandomUniform, "normal": RandomNormal,
                  "orthogonal": OrthogonalInitializer, "Orthogonal": OrthogonalInitializer,
                  "one": Ones, "zero": Zeros})


def _unknown(identifier: Any) -> UnknownNameError:
    known = ", ".join(sorted(k for k in _REGISTRY if k[0].islower()))
    return UnknownNameError(f"Unknown initializer: {identifier!r}. Known initializers: {known} "
                            "(or their class names, e.g. 'GlorotUniform')")


def deserialize(config: dict[str, Any] | str) -> Initializer:
    """Build an initializer from a name or a ``{"class_name", "config"}`` dict."""
    if isinstance(config, str):
        config = {"class_name": config, "config": {}}
    if not isinstance(config, dict) or "class_name" not in config:
        raise ConfigError(f"Could not interpret initializer identifier: {config!r}")
    cls = _REGISTRY.get(config["class_name"])
    if cls is None:
        raise _unknown(config["class_name"])
    try:
        return cls.from_config(dict(config.get("config") or {}))
    except TypeError as exc:
        raise ConfigError(f"Invalid config for initializer '{config['class_name']}': {exc}") from None


def get(identifier: Any) -> Callable[..., torch.Tensor] | None:
    """An initializer from a name, a dict, an instance, a class or a callable (``None`` -> ``None``)."""
    if identifier is None:
        return None
    if isinstance(identifier, (str, dict)):
        return deserialize(identifier)
    if isinstance(identifier, type) and issubclass(identifier, Initializer):
        return identifier()
    if callable(identifier):
        return identifier
    raise ConfigError(f"Could not interpret initializer identifier: {identifier!r}")


def serialize(initializer: Any) -> dict[str, Any] | str | None:
    """A JSON-able description: ``{"class_name", "config"}`` for built-ins, a name otherwise."""
    if initializer is None:
        return None
    if isinstance(initializer, Initializer):
        return {"class_name": type(initializer).__name__, "config": initializer.get_config()}
    if isinstance(initializer, (str, dict)):
        return serialize(get(initializer))
    return getattr(initializer, "__name__", type(initializer).__name__)


def __getattr__(name: str) -> object:
    raise unsupported_attribute("keras.initializers", name)
