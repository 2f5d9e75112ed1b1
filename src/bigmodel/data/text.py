"""Word-level tokenizer and vocabulary, saved and loaded as JSON.

>>> vocab = WordVocabulary.build(["The cat sat.", "The dog ran!"], min_count=1)
>>> vocab.encode("the cat ran")          # ids; unknown words map to the OOV entry
>>> ids = vocab.encode_batch(texts, max_length=64)   # (N, L) int64, right-padded with pad id 0

Tokenization: lower-case (optional), then words ``[a-z0-9]+('[a-z0-9]+)*`` (``don't`` is one word)
and every other non-space character on its own (punctuation carries signal in short texts). Ids:
``0`` is the padding token ``"<pad>"``; ``1`` the out-of-vocabulary token ``"<unk>"`` when there is
one; then words by decreasing count (ties alphabetical), so the same texts always give the same ids.

Without an OOV entry (``oov_token=None``) an unknown word is a :class:`~bigmodel.errors.DataError`
naming the word, instead of being silently dropped.

:class:`WordVocabulary` is the ``word-vocabulary`` kind of :class:`bigmodel.data.tokenizers.Tokenizer`
(``unk_id`` is ``oov_id``; it has no BOS/EOS/CLS/SEP), so
:func:`bigmodel.data.tokenizers.load_tokenizer` reads its files too.
"""

from __future__ import annotations

import os
import re
from collections import Counter
from collections.abc import Iterable, Sequence
from pathlib import Path

import numpy as np

from bigmodel.errors import ConfigError, DataError, DataFileError, InputTypeError
from bigmodel.utils.io import atomic_write_json
from bigmodel.utils.loading import read_json

__all__ = ["WordVocabulary", "tokenize"]

FORMAT_NAME = "bigmodel-word-vocabulary"
KIND = "word-vocabulary"
_TOKEN = re.compile(r"[^\W_]+(?:'[^\W_]+)*|[^\w\s]|_", re.UNICODE)


def tokenize(text: str, lowercase: bool = True) -> list[str]:
    """Split ``text`` into words and single punctuation characters.

    Raises:
        InputTypeError: ``text`` is not a string.
    """
    if not isinstance(text, str):
        raise InputTypeError(f"tokenize expects a str; received {type(text).__name__}")
    return _TOKEN.findall(text.lower() if lowercase else text)


