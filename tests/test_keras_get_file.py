"""keras.utils.get_file: cache layout, hashes, atomic downloads, safe extraction (file:// URLs and
an http.server on 127.0.0.1; no internet)."""

from __future__ import annotations

import hashlib
import http.server
import io
import tarfile
import threading
import zipfile
from pathlib import Path

import pytest

from bigmodel.errors import ConfigError, DataFileError
from bigmodel.keras import utils
from bigmodel.keras.utils_files import extract_archive, hash_file, validate_file

PAYLOAD = b"hello bigmodel\n" * 100


@pytest.fixture
def source(tmp_path: Path) -> Path:
    path = tmp_path / "src" / "data.txt"
    path.parent.mkdir()
    path.write_bytes(PAYLOAD)
    return path


@pytest.fixture
def server(tmp_path: Path):
    """An http.server on 127.0.0.1 serving tmp_path/www; yields (base URL, request log)."""
    root = tmp_path / "www"
    root.mkdir()
    log: list[str] = []

    class Handler(http.server.SimpleHTTPRequestHandler):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, directory=str(root), **kwargs)

        def log_message(self, *args):  # quiet; record the paths asked for
            log.append(self.path)

    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=httpd.serve_forever, args=(0.02,), daemon=True)
    thread.start()
    try:
        yield root, f"http://127.0.0.1:{httpd.server_address[1]}", log
    finally:
        httpd.shutdown()
        httpd.server_close()


def test_file_url_download_cache_layout_and_hashes(tmp_path, source):
    cache = tmp_path / "cache"
    sha = hashlib.sha256(PAYLOAD).hexdigest()
    md5 = hashlib.md5(PAYLOAD).hexdigest()
    path = utils.get_file("d.txt", source.as_uri(), file_hash=sha, cache_dir=cache)
    assert path == str(cache / "datasets" / "d.txt")
    assert Path(path).read_bytes() == PAYLOAD
    # The name defaults to the URL's last part; md5_hash (deprecated) still checks.
    path2 = utils.get_file(origin=source.as_uri(), md5_hash=md5, cache_dir=cache,
                           cache_subdir="other")
    assert path2 == str(cache / "other" / "data.txt")
    assert hash_file(path) == sha and hash_file(path, "md5") == md5
    assert validate_file(path, md5) and validate_file(path, sha) and not validate_file(path, "0")
    # No leftover temporary files.
    assert sorted(p.name for p in (cache / "datasets").iterdir()) == ["d.txt"]


def test_keras_home_is_the_default_cache(tmp_path, source, monkeypatch):
    monkeypatch.setenv("KERAS_HOME", str(tmp_path / "kh"))
    path = utils.get_file("x.txt", source.as_uri())
    assert path == str(tmp_path / "kh" / "datasets" / "x.txt")


def test_http_server_cached_second_call_and_stale_hash_refetch(tmp_path, server):
    root, base, log = server
    (root / "f.bin").write_bytes(PAYLOAD)
    cache = tmp_path / "cache"
    sha = hashlib.sha256(PAYLOAD).hexdigest()
    first = utils.get_file("f.bin", f"{base}/f.bin", file_hash=sha, cache_dir=cache)
    assert Path(first).read_bytes() == PAYLOAD and log == ["/f.bin"]
    utils.get_file("f.bin", f"{base}/f.bin", file_hash=sha, cache_dir=cache)
    assert log == ["/f.bin"]  # cached: not fetched again
    Path(first).write_bytes(b"stale")  # a cached file whose hash no longer matches is refetched
    utils.get_file("f.bin", f"{base}/f.bin", file_hash=sha, cache_dir=cache)
    assert log == ["/f.bin", "/f.bin"] and Path(first).read_bytes() == PAYLOAD
    utils.get_file("f.bin", f"{base}/f.bin", cache_dir=cache, force_download=True)
    assert len(log) == 3


