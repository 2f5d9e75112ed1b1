"""keras.datasets imdb / reuters / boston_housing / california_housing / cifar10 / cifar100: Keras's
file formats (small files the tests write), fetched through get_file from file:// URLs, compared
with real Keras 3's loaders given the same file; object arrays and CIFAR batches are read without
pickle."""

from __future__ import annotations

import hashlib
import io
import json
import os
import pickle
import tarfile
from pathlib import Path

import numpy as np
import pytest

from bigmodel.errors import ConfigError, DataError, DataFileError
from bigmodel.keras import datasets
from bigmodel.keras.datasets import cifar, safe_pickle, word_sequences
from keras_reference import real_keras as _real_keras


def _ragged(rng, n, vocab=30):
    out = np.empty(n, dtype=object)
    out[:] = [list(rng.integers(1, vocab, size=rng.integers(1, 12)).tolist()) for _ in range(n)]
    return out


@pytest.fixture
def served(tmp_path, monkeypatch):
    """A folder served as Keras's bucket (file://) and a private KERAS_HOME."""
    www = tmp_path / "www"
    www.mkdir()
    monkeypatch.setattr(word_sequences, "ORIGIN", www.as_uri() + "/")
    monkeypatch.setenv("KERAS_HOME", str(tmp_path / "home"))
    return www


def _publish(www: Path, name: str, module, attr: str, monkeypatch, data: bytes) -> Path:
    (www / name).write_bytes(data)
    digest = hashlib.sha256(data) if len(getattr(module, attr)) == 64 else hashlib.md5(data)
    monkeypatch.setattr(module, attr, digest.hexdigest())
    return www / name


def _npz_bytes(**arrays) -> bytes:
    buffer = io.BytesIO()
    np.savez(buffer, **arrays)
    return buffer.getvalue()


@pytest.mark.parametrize("options", [
    {},
    {"num_words": 12, "skip_top": 2, "maxlen": 9},
    {"start_char": None, "oov_char": None, "index_from": 0, "num_words": 10, "seed": 7},
])
def test_imdb_equals_real_keras(served, monkeypatch, options):
    rng = np.random.default_rng(0)
    data = _npz_bytes(x_train=_ragged(rng, 20), y_train=rng.integers(0, 2, 20),
                      x_test=_ragged(rng, 15), y_test=rng.integers(0, 2, 15))
    local = _publish(served, "imdb.npz", datasets.imdb, "FILE_HASH", monkeypatch, data)
    (x_train, y_train), (x_test, y_test) = datasets.imdb.load_data(**options)
    keras = _real_keras()
    from keras.src.datasets import imdb as keras_imdb
    monkeypatch.setattr(keras_imdb, "get_file", lambda **kw: str(local))
    (kx_train, ky_train), (kx_test, ky_test) = keras.datasets.imdb.load_data(**options)
    assert x_train.dtype == object and x_train.ndim == 1
    assert [list(x) for x in x_train] == [list(x) for x in kx_train]
    assert [list(x) for x in x_test] == [list(x) for x in kx_test]
    np.testing.assert_array_equal(y_train, ky_train)
    np.testing.assert_array_equal(y_test, ky_test)


def test_reuters_equals_real_keras_and_word_index(served, monkeypatch):
    rng = np.random.default_rng(1)
    data = _npz_bytes(x=_ragged(rng, 30), y=rng.integers(0, 46, 30))
    local = _publish(served, "reuters.npz", datasets.reuters, "FILE_HASH", monkeypatch, data)
    options = {"num_words": 15, "test_split": 0.3}
    (x_train, y_train), (x_test, y_test) = datasets.reuters.load_data(**options)
    keras = _real_keras()
    from keras.src.datasets import reuters as keras_reuters
    monkeypatch.setattr(keras_reuters, "get_file", lambda **kw: str(local))
    (kx_train, ky_train), (kx_test, ky_test) = keras.datasets.reuters.load_data(**options)
    assert len(x_train) == 21 and len(x_test) == 9
    assert [list(x) for x in x_train] == [list(x) for x in kx_train]
    assert [list(x) for x in x_test] == [list(x) for x in kx_test]
    np.testing.assert_array_equal(y_train, ky_train)
    assert datasets.reuters.get_label_names() == tuple(keras.datasets.reuters.get_label_names())
    words = json.dumps({"the": 1, "of": 2}).encode()
    _publish(served, "reuters_word_index.json", datasets.reuters, "WORD_INDEX_HASH", monkeypatch,
             words)
    assert datasets.reuters.get_word_index() == {"the": 1, "of": 2}


