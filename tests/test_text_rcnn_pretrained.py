"""TextRCNN with pretrained word vectors (all-MiniLM-L6-v2's WordPiece table): the table really is
the source's, frozen vectors stay fixed, a tiny run learns, save/load, and each bad input."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from bigmodel.errors import (
    CheckpointError,
    ConfigError,
    DataError,
    InputTypeError,
    UnknownNameError,
)
from bigmodel.models import create_model, load_model, save_model, word_vectors
from bigmodel.models.pretrained_files import model_dir
from bigmodel.models.rcnn import TextRCNN, text_rcnn

pytestmark = pytest.mark.usefixtures("one_torch_thread")

NAME = "minilm-wordpiece"
TOPICS = {"kittens": ["purr", "whiskers", "meow", "paws", "yarn", "kitten"],
          "rockets": ["launch", "orbit", "thrust", "booster", "payload", "countdown"],
          "recipes": ["flour", "oven", "simmer", "butter", "garlic", "whisk"]}
FILLER = ["the", "a", "and", "of", "we", "it", "was", "very", "then", "so"]


@pytest.fixture(scope="module")
def source_table() -> np.ndarray:
    """The table read straight from the package's safetensors file (numpy, not our loader)."""
    from safetensors import safe_open

    with safe_open(str(model_dir("all-MiniLM-L6-v2") / "model.safetensors"), "np") as handle:
        return handle.get_tensor("embeddings.word_embeddings.weight")


@pytest.fixture(scope="module")
def tokenizer():
    return word_vectors.embeddings_tokenizer(NAME)


def topic_texts(count: int, seed: int) -> tuple[list[str], np.ndarray]:
    rng = np.random.default_rng(seed)
    texts, labels = [], []
    for index in range(count):
        label = index % len(TOPICS)
        words = list(TOPICS.values())[label]
        n = int(rng.integers(4, 10))
        texts.append(" ".join(str(rng.choice(words if rng.random() < 0.4 else FILLER))
                              for _ in range(n)) + " " + words[index % len(words)])
        labels.append(label)
    return texts, np.asarray(labels, dtype=np.int64)


def small(**kwargs) -> TextRCNN:
    torch.manual_seed(0)
    defaults = dict(vocab_size=30522, num_classes=3, embedding_dim=384, context_size=8,
                    hidden_size=16, dropout_rate=0.0, embeddings=NAME)
    return text_rcnn(**{**defaults, **kwargs})


def test_embeddings_are_the_source_table(source_table, tokenizer):
    info = word_vectors.embeddings_info(NAME)
    assert (info.vocab_size, info.embedding_dim, info.pad_id) == (30522, 384, 0)
    assert word_vectors.available_embeddings() == [NAME]
    table = word_vectors.load_embeddings(NAME)
    assert table.dtype == torch.float32 and tuple(table.shape) == source_table.shape
    np.testing.assert_array_equal(table.numpy(), source_table)
    model = create_model("text-rcnn-minilm")
    np.testing.assert_array_equal(model.embedding.weight.detach().numpy(), source_table)
    # Row i is the vector of the tokenizer's id i: the vector of "whiskers" pieces, as encoded.
    ids = tokenizer.encode_batch(["Whiskers purr"], max_length=16)[0]
    assert ids[0] == 101 and ids[-1] == 102  # [CLS] ... [SEP]
    embedded = model.embedding(torch.from_numpy(ids)).detach().numpy()
    np.testing.assert_array_equal(embedded, source_table[ids])
    # A table passed in as an array gives the same model as the name.
    same = small(embeddings=source_table)
    assert same.embeddings_source == "tensor" and small().embeddings_source == NAME
    batch = torch.from_numpy(tokenizer.encode_batch(["the oven", "an orbit and a booster"]))
    torch.testing.assert_close(same.eval()(batch), small().eval()(batch))


def test_frozen_vectors_do_not_change_and_a_tiny_run_learns(tokenizer):
    from bigmodel.engine import Trainer

    texts, labels = topic_texts(90, seed=0)
    ids = tokenizer.encode_batch(texts, max_length=24)
    model = small(freeze_embeddings=True)
    before = {k: v.detach().clone() for k, v in model.named_parameters()}
    assert not model.embedding.weight.requires_grad
    trainer = Trainer(model, loss=nn.CrossEntropyLoss(), optimizer="adamw", lr=1e-2,
                      metrics=["accuracy"], seed=0, verbose=0)
    start = trainer.evaluate((ids, labels))["loss"]
    trainer.fit((ids, labels), epochs=12, batch_size=16)
    test_texts, test_labels = topic_texts(30, seed=1)
    result = trainer.evaluate((tokenizer.encode_batch(test_texts, max_length=24), test_labels))
    assert result["accuracy"] >= 0.9 and result["loss"] < start / 2, (start, result)
    torch.testing.assert_close(model.embedding.weight, before["embedding.weight"], rtol=0, atol=0)
    changed = [k for k, v in model.named_parameters() if not torch.equal(v, before[k])]
    assert sorted(changed) == sorted(k for k in before if k != "embedding.weight")


