"""keras.applications: architectures equal to real Keras 3 (parameter counts, layer names, output
shapes; outputs given the same weights), Keras's legacy HDF5 weight files read by layer name, the
download of weights="imagenet" (hash-checked, from a local http server), .keras archives both
ways, a tiny fine-tune that learns, and bad arguments (preprocess_input / decode_predictions:
test_keras_applications_imagenet_utils.py)."""

from __future__ import annotations

import functools
import gzip
import http.server
import threading
from pathlib import Path

import h5py
import numpy as np
import pytest
import torch

from bigmodel import keras
from bigmodel.errors import CheckpointError, ConfigError, DataFileError
from bigmodel.keras import legacy_weights
from bigmodel.keras.applications import weights_file
from keras_reference import real_keras as _real_keras

applications = keras.applications


# (application, keyword arguments): small inputs so that building is quick
QUICK = [  # (ResNet50 and MobileNetV2 are also compared below, given the same weights)
    ("VGG16", {"include_top": False, "input_shape": (32, 32, 3), "pooling": "avg"}),
    ("MobileNetV2", {"alpha": 0.35, "input_shape": (96, 96, 3)}),
    ("MobileNet", {"alpha": 0.25, "input_shape": (32, 32, 3), "classes": 7}),
]
FULL = [
    ("ResNet50", {}), ("ResNet101", {}), ("ResNet152", {"include_top": False}),
    ("ResNet50V2", {}), ("ResNet101V2", {"include_top": False, "input_shape": (64, 64, 3)}),
    ("ResNet152V2", {"include_top": False}), ("VGG19", {}),  # VGG16's top is VGG19's
    ("MobileNetV2", {"alpha": 1.4}), ("MobileNetV2", {"alpha": 0.5, "include_top": False}),
    ("MobileNet", {"depth_multiplier": 2, "input_shape": (128, 128, 3)}),
    ("DenseNet121", {"include_top": False, "input_shape": (32, 32, 3), "pooling": "max"}),
    ("DenseNet121", {}), ("DenseNet169", {}), ("DenseNet201", {"include_top": False}),
    ("Xception", {}), ("Xception", {"include_top": False, "input_shape": (71, 71, 3)}),
    ("EfficientNetB0", {}), ("EfficientNetB1", {"include_top": False}), ("EfficientNetB2", {}),
    ("MobileNetV3Small", {}), ("MobileNetV3Large", {"alpha": 0.75}),
    ("InceptionResNetV2", {}),
    ("InceptionResNetV2", {"include_top": False, "input_shape": (75, 75, 3), "pooling": "max"}),
    ("NASNetLarge", {"include_top": False, "input_shape": (64, 64, 3)}), ("NASNetLarge", {}),
    ("ConvNeXtTiny", {}), ("ConvNeXtSmall", {"include_top": False, "pooling": "avg"}),
    ("ConvNeXtBase", {"include_top": False, "input_shape": (32, 32, 3)}),
    ("ConvNeXtLarge", {"include_top": False, "input_shape": (32, 32, 3)}),
    ("ConvNeXtXLarge", {"include_top": False, "input_shape": (32, 32, 3),
                        "include_preprocessing": False}),
    ("EfficientNetV2B0", {}), ("EfficientNetV2B1", {"include_top": False}),
    ("EfficientNetV2B2", {"include_top": False, "input_shape": (64, 64, 3)}),
    ("EfficientNetV2B3", {"include_top": False, "input_shape": (64, 64, 3)}),
    ("EfficientNetV2S", {"include_top": False, "input_shape": (64, 64, 3)}),
    ("EfficientNetV2M", {"include_top": False, "input_shape": (64, 64, 3)}),
    ("EfficientNetV2L", {"include_top": False, "input_shape": (64, 64, 3),
                         "include_preprocessing": False}),
    ("MobileNetV3Small", {"minimalistic": True, "alpha": 1.25, "include_top": False}),
    ("MobileNetV3Large", {"minimalistic": True, "input_shape": (64, 64, 3)}),
    ("EfficientNetB3", {"include_top": False, "input_shape": (64, 64, 3)}),
    ("EfficientNetB4", {"include_top": False, "input_shape": (64, 64, 3)}),
    ("EfficientNetB5", {"include_top": False, "input_shape": (64, 64, 3)}),
    ("EfficientNetB6", {"include_top": False, "input_shape": (64, 64, 3)}),
    ("EfficientNetB7", {"include_top": False, "input_shape": (64, 64, 3), "pooling": "avg"}),
    ("InceptionV3", {}), ("InceptionV3", {"include_top": False, "input_shape": (75, 75, 3)}),
]


