"""Bad Keras files: each refused with a BigModelError naming the file and the object, nothing from
the file executed, nothing written; custom classes only through registration (Keras semantics)."""

from __future__ import annotations

import io
import json
import os
import sys
import zipfile

import numpy as np
import pytest
import torch

from bigmodel import keras
from bigmodel.errors import BigModelError, CheckpointError, ConfigError, UnknownNameError
from bigmodel.keras import keras_archive, layers

h5py = pytest.importorskip("h5py", reason="h5py not installed (pip install 'bigmodel[keras]')")


def _small(tmp_path, name="m.keras"):
    model = keras.Sequential([keras.Input((4,)), layers.Dense(3, name="hidden"),
                              layers.Dense(2, name="head")])
    model.save(tmp_path / name)
    return model, tmp_path / name


def _parts(path):
    with zipfile.ZipFile(path) as archive:
        return {name: archive.read(name) for name in archive.namelist()}


def _write(path, parts):
    with zipfile.ZipFile(path, "w") as archive:
        for name, data in parts.items():
            archive.writestr(name, data)
    return path


def _edit_config(tmp_path, edit, name="edited.keras"):
    _, good = _small(tmp_path)
    parts = _parts(good)
    config = json.loads(parts["config.json"])
    edit(config)
    parts["config.json"] = json.dumps(config)
    return _write(tmp_path / name, parts)


def _edit_weights(tmp_path, edit, name="edited.keras"):
    _, good = _small(tmp_path)
    parts = _parts(good)
    buffer = io.BytesIO(parts["model.weights.h5"])
    with h5py.File(buffer, "a") as h5:
        edit(h5)
    parts["model.weights.h5"] = buffer.getvalue()
    return _write(tmp_path / name, parts)


def test_missing_weight_named(tmp_path):
    path = _edit_weights(tmp_path, lambda h5: h5.__delitem__("layers/dense_1/vars/1"))
    with pytest.raises(CheckpointError, match=r"edited\.keras.*'bias' of layer 'head'.*missing"):
        keras.models.load_model(path)


def test_shape_mismatch_named(tmp_path):
    def edit(h5):
        del h5["layers/dense/vars/0"]
        h5.create_dataset("layers/dense/vars/0", data=np.zeros((4, 5), np.float32))

    path = _edit_weights(tmp_path, edit)
    with pytest.raises(CheckpointError, match=r"'kernel' of layer 'hidden'.*\(4, 5\).*\(4, 3\)"):
        keras.models.load_model(path)


def test_extra_weights_refused(tmp_path):
    path = _edit_weights(tmp_path, lambda h5: h5.create_dataset("layers/conv2d/vars/0",
                                                                data=np.zeros(3)))
    with pytest.raises(CheckpointError, match="does not have"):
        keras.models.load_model(path)


def test_huge_declared_layer_checked_before_any_allocation(tmp_path, monkeypatch):
    """Dense(20000) twice over a 4x3 weights file: refused while the model is on 'meta' (a real
    build would allocate 1.6 GB)."""
    def edit(config):
        hidden = config["config"]["layers"][1]["config"]
        hidden["units"] = 20000
        config["config"]["layers"][2]["config"]["units"] = 20000

    path = _edit_config(tmp_path, edit)
    devices = []
    real_check = keras_archive.check_weights

    def spy(model, h5, file):
        devices.append(next(model.parameters()).device.type)
        return real_check(model, h5, file)

    monkeypatch.setattr(keras_archive, "check_weights", spy)
    with pytest.raises(CheckpointError, match=r"layer 'hidden'.*\(4, 3\).*\(4, 20000\)"):
        keras.models.load_model(path)
    assert devices == ["meta"]


@pytest.mark.parametrize("garbage", [b"", b"not an hdf5 file at all" * 10,
                                     b"\x89HDF\r\n\x1a\n" + b"\x00" * 40])
