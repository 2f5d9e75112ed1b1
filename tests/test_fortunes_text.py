"""The fortunes reader (category files, seeded per-category split) and the word vocabulary."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from bigmodel.data.fortunes import (
    DEBIAN_DIR,
    DEFAULT_CATEGORIES,
    find_fortunes_dir,
    list_categories,
    load_fortunes,
    read_fortune_file,
)
from bigmodel.data.text import WordVocabulary, tokenize
from bigmodel.errors import ConfigError, DataError, DataFileError, InputTypeError


def _write_category(directory: Path, name: str, texts: list[str]) -> None:
    directory.mkdir(parents=True, exist_ok=True)
    (directory / name).write_text("\n%\n".join(texts) + "\n%\n", encoding="utf-8")
    (directory / f"{name}.dat").write_bytes(b"\x00\x00\x00\x02")  # strfile index: not a category


@pytest.fixture
def fortune_dir(tmp_path):
    for name, count in (("alpha", 40), ("beta", 30), ("gamma", 25)):
        _write_category(tmp_path, name, [f"{name} saying number {i}\n  -- someone" for i in range(count)])
    return tmp_path


def test_read_fortune_file_splits_cleans_and_drops_empty(tmp_path):
    path = tmp_path / "cat"
    # overstriking: bold "B\bB", underline "_\bx"; empty entries and a missing final "%"
    path.write_bytes(b"first line\nsecond line\n%\n\n%\n  B\x08Bo\x08old _\x08t_\x08ext \n%\nlast one")
    assert read_fortune_file(path) == ["first line\nsecond line", "Bold text", "last one"]
    with pytest.raises(DataFileError, match="missing"):
        read_fortune_file(tmp_path / "missing")


def test_split_is_seeded_stratified_and_disjoint(fortune_dir):
    split = load_fortunes(["alpha", "beta", "gamma"], path=fortune_dir, test_fraction=0.2,
                          min_entries=10)
    assert split.class_names == ("alpha", "beta", "gamma") and split.num_classes == 3
    assert np.bincount(split.test_labels).tolist() == [8, 6, 5]
    assert np.bincount(split.train_labels).tolist() == [32, 24, 20]
    assert not set(split.train_texts) & set(split.test_texts)
    for text, label in zip(split.train_texts + split.test_texts,
                           np.concatenate([split.train_labels, split.test_labels])):
        assert text.startswith(split.class_names[label])
    again = load_fortunes(["alpha", "beta", "gamma"], path=fortune_dir, min_entries=10)
    assert again.test_texts == split.test_texts and again.train_texts == split.train_texts
    other_seed = load_fortunes(["alpha", "beta", "gamma"], path=fortune_dir, seed=1,
                               min_entries=10)
    assert other_seed.test_texts != split.test_texts
    # a category's split does not depend on which other categories are loaded
    pair = load_fortunes(["alpha", "gamma"], path=fortune_dir, min_entries=10)
    assert [t for t in split.test_texts if t.startswith("alpha")] == \
           [t for t in pair.test_texts if t.startswith("alpha")]
    capped = load_fortunes(["alpha", "beta"], path=fortune_dir, min_entries=10,
                           max_per_category=20)
    assert len(capped.train_texts) + len(capped.test_texts) == 40


def test_duplicates_are_dropped_everywhere(tmp_path):
    _write_category(tmp_path, "a", ["shared   text", "only a 1", "only a 2", "only a 2"])
    _write_category(tmp_path, "b", ["Shared text", "only b 1", "only b 2"])
    split = load_fortunes(["a", "b"], path=tmp_path, min_entries=2, test_fraction=0.5)
    texts = split.train_texts + split.test_texts
    assert sorted(texts) == ["only a 1", "only a 2", "only b 1", "only b 2"]


def test_bad_requests(fortune_dir, tmp_path, monkeypatch):
    with pytest.raises(DataError, match="'gamma'.*25 distinct texts; at least 30"):
        load_fortunes(["alpha", "gamma"], path=fortune_dir, min_entries=30)
    with pytest.raises(ConfigError, match="at least 2"):
        load_fortunes(["alpha"], path=fortune_dir)
    with pytest.raises(ConfigError, match="twice"):
        load_fortunes(["alpha", "alpha"], path=fortune_dir)
    with pytest.raises(ConfigError, match="test_fraction"):
        load_fortunes(["alpha", "beta"], path=fortune_dir, test_fraction=1.0)
    with pytest.raises(DataFileError, match="missing delta"):
        load_fortunes(["alpha", "delta"], path=fortune_dir)
    with pytest.raises(DataFileError, match="no such directory"):
        find_fortunes_dir(tmp_path / "nowhere", ["alpha"])
    monkeypatch.setenv("BIGMODEL_DATA", str(tmp_path / "env"))
    _write_category(tmp_path / "env" / "fortunes", "alpha", ["x"] * 2)
    assert find_fortunes_dir(None, ["alpha"]) == tmp_path / "env" / "fortunes"
    assert list_categories(fortune_dir) == {"alpha": 40, "beta": 30, "gamma": 25}


@pytest.mark.skipif(not all((DEBIAN_DIR / c).is_file() for c in DEFAULT_CATEGORIES),
                    reason="Debian package 'fortunes' not installed")
def test_debian_fortunes_default_categories(monkeypatch):
    monkeypatch.delenv("BIGMODEL_DATA", raising=False)
    split = load_fortunes()
    assert split.num_classes == len(DEFAULT_CATEGORIES) >= 5
    assert len(split.test_texts) > 1000 and len(split.train_texts) > 4 * len(split.test_texts) - 10
    assert np.bincount(split.train_labels).min() >= 300


# -- tokenizer / vocabulary -----------------------------------------------------------------------
def test_tokenize():
    assert tokenize("Don't PANIC -- it's 42!") == ["don't", "panic", "-", "-", "it's", "42", "!"]
    assert tokenize("Don't", lowercase=False) == ["Don't"]
    assert tokenize("   \n") == []
    with pytest.raises(InputTypeError):
        tokenize(["a list"])


def test_vocabulary_build_order_and_limits():
    texts = ["b a a", "c b a", "d"]
    vocab = WordVocabulary.build(texts)
    assert vocab.itos == ["<pad>", "<unk>", "a", "b", "c", "d"]  # count desc, ties alphabetical
    assert WordVocabulary.build(texts, min_count=2).itos == ["<pad>", "<unk>", "a", "b"]
    assert WordVocabulary.build(texts, max_size=4).itos == ["<pad>", "<unk>", "a", "b"]
    assert WordVocabulary.build(texts, oov_token=None).itos[:2] == ["<pad>", "a"]
    with pytest.raises(DataError, match="text 1 is empty"):
        WordVocabulary.build(["ok", "  "])
    with pytest.raises(DataError, match="no texts"):
        WordVocabulary.build([])
    with pytest.raises(ConfigError, match="min_count"):
        WordVocabulary.build(texts, min_count=0)
    with pytest.raises(ConfigError, match="max_size"):
        WordVocabulary.build(texts, max_size=2)


def test_encode_oov_padding_and_errors():
    vocab = WordVocabulary.build(["the cat sat", "the dog"])
    assert vocab.encode("The cat flew") == [vocab.stoi["the"], vocab.stoi["cat"], vocab.oov_id]
    batch = vocab.encode_batch(["the cat sat", "dog"], max_length=2)
    assert batch.dtype == np.int64 and batch.tolist() == [
        [vocab.stoi["the"], vocab.stoi["cat"]], [vocab.stoi["dog"], 0]]
    assert vocab.decode(batch[1]) == "dog"
    strict = WordVocabulary.build(["the cat"], oov_token=None)
    assert strict.oov_id is None
    with pytest.raises(DataError, match="unknown word 'dog'.*no OOV entry"):
        strict.encode("the dog")
    with pytest.raises(DataError, match="text 1: .*empty"):
        vocab.encode_batch(["the cat", "..."[:0]])
    with pytest.raises(DataError, match="empty"):
        vocab.encode("")
    with pytest.raises(DataError, match="outside"):
        vocab.decode([99])
    with pytest.raises(InputTypeError):
        vocab.encode_batch("the cat")
    with pytest.raises(ConfigError):
        WordVocabulary(["a", "a"])
    with pytest.raises(ConfigError):
        WordVocabulary(["<unk>"])


def test_vocabulary_save_load(tmp_path):
    vocab = WordVocabulary.build(["Zebra ünïcode words", "words"], oov_token="[UNK]",
                                 lowercase=False)
    path = vocab.save(tmp_path / "vocab.json")
    loaded = WordVocabulary.load(path)
    assert loaded.itos == vocab.itos and loaded.oov_token == "[UNK]" and not loaded.lowercase
    assert loaded.encode("Zebra words") == vocab.encode("Zebra words")
    assert json.loads(path.read_text(encoding="utf-8"))["format"] == "bigmodel-word-vocabulary"
    with pytest.raises(DataFileError, match="No vocabulary"):
        WordVocabulary.load(tmp_path / "none.json")
    (tmp_path / "bad.json").write_text("{not json")
    with pytest.raises(DataFileError, match="Cannot read"):
        WordVocabulary.load(tmp_path / "bad.json")
    (tmp_path / "other.json").write_text(json.dumps({"words": ["a"]}))
    with pytest.raises(DataFileError, match="not a bigmodel word vocabulary"):
        WordVocabulary.load(tmp_path / "other.json")


# -- recipes --------------------------------------------------------------------------------------
def test_text_recipe_validates_and_seq2seq_data_is_refused():
    from bigmodel.recipes.classification_data import load_classification_data
    from bigmodel.recipes.schema import load_recipe, recipe_from_dict

    root = Path(__file__).resolve().parents[1] / "configs"
    recipe = load_recipe(root / "fortunes_text_rcnn.yaml")
    assert (recipe.model.name, recipe.data.name) == ("text-rcnn", "fortunes")
    assert len(recipe.data.categories) >= 5 and recipe.data.max_length >= 16
    image = load_recipe(root / "fashion_rcnn.yaml")
    assert image.model.name == "rcnn-96"
    with pytest.raises(ConfigError, match="fortunes' text data set only"):
        recipe_from_dict({"data": {"name": "fashion_mnist", "max_length": 10}})
    with pytest.raises(ConfigError, match="image augmentations"):
        recipe_from_dict({"data": {"name": "fortunes", "augment": [{"name": "RandomFlip"}]}})
    seq2seq = recipe_from_dict({"data": {"name": "numbers_to_words"}})
    with pytest.raises(ConfigError, match="not classification data"):
        load_classification_data(seq2seq.data)