def test_bad_hash_and_missing_url_leave_nothing(tmp_path, server):
    root, base, _ = server
    (root / "f.bin").write_bytes(PAYLOAD)
    cache = tmp_path / "cache"
    with pytest.raises(DataFileError, match="hash is .*expected 0{64}"):
        utils.get_file("f.bin", f"{base}/f.bin", file_hash="0" * 64, cache_dir=cache)
    with pytest.raises(DataFileError, match="404"):
        utils.get_file("g.bin", f"{base}/missing.bin", cache_dir=cache)
    with pytest.raises(DataFileError, match="URL fetch failure"):
        utils.get_file("h.bin", (tmp_path / "nowhere.bin").as_uri(), cache_dir=cache)
    assert list((cache / "datasets").iterdir()) == []


def _tar_bytes(members: dict[str, bytes], links: dict[str, str] | None = None) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
        for name, target in (links or {}).items():
            info = tarfile.TarInfo(name)
            info.type, info.linkname = tarfile.SYMTYPE, target
            tar.addfile(info)
    return buffer.getvalue()


def test_extract_tar_and_zip_keras_names(tmp_path):
    archive = tmp_path / "pack.tar.gz"
    archive.write_bytes(_tar_bytes({"pack/a.txt": b"A", "pack/sub/b.txt": b"B"}))
    cache = tmp_path / "cache"
    # fname with a dot: the archive keeps the name, the folder is <stem>_extracted.
    out = utils.get_file("pack.tar.gz", archive.as_uri(), extract=True, cache_dir=cache)
    assert out == str(cache / "datasets" / "pack_extracted")
    assert (Path(out) / "pack" / "sub" / "b.txt").read_bytes() == b"B"
    # fname without a dot names the folder; the archive is <fname>_archive.
    zipped = tmp_path / "z.zip"
    with zipfile.ZipFile(zipped, "w") as zf:
        zf.writestr("inner/c.txt", "C")
    out = utils.get_file("zdata", zipped.as_uri(), extract=True, cache_dir=cache)
    assert out == str(cache / "datasets" / "zdata")
    assert (cache / "datasets" / "zdata_archive").is_file()
    assert (Path(out) / "inner" / "c.txt").read_text() == "C"
    # untar (deprecated) = tar only: a zip is not a tar.
    with pytest.raises(DataFileError, match="not a tar archive"):
        utils.get_file("zz", zipped.as_uri(), untar=True, cache_dir=cache)
    assert extract_archive(zipped, tmp_path / "none", archive_format=None) is False


@pytest.mark.parametrize("members, links", [
    ({"../evil.txt": b"x"}, None),
    ({"/abs/evil.txt": b"x"}, None),
    ({"ok.txt": b"x"}, {"out": "../../outside"}),
])
def test_tar_members_outside_are_refused(tmp_path, members, links):
    archive = tmp_path / "bad.tar.gz"
    archive.write_bytes(_tar_bytes(members, links))
    cache = tmp_path / "cache"
    with pytest.raises(DataFileError, match="outside"):
        utils.get_file("bad.tar.gz", archive.as_uri(), extract=True, cache_dir=cache)
    assert not (cache / "datasets" / "bad_extracted").exists()
    assert not (tmp_path / "evil.txt").exists() and not (cache / "evil.txt").exists()
    assert [p.name for p in (cache / "datasets").iterdir()] == ["bad.tar.gz"]


def test_zip_member_outside_is_refused(tmp_path):
    zipped = tmp_path / "bad.zip"
    with zipfile.ZipFile(zipped, "w") as zf:
        zf.writestr("../../evil.txt", "x")
    with pytest.raises(DataFileError, match="outside"):
        extract_archive(zipped, tmp_path / "out")
    assert not (tmp_path / "out").exists() and not (tmp_path.parent / "evil.txt").exists()


def test_bad_arguments(tmp_path, source):
    with pytest.raises(ConfigError, match="origin"):
        utils.get_file("x.txt")
    with pytest.raises(ConfigError, match="fname"):
        utils.get_file("sub/x.txt", source.as_uri(), cache_dir=tmp_path)
    with pytest.raises(ConfigError, match="file name"):
        utils.get_file(origin="http://127.0.0.1/", cache_dir=tmp_path)
    with pytest.raises(ConfigError, match="hash_algorithm"):
        utils.get_file("x.txt", source.as_uri(), hash_algorithm="sha1", cache_dir=tmp_path)
    with pytest.raises(ConfigError, match="archive_format"):
        extract_archive(source, tmp_path / "o", archive_format="rar")