def test_corrupt_or_non_hdf5_weights(tmp_path, garbage):
    _, good = _small(tmp_path)
    parts = _parts(good)
    parts["model.weights.h5"] = garbage
    path = _write(tmp_path / "bad.keras", parts)
    with pytest.raises(CheckpointError, match=r"bad\.keras.*not a readable HDF5"):
        keras.models.load_model(path)
    (tmp_path / "w.weights.h5").write_bytes(garbage)
    model, _ = _small(tmp_path, "again.keras")
    before = model.get_weights()
    with pytest.raises(CheckpointError, match="HDF5"):
        model.load_weights(tmp_path / "w.weights.h5")
    for a, b in zip(before, model.get_weights()):
        np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("member", ["../evil.txt", "/tmp/evil.txt", "a/../../evil.txt",
                                    "C:/evil.txt"])
def test_zip_paths_outside_root_refused(tmp_path, member):
    _, good = _small(tmp_path)
    parts = _parts(good)
    parts[member] = b"x"
    path = _write(tmp_path / "slip.keras", parts)
    with pytest.raises(CheckpointError, match="outside the archive"):
        keras.models.load_model(path)
    assert not (tmp_path.parent / "evil.txt").exists()


def test_not_a_zip_missing_member_bad_json(tmp_path):
    (tmp_path / "plain.keras").write_bytes(b"hello")
    with pytest.raises(CheckpointError, match="not a .keras archive"):
        keras.models.load_model(tmp_path / "plain.keras")
    _, good = _small(tmp_path)
    parts = _parts(good)
    del parts["config.json"]
    with pytest.raises(CheckpointError, match="'config.json' is missing"):
        keras.models.load_model(_write(tmp_path / "nocfg.keras", parts))
    parts["config.json"] = b"{not json"
    with pytest.raises(CheckpointError, match="not valid JSON"):
        keras.models.load_model(_write(tmp_path / "badjson.keras", parts))
    with pytest.raises(CheckpointError, match="File not found"):
        keras.models.load_model(tmp_path / "absent.keras")


def test_unregistered_custom_class_refused_then_registered(tmp_path):
    class ScaledDense(layers.Dense):
        pass

    registry = keras.saving.get_custom_objects()
    keras.saving.register_keras_serializable(package="MyPackage")(ScaledDense)
    try:
        assert registry["MyPackage>ScaledDense"] is ScaledDense
        model = keras.Sequential([keras.Input((4,)), ScaledDense(3, name="hidden")])
        model.save(tmp_path / "custom.keras")
        spec = keras.saving.serialize_keras_object(model.layers[0])
        assert spec["registered_name"] == "MyPackage>ScaledDense"
        again = keras.saving.deserialize_keras_object(spec)
        assert type(again) is ScaledDense and again.units == 3
        assert type(keras.models.load_model(tmp_path / "custom.keras").layers[0]) is ScaledDense
    finally:
        registry.pop("MyPackage>ScaledDense")
    parts = _parts(tmp_path / "custom.keras")
    config = json.loads(parts["config.json"])
    config["config"]["layers"][1]["module"] = "my_package.layers"
    parts["config.json"] = json.dumps(config)
    path = _write(tmp_path / "edited.keras", parts)
    with pytest.raises(UnknownNameError, match=r"edited\.keras.*'ScaledDense'.*register_keras_"
                                               r"serializable.*custom_objects"):
        keras.models.load_model(path)
    assert "my_package" not in sys.modules  # nothing imported
    loaded = keras.models.load_model(path, custom_objects={"MyPackage>ScaledDense": ScaledDense})
    assert type(loaded.layers[0]) is ScaledDense
    np.testing.assert_array_equal(loaded.get_weights()[0], model.get_weights()[0])


