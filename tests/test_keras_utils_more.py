"""keras.utils: Progbar, image files (load/save/array conversions), split_dataset,
get_source_inputs, audio_dataset_from_directory, Config and interactive logging (also in
keras.config), against real Keras 3 (torch backend) where it is installed."""

from __future__ import annotations

import contextlib
import io
import logging
import os
import re
import shutil

import numpy as np
import pytest
import torch

from bigmodel import keras
from bigmodel.errors import ConfigError, DataError, InputTypeError, NotSupportedError, ShapeError
from bigmodel.keras import layers, utils

RNG = np.random.default_rng(0)


def _real():
    os.environ.setdefault("KERAS_BACKEND", "torch")
    real = pytest.importorskip("keras")
    if real.backend.backend() != "torch":  # pragma: no cover - another backend chosen first
        pytest.skip("real Keras runs on another backend here")
    return real


def _progbar_text(module, verbose, updates, **kwargs):
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        bar = module.Progbar(4, verbose=verbose, interval=0.0, **kwargs)
        for step, values in updates:
            bar.update(step, values)
    text = re.sub(r"\x1b\[[0-9;]*m", "", out.getvalue())  # Keras's colours
    return re.sub(r"\d+(ms|us|s)/step|\d+s\b", "T", text)  # timings


def test_progbar_prints_what_keras_prints():
    real = _real()
    updates = [(1, [("loss", 0.5), ("acc", 0.25)]), (3, [("loss", 0.2), ("acc", 0.75)]),
               (4, [("loss", 0.1), ("acc", 1.0)])]
    assert _progbar_text(utils, 2, updates) == _progbar_text(real.utils, 2, updates)
    ours = _progbar_text(utils, 2, updates[:2] + [(4, [("loss", 0.1)])], stateful_metrics=["acc"])
    theirs = _progbar_text(real.utils, 2, updates[:2] + [(4, [("loss", 0.1)])],
                           stateful_metrics=["acc"])
    assert ours == theirs
    # averaging: loss after step 3 is (0.5 * 1 + 0.2 * 2) / 3, shown by verbose=1 lines
    lines = _progbar_text(utils, 1, updates[:2]).strip().splitlines()
    assert lines[-1].endswith("loss: 0.3000 - acc: 0.5833"), lines
    with pytest.raises(ConfigError, match="stateful_metrics or stateless_metrics, not both"):
        utils.Progbar(3, stateful_metrics=["a"], stateless_metrics=["b"])


def test_interactive_logging_sends_progress_to_the_logger(caplog):
    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((3,)), layers.Dense(1)])
    model.compile(optimizer="sgd", loss="mse")
    x, y = RNG.normal(size=(8, 3)).astype(np.float32), RNG.normal(size=(8, 1)).astype(np.float32)
    assert keras.config.is_interactive_logging_enabled() and utils.is_interactive_logging_enabled()
    utils.disable_interactive_logging()
    try:
        assert not keras.config.is_interactive_logging_enabled()
        out = io.StringIO()
        with caplog.at_level(logging.INFO, logger="bigmodel.progress"), \
                contextlib.redirect_stdout(out):
            model.fit(x, y, epochs=2, batch_size=4, verbose=2)
            model.summary()
            bar = utils.Progbar(2, verbose=2)
            bar.update(2, [("loss", 1.0)])
        assert out.getvalue() == ""
        messages = [r.getMessage() for r in caplog.records if r.name == "bigmodel.progress"]
        assert any("Epoch 2/2" in m and "loss" in m for m in messages), messages
        assert any(m.startswith("2/2 -") and "loss: 1.0000" in m for m in messages), messages
        assert any("Total params: 4" in m for m in messages), messages
    finally:
        keras.config.enable_interactive_logging()
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        model.fit(x, y, epochs=1, batch_size=4, verbose=2)
    assert "Epoch 1/1" in out.getvalue()


