"""keras.layers TextVectorization / StringLookup / IntegerLookup / Hashing / HashedCrossing /
Discretization on strings and NumPy arrays: Keras 3's docstring examples (real Keras needs
TensorFlow for these, which is not installed), hand-computed vocabularies and TF-IDF, the hashes'
published test vectors, real Keras for Discretization, fit on string arrays, `.keras` assets."""

from __future__ import annotations

import io
import json
import os
import zipfile

import numpy as np
import pytest
import torch

from bigmodel import keras
from bigmodel.errors import ConfigError, DataError, InputTypeError, ShapeError
from bigmodel.keras import layers
from bigmodel.keras.layers.hash_functions import fingerprint64, siphash24
from keras_reference import real_keras as _real_keras


def _eq(out, expected):
    np.testing.assert_allclose(np.asarray(out), np.asarray(expected), rtol=0, atol=1e-6)


# ------------------------------------------------------------------ Keras's docstring examples
VOCAB = ["a", "b", "c", "d"]
DATA = [["a", "c", "d"], ["d", "z", "b"]]


def test_string_lookup_docstring_examples():
    _eq(layers.StringLookup(vocabulary=VOCAB)(DATA), [[1, 3, 4], [4, 0, 2]])
    adapted = layers.StringLookup()
    adapted.adapt(np.array(DATA))
    assert adapted.get_vocabulary() == ["[UNK]", "d", "z", "c", "b", "a"]
    _eq(adapted(DATA), [[5, 3, 1], [1, 2, 4]])
    _eq(layers.StringLookup(vocabulary=VOCAB, num_oov_indices=2)(DATA), [[2, 4, 5], [5, 1, 3]])
    _eq(layers.StringLookup(vocabulary=VOCAB, output_mode="one_hot")(["a", "b", "c", "d", "z"]),
        np.eye(5)[[1, 2, 3, 4, 0]])
    _eq(layers.StringLookup(vocabulary=VOCAB, output_mode="multi_hot")(
        [["a", "c", "d", "d"], ["d", "z", "b", "z"]]), [[0, 1, 0, 1, 1], [1, 0, 1, 0, 1]])
    _eq(layers.StringLookup(vocabulary=VOCAB, output_mode="count")(
        [["a", "c", "d", "d"], ["d", "z", "b", "z"]]), [[0, 1, 0, 1, 2], [2, 0, 1, 0, 1]])
    tfidf = layers.StringLookup(output_mode="tf_idf", vocabulary=VOCAB,
                                idf_weights=[0.25, 0.75, 0.6, 0.4])
    _eq(tfidf([["a", "c", "d", "d"], ["d", "z", "b", "z"]]),
        [[0, 0.25, 0, 0.6, 0.8], [1.0, 0, 0.75, 0, 0.4]])
    tfidf = layers.StringLookup(output_mode="tf_idf", vocabulary=["[UNK]", *VOCAB],
                                idf_weights=[0.9, 0.25, 0.75, 0.6, 0.4])
    _eq(tfidf([["a", "c", "d", "d"], ["d", "z", "b", "z"]]),
        [[0, 0.25, 0, 0.6, 0.8], [1.8, 0, 0.75, 0, 0.4]])
    inverse = layers.StringLookup(vocabulary=VOCAB, invert=True)
    assert inverse(np.array([[1, 3, 4], [4, 0, 2]])) == [["a", "c", "d"], ["d", "[UNK]", "b"]]
    assert inverse(torch.tensor([2, 5])) == ["b", "[UNK]"]  # Keras on torch: a list of str
    mask = layers.StringLookup(vocabulary=VOCAB, mask_token="")
    _eq(mask([["a", "", "c"]]), [[2, 0, 4]])
    assert mask.get_vocabulary() == ["", "[UNK]", *VOCAB]


