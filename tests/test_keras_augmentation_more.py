"""Keras 3's newer image-augmentation layers (RandomCrop ... AugMix, Pipeline): pixels equal real
Keras 3 (torch backend) given the same random transformation, deterministic layers equal outright,
configs with Keras's keys, identity at inference, seeds, dict inputs with labels, bad arguments,
and a model with several of them in front that trains on Fashion-MNIST."""

from __future__ import annotations

import os
import sys

import numpy as np
import pytest
import torch

from bigmodel import keras
from bigmodel.errors import ConfigError, NotSupportedError, ShapeError

RNG = np.random.default_rng(0)
UNIT = torch.tensor(RNG.uniform(0, 1, (4, 8, 8, 3)), dtype=torch.float32)  # value_range (0, 1)
BYTES = torch.tensor(RNG.integers(0, 256, (4, 8, 8, 3)), dtype=torch.float32)
L = keras.layers


@pytest.fixture(scope="module")
def rk():
    """Real Keras 3 on its torch backend (the reference), imported once per module."""
    if "keras" in sys.modules and os.environ.get("KERAS_BACKEND") != "torch":
        pytest.skip("real Keras was already imported with another backend")
    os.environ["KERAS_BACKEND"] = "torch"
    real = pytest.importorskip("keras", reason="real Keras 3 is not installed")
    if real.backend.backend() != "torch":
        pytest.skip(f"real Keras runs on {real.backend.backend()}, not torch")
    return real


def _np(x):
    return x.detach().cpu().numpy() if isinstance(x, torch.Tensor) else np.asarray(x)


def _close(ours, theirs, atol=1e-5):
    np.testing.assert_allclose(_np(ours), _np(theirs), atol=atol, rtol=1e-5)


# (name, kwargs, images): random layers compared with real Keras through the same transformation
_SAME_TRANSFORMATION = [
    ("RandomGrayscale", {"factor": 0.5}, UNIT),
    ("RandomInvert", {"factor": 0.6, "value_range": (0, 1)}, UNIT),
    ("RandomHue", {"factor": 0.8, "value_range": (0, 1)}, UNIT),
    ("RandomSaturation", {"factor": (0.2, 0.9), "value_range": (0, 1)}, UNIT),
    ("RandomColorDegeneration", {"factor": 0.7, "value_range": (0, 1)}, UNIT),
    ("RandomPosterization", {"factor": (1, 6)}, BYTES),
    ("RandomSharpness", {"factor": 0.9, "value_range": (0, 1)}, UNIT),
    ("Solarization", {"addition_factor": 0.3, "threshold_factor": (0.2, 0.8),
                      "value_range": (0, 1)}, UNIT),
    ("RandomShear", {"x_factor": 0.4, "y_factor": 0.3}, UNIT),
    ("RandomShear", {"x_factor": 0.5, "y_factor": 0.5, "fill_mode": "wrap",
                     "interpolation": "nearest"}, UNIT),
    ("RandomShear", {"x_factor": 0.5, "y_factor": 0.2, "fill_mode": "constant",
                     "fill_value": 0.5}, UNIT),
    ("RandomShear", {"x_factor": 0.6, "y_factor": 0.6, "fill_mode": "nearest"}, UNIT),
    ("RandomPerspective", {"factor": 0.8, "scale": 0.6, "fill_value": 0.25}, UNIT),
    ("RandomPerspective", {"scale": 0.4, "interpolation": "nearest"}, UNIT),
    ("RandomGaussianBlur", {"factor": 0.7, "kernel_size": 5, "sigma": (0.3, 0.9),
                            "value_range": (0, 1)}, UNIT),
    ("RandomCrop", {"height": 5, "width": 6}, UNIT),
    ("RandomCrop", {"height": 10, "width": 6}, UNIT),  # larger than the image: centre + resize
    ("MixUp", {"alpha": 0.4}, UNIT),
    ("CutMix", {"factor": 0.8}, UNIT),
]


@pytest.mark.parametrize("name, kwargs, images", _SAME_TRANSFORMATION,
                         ids=[f"{c[0]}-{i}" for i, c in enumerate(_SAME_TRANSFORMATION)])
