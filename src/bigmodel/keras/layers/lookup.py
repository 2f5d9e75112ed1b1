"""``IndexLookup``, the machinery of ``layers.StringLookup`` / ``IntegerLookup`` (their classes:
``lookup_layers.py``): a vocabulary of tokens mapped to integer ids (or back, ``invert=True``),
learnt by ``adapt`` or given, with Keras 3's index layout, OOV and mask
handling, ordering after ``adapt`` and one-hot / multi-hot / count / TF-IDF outputs.

Keras runs these layers on TensorFlow; here they take Python strings, NumPy string arrays, lists
or :class:`~bigmodel.keras.string_inputs.StringIds` (how ``fit`` passes string arrays) and return
torch tensors (``invert=True``: StringLookup returns a list of str, as Keras on torch).
Non-``int`` outputs are float32 (Keras's symbolic spec; its TensorFlow kernels give int64).
"""

from __future__ import annotations

import collections
import os
from typing import Any

import numpy as np
import torch

from bigmodel.errors import ConfigError, DataError, InputTypeError, NotSupportedError
from bigmodel.keras.layers.base import Layer
from bigmodel.keras.layers.categorical_outputs import encode_ids
from bigmodel.keras.layers.hash_functions import fingerprint64, siphash_bucket
from bigmodel.keras.string_inputs import as_string_array

__all__ = ["IndexLookup"]

_MODES = ("int", "one_hot", "multi_hot", "count", "tf_idf")
_MASKED = np.iinfo(np.int64).max  # Keras: a mask token in a non-int mode maps past the depth




