"""keras.utils.timeseries_dataset_from_array and keras.utils.image_dataset_from_directory:
windows, targets, files, labels, splits and resizing against loops / NumPy, models trained from
them, bad arguments and files."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from bigmodel import keras
from bigmodel.errors import ConfigError, DataError, DataFileError, NotSupportedError, ShapeError


def test_timeseries_dataset_windows_targets_and_fit():
    data = np.arange(100, dtype=np.float32)
    dataset = keras.utils.timeseries_dataset_from_array(data[:-10], data[10:], sequence_length=10,
                                                       batch_size=16)
    inputs, targets = dataset[0]
    np.testing.assert_array_equal(inputs[0], data[:10])  # Keras's documented example
    assert targets[0] == data[10] and len(dataset) == -(-81 // 16)
    # strides, sampling rate and a start/end range against a loop over the windows
    series = np.random.default_rng(11).normal(size=(60, 3)).astype(np.float32)
    labels = np.arange(60)
    dataset = keras.utils.timeseries_dataset_from_array(
        series, labels, sequence_length=4, sequence_stride=3, sampling_rate=2, batch_size=5,
        start_index=5, end_index=50)
    starts = list(range(5, 50 - 3 * 2, 3))
    windows = np.stack([series[s:s + 8:2] for s in starts])
    got_x = np.concatenate([batch[0] for batch in dataset])
    got_y = np.concatenate([batch[1] for batch in dataset])
    np.testing.assert_array_equal(got_x, windows)
    np.testing.assert_array_equal(got_y, starts)
    shuffled = keras.utils.timeseries_dataset_from_array(
        series, labels, sequence_length=4, sequence_stride=3, sampling_rate=2, batch_size=5,
        start_index=5, end_index=50, shuffle=True, seed=1)
    order = np.concatenate([batch[1] for batch in shuffled])
    assert sorted(order) == starts and list(order) != starts
    # fit / evaluate take it: an LSTM learns the next value of a sine wave
    torch.manual_seed(0)
    wave = np.sin(np.arange(200) * 0.1).astype(np.float32)[:, None]
    train = keras.utils.timeseries_dataset_from_array(wave[:-8], wave[8:, 0], sequence_length=8,
                                                      batch_size=32, shuffle=True, seed=0)
    model = keras.Sequential([keras.Input((8, 1)), keras.layers.LSTM(8), keras.layers.Dense(1)])
    model.compile(optimizer=keras.optimizers.Adam(0.02), loss="mse")
    history = model.fit(train, epochs=6, verbose=0)
    assert history.history["loss"][-1] < 0.2 * history.history["loss"][0]


def test_timeseries_dataset_bad_arguments():
    data = np.zeros(20)
    make = keras.utils.timeseries_dataset_from_array
    with pytest.raises(ConfigError, match=r"`sequence_stride` must be an int higher than 0"):
        make(data, None, 4, sequence_stride=0)
    with pytest.raises(ConfigError, match=r"`sampling_rate` must be lower than the length"):
        make(data, None, 4, sampling_rate=20)
    with pytest.raises(ConfigError, match=r"start_index=15, end_index=10"):
        make(data, None, 4, start_index=15, end_index=10)
    with pytest.raises(NotSupportedError, match=r"batch_size=None"):
        make(data, None, 4, batch_size=None)
    with pytest.raises(ShapeError, match="steps axis"):
        make(np.float32(1.0), None, 4)


def _image_folder(root, sizes=((6, 5), (4, 4), (5, 7))):
    from PIL import Image

    colours = {"cats": 40, "dogs": 200}
    files = {}
    for name, value in colours.items():
        (root / name / "sub").mkdir(parents=True)
        for i, (h, w) in enumerate(sizes):
            pixels = np.full((h, w, 3), value, np.uint8)
            pixels[0, 0] = (i, 2 * i, 3 * i)
            where = root / name / ("sub" if i == 2 else "") / f"img{i}.png"
            Image.fromarray(pixels).save(where)
            files[str(where)] = pixels
    (root / "cats" / "notes.txt").write_text("not an image")
    return files


def test_image_dataset_from_directory_classes_labels_split_and_resize(tmp_path, capsys):
    files = _image_folder(tmp_path)
    make = keras.utils.image_dataset_from_directory
    dataset = make(tmp_path, image_size=(4, 4), batch_size=4, shuffle=False)
    assert "Found 6 files belonging to 2 classes." in capsys.readouterr().out
    assert dataset.class_names == ["cats", "dogs"] and len(dataset) == 2
    expected_order = [str(tmp_path / c / f) for c in ("cats", "dogs")
                      for f in ("img0.png", "img1.png", "sub/img2.png")]
    assert dataset.file_paths == expected_order
    images, labels = dataset[0]
    assert images.shape == (4, 4, 4, 3) and images.dtype == np.float32
    assert labels.tolist() == [0, 0, 0, 1] and labels.dtype == np.int32
    np.testing.assert_array_equal(images[1], files[expected_order[1]])  # 4x4 kept as is
    reference = torch.nn.functional.interpolate(
        torch.tensor(files[expected_order[0]], dtype=torch.float32).permute(2, 0, 1)[None],
        size=(4, 4), mode="bilinear", align_corners=False)[0].permute(1, 2, 0).numpy()
    np.testing.assert_allclose(images[0], reference, rtol=1e-6)
    gray = make(tmp_path, image_size=(2, 2), color_mode="grayscale", label_mode="categorical",
                shuffle=False, verbose=False)
    images, labels = gray[0]
    assert images.shape == (6, 2, 2, 1) and labels.tolist()[0] == [1.0, 0.0]
    assert make(tmp_path, label_mode="binary", shuffle=False, verbose=False)[0][1].shape == (6, 1)
    train, val = make(tmp_path, image_size=(2, 2), validation_split=0.34, subset="both", seed=3,
                      verbose=False)
    assert len(train.file_paths) == 4 and len(val.file_paths) == 2
    assert sorted(train.file_paths + val.file_paths) == sorted(expected_order)
    again = make(tmp_path, image_size=(2, 2), validation_split=0.34, subset="validation",
                 seed=3, verbose=False)
    assert again.file_paths == val.file_paths  # the same seed splits the same way
    unlabeled = make(tmp_path, labels=None, image_size=(2, 2), verbose=False)
    assert unlabeled[0].shape == (6, 2, 2, 3)


def test_image_dataset_trains_a_model_and_bad_arguments(tmp_path):
    _image_folder(tmp_path)
    make = keras.utils.image_dataset_from_directory
    train = make(tmp_path, image_size=(4, 4), batch_size=2, seed=0, verbose=False)
    torch.manual_seed(0)
    model = keras.Sequential([keras.Input((4, 4, 3)), keras.layers.Rescaling(1 / 255),
                              keras.layers.Flatten(), keras.layers.Dense(2)])
    model.compile(optimizer=keras.optimizers.Adam(0.05),
                  loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
                  metrics=["accuracy"])
    history = model.fit(train, epochs=10, verbose=0)
    assert history.history["accuracy"][-1] == 1.0
    with pytest.raises(ConfigError, match="needs a seed"):
        make(tmp_path, validation_split=0.2, subset="training")
    with pytest.raises(ConfigError, match="exactly 2 classes"):
        (tmp_path / "birds").mkdir()
        (tmp_path / "birds" / "x.png").write_bytes((tmp_path / "cats" / "img0.png").read_bytes())
        make(tmp_path, label_mode="binary", verbose=False)
    with pytest.raises(NotSupportedError, match="crop_to_aspect_ratio"):
        make(tmp_path, crop_to_aspect_ratio=True)
    with pytest.raises(NotSupportedError, match="labels given as a list"):
        make(tmp_path, labels=[0, 1])
    (tmp_path / "dogs" / "broken.png").write_text("not a png")
    with pytest.raises(DataFileError, match="broken.png"):
        broken = make(tmp_path, shuffle=False, verbose=False, batch_size=16)
        broken[0]
    with pytest.raises(DataError, match="no images"):
        (tmp_path / "empty" / "a").mkdir(parents=True)
        make(tmp_path / "empty", verbose=False)
