"""Character-level and BPE tokenizers with the same small API, saved and loaded as JSON.

Both reserve the special tokens ``<pad>`` = 0, ``<bos>`` = 1, ``<eos>`` = 2, ``<unk>`` = 3 (the ids
the sequence models default to), then number the learned vocabulary.

>>> tok = CharTokenizer.train(["hello", "world"])
>>> ids = tok.encode("hello", add_eos=True)         # [.., 2]
>>> tok.decode(ids)                                  # 'hello' (special tokens dropped)
>>> batch = tok.encode_batch(["hi", "hello"], add_bos=True, add_eos=True)   # (2, 7) int64, 0-padded
>>> tok.save("tok.json"); load_tokenizer("tok.json")

:class:`BPETokenizer` is byte-level BPE (every string round-trips, unknown characters included)
trained locally with the Hugging Face ``tokenizers`` library.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from bigmodel.errors import ConfigError, DataError, DataFileError, InputTypeError
from bigmodel.utils.io import atomic_write_json
from bigmodel.utils.loading import read_json

__all__ = ["BOS", "BPETokenizer", "CharTokenizer", "EOS", "PAD", "SPECIAL_TOKENS", "Tokenizer",
           "UNK", "WordTokenizer", "load_tokenizer"]

PAD, BOS, EOS, UNK = "<pad>", "<bos>", "<eos>", "<unk>"
SPECIAL_TOKENS = (PAD, BOS, EOS, UNK)
FORMAT_NAME = "bigmodel-tokenizer"


def _check_text(text: Any, owner: str) -> str:
    if not isinstance(text, str):
        raise InputTypeError(f"{owner}: expected a str; received {type(text).__name__}")
    return text


def _texts(texts: Iterable[str], owner: str) -> list[str]:
    if isinstance(texts, str):
        raise InputTypeError(f"{owner}: expected a list of texts; received a single str "
                             "(wrap it in a list)")
    out = [_check_text(t, owner) for t in texts]
    if not out:
        raise DataError(f"{owner}: received no texts to learn a vocabulary from")
    return out


class Tokenizer:
    """Common API: ``encode``, ``decode``, ``encode_batch``, ``save``; special ids as attributes."""

    pad_id, bos_id, eos_id, unk_id = 0, 1, 2, 3
    kind = "tokenizer"

    @property
    def vocab_size(self) -> int:  # pragma: no cover - abstract
        raise NotImplementedError

    def _encode(self, text: str) -> list[int]:  # pragma: no cover - abstract
        raise NotImplementedError

    def _decode(self, ids: list[int]) -> str:  # pragma: no cover - abstract
        raise NotImplementedError

    def encode(self, text: str, add_bos: bool = False, add_eos: bool = False) -> list[int]:
        """Token ids of ``text``, optionally framed by BOS / EOS."""
        ids = self._encode(_check_text(text, f"{type(self).__name__}.encode"))
        return ([self.bos_id] if add_bos else []) + ids + ([self.eos_id] if add_eos else [])

    def decode(self, ids: Iterable[int], skip_special_tokens: bool = True) -> str:
        """Text of ``ids``; stops at the first EOS and drops special tokens when asked."""
        ids = [int(i) for i in np.asarray(list(ids)).reshape(-1)]
        bad = [i for i in ids if not 0 <= i < self.vocab_size]
        if bad:
            raise DataError(f"{type(self).__name__}.decode: id {bad[0]} is outside the vocabulary "
                            f"[0, {self.vocab_size})")
        if skip_special_tokens:
            if self.eos_id in ids:
                ids = ids[: ids.index(self.eos_id)]
            ids = [i for i in ids if i not in (self.pad_id, self.bos_id, self.eos_id)]
        return self._decode(ids)

    def encode_batch(self, texts: Sequence[str], add_bos: bool = False, add_eos: bool = False,
                     max_length: int | None = None) -> np.ndarray:
        """``(N, L)`` int64 ids right-padded with ``pad_id``.

        Raises:
            DataError: a text is longer than ``max_length`` tokens (nothing is cut silently).
        """
        rows = [self.encode(t, add_bos, add_eos) for t in _texts(texts, type(self).__name__)]
        width = max(len(r) for r in rows)
        if max_length is not None:
            longest = int(np.argmax([len(r) for r in rows]))
            if width > max_length:
                raise DataError(f"{type(self).__name__}.encode_batch: text {longest} has {width} "
                                f"tokens, more than max_length={max_length}")
            width = max_length
        out = np.full((len(rows), max(width, 1)), self.pad_id, dtype=np.int64)
        for index, row in enumerate(rows):
            out[index, : len(row)] = row
        return out

    def decode_batch(self, ids: Any, skip_special_tokens: bool = True) -> list[str]:
        return [self.decode(row, skip_special_tokens) for row in ids]

    def _state(self) -> dict[str, Any]:  # pragma: no cover - abstract
        raise NotImplementedError

    def save(self, path: str | os.PathLike) -> Path:
        """Write the tokenizer as JSON, atomically."""
        path = Path(path)
        atomic_write_json(path, {"format": FORMAT_NAME, "type": self.kind, **self._state()})
        return path

    def __len__(self) -> int:
        return self.vocab_size


class CharTokenizer(Tokenizer):
    """One token per character; characters not seen in training map to ``<unk>``.

    Args:
        chars: the vocabulary characters in id order (ids start after the special tokens).
    """

    kind = "char"

    def __init__(self, chars: Sequence[str]) -> None:
        chars = list(chars)
        if any(not isinstance(c, str) or len(c) != 1 for c in chars) or len(set(chars)) != len(chars):
            raise ConfigError("CharTokenizer: 'chars' must be distinct single characters")
        self.chars = chars
        offset = len(SPECIAL_TOKENS)
        self._ids = {c: i + offset for i, c in enumerate(chars)}

    @classmethod
    def train(cls, texts: Iterable[str]) -> CharTokenizer:
        """The sorted set of characters of ``texts``."""
        return cls(sorted(set("".join(_texts(texts, "CharTokenizer.train")))))

    @property
    def vocab_size(self) -> int:
        return len(SPECIAL_TOKENS) + len(self.chars)

    def _encode(self, text: str) -> list[int]:
        ids, unk = self._ids, self.unk_id
        return [ids.get(c, unk) for c in text]

    def _decode(self, ids: list[int]) -> str:
        offset = len(SPECIAL_TOKENS)
        return "".join(SPECIAL_TOKENS[i] if i < offset else self.chars[i - offset] for i in ids)

    def _state(self) -> dict[str, Any]:
        return {"chars": self.chars}


class WordTokenizer(Tokenizer):
    """One token per whitespace-separated word; decoding joins words with single spaces.

    For closed vocabularies such as number words; unknown words map to ``<unk>``.
    """

    kind = "word"

    def __init__(self, words: Sequence[str]) -> None:
        words = list(words)
        if any(not isinstance(w, str) or not w or w != w.strip() or " " in w for w in words) \
                or len(set(words)) != len(words):
            raise ConfigError("WordTokenizer: 'words' must be distinct non-empty words without "
                              "spaces")
        self.words = words
        offset = len(SPECIAL_TOKENS)
        self._ids = {w: i + offset for i, w in enumerate(words)}

    @classmethod
    def train(cls, texts: Iterable[str]) -> WordTokenizer:
        """The sorted set of words of ``texts``."""
        return cls(sorted({w for t in _texts(texts, "WordTokenizer.train") for w in t.split()}))

    @property
    def vocab_size(self) -> int:
        return len(SPECIAL_TOKENS) + len(self.words)

    def _encode(self, text: str) -> list[int]:
        ids, unk = self._ids, self.unk_id
        return [ids.get(w, unk) for w in text.split()]

    def _decode(self, ids: list[int]) -> str:
        offset = len(SPECIAL_TOKENS)
        return " ".join(SPECIAL_TOKENS[i] if i < offset else self.words[i - offset] for i in ids)

    def _state(self) -> dict[str, Any]:
        return {"words": self.words}


class BPETokenizer(Tokenizer):
    """Byte-level byte-pair encoding (GPT-2 style) on the ``tokenizers`` library.

    Build one with :meth:`train`; ``BPETokenizer(tokenizer)`` wraps a ``tokenizers.Tokenizer``
    whose first four ids are the special tokens.
    """

    kind = "bpe"

    def __init__(self, tokenizer: Any) -> None:
        for expected, token in enumerate(SPECIAL_TOKENS):
            if tokenizer.token_to_id(token) != expected:
                raise ConfigError(f"BPETokenizer: the wrapped tokenizer must map {token} to id "
                                  f"{expected}; it maps it to {tokenizer.token_to_id(token)}")
        self.tokenizer = tokenizer

    @classmethod
    def train(cls, texts: Iterable[str], vocab_size: int = 1000, min_frequency: int = 2,
              ) -> BPETokenizer:
        """Learn merges on ``texts`` until ``vocab_size`` tokens (specials and 256 bytes included).

        Raises:
            ConfigError: ``vocab_size`` smaller than the 260 specials + bytes.
        """
        from tokenizers import Tokenizer as HFTokenizer
        from tokenizers import decoders, models, pre_tokenizers, trainers

        floor = len(SPECIAL_TOKENS) + 256
        if not isinstance(vocab_size, int) or vocab_size < floor:
            raise ConfigError(f"BPETokenizer.train: vocab_size must be an int >= {floor} (special "
                              f"tokens + 256 bytes); received {vocab_size!r}")
        texts = _texts(texts, "BPETokenizer.train")
        tokenizer = HFTokenizer(models.BPE(unk_token=UNK))
        tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
        tokenizer.decoder = decoders.ByteLevel()
        trainer = trainers.BpeTrainer(vocab_size=vocab_size, min_frequency=min_frequency,
                                      special_tokens=list(SPECIAL_TOKENS), show_progress=False,
                                      initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
        tokenizer.train_from_iterator(texts, trainer=trainer)
        return cls(tokenizer)

    @property
    def vocab_size(self) -> int:
        return self.tokenizer.get_vocab_size()

    def _encode(self, text: str) -> list[int]:
        return self.tokenizer.encode(text, add_special_tokens=False).ids

    def _decode(self, ids: list[int]) -> str:
        return self.tokenizer.decode(ids, skip_special_tokens=False)

    def _state(self) -> dict[str, Any]:
        return {"tokenizer": json.loads(self.tokenizer.to_str())}


def load_tokenizer(path: str | os.PathLike) -> Tokenizer:
    """Read a tokenizer written by ``save``.

    Raises:
        DataFileError: missing, unreadable or not a bigmodel tokenizer file.
    """
    path = Path(path)
    try:  # bounded size and depth; a pickle payload is refused unread
        state = read_json(path, "Tokenizer file", error=DataFileError)
    except DataFileError as exc:
        raise DataFileError(f"Cannot read tokenizer file: {exc}") from None
    if not isinstance(state, dict) or state.get("format") != FORMAT_NAME:
        raise DataFileError(f"{path} is not a bigmodel tokenizer file (expected \"format\": "
                            f"\"{FORMAT_NAME}\")")
    try:
        if state.get("type") == "char":
            return CharTokenizer(state["chars"])
        if state.get("type") == "bpe":
            from tokenizers import Tokenizer as HFTokenizer

            return BPETokenizer(HFTokenizer.from_str(json.dumps(state["tokenizer"])))
        if state.get("type") == "word":
            return WordTokenizer(state["words"])
    except Exception as exc:  # any malformed content: report the file
        raise DataFileError(f"{path}: tokenizer data is invalid: {exc}") from None
    raise DataFileError(f"{path}: unknown tokenizer type {state.get('type')!r} (expected char, word or bpe)")
