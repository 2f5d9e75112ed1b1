"""Fashion-MNIST / MNIST loaders: search order, checks, downloads, offline mode, the real data."""

from __future__ import annotations

import dataclasses
import hashlib
import io
import warnings
from pathlib import Path

import numpy as np
import pytest

from bigmodel.data import datasets, download
from bigmodel.data.idx import write_idx
from bigmodel.errors import DataFileError, UnknownNameError
from bigmodel.keras.datasets import fashion_mnist, mnist

NAMES = {
    "train_images": "train-images-idx3-ubyte",
    "train_labels": "train-labels-idx1-ubyte",
    "test_images": "t10k-images-idx3-ubyte",
    "test_labels": "t10k-labels-idx1-ubyte",
}
DEBIAN_FASHION = Path("/usr/share/datasets/fashion-mnist")


def make_dataset(directory: Path, seed: int, compress: bool = True, n_train=6, n_test=4):
    """Write four small IDX files of 28x28 uint8 images and 0..9 labels; return the arrays."""
    rng = np.random.default_rng(seed)
    arrays = {
        "train_images": rng.integers(0, 256, (n_train, 28, 28), dtype=np.uint8),
        "train_labels": rng.integers(0, 10, n_train, dtype=np.uint8),
        "test_images": rng.integers(0, 256, (n_test, 28, 28), dtype=np.uint8),
        "test_labels": rng.integers(0, 10, n_test, dtype=np.uint8),
    }
    for role, array in arrays.items():
        name = NAMES[role] + (".gz" if compress else "")
        write_idx(directory / name, array, compress=compress)
    return arrays


def assert_same(loaded, arrays):
    (x_train, y_train), (x_test, y_test) = loaded
    for got, role in [
        (x_train, "train_images"),
        (y_train, "train_labels"),
        (x_test, "test_images"),
        (y_test, "test_labels"),
    ]:
        assert got.dtype == np.uint8
        np.testing.assert_array_equal(got, arrays[role])


def no_network(*args, **kwargs):
    raise AssertionError(f"the network was used: {args}")


@pytest.fixture
def places(tmp_path, monkeypatch):
    """Point cache, Debian directory and home at tmp_path; no BIGMODEL_DATA; offline; no network."""
    roots = {
        "cache": tmp_path / "cache",
        "debian": tmp_path / "debian",
        "env": tmp_path / "env",
        "arg": tmp_path / "arg",
    }
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.setattr(datasets, "CACHE_ROOT", roots["cache"])
    monkeypatch.setitem(datasets.DEBIAN_LOCATIONS, "fashion-mnist", roots["debian"])
    monkeypatch.delenv("BIGMODEL_DATA", raising=False)
    monkeypatch.setenv("BIGMODEL_OFFLINE", "1")
    monkeypatch.setattr(datasets, "_urlopen", no_network)
    return roots


def test_keras_loaders_read_files_the_tests_wrote(places):
    fashion = make_dataset(places["arg"] / "f", seed=1)
    digits = make_dataset(places["arg"] / "m", seed=2, compress=False)
    assert_same(fashion_mnist.load_data(path=places["arg"] / "f"), fashion)
    assert_same(mnist.load_data(path=str(places["arg"] / "m")), digits)


def test_search_order(places, monkeypatch):
    arg = make_dataset(places["arg"], seed=1)
    env_sub = make_dataset(places["env"] / "fashion-mnist", seed=2)
    env_root = make_dataset(places["env"], seed=3)
    cache = make_dataset(places["cache"] / "fashion-mnist", seed=4)
    debian = make_dataset(places["debian"], seed=5)
    monkeypatch.setenv("BIGMODEL_DATA", str(places["env"]))

    assert_same(fashion_mnist.load_data(path=places["arg"]), arg)
    assert_same(fashion_mnist.load_data(), env_sub)
    (places["env"] / "fashion-mnist" / "train-images-idx3-ubyte.gz").unlink()
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # an incomplete default place is not worth a warning
        assert_same(fashion_mnist.load_data(), env_root)
    monkeypatch.delenv("BIGMODEL_DATA")
    assert_same(fashion_mnist.load_data(), cache)
    for file in (places["cache"] / "fashion-mnist").iterdir():
        file.unlink()
    assert_same(fashion_mnist.load_data(), debian)
    # MNIST has no Debian directory: the Fashion-MNIST one is never looked at.
    with pytest.raises(DataFileError) as info:
        mnist.load_data()
    assert str(places["debian"]) not in str(info.value)


