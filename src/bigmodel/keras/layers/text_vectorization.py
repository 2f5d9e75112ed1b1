"""``layers.TextVectorization``: strings -> token ids (or multi-hot / count / TF-IDF vectors), with
Keras 3's standardization, splitting, n-grams, vocabulary (a :class:`StringLookup` with mask ``""``
and OOV ``"[UNK]"``), padding and truncation.

Keras runs it on TensorFlow; here it runs on Python strings. As TensorFlow does:
``"lower"`` lowers ASCII letters only (``tf.strings.lower`` without an encoding), punctuation is
Keras's ASCII set, ``"whitespace"`` splits on runs of ASCII whitespace, ``"character"`` on Unicode
code points, and n-grams of each width come width by width, joined by a space.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

import numpy as np
import torch

from bigmodel.errors import ConfigError, InputTypeError, NotSupportedError, ShapeError
from bigmodel.keras.layers.base import Layer
from bigmodel.keras.layers.lookup_layers import StringLookup
from bigmodel.keras.string_inputs import as_string_array

__all__ = ["TextVectorization"]

_PUNCTUATION = re.compile(r'[!"#$%&()\*\+,-\./:;<=>?@\[\\\]^_`{|}~\']')
_WHITESPACE = re.compile(r"[ \t\n\r\f\v]+")
_ASCII_LOWER = str.maketrans("ABCDEFGHIJKLMNOPQRSTUVWXYZ", "abcdefghijklmnopqrstuvwxyz")
_STANDARDIZE = ("lower_and_strip_punctuation", "lower", "strip_punctuation")
_SPLIT = ("whitespace", "character")


def _ngrams(tokens: list[str], widths: tuple[int, ...]) -> list[str]:
    out: list[str] = []
    for width in widths:
        out.extend(" ".join(tokens[i:i + width]) for i in range(len(tokens) - width + 1))
    return out


class TextVectorization(Layer):
    """Text -> ids, Keras 3's arguments and defaults.

    Args:
        max_tokens: vocabulary size cap (mask and OOV included).
        standardize: ``"lower_and_strip_punctuation"`` (default), ``"lower"``,
            ``"strip_punctuation"``, None, or a callable on a NumPy array of str.
        split: ``"whitespace"`` (default), ``"character"``, None, or a callable on one str that
            returns its tokens.
        ngrams: None, an int n (widths 1..n) or a tuple of widths.
        output_mode: ``"int"``, ``"multi_hot"``, ``"count"`` or ``"tf_idf"``.
        output_sequence_length: ``int`` mode: pad with 0 / cut to this length (default: the
            batch's longest).
        pad_to_max_tokens, vocabulary, idf_weights, encoding: as in Keras.

    Raises:
        ConfigError: an unknown ``standardize`` / ``split`` / ``output_mode``, bad ``ngrams`` or
            ``output_sequence_length``.
        NotSupportedError: ``sparse=True`` or ``ragged=True`` (TensorFlow-only in Keras too).
        InputTypeError: inputs or adapt data that are not strings.
    """

    def __init__(self, max_tokens: int | None = None,
                 standardize: str | Callable | None = "lower_and_strip_punctuation",
                 split: str | Callable | None = "whitespace",
                 ngrams: int | tuple[int, ...] | None = None, output_mode: str = "int",
                 output_sequence_length: int | None = None, pad_to_max_tokens: bool = False,
                 vocabulary: Any = None, idf_weights: Any = None, sparse: bool = False,
                 ragged: bool = False, encoding: str = "utf-8", name: str | None = None,
                 vocabulary_size: int | None = None, **kwargs: Any):
        # vocabulary_size (in Keras's config) is recomputed from the vocabulary
        kwargs.pop("has_input_vocabulary", None)
        kwargs.pop("dtype", None)  # the outputs are int64 ids or float32 vectors
        super().__init__(name=name, **kwargs)
        where = f"Layer '{self.name}' (TextVectorization)"
        if sparse or ragged:
            raise NotSupportedError(f"{where}: sparse=True / ragged=True need TensorFlow (as in "
                                    "Keras on the torch backend)")
        for arg, value, allowed in (("standardize", standardize, _STANDARDIZE),
                                    ("split", split, _SPLIT)):
            if not (value is None or callable(value) or value in allowed):
                raise ConfigError(f"{where}: unknown value for `{arg}`; expected one of "
                                  f"{allowed}, None or a callable. Received: {arg}={value!r}")
        output_mode = {"binary": "multi_hot", "tf-idf": "tf_idf"}.get(output_mode, output_mode)
        if output_mode not in ("int", "one_hot", "multi_hot", "count", "tf_idf"):
            raise ConfigError(f"{where}: unknown output_mode; expected one of ('int', 'one_hot', "
                              f"'multi_hot', 'count', 'tf_idf'). Received: "
                              f"output_mode={output_mode!r}")
        if isinstance(ngrams, list):
            ngrams = tuple(ngrams)
        if not (ngrams is None or (isinstance(ngrams, int) and not isinstance(ngrams, bool)
                                   and ngrams > 0)
                or (isinstance(ngrams, tuple) and all(isinstance(n, int) and n > 0
                                                      for n in ngrams))):
            raise ConfigError(f"{where}: `ngrams` must be None, an integer, or a tuple of "
                              f"integers. Received: ngrams={ngrams!r}")
        if output_mode == "int" and not (output_sequence_length is None or (
                isinstance(output_sequence_length, int)
                and not isinstance(output_sequence_length, bool)
                and output_sequence_length >= 0)):
            raise ConfigError(f"{where}: `output_sequence_length` must be either None or an "
                              "integer when `output_mode` is 'int'. Received: "
                              f"output_sequence_length={output_sequence_length!r}")
        if output_mode != "int" and output_sequence_length is not None:
            raise ConfigError(f"{where}: `output_sequence_length` must not be set if "
                              f"`output_mode` is not 'int'. Received "
                              f"output_sequence_length={output_sequence_length}")
        self._standardize, self._split, self._ngrams_arg = standardize, split, ngrams
        self._ngrams = tuple(range(1, ngrams + 1)) if isinstance(ngrams, int) else ngrams
        self._output_mode, self._output_sequence_length = output_mode, output_sequence_length
        self._encoding, self._where = encoding, where
        self._lookup_layer = StringLookup(
            max_tokens=max_tokens, vocabulary=vocabulary, idf_weights=idf_weights,
            pad_to_max_tokens=pad_to_max_tokens, mask_token="", output_mode=output_mode,
            encoding=encoding, name=f"{self.name}_lookup", vocabulary_size=vocabulary_size)
        self.built = True

    # ------------------------------------------------------------------------ preprocessing
    def _standardized(self, strings: np.ndarray) -> np.ndarray:
        if callable(self._standardize):
            result = as_string_array(self._standardize(strings))
            if result is None:
                raise InputTypeError(f"{self._where}: the standardize callable must return "
                                     "strings")
            return result
        out = strings.copy()
        if self._standardize in ("lower", "lower_and_strip_punctuation"):
            out.flat[:] = [s.translate(_ASCII_LOWER) for s in out.flat]
        if self._standardize in ("strip_punctuation", "lower_and_strip_punctuation"):
            out.flat[:] = [_PUNCTUATION.sub("", s) for s in out.flat]
        return out

    def _tokens(self, text: str) -> list[str]:
        if self._split == "whitespace":
            tokens = [t for t in _WHITESPACE.split(text) if t]
        elif self._split == "character":
            tokens = list(text)
        else:
            tokens = list(self._split(text))
        return _ngrams(tokens, self._ngrams) if self._ngrams else tokens

    def _preprocess(self, inputs: Any) -> list[list[str]] | np.ndarray:
        """Token rows (ragged) with a split, else the standardized strings."""
        strings = as_string_array(inputs)
        if strings is None:
            raise InputTypeError(f"{self._where}: inputs must be strings (a str, a list or NumPy "
                                 f"array of str); received {type(inputs).__name__}"
                                 + (f" of dtype {inputs.dtype}" if hasattr(inputs, "dtype")
                                    else ""))
        strings = self._standardized(strings)
        if self._split is None:
            if self._ngrams:
                raise NotSupportedError(f"{self._where}: ngrams without a split is not "
                                        "supported by bigmodel")
            return strings
        if strings.ndim > 1:
            if strings.shape[-1] != 1:
                raise ShapeError(f"{self._where}: when using TextVectorization to tokenize "
                                 "strings, the input rank must be 1 or the last shape dimension "
                                 f"must be 1. Received: inputs.shape={strings.shape}")
            strings = strings[..., 0]
        if strings.ndim > 1:
            raise ShapeError(f"{self._where}: inputs of shape {strings.shape} are not supported "
                             "(a batch of strings, shape (batch,) or (batch, 1))")
        return [self._tokens(s) for s in strings.reshape(-1)] if strings.ndim else \
            self._tokens(str(strings.item()))

    # ---------------------------------------------------------------------------- adapt
    def reset_state(self) -> None:
        self._lookup_layer.reset_state()

    def update_state(self, data: Any) -> None:
        tokens = self._preprocess(data)
        if isinstance(tokens, list) and tokens and isinstance(tokens[0], str):
            tokens = [tokens]
        self._lookup_layer.update_state(tokens if isinstance(tokens, list) else tokens)

    def finalize_state(self) -> None:
        self._lookup_layer.finalize_state()

    def adapt(self, data: Any, batch_size: int | None = None, steps: int | None = None) -> None:
        """Learn the vocabulary from strings: an array / list (each item a document) or an
        iterable of batches (``(text, label)`` batches use the text)."""
        self.reset_state()
        if self._lookup_layer._has_input_vocabulary:
            raise ConfigError(f"{self._where}: cannot adapt layer after setting a static "
                              "vocabulary via `vocabulary` argument or `set_vocabulary()` method")
        if isinstance(data, (list, tuple, np.ndarray, str, bytes)) or \
                as_string_array(data) is not None:
            strings = as_string_array(data)
            if strings is None:
                raise InputTypeError(f"{self._where}: adapt data must be strings; received "
                                     f"{type(data).__name__}"
                                     + (f" of dtype {data.dtype}" if hasattr(data, "dtype")
                                        else ""))
            self.update_state(strings.reshape(-1, 1) if strings.ndim <= 1 else strings)
        else:
            try:
                batches = iter(data)
            except TypeError:
                raise InputTypeError(f"{self._where}: adapt data must be strings or an iterable "
                                     f"of string batches; received {type(data).__name__}") \
                    from None
            for i, batch in enumerate(batches):
                if steps is not None and i >= steps:
                    break
                self.update_state(batch[0] if isinstance(batch, tuple) else batch)
        self.finalize_state()

    # ------------------------------------------------------------------------------ call
    def call(self, inputs: Any, training: bool = False) -> torch.Tensor:
        tokens = self._preprocess(inputs)
        lookup = self._lookup_layer
        if isinstance(tokens, np.ndarray):  # no split: each string is one token
            return lookup.encode(lookup._lookup(tokens))
        single = bool(tokens) and isinstance(tokens[0], str)
        rows = [tokens] if single else tokens
        ids = [lookup._lookup(np.asarray(row, dtype=object)) for row in rows]
        if self._output_mode != "int":
            out = lookup.encode(ids)
            return out[0] if single else out
        length = self._output_sequence_length
        if length is None:
            length = max((len(r) for r in ids), default=0)
        out = np.zeros((len(ids), length), dtype=np.int64)
        for i, row in enumerate(ids):
            kept = row[:length]
            out[i, :len(kept)] = kept
        return torch.from_numpy(out[0] if single else out)

    def forward(self, inputs: Any, *args: Any, training: bool | None = None,
                **kwargs: Any) -> Any:
        return self.call(inputs)  # strings are not tensors: inputs reach ``call`` as they are

    def compute_output_shape(self, input_shape: Any) -> Any:
        shape = tuple(input_shape)
        if self._output_mode == "int":
            return (shape[0] if shape else None, self._output_sequence_length)
        if self._split is None:
            shape = shape + (1,) if len(shape) <= 1 else shape
        else:  # (batch, 1) strings are split into (batch, tokens), as the call does
            shape = (shape[:-1] if len(shape) > 1 and shape[-1] == 1 else shape) + (None,)
        return self._lookup_layer.compute_output_shape(shape)

    # ------------------------------------------------------------------------ vocabulary
    def get_vocabulary(self, include_special_tokens: bool = True) -> list[str]:
        return self._lookup_layer.get_vocabulary(include_special_tokens)

    def vocabulary_size(self) -> int:
        return self._lookup_layer.vocabulary_size()

    def set_vocabulary(self, vocabulary: Any, idf_weights: Any = None) -> None:
        self._lookup_layer.set_vocabulary(vocabulary, idf_weights=idf_weights)

    def keras_weight_entries(self, prefix: str) -> list[tuple[Any, str, str]]:
        """Keras's weights-file paths: TF-IDF weights under this layer's ``vars`` and its lookup
        layer's (Keras writes both)."""
        lookup = self._lookup_layer
        entries: list[tuple[Any, str, str]] = [(self, "", f"{prefix}vars")]
        if self._output_mode == "tf_idf":
            entries.append((lookup, "_idf", f"{prefix}vars/idf_weights"))
        return entries + lookup.keras_weight_entries(f"{prefix}_lookup_layer/")

    def save_assets(self, dir_path: str) -> None:
        self._lookup_layer.save_assets(dir_path)

    def load_assets(self, dir_path: str) -> None:
        self._lookup_layer.load_assets(dir_path)

    def get_config(self) -> dict[str, Any]:
        lookup = self._lookup_layer
        config = lookup.get_config()
        for arg, value in (("standardize", self._standardize), ("split", self._split)):
            if callable(value):
                raise NotSupportedError(f"{self._where}: a callable `{arg}` cannot be saved by "
                                        "bigmodel (Keras serializes registered functions)")
        return {**super().get_config(), "max_tokens": lookup.max_tokens,
                "standardize": self._standardize, "split": self._split,
                "ngrams": self._ngrams_arg, "output_mode": self._output_mode,
                "output_sequence_length": self._output_sequence_length,
                "pad_to_max_tokens": lookup.pad_to_max_tokens, "sparse": False, "ragged": False,
                "vocabulary": config["vocabulary"], "idf_weights": config["idf_weights"],
                "encoding": self._encoding, "vocabulary_size": self.vocabulary_size()}

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> TextVectorization:
        config = dict(config)
        if isinstance(config.get("ngrams"), list):
            config["ngrams"] = tuple(config["ngrams"])
        return cls(**config)