def test_image_files_round_trip_and_match_keras(tmp_path):
    real = _real()
    array = RNG.uniform(0, 255, size=(12, 10, 3)).astype(np.float32)
    for scale in (True, False):
        ours, theirs = utils.array_to_img(array, scale=scale), real.utils.array_to_img(array,
                                                                                   scale=scale)
        assert ours.mode == theirs.mode
        np.testing.assert_array_equal(np.asarray(ours), np.asarray(theirs))
    grey = utils.array_to_img(array[:, :, :1] * 10, scale=False)
    assert grey.mode == real.utils.array_to_img(array[:, :, :1] * 10, scale=False).mode == "I"
    path = tmp_path / "picture.png"
    utils.save_img(path, array, scale=False)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["picture.png"]  # no partial file left
    loaded = utils.img_to_array(utils.load_img(path))
    np.testing.assert_array_equal(loaded, np.floor(array))
    np.testing.assert_array_equal(loaded, real.utils.img_to_array(real.utils.load_img(path)))
    for kwargs in ({"color_mode": "grayscale"}, {"color_mode": "rgba", "target_size": (6, 7)},
                   {"target_size": (5, 5), "interpolation": "bilinear",
                    "keep_aspect_ratio": True}):
        ours = utils.img_to_array(utils.load_img(path, **kwargs), data_format="channels_first")
        theirs = real.utils.img_to_array(real.utils.load_img(path, **kwargs),
                                         data_format="channels_first")
        np.testing.assert_array_equal(ours, theirs)
    utils.save_img(tmp_path / "rgba.jpg", np.concatenate([array, array[..., :1]], -1))
    assert utils.load_img(tmp_path / "rgba.jpg").size == (10, 12)
    assert keras.preprocessing.image.load_img is utils.load_img


def test_smart_resize_matches_keras():
    real = _real()
    for images in (RNG.uniform(size=(7, 12, 3)).astype(np.float32),
                   RNG.uniform(size=(2, 12, 7, 3)).astype(np.float32)):
        for interpolation in ("bilinear", "nearest", "bicubic"):
            ours = keras.preprocessing.image.smart_resize(images, (5, 5), interpolation)
            theirs = real.preprocessing.image.smart_resize(images, (5, 5), interpolation)
            assert isinstance(ours, np.ndarray) and ours.shape == theirs.shape
            np.testing.assert_allclose(ours, theirs, atol=1e-5)
    with pytest.raises(InputTypeError, match="smart_resize: unexpected keyword"):
        keras.preprocessing.image.smart_resize(images, (5, 5), antialias=True)


def test_image_files_bad_input(tmp_path):
    with pytest.raises(ShapeError, match="array_to_img: expected one image of rank 3"):
        utils.array_to_img(np.zeros((2, 4, 4, 3)))
    with pytest.raises(ShapeError, match="array_to_img: images need 1, 3 or 4 channels"):
        utils.array_to_img(np.zeros((4, 4, 2)))
    with pytest.raises(ConfigError, match="load_img: color_mode must be"):
        utils.load_img(tmp_path / "x.png", color_mode="cmyk")
    with pytest.raises(InputTypeError, match="load_img: path must be a path or io.BytesIO"):
        utils.load_img(3)
    (tmp_path / "bad.png").write_bytes(b"not an image")
    with pytest.raises(Exception, match="load_img: .* not an image"):
        utils.load_img(tmp_path / "bad.png")
    with pytest.raises(ConfigError, match="save_img: give file_format"):
        utils.save_img(io.BytesIO(), np.zeros((4, 4, 3)))


def test_split_dataset_sizes_order_and_errors():
    real = _real()
    x, y = np.arange(20, dtype=np.float32).reshape(10, 2), np.arange(10)
    left, right = utils.split_dataset((x, y), left_size=0.7)
    assert (len(left), len(right)) == (7, 3)
    np.testing.assert_array_equal(torch.stack([left[i][0] for i in range(7)]).numpy(), x[:7])
    assert int(right[0][1]) == 7  # not shuffled: the right side follows the left
    theirs = real.utils.split_dataset((x, y), left_size=0.7)
    assert [len(p) for p in theirs] == [7, 3] and type(theirs[0]) is type(left)
    a, b = utils.split_dataset(x, left_size=4, right_size=0.2, shuffle=True, seed=1)
    c, _ = utils.split_dataset(x, left_size=4, right_size=0.2, shuffle=True, seed=1)
    assert (len(a), len(b)) == (4, 2) and a.indices == c.indices != list(range(4))
    assert not set(a.indices) & set(b.indices)
    dataset = torch.utils.data.TensorDataset(torch.arange(5))
    assert [len(p) for p in utils.split_dataset(dataset, right_size=2)] == [3, 2]
    with pytest.raises(ConfigError, match="give left_size or right_size"):
        utils.split_dataset(x)
    with pytest.raises(ConfigError, match=r"left_size must be an int in \(0, 10\)"):
        utils.split_dataset(x, left_size=10)
    with pytest.raises(ConfigError, match="is more than the dataset's 10"):
        utils.split_dataset(x, left_size=6, right_size=5)
    with pytest.raises(InputTypeError, match="split_dataset: dataset must be"):
        utils.split_dataset("data", left_size=0.5)
    with pytest.raises(NotSupportedError, match="preferred_backend='tensorflow'"):
        utils.split_dataset(x, left_size=0.5, preferred_backend="tensorflow")


