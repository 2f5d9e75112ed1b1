"""``layers.Hashing`` and ``layers.HashedCrossing``: strings or integers -> hash bins, with
TensorFlow's hashes (FarmHash Fingerprint64, SipHash-2-4 with a ``salt``, TF's
``FingerprintCat64`` for crosses; see :mod:`bigmodel.keras.layers.hash_functions`), so the bins
equal Keras's."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from bigmodel.errors import ConfigError, InputTypeError, NotSupportedError, ShapeError
from bigmodel.keras.layers.base import Layer
from bigmodel.keras.layers.categorical_outputs import encode_ids
from bigmodel.keras.layers.hash_functions import fingerprint64, siphash_bucket
from bigmodel.keras.string_inputs import as_string_array

__all__ = ["HashedCrossing", "Hashing", "fingerprint_cat64"]

_MASK = (1 << 64) - 1
_MUL = 0xC6A4A7935BD1E995
_CROSS_KEY = 0xDECAFCAFFE  # tf.sparse.cross_hashed's default hash key


def _shift_mix(value: int) -> int:
    return value ^ (value >> 47)


def fingerprint_cat64(fp1: int, fp2: int) -> int:
    """TensorFlow's ``FingerprintCat64`` (tensorflow/core/platform/fingerprint.h)."""
    result = fp1 ^ _MUL
    result ^= (_shift_mix((fp2 * _MUL) & _MASK) * _MUL) & _MASK
    result = (result * _MUL) & _MASK
    result = (_shift_mix(result) * _MUL) & _MASK
    return _shift_mix(result)


def _values(inputs: Any, where: str) -> np.ndarray:
    """Strings (object array of str) or integers (int64 array)."""
    strings = as_string_array(inputs)
    if strings is not None:
        return strings
    array = inputs.detach().cpu().numpy() if isinstance(inputs, torch.Tensor) else \
        np.asarray(inputs)
    if array.dtype.kind == "f":
        return array.astype(np.int64)  # Keras casts floats to int64 before hashing
    if array.dtype.kind not in "iub":
        raise InputTypeError(f"{where}: inputs must be strings or integers; received dtype "
                             f"{array.dtype}")
    return array.astype(np.int64)


def _check_output_mode(where: str, output_mode: str, accepted: tuple[str, ...],
                       sparse: bool) -> None:
    if output_mode not in accepted:
        raise ConfigError(f"{where}: invalid value for argument `output_mode`. Expected one of "
                          f"{accepted}. Received: output_mode={output_mode!r}")
    if sparse:
        raise NotSupportedError(f"{where}: sparse=True is not supported by bigmodel")


class Hashing(Layer):
    """Hashes each value into ``num_bins`` bins (bin 0 kept for ``mask_value`` when given).

    Strings hash by their UTF-8 bytes, integers by their decimal text (as ``tf.as_string``).

    Raises:
        ConfigError: ``num_bins`` not positive, an unknown ``output_mode``, a bad ``salt``.
        NotSupportedError: ``sparse=True``.
        InputTypeError: inputs that are neither strings nor numbers.
    """

    def __init__(self, num_bins: int, mask_value: Any = None, salt: Any = None,
                 output_mode: str = "int", sparse: bool = False, **kwargs: Any):
        kwargs.pop("dtype", None)  # the outputs are int64 ids or float32 vectors
        super().__init__(**kwargs)
        where = f"Layer '{self.name}' (Hashing)"
        if isinstance(num_bins, bool) or not isinstance(num_bins, int) or num_bins <= 0:
            raise ConfigError(f"{where}: the `num_bins` for `Hashing` cannot be `None` or "
                              f"non-positive values. Received: num_bins={num_bins!r}")
        _check_output_mode(where, output_mode, ("int", "one_hot", "multi_hot", "count"), sparse)
        if salt is not None:
            if isinstance(salt, (tuple, list)) and len(salt) == 2:
                salt = [int(s) for s in salt]
            elif isinstance(salt, int) and not isinstance(salt, bool):
                salt = [salt, salt]
            else:
                raise ConfigError(f"{where}: the `salt` argument can only be a tuple of size 2 "
                                  f"integers, or a single integer. Received: salt={salt!r}")
        self.num_bins, self.mask_value, self.salt = num_bins, mask_value, salt
        self.strong_hash, self.output_mode, self.sparse = salt is not None, output_mode, False
        self._where = where
        self.built = True

    def _bin(self, value: Any, bins: int) -> int:
        text = value if isinstance(value, str) else str(int(value))
        if self.salt is not None:
            return siphash_bucket(text, bins, self.salt)
        return fingerprint64(text) % bins

    def call(self, inputs: Any, training: bool = False) -> torch.Tensor:
        values = _values(inputs, self._where)
        if self.output_mode == "one_hot" and values.ndim and values.shape[-1] == 1:
            values = values[..., 0]
        masked = self.mask_value is not None and self.num_bins > 1
        bins = self.num_bins - 1 if masked else self.num_bins
        flat = values.reshape(-1)
        ids = np.fromiter((self._bin(v, bins) for v in flat), dtype=np.int64, count=flat.size)
        if masked:
            ids = np.where(np.array([v == self.mask_value for v in flat], dtype=bool), 0, ids + 1)
        ids = ids.reshape(values.shape)
        if self.output_mode == "int":
            return torch.from_numpy(ids)
        return encode_ids(ids, self.output_mode, self.num_bins, self._where)

    def forward(self, inputs: Any, *args: Any, training: bool | None = None,
                **kwargs: Any) -> Any:
        return self.call(inputs)  # strings are not tensors: inputs reach ``call`` as they are

    def compute_output_shape(self, input_shape: Any) -> Any:
        shape = tuple(input_shape)
        if self.output_mode == "int":
            return shape
        return (*shape[:-1], self.num_bins) if shape else (self.num_bins,)

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "num_bins": self.num_bins, "salt": self.salt,
                "mask_value": self.mask_value, "output_mode": self.output_mode,
                "sparse": self.sparse}


