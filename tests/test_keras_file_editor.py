"""keras.saving.KerasFileEditor: the same weights tree and metadata as real Keras 3's editor on
files written here and by real Keras, compare() against a model, edits saved in Keras's layout that
model.load_weights reads (here and in real Keras), and every bad input or unsafe file."""

from __future__ import annotations

import numpy as np
import pytest

from bigmodel import keras
from bigmodel.errors import ConfigError
from bigmodel.keras.file_editor import KerasFileEditor, WeightsEditError
from keras_reference import real_keras as _real_keras

h5py = pytest.importorskip("h5py")


def _model(lib, units=2):
    return lib.Sequential([lib.Input((4,)), lib.layers.Dense(3, name="d1"),
                           lib.layers.BatchNormalization(), lib.layers.Dense(units, name="d2")])


def _flat(tree, prefix=""):
    out = {}
    for key, value in tree.items():
        if isinstance(value, dict):
            out.update(_flat(value, f"{prefix}/{key}"))
        else:
            out[f"{prefix}/{key}"] = np.asarray(value)
    return out


def _h5_names(path):
    names = []
    with h5py.File(path, "r") as h5:
        h5.visit(names.append)
    return sorted(names)


def test_same_tree_as_real_keras_on_files_from_both(tmp_path):
    real = _real_keras()
    ours, theirs = _model(keras), _model(real)
    ours.save(tmp_path / "ours.keras")
    theirs.save(tmp_path / "theirs.keras")
    theirs.save_weights(tmp_path / "theirs.weights.h5")
    for name in ("ours.keras", "theirs.keras", "theirs.weights.h5"):
        mine = KerasFileEditor(tmp_path / name)
        reference = real.saving.KerasFileEditor(str(tmp_path / name))
        a, b = _flat(mine.weights_dict), _flat(reference.weights_dict)
        assert sorted(a) == sorted(b) and len(a) == 8
        for key in a:
            np.testing.assert_array_equal(a[key], b[key])
        assert mine.object_metadata == reference.object_metadata
        assert mine.config == reference.config and mine.metadata == reference.metadata
    expected = ours.get_layer("d1").get_weights()[0]
    np.testing.assert_array_equal(
        KerasFileEditor(tmp_path / "ours.keras").weights_dict["layers"]["dense"]["0"], expected)


def test_compare_edit_save_and_load_everywhere(tmp_path, capsys):
    real = _real_keras()
    model = _model(keras)
    model.save(tmp_path / "m.keras")
    editor = KerasFileEditor(tmp_path / "m.keras")
    assert editor.compare(model) == {"status": "success", "error_count": 0, "match_count": 8}
    wider = _model(keras, units=5)
    result = editor.compare(wider)  # d2's kernel and bias differ in shape
    assert result == {"status": "error", "error_count": 2, "match_count": 6}
    printed = capsys.readouterr().out
    assert "shape mismatch for /layers/dense_1/0" in printed and "shape=(3, 5)" in printed

    editor.rename_object("dense_1", "old_head")  # the head is replaced by a new one
    assert editor.compare(model)["error_count"] == 2  # old_head extra, dense_1 missing
    editor.delete_object("old_head")
    kernel = np.arange(6, dtype=np.float32).reshape(3, 2)
    editor.add_object("layers/dense_1", {"0": kernel})
    assert editor.compare(model)["error_count"] == 1  # the bias is missing
    editor.add_weights("layers/dense_1", {"1": np.array([1.0, -1.0], np.float32)})
    assert editor.compare(model)["status"] == "success"
    editor.delete_weight("batch_normalization", "3")
    editor.add_weights("batch_normalization", {"3": np.full(3, 2.0, np.float32)})
    target = tmp_path / "edited.weights.h5"
    editor.save(target)

    reloaded = _model(keras)
    reloaded.load_weights(target)
    np.testing.assert_array_equal(reloaded.get_layer("d2").get_weights()[0], kernel)
    np.testing.assert_array_equal(reloaded.get_layer("d1").get_weights()[0],
                                  model.get_layer("d1").get_weights()[0])
    np.testing.assert_array_equal(reloaded.layers[1].get_weights()[3], np.full(3, 2.0))
    theirs = _model(real)
    theirs.load_weights(str(target))
    np.testing.assert_array_equal(theirs.get_layer("d2").get_weights()[1], [1.0, -1.0])
    # the same groups and datasets as real Keras's editor writes
    real.saving.KerasFileEditor(str(target)).save(str(tmp_path / "k.weights.h5"))
    assert _h5_names(target) == _h5_names(tmp_path / "k.weights.h5")


def test_bad_names_and_paths(tmp_path):
    model = _model(keras)
    model.save_weights(tmp_path / "w.weights.h5")
    editor = KerasFileEditor(tmp_path / "w.weights.h5")
    assert editor.config is None and editor.metadata is None
    with pytest.raises(ConfigError, match="'nope' does not appear"):
        editor.delete_object("nope")
    with pytest.raises(ConfigError, match="occurs more than once"):
        editor.delete_weight("0", "x")  # every object has a weight "0"
    with pytest.raises(ConfigError, match="Path 'layers/nope' not found"):
        editor.rename_object("layers/nope", "x")
    with pytest.raises(ConfigError, match="leaf name"):
        editor.rename_object("dense", "layers/x")
    with pytest.raises(ConfigError, match="Weight 7 not found in object dense"):
        editor.delete_weight("dense", "7")
    with pytest.raises(ConfigError, match="should be a dict"):
        editor.add_weights("dense", [np.zeros(3)])
    with pytest.raises(ConfigError, match="Path 'missing' not found"):
        editor.add_object("missing/x", {"0": np.zeros(1)})
    with pytest.raises(ConfigError, match="expected a `.weights.h5` extension"):
        editor.save(tmp_path / "out.h5")
    assert not (tmp_path / "out.h5").exists()
    with pytest.raises(ConfigError, match="Invalid filename"):
        KerasFileEditor(tmp_path / "w.h5")


def test_unsafe_or_broken_files_are_refused(tmp_path):
    linked = tmp_path / "linked.weights.h5"
    with h5py.File(linked, "w") as h5:
        h5.create_dataset("layers/dense/vars/0", data=np.zeros(3))
        h5["layers/alias"] = h5py.SoftLink("/layers/dense")
    with pytest.raises(WeightsEditError, match="SoftLink"):
        KerasFileEditor(linked)
    external = tmp_path / "external.weights.h5"
    with h5py.File(external, "w") as h5:
        h5["layers/x"] = h5py.ExternalLink("/etc/passwd", "/")
    with pytest.raises(WeightsEditError, match="ExternalLink"):
        KerasFileEditor(external)
    (tmp_path / "junk.keras").write_bytes(b"not a zip")
    with pytest.raises(WeightsEditError, match="not a readable Keras file"):
        KerasFileEditor(tmp_path / "junk.keras")