def test_get_source_inputs_and_config():
    first, second = keras.Input((3,), name="a"), keras.Input((2,), name="b")
    merged = layers.Concatenate()([layers.Dense(2)(first), second])
    out = layers.Dense(1)(merged)
    sources = utils.get_source_inputs(out)
    assert len(sources) == 2 and sources[0] is first and sources[1] is second
    assert utils.get_source_inputs(first) == [first]
    with pytest.raises(InputTypeError, match="get_source_inputs: tensor must be a KerasTensor"):
        utils.get_source_inputs(np.zeros(3))
    config = utils.Config(learning_rate=0.1, momentum=0.9)
    config.seed = 3
    config["batch"] = 8
    assert (config.learning_rate, config["seed"], len(config), "batch" in config) == (
        0.1, 3, 4, True)
    assert config.as_dict() == {"learning_rate": 0.1, "momentum": 0.9, "seed": 3, "batch": 8}
    assert '"momentum": 0.9' in config.to_json()
    with pytest.raises(AttributeError, match="Did you mean 'momentum'"):
        config.momentun  # noqa: B018
    config.freeze()
    with pytest.raises(ConfigError, match="frozen"):
        config.seed = 4
    with pytest.raises(ConfigError, match="frozen"):
        config["seed"] = 4
    config.unfreeze()
    config.seed = 4
    assert config.seed == 4


def _write_clips(root, soundfile):
    """Two classes: rising ramps (up) and falling ramps (down), 3 clips each, 40-60 samples."""
    for label, sign in (("down", -1.0), ("up", 1.0)):
        (root / label).mkdir(parents=True)
        for i in range(3):
            length = 40 + 10 * i
            clip = sign * np.linspace(0.1, 0.9, length, dtype=np.float32)
            soundfile.write(root / label / f"clip{i}.wav", clip, 8000, subtype="FLOAT")


def test_audio_dataset_from_directory(tmp_path):
    soundfile = pytest.importorskip("soundfile")
    _write_clips(tmp_path, soundfile)
    data = utils.audio_dataset_from_directory(tmp_path, batch_size=4, shuffle=False,
                                              verbose=False)
    assert data.class_names == ["down", "up"] and len(data) == 2
    clips, labels = data[0]
    assert clips.shape == (4, 60, 1) and clips.dtype == np.float32  # padded to the longest
    np.testing.assert_array_equal(labels, [0, 0, 0, 1])
    np.testing.assert_allclose(clips[0, :40, 0], -np.linspace(0.1, 0.9, 40), atol=1e-6)
    assert (clips[0, 40:] == 0).all()
    fixed = utils.audio_dataset_from_directory(tmp_path, batch_size=6, output_sequence_length=50,
                                               label_mode="categorical", shuffle=False,
                                               verbose=False)
    clips, labels = fixed[0]
    assert clips.shape == (6, 50, 1) and labels.shape == (6, 2)
    resampled = utils.audio_dataset_from_directory(tmp_path, batch_size=6, sampling_rate=4000,
                                                   shuffle=False, verbose=False)
    assert resampled[0][0].shape == (6, 30, 1)
    train, val = utils.audio_dataset_from_directory(tmp_path, batch_size=2, seed=1,
                                                    validation_split=0.34, subset="both",
                                                    verbose=False)
    assert len(train.paths) == 4 and len(val.paths) == 2
    assert not set(train.paths) & set(val.paths)
    # a model learns the two classes from the dataset
    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((50, 1)), layers.Flatten(), layers.Dense(2)])
    model.compile(optimizer=keras.optimizers.SGD(0.1),
                  loss=keras.losses.CategoricalCrossentropy(from_logits=True))
    history = model.fit(fixed, epochs=5, verbose=0)
    assert history.history["loss"][-1] < 0.5 * history.history["loss"][0]