def test_integer_lookup_docstring_examples():
    vocab = [12, 36, 1138, 42]
    _eq(layers.IntegerLookup(vocabulary=vocab)(np.array([[12, 1138, 42], [42, 1000, 36]])),
        [[1, 3, 4], [4, 0, 2]])
    adapted = layers.IntegerLookup()
    adapted.adapt(np.array([[12, 1138, 42], [42, 1000, 36]]))
    assert adapted.get_vocabulary() == [-1, 42, 1138, 1000, 36, 12]
    _eq(layers.IntegerLookup(vocabulary=vocab, num_oov_indices=2)(
        np.array([[12, 1138, 42], [37, 1000, 36]])), [[2, 4, 5], [1, 0, 3]])
    oov = np.array([100, 300, 700, 1100, 1700, 2000])
    _eq(layers.IntegerLookup(vocabulary=[10, 20, 30], num_oov_indices=4)(oov), [0] * 6)
    _eq(layers.IntegerLookup(vocabulary=[10, 20, 30], num_oov_indices=4,
                             oov_method="farmhash")(oov), [3, 3, 2, 2, 0, 1])
    _eq(layers.IntegerLookup(vocabulary=vocab, output_mode="one_hot")(
        np.array([12, 36, 1138, 42, 7])), np.eye(5)[[1, 2, 3, 4, 0]])
    _eq(layers.IntegerLookup(vocabulary=vocab, invert=True)(np.array([[1, 3, 4], [4, 0, 2]])),
        [[12, 1138, 42], [42, -1, 36]])


def test_hashing_docstring_examples_and_hash_vectors():
    five = [["A"], ["B"], ["C"], ["D"], ["E"]]
    _eq(layers.Hashing(num_bins=3)(five), [[1], [0], [1], [1], [2]])
    _eq(layers.Hashing(num_bins=3, mask_value="")([["A"], ["B"], [""], ["C"], ["D"]]),
        [[1], [1], [0], [2], [2]])
    _eq(layers.Hashing(num_bins=3, salt=[133, 137])(five), [[1], [2], [1], [0], [2]])
    _eq(layers.Hashing(num_bins=3, salt=133)(five), [[0], [0], [2], [1], [0]])
    _eq(layers.Hashing(num_bins=4, output_mode="multi_hot")([["A", "B"]]).shape, (1, 4))
    # SipHash-2-4 reference vectors (key 00..0f): empty message and 15 bytes 00..0e.
    k0, k1 = int.from_bytes(bytes(range(8)), "little"), int.from_bytes(bytes(range(8, 16)),
                                                                        "little")
    assert siphash24(k0, k1, b"") == 0x726FDB47DD0E0E31
    assert siphash24(k0, k1, bytes(range(15))) == 0xA129CA6149BE45E5
    assert fingerprint64("A") % 3 == 1 and fingerprint64(b"B") % 3 == 0
    # integers hash by their decimal text, as tf.as_string
    _eq(layers.Hashing(num_bins=7)(np.array([[12], [345]])),
        [[fingerprint64("12") % 7], [fingerprint64("345") % 7]])


def test_hashed_crossing_docstring_examples():
    feat1, feat2 = np.array(["A", "B", "A", "B", "A"]), np.array([101, 101, 101, 102, 102])
    _eq(layers.HashedCrossing(num_bins=5)((feat1, feat2)), [1, 4, 1, 1, 3])
    _eq(layers.HashedCrossing(num_bins=5, output_mode="one_hot")((feat1, feat2)),
        np.eye(5)[[1, 4, 1, 1, 3]])
    with pytest.raises(InputTypeError, match="at least two"):
        layers.HashedCrossing(num_bins=5)((feat1,))
    with pytest.raises(ShapeError, match="equal shape"):
        layers.HashedCrossing(num_bins=5)((feat1, feat2[:3]))