def test_fine_tuned_vectors_move_only_where_tokens_were_seen(tokenizer):
    from bigmodel.engine import Trainer

    texts, labels = topic_texts(30, seed=2)
    ids = tokenizer.encode_batch(texts, max_length=24)
    model = small(freeze_embeddings=False)
    before = model.embedding.weight.detach().clone()
    # plain Adam: AdamW's decay would also shrink the rows of unseen tokens
    Trainer(model, loss=nn.CrossEntropyLoss(), optimizer="adam", lr=1e-3, seed=0,
            verbose=0).fit((ids, labels), epochs=1, batch_size=10)
    moved = (model.embedding.weight != before).any(dim=1).nonzero().flatten().tolist()
    assert moved and set(moved) == set(np.unique(ids).tolist()) - {0}  # [PAD] row stays


def test_save_load_round_trip_needs_no_source(tmp_path, tokenizer, monkeypatch):
    model = create_model("text-rcnn", vocab_size=30522, embedding_dim=384, context_size=8,
                         hidden_size=16, num_classes=3, embeddings=NAME, freeze_embeddings=True)
    save_model(model, tmp_path)
    # The vectors are in model.safetensors: rebuilding must not read the source again.
    monkeypatch.setattr(word_vectors, "load_embeddings", lambda name: pytest.fail("re-read"))
    loaded = load_model(tmp_path)
    assert loaded.get_config()["embeddings"] is None and loaded.freeze_embeddings
    assert not loaded.embedding.weight.requires_grad
    batch = torch.from_numpy(tokenizer.encode_batch(["meow and purr", "simmer the garlic"]))
    torch.testing.assert_close(loaded(batch), model.eval()(batch))
    # The saved flag follows the live model (e.g. unfrozen for a second training stage).
    from bigmodel.transfer import unfreeze

    unfreeze(loaded, "embedding.*")
    save_model(loaded, tmp_path / "unfrozen")
    assert load_model(tmp_path / "unfrozen").embedding.weight.requires_grad


def test_bad_inputs(monkeypatch):
    with pytest.raises(UnknownNameError, match=r"Unknown pretrained embeddings 'glove'.*minilm"):
        word_vectors.load_embeddings("glove")
    with pytest.raises(UnknownNameError, match="'glove'"):
        create_model("text-rcnn", embeddings="glove")
    # Dimension and vocabulary mismatches name both shapes and the way out.
    with pytest.raises(ConfigError, match=r"30522 x 384.*embedding_dim=128.*embedding_dim=384"):
        text_rcnn(vocab_size=30522, embedding_dim=128, embeddings=NAME)
    with pytest.raises(ConfigError, match=r"vocab_size=8129.*data.tokenizer: minilm-wordpiece"):
        text_rcnn(vocab_size=8129, embedding_dim=384, embeddings=NAME)
    with pytest.raises(ConfigError, match=r"shape \(5, 3\); expected .* \(10, 4\)"):
        TextRCNN(vocab_size=10, embedding_dim=4, embeddings=np.zeros((5, 3)))
    with pytest.raises(DataError, match="NaN"):
        TextRCNN(vocab_size=2, embedding_dim=2, embeddings=[[0.0, 1.0], [float("nan"), 0.0]])
    with pytest.raises(InputTypeError, match="'embeddings' must be a name"):
        TextRCNN(vocab_size=2, embedding_dim=2, embeddings={"a": 1})
    with pytest.raises(ConfigError, match="'freeze_embeddings' must be a bool; received 'yes'"):
        TextRCNN(freeze_embeddings="yes")
    with pytest.raises(ConfigError, match="argument 'embeddings' expects"):
        create_model("text-rcnn", embeddings=3)
    # The package that ships the vectors is missing: say which one to install.
    from bigmodel.models import pretrained_files

    monkeypatch.setitem(pretrained_files.PRETRAINED, "all-MiniLM-L6-v2",
                        ("gt-missing-package", "gt_missing_package_xyz"))
    with pytest.raises(CheckpointError, match="needs the package 'gt-missing-package'"):
        word_vectors.load_embeddings(NAME)