def test_dataset_messages_follow_interactive_logging(tmp_path, caplog, capsys):
    soundfile = pytest.importorskip("soundfile")
    _write_clips(tmp_path, soundfile)
    utils.audio_dataset_from_directory(tmp_path, shuffle=False)
    assert "Found 6 files belonging to 2 classes." in capsys.readouterr().out
    keras.config.disable_interactive_logging()
    try:
        with caplog.at_level(logging.INFO, logger="bigmodel.progress"):
            utils.audio_dataset_from_directory(tmp_path, shuffle=False)
    finally:
        keras.config.enable_interactive_logging()
    assert capsys.readouterr().out == ""
    assert "Found 6 files belonging to 2 classes." in caplog.messages


def test_audio_dataset_bad_input(tmp_path):
    soundfile = pytest.importorskip("soundfile")
    with pytest.raises(DataError, match=r"no audio files \(.wav\)"):
        utils.audio_dataset_from_directory(tmp_path, verbose=False)
    _write_clips(tmp_path, soundfile)
    with pytest.raises(NotSupportedError, match="ragged=True"):
        utils.audio_dataset_from_directory(tmp_path, ragged=True)
    with pytest.raises(ConfigError, match="label_mode must be"):
        utils.audio_dataset_from_directory(tmp_path, label_mode="sparse")
    with pytest.raises(ConfigError, match="output_sequence_length must be a positive int"):
        utils.audio_dataset_from_directory(tmp_path, output_sequence_length=0)
    with pytest.raises(ConfigError, match="validation_split with shuffling needs a seed"):
        utils.audio_dataset_from_directory(tmp_path, validation_split=0.5, subset="training")
    with pytest.raises(ConfigError, match="class_names .* do not match"):
        utils.audio_dataset_from_directory(tmp_path, class_names=["a", "b"])


def _build_graph(k):
    a, b = k.Input((3,), name="a"), k.Input((2,), name="b")
    hidden = k.layers.Dense(4, activation="relu", name="d1")(a)
    joined = k.layers.Concatenate(name="cat")([hidden, b])
    return k.Model([a, b], k.layers.Dense(1, name="d2")(joined))


def _build_stack(k):
    return k.Sequential([k.Input((3,)), k.layers.Dense(2, name="x"), k.layers.Dense(1, name="y")])


def _dot_summary(dot):
    """Node labels, edges between labels and graph settings (node ids are object ids)."""
    labels = {n.get_name(): n.get("label") for n in dot.get_nodes() if n.get("label")}
    edges = sorted((labels[e.get_source()], labels[e.get_destination()]) for e in dot.get_edges())
    settings = {key: dot.get(key) for key in ("rankdir", "concentrate", "dpi", "splines")}
    return sorted(labels.values()), edges, settings


@pytest.mark.parametrize("options", [
    {}, {"show_shapes": True, "show_dtype": True, "show_layer_activations": True,
         "show_trainable": True}, {"show_layer_names": False, "rankdir": "LR"}])
def test_model_to_dot_matches_keras(options):
    real = _real()
    pytest.importorskip("pydot")
    for build in (_build_graph, _build_stack):
        ours = _dot_summary(utils.model_to_dot(build(keras), **options))
        theirs = _dot_summary(real.utils.model_to_dot(build(real), **options))
        assert ours == theirs
    assert len(_dot_summary(utils.model_to_dot(_build_graph(keras)))[1]) == 4


def test_plot_model_writes_the_file(tmp_path):
    pytest.importorskip("pydot")
    model = _build_graph(keras)
    utils.plot_model(model, to_file=tmp_path / "model.dot", show_shapes=True)
    text = (tmp_path / "model.dot").read_text()
    assert text.startswith("digraph") and "Input shape: <b>[(None, 4), (None, 2)]</b>" in text
    if shutil.which("dot") is not None:
        utils.plot_model(model, to_file=tmp_path / "model.png")
        assert (tmp_path / "model.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert sorted(p.name for p in tmp_path.iterdir())[0] == "model.dot"  # no partial files
    with pytest.raises(ConfigError, match="unknown keyword arguments"):
        utils.model_to_dot(model, layer_range=["a", "d2"])
    with pytest.raises(ConfigError, match="is not built yet"):
        utils.model_to_dot(keras.Sequential([layers.Dense(2)]))
