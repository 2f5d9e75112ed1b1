"""keras.applications.imagenet_utils and the families' preprocess_input / decode_predictions:
equal to real Keras 3's on NumPy arrays, tensors and symbolic inputs; the class index is
downloaded (here from a file:// URL) into the Keras cache with its hash checked; bad input."""

from __future__ import annotations

import hashlib
import json

import numpy as np
import pytest
import torch

from bigmodel import keras
from bigmodel.errors import ConfigError, ShapeError
from bigmodel.keras.applications import imagenet_utils
from keras_reference import real_keras as _real_keras

applications = keras.applications


def test_preprocess_input_equals_real_keras():
    real = _real_keras()
    rng = np.random.default_rng(2)
    images = rng.uniform(0, 255, (2, 5, 4, 3)).astype(np.float32)
    for mode in ("caffe", "tf", "torch"):
        expected = real.applications.imagenet_utils.preprocess_input(images.copy(), mode=mode)
        got = imagenet_utils.preprocess_input(images.copy(), mode=mode)
        np.testing.assert_allclose(got, expected, rtol=1e-6, atol=1e-5)
        tensor = imagenet_utils.preprocess_input(torch.tensor(images), mode=mode)
        np.testing.assert_allclose(tensor.numpy(), expected, rtol=1e-6, atol=1e-5)
    # the family functions pick Keras's mode; integers become float32
    for module, mode in ((applications.resnet50, "caffe"), (applications.vgg16, "caffe"),
                         (applications.mobilenet_v2, "tf"), (applications.resnet_v2, "tf"),
                         (applications.densenet, "torch"), (applications.mobilenet, "tf")):
        pixels = rng.integers(0, 256, (3, 3, 3)).astype(np.uint8)
        np.testing.assert_allclose(
            module.preprocess_input(pixels),
            real.applications.imagenet_utils.preprocess_input(pixels.astype(np.float32),
                                                              mode=mode), rtol=1e-6, atol=1e-5)
    # on a functional model's symbolic input, as in Keras's transfer-learning tutorials
    for mode in ("caffe", "tf", "torch"):
        inputs = keras.Input((5, 4, 3))
        model = keras.Model(inputs, imagenet_utils.preprocess_input(inputs, mode=mode))
        np.testing.assert_allclose(
            model(torch.tensor(images)).numpy(),
            real.applications.imagenet_utils.preprocess_input(images.copy(), mode=mode),
            rtol=1e-6, atol=1e-5)
    # caffe by hand: BGR minus the ImageNet mean
    pixel = np.array([[[10.0, 20.0, 30.0]]], np.float32)
    np.testing.assert_allclose(imagenet_utils.preprocess_input(pixel.copy()),
                               [[[30 - 103.939, 20 - 116.779, 10 - 123.68]]], rtol=1e-6)
    with pytest.raises(ConfigError, match="mode"):
        imagenet_utils.preprocess_input(images, mode="bgr")
    with pytest.raises(ConfigError, match="data_format"):
        imagenet_utils.preprocess_input(images, data_format="channels_first")


def _class_index(tmp_path):
    index = {str(i): [f"n{i:08d}", f"class_{i}"] for i in range(1000)}
    path = tmp_path / "imagenet_class_index.json"
    path.write_text(json.dumps(index))
    return index, path


def test_decode_predictions_downloads_the_index_and_equals_real_keras(tmp_path, monkeypatch):
    real = _real_keras()
    index, path = _class_index(tmp_path)
    monkeypatch.setenv("KERAS_HOME", str(tmp_path / "home"))
    monkeypatch.setattr(imagenet_utils, "CLASS_INDEX", None)
    monkeypatch.setattr(imagenet_utils, "CLASS_INDEX_PATH", path.as_uri())
    monkeypatch.setattr(imagenet_utils, "CLASS_INDEX_HASH",
                        hashlib.md5(path.read_bytes()).hexdigest())
    from keras.src.applications import imagenet_utils as real_utils

    monkeypatch.setattr(real_utils, "CLASS_INDEX", index)
    preds = np.random.default_rng(3).random((2, 1000)).astype(np.float32)
    got = applications.resnet50.decode_predictions(preds, top=3)
    expected = real.applications.resnet50.decode_predictions(preds, top=3)
    assert [[(a, b, float(c)) for a, b, c in row] for row in got] == \
        [[(a, b, float(c)) for a, b, c in row] for row in expected]
    assert (tmp_path / "home" / "models" / "imagenet_class_index.json").is_file()
    with pytest.raises(ShapeError, match=r"\(samples, 1000\).*\(2, 10\)"):
        imagenet_utils.decode_predictions(np.zeros((2, 10)))