def test_same_transformation_same_pixels_as_real_keras(rk, name, kwargs, images):
    theirs = getattr(rk.layers, name)(**kwargs, seed=3)
    ours = getattr(L, name)(**kwargs, seed=3)
    for _ in range(2):  # two independent draws
        transformation = theirs.get_random_transformation(images, training=True)
        expected = theirs.transform_images(images.clone(), transformation, training=True)
        _close(ours.transform_images(images.clone(), transformation), expected)
        if name in ("MixUp", "CutMix"):
            labels = torch.eye(4)[[0, 1, 2, 3]]
            _close(ours.transform_labels(labels, transformation),
                   theirs.transform_labels(labels, transformation))
    # our own draws: the same keys and shapes as Keras's
    mine = ours.get_random_transformation(images, training=True)
    if isinstance(transformation, dict):
        assert set(mine) == set(transformation)
        for key, value in transformation.items():
            if isinstance(value, torch.Tensor):
                assert tuple(mine[key].shape) == tuple(value.shape), key


def test_elastic_transform_same_noise_same_pixels_as_real_keras(rk):
    kwargs = {"factor": 0.9, "scale": (0.5, 1.0), "value_range": (0, 1)}
    theirs = rk.layers.RandomElasticTransform(**kwargs)
    ours = L.RandomElasticTransform(**kwargs)
    images = torch.tensor(RNG.uniform(0, 1, (3, 20, 20, 2)), dtype=torch.float32)
    transformation = theirs.get_random_transformation(images, training=True)
    torch.manual_seed(11)  # Keras draws the displacement noise from torch's global generator
    expected = theirs.transform_images(images, transformation, training=True)
    generator = torch.Generator().manual_seed(11)
    noise = torch.stack([torch.normal(0.0, 1.0, (3, 20, 20), generator=generator)
                         for _ in range(2)])
    _close(ours.transform_images(images, {**transformation, "noise": noise}), expected)


@pytest.mark.parametrize("name, kwargs, images", [
    ("AutoContrast", {"value_range": (0, 1)}, UNIT * 0.5 + 0.2),
    ("AutoContrast", {}, BYTES),
    ("Equalization", {}, BYTES),
    ("Equalization", {"value_range": (0, 1), "bins": 16}, UNIT),
    ("ContrastLimitedAdaptiveHistogramEqualization",
     {"tile_grid_size": (2, 2), "clip_limit": 40.0}, BYTES),
    ("ContrastLimitedAdaptiveHistogramEqualization",  # 8 = 3 tiles of 3 rows: padded
     {"tile_grid_size": (3, 3), "clip_limit": 0.0, "value_range": (0, 1)}, UNIT),
    ("RandomGrayscale", {"factor": 1.0}, BYTES),
    ("RandomInvert", {"factor": (1.0, 1.0)}, BYTES),
], ids=lambda v: v if isinstance(v, str) else "")
def test_deterministic_layers_equal_real_keras(rk, name, kwargs, images):
    theirs = getattr(rk.layers, name)(**kwargs)
    ours = getattr(L, name)(**kwargs)
    expected = theirs(images, training=True)
    assert not np.allclose(_np(expected), _np(images), atol=1e-3)  # a real change to compare
    _close(ours(images, training=True), expected, atol=1e-4)
    _close(ours(images[0], training=True), theirs(images[0], training=True), atol=1e-4)


_CONFIG_CASES = [
    ("RandomCrop", {"height": 4, "width": 5, "seed": 2}),
    ("RandomGrayscale", {"factor": 0.3}),
    ("RandomHue", {"factor": 0.4}),
    ("RandomSaturation", {"factor": (0.1, 0.6)}),
    ("RandomColorJitter", {"brightness_factor": 0.2, "contrast_factor": 0.3,
                           "saturation_factor": 0.5, "hue_factor": 0.1}),
    ("RandomColorDegeneration", {"factor": 0.5}),
    ("RandomInvert", {}),
    ("RandomPosterization", {"factor": 4}),
    ("RandomSharpness", {"factor": 0.2}),
    ("RandomShear", {"x_factor": 0.2, "y_factor": (0.1, 0.3)}),
    ("RandomPerspective", {"scale": 0.5}),
    ("RandomGaussianBlur", {"kernel_size": (3, 5), "sigma": (0.2, 0.8)}),
    ("RandomElasticTransform", {"scale": 0.5}),
    ("Solarization", {"addition_factor": 0.2, "threshold_factor": 0.5}),
    ("AutoContrast", {}),
    ("Equalization", {"bins": 64}),
    ("ContrastLimitedAdaptiveHistogramEqualization", {"clip_limit": 3.0}),
    ("CutMix", {"factor": 0.5}),
    ("MixUp", {"alpha": 0.3}),
    ("RandAugment", {"num_ops": 3, "factor": 0.4}),
    ("AugMix", {"num_chains": 2, "all_ops": False}),
    ("MaxNumBoundingBoxes", {"max_number": 5}),
]