class HashedCrossing(Layer):
    """Crosses two or more scalar features into ``num_bins`` hash bins
    (``tf.sparse.cross_hashed``): shapes ``()``, ``(batch,)`` or ``(batch, 1)``.

    Raises:
        ConfigError: an unknown ``output_mode``.
        InputTypeError: fewer than two inputs, or inputs neither strings nor integers.
        ShapeError: inputs of other shapes or of different shapes.
    """

    def __init__(self, num_bins: int, output_mode: str = "int", sparse: bool = False,
                 name: str | None = None, dtype: Any = None, **kwargs: Any):
        super().__init__(name=name, **kwargs)  # outputs: int64 ids or float32 one-hot
        self._where = f"Layer '{self.name}' (HashedCrossing)"
        if isinstance(num_bins, bool) or not isinstance(num_bins, int) or num_bins <= 0:
            raise ConfigError(f"{self._where}: num_bins must be a positive integer. Received: "
                              f"num_bins={num_bins!r}")
        _check_output_mode(self._where, output_mode, ("int", "one_hot"), sparse)
        self.num_bins, self.output_mode, self.sparse = num_bins, output_mode, False
        self.built = True

    def call(self, inputs: Any, training: bool = False) -> torch.Tensor:
        if not isinstance(inputs, (list, tuple)) or len(inputs) < 2:
            raise InputTypeError(f"{self._where}: should be called on a list or tuple of at "
                                 f"least two inputs. Received: {type(inputs).__name__}")
        columns = [_values(x, self._where) for x in inputs]
        shape = columns[0].shape
        if len(shape) > 2 or (len(shape) == 2 and shape[-1] != 1):
            raise ShapeError(f"{self._where}: all inputs should have shape (), (batch_size) or "
                             f"(batch_size, 1). Received shape {shape}")
        if any(c.shape != shape for c in columns[1:]):
            raise ShapeError(f"{self._where}: all inputs should have equal shape. Received: "
                             f"{[c.shape for c in columns]}")
        flat = [c.reshape(-1) for c in columns]
        out = np.empty(flat[0].size, dtype=np.int64)
        for i in range(out.size):
            hashed = _CROSS_KEY
            for column in flat:
                value = column[i]
                feature = fingerprint64(value) if isinstance(value, str) else int(value) & _MASK
                hashed = fingerprint_cat64(hashed, feature)
            out[i] = hashed % self.num_bins
        ids = out.reshape(shape)
        if self.output_mode == "int":
            return torch.from_numpy(ids)
        return encode_ids(ids, "one_hot", self.num_bins, self._where)

    def forward(self, inputs: Any, *args: Any, training: bool | None = None,
                **kwargs: Any) -> Any:
        return self.call(inputs)

    def compute_output_shape(self, input_shape: Any) -> Any:
        first = tuple(input_shape[0])
        if self.output_mode == "int":
            return first
        if first and first[-1] != 1:
            return (*first, self.num_bins)
        return (*first[:-1], self.num_bins)

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "num_bins": self.num_bins,
                "output_mode": self.output_mode, "sparse": self.sparse}