def test_discretization_docstring_and_real_keras():
    x = np.array([[-1.5, 1.0, 3.4, 0.5], [0.0, 3.0, 1.3, 0.0]])
    _eq(layers.Discretization(bin_boundaries=[0.0, 1.0, 2.0])(x), [[0, 2, 3, 1], [1, 3, 2, 1]])
    adapted = layers.Discretization(num_bins=4, epsilon=0.01)
    adapted.adapt(x)
    _eq(adapted(x), [[0, 2, 3, 2], [1, 3, 3, 1]])
    # Real Keras adapts through tf.data (TensorFlow is not installed): the adapted boundaries
    # above are checked by the docstring; the calls are compared here.
    keras_ref = _real_keras()
    data = np.random.default_rng(0).normal(size=(200, 3)).astype("float32")
    ours = layers.Discretization(num_bins=5, epsilon=0.05)
    ours.adapt(data)
    for mode in ("int", "one_hot", "multi_hot", "count"):
        mine = layers.Discretization(bin_boundaries=ours.bin_boundaries, output_mode=mode)
        theirs = keras_ref.layers.Discretization(bin_boundaries=ours.bin_boundaries,
                                                 output_mode=mode)
        sample = data[:4, :1] if mode == "one_hot" else data[:4]
        _eq(mine(sample), keras_ref.ops.convert_to_numpy(theirs(sample)))
        assert mine.compute_output_shape((None, *sample.shape[1:])) == \
            theirs.compute_output_shape((None, *sample.shape[1:]))
        assert mine.get_config().keys() - {"trainable"} == theirs.get_config().keys() - {"dtype"}


def test_discretization_keras_archive_both_ways(tmp_path):
    keras_ref = _real_keras()
    ours = keras.Sequential([keras.Input(shape=(3,)),
                             layers.Discretization(bin_boundaries=[-0.5, 0.0, 0.5])])
    ours.save(tmp_path / "ours.keras")
    x = np.array([[-1.0, 0.2, 0.7], [0.0, -0.3, 2.0]], dtype="float32")
    theirs = keras_ref.models.load_model(tmp_path / "ours.keras")
    _eq(keras_ref.ops.convert_to_numpy(theirs(x)), ours.predict(x, verbose=0))
    ref = keras_ref.Sequential([keras_ref.Input(shape=(3,)),
                                keras_ref.layers.Discretization(bin_boundaries=[0.1, 0.9],
                                                                output_mode="one_hot")])
    ref.save(tmp_path / "theirs.keras")
    back = keras.models.load_model(tmp_path / "theirs.keras")
    _eq(back.predict(x[:, :1], verbose=0), keras_ref.ops.convert_to_numpy(ref(x[:, :1])))


# ------------------------------------------------------------------------- TextVectorization
def test_text_vectorization_docstring_examples():
    layer = layers.TextVectorization(max_tokens=5000, output_mode="int", output_sequence_length=4)
    layer.adapt(["foo bar", "bar baz", "baz bada boom"])
    _eq(layer([["foo qux bar"], ["qux baz"]]), [[4, 1, 3, 0], [1, 2, 0, 0]])
    given = layers.TextVectorization(max_tokens=5000, output_sequence_length=4,
                                     vocabulary=["earth", "wind", "and", "fire"])
    assert given.get_vocabulary() == ["", "[UNK]", "earth", "wind", "and", "fire"]
    _eq(given([["earth wind and fire"], ["fire and earth michigan"]]),
        [[2, 3, 4, 5], [5, 4, 2, 1]])