def _plain(value):
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value


@pytest.mark.parametrize("name, kwargs", _CONFIG_CASES, ids=[c[0] for c in _CONFIG_CASES])
def test_config_keys_and_values_match_real_keras(rk, name, kwargs):
    theirs = getattr(rk.layers, name)(**kwargs).get_config()
    layer = getattr(L, name)(**kwargs)
    ours = layer.get_config()
    drop = ("name", "dtype", "trainable")
    assert sorted(k for k in ours if k not in drop) == sorted(k for k in theirs if k not in drop)
    for key in theirs:
        if key not in drop:
            assert _plain(ours[key]) == pytest.approx(_plain(theirs[key])), key
    rebuilt = type(layer).from_config(ours)  # and the config rebuilds the layer
    assert _plain(rebuilt.get_config()) == _plain({**ours, "name": rebuilt.name})


def test_every_new_layer_is_identity_at_inference_and_keeps_shapes():
    images = BYTES
    s = {"seed": 7}  # seeded: which images a probability-driven layer changes is fixed
    layers = [L.RandomCrop(5, 5, **s), L.RandomGrayscale(1.0, **s), L.RandomHue(0.5, **s),
              L.RandomSaturation(0.5, **s),
              L.RandomColorJitter(brightness_factor=0.3, hue_factor=0.3, **s),
              L.RandomColorDegeneration(0.5, **s), L.RandomInvert(**s),
              L.RandomPosterization(3, **s), L.RandomSharpness(0.5, **s),
              L.RandomShear(0.3, 0.3, **s), L.RandomPerspective(**s), L.RandomGaussianBlur(**s),
              L.RandomElasticTransform(**s), L.Solarization(0.5, 0.5, **s), L.Equalization(),
              L.CutMix(**s), L.MixUp(**s), L.RandAugment(**s), L.AugMix(**s),
              L.Pipeline([L.RandomInvert(**s), L.RandomShear(0.2, **s)])]
    for layer in layers:
        assert torch.equal(layer(images, training=False), images), layer.name
        out = layer(images, training=True)
        assert out.dtype == torch.float32
        expected = (4, 5, 5, 3) if isinstance(layer, L.RandomCrop) else images.shape
        assert tuple(out.shape) == tuple(expected), layer.name
        assert not torch.equal(out, images), layer.name
    # integer images come back as float32 (Keras casts to the compute dtype)
    assert L.RandomInvert()(BYTES.to(torch.uint8), training=True).dtype == torch.float32


def test_seed_repeats_and_channels_first():
    for make in (lambda: L.RandomHue(0.5, seed=4), lambda: L.RandomShear(0.3, 0.3, seed=4),
                 lambda: L.MixUp(seed=4), lambda: L.AugMix(seed=4),
                 lambda: L.RandAugment(seed=4), lambda: L.RandomPerspective(seed=4)):
        first, second = make(), make()
        for _ in range(2):
            torch.testing.assert_close(first(BYTES, training=True), second(BYTES, training=True))
    # channels_first gives the channels-last result, transposed
    last, first = L.RandomShear(0.4, 0.4, seed=1), L.RandomShear(0.4, 0.4, seed=1,
                                                                   data_format="channels_first")
    torch.testing.assert_close(first(BYTES.permute(0, 3, 1, 2), training=True),
                               last(BYTES, training=True).permute(0, 3, 1, 2))


