"""The WordPiece tokenizer of a pretrained BERT checkpoint (its ``tokenizer.json``, run by the
Hugging Face ``tokenizers`` library), with the :class:`~bigmodel.data.tokenizers.Tokenizer` surface.

>>> tok = WordPieceTokenizer("all-MiniLM-L6-v2/tokenizer.json")
>>> tok.encode("Hello world")                          # [101, 7592, 2088, 102]: [CLS] .. [SEP]
>>> tok.encode_batch(["Hello world", "hi"], max_length=8)   # (2, 4) int64, right-padded with 0

The file stays the checkpoint's own ``tokenizer.json`` (``save`` copies it byte for byte), so
Hugging Face tools read it too; its kind, for :func:`bigmodel.data.tokenizers.load_tokenizer`, is
the file's ``model.type`` (``"WordPiece"``). Reading is bounded (size, depth, no pickle) and the
vocabulary is checked before ``tokenizers`` builds anything: every id an integer, ids distinct and
numbered ``0 .. n-1``.
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from bigmodel.errors import BigModelError, CheckpointError, ConfigError, InputTypeError
from bigmodel.utils.io import atomic_path
from bigmodel.utils.loading import read_json

__all__ = ["WordPieceTokenizer", "check_vocabulary_ids", "is_wordpiece_document"]


def is_wordpiece_document(document: Any) -> bool:
    """Whether a parsed JSON document is a Hugging Face ``tokenizer.json`` of a WordPiece model."""
    return isinstance(document, dict) and isinstance(document.get("model"), dict) \
        and document["model"].get("type") == "WordPiece"


def check_vocabulary_ids(vocab: Any, path: Path, error: type[BigModelError]) -> int:
    """Check a ``{token: id}`` table: ids are integers numbered ``0 .. n-1`` without repeats.

    Returns:
        The number of tokens.

    Raises:
        ``error`` naming ``path``, the token and the id.
    """
    if not isinstance(vocab, Mapping) or not vocab:
        raise error(f"{path}: the tokenizer's vocabulary must be a non-empty {{token: id}} object; "
                    f"received {type(vocab).__name__}")
    owner: dict[int, str] = {}
    for token, index in vocab.items():
        if not isinstance(index, int) or isinstance(index, bool):
            raise error(f"{path}: token {token!r} has id {index!r}; ids must be integers")
        if index in owner:
            raise error(f"{path}: tokens {owner[index]!r} and {token!r} share id {index}")
        if not 0 <= index < len(vocab):
            raise error(f"{path}: token {token!r} has id {index}, outside [0, {len(vocab)}) (ids "
                        "must number the tokens 0 .. n-1)")
        owner[index] = token
    return len(vocab)


class WordPieceTokenizer:
    """A checkpoint's WordPiece tokenizer (``kind = "wordpiece"``).

    ``encode`` and ``encode_batch`` frame every text as ``[CLS] ... [SEP]`` (what BERT models
    read); ``encode_batch`` cuts to ``max_length`` tokens (``[SEP]`` kept last) and right-pads with
    ``pad_id`` to the longest text of the batch. Special ids come from the file: ``[PAD]``,
    ``[UNK]``, ``[CLS]``, ``[SEP]`` (0, 100, 101, 102 in MiniLM / BERT-base); there is no BOS/EOS.

    Args:
        path: the ``tokenizer.json`` file.
        document: its parsed JSON, when the caller has read it already (not read again).
        error: the error class for an unreadable or invalid file.

    Raises:
        ``error`` (CheckpointError by default): missing, too large, not JSON, not a WordPiece
        tokenizer, ids that are not integers ``0 .. n-1``, or a file ``tokenizers`` refuses.
    """

    kind = "wordpiece"
    bos_id: int | None = None
    eos_id: int | None = None

    def __init__(self, path: str | os.PathLike, document: Any = None,
                 error: type[BigModelError] = CheckpointError) -> None:
        from tokenizers import Tokenizer

        self.path = Path(path)
        if document is None:  # bounded size and depth; a pickle payload is refused unread
            document = read_json(self.path, "Tokenizer file", error=error)
        if not is_wordpiece_document(document):
            raise error(f"{self.path} is not a WordPiece tokenizer.json (expected a Hugging Face "
                        "tokenizer file whose \"model\" has \"type\": \"WordPiece\")")
        check_vocabulary_ids(document["model"].get("vocab"), self.path, error)
        try:
            self._tokenizer = Tokenizer.from_str(json.dumps(document))
        except Exception as exc:  # tokenizers raises its own Exception subclass
            raise error(f"Cannot read tokenizer {self.path}: {exc}") from None
        self._tokenizer.no_padding()
        self._tokenizer.no_truncation()
        self.pad_id = self._tokenizer.token_to_id("[PAD]") or 0
        self.unk_id = self._tokenizer.token_to_id("[UNK]")
        self.cls_id = self._tokenizer.token_to_id("[CLS]")
        self.sep_id = self._tokenizer.token_to_id("[SEP]")

    @property
    def vocab_size(self) -> int:
        return self._tokenizer.get_vocab_size()

    def __len__(self) -> int:
        return self.vocab_size

    @property
    def itos(self) -> list[str]:
        """Token strings by id (``[PAD]``, ..., ``##ing``, ...), as a word vocabulary's ``itos``."""
        tokens = [""] * self.vocab_size
        for token, index in self._tokenizer.get_vocab().items():
            if 0 <= index < len(tokens):
                tokens[index] = token
        return tokens

    def encode(self, text: str) -> list[int]:
        """Token ids of one text, ``[CLS]`` first and ``[SEP]`` last (not cut).

        Raises:
            InputTypeError: ``text`` is not a string.
        """
        if not isinstance(text, str):
            raise InputTypeError(f"WordPieceTokenizer.encode: expected a str; received "
                                 f"{type(text).__name__}")
        return list(self._tokenizer.encode(text).ids)

    def encode_batch(self, texts: Sequence[str], max_length: int | None = 128) -> np.ndarray:
        """Token ids ``(N, L)`` int64, ``L <= max_length`` (the longest text after truncation).

        Args:
            max_length: tokens kept per text, ``[CLS]`` and ``[SEP]`` included (None: all).

        Raises:
            InputTypeError: ``texts`` is not a list of strings. ConfigError: ``max_length < 3``.
        """
        if isinstance(texts, str) or not all(isinstance(t, str) for t in texts):
            raise InputTypeError(f"WordPieceTokenizer.encode_batch: 'texts' must be a list of "
                                 f"strings; received {type(texts).__name__}")
        if max_length is not None and (not isinstance(max_length, int) or max_length < 3):
            raise ConfigError(f"WordPieceTokenizer.encode_batch: 'max_length' must be an int >= 3 "
                              f"([CLS], a token, [SEP]) or None; received {max_length!r}")
        if max_length is not None:
            self._tokenizer.enable_truncation(max_length=max_length)
        try:
            encodings = self._tokenizer.encode_batch(list(texts))
        finally:
            self._tokenizer.no_truncation()
        width = max((len(e.ids) for e in encodings), default=0)
        out = np.full((len(encodings), width), self.pad_id, dtype=np.int64)
        for row, encoding in enumerate(encodings):
            out[row, : len(encoding.ids)] = encoding.ids
        return out

    def decode(self, ids: Iterable[int]) -> str:
        """Text of ``ids``; special tokens (``[CLS]``, ``[SEP]``, ``[PAD]``) dropped."""
        return self._tokenizer.decode([int(i) for i in np.asarray(list(ids)).reshape(-1)],
                                      skip_special_tokens=True)

    def save(self, path: str | os.PathLike) -> Path:
        """Copy ``tokenizer.json`` to ``path`` byte for byte (atomically)."""
        path = Path(path)
        with atomic_path(path) as tmp:
            shutil.copyfile(self.path, tmp)
        return path