def test_text_vectorization_standardize_split_ngrams_and_order():
    layer = layers.TextVectorization()
    # lower (ASCII, as tf.strings.lower), Keras's punctuation, whitespace runs
    layer.adapt(np.array(["The cat, the DOG!", "the\tcat\n sat...", "Ünïcode stays"]))
    # counts: the 3, cat 2, then ties by larger token first (Keras's lexsort order)
    assert layer.get_vocabulary() == ["", "[UNK]", "the", "cat", "Ünïcode", "stays", "sat",
                                      "dog"]
    _eq(layer(np.array(["the dog sat", "a cat"])), [[2, 7, 6], [1, 3, 0]])  # batch's longest
    chars = layers.TextVectorization(split="character", standardize=None,
                                     vocabulary=["a", "b"])
    _eq(chars(["abca"]), [[2, 3, 1, 2]])
    grams = layers.TextVectorization(ngrams=2, vocabulary=["a", "b", "a b", "b c"])
    _eq(grams(["a b c"]), [[2, 3, 1, 4, 5]])  # widths 1 then 2, joined by a space
    capped = layers.TextVectorization(max_tokens=4, standardize="lower")
    capped.adapt(["x x x y y z", "z."])
    assert capped.get_vocabulary() == ["", "[UNK]", "x", "y"]
    custom = layers.TextVectorization(standardize=lambda s: np.char.upper(s.astype(str)),
                                      split=lambda s: s.split("-"), vocabulary=["A", "B"])
    _eq(custom(["a-b-c"]), [[2, 3, 1]])
    cut = layers.TextVectorization(output_sequence_length=2, vocabulary=["a", "b", "c"])
    _eq(cut(["a b c", "c"]), [[2, 3], [4, 0]])


def test_text_vectorization_multi_hot_count_and_tf_idf():
    docs = ["a b b", "b c", "c c c d"]
    for mode, expected in (
            ("multi_hot", [[0, 1, 1, 0, 0], [1, 1, 0, 0, 0]]),
            ("count", [[0, 1, 2, 0, 0], [1, 1, 0, 0, 0]])):
        layer = layers.TextVectorization(output_mode=mode)
        layer.adapt(docs)
        assert layer.get_vocabulary() == ["[UNK]", "c", "b", "d", "a"]
        _eq(layer(["b c b", "c e"]), expected)
    tfidf = layers.TextVectorization(output_mode="tf_idf", pad_to_max_tokens=True, max_tokens=7)
    tfidf.adapt(docs)
    # idf = log(1 + N / (1 + document frequency)); OOV gets the mean; padded to max_tokens
    df = np.array([2, 2, 1, 1])  # c, b, d, a
    idf = np.log(1 + 3 / (1 + df))
    expected = np.zeros(7)
    expected[[0, 1, 2]] = [idf.mean() * 1, idf[0] * 1, idf[1] * 2]
    _eq(tfidf(["b c b zz"]), expected[None])
    assert tfidf.compute_output_shape((None, 1)) == (None, 7)


def test_text_vectorization_learns_on_fortunes_with_fit_on_strings(tmp_path):
    texts, labels = [], []
    for label, name in enumerate(("computers", "food")):
        with open(f"/usr/share/games/fortunes/{name}", encoding="utf-8",
                  errors="replace") as handle:
            entries = [e.strip() for e in handle.read().split("\n%\n") if e.strip()][:100]
        texts += entries
        labels += [label] * len(entries)
    order = np.random.default_rng(0).permutation(len(texts))
    texts, labels = np.array(texts)[order], np.array(labels)[order]
    keras.utils.set_random_seed(0)
    vectorize = layers.TextVectorization(max_tokens=1500, output_sequence_length=30)
    vectorize.adapt(texts)
    inputs = keras.Input(shape=(1,), dtype="string")
    x = layers.Embedding(1500, 16)(vectorize(inputs))
    outputs = layers.Dense(1, activation="sigmoid")(layers.GlobalAveragePooling1D()(x))
    model = keras.Model(inputs, outputs)
    model.compile(optimizer=keras.optimizers.Adam(0.02), loss="binary_crossentropy",
                  metrics=["accuracy"])
    history = model.fit(texts, labels, epochs=10, batch_size=50, verbose=0)
    assert history.history["loss"][-1] < 0.8 * history.history["loss"][0]
    assert history.history["accuracy"][-1] > 0.8
    before = model.predict(texts[:8], verbose=0)
    model.save(tmp_path / "text.keras")
    with zipfile.ZipFile(tmp_path / "text.keras") as archive:
        names = archive.namelist()
        saved = archive.read("assets/layers/text_vectorization/vocabulary.txt").decode()
        config = json.loads(archive.read("config.json"))
    assert "assets/layers/text_vectorization/_lookup_layer/vocabulary.txt" in names
    assert saved.split("\n") == vectorize.get_vocabulary()
    assert config["config"]["layers"][0]["config"]["dtype"] == "string"
    reloaded = keras.models.load_model(tmp_path / "text.keras")
    assert reloaded.layers[1].get_vocabulary() == vectorize.get_vocabulary()
    _eq(reloaded.predict(texts[:8], verbose=0), before)
    _eq(model(texts[:8].reshape(-1, 1)).detach(), before)