class WordVocabulary:
    """A mapping word <-> id with a padding entry (id 0) and an optional OOV entry (id 1).

    Args:
        words: the vocabulary words in id order, without the special tokens.
        oov_token: the out-of-vocabulary token, or None for no OOV entry (unknown words are errors).
        pad_token: the padding token (always id 0).
        lowercase: lower-case texts before looking words up.

    Raises:
        ConfigError: duplicate words, or a word equal to a special token.
    """

    kind = KIND
    bos_id: int | None = None
    eos_id: int | None = None
    cls_id: int | None = None
    sep_id: int | None = None

    def __init__(self, words: Sequence[str], oov_token: str | None = "<unk>",
                 pad_token: str = "<pad>", lowercase: bool = True) -> None:
        if not isinstance(pad_token, str) or not pad_token:
            raise ConfigError(f"WordVocabulary: 'pad_token' must be a non-empty str; received "
                              f"{pad_token!r}")
        if oov_token is not None and (not isinstance(oov_token, str) or not oov_token
                                      or oov_token == pad_token):
            raise ConfigError(f"WordVocabulary: 'oov_token' must be None or a non-empty str other "
                              f"than the pad token; received {oov_token!r}")
        self.pad_token = pad_token
        self.oov_token = oov_token
        self.lowercase = bool(lowercase)
        specials = [pad_token] + ([oov_token] if oov_token is not None else [])
        self.itos: list[str] = specials + list(words)
        self.stoi: dict[str, int] = {}
        for index, word in enumerate(self.itos):
            if not isinstance(word, str) or not word:
                raise ConfigError(f"WordVocabulary: word {index} must be a non-empty str; "
                                  f"received {word!r}")
            if word in self.stoi:
                raise ConfigError(f"WordVocabulary: {word!r} appears twice (ids {self.stoi[word]} "
                                  f"and {index}); special tokens cannot be words")
            self.stoi[word] = index

    # -- construction -----------------------------------------------------------------------------

    @classmethod
    def build(cls, texts: Iterable[str], min_count: int = 1, max_size: int | None = None,
              oov_token: str | None = "<unk>", lowercase: bool = True) -> WordVocabulary:
        """The words of ``texts`` seen at least ``min_count`` times, the most frequent first.

        Args:
            max_size: at most this many ids in total, special tokens included.

        Raises:
            ConfigError: ``min_count < 1`` or ``max_size`` too small for the special tokens.
            DataError: no text, or an empty text.
        """
        if not isinstance(min_count, int) or isinstance(min_count, bool) or min_count < 1:
            raise ConfigError(f"WordVocabulary.build: 'min_count' must be an int >= 1; received "
                              f"{min_count!r}")
        specials = 1 + (oov_token is not None)
        if max_size is not None and (not isinstance(max_size, int) or max_size <= specials):
            raise ConfigError(f"WordVocabulary.build: 'max_size' must be an int > {specials} (the "
                              f"special tokens take {specials} ids); received {max_size!r}")
        counts: Counter[str] = Counter()
        seen = 0
        for index, text in enumerate(texts):
            tokens = tokenize(text, lowercase)
            if not tokens:
                raise DataError(f"WordVocabulary.build: text {index} is empty (no tokens): "
                                f"{text!r}")
            counts.update(tokens)
            seen += 1
        if seen == 0:
            raise DataError("WordVocabulary.build: received no texts")
        words = sorted((w for w, c in counts.items() if c >= min_count), key=lambda w: (-counts[w], w))
        if max_size is not None:
            words = words[: max_size - specials]
        return cls(words, oov_token=oov_token, lowercase=lowercase)

    # -- lookup -----------------------------------------------------------------------------------

    def __len__(self) -> int:
        return len(self.itos)

    def __contains__(self, word: object) -> bool:
        return word in self.stoi

    @property
    def pad_id(self) -> int:
        return 0

    @property
    def oov_id(self) -> int | None:
        return None if self.oov_token is None else 1

    @property
    def unk_id(self) -> int | None:
        """The protocol's name of :attr:`oov_id`."""
        return self.oov_id

    @property
    def vocab_size(self) -> int:
        return len(self.itos)

    def encode(self, text: str) -> list[int]:
        """Token ids of ``text``.

        Raises:
            InputTypeError: not a string.
            DataError: the text has no tokens, or holds a word outside the vocabulary while there
                is no OOV entry.
        """
        tokens = tokenize(text, self.lowercase)
        if not tokens:
            raise DataError(f"WordVocabulary.encode: the text is empty (no tokens): {text!r}")
        ids = []
        for token in tokens:
            index = self.stoi.get(token, self.oov_id)
            if index is None:
                raise DataError(f"WordVocabulary.encode: unknown word {token!r} and the vocabulary "
                                "has no OOV entry (build it with oov_token='<unk>' to map unknown "
                                "words to one id)")
            ids.append(index)
        return ids

    def encode_batch(self, texts: Sequence[str], max_length: int | None = None) -> np.ndarray:
        """Right-padded ids ``(N, L)`` int64; ``L`` is the longest text, capped at ``max_length``
        (longer texts keep their first ``max_length`` tokens).

        Raises:
            ConfigError: ``max_length < 1``.
            DataError: no texts, an empty text (names its index) or an unknown word without OOV.
        """
        if max_length is not None and (not isinstance(max_length, int) or max_length < 1):
            raise ConfigError(f"encode_batch: 'max_length' must be a positive int or None; "
                              f"received {max_length!r}")
        if isinstance(texts, str):
            raise InputTypeError("encode_batch expects a sequence of texts; received one str "
                                 "(use encode for a single text)")
        if len(texts) == 0:
            raise DataError("encode_batch: received no texts")
        encoded = []
        for index, text in enumerate(texts):
            try:
                encoded.append(self.encode(text)[:max_length])
            except DataError as exc:
                raise DataError(f"text {index}: {exc}") from None
        width = max(len(ids) for ids in encoded)
        out = np.full((len(encoded), width), self.pad_id, dtype=np.int64)
        for row, ids in enumerate(encoded):
            out[row, : len(ids)] = ids
        return out

    def decode(self, ids: Iterable[int]) -> str:
        """The words of ``ids`` joined by single spaces, padding skipped.

        Raises:
            DataError: an id outside the vocabulary.
        """
        words = []
        for index in ids:
            index = int(index)
            if not 0 <= index < len(self.itos):
                raise DataError(f"WordVocabulary.decode: id {index} is outside [0, {len(self)})")
            if index != self.pad_id:
                words.append(self.itos[index])
        return " ".join(words)

    # -- files ------------------------------------------------------------------------------------

    def to_dict(self) -> dict:
        specials = 1 + (self.oov_token is not None)
        return {"format": FORMAT_NAME, "kind": KIND, "version": 1, "pad_token": self.pad_token,
                "oov_token": self.oov_token, "lowercase": self.lowercase,
                "words": self.itos[specials:]}

    def save(self, path: str | os.PathLike) -> Path:
        """Write the vocabulary as JSON (atomically)."""
        path = Path(path)
        atomic_write_json(path, self.to_dict())
        return path

    @classmethod
    def load(cls, path: str | os.PathLike) -> WordVocabulary:
        """Read a vocabulary written by :meth:`save`.

        Raises:
            DataFileError: the file is missing, not JSON or not a vocabulary file.
        """
        path = Path(path)
        if not path.is_file():
            raise DataFileError(f"No vocabulary file at {path}")
        try:
            spec = read_json(path, "Vocabulary", error=DataFileError)  # bounded size and depth
        except DataFileError as exc:
            raise DataFileError(f"Cannot read vocabulary: {exc}") from None
        return cls.from_document(spec, path)

    @classmethod
    def from_document(cls, spec: object, path: str | os.PathLike = "<document>") -> WordVocabulary:
        """The vocabulary of a parsed vocabulary file (``path`` names it in errors).

        Raises:
            DataFileError: not a vocabulary document, or invalid words (duplicates, non-strings).
        """
        if not isinstance(spec, dict) or spec.get("format") != FORMAT_NAME \
                or not isinstance(spec.get("words"), list):
            raise DataFileError(f"{path} is not a bigmodel word vocabulary (expected \"format\": "
                                f"\"{FORMAT_NAME}\" and a \"words\" list)")
        try:
            return cls(spec["words"], oov_token=spec.get("oov_token"),
                       pad_token=spec.get("pad_token", "<pad>"),
                       lowercase=bool(spec.get("lowercase", True)))
        except ConfigError as exc:
            raise DataFileError(f"{path}: {exc}") from None
