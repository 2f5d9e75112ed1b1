"""layers.RandomContrast and layers.RandomBrightness: Keras 3's factor parsing, per-image
factors in range, clipping to value_range, identity at inference, configs, bad arguments."""

from __future__ import annotations

import os

import numpy as np
import pytest
import torch

from bigmodel import keras
from bigmodel.errors import ConfigError, ShapeError

IMAGES = torch.tensor(np.random.default_rng(0).uniform(40, 200, (6, 5, 5, 3)), dtype=torch.float32)


def test_contrast_scales_each_image_around_its_channel_means():
    layer = keras.layers.RandomContrast((0.3, 0.5), seed=1)
    out = layer(IMAGES, training=True)
    mean = IMAGES.mean(dim=(1, 2), keepdim=True)
    ratio = (out - mean) / (IMAGES - mean)  # the contrast factor, one per image
    per_image = ratio.reshape(6, -1)
    # (pixels near their channel's mean divide small numbers: a relative tolerance)
    torch.testing.assert_close(per_image, per_image[:, :1].expand_as(per_image), rtol=1e-3,
                               atol=1e-3)
    assert ((per_image[:, 0] >= 0.7) & (per_image[:, 0] <= 1.5)).all()
    assert per_image[:, 0].unique().numel() == 6  # a factor per image
    assert torch.equal(layer(IMAGES, training=False), IMAGES)
    # a single number raises contrast only, as Keras 3 reads it: factor (0, f)
    assert keras.layers.RandomContrast(0.2).factor == (0.0, 0.2)
    strong = keras.layers.RandomContrast((0.0, 1.0), value_range=(50, 180), seed=2)
    clipped = strong(IMAGES, training=True)
    assert clipped.min() >= 50 and clipped.max() <= 180


def test_brightness_shifts_each_image_by_a_delta_in_range():
    layer = keras.layers.RandomBrightness(0.1, value_range=(0, 255), seed=3)
    out = layer(IMAGES, training=True)
    shift = (out - IMAGES).reshape(6, -1)
    torch.testing.assert_close(shift, shift[:, :1].expand_as(shift))  # no pixel clipped here
    assert (shift.abs() <= 0.1 * 255 + 1e-4).all()
    one = layer(IMAGES[0], training=True)  # a single image
    assert one.shape == IMAGES[0].shape
    saturated = keras.layers.RandomBrightness((0.9, 1.0), seed=4)(IMAGES, training=True)
    assert torch.equal(saturated, torch.full_like(IMAGES, 255.0))
    again = keras.layers.RandomBrightness(0.1, seed=3)
    assert torch.equal(again(IMAGES, training=True), out)  # the same seed, the same draws


def test_configs_and_factor_parsing_match_real_keras():
    os.environ.setdefault("KERAS_BACKEND", "torch")
    real = pytest.importorskip("keras", reason="real Keras 3 (dev dependency) is not installed")
    for name in ("RandomContrast", "RandomBrightness"):
        for factor in (0.2, (0.1, 0.3), [0.5, 0.2], 1.0):
            ours = getattr(keras.layers, name)(factor, seed=5)
            theirs = getattr(real.layers, name)(factor, seed=5)
            assert ours.factor == pytest.approx(theirs.factor)
            mine = {k: v for k, v in ours.get_config().items() if k != "name"}
            keras_config = {k: v for k, v in theirs.get_config().items()
                            if k not in ("name", "dtype")}
            assert mine.pop("factor") == pytest.approx(keras_config.pop("factor"))
            keras_config["value_range"] = list(keras_config["value_range"])
            assert mine == keras_config
        model = keras.Sequential([keras.Input((5, 5, 3)), getattr(keras.layers, name)(0.2)])
        np.testing.assert_array_equal(model.predict(IMAGES.numpy(), verbose=0), IMAGES.numpy())


def test_bad_arguments():
    with pytest.raises(ConfigError, match=r"range \[0.0, 1.0\]. Received: factor=1.5"):
        keras.layers.RandomContrast(1.5)
    with pytest.raises(ConfigError, match=r"factor='x'"):
        keras.layers.RandomBrightness("x")
    with pytest.raises(ConfigError, match=r"value_range=\(0,\)"):
        keras.layers.RandomBrightness(0.1, value_range=(0,))
    with pytest.raises(ShapeError, match="rank 3 or 4"):
        keras.layers.RandomContrast(0.1)(torch.zeros(2, 3), training=True)