def test_vocabulary_file_and_config_round_trip(tmp_path):
    path = tmp_path / "vocab.txt"
    path.write_text("a\nb\nc\n", encoding="utf-8")
    lookup = layers.StringLookup(vocabulary=str(path))
    assert lookup.get_vocabulary() == ["[UNK]", "a", "b", "c"]
    config = layers.StringLookup(vocabulary=VOCAB, mask_token="").get_config()
    assert set(config) - {"name", "trainable"} == {
        "invert", "max_tokens", "num_oov_indices", "oov_token", "mask_token", "output_mode",
        "sparse", "pad_to_max_tokens", "idf_weights", "vocabulary", "vocabulary_size",
        "oov_method", "salt", "encoding"}
    again = layers.StringLookup.from_config(config)
    assert again.get_vocabulary() == ["", "[UNK]", *VOCAB]
    text = layers.TextVectorization(ngrams=(1, 2), vocabulary=["x"]).get_config()
    assert layers.TextVectorization.from_config(json.loads(json.dumps(text)))._ngrams == (1, 2)


def test_bad_inputs_and_arguments():
    with pytest.raises(InputTypeError, match="strings"):
        layers.TextVectorization().adapt(np.arange(5))
    with pytest.raises(InputTypeError, match="strings"):
        layers.StringLookup(vocabulary=VOCAB)(np.array([1.5, 2.0]))
    with pytest.raises(ConfigError, match="output_mode"):
        layers.TextVectorization(output_mode="embedding")
    with pytest.raises(ConfigError, match="output_mode"):
        layers.StringLookup(output_mode="bag")
    with pytest.raises(ConfigError, match="repeated term.*'a'"):
        layers.StringLookup(vocabulary=["a", "b", "a"])
    with pytest.raises(ConfigError, match="empty vocabulary"):
        layers.StringLookup(vocabulary=[])
    with pytest.raises(ConfigError, match="max_tokens"):
        layers.StringLookup(max_tokens=3, vocabulary=VOCAB)
    with pytest.raises(ConfigError, match="mask token"):
        layers.StringLookup(vocabulary=["a", ""], mask_token="")
    with pytest.raises(ConfigError, match="idf_weights"):
        layers.StringLookup(vocabulary=VOCAB, output_mode="tf_idf")
    with pytest.raises(ConfigError, match="standardize"):
        layers.TextVectorization(standardize="upper")
    with pytest.raises(ConfigError, match="ngrams"):
        layers.TextVectorization(ngrams="2")
    with pytest.raises(ConfigError, match="output_sequence_length"):
        layers.TextVectorization(output_mode="count", output_sequence_length=3)
    with pytest.raises(ConfigError, match="static vocabulary"):
        layers.StringLookup(vocabulary=VOCAB).adapt(["a"])
    with pytest.raises(DataError, match="num_oov_indices=0"):
        layers.StringLookup(vocabulary=VOCAB, num_oov_indices=0)(["a", "q"])
    with pytest.raises(DataError, match="vocabulary before calling"):
        layers.StringLookup(output_mode="multi_hot")(["a"])
    with pytest.raises(ShapeError, match="last shape dimension must be 1"):
        layers.TextVectorization(vocabulary=["a"])(np.array([["a", "b"]]))
    with pytest.raises(ConfigError, match="num_bins"):
        layers.Hashing(num_bins=0)
    with pytest.raises(ConfigError, match="salt"):
        layers.Hashing(num_bins=2, salt="x")
    with pytest.raises(ConfigError, match="num_bins.*bin_boundaries"):
        layers.Discretization(num_bins=2, bin_boundaries=[0.0])
    with pytest.raises(ConfigError, match="either"):
        layers.Discretization()
    with pytest.raises(ConfigError, match="vocabulary_dtype"):
        layers.IntegerLookup(vocabulary_dtype="int32")
    model = keras.Sequential([keras.Input(shape=(2,)), layers.Dense(1)])
    with pytest.raises(InputTypeError):
        model.predict(np.array([["a", "b"]], dtype=object), verbose=0)
    assert isinstance(layers.StringLookup(vocabulary=VOCAB)("a"), torch.Tensor)


