"""IDX reader/writer: exact round trips and one DataFileError per kind of damage."""

from __future__ import annotations

import gzip
import struct

import numpy as np
import pytest

from bigmodel.data.idx import read_idx, write_idx
from bigmodel.errors import DataFileError, InputTypeError, ShapeError


def _idx_bytes(code: int, shape: tuple[int, ...], payload: bytes) -> bytes:
    """An IDX file built by hand from the format description (independent of write_idx)."""
    return bytes([0, 0, code, len(shape)]) + struct.pack(f">{len(shape)}I", *shape) + payload


@pytest.mark.parametrize("compress", [False, True])
@pytest.mark.parametrize("dtype", [np.uint8, np.int8, np.int16, np.int32, np.float32, np.float64])
def test_round_trip_is_exact(tmp_path, compress, dtype):
    rng = np.random.default_rng(0)
    if np.issubdtype(dtype, np.integer):
        info = np.iinfo(dtype)
        array = rng.integers(info.min, info.max, size=(3, 5, 4), endpoint=True).astype(dtype)
    else:
        array = rng.standard_normal((3, 5, 4)).astype(dtype)
    path = write_idx(tmp_path / "a.idx", array, compress=compress)
    back = read_idx(path)
    assert back.dtype == np.dtype(dtype).newbyteorder("=")
    assert back.shape == (3, 5, 4)
    np.testing.assert_array_equal(back, array)
    back[0, 0, 0] = 1  # arrays handed to users are writable, like Keras's copies


def test_writer_matches_hand_built_bytes(tmp_path):
    write_idx(tmp_path / "u8", np.array([[1, 2, 3], [4, 5, 6]], dtype=np.uint8))
    assert (tmp_path / "u8").read_bytes() == _idx_bytes(0x08, (2, 3), bytes([1, 2, 3, 4, 5, 6]))
    write_idx(tmp_path / "i32", np.array([1, -2], dtype=np.int32))
    expected = _idx_bytes(0x0C, (2,), struct.pack(">ii", 1, -2))
    assert (tmp_path / "i32").read_bytes() == expected


def test_reader_decodes_hand_built_big_endian_file(tmp_path):
    path = tmp_path / "f32"
    path.write_bytes(_idx_bytes(0x0D, (2, 2), struct.pack(">4f", 1.5, -2.0, 0.25, 8.0)))
    np.testing.assert_array_equal(
        read_idx(path), np.array([[1.5, -2.0], [0.25, 8.0]], dtype=np.float32)
    )


def test_compression_is_detected_by_content_not_name(tmp_path):
    array = np.arange(24, dtype=np.uint8).reshape(2, 3, 4)
    gz_named_raw = write_idx(tmp_path / "raw.gz", array, compress=False)
    raw_named_gz = write_idx(tmp_path / "plain-ubyte", array, compress=True)
    assert gz_named_raw.read_bytes()[:2] == b"\x00\x00"
    assert raw_named_gz.read_bytes()[:2] == b"\x1f\x8b"
    np.testing.assert_array_equal(read_idx(gz_named_raw), array)
    np.testing.assert_array_equal(read_idx(raw_named_gz), array)


def test_compress_default_follows_suffix_and_is_reproducible(tmp_path):
    array = np.arange(10, dtype=np.uint8)
    first = write_idx(tmp_path / "a-ubyte.gz", array).read_bytes()
    second = write_idx(tmp_path / "b-ubyte.gz", array).read_bytes()
    assert first[:2] == b"\x1f\x8b"
    assert first == second  # no file name or time stamp in the gzip header
    assert write_idx(tmp_path / "c-ubyte", array).read_bytes()[:2] == b"\x00\x00"


def test_write_is_atomic_and_overwrites(tmp_path):
    path = tmp_path / "sub" / "x.gz"
    write_idx(path, np.zeros(3, dtype=np.uint8))
    write_idx(path, np.ones(4, dtype=np.uint8))
    np.testing.assert_array_equal(read_idx(path), np.ones(4, dtype=np.uint8))
    assert sorted(p.name for p in path.parent.iterdir()) == ["x.gz"]


def _write(path, data: bytes, compress: bool):
    path.write_bytes(gzip.compress(data) if compress else data)
    return path


GOOD = _idx_bytes(0x08, (2, 3), bytes(range(6)))