def _named(model):
    # Keras numbers unnamed layers per session (global_average_pooling2d_3): compare the stem
    return [layer.name.rstrip("0123456789").rstrip("_") for layer in model.layers]


def _compare_with_keras(name, kwargs):
    real = _real_keras()
    ours = getattr(applications, name)(weights=None, **kwargs)
    theirs = getattr(real.applications, name)(weights=None, **kwargs)
    assert ours.count_params() == theirs.count_params()
    assert _named(ours) == _named(theirs)
    assert ours.name == theirs.name
    assert tuple(ours.outputs[0].shape) == tuple(theirs.outputs[0].shape)
    for mine, keras_layer in zip(ours.layers, theirs.layers):
        assert [w.shape for w in mine.get_weights()] == \
            [tuple(w.shape) for w in keras_layer.get_weights()], mine.name


@pytest.mark.parametrize("name,kwargs", QUICK, ids=[q[0] for q in QUICK])
def test_architecture_equals_real_keras(name, kwargs):
    _compare_with_keras(name, kwargs)


@pytest.mark.full
@pytest.mark.parametrize("name,kwargs", FULL, ids=[f[0] for f in FULL])
def test_every_architecture_equals_real_keras(name, kwargs):
    _compare_with_keras(name, kwargs)


def _randomize(model, seed=0):
    """Random weights everywhere, BatchNormalization statistics included (else BN is ~identity)."""
    rng = np.random.default_rng(seed)
    for layer in model.layers:
        arrays = layer.get_weights()
        if not arrays:
            continue
        if type(layer).__name__ == "BatchNormalization":  # [gamma,] beta, mean, variance
            *affine, mean, var = (a.shape for a in arrays)
            arrays = [rng.uniform(0.5, 1.5, shape) if i == 0 and len(affine) == 2 else
                      rng.normal(0, 0.1, shape) for i, shape in enumerate(affine)]
            arrays += [rng.normal(0, 0.1, mean), rng.uniform(0.5, 1.5, var)]
        elif type(layer).__name__ == "Normalization":  # mean, variance, count
            arrays = [rng.normal(0, 0.1, arrays[0].shape), rng.uniform(0.5, 1.5, arrays[1].shape),
                      arrays[2]]
        else:
            arrays = [rng.normal(0, np.sqrt(1.0 / max(1, np.prod(a.shape[:-1]))), a.shape)
                      for a in arrays]
        layer.set_weights([a.astype(np.float32) for a in arrays])


def _legacy_file(real_model, path):
    """The model's weights in Keras's legacy HDF5 layout, written by Keras's own writer."""
    from keras.src.legacy.saving import legacy_h5_format

    with h5py.File(path, "w") as file:
        legacy_h5_format.save_weights_to_hdf5_group(file, real_model)
    return str(path)


PARITY = [
    ("ResNet50", {"include_top": False, "input_shape": (32, 32, 3), "pooling": "avg"}),
    ("MobileNetV2", {"alpha": 0.35, "input_shape": (32, 32, 3), "classes": 10}),
]
PARITY_FULL = [
    ("ResNet101V2", {"include_top": False, "input_shape": (32, 32, 3), "pooling": "max"}),
    ("VGG19", {"include_top": False, "input_shape": (32, 32, 3)}),
    ("MobileNet", {"alpha": 0.5, "input_shape": (32, 32, 3), "classes": 10}),
    ("DenseNet121", {"include_top": False, "input_shape": (32, 32, 3), "pooling": "avg"}),
    ("EfficientNetB0", {"input_shape": (32, 32, 3), "classes": 10}),
    ("EfficientNetB3", {"include_top": False, "input_shape": (32, 32, 3), "pooling": "avg"}),
    ("MobileNetV3Small", {"input_shape": (32, 32, 3), "classes": 10}),
    ("MobileNetV3Large", {"include_top": False, "input_shape": (32, 32, 3), "pooling": "avg"}),
    ("EfficientNetV2B0", {"input_shape": (32, 32, 3), "classes": 10}),
    ("EfficientNetV2S", {"include_top": False, "input_shape": (32, 32, 3), "pooling": "max"}),
    ("ConvNeXtTiny", {"input_shape": (32, 32, 3), "classes": 10}),
]


