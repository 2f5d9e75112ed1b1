"""One ``Tokenizer`` protocol for every tokenizer of bigmodel, the char / word / BPE tokenizers,
and :func:`load_tokenizer`, which reads any saved tokenizer back by its kind.

>>> tok = CharTokenizer.train(["hello", "world"])
>>> ids = tok.encode("hello", add_eos=True)         # [.., 2]
>>> tok.decode(ids)                                  # 'hello' (special tokens dropped)
>>> batch = tok.encode_batch(["hi", "hello"], add_bos=True, add_eos=True)   # (2, 7) int64, 0-padded
>>> tok.save("tok.json"); load_tokenizer("tok.json")
>>> isinstance(tok, Tokenizer)                       # True, as for every family below

Every tokenizer answers :class:`Tokenizer`: ``encode(text) -> list[int]``, ``decode(ids) -> str``,
``encode_batch(texts, max_length) -> (N, L) int64`` right-padded with ``pad_id``, ``vocab_size``
(and ``len``), ``itos`` (token strings by id), the special ids ``pad_id``, ``unk_id``, ``bos_id``,
``eos_id``, ``cls_id``, ``sep_id`` (None where the family has no such token), ``kind`` and
``save(path)``. The protocol unifies the surface, not the id layouts: each family keeps the ids its
models and saved run directories were made with.

    kind             class               pad  unk         bos  eos  cls  sep  encode / encode_batch
    ---------------  ------------------  ---  ----------  ---  ---  ---  ---  ----------------------
    char             CharTokenizer       0    3           1    2    -    -    BOS/EOS on request; a
    word             WordTokenizer       0    3           1    2    -    -    text longer than
    bpe              BPETokenizer        0    3           1    2    -    -    max_length: DataError
    word-vocabulary  WordVocabulary      0    1 or None   -    -    -    -    cut to max_length
    wordpiece        WordPieceTokenizer  0    100         -    -    101  102  [CLS] .. [SEP]; cut,
                                                                              [SEP] kept

(``wordpiece`` ids are the file's ``[PAD]`` / ``[UNK]`` / ``[CLS]`` / ``[SEP]``; the numbers are
MiniLM's and BERT-base's. ``char``/``word`` number their sorted vocabulary after the four
specials; ``word-vocabulary`` numbers words by decreasing count after ``<pad>`` (and
``<unk>``). The recipes' pretrained-embeddings encoder,
:class:`bigmodel.recipes.text_data.PretrainedTextEncoder`, is a ``wordpiece`` tokenizer with a name
that refuses texts with no token.)

Files are JSON, never pickles. ``char``/``word``/``bpe`` and ``word-vocabulary`` files carry a
``"kind"`` field (files written before it are recognised by their ``"format"``: ``"type"`` names a
char/word/bpe tokenizer; ``"bigmodel-word-vocabulary"`` a word vocabulary); a ``wordpiece`` file
stays the checkpoint's own Hugging Face ``tokenizer.json`` (Hugging Face tools refuse unknown keys),
recognised by its ``model.type``. :func:`load_tokenizer` reads through
:func:`bigmodel.utils.loading.read_json` (size and depth bounded, pickles refused unread), confines a
recorded file name to its folder, and checks the content (distinct tokens, integer ids ``0 .. n-1``)
before anything is built: every problem is a :class:`~bigmodel.errors.DataFileError` naming the file.

:class:`BPETokenizer` is byte-level BPE (every string round-trips, unknown characters included)
trained locally with the Hugging Face ``tokenizers`` library.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import numpy as np

from bigmodel.data.text import FORMAT_NAME as VOCABULARY_FORMAT
from bigmodel.data.text import WordVocabulary
from bigmodel.data.wordpiece import WordPieceTokenizer, check_vocabulary_ids, is_wordpiece_document
from bigmodel.errors import ConfigError, DataError, DataFileError, InputTypeError
from bigmodel.utils.documents import MAX_JSON_BYTES
from bigmodel.utils.io import atomic_write_json
from bigmodel.utils.loading import confined_path, read_json

__all__ = ["BOS", "BPETokenizer", "BaseTokenizer", "CharTokenizer", "DEFAULT_FILE", "EOS", "KINDS",
           "PAD", "SPECIAL_TOKENS", "Tokenizer", "UNK", "WordTokenizer", "load_tokenizer",
           "tokenizer_kind"]

PAD, BOS, EOS, UNK = "<pad>", "<bos>", "<eos>", "<unk>"
SPECIAL_TOKENS = (PAD, BOS, EOS, UNK)
FORMAT_NAME = "bigmodel-tokenizer"
KINDS = ("char", "word", "bpe", "word-vocabulary", "wordpiece")
DEFAULT_FILE = "tokenizer.json"
MAX_TOKENIZER_BYTES = MAX_JSON_BYTES  # a 50k-token BPE file is ~2 MB


@runtime_checkable
class Tokenizer(Protocol):
    """What every bigmodel tokenizer answers (see the table of the module for each family's ids).

    ``encode(text)`` gives the ids a model of the family reads (``wordpiece`` frames them with
    ``[CLS]``/``[SEP]``); ``decode(ids)`` the text, special tokens dropped; ``encode_batch(texts,
    max_length)`` a ``(N, L)`` int64 array right-padded with ``pad_id``; ``save(path)`` writes JSON
    that :func:`load_tokenizer` reads back with identical ids.
    """

    kind: str
    pad_id: int
    unk_id: int | None
    bos_id: int | None
    eos_id: int | None
    cls_id: int | None
    sep_id: int | None

    @property
    def vocab_size(self) -> int: ...

    @property
    def itos(self) -> list[str]: ...

    def __len__(self) -> int: ...

    def encode(self, text: str) -> list[int]: ...

    def decode(self, ids: Iterable[int]) -> str: ...

    def encode_batch(self, texts: Sequence[str], max_length: int | None = None) -> np.ndarray: ...

    def save(self, path: str | os.PathLike) -> Path: ...


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


class BaseTokenizer:
    """The shared base of the char, word and BPE tokenizers: ``<pad>`` = 0, ``<bos>`` = 1,
    ``<eos>`` = 2, ``<unk>`` = 3 (the ids the sequence models default to), then the vocabulary."""

    pad_id, bos_id, eos_id, unk_id = 0, 1, 2, 3
    cls_id: int | None = None
    sep_id: int | None = None
    kind = "tokenizer"

    @property
    def itos(self) -> list[str]:  # pragma: no cover - abstract
        raise NotImplementedError

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

    def encode_batch(self, texts: Sequence[str], max_length: int | None = None, *,
                     add_bos: bool = False, add_eos: bool = False) -> np.ndarray:
        """``(N, L)`` int64 ids right-padded with ``pad_id`` (``L = max_length`` when given).

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
        """Write the tokenizer as JSON, atomically (``"type"``: its kind, as before the protocol)."""
        path = Path(path)
        atomic_write_json(path, {"format": FORMAT_NAME, "kind": self.kind, "type": self.kind,
                                 **self._state()})
        return path

    def __len__(self) -> int:
        return self.vocab_size


class CharTokenizer(BaseTokenizer):
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

    @property
    def itos(self) -> list[str]:
        return [*SPECIAL_TOKENS, *self.chars]

    def _encode(self, text: str) -> list[int]:
        ids, unk = self._ids, self.unk_id
        return [ids.get(c, unk) for c in text]

    def _decode(self, ids: list[int]) -> str:
        offset = len(SPECIAL_TOKENS)
        return "".join(SPECIAL_TOKENS[i] if i < offset else self.chars[i - offset] for i in ids)

    def _state(self) -> dict[str, Any]:
        return {"chars": self.chars}


class WordTokenizer(BaseTokenizer):
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

    @property
    def itos(self) -> list[str]:
        return [*SPECIAL_TOKENS, *self.words]

    def _encode(self, text: str) -> list[int]:
        ids, unk = self._ids, self.unk_id
        return [ids.get(w, unk) for w in text.split()]

    def _decode(self, ids: list[int]) -> str:
        offset = len(SPECIAL_TOKENS)
        return " ".join(SPECIAL_TOKENS[i] if i < offset else self.words[i - offset] for i in ids)

    def _state(self) -> dict[str, Any]:
        return {"words": self.words}


class BPETokenizer(BaseTokenizer):
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

    @property
    def itos(self) -> list[str]:
        tokens = [""] * self.vocab_size
        for token, index in self.tokenizer.get_vocab().items():
            if 0 <= index < len(tokens):
                tokens[index] = token
        return tokens

    def _encode(self, text: str) -> list[int]:
        return self.tokenizer.encode(text, add_special_tokens=False).ids

    def _decode(self, ids: list[int]) -> str:
        return self.tokenizer.decode(ids, skip_special_tokens=False)

    def _state(self) -> dict[str, Any]:
        return {"tokenizer": json.loads(self.tokenizer.to_str())}


def tokenizer_kind(document: Any, path: str | os.PathLike = "<document>") -> str:
    """The kind (one of :data:`KINDS`) of a parsed tokenizer file.

    Raises:
        DataFileError: not a tokenizer file, or an unknown kind (names ``path``).
    """
    if isinstance(document, dict) and "kind" in document:
        kind = document["kind"]
    elif isinstance(document, dict) and document.get("format") == FORMAT_NAME:
        kind = document.get("type")  # written before the protocol: "type" held the kind
    elif isinstance(document, dict) and document.get("format") == VOCABULARY_FORMAT:
        kind = "word-vocabulary"
    elif is_wordpiece_document(document):
        kind = "wordpiece"
    else:
        raise DataFileError(f"{path} is not a bigmodel tokenizer file (expected a \"kind\" of "
                            f"{', '.join(KINDS)}, \"format\": \"{FORMAT_NAME}\" or "
                            f"\"{VOCABULARY_FORMAT}\", or a Hugging Face WordPiece tokenizer.json)")
    if kind not in KINDS:
        raise DataFileError(f"{path}: unknown tokenizer kind {kind!r} (expected one of "
                            f"{', '.join(KINDS)})")
    return kind


def _bpe(document: dict, path: Path) -> BPETokenizer:
    from tokenizers import Tokenizer as HFTokenizer

    inner = document.get("tokenizer")
    if not isinstance(inner, dict) or not isinstance(inner.get("model"), dict):
        raise DataFileError(f"{path}: a bpe tokenizer file needs a \"tokenizer\" object")
    check_vocabulary_ids(inner["model"].get("vocab"), path, DataFileError)
    return BPETokenizer(HFTokenizer.from_str(json.dumps(inner)))


_READERS = {
    "char": lambda document, path: CharTokenizer(document["chars"]),
    "word": lambda document, path: WordTokenizer(document["words"]),
    "bpe": _bpe,
    "word-vocabulary": lambda document, path: WordVocabulary.from_document(document, path),
    "wordpiece": lambda document, path: WordPieceTokenizer(path, document, error=DataFileError),
}


def load_tokenizer(path: str | os.PathLike, name: str | None = None) -> Tokenizer:
    """Read any tokenizer written by a ``save`` (or a Hugging Face WordPiece ``tokenizer.json``).

    Args:
        path: the tokenizer file; or a folder, holding the file ``name``.
        name: the file's name inside the folder ``path`` (default ``tokenizer.json``), as a file
            records it: confined to the folder (no absolute path, no ``..``, no symlink out).

    Returns:
        A :class:`Tokenizer` of the file's kind, giving the ids the saved one gave.

    Raises:
        DataFileError: missing, too large, a pickle, not JSON, nested too deeply, not a tokenizer
            file, an unknown kind, or invalid content (duplicate tokens, ids that are not integers
            ``0 .. n-1``, ...); the message names the file.
    """
    path = Path(path)
    if name is not None or path.is_dir():
        path = confined_path(path, DEFAULT_FILE if name is None else name, "Tokenizer file",
                             error=DataFileError, kind=None)
    try:  # bounded size and depth; a pickle payload is refused unread
        document = read_json(path, "Tokenizer file", error=DataFileError,
                             max_bytes=MAX_TOKENIZER_BYTES)
    except DataFileError as exc:
        raise DataFileError(f"Cannot read tokenizer file: {exc}") from None
    kind = tokenizer_kind(document, path)
    try:
        return _READERS[kind](document, path)
    except DataFileError:
        raise
    except KeyError as exc:
        raise DataFileError(f"{path}: a {kind} tokenizer file needs the field {exc}") from None
    except Exception as exc:  # any other malformed content (the tokenizers library's errors too)
        raise DataFileError(f"{path}: tokenizer data is invalid: {exc}") from None