def test_corrupt_place_is_reported_and_skipped(places):
    make_dataset(places["arg"], seed=1)
    label_file = places["arg"] / "t10k-labels-idx1-ubyte.gz"
    label_file.write_bytes(label_file.read_bytes()[:-3])
    cache = make_dataset(places["cache"] / "fashion-mnist", seed=4)
    with pytest.warns(UserWarning, match="t10k-labels-idx1-ubyte.gz"):
        assert_same(fashion_mnist.load_data(path=places["arg"]), cache)


@pytest.mark.parametrize(
    ("role", "array", "words"),
    [
        ("train_images", np.zeros(6, np.uint8), ["expected a 3-dimensional", "found 1"]),
        ("train_labels", np.zeros((6, 1), np.uint8), ["expected a 1-dimensional", "found 2"]),
        ("test_labels", np.zeros(5, np.uint8), ["5 labels", "4 images"]),
        ("test_images", np.zeros((4, 27, 28), np.uint8), ["28x28", "(4, 27, 28)"]),
        ("train_images", np.zeros((6, 28, 28), np.int32), ["dtype uint8"]),
        ("train_labels", np.full(6, 10, np.uint8), ["labels in 0..9", "found 10"]),
    ],
    ids=["images-ndim", "labels-ndim", "count-mismatch", "image-size", "dtype", "label-range"],
)
def test_bad_files_end_in_one_error_naming_the_file(places, role, array, words):
    make_dataset(places["arg"], seed=1)
    bad = write_idx(places["arg"] / (NAMES[role] + ".gz"), array)
    with pytest.raises(DataFileError) as info:
        mnist.load_data(path=places["arg"])
    message = str(info.value)
    assert str(bad) in message
    for word in words:
        assert word in message
    assert "corrupt" in message


def test_error_lists_every_place_and_the_fix(places, monkeypatch):
    monkeypatch.setenv("BIGMODEL_DATA", str(places["env"]))
    make_dataset(places["cache"] / "fashion-mnist", seed=1)
    (places["cache"] / "fashion-mnist" / "train-labels-idx1-ubyte.gz").unlink()
    places["debian"].mkdir()
    with pytest.raises(DataFileError) as info:
        fashion_mnist.load_data(path=places["arg"])
    lines = str(info.value).splitlines()
    assert lines[0] == "Fashion-MNIST could not be loaded. Places tried, in order:"
    assert lines[1] == f"  1. path argument ({places['arg']}): missing (no such directory)"
    assert lines[2].startswith(f"  2. $BIGMODEL_DATA/fashion-mnist ({places['env']}/fashion-mnist)")
    assert lines[3].startswith(f"  3. $BIGMODEL_DATA ({places['env']}): missing")
    assert lines[4].endswith("incomplete (missing train-labels-idx1-ubyte.gz)")
    assert lines[5].startswith("  5. Debian package dataset-fashion-mnist")
    assert lines[5].endswith("missing (none of the four files)")
    assert "6. download into" in lines[6] and "disabled (BIGMODEL_OFFLINE=1)" in lines[6]
    assert "apt-get install dataset-fashion-mnist" in lines[7]
    assert "BIGMODEL_DATA" in lines[7] and "BIGMODEL_OFFLINE" in lines[7]

    with pytest.raises(DataFileError) as info:
        mnist.load_data()
    assert "$BIGMODEL_DATA/mnist" in str(info.value)
    assert "apt-get" not in str(info.value)


def test_unknown_name_and_aliases():
    assert datasets.get_spec("fashion_mnist") is datasets.get_spec("Fashion-MNIST")
    with pytest.raises(UnknownNameError, match="fashion-mnist, mnist"):
        datasets.get_spec("cifar10")


# --- downloads ---------------------------------------------------------------------------------


