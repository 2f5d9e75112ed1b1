"""``layers.StringLookup`` and ``layers.IntegerLookup``: Keras 3's arguments and defaults over the
shared :class:`~bigmodel.keras.layers.lookup.IndexLookup` (index layout, ``adapt``, outputs)."""

from __future__ import annotations

from typing import Any

from bigmodel.errors import ConfigError
from bigmodel.keras.layers.lookup import IndexLookup

__all__ = ["IntegerLookup", "StringLookup"]


class StringLookup(IndexLookup):
    """Strings -> integer ids (Keras 3's ``layers.StringLookup``; defaults: one OOV index
    ``"[UNK]"``, no mask token)."""

    _string_keys = True

    def __init__(self, max_tokens: int | None = None, num_oov_indices: int = 1,
                 mask_token: str | None = None, oov_token: str = "[UNK]", vocabulary: Any = None,
                 idf_weights: Any = None, invert: bool = False, output_mode: str = "int",
                 pad_to_max_tokens: bool = False, sparse: bool = False, encoding: str = "utf-8",
                 name: str | None = None, salt: Any = None, vocabulary_size: int | None = None,
                 **kwargs: Any):
        kwargs.pop("vocabulary_dtype", None)
        kwargs.pop("oov_method", None)  # strings hash with FarmHash (Keras's config records it)
        self.encoding = encoding
        super().__init__(max_tokens=max_tokens, num_oov_indices=num_oov_indices,
                         mask_token=mask_token, oov_token=oov_token, vocabulary_dtype="string",
                         vocabulary=vocabulary, idf_weights=idf_weights, invert=invert,
                         output_mode=output_mode, sparse=sparse,
                         pad_to_max_tokens=pad_to_max_tokens, oov_method="farmhash", salt=salt,
                         name=name, vocabulary_size=vocabulary_size, **kwargs)

    def get_config(self) -> dict[str, Any]:
        config = super().get_config()
        del config["vocabulary_dtype"]
        return {**config, "encoding": self.encoding}


class IntegerLookup(IndexLookup):
    """Integers -> contiguous ids (Keras 3's ``layers.IntegerLookup``; OOV token -1, no mask
    token; several OOV indices hashed with ``floormod`` or ``farmhash``)."""

    _string_keys = False

    def __init__(self, max_tokens: int | None = None, num_oov_indices: int = 1,
                 mask_token: int | None = None, oov_token: int = -1, vocabulary: Any = None,
                 vocabulary_dtype: str = "int64", idf_weights: Any = None, invert: bool = False,
                 output_mode: str = "int", sparse: bool = False, pad_to_max_tokens: bool = False,
                 oov_method: str = "floormod", salt: Any = None, name: str | None = None,
                 vocabulary_size: int | None = None, **kwargs: Any):
        if vocabulary_dtype != "int64":
            raise ConfigError(f"IntegerLookup: only `vocabulary_dtype='int64'` is supported. "
                              f"Received: vocabulary_dtype={vocabulary_dtype!r}")
        for arg, value in (("oov_token", oov_token), ("mask_token", mask_token)):
            if value is not None and (isinstance(value, bool) or not isinstance(value, int)):
                raise ConfigError(f"IntegerLookup: {arg} must be an integer. Received: "
                                  f"{arg}={value!r}")
        super().__init__(max_tokens=max_tokens, num_oov_indices=num_oov_indices,
                         mask_token=mask_token, oov_token=oov_token,
                         vocabulary_dtype=vocabulary_dtype, vocabulary=vocabulary,
                         idf_weights=idf_weights, invert=invert, output_mode=output_mode,
                         sparse=sparse, pad_to_max_tokens=pad_to_max_tokens,
                         oov_method=oov_method, salt=salt, name=name,
                         vocabulary_size=vocabulary_size, **kwargs)
