"""Skip-gram word vectors (bigmodel.transfer.skipgram) and the unlabelled fortunes corpus."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from bigmodel.data.fortunes import load_fortunes, unlabelled_fortunes
from bigmodel.data.text import WordVocabulary
from bigmodel.errors import ConfigError, DataError, InputTypeError
from bigmodel.models.rcnn import TextRCNN
from bigmodel.transfer.skipgram import skipgram_pairs, train_skipgram

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def test_pairs_match_an_explicit_enumeration():
    sequences = [np.array([5, 6, 7, 8, 9, 10]), np.array([3]), np.array([1, 2, 4])]
    window = 3
    centres, contexts = skipgram_pairs(sequences, window, np.random.default_rng(7))
    # the same radii, drawn in the same order, then every pair listed by a double loop
    rng = np.random.default_rng(7)
    expected = []
    for ids in sequences:
        if len(ids) < 2:
            continue
        radius = rng.integers(1, window + 1, size=len(ids))
        expected += [(ids[i], ids[j]) for i in range(len(ids)) for j in range(len(ids))
                     if i != j and abs(i - j) <= radius[i]]
    assert sorted(zip(centres.tolist(), contexts.tolist())) == sorted(
        (int(a), int(b)) for a, b in expected)
    assert skipgram_pairs([np.array([1])], 2, np.random.default_rng(0))[0].size == 0


def test_vectors_learn_which_words_share_contexts():
    rng = np.random.default_rng(0)
    animals = ["cat", "dog", "horse", "cow", "sheep"]
    tools = ["hammer", "saw", "drill", "wrench", "chisel"]
    texts = [" ".join(rng.choice(group, 6)) for _ in range(150) for group in (animals, tools)]
    vocab = WordVocabulary.build(texts)
    vectors = train_skipgram(texts, vocab, dim=16, window=3, epochs=4, lr=0.02, subsample=0.0,
                             batch_size=256, seed=0)
    assert vectors.shape == (len(vocab), 16) and vectors.dtype == torch.float32
    assert torch.equal(vectors[vocab.pad_id], torch.zeros(16))
    unit = torch.nn.functional.normalize(vectors, dim=1)

    def mean_cosine(a, b):
        ids_a, ids_b = [vocab.stoi[w] for w in a], [vocab.stoi[w] for w in b]
        sims = unit[ids_a] @ unit[ids_b].T
        if a is b:
            sims = sims[~torch.eye(len(a), dtype=torch.bool)]
        return float(sims.mean())

    within = min(mean_cosine(animals, animals), mean_cosine(tools, tools))
    across = mean_cosine(animals, tools)
    assert within > across + 0.5, (within, across)
    # the same seed gives the same vectors; they fit a TextRCNN's table
    again = train_skipgram(texts, vocab, dim=16, window=3, epochs=4, lr=0.02, subsample=0.0,
                           batch_size=256, seed=0)
    torch.testing.assert_close(again, vectors)
    model = TextRCNN(vocab_size=len(vocab), embedding_dim=16, embeddings=vectors)
    assert model.embeddings_source == "tensor"
    torch.testing.assert_close(model.embedding.weight.detach(), vectors)


def test_bad_inputs():
    vocab = WordVocabulary.build(["a b c"])
    with pytest.raises(InputTypeError, match="list of texts; received one str"):
        train_skipgram("a b c", vocab)
    with pytest.raises(ConfigError, match="'dim' must be an int >= 1; received 0"):
        train_skipgram(["a b c"], vocab, dim=0)
    with pytest.raises(ConfigError, match="'lr' must be > 0"):
        train_skipgram(["a b c"], vocab, lr=0.0)
    with pytest.raises(ConfigError, match="'window' must be an int"):
        train_skipgram(["a b c"], vocab, window=1.5)
    with pytest.raises(DataError, match="no word"):
        train_skipgram(["   ", ""], vocab)
    with pytest.raises(DataError, match="no pair of neighbouring words"):
        train_skipgram(["a", "b"], vocab, subsample=0.0)


def test_unlabelled_corpus_leaves_the_test_split_out(tmp_path):
    for name, count in (("alpha", 20), ("beta", 20)):
        (tmp_path / name).write_text("\n%\n".join(f"{name} text {i}" for i in range(count)))
    split = load_fortunes(["alpha", "beta"], path=tmp_path, min_entries=10)
    # another category file repeating a test text (other spacing and case) and a train text
    (tmp_path / "gamma").write_text(f"{split.test_texts[0].upper()}  \n%\nsomething else\n%\n"
                                    f"{split.train_texts[0]}")
    (tmp_path / "gamma.dat").write_text("not a category file")
    corpus = unlabelled_fortunes(split, path=tmp_path)
    assert corpus == ["something else", split.train_texts[0], *split.train_texts]
    assert not set(corpus) & set(split.test_texts)