def serve(directory: Path, seed: int, spec_name="mnist", **spec_changes):
    """Write a data set into ``directory`` and swap in a spec whose checksums describe it."""
    arrays = make_dataset(directory, seed=seed)
    files = {}
    for role in datasets.ROLES:
        data = (directory / (NAMES[role] + ".gz")).read_bytes()
        files[role] = download.RemoteFile(
            NAMES[role] + ".gz",
            len(data),
            hashlib.md5(data).hexdigest(),
            hashlib.sha256(data).hexdigest(),
        )
    spec = dataclasses.replace(
        datasets.DATASETS[spec_name], files=files, mirrors=(directory.as_uri() + "/",)
    )
    spec = dataclasses.replace(spec, **spec_changes)
    return arrays, spec


def files_under(root: Path) -> list[Path]:
    return sorted(root.rglob("*")) if root.exists() else []


def test_download_into_cache_via_file_url(places, monkeypatch):
    arrays, spec = serve(places["env"] / "server", seed=7)
    missing_mirror = (places["env"] / "nowhere").as_uri() + "/"
    spec = dataclasses.replace(spec, mirrors=(missing_mirror, *spec.mirrors))
    monkeypatch.setitem(datasets.DATASETS, "mnist", spec)
    monkeypatch.setattr(datasets, "_urlopen", datasets.urllib.request.urlopen)
    monkeypatch.delenv("BIGMODEL_OFFLINE")
    assert_same(mnist.load_data(), arrays)
    cached = places["cache"] / "mnist"
    assert sorted(p.name for p in cached.iterdir()) == sorted(n + ".gz" for n in NAMES.values())
    # Second load: straight from the cache, no network.
    monkeypatch.setattr(datasets, "_urlopen", no_network)
    assert_same(mnist.load_data(), arrays)


@pytest.mark.parametrize("broken", ["md5", "sha256", "size-larger", "size-smaller"])
def test_bad_download_leaves_nothing_behind(places, monkeypatch, broken):
    _, spec = serve(places["env"] / "server", seed=7)
    remote = spec.files["test_labels"]  # the last file: three good downloads come before it
    change = {
        "md5": {"md5": "0" * 32},
        "sha256": {"sha256": "0" * 64},
        "size-larger": {"size": remote.size - 1},
        "size-smaller": {"size": remote.size + 1},
    }[broken]
    files = dict(spec.files, test_labels=dataclasses.replace(remote, **change))
    monkeypatch.setitem(datasets.DATASETS, "mnist", dataclasses.replace(spec, files=files))
    monkeypatch.setattr(datasets, "_urlopen", datasets.urllib.request.urlopen)
    with pytest.raises(DataFileError) as info:
        datasets.load_dataset("mnist", download=True)
    message = str(info.value)
    assert "download into" in message and "t10k-labels-idx1-ubyte.gz" in message
    expected_words = {
        "md5": "checksum mismatch: MD5",
        "sha256": "checksum mismatch: SHA-256",
        "size-larger": "larger than the expected",
        "size-smaller": "received",
    }
    assert expected_words[broken] in message
    assert files_under(places["cache"]) == []


class FakeResponse(io.BytesIO):
    """What urlopen returns, enough for the downloader: read() and a context manager."""


def test_download_through_a_fake_opener_counts_requests(places, monkeypatch):
    arrays, spec = serve(places["env"] / "server", seed=8)
    spec = dataclasses.replace(spec, mirrors=("https://example.invalid/mnist/",))
    monkeypatch.setitem(datasets.DATASETS, "mnist", spec)
    requested = []

    def opener(url, timeout):
        requested.append(url)
        return FakeResponse((places["env"] / "server" / url.rsplit("/", 1)[1]).read_bytes())

    monkeypatch.setattr(datasets, "_urlopen", opener)
    # One good file already in the cache is kept; a corrupt one is downloaded again.
    cache = places["cache"] / "mnist"
    cache.mkdir(parents=True)
    good = places["env"] / "server" / "train-labels-idx1-ubyte.gz"
    (cache / good.name).write_bytes(good.read_bytes())
    (cache / "t10k-labels-idx1-ubyte.gz").write_bytes(b"junk")
    assert_same(datasets.load_dataset("mnist", download=True), arrays)
    assert sorted(url.rsplit("/", 1)[1] for url in requested) == [
        "t10k-images-idx3-ubyte.gz",
        "t10k-labels-idx1-ubyte.gz",
        "train-images-idx3-ubyte.gz",
    ]


