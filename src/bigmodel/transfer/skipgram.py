"""Skip-gram word vectors with negative sampling (Mikolov et al., 2013), trained by bigmodel on
unlabelled text, for the embedding table of a text model (Lai et al. start the TextRCNN from
skip-gram vectors).

>>> vocab = WordVocabulary.build(corpus, min_count=2)
>>> vectors = train_skipgram(corpus, vocab, dim=100, window=5, epochs=5)   # (len(vocab), 100)
>>> model = TextRCNN(vocab_size=len(vocab), embedding_dim=100, embeddings=vectors)

For every word ``w_t`` of a text and every word ``w_c`` within a window of it (the window's radius
drawn uniformly in ``1..window`` per centre word, as word2vec does), the loss is::

    -log sigma(v_c . u_t) - sum_k log sigma(-v_k . u_t),   k ~ unigram(count)^0.75

with ``u`` the input vectors (returned) and ``v`` the output vectors (discarded). Frequent words
are dropped before windowing with probability ``1 - sqrt(subsample / f(w))`` (word2vec's
sub-sampling). Padding (id 0) never appears; the OOV id is trained like a word from the unknown
words of the corpus. Only the texts given are read: pass unlabelled text and *training* texts,
never the test split.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
import torch.nn.functional as F

from bigmodel.errors import ConfigError, DataError, InputTypeError

__all__ = ["skipgram_pairs", "train_skipgram"]


def _check(name: str, value: object, low: float, integer: bool = True) -> None:
    kind = int if integer else (int, float)
    if not isinstance(value, kind) or isinstance(value, bool) or value < low:
        raise ConfigError(f"train_skipgram: '{name}' must be {'an int' if integer else 'a number'} "
                          f">= {low}; received {value!r}")


def skipgram_pairs(sequences: Sequence[np.ndarray], window: int,
                   rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """``(centres, contexts)`` int64 arrays: every ordered pair of positions of one sequence at
    distance ``1..r``, ``r`` drawn in ``1..window`` for each centre."""
    centres, contexts = [], []
    for ids in sequences:
        n = len(ids)
        if n < 2:
            continue
        radius = rng.integers(1, window + 1, size=n)
        for offset in range(1, window + 1):
            if offset >= n:
                break
            left = np.arange(n - offset)  # centre i, context i + offset
            keep = radius[left] >= offset
            centres.append(ids[left[keep]])
            contexts.append(ids[left[keep] + offset])
            right = np.arange(offset, n)  # centre i, context i - offset
            keep = radius[right] >= offset
            centres.append(ids[right[keep]])
            contexts.append(ids[right[keep] - offset])
    if not centres:
        return np.zeros(0, np.int64), np.zeros(0, np.int64)
    return np.concatenate(centres).astype(np.int64), np.concatenate(contexts).astype(np.int64)


def train_skipgram(texts: Sequence[str], vocabulary, dim: int = 100, window: int = 5,
                   negatives: int = 5, epochs: int = 5, lr: float = 0.01, batch_size: int = 1024,
                   subsample: float = 1e-3, seed: int = 0) -> torch.Tensor:
    """Word vectors ``(len(vocabulary), dim)`` float32 learned from ``texts``.

    Args:
        texts: unlabelled texts (never test texts).
        vocabulary: a :class:`~bigmodel.data.text.WordVocabulary`; its ids are the rows.
        dim: vector size.
        window: the largest distance between a centre word and a context word.
        negatives: noise words per pair.
        epochs: passes over the pairs (re-drawn sub-sampling and windows each pass).
        lr: Adam's step size (sparse updates: only the rows of a batch move).
        batch_size: pairs per step.
        subsample: word2vec's threshold (0 keeps every word).
        seed: seeds the initialization, windows, noise and order.

    Returns:
        The input vectors; row ``pad_id`` is zero, rows of words never seen keep their small
        random initialization.

    Raises:
        ConfigError: a bad size or rate. InputTypeError: ``texts`` is one str.
        DataError: the texts give no pair of words (nothing to learn from).
    """
    if isinstance(texts, str):
        raise InputTypeError("train_skipgram expects a list of texts; received one str")
    for name, value, low in (("dim", dim, 1), ("window", window, 1), ("negatives", negatives, 1),
                             ("epochs", epochs, 1), ("batch_size", batch_size, 1)):
        _check(name, value, low)
    _check("lr", lr, 0.0, integer=False)
    _check("subsample", subsample, 0.0, integer=False)
    if lr <= 0:
        raise ConfigError(f"train_skipgram: 'lr' must be > 0; received {lr!r}")
    size = len(vocabulary)
    sequences = [np.asarray(vocabulary.encode(t), dtype=np.int64) for t in texts if t.strip()]
    counts = np.bincount(np.concatenate(sequences) if sequences else np.zeros(0, np.int64),
                         minlength=size).astype(np.float64)
    counts[vocabulary.pad_id] = 0.0
    if counts.sum() == 0:
        raise DataError("train_skipgram: the texts hold no word")
    frequency = counts / counts.sum()
    with np.errstate(divide="ignore"):
        keep_p = np.minimum(1.0, np.sqrt(subsample / frequency)) if subsample > 0 else np.ones(size)
    noise = torch.from_numpy(counts ** 0.75 / (counts ** 0.75).sum())
    rng = np.random.default_rng(seed)
    generator = torch.Generator().manual_seed(seed)
    # word2vec's initialization: inputs uniform in +-0.5/dim, outputs zero
    inputs = torch.nn.Embedding(size, dim, sparse=True)
    outputs = torch.nn.Embedding(size, dim, sparse=True)
    with torch.no_grad():
        inputs.weight.uniform_(-0.5 / dim, 0.5 / dim, generator=generator)
        outputs.weight.zero_()
    optimizer = torch.optim.SparseAdam([inputs.weight, outputs.weight], lr=lr)
    trained = False
    for _ in range(epochs):
        kept = [ids[rng.random(len(ids)) < keep_p[ids]] for ids in sequences]
        centres, contexts = skipgram_pairs(kept, window, rng)
        if len(centres) == 0:
            continue
        trained = True
        order = torch.from_numpy(rng.permutation(len(centres)))
        centres_t, contexts_t = torch.from_numpy(centres), torch.from_numpy(contexts)
        for batch in order.split(batch_size):
            centre = inputs(centres_t[batch])  # (B, D)
            positive = outputs(contexts_t[batch])  # (B, D)
            noise_ids = torch.multinomial(noise, len(batch) * negatives, replacement=True,
                                          generator=generator).view(len(batch), negatives)
            negative = outputs(noise_ids)  # (B, K, D)
            loss = -(F.logsigmoid((centre * positive).sum(-1))
                     + F.logsigmoid(-(negative @ centre[:, :, None]).squeeze(-1)).sum(-1)).mean()
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
    if not trained:
        raise DataError("train_skipgram: the texts give no pair of neighbouring words (every "
                        "text has fewer than two known words after sub-sampling)")
    vectors = inputs.weight.detach().clone()
    vectors[vocabulary.pad_id] = 0.0
    return vectors