def _check_outputs(tmp_path, name, kwargs):
    real = _real_keras()
    theirs = getattr(real.applications, name)(weights=None, **kwargs)
    _randomize(theirs)
    path = _legacy_file(theirs, tmp_path / f"{name}.h5")
    ours = getattr(applications, name)(weights=path, **kwargs)
    assert ours.count_params() == theirs.count_params()
    assert _named(ours) == _named(theirs)
    x = np.random.default_rng(1).uniform(-1, 1, (2, 32, 32, 3)).astype(np.float32)
    expected = np.asarray(theirs.predict(x, verbose=0))
    got = ours.predict(x, verbose=0)
    assert got.shape == expected.shape and np.isfinite(expected).all()
    # random weights through 50 layers give outputs in the hundreds: compare at their scale
    scale = np.abs(expected).max()
    np.testing.assert_allclose(got / scale, expected / scale, rtol=0, atol=1e-5)


@pytest.mark.parametrize("name,kwargs", PARITY, ids=[p[0] for p in PARITY])
def test_outputs_equal_real_keras_from_a_legacy_weights_file(tmp_path, name, kwargs):
    _check_outputs(tmp_path, name, kwargs)


@pytest.mark.full
@pytest.mark.parametrize("name,kwargs", PARITY_FULL, ids=[p[0] for p in PARITY_FULL])
def test_every_family_equals_real_keras_given_the_same_weights(tmp_path, name, kwargs):
    _check_outputs(tmp_path, name, kwargs)


@pytest.mark.full
@pytest.mark.parametrize("kwargs", [{}, {"include_top": False, "input_shape": (32, 32, 3)}])
def test_nasnet_mobile_equals_keras_builder(kwargs):
    """Keras 3 refuses NASNetMobile on torch; its NASNet builder with the mobile sizes is the
    reference."""
    _real_keras()
    from keras.src.applications import nasnet as keras_nasnet

    ours = applications.NASNetMobile(weights=None, **kwargs)
    theirs = keras_nasnet.NASNet(
        kwargs.get("input_shape"), penultimate_filters=1056, num_blocks=4,
        stem_block_filters=32, skip_reduction=False, filter_multiplier=2,
        include_top=kwargs.get("include_top", True), weights=None, default_size=224,
        name="nasnet_mobile")
    assert ours.count_params() == theirs.count_params()
    assert _named(ours) == _named(theirs)
    assert tuple(ours.outputs[0].shape) == tuple(theirs.outputs[0].shape)


def _rename_layers(path, rename):
    """Rename every layer group of a legacy file (as Keras 2 named layers differently)."""
    with h5py.File(path, "r+") as file:
        names = [n.decode() if isinstance(n, bytes) else str(n) for n in file.attrs["layer_names"]]
        for name in names:
            file.move(name, rename(name))
        file.attrs["layer_names"] = [rename(n).encode() for n in names]


def test_a_file_whose_layer_names_differ_loads_by_position_as_keras_does(tmp_path):
    real = _real_keras()
    kwargs = {"alpha": 0.35, "input_shape": (32, 32, 3), "include_top": False, "pooling": "avg"}
    theirs = real.applications.MobileNetV2(weights=None, **kwargs)
    _randomize(theirs, seed=6)
    path = _legacy_file(theirs, tmp_path / "renamed.h5")
    _rename_layers(path, lambda name: f"keras2_layer_{name}")
    ours = applications.MobileNetV2(weights=path, **kwargs)
    x = np.random.default_rng(7).uniform(-1, 1, (2, 32, 32, 3)).astype(np.float32)
    np.testing.assert_allclose(ours.predict(x, verbose=0), theirs.predict(x, verbose=0),
                               rtol=1e-4, atol=1e-4)


@pytest.mark.full
@pytest.mark.parametrize("name,size", [("Xception", 71), ("InceptionV3", 75),
                                       ("InceptionResNetV2", 75), ("NASNetLarge", 64)])
def test_unnamed_layers_load_by_position_and_equal_real_keras(tmp_path, name, size):
    real = _real_keras()
    kwargs = {"include_top": False, "input_shape": (size, size, 3), "pooling": "avg"}
    theirs = getattr(real.applications, name)(weights=None, **kwargs)
    _randomize(theirs, seed=8)
    path = _legacy_file(theirs, tmp_path / f"{name}.h5")
    keras.layers.Conv2D(1, 1)  # shifts this session's automatic names away from the file's
    ours = getattr(applications, name)(weights=path, **kwargs)
    x = np.random.default_rng(9).uniform(-1, 1, (1, size, size, 3)).astype(np.float32)
    expected = np.asarray(theirs.predict(x, verbose=0))
    scale = np.abs(expected).max()
    np.testing.assert_allclose(ours.predict(x, verbose=0) / scale, expected / scale, atol=1e-5)


