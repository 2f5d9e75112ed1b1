"""The string hashes Keras's preprocessing layers use (through TensorFlow):

- ``tf.strings.to_hash_bucket_fast`` = FarmHash ``Fingerprint64`` of the UTF-8 bytes, modulo the
  number of bins: from the ``pyfarmhash`` package (Google's C++ FarmHash; checked against the
  results in Keras's own docstrings);
- ``tf.strings.to_hash_bucket_strong`` (a ``salt`` / ``key``) = SipHash-2-4 with the two 64-bit key
  halves, modulo the bins: written here from the published algorithm (Aumasson & Bernstein 2012),
  checked against its reference test vectors.
"""

from __future__ import annotations

import struct

from bigmodel.errors import NotSupportedError

try:
    import farmhash as _farmhash
except ImportError:  # pragma: no cover - the keras extra installs it
    _farmhash = None

__all__ = ["fingerprint64", "siphash24", "siphash_bucket"]

_MASK = (1 << 64) - 1


def fingerprint64(text: str | bytes) -> int:
    """FarmHash Fingerprint64 of ``text`` (UTF-8), an unsigned 64-bit int.

    Raises:
        NotSupportedError: the ``pyfarmhash`` package is not installed.
    """
    if _farmhash is None:
        raise NotSupportedError("string hashing (Hashing, StringLookup with several OOV indices) "
                                "needs the pyfarmhash package: pip install 'bigmodel[keras]'")
    return _farmhash.fingerprint64(text.encode("utf-8") if isinstance(text, str) else text)


def _rotl(x: int, b: int) -> int:
    return ((x << b) | (x >> (64 - b))) & _MASK


def siphash24(key0: int, key1: int, data: bytes) -> int:
    """SipHash-2-4 of ``data`` under the 128-bit key ``(key0, key1)`` (two little-endian
    64-bit halves), an unsigned 64-bit int."""
    k0, k1 = key0 & _MASK, key1 & _MASK
    v0, v1 = k0 ^ 0x736F6D6570736575, k1 ^ 0x646F72616E646F6D
    v2, v3 = k0 ^ 0x6C7967656E657261, k1 ^ 0x7465646279746573

    def rounds(count: int) -> None:
        nonlocal v0, v1, v2, v3
        for _ in range(count):
            v0 = (v0 + v1) & _MASK
            v1 = _rotl(v1, 13) ^ v0
            v0 = _rotl(v0, 32)
            v2 = (v2 + v3) & _MASK
            v3 = _rotl(v3, 16) ^ v2
            v0 = (v0 + v3) & _MASK
            v3 = _rotl(v3, 21) ^ v0
            v2 = (v2 + v1) & _MASK
            v1 = _rotl(v1, 17) ^ v2
            v2 = _rotl(v2, 32)

    tail = len(data) % 8
    for (m,) in struct.iter_unpack("<Q", data[:len(data) - tail]):
        v3 ^= m
        rounds(2)
        v0 ^= m
    last = ((len(data) & 0xFF) << 56) | int.from_bytes(data[len(data) - tail:], "little")
    v3 ^= last
    rounds(2)
    v0 ^= last
    v2 ^= 0xFF
    rounds(4)
    return v0 ^ v1 ^ v2 ^ v3


def siphash_bucket(text: str | bytes, num_bins: int, salt: list[int] | tuple[int, int]) -> int:
    """``tf.strings.to_hash_bucket_strong(text, num_bins, key=salt)``."""
    data = text.encode("utf-8") if isinstance(text, str) else text
    return siphash24(int(salt[0]), int(salt[1]), data) % num_bins