@pytest.mark.parametrize("compress", [False, True])
@pytest.mark.parametrize(
    ("data", "words"),
    [
        (b"\x01\x00" + GOOD[2:], ["magic", "0x0100080"]),
        (b"\x00\x00\x0a\x02" + GOOD[4:], ["dtype code 0x0A", "0x08"]),
        (b"\x00\x00\x08\x00", ["0 dimensions"]),
        (GOOD[:-1], ["truncated", "shape (2, 3) of uint8", "12-byte header"]),
        (GOOD + b"\x00\x00", ["trailing", "shape (2, 3) of uint8"]),
        (GOOD[:9], ["truncated IDX header", "12-byte header"]),
        (b"\x00\x00", ["magic number", "only 2"]),
        (b"", ["magic number", "only 0"]),
    ],
    ids=[
        "bad-magic",
        "bad-dtype",
        "zero-ndim",
        "truncated",
        "trailing",
        "short-header",
        "tiny",
        "empty",
    ],
)
def test_damaged_files_name_the_file(tmp_path, compress, data, words):
    path = _write(tmp_path / "damaged-idx3-ubyte", data, compress)
    with pytest.raises(DataFileError) as info:
        read_idx(path)
    message = str(info.value)
    assert str(path) in message
    for word in words:
        assert word in message


def test_raw_length_message_states_expected_and_found_sizes(tmp_path):
    path = _write(tmp_path / "t", GOOD[:-2], compress=False)
    with pytest.raises(DataFileError, match=r"should be 18 bytes .* found 16 bytes"):
        read_idx(path)


def test_gzip_length_message_states_expected_and_found_sizes(tmp_path):
    path = _write(tmp_path / "t.gz", GOOD[:-2], compress=True)
    with pytest.raises(DataFileError, match=r"6 decompressed bytes .* found 4"):
        read_idx(path)
    path = _write(tmp_path / "x.gz", GOOD + b"abc", compress=True)
    with pytest.raises(DataFileError, match="found 3 more decompressed bytes"):
        read_idx(path)


def test_truncated_gzip_stream_and_bad_crc(tmp_path):
    packed = gzip.compress(GOOD)
    cut = tmp_path / "cut.gz"
    cut.write_bytes(packed[:-6])
    with pytest.raises(DataFileError, match="corrupt or truncated gzip") as info:
        read_idx(cut)
    assert str(cut) in str(info.value)
    flipped = bytearray(packed)
    flipped[-5] ^= 0xFF  # CRC32/size trailer no longer matches the data
    bad = tmp_path / "bad.gz"
    bad.write_bytes(bytes(flipped))
    with pytest.raises(DataFileError, match=str(bad)):
        read_idx(bad)


def test_absurd_header_in_gzip_fails_without_allocating(tmp_path):
    header = bytes([0, 0, 0x08, 3]) + struct.pack(">3I", 2**32 - 1, 2**32 - 1, 255)
    path = _write(tmp_path / "huge.gz", header + b"\x00" * 10, compress=True)
    with pytest.raises(DataFileError, match="truncated IDX file"):
        read_idx(path)


def test_expected_ndim_and_dtype(tmp_path):
    labels = write_idx(tmp_path / "labels-idx1-ubyte", np.zeros(4, dtype=np.uint8))
    with pytest.raises(DataFileError, match="expected a 3-dimensional IDX file, found 1") as info:
        read_idx(labels, ndim=3)
    assert str(labels) in str(info.value)
    ints = write_idx(tmp_path / "ints", np.zeros(4, dtype=np.int32))
    with pytest.raises(DataFileError, match="expected IDX values of dtype uint8") as info:
        read_idx(ints, ndim=1, dtype=np.uint8)
    assert str(ints) in str(info.value)
    assert read_idx(labels, ndim=1, dtype=np.uint8).shape == (4,)


def test_missing_file_is_a_data_file_error(tmp_path):
    with pytest.raises(DataFileError, match="no such IDX file") as info:
        read_idx(tmp_path / "absent.gz")
    assert isinstance(info.value, OSError)


def test_writer_rejects_what_idx_cannot_hold(tmp_path):
    with pytest.raises(InputTypeError, match="int64"):
        write_idx(tmp_path / "x", np.zeros(3, dtype=np.int64))
    with pytest.raises(ShapeError, match=r"Received shape \(\)"):
        write_idx(tmp_path / "x", np.uint8(3))
    assert list(tmp_path.iterdir()) == []