def test_custom_scale_layer_equals_keras():
    _real_keras()
    from keras.src.applications.inception_resnet_v2 import CustomScaleLayer as KerasScale

    rng = np.random.default_rng(11)
    a, b = (rng.normal(size=(2, 3, 3, 4)).astype(np.float32) for _ in range(2))
    ours = applications.inception_resnet_v2.CustomScaleLayer(0.17, name="scale")
    theirs = KerasScale(0.17, name="scale")
    np.testing.assert_allclose(ours([torch.tensor(a), torch.tensor(b)]).numpy(), a + 0.17 * b,
                               rtol=1e-6)
    np.testing.assert_allclose(np.asarray(theirs([a, b])), a + 0.17 * b, rtol=1e-6)
    # bigmodel layers leave "dtype" to the .keras writer (the float32 policy), as every layer
    assert set(ours.get_config()) == set(theirs.get_config()) - {"dtype"}


def test_include_top_false_pooling_shapes_and_input_tensor():
    for pooling, shape in ((None, (None, 2, 2, 1280)), ("avg", (None, 1280)),
                           ("max", (None, 1280))):
        model = applications.MobileNetV2(weights=None, include_top=False, pooling=pooling,
                                         alpha=0.35, input_shape=(64, 64, 3))
        assert tuple(model.outputs[0].shape) == shape
        out = model(torch.zeros(1, 64, 64, 3))
        assert tuple(out.shape) == (1,) + shape[1:]
    # no input_shape: any image size (None, None, 3); with the size unknown Keras pads (0, 1)
    # before each stride-2 "valid" depthwise conv: 40 -> 20 -> 10 -> 5 -> 2 -> 1
    model = applications.MobileNetV2(weights=None, include_top=False, alpha=0.35)
    assert tuple(model.inputs[0].shape) == (None, None, None, 3)
    assert tuple(model(torch.zeros(1, 40, 48, 3)).shape) == (1, 1, 1, 1280)
    # input_tensor: the model starts from the tensor's source input
    image = keras.Input((32, 32, 3))
    scaled = keras.layers.Rescaling(1 / 127.5, offset=-1)(image)
    model = applications.MobileNetV2(weights=None, include_top=False, alpha=0.35,
                                     input_tensor=scaled, pooling="avg")
    assert model.inputs[0] is image and model.layers[1].name.startswith("rescaling")


@pytest.fixture
def weights_server(tmp_path, monkeypatch):
    """A 127.0.0.1 http server over a folder standing in for Keras's weights bucket."""
    served = tmp_path / "bucket"
    served.mkdir()
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(served))
    handler.log_message = lambda *args: None
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05},
                              daemon=True)
    thread.start()
    monkeypatch.setattr(weights_file, "STORAGE_URL", f"http://127.0.0.1:{server.server_port}/")
    monkeypatch.setenv("KERAS_HOME", str(tmp_path / "home"))
    yield served
    server.shutdown()
    server.server_close()


def test_imagenet_weights_download_into_the_cache_and_load(weights_server, tmp_path):
    real = _real_keras()
    kwargs = {"alpha": 0.35, "include_top": False, "input_shape": (96, 96, 3)}
    theirs = real.applications.MobileNetV2(weights=None, **kwargs)
    _randomize(theirs, seed=4)
    name = "mobilenet_v2_weights_tf_dim_ordering_tf_kernels_0.35_96_no_top.h5"
    folder = weights_server / "tensorflow" / "keras-applications" / "mobilenet_v2"
    folder.mkdir(parents=True)
    _legacy_file(theirs, folder / name)
    ours = applications.MobileNetV2(weights="imagenet", **kwargs)
    assert (tmp_path / "home" / "models" / name).is_file()
    x = np.random.default_rng(5).uniform(-1, 1, (1, 96, 96, 3)).astype(np.float32)
    np.testing.assert_allclose(ours.predict(x, verbose=0), theirs.predict(x, verbose=0),
                               rtol=1e-4, atol=1e-4)