def test_unsupported_keras_layer_and_argument_named(tmp_path):
    def unknown(config):
        config["config"]["layers"][1].update(class_name="TFSMLayer")

    with pytest.raises(BigModelError, match="'TFSMLayer'.*not supported"):
        keras.models.load_model(_edit_config(tmp_path, unknown, "u.keras"))

    def argument(config):
        config["config"]["layers"][1]["config"]["lora_rank"] = 4

    with pytest.raises(ConfigError, match=r"layer 'hidden' \(Dense\).*lora_rank=4"):
        keras.models.load_model(_edit_config(tmp_path, argument, "a.keras"))


@pytest.fixture(scope="module")
def rk():
    if "keras" in sys.modules and os.environ.get("KERAS_BACKEND") != "torch":
        pytest.skip("real Keras was already imported with another backend")
    os.environ["KERAS_BACKEND"] = "torch"
    return pytest.importorskip("keras", reason="real Keras 3 is not installed")


def test_lambda_bytecode_refused_unless_safe_mode_off(rk, tmp_path):
    if not hasattr(layers, "Lambda"):
        pytest.skip("layers.Lambda not available")
    marker = tmp_path / "ran"
    # The function leaves a file behind whenever it runs: a refused load must not create it.
    function = eval(f"lambda x: (open({str(marker)!r}, 'w').close(), x * 3.0 + 1.0)[1]")
    real = rk.Sequential([rk.Input((3,)), rk.layers.Lambda(function)])
    real.save(tmp_path / "lambda.keras")
    marker.unlink()
    with pytest.raises(ConfigError, match=r"lambda\.keras.*Lambda.*bytecode.*safe_mode=False"):
        keras.models.load_model(tmp_path / "lambda.keras")
    assert not marker.exists()
    with pytest.warns(UserWarning, match="running Python bytecode"):
        model = keras.models.load_model(tmp_path / "lambda.keras", safe_mode=False)
    out = model(torch.ones(2, 3))
    np.testing.assert_allclose(out.detach().numpy(), np.full((2, 3), 4.0))
    assert marker.exists()  # safe_mode=False did run the file's code, as the warning says


def test_failed_save_leaves_nothing(tmp_path, monkeypatch):
    model, path = _small(tmp_path)
    before = path.read_bytes()

    def broken(model, h5):
        raise OSError("disk full")

    monkeypatch.setattr(keras_archive, "write_weights", broken)
    with pytest.raises(OSError):
        model.save(path)
    with pytest.raises(OSError):
        model.save(tmp_path / "new.keras")
    assert path.read_bytes() == before and not (tmp_path / "new.keras").exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.keras"]
    with pytest.raises(CheckpointError, match="overwrite=False"):
        keras_archive.save_keras_archive(model, path, overwrite=False)


def test_clone_model_and_json_round_trip():
    inputs = keras.Input((5,))
    model = keras.Model(inputs, layers.Dense(2)(layers.Dense(4, activation="relu")(inputs)))
    clone = keras.models.clone_model(model)
    assert [type(lay) for lay in clone.layers] == [type(lay) for lay in model.layers]
    assert [w.shape for w in clone.get_weights()] == [w.shape for w in model.get_weights()]
    assert not np.allclose(clone.get_weights()[0], model.get_weights()[0])  # fresh weights
    text = json.dumps(keras.saving.serialize_keras_object(model))
    rebuilt = keras.models.model_from_json(text)
    rebuilt.set_weights(model.get_weights())
    x = np.random.default_rng(1).random((3, 5), dtype=np.float32)
    np.testing.assert_allclose(rebuilt.predict(x, verbose=0), model.predict(x, verbose=0))
    with pytest.raises(ConfigError, match="not JSON"):
        keras.models.model_from_json("{oops")