def test_text_dataset_from_directory_fit_and_adapt(tmp_path):
    texts = {"neg": ["bad awful", "awful day", "bad bad"], "pos": ["good fine", "fine day",
                                                                "good good", "nice"]}
    for label, items in texts.items():
        (tmp_path / label).mkdir()
        for i, text in enumerate(items):
            (tmp_path / label / f"{i}.txt").write_text(text, encoding="utf-8")
    (tmp_path / "pos" / "skip.md").write_text("not a .txt file")
    data = keras.utils.text_dataset_from_directory(tmp_path, batch_size=4, shuffle=False,
                                                   max_length=4, verbose=False)
    assert data.class_names == ["neg", "pos"] and len(data) == 2
    first_texts, first_labels = data[0]
    assert first_texts.tolist() == ["bad ", "awfu", "bad ", "good"]  # files sorted, cut to 4
    assert first_labels.tolist() == [0, 0, 0, 1]
    train, val = keras.utils.text_dataset_from_directory(
        tmp_path, batch_size=2, validation_split=0.3, subset="both", seed=3, verbose=False)
    assert len(train.file_paths) == 5 and len(val.file_paths) == 2
    assert not set(train.file_paths) & set(val.file_paths)
    vectorize = layers.TextVectorization(output_sequence_length=3)
    vectorize.adapt(keras.utils.text_dataset_from_directory(tmp_path, verbose=False))
    assert set(vectorize.get_vocabulary()[2:]) == {"bad", "awful", "day", "good", "fine", "nice"}
    model = keras.Sequential([keras.Input(shape=(1,), dtype="string"), vectorize,
                              layers.Embedding(10, 4), layers.GlobalAveragePooling1D(),
                              layers.Dense(2, activation="softmax")])
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
    model.fit(train, validation_data=val, epochs=1, verbose=0)
    assert model.predict(val, verbose=0).shape == (2, 2)
    assert np.isfinite(model.evaluate(val, verbose=0))
    with pytest.raises(ConfigError, match="seed"):
        keras.utils.text_dataset_from_directory(tmp_path, validation_split=0.2,
                                                subset="training")
    with pytest.raises(ConfigError, match="label_mode"):
        keras.utils.text_dataset_from_directory(tmp_path, label_mode="sparse")