def test_a_download_whose_hash_differs_is_refused_and_not_kept(weights_server, tmp_path):
    folder = weights_server / "tensorflow" / "keras-applications" / "resnet"
    folder.mkdir(parents=True)
    name = "resnet50_weights_tf_dim_ordering_tf_kernels_notop.h5"
    (folder / name).write_bytes(b"not the published file")
    with pytest.raises(DataFileError, match="hash"):
        applications.ResNet50(weights="imagenet", include_top=False, input_shape=(32, 32, 3))
    assert not (tmp_path / "home" / "models" / name).exists()


def test_a_weights_file_that_does_not_fit_names_the_layer(tmp_path):
    real = _real_keras()
    theirs = real.applications.MobileNetV2(weights=None, alpha=0.35, input_shape=(32, 32, 3),
                                           classes=10)
    path = _legacy_file(theirs, tmp_path / "w.h5")
    ours = applications.MobileNetV2(weights=None, alpha=0.35, input_shape=(32, 32, 3),
                                    classes=10)
    before = ours.get_weights()
    with pytest.raises(CheckpointError, match=r"'predictions'.*\(1280, 5\).*\(1280, 10\)"):
        applications.MobileNetV2(weights=path, alpha=0.35, input_shape=(32, 32, 3), classes=5)
    vgg = applications.VGG16(weights=None, include_top=False, input_shape=(32, 32, 3))
    with pytest.raises(CheckpointError, match=r"no weights for layer.*block1_conv1"):
        legacy_weights.load_legacy_weights(vgg, path)
    garbage = tmp_path / "garbage.h5"
    garbage.write_bytes(b"\x00" * 64)
    with pytest.raises(CheckpointError, match="garbage.h5"):
        legacy_weights.load_legacy_weights(ours, garbage)
    with h5py.File(tmp_path / "keras3.weights.h5", "w") as file:
        file.create_group("layers")
    with pytest.raises(CheckpointError, match="layer_names"):
        legacy_weights.load_legacy_weights(ours, tmp_path / "keras3.weights.h5")
    for mine, kept in zip(ours.get_weights(), before):
        np.testing.assert_array_equal(mine, kept)


def test_bad_arguments_raise_config_errors_as_keras_value_errors():
    with pytest.raises(ConfigError, match=r"input_shape.*\(224, 224, 3\)"):
        applications.ResNet50(weights="imagenet", include_top=True, input_shape=(64, 64, 3))
    with pytest.raises(ConfigError, match="classes.*1000.*classes=10"):
        applications.VGG16(weights="imagenet", classes=10)
    with pytest.raises(ConfigError, match="weights=resnet-imagenet"):
        applications.ResNet50(weights="resnet-imagenet")
    with pytest.raises(ConfigError, match="at least 32x32"):
        applications.ResNet50(weights=None, include_top=False, input_shape=(16, 16, 3))
    with pytest.raises(ConfigError, match="static `input_shape`"):
        applications.VGG16(weights=None, input_shape=(None, None, 3))
    with pytest.raises(ConfigError, match="3 channels"):
        applications.DenseNet121(weights="imagenet", include_top=False, input_shape=(64, 64, 1))
    with pytest.raises(ConfigError, match="pooling='sum'"):
        applications.ResNet50(weights=None, include_top=False, pooling="sum")
    with pytest.raises(ConfigError, match="alpha=0.2"):
        applications.MobileNetV2(weights="imagenet", alpha=0.2)
    with pytest.raises(ConfigError, match="depth_multiplier=2"):
        applications.MobileNet(weights="imagenet", depth_multiplier=2)
    with pytest.raises(ConfigError, match="classifier_activation"):
        applications.MobileNetV2(weights="imagenet", alpha=0.35, input_shape=(96, 96, 3),
                                 classifier_activation="sigmoid")
    with pytest.raises(ConfigError, match='"mynet" does not match weights variant'):
        applications.ConvNeXtTiny(weights="imagenet", name="mynet")
    with pytest.raises(ConfigError, match="input_tensor"):
        applications.VGG16(weights=None, input_tensor=torch.zeros(1, 32, 32, 3))