def test_network_error_is_listed(places, monkeypatch):
    def opener(url, timeout):
        raise datasets.urllib.error.URLError("name resolution failed")

    monkeypatch.setattr(datasets, "_urlopen", opener)
    monkeypatch.delenv("BIGMODEL_OFFLINE")
    with pytest.raises(DataFileError, match="name resolution failed") as info:
        fashion_mnist.load_data()
    assert "fashion-mnist.s3-website.eu-central-1.amazonaws.com" in str(info.value)
    assert files_under(places["cache"]) == []


@pytest.mark.parametrize("value", ["1", "true", "yes"])
def test_offline_flag_skips_the_network(places, monkeypatch, value):
    monkeypatch.setenv("BIGMODEL_OFFLINE", value)  # _urlopen is no_network: a call would fail
    with pytest.raises(DataFileError, match="disabled \\(BIGMODEL_OFFLINE=1\\)"):
        mnist.load_data()
    with pytest.raises(DataFileError, match="disabled \\(download=False\\)"):
        datasets.load_dataset("mnist", download=False)


def test_full_size_data_must_be_the_official_release(places, monkeypatch):
    # Pretend 6/4 samples is the full size: the files' content then has to match the known hashes.
    spec = dataclasses.replace(datasets.FASHION_MNIST, num_train=6, num_test=4)
    monkeypatch.setitem(datasets.DATASETS, "fashion-mnist", spec)
    make_dataset(places["arg"], seed=1)
    with pytest.raises(DataFileError, match="full Fashion-MNIST shape .* not its content"):
        fashion_mnist.load_data(path=places["arg"])


def test_find_datasets(places, monkeypatch):
    assert datasets.find_datasets() == {"fashion-mnist": None, "mnist": None}
    make_dataset(places["cache"] / "mnist", seed=1)
    make_dataset(places["debian"], seed=2)
    assert datasets.find_datasets() == {
        "fashion-mnist": places["debian"],
        "mnist": places["cache"] / "mnist",
    }
    (places["debian"] / "train-images-idx3-ubyte.gz").write_bytes(b"\x00\x00\x08\x03")
    assert datasets.find_datasets()["fashion-mnist"] == places["debian"]
    assert datasets.find_datasets(verify=True)["fashion-mnist"] is None


# --- the real Fashion-MNIST from the Debian package -------------------------------------------


@pytest.mark.skipif(
    not (DEBIAN_FASHION / "train-images-idx3-ubyte.gz").is_file(),
    reason="Debian package dataset-fashion-mnist is not installed",
)
def test_real_fashion_mnist_from_debian(tmp_path, monkeypatch):
    monkeypatch.setattr(datasets, "CACHE_ROOT", tmp_path / "cache")
    monkeypatch.delenv("BIGMODEL_DATA", raising=False)
    monkeypatch.setenv("BIGMODEL_OFFLINE", "1")
    assert datasets.find_datasets()["fashion-mnist"] == DEBIAN_FASHION
    (x_train, y_train), (x_test, y_test) = fashion_mnist.load_data()
    assert (x_train.shape, y_train.shape) == ((60000, 28, 28), (60000,))
    assert (x_test.shape, y_test.shape) == ((10000, 28, 28), (10000,))
    assert {a.dtype for a in (x_train, y_train, x_test, y_test)} == {np.dtype(np.uint8)}
    assert y_train.min() == 0 and y_train.max() == 9
    np.testing.assert_array_equal(np.bincount(y_train), [6000] * 10)
    np.testing.assert_array_equal(np.bincount(y_test), [1000] * 10)
    np.testing.assert_array_equal(y_train[:10], [9, 0, 0, 3, 0, 2, 7, 2, 5, 5])
    np.testing.assert_array_equal(y_test[:10], [9, 2, 1, 1, 6, 1, 4, 6, 5, 7])
    assert x_train.max() == 255 and x_train.min() == 0
    # The same files are refused as MNIST (recognised by content, not by name).
    with pytest.raises(DataFileError, match="holds Fashion-MNIST data, not MNIST"):
        mnist.load_data(path=DEBIAN_FASHION)
