"""Skip-gram word vectors (bigmodel.transfer.skipgram, gensim underneath) in a vocabulary's rows,
and the unlabelled fortunes corpus."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from bigmodel.data.fortunes import load_fortunes, unlabelled_fortunes
from bigmodel.data.text import WordVocabulary
from bigmodel.errors import ConfigError, DataError, InputTypeError
from bigmodel.models.rcnn import TextRCNN
from bigmodel.transfer.skipgram import train_skipgram

pytestmark = pytest.mark.usefixtures("one_torch_thread")
pytest.importorskip("gensim")


def test_vectors_learn_which_words_share_contexts():
    rng = np.random.default_rng(0)
    animals = ["cat", "dog", "horse", "cow", "sheep"]
    tools = ["hammer", "saw", "drill", "wrench", "chisel"]
    texts = [" ".join(rng.choice(group, 6)) for _ in range(150) for group in (animals, tools)]
    vocab = WordVocabulary.build(texts)
    vectors = train_skipgram(texts, vocab, dim=16, window=3, epochs=4, subsample=0.0, seed=0)
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
    again = train_skipgram(texts, vocab, dim=16, window=3, epochs=4, subsample=0.0, seed=0)
    torch.testing.assert_close(again, vectors)
    model = TextRCNN(vocab_size=len(vocab), embedding_dim=16, embeddings=vectors)
    assert model.embeddings_source == "tensor"
    torch.testing.assert_close(model.embedding.weight.detach(), vectors)


def test_unknown_words_train_the_oov_row_and_unseen_words_keep_their_small_init():
    rng = np.random.default_rng(1)
    words = [f"w{i}" for i in range(12)]
    texts = [" ".join(rng.choice(words, 8)) for _ in range(200)]
    vocab = WordVocabulary(words[:6] + ["never"])  # w6..w11 read as the OOV entry
    vectors = train_skipgram(texts, vocab, dim=8, window=2, epochs=2, subsample=0.0, seed=3)
    bound = 0.5 / 8
    assert vectors[vocab.oov_id].abs().max() > 4 * bound  # trained from the unknown words
    assert vectors[vocab.stoi["w0"]].abs().max() > 4 * bound
    assert vectors[vocab.stoi["never"]].abs().max() <= bound  # no text has it
    assert torch.equal(vectors[vocab.pad_id], torch.zeros(8))


def test_same_seed_same_vectors_in_another_process(tmp_path):
    # reproducible runs: nothing may depend on Python's per-process str hash (PYTHONHASHSEED)
    import json
    import os
    import subprocess
    import sys

    texts = ["the cat sat on the mat", "a dog sat on a log", "the cat and the dog"] * 20
    vocab = WordVocabulary.build(texts)
    here = train_skipgram(texts, vocab, dim=8, window=2, epochs=2, subsample=0.0, seed=5)
    code = ("import json, sys; from bigmodel.data.text import WordVocabulary; "
            "from bigmodel.transfer.skipgram import train_skipgram; "
            "texts = json.loads(sys.argv[1]); vocab = WordVocabulary.build(texts); "
            "v = train_skipgram(texts, vocab, dim=8, window=2, epochs=2, subsample=0.0, seed=5); "
            "print(json.dumps(v.tolist()))")
    env = dict(os.environ, PYTHONHASHSEED="12345", OMP_NUM_THREADS="1")
    out = subprocess.run([sys.executable, "-c", code, json.dumps(texts)], env=env, check=True,
                         capture_output=True, text=True).stdout
    torch.testing.assert_close(torch.tensor(json.loads(out.strip().splitlines()[-1])), here)


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
    with pytest.raises(ConfigError, match="'workers' must be an int >= 1; received 0"):
        train_skipgram(["a b c"], vocab, workers=0)


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