def test_random_draws_follow_their_distributions():
    images = torch.full((400, 2, 2, 3), 100.0)
    images[..., 0] = 10.0
    grey = L.RandomGrayscale(0.3, seed=0)(images, training=True)
    share = (grey[:, 0, 0, 0] != 10.0).float().mean().item()
    assert 0.22 < share < 0.38  # P(grey) = 0.3
    mix = L.MixUp(alpha=0.5, seed=0)
    transformation = mix.get_random_transformation(images)
    weights = transformation["mix_weight"].numpy()
    assert abs(weights.mean() - 0.5) < 0.05 and abs(weights.var() - 0.125) < 0.03  # Beta(.5,.5)
    assert sorted(transformation["permutation_order"].tolist()) == list(range(400))
    cut = L.CutMix(seed=0)
    t = cut.get_random_transformation(BYTES)
    area = t["batch_masks"].float().mean(dim=(1, 2, 3))
    torch.testing.assert_close(1.0 - area, t["mix_weight"].reshape(-1), atol=0.2, rtol=0)
    hue = L.RandomHue((0.2, 0.4), seed=0).get_random_transformation(images)["factor"].abs()
    assert ((hue >= 0.1) & (hue <= 0.2)).all()
    crop = L.RandomCrop(5, 5, seed=0)
    starts = {crop.get_random_transformation(BYTES) for _ in range(60)}
    assert starts <= {(h, w) for h in range(4) for w in range(4)} and len(starts) > 8


def test_dict_inputs_mix_labels_and_pad_boxes():
    labels = torch.eye(4)
    out = L.MixUp(alpha=1.0, seed=1)({"images": BYTES, "labels": labels}, training=True)
    assert out["labels"].shape == (4, 4)
    torch.testing.assert_close(out["labels"].sum(dim=1), torch.ones(4))
    weight = out["labels"].max(dim=1).values
    assert (weight >= 0.5 - 1e-6).all()
    same = L.RandomInvert(seed=0)({"images": BYTES, "labels": labels}, training=True)
    assert torch.equal(same["labels"], labels)
    boxes = {"boxes": torch.rand(2, 3, 4), "labels": torch.tensor([[1, 2, 3], [4, 5, 6]])}
    padded = L.MaxNumBoundingBoxes(5)({"images": BYTES[:2], "bounding_boxes": boxes})
    assert padded["bounding_boxes"]["boxes"].shape == (2, 5, 4)
    assert padded["bounding_boxes"]["labels"].tolist() == [[1, 2, 3, -1, -1], [4, 5, 6, -1, -1]]
    cut = L.MaxNumBoundingBoxes(2)({"images": BYTES[:2], "bounding_boxes": boxes})
    assert cut["bounding_boxes"]["labels"].tolist() == [[1, 2], [4, 5]]
    with pytest.raises(NotSupportedError, match="bounding_boxes"):
        L.RandomShear(0.2)({"images": BYTES, "bounding_boxes": boxes}, training=True)


def test_pipeline_and_policies_in_a_functional_model_and_archives(tmp_path):
    inputs = keras.Input((8, 8, 3))
    x = L.Pipeline([L.RandomCrop(6, 6), L.RandomInvert()])(inputs)
    assert tuple(x.shape) == (None, 6, 6, 3)
    x = L.RandAugment(num_ops=1, seed=0)(L.Solarization(0.2)(x))
    model = keras.Model(inputs, L.GlobalAveragePooling2D()(x))
    model.save(tmp_path / "aug.keras")
    back = keras.models.load_model(tmp_path / "aug.keras")
    names = [type(layer).__name__ for layer in back.layers]
    assert names[1:4] == ["Pipeline", "Solarization", "RandAugment"]
    assert [type(layer).__name__ for layer in back.layers[1].layers] == ["RandomCrop",
                                                                       "RandomInvert"]


def test_keras_archives_both_ways(rk, tmp_path):
    def build(lib):
        lay = lib.layers
        return lib.Sequential([
            lay.Input((8, 8, 3)), lay.RandomShear((0.0, 0.2), (0.0, 0.1), seed=1), lay.RandomHue(0.3),
            lay.Solarization(0.2, 0.4), lay.RandomGaussianBlur(sigma=0.5), lay.MixUp(),
            lay.Pipeline([lay.RandomInvert(), lay.RandomSharpness(0.3)]),
            lay.AugMix(all_ops=False), lay.Flatten(), lay.Dense(3)])

    model = build(keras)
    model.set_weights([w + 0.1 for w in model.get_weights()])
    x = BYTES.numpy()
    ours = model.predict(x, verbose=0)
    model.save(tmp_path / "ours.keras")
    theirs = rk.models.load_model(tmp_path / "ours.keras")
    _close(theirs.predict(x, verbose=0), ours, atol=1e-4)
    assert [type(layer).__name__ for layer in theirs.layers][:3] == ["RandomShear", "RandomHue",
                                                                     "Solarization"]
    real = build(rk)
    real.save(tmp_path / "real.keras")
    back = keras.models.load_model(tmp_path / "real.keras")
    back.set_weights(real.get_weights())
    _close(back.predict(x, verbose=0), real.predict(x, verbose=0), atol=1e-4)
    blur = next(layer for layer in back.layers if isinstance(layer, L.RandomGaussianBlur))
    assert list(blur.get_config()["sigma"]) == [0, 0.5]