def test_lookup_and_hashing_models_round_trip_through_keras_archives(tmp_path):
    strings = np.array([["a", "b"], ["c", "a"], ["z", "b"]])
    lookup = layers.StringLookup(output_mode="multi_hot")
    lookup.adapt(strings)
    model = keras.Sequential([keras.Input(shape=(2,), dtype="string"), lookup, layers.Dense(3)])
    model.save(tmp_path / "lookup.keras")
    with zipfile.ZipFile(tmp_path / "lookup.keras") as archive:
        assert archive.read("assets/layers/string_lookup/vocabulary.txt").decode() == \
            "[UNK]\nb\na\nz\nc"
    back = keras.models.load_model(tmp_path / "lookup.keras")  # depth known before the asset
    _eq(back.predict(strings, verbose=0), model.predict(strings, verbose=0))
    integers = layers.IntegerLookup()
    integers.adapt(np.array([5, 5, 7, 9]))
    assert integers.get_vocabulary() == [-1, 5, 9, 7]
    model = keras.Sequential([keras.Input(shape=(1,), dtype="int64"), integers,
                              layers.Embedding(5, 2), layers.Flatten()])
    model.save(tmp_path / "integers.keras")
    back = keras.models.load_model(tmp_path / "integers.keras")
    ids = np.array([[5], [9], [3]])
    _eq(back.predict(ids, verbose=0), model.predict(ids, verbose=0))
    hashed = keras.Sequential([keras.Input(shape=(1,), dtype="string"),
                               layers.Hashing(num_bins=4, output_mode="one_hot", salt=7),
                               layers.Dense(2)])
    hashed.save(tmp_path / "hashing.keras")
    back = keras.models.load_model(tmp_path / "hashing.keras")
    _eq(back.predict(np.array([["A"], ["B"]]), verbose=0),
        hashed.predict(np.array([["A"], ["B"]]), verbose=0))


def test_asset_paths_equal_real_keras_saving(tmp_path):
    """Real Keras's saving walk, run on stand-in layers of the same class name (its own
    TextVectorization needs TensorFlow), puts assets where bigmodel does."""
    real = _real_keras()

    class Inner(real.layers.Layer):
        def call(self, x):
            return x

        def save_assets(self, dir_path):
            with open(os.path.join(dir_path, "vocabulary.txt"), "w") as handle:
                handle.write("inner")

    class TextVectorization(real.layers.Layer):  # noqa: N801 - Keras's class name on purpose
        def __init__(self, **kwargs):
            super().__init__(**kwargs)
            self._lookup_layer = Inner()

        def build(self, input_shape):
            pass

        def call(self, x):
            return x

        def save_assets(self, dir_path):
            Inner.save_assets(self, dir_path)

    theirs = real.Sequential([real.Input(shape=(1,)), TextVectorization(), TextVectorization()])
    theirs.save(tmp_path / "theirs.keras")
    first, second = layers.TextVectorization(output_mode="count"), layers.TextVectorization()
    first.adapt(["x y"])  # adapted vocabularies are written as assets
    second.adapt(["y z"])
    ours = keras.Sequential([keras.Input(shape=(1,), dtype="string"), first, second])
    ours.save(tmp_path / "ours.keras")

    def assets(path):
        with zipfile.ZipFile(path) as archive:
            return sorted(n for n in archive.namelist() if n.startswith("assets/"))

    assert assets(tmp_path / "ours.keras") == assets(tmp_path / "theirs.keras")


@pytest.mark.parametrize("pad", [False, True])
def test_tf_idf_weights_round_trip_in_the_weights_file(tmp_path, pad):
    vectorize = layers.TextVectorization(output_mode="tf_idf", max_tokens=8,
                                         pad_to_max_tokens=pad)
    vectorize.adapt(np.array(["a b b", "b c", "c c c d"]))
    model = keras.Sequential([keras.Input(shape=(1,), dtype="string"), vectorize,
                              layers.Dense(2)])
    model.save(tmp_path / "tfidf.keras")
    import h5py

    with zipfile.ZipFile(tmp_path / "tfidf.keras") as archive:
        with h5py.File(io.BytesIO(archive.read("model.weights.h5"))) as h5:
            stored = h5["layers/text_vectorization/vars/idf_weights"][()]
            inner = h5["layers/text_vectorization/_lookup_layer/vars/idf_weights"][()]
    _eq(stored, vectorize._lookup_layer.idf_weights)
    _eq(inner, stored)
    assert len(stored) == (8 if pad else 5)
    back = keras.models.load_model(tmp_path / "tfidf.keras")
    texts = np.array(["b c b zz", "d"])
    _eq(back.predict(texts, verbose=0), model.predict(texts, verbose=0))