def test_housing_splits_equal_real_keras(served, monkeypatch):
    rng = np.random.default_rng(2)
    x, y = rng.normal(size=(50, 13)), rng.normal(size=50)
    local = _publish(served, "boston_housing.npz", datasets.boston_housing, "FILE_HASH",
                     monkeypatch, _npz_bytes(x=x, y=y))
    ours = datasets.boston_housing.load_data(test_split=0.3, seed=5)
    keras = _real_keras()
    from keras.src.datasets import boston_housing as kb
    monkeypatch.setattr(kb, "get_file", lambda *a, **kw: str(local))
    theirs = keras.datasets.boston_housing.load_data(test_split=0.3, seed=5)
    for mine, ref in zip([*ours[0], *ours[1]], [*theirs[0], *theirs[1]]):
        np.testing.assert_array_equal(mine, ref)
    assert ours[0][0].shape == (35, 13) and ours[1][0].shape == (15, 13)
    _publish(served, "california_housing.npz", datasets.california_housing, "FILE_HASH",
             monkeypatch, _npz_bytes(x=rng.normal(size=(700, 8)), y=rng.normal(size=700)))
    (xs, _), (xt, _) = datasets.california_housing.load_data(version="small")
    assert xs.shape == (480, 8) and xt.shape == (120, 8)
    with pytest.raises(ConfigError, match="version"):
        datasets.california_housing.load_data(version="medium")
    with pytest.raises(ConfigError, match="test_split"):
        datasets.boston_housing.load_data(test_split=1.0)


def _cifar_batch(rng, n, keys):
    batch = {b"data": rng.integers(0, 256, (n, 3072), dtype=np.uint8), b"batch_label": b"b"}
    for key in keys:
        batch[key.encode()] = rng.integers(0, 10, n).tolist()
    return pickle.dumps(batch, protocol=2)