class IndexLookup(Layer):
    """The shared lookup machinery of :class:`StringLookup` and :class:`IntegerLookup` (Keras's
    ``IndexLookup``). Index layout (``int`` mode): ``[mask] [oov x num_oov_indices] tokens...``;
    in other modes the mask takes no index."""

    _string_keys = True

    def __init__(self, max_tokens: int | None, num_oov_indices: int, mask_token: Any,
                 oov_token: Any, vocabulary_dtype: str, vocabulary: Any = None,
                 idf_weights: Any = None, invert: bool = False, output_mode: str = "int",
                 sparse: bool = False, pad_to_max_tokens: bool = False,
                 oov_method: str = "floormod", salt: Any = None, **kwargs: Any):
        # Keras's config records the vocabulary size: a layer rebuilt from a file knows its
        # output depth before its vocabulary (an asset) is read.
        frozen_size = kwargs.pop("vocabulary_size", None)
        kwargs.pop("has_input_vocabulary", None)
        kwargs.pop("dtype", None)  # the outputs are int64 ids or float32 vectors
        super().__init__(**kwargs)
        where = f"Layer '{self.name}' ({type(self).__name__})"
        if max_tokens is not None and (isinstance(max_tokens, bool) or not isinstance(
                max_tokens, int) or max_tokens <= 1):
            raise ConfigError(f"{where}: if set, `max_tokens` must be greater than 1. Received: "
                              f"max_tokens={max_tokens!r}")
        if pad_to_max_tokens and max_tokens is None:
            raise ConfigError(f"{where}: if pad_to_max_tokens is True, must set `max_tokens`. "
                              f"Received: max_tokens={max_tokens}")
        if isinstance(num_oov_indices, bool) or not isinstance(num_oov_indices, int) or \
                num_oov_indices < 0:
            raise ConfigError(f"{where}: `num_oov_indices` must be greater than or equal to 0. "
                              f"Received: num_oov_indices={num_oov_indices!r}")
        if oov_method not in ("floormod", "farmhash"):
            raise ConfigError(f"{where}: oov_method must be 'floormod' or 'farmhash'. Received: "
                              f"oov_method={oov_method!r}")
        if salt is not None:
            if not self._string_keys and oov_method != "farmhash":
                raise ConfigError(f"{where}: `salt` can only be used when "
                                  f"`oov_method='farmhash'`. Received: oov_method={oov_method}")
            if isinstance(salt, (tuple, list)) and len(salt) == 2:
                salt = [int(s) for s in salt]
            elif isinstance(salt, int) and not isinstance(salt, bool):
                salt = [salt, salt]
            else:
                raise ConfigError(f"{where}: `salt` must be a tuple of 2 integers or a single "
                                  f"integer. Received: salt={salt!r}")
        output_mode = {"binary": "multi_hot", "tf-idf": "tf_idf"}.get(output_mode, output_mode)
        if output_mode not in _MODES:
            raise ConfigError(f"{where}: unknown output_mode; expected one of {_MODES}. "
                              f"Received: output_mode={output_mode!r}")
        if invert and output_mode != "int":
            raise ConfigError(f"{where}: `output_mode` must be 'int' when `invert` is true. "
                              f"Received: output_mode={output_mode}")
        if sparse:
            raise NotSupportedError(f"{where}: sparse=True is not supported by bigmodel (dense "
                                    "outputs only)")
        if idf_weights is not None and output_mode != "tf_idf":
            raise ConfigError(f"{where}: `idf_weights` should only be set if `output_mode` is "
                              f"'tf_idf'. Received: output_mode={output_mode}")
        if output_mode == "tf_idf" and vocabulary is not None and idf_weights is None:
            raise ConfigError(f"{where}: when specifying the `vocabulary` argument in TF-IDF "
                              "output mode, the `idf_weights` argument must also be provided")
        self.invert, self.max_tokens, self.num_oov_indices = invert, max_tokens, num_oov_indices
        self.mask_token, self.oov_token, self.output_mode = mask_token, oov_token, output_mode
        self.sparse, self.pad_to_max_tokens = False, pad_to_max_tokens
        self.vocabulary_dtype, self.oov_method, self.salt = vocabulary_dtype, oov_method, salt
        self.input_vocabulary = vocabulary if not isinstance(vocabulary, (str, os.PathLike)) \
            else None
        self.input_idf_weights = idf_weights
        self._has_input_vocabulary = vocabulary is not None
        self._tokens: list[Any] = []
        self._table: dict[Any, int] = {}
        self._frozen_vocab_size = frozen_size
        # TF-IDF weights: a tensor of the size the config implies, so that a layer rebuilt from a
        # .keras file reads them from its weights file (Keras's ``vars/idf_weights``).
        size = max_tokens if pad_to_max_tokens and max_tokens else (frozen_size or 0)
        self._idf = torch.zeros(size if output_mode == "tf_idf" else 0)
        self.reset_state()
        if vocabulary is not None:
            self.set_vocabulary(vocabulary, idf_weights)
        self.built = True

    @property
    def idf_weights(self) -> np.ndarray | None:
        """The TF-IDF weight of each index (``tf_idf`` mode), else None."""
        if self.output_mode != "tf_idf" or not self._idf.numel():
            return None
        return self._idf.detach().cpu().numpy()

    @idf_weights.setter
    def idf_weights(self, value: Any) -> None:
        self._idf = torch.as_tensor(np.asarray(value, dtype=np.float32))

    def keras_weight_entries(self, prefix: str) -> list[tuple[Any, str, str]]:
        """Keras's weights-file paths: an empty ``vars`` group, or ``vars/idf_weights`` in
        ``tf_idf`` mode (read by ``keras/keras_weights.py``)."""
        entries: list[tuple[Any, str, str]] = [(self, "", f"{prefix}vars")]
        if self.output_mode == "tf_idf":
            entries.append((self, "_idf", f"{prefix}vars/idf_weights"))
        return entries

    # -------------------------------------------------------------------- layout and vocabulary
    @property
    def _where(self) -> str:
        return f"Layer '{self.name}' ({type(self).__name__})"

    def _oov_start_index(self) -> int:
        return 1 if self.mask_token is not None and self.output_mode == "int" else 0

    def _token_start_index(self) -> int:
        return self._oov_start_index() + self.num_oov_indices

    def vocabulary_size(self) -> int:
        """Tokens plus the mask and OOV indices (Keras's ``vocabulary_size()``)."""
        return len(self._tokens) + self._token_start_index()

    def get_vocabulary(self, include_special_tokens: bool = True) -> list[Any]:
        """The token of each index (``[mask, oov..., tokens...]`` in ``int`` mode)."""
        vocab = [self.mask_token] * self._oov_start_index() + \
            [self.oov_token] * self.num_oov_indices + list(self._tokens)
        return vocab if include_special_tokens else vocab[self._token_start_index():]

    def _key(self, token: Any) -> Any:
        """A vocabulary entry as a key of the table (str for strings, int for integers)."""
        if self._string_keys:
            if isinstance(token, bytes):
                return token.decode("utf-8")
            if not isinstance(token, str):
                raise InputTypeError(f"{self._where}: vocabulary entries must be strings; "
                                     f"received {token!r}")
            return token
        if isinstance(token, (bool, np.bool_)) or not isinstance(token, (int, np.integer)):
            raise InputTypeError(f"{self._where}: vocabulary entries must be integers; "
                                 f"received {token!r}")
        return int(token)

    def _read_vocabulary_file(self, path: str | os.PathLike) -> list[Any]:
        try:
            with open(path, encoding="utf-8") as handle:
                lines = handle.read().splitlines()
        except OSError as err:
            raise ConfigError(f"{self._where}: vocabulary file {str(path)!r} cannot be read "
                              f"({err})") from err
        while lines and lines[-1] == "":
            lines.pop()
        if self._string_keys:
            return lines
        try:
            return [int(line) for line in lines]
        except ValueError as err:
            raise ConfigError(f"{self._where}: vocabulary file {str(path)!r} must hold one "
                              f"integer per line ({err})") from err

    def set_vocabulary(self, vocabulary: Any, idf_weights: Any = None) -> None:
        """Set the tokens (optionally led by the mask and OOV tokens, in Keras's order), or a
        vocabulary file (one token per line); TF-IDF mode needs ``idf_weights`` too.

        Raises:
            ConfigError: an empty vocabulary, repeated tokens, a mask / OOV token out of place,
                more than ``max_tokens``, idf_weights missing, unwanted or of another length.
        """
        if self.output_mode == "tf_idf" and idf_weights is None:
            raise ConfigError(f"{self._where}: `idf_weights` must be set if output_mode is "
                              "'tf_idf'")
        if self.output_mode != "tf_idf" and idf_weights is not None:
            raise ConfigError(f"{self._where}: `idf_weights` should only be set if output_mode "
                              f"is 'tf_idf'. Received: output_mode={self.output_mode}")
        if isinstance(vocabulary, (str, os.PathLike)):
            if self.output_mode == "tf_idf":
                raise ConfigError(f"{self._where}: output_mode 'tf_idf' does not support "
                                  "loading a vocabulary from file")
            vocabulary = self._read_vocabulary_file(vocabulary)
        if isinstance(vocabulary, torch.Tensor):
            vocabulary = vocabulary.tolist()
        vocabulary = [self._key(t) for t in np.asarray(vocabulary, dtype=object).reshape(-1)] \
            if not isinstance(vocabulary, list) else [self._key(t) for t in vocabulary]
        if not vocabulary:
            raise ConfigError(f"{self._where}: cannot set an empty vocabulary. Received: "
                              f"vocabulary={vocabulary}")
        token_start = self._token_start_index()
        special = [self.mask_token] * self._oov_start_index() + \
            [self.oov_token] * self.num_oov_indices
        found_special = vocabulary[:token_start] == special
        tokens = vocabulary[token_start:] if found_special else vocabulary
        repeated = [t for t, n in collections.Counter(tokens).items() if n > 1]
        if repeated:
            raise ConfigError(f"{self._where}: the passed vocabulary has at least one repeated "
                              f"term. Please uniquify your dataset. The repeated terms are: "
                              f"{repeated}")
        for token, kind, check in ((self.mask_token, "mask", True),
                                   (self.oov_token, "OOV", self.invert)):
            if check and token is not None and token in tokens:
                raise ConfigError(
                    f"{self._where}: found reserved {kind} token at unexpected location in "
                    "`vocabulary`. Either remove all mask and OOV tokens, or include them only "
                    f"at the start of the vocabulary in precisely this order: {special}. "
                    f"Received: {kind.lower()}_token={token!r}")
        if self.max_tokens is not None and token_start + len(tokens) > self.max_tokens:
            raise ConfigError(f"{self._where}: attempted to set a vocabulary larger than the "
                              f"maximum vocab size. Received vocabulary size is "
                              f"{token_start + len(tokens)}; `max_tokens` is {self.max_tokens}")
        if self.output_mode == "tf_idf":
            weights = np.asarray(idf_weights, dtype=np.float64)
            if weights.ndim != 1 or len(weights) != len(vocabulary):
                raise ConfigError(f"{self._where}: `idf_weights` must be 1-D and as long as the "
                                  f"vocabulary; received {weights.shape} for "
                                  f"{len(vocabulary)} tokens")
            front = (0, 0.0) if found_special else (token_start, float(np.mean(weights)))
            back = self.max_tokens - front[0] - len(weights) \
                if self.pad_to_max_tokens and self.max_tokens is not None else 0
            self.idf_weights = np.concatenate([np.full(front[0], front[1]), weights,
                                               np.zeros(back)]).astype(np.float32)
        self._set_tokens(tokens)

    def _set_tokens(self, tokens: list[Any]) -> None:
        start = self._token_start_index()
        self._tokens = list(tokens)
        self._table = {t: start + i for i, t in enumerate(self._tokens)}
        self._frozen_vocab_size = self.vocabulary_size()

    # ----------------------------------------------------------------------------- adapt
    def reset_state(self) -> None:
        self._counts: collections.Counter = collections.Counter()
        self._document_counts: collections.Counter = collections.Counter()
        self._num_documents = 0

    def _keys_array(self, data: Any, what: str) -> np.ndarray:
        """Inputs as a NumPy array of keys (object array of str, or int64)."""
        if self._string_keys and not self.invert:
            strings = as_string_array(data)
            if strings is None:
                raise InputTypeError(f"{self._where}: {what} must be strings (a str, a list or "
                                     f"NumPy array of str); received {_describe(data)}")
            return strings
        array = data.detach().cpu().numpy() if isinstance(data, torch.Tensor) else \
            np.asarray(data)
        if array.dtype.kind not in "iu" and not (array.dtype.kind == "f" and array.size and
                                                 np.all(array == np.round(array))):
            raise InputTypeError(f"{self._where}: {what} must be integers; received "
                                 f"{_describe(data)}")
        return array.astype(np.int64)

    def update_state(self, data: Any) -> None:
        """Count the tokens of one batch (rows are documents for TF-IDF)."""
        if self._has_input_vocabulary:
            raise ConfigError(f"{self._where}: cannot adapt layer after setting a static "
                              "vocabulary via `vocabulary` argument or `set_vocabulary()` method")
        rows = data if isinstance(data, list) and data and isinstance(data[0], list) else None
        if rows is None:
            array = self._keys_array(data, "adapt data")
            array = array.reshape(1, -1) if array.ndim <= 1 else array.reshape(len(array), -1)
            rows = [list(r) for r in array]
        for row in rows:
            self._counts.update(row)
            if self.output_mode == "tf_idf":
                self._document_counts.update(set(row))
        self._num_documents += len(rows)

    def finalize_state(self) -> None:
        """Keep the most frequent tokens (ties: the larger token first, as Keras sorts)."""
        if self._has_input_vocabulary or not self._counts:
            return
        for special in (self.mask_token, self.oov_token):
            self._counts.pop(special, None)
        items = list(self._counts.items())
        if self._string_keys:
            items.sort(key=lambda kv: (kv[1], kv[0].encode("utf-8")), reverse=True)
        else:
            items.sort(key=lambda kv: (kv[1], kv[0]), reverse=True)
        if self.max_tokens:
            items = items[:self.max_tokens - self._token_start_index()]
        tokens = [token for token, _ in items]
        if self.output_mode == "tf_idf":
            df = np.array([self._document_counts[t] for t in tokens], dtype=np.float64)
            idf = np.log(1 + self._num_documents / (1 + df))
            back = self.max_tokens - self._token_start_index() - len(idf) \
                if self.pad_to_max_tokens and self.max_tokens is not None else 0
            self.idf_weights = np.concatenate(
                [np.full(self._token_start_index(), idf.mean() if len(idf) else 0.0), idf,
                 np.zeros(back)]).astype(np.float32)
        self._set_tokens(tokens)
        self.reset_state()

    def adapt(self, data: Any, steps: int | None = None) -> None:
        """Learn the vocabulary from ``data``: an array / list (rank 1: one token per row), or
        an iterable of batches (``steps`` of them at most)."""
        if self._has_input_vocabulary:
            raise ConfigError(f"{self._where}: cannot adapt layer after setting a static "
                              "vocabulary via `vocabulary` argument or `set_vocabulary()` method")
        self.reset_state()
        if isinstance(data, (list, tuple, np.ndarray, torch.Tensor, str, bytes)):
            array = self._keys_array(data, "adapt data")
            self.update_state(array.reshape(-1, 1) if array.ndim == 1 else array)
        else:
            try:
                batches = iter(data)
            except TypeError:
                raise InputTypeError(f"{self._where}: adapt data must be an array, a list or "
                                     f"an iterable of batches; received {_describe(data)}") \
                    from None
            for i, batch in enumerate(batches):
                if steps is not None and i >= steps:
                    break
                self.update_state(batch[0] if isinstance(batch, tuple) else batch)
        self.finalize_state()

    # ------------------------------------------------------------------------------ call
    def _lookup(self, keys: np.ndarray) -> np.ndarray:
        """Ids of an array of keys (Keras's ``_lookup_dense``)."""
        flat = keys.reshape(-1)
        default = self._oov_start_index() if self.num_oov_indices == 1 else -1
        ids = np.fromiter((self._table.get(k, default) for k in flat), dtype=np.int64,
                          count=flat.size)
        if self.mask_token is not None:
            ids[np.array([k == self.mask_token for k in flat], dtype=bool)] = \
                0 if self.output_mode == "int" else _MASKED
        if self.num_oov_indices == 0 and (ids == -1).any():
            found = [flat[i] for i in np.nonzero(ids == -1)[0][:10]]
            raise DataError(f"{self._where}: when `num_oov_indices=0` all inputs should be in "
                            f"vocabulary, found OOV values {found}, consider setting "
                            "`num_oov_indices=1`")
        if self.num_oov_indices > 1:
            for i in np.nonzero(ids == -1)[0]:
                ids[i] = self._oov_start_index() + self._oov_bucket(flat[i])
        return ids.reshape(keys.shape)

    def _oov_bucket(self, key: Any) -> int:
        n = self.num_oov_indices
        if not self._string_keys and self.oov_method != "farmhash":
            return int(key) % n
        text = key if self._string_keys else str(int(key))
        if self.salt is not None:
            return siphash_bucket(text, n, self.salt)
        return fingerprint64(text) % n

    def _invert(self, ids: np.ndarray) -> np.ndarray:
        vocab = self.get_vocabulary()
        flat = ids.reshape(-1)
        out = np.empty(flat.size, dtype=object)
        out[:] = [vocab[i] if 0 <= i < len(vocab) else self.oov_token for i in flat]
        if self.mask_token is not None:
            out[flat == 0] = self.mask_token
        return out.reshape(ids.shape)

    def _depth(self) -> int:
        if self.pad_to_max_tokens and self.max_tokens is not None:
            return self.max_tokens
        if not self._tokens:
            raise DataError(f"{self._where}: when using output_mode={self.output_mode!r} and "
                            "pad_to_max_tokens=False, you must set the layer's vocabulary before "
                            "calling it. Either pass a `vocabulary` argument to the layer, or "
                            "call `adapt` with some sample data")
        return self.vocabulary_size()

    def encode(self, ids: np.ndarray | list[np.ndarray]) -> torch.Tensor:
        """Looked-up ids (an array, or ragged rows) in the layer's output mode."""
        if self.output_mode == "int":
            return torch.from_numpy(np.asarray(ids, dtype=np.int64))
        mode = "count" if self.output_mode == "tf_idf" else self.output_mode
        out = encode_ids(ids, mode, self._depth(), self._where)
        if self.output_mode == "tf_idf":
            out = out * torch.from_numpy(self.idf_weights[:out.shape[-1]])
        return out

    def call(self, inputs: Any, training: bool = False) -> Any:
        keys = self._keys_array(inputs, "inputs")
        if self.invert:
            tokens = self._invert(keys)
            # Keras on torch: a list of str (nested for a batch of rows) / an int64 tensor
            return tokens.tolist() if self._string_keys else \
                torch.from_numpy(tokens.astype(np.int64))
        return self.encode(self._lookup(keys))

    def forward(self, inputs: Any, *args: Any, training: bool | None = None,
                **kwargs: Any) -> Any:
        # Strings are not tensors: the inputs reach ``call`` as they are.
        return self.call(inputs)

    def compute_output_shape(self, input_shape: Any) -> Any:
        shape = tuple(input_shape)
        if self.output_mode == "int":
            return shape
        depth = self.max_tokens if self.pad_to_max_tokens else self._frozen_vocab_size
        if self.output_mode == "one_hot":
            return (*shape[:-1], depth) if len(shape) > 1 and shape[-1] == 1 else (*shape, depth)
        return (*shape[:-1], depth)

    # ---------------------------------------------------------------------------- saving
    def save_assets(self, dir_path: str) -> None:
        """Keras's asset: ``vocabulary.txt`` (every index's token, one a line) when the
        vocabulary was adapted rather than given."""
        if self.input_vocabulary is not None:
            return
        with open(os.path.join(dir_path, "vocabulary.txt"), "w", encoding="utf-8") as handle:
            handle.write("\n".join(str(w) for w in self.get_vocabulary()))

    def load_assets(self, dir_path: str) -> None:
        if self.input_vocabulary is not None:
            return
        values = self._read_vocabulary_file(os.path.join(dir_path, "vocabulary.txt"))
        # TF-IDF: the weights came with the weights file, which is read before the assets
        weights = self.idf_weights
        self.set_vocabulary(values, idf_weights=None if weights is None else
                            weights[:len(values)])  # padded to max_tokens again if asked

    def get_config(self) -> dict[str, Any]:
        vocabulary = self.input_vocabulary
        if isinstance(vocabulary, (np.ndarray, torch.Tensor)):
            vocabulary = vocabulary.tolist()
        weights = self.input_idf_weights
        if isinstance(weights, (np.ndarray, torch.Tensor)):
            weights = weights.tolist()
        return {**super().get_config(), "invert": self.invert, "max_tokens": self.max_tokens,
                "num_oov_indices": self.num_oov_indices, "oov_token": self.oov_token,
                "mask_token": self.mask_token, "output_mode": self.output_mode,
                "sparse": self.sparse, "pad_to_max_tokens": self.pad_to_max_tokens,
                "vocabulary_dtype": self.vocabulary_dtype, "idf_weights": weights,
                "vocabulary": vocabulary, "vocabulary_size": self.vocabulary_size(),
                "oov_method": self.oov_method, "salt": self.salt}


def _describe(value: Any) -> str:
    dtype = getattr(value, "dtype", None)
    return f"{type(value).__name__}" + (f" of dtype {dtype}" if dtype is not None else "")
