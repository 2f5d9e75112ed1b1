"""Skip-gram word vectors with negative sampling (Mikolov et al., 2013), trained on unlabelled text
for the embedding table of a text model (Lai et al. start the TextRCNN from skip-gram vectors).

>>> vocab = WordVocabulary.build(corpus, min_count=2)
>>> vectors = train_skipgram(corpus, vocab, dim=100, window=5, epochs=5)   # (len(vocab), 100)
>>> model = TextRCNN(vocab_size=len(vocab), embedding_dim=100, embeddings=vectors)

The training is gensim's ``Word2Vec`` (``sg=1``, negative sampling): the well-kept reference
implementation (optimized C loops, word2vec's learning-rate decay, random window radius,
sub-sampling of frequent words and unigram^0.75 noise). This module only puts its vectors in the
rows of a :class:`~bigmodel.data.text.WordVocabulary`: texts are encoded with the vocabulary
first, so words outside it train the OOV row (as they will read at run time), padding (row 0)
stays zero, and vocabulary words absent from the texts keep a small seeded random vector.
Only the texts given are read: pass unlabelled text and *training* texts, never the test split.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
import torch

from bigmodel.errors import ConfigError, DataError, InputTypeError
from bigmodel.utils import checks

__all__ = ["train_skipgram"]


def _EpochProgress(progress: Callable[[int, int], None], epochs: int):
    """A gensim callback that calls ``progress(done, epochs)`` at the end of each epoch (made
    on demand: gensim is an optional dependency)."""
    from gensim.models.callbacks import CallbackAny2Vec

    class EpochProgress(CallbackAny2Vec):
        def __init__(self) -> None:
            self.done = 0

        def on_epoch_end(self, model) -> None:
            self.done += 1
            progress(self.done, epochs)

    return EpochProgress()


def train_skipgram(texts: Sequence[str], vocabulary, dim: int = 100, window: int = 5,
                   negatives: int = 5, epochs: int = 5, lr: float = 0.025,
                   subsample: float = 1e-3, seed: int = 0, workers: int = 1,
                   progress: Callable[[int, int], None] | None = None) -> torch.Tensor:
    """Word vectors ``(len(vocabulary), dim)`` float32 learned from ``texts``.

    Args:
        texts: unlabelled texts (never test texts).
        vocabulary: a :class:`~bigmodel.data.text.WordVocabulary`; its ids are the rows.
        dim: vector size.
        window: the largest distance between a centre word and a context word (the radius is
            drawn in ``1..window`` per centre word).
        negatives: noise words per pair.
        epochs: passes over the texts.
        lr: the starting learning rate (SGD, decayed linearly to ``lr / 250``).
        subsample: word2vec's sub-sampling threshold (0 keeps every word).
        seed: seeds the initialization, windows, noise and sub-sampling.
        workers: gensim threads. With 1 (the default) the same seed gives the same vectors;
            more threads are faster but not bit-reproducible.
        progress: ``progress(epochs done, epochs)`` after each pass (training takes minutes on
            a whole corpus), e.g. :meth:`bigmodel.engine.progress.Phase.update`.

    Returns:
        The input vectors; row ``pad_id`` is zero, rows of words never seen in ``texts`` keep a
        small random initialization (uniform in +-0.5/dim, from ``seed``).

    Raises:
        ConfigError: a bad size or rate, or gensim is not installed.
        InputTypeError: ``texts`` is one str.
        DataError: the texts hold no word, or no two neighbouring words (nothing to learn from).
    """
    if isinstance(texts, str):
        raise InputTypeError("train_skipgram expects a list of texts; received one str")
    for name, value, low in (("dim", dim, 1), ("window", window, 1), ("negatives", negatives, 1),
                             ("epochs", epochs, 1), ("workers", workers, 1)):
        checks.int_at_least("train_skipgram", name, value, low)
    checks.number_at_least("train_skipgram", "lr", lr, 0.0)
    checks.number_at_least("train_skipgram", "subsample", subsample, 0.0)
    if lr <= 0:
        raise ConfigError(f"train_skipgram: 'lr' must be > 0; received {lr!r}")
    try:
        from gensim.models import Word2Vec
    except ImportError:
        raise ConfigError("train_skipgram needs gensim: pip install 'bigmodel[word2vec]'") from None
    itos = vocabulary.itos
    sentences = [[itos[i] for i in vocabulary.encode(t) if i != vocabulary.pad_id] for t in texts
                 if t.strip()]
    sentences = [words for words in sentences if words]
    if not sentences:
        raise DataError("train_skipgram: the texts hold no word")
    if not any(len(words) > 1 for words in sentences):
        raise DataError("train_skipgram: the texts give no pair of neighbouring words (every "
                        "text has fewer than two words)")
    callbacks = () if progress is None else (_EpochProgress(progress, epochs),)
    model = Word2Vec(sentences, vector_size=dim, window=window, negative=negatives, hs=0, sg=1,
                     min_count=1, sample=subsample, epochs=epochs, alpha=lr, min_alpha=lr / 250,
                     ns_exponent=0.75, seed=seed, workers=workers, callbacks=callbacks)
    generator = torch.Generator().manual_seed(seed)
    vectors = torch.empty(len(itos), dim).uniform_(-0.5 / dim, 0.5 / dim, generator=generator)
    index = model.wv.key_to_index
    ids, rows = zip(*[(i, index[w]) for i, w in enumerate(itos) if w in index])
    vectors[list(ids)] = torch.from_numpy(np.asarray(model.wv.vectors[list(rows)],
                                                     dtype=np.float32))
    vectors[vocabulary.pad_id] = 0.0
    return vectors