def _tar_gz(members: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


def test_cifar10_and_cifar100_from_archives(tmp_path, monkeypatch):
    rng = np.random.default_rng(3)
    monkeypatch.setenv("KERAS_HOME", str(tmp_path / "home"))
    members = {f"cifar-10-batches-py/data_batch_{i}": _cifar_batch(rng, 4, ["labels"])
               for i in range(1, 6)}
    members["cifar-10-batches-py/test_batch"] = _cifar_batch(rng, 3, ["labels"])
    archive = tmp_path / "c10.tar.gz"
    archive.write_bytes(_tar_gz(members))
    monkeypatch.setattr(cifar, "CIFAR10_ORIGIN", archive.as_uri())
    monkeypatch.setattr(cifar, "CIFAR10_HASH", hashlib.sha256(archive.read_bytes()).hexdigest())
    (x_train, y_train), (x_test, y_test) = datasets.cifar10.load_data()
    assert x_train.shape == (20, 32, 32, 3) and x_train.dtype == np.uint8
    assert y_train.shape == (20, 1) and x_test.shape == (3, 32, 32, 3) and y_test.shape == (3, 1)
    first = pickle.loads(members["cifar-10-batches-py/data_batch_1"])  # the tests' own data
    np.testing.assert_array_equal(x_train[0], first[b"data"][0].reshape(3, 32, 32)
                                  .transpose(1, 2, 0))
    assert y_train[:4, 0].tolist() == first[b"labels"]
    members = {"cifar-100-python/train": _cifar_batch(rng, 5, ["fine_labels", "coarse_labels"]),
               "cifar-100-python/test": _cifar_batch(rng, 2, ["fine_labels", "coarse_labels"])}
    archive = tmp_path / "c100.tar.gz"
    archive.write_bytes(_tar_gz(members))
    monkeypatch.setattr(cifar, "CIFAR100_ORIGIN", archive.as_uri())
    monkeypatch.setattr(cifar, "CIFAR100_HASH", hashlib.sha256(archive.read_bytes()).hexdigest())
    (x_train, y_train), _ = datasets.cifar100.load_data(label_mode="coarse")
    assert y_train[:, 0].tolist() == pickle.loads(members["cifar-100-python/train"])[
        b"coarse_labels"]
    with pytest.raises(ConfigError, match="label_mode"):
        datasets.cifar100.load_data(label_mode="medium")


class _Evil:
    def __reduce__(self):
        return (os.system, ("echo pwned",))


def test_safe_pickle_reads_numpy_and_refuses_code():
    arrays = [np.arange(6, dtype=">f4").reshape(2, 3), np.asfortranarray(np.eye(3, dtype=np.int16))]
    for protocol in (2, 3, 4):
        for array in arrays:
            np.testing.assert_array_equal(safe_pickle.loads(pickle.dumps(array, protocol)), array)
    with pytest.raises(DataFileError, match="posix.system|os.system"):
        safe_pickle.loads(pickle.dumps(_Evil()))
    with pytest.raises(DataFileError, match="builtins.eval"):
        safe_pickle.loads(pickle.dumps(eval))
    with pytest.raises(DataFileError, match="truncated|malformed"):
        safe_pickle.loads(pickle.dumps([1, 2, 3])[:-1])


def test_bad_files_and_options(served, monkeypatch):
    _publish(served, "imdb.npz", datasets.imdb, "FILE_HASH", monkeypatch, b"not a zip file")
    with pytest.raises(DataFileError, match="not a readable .npz"):
        datasets.imdb.load_data()
    evil = io.BytesIO()
    np.lib.format.write_array_header_1_0(evil, {"descr": "|O", "fortran_order": False,
                                               "shape": (1,)})
    evil.write(pickle.dumps(_Evil(), protocol=3))
    import zipfile
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as zf:
        for name in ("x", "y"):
            zf.writestr(f"{name}.npy", evil.getvalue())
    _publish(served, "reuters.npz", datasets.reuters, "FILE_HASH", monkeypatch, buffer.getvalue())
    with pytest.raises(DataFileError, match="nothing was executed"):
        datasets.reuters.load_data()
    rng = np.random.default_rng(4)
    _publish(served, "imdb.npz", datasets.imdb, "FILE_HASH", monkeypatch,
             _npz_bytes(x_train=_ragged(rng, 4), y_train=np.zeros(4)))
    with pytest.raises(DataFileError, match="no array 'x_test'"):
        datasets.imdb.load_data()
    _publish(served, "imdb.npz", datasets.imdb, "FILE_HASH", monkeypatch,
             _npz_bytes(x_train=_ragged(rng, 4), y_train=np.zeros(4), x_test=_ragged(rng, 2),
                        y_test=np.zeros(2)))
    with pytest.raises(DataError, match="maxlen=1"):
        datasets.imdb.load_data(maxlen=1)
    with pytest.raises(ConfigError, match="num_words"):
        datasets.imdb.load_data(num_words=-1)
    with pytest.raises(ConfigError, match="unrecognized"):
        datasets.imdb.load_data(nb_words=10)
    monkeypatch.setattr(datasets.imdb, "FILE_HASH", "0" * 64)  # a changed file is refused
    (Path(os.environ["KERAS_HOME"]) / "datasets" / "imdb.npz").unlink()
    with pytest.raises(DataFileError, match="hash"):
        datasets.imdb.load_data()