def _fashion_images(count):
    root = Path("/usr/share/datasets/fashion-mnist")
    with gzip.open(root / "train-images-idx3-ubyte.gz") as file:
        images = np.frombuffer(file.read(), np.uint8, offset=16)[:28 * 28 * 600]
    with gzip.open(root / "train-labels-idx1-ubyte.gz") as file:
        labels = np.frombuffer(file.read(), np.uint8, offset=8)[:600]
    keep = np.flatnonzero((labels == 1) | (labels == 9))[:count]  # trousers vs ankle boots
    images = images.reshape(-1, 28, 28)[keep].astype(np.float32)
    images = np.repeat(np.pad(images, ((0, 0), (2, 2), (2, 2)))[..., None], 3, axis=-1)
    return images, (labels[keep] == 9).astype(np.float32)


def test_fine_tuning_a_tiny_mobilenet_v2_learns():
    keras.utils.set_random_seed(0)
    x, y = _fashion_images(64)
    x = applications.mobilenet_v2.preprocess_input(x)
    backbone = applications.MobileNetV2(weights=None, alpha=0.35, include_top=False,
                                        input_shape=(32, 32, 3), pooling="avg")
    inputs = keras.Input((32, 32, 3))
    outputs = keras.layers.Dense(1, activation="sigmoid")(backbone(inputs))
    model = keras.Model(inputs, outputs)
    model.compile(optimizer=keras.optimizers.Adam(3e-3), loss="binary_crossentropy",
                  metrics=["accuracy"])
    history = model.fit(x, y, batch_size=16, epochs=4, verbose=0)
    losses = history.history["loss"]
    assert losses[-1] < 0.7 * losses[0], losses


@pytest.mark.full
@pytest.mark.parametrize("name,kwargs", [
    ("MobileNetV2", {"alpha": 0.35, "input_shape": (32, 32, 3), "classes": 10}),
    ("EfficientNetB0", {"input_shape": (32, 32, 3), "classes": 10}),
    ("MobileNetV3Small", {"input_shape": (32, 32, 3), "classes": 10}),
    ("ResNet50V2", {"input_shape": (32, 32, 3), "include_top": False}),
    ("InceptionResNetV2", {"input_shape": (75, 75, 3), "include_top": False}),
    ("ConvNeXtTiny", {"input_shape": (32, 32, 3), "classes": 10}),
], ids=["MobileNetV2", "EfficientNetB0", "MobileNetV3Small", "ResNet50V2", "InceptionResNetV2",
        "ConvNeXtTiny"])
def test_keras_archives_go_both_ways_with_real_keras(tmp_path, name, kwargs):
    real = _real_keras()
    size = kwargs["input_shape"][0]
    x = np.random.default_rng(10).uniform(0, 255, (2, size, size, 3)).astype(np.float32)
    ours = getattr(applications, name)(weights=None, **kwargs)
    ours.save(tmp_path / "ours.keras")
    theirs = real.models.load_model(tmp_path / "ours.keras")
    np.testing.assert_allclose(np.asarray(theirs.predict(x, verbose=0)),
                               ours.predict(x, verbose=0), rtol=1e-5, atol=1e-5)
    keras_model = getattr(real.applications, name)(weights=None, **kwargs)
    keras_model.save(tmp_path / "theirs.keras")
    back = keras.models.load_model(tmp_path / "theirs.keras")
    assert back.count_params() == keras_model.count_params()
    np.testing.assert_allclose(back.predict(x, verbose=0),
                               np.asarray(keras_model.predict(x, verbose=0)), rtol=1e-5, atol=1e-5)


def test_model_load_weights_reads_a_legacy_file_as_keras_does(tmp_path):
    real = _real_keras()
    kwargs = {"alpha": 0.35, "input_shape": (32, 32, 3), "classes": 10}
    theirs = real.applications.MobileNetV2(weights=None, **kwargs)
    _randomize(theirs, seed=12)
    path = _legacy_file(theirs, tmp_path / "legacy.h5")
    ours = applications.MobileNetV2(weights=None, **kwargs)
    ours.load_weights(path)  # Keras 3's model.load_weights reads these files too
    x = np.random.default_rng(13).uniform(-1, 1, (2, 32, 32, 3)).astype(np.float32)
    expected = theirs.predict(x, verbose=0)
    np.testing.assert_allclose(ours.predict(x, verbose=0), expected, rtol=1e-4, atol=1e-4)
    # weights= also takes a Keras 3 weights file, as Keras's applications do
    theirs.save_weights(tmp_path / "keras3.weights.h5")
    from_keras3 = applications.MobileNetV2(weights=str(tmp_path / "keras3.weights.h5"), **kwargs)
    np.testing.assert_allclose(from_keras3.predict(x, verbose=0), expected, rtol=1e-4, atol=1e-4)