def test_bad_arguments_raise_config_errors():
    cases = [
        (lambda: L.RandomGrayscale(1.5), r"factor=1.5"),
        (lambda: L.RandomHue(2.0), r"factor=2.0"),
        (lambda: L.RandomSaturation((0.1,)), r"factor=\(0.1,\)"),
        (lambda: L.RandomPosterization(9), r"factor=9"),
        (lambda: L.RandomShear(x_factor="a"), r"x_factor='a'"),
        (lambda: L.RandomShear(0.2, fill_mode="mirror"), r"fill_mode='mirror'"),
        (lambda: L.RandomPerspective(scale=2.0), r"scale=2.0"),
        (lambda: L.RandomPerspective(interpolation="bicubic"), r"interpolation='bicubic'"),
        (lambda: L.RandomGaussianBlur(kernel_size=4), r"kernel_size=4"),
        (lambda: L.RandomElasticTransform(fill_mode="edge"), r"fill_mode='edge'"),
        (lambda: L.Solarization(value_range=(0,)), r"value_range=\(0,\)"),
        (lambda: L.Equalization(bins=1), r"bins=1"),
        (lambda: L.ContrastLimitedAdaptiveHistogramEqualization(tile_grid_size=(0, 2)),
         r"tile_grid_size=\(0, 2\)"),
        (lambda: L.RandomCrop(0, 3), r"height=0"),
        (lambda: L.MixUp(alpha=0), r"alpha=0"),
        (lambda: L.RandAugment(num_ops=-1), r"num_ops=-1"),
        (lambda: L.AugMix(chain_depth=0), r"chain_depth=0"),
        (lambda: L.MaxNumBoundingBoxes(0), r"max_number=0"),
        (lambda: L.Pipeline("x"), r"layers='x'"),
        (lambda: L.RandomInvert(data_format="nhwc"), r"data_format='nhwc'"),
    ]
    for make, message in cases:
        with pytest.raises(ConfigError, match=message):
            make()
    with pytest.raises(ShapeError, match="rank 3"):
        L.RandomHue(0.2)(torch.zeros(2, 3), training=True)
    with pytest.raises(ShapeError, match="'images' key"):
        L.RandomHue(0.2)({"labels": torch.zeros(2)}, training=True)


def test_model_with_augmentation_trains_on_fashion_mnist_and_is_identity_in_predict():
    from bigmodel.keras.datasets import fashion_mnist

    try:
        (x, y), _ = fashion_mnist.load_data()
    except Exception as exc:  # noqa: BLE001 - data not installed: skip
        pytest.skip(f"Fashion-MNIST not available: {exc}")
    x = (x[:256, ..., None] / 255.0).astype("float32")
    y = y[:256].astype("int64")
    keras.utils.set_random_seed(0)
    inputs = keras.Input((28, 28, 1))
    augmented = L.Pipeline([
        L.RandomShear(0.1, 0.1, seed=1), L.RandomSharpness(0.3, value_range=(0, 1), seed=2),
        L.RandomGaussianBlur(0.5, sigma=0.5, value_range=(0, 1), seed=3),
        L.RandomPerspective(0.5, scale=0.2, seed=4),
        L.Solarization(0.1, (0.9, 1.0), value_range=(0, 1), seed=5)])(inputs)
    outputs = L.Dense(10, activation="softmax")(L.Flatten()(augmented))
    model = keras.Model(inputs, outputs)
    model.compile(optimizer=keras.optimizers.Adam(3e-3),
                  loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    history = model.fit(x, y, epochs=4, batch_size=32, verbose=0)
    losses = history.history["loss"]
    assert losses[-1] < 0.8 * losses[0]
    seen = keras.Model(inputs, augmented).predict(x[:16], verbose=0)
    np.testing.assert_array_equal(seen, x[:16])  # identity in predict