def test_registered_layer_and_function_round_trip(tmp_path):
    """The keras.io saving guide's case: a registered layer with its own get_config and a
    registered activation function; both must be registered again to load."""
    registry = keras.saving.get_custom_objects()

    class Scale(keras.layers.Layer):
        def __init__(self, factor):
            super().__init__()
            self.factor = factor

        def call(self, x):
            return x * self.factor

        def get_config(self):
            return {"factor": self.factor}

    def squared(x):
        return x ** 2

    keras.saving.register_keras_serializable(package="Guide")(Scale)
    keras.saving.register_keras_serializable(package="guide", name="squared")(squared)
    try:
        inputs = keras.Input((4,))
        model = keras.Model(inputs, layers.Dense(1, activation=squared)(Scale(0.5)(inputs)))
        model.save(tmp_path / "guide.keras")
        x = np.random.default_rng(2).random((3, 4), dtype=np.float32)
        loaded = keras.models.load_model(tmp_path / "guide.keras")
        np.testing.assert_allclose(loaded.predict(x, verbose=0), model.predict(x, verbose=0))
        config = json.loads(_parts(tmp_path / "guide.keras")["config.json"])
        dense = [s for s in config["config"]["layers"] if s["class_name"] == "Dense"][0]
        assert dense["config"]["activation"]["registered_name"] == "guide>squared"
    finally:
        registry.pop("Guide>Scale")
        registry.pop("guide>squared")
    with pytest.raises(UnknownNameError, match="'Scale'.*register"):
        keras.models.load_model(tmp_path / "guide.keras")
    with pytest.raises(UnknownNameError, match="function 'squared'"):
        keras.models.load_model(tmp_path / "guide.keras", custom_objects={"Guide>Scale": Scale})


def test_custom_object_scope(tmp_path):
    class Doubler(keras.layers.Layer):
        def call(self, x):
            return x * 2.0

    keras.saving.register_keras_serializable(package="Scope")(Doubler)
    keras.saving.get_custom_objects().pop("Scope>Doubler")  # registered name kept, entry gone
    model = keras.Sequential([keras.Input((3,)), Doubler()])
    model.save(tmp_path / "scope.keras")
    with pytest.raises(UnknownNameError, match="Doubler"):
        keras.models.load_model(tmp_path / "scope.keras")
    with keras.saving.custom_object_scope({"Scope>Doubler": Doubler}):
        loaded = keras.models.load_model(tmp_path / "scope.keras")
    assert type(loaded.layers[0]) is Doubler
    assert "Scope>Doubler" not in keras.saving.get_custom_objects()


def test_damaged_archive_member_named(tmp_path):
    _, good = _small(tmp_path)
    data = bytearray(good.read_bytes())
    start = data.index(b'"class_name"')  # inside config.json, stored uncompressed
    data[start + 2] ^= 0x20
    (tmp_path / "crc.keras").write_bytes(bytes(data))
    with pytest.raises(CheckpointError, match=r"crc\.keras.*'config\.json' is damaged"):
        keras.models.load_model(tmp_path / "crc.keras")
    (tmp_path / "cut.keras").write_bytes(bytes(good.read_bytes()[:-40]))
    with pytest.raises(CheckpointError, match=r"cut\.keras"):
        keras.models.load_model(tmp_path / "cut.keras")


def test_legacy_keras2_h5_that_is_incomplete_names_the_file_and_layer(tmp_path):
    # tf.keras 2 save_weights layout: read as Keras 3 does (keras.applications' weights are
    # such files; tests/test_keras_applications.py loads whole ones), here one missing a group
    model, _ = _small(tmp_path)
    before = model.get_weights()
    with h5py.File(tmp_path / "legacy.h5", "w") as h5:
        h5.attrs["layer_names"] = [b"hidden", b"head"]
        h5.create_dataset("hidden/hidden/kernel:0", data=np.zeros((4, 3), np.float32))
    with pytest.raises(CheckpointError, match=r"legacy\.h5.*'head'"):
        model.load_weights(tmp_path / "legacy.h5")
    for kept, now in zip(before, model.get_weights()):
        np.testing.assert_array_equal(kept, now)
