"""Weights files are recognised by their safetensors header, so bigmodel never refuses a file it wrote.

The first 8 bytes of a safetensors file are its header length; lengths 640, 896, 1152 and 1408 put
``\\x80\\x02`` .. ``\\x80\\x05`` there -- the opening bytes of a pickle. A pickle sniff alone refused
those files (16 of 802 round trips). These tests save files of every header length up to 4096 and
load each back, and force the four pickle-like lengths through every loader.
"""

from __future__ import annotations

import os
import pickle
import random
import zipfile

import pytest
import safetensors.torch
import torch
from torch import nn

from bigmodel import keras, transfer
from bigmodel.engine import checkpoint
from bigmodel.errors import CheckpointError
from bigmodel.models import create_model
from bigmodel.models.registry import load_model, save_model
from bigmodel.utils.loading import read_safetensors_header

PICKLE_LIKE_LENGTHS = (640, 896, 1152, 1408)  # 0x280, 0x380, 0x480, 0x580: b"\x80\x02" .. b"\x80\x05"

DTYPES = (torch.float32, torch.float16, torch.bfloat16, torch.float64, torch.int64, torch.int8, torch.bool)


def header_length(path) -> int:
    with open(path, "rb") as handle:
        return int.from_bytes(handle.read(8), "little")


class Bag(nn.Module):
    """A module holding named buffers of the given shapes and dtypes (any dtype, unlike parameters)."""

    def __init__(self, specs: dict[str, tuple[tuple[int, ...], torch.dtype]], generator=None):
        super().__init__()
        for index, (name, (shape, dtype)) in enumerate(specs.items()):
            values = torch.randn(shape, generator=generator, dtype=torch.float64) * 3
            self.register_buffer(f"b{index}_{name}", values.to(dtype))


def random_specs(rng: random.Random, name_length: int) -> dict:
    count = rng.randint(1, 3)
    specs = {}
    for index in range(count):
        shape = tuple(rng.randint(0, 4) for _ in range(rng.randint(0, 3)))
        specs[("x" * name_length if index == 0 else f"t{index}")] = (shape, rng.choice(DTYPES))
    return specs


@pytest.mark.full  # 4,099 files (~8 s); the loader tests below cover the pickle-like lengths
def test_every_header_length_up_to_4096_round_trips(tmp_path, monkeypatch):
    # 4,099 atomic saves: their fsync (durability, not the header format tested here) took 25 of
    # the test's seconds on a busy disk; the write, rename and read paths stay as they are.
    monkeypatch.setattr(os, "fsync", lambda fd: None)
    rng = random.Random(0)
    generator = torch.Generator().manual_seed(0)
    seen = set()
    for name_length in range(1, 4100):
        source = Bag(random_specs(rng, name_length), generator)
        path = tmp_path / "w.safetensors"
        checkpoint.save_weights(source, path)
        seen.add(header_length(path))
        target = Bag({name: (tuple(v.shape), v.dtype) for name, v in
                      ((k.split("_", 1)[1], v) for k, v in source.state_dict().items())})
        checkpoint.load_weights(target, path)
        for (key, want), got in zip(source.state_dict().items(), target.state_dict().values()):
            assert torch.equal(want, got), key
    # safetensors pads headers to 8 bytes: every such length from the smallest seen up to 4096 occurs
    assert set(range(min(seen), 4097, 8)) <= seen
    assert set(PICKLE_LIKE_LENGTHS) <= seen


def pad_to(protocol: int, lengths: list):
    """A ``save_file`` that pads the metadata so the header length starts ``\\x80 protocol``.

    The smallest such length that fits the tensors is used (``0x80 + 256 * protocol``, plus
    multiples of 65536 for larger headers); each length used is appended to ``lengths``.
    """
    original = safetensors.torch.save_file

    def save_file(tensors, filename, metadata=None):
        base = int.from_bytes(safetensors.torch.save(tensors, metadata=dict(metadata or {}, pad=""))[:8], "little")
        length = 0x80 + 256 * protocol
        while length < base + 8:
            length += 65536
        for pad in range(length - base - 16, length - base + 16):
            extended = dict(metadata or {}, pad="p" * max(pad, 0))
            data = safetensors.torch.save(tensors, metadata=extended)
            if int.from_bytes(data[:8], "little") == length:
                lengths.append(length)
                return original(tensors, filename, metadata=extended)
        raise AssertionError(f"cannot pad a header to {length} bytes")

    return save_file


@pytest.fixture(params=[2, 3, 4, 5])
def pickle_like(request, monkeypatch):
    lengths: list[int] = []
    save_file = pad_to(request.param, lengths)
    monkeypatch.setattr(safetensors.torch, "save_file", save_file)
    monkeypatch.setattr(checkpoint, "save_file", save_file)  # imported by name there
    # models.model_files (registry, Keras .safetensors, int8, LoRA) imports it from safetensors.torch
    # at call time: the first patch covers it.
    return request.param


def check_pickle_like(path, protocol):
    with open(path, "rb") as handle:
        assert handle.read(2) == bytes([0x80, protocol])  # the file starts like a pickle


def test_registry_model_files_with_pickle_like_headers_load(tmp_path, pickle_like):
    model = create_model("seed-cnn")
    save_model(model, tmp_path)
    check_pickle_like(tmp_path / "model.safetensors", pickle_like)
    loaded = load_model(tmp_path)
    for key, value in model.state_dict().items():
        assert torch.equal(value, loaded.state_dict()[key])


def test_keras_files_with_pickle_like_headers_load(tmp_path, pickle_like):
    model = keras.Sequential([keras.layers.Dense(3, input_shape=(4,)), keras.layers.Dense(2)])
    model.save(tmp_path / "m.safetensors")
    check_pickle_like(tmp_path / "m.safetensors", pickle_like)
    loaded = keras.models.load_model(tmp_path / "m.safetensors")
    x = torch.randn(5, 4)
    torch.testing.assert_close(loaded.predict(x, verbose=0), model.predict(x, verbose=0), rtol=0, atol=0)


def test_checkpoints_with_pickle_like_headers_load(tmp_path, pickle_like):
    tensors = {"model": {"w": torch.arange(6.0).reshape(2, 3)}}
    checkpoint.write_checkpoint(tmp_path / "ckpt", tensors, {"state": {"epoch": 1}})
    check_pickle_like(tmp_path / "ckpt" / "model.safetensors", pickle_like)
    loaded = checkpoint.read_checkpoint(tmp_path / "ckpt")
    assert torch.equal(loaded.tensors["model"]["w"], tensors["model"]["w"])


def test_lora_adapters_with_pickle_like_headers_load(tmp_path, pickle_like):
    torch.manual_seed(0)
    model = create_model("bert-classifier", num_layers=1)
    transfer.add_lora(model, ["*.self_attn.in_proj"], rank=2)
    transfer.save_lora(model, tmp_path / "adapter")
    check_pickle_like(tmp_path / "adapter" / "adapter.safetensors", pickle_like)
    fresh = create_model("bert-classifier", num_layers=1)
    transfer.load_lora(fresh, tmp_path / "adapter")


class Payload:
    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return (open, (self.marker, "w"))


@pytest.mark.parametrize("protocol", [2, 3, 4, 5])
def test_real_pickles_are_refused_unread_and_named(tmp_path, protocol):
    marker = tmp_path / "pwned"
    path = tmp_path / "model.safetensors"
    path.write_bytes(pickle.dumps(Payload(marker), protocol=protocol))
    with pytest.raises(CheckpointError, match=r"Refusing to unpickle .*model\.safetensors: it is a pickle"):
        read_safetensors_header(path)
    assert not marker.exists()


def test_torch_save_zip_is_refused(tmp_path):
    path = tmp_path / "w.safetensors"
    torch.save({"w": torch.zeros(2)}, path)
    with zipfile.ZipFile(path) as archive:
        assert archive.namelist()
    with pytest.raises(CheckpointError, match=r"Refusing to unpickle .*zip archive"):
        read_safetensors_header(path)


@pytest.mark.parametrize("data, reason", [
    (b"", r"0 bytes, shorter than the 8-byte header"),
    (b"\x10\x00\x00\x00\x00\x00\x00\x00{}", r"declared header length 16 does not fit"),
    ((2).to_bytes(8, "little") + b"\xff\xfe", r"header is not JSON"),
    ((2).to_bytes(8, "little") + b"[]", r"not a JSON object"),
    ((0xFFFFFFFF).to_bytes(8, "little") + b"{}", r"declared header length 4294967295"),
])
def test_malformed_headers_name_the_file_and_the_reason(tmp_path, data, reason):
    path = tmp_path / "w.safetensors"
    path.write_bytes(data)
    with pytest.raises(CheckpointError, match=reason):
        read_safetensors_header(path)


def craft(entries: dict, data: bytes = b"") -> bytes:
    import json
    header = json.dumps(entries).encode()
    return len(header).to_bytes(8, "little") + header + data


@pytest.mark.parametrize("entries, data, reason", [
    ({"w": {"dtype": "F32", "shape": [2], "data_offsets": [0, 16]}}, b"\0" * 8, r"byte range \[0, 16\]"),
    ({"w": {"dtype": "F32", "shape": [3], "data_offsets": [0, 8]}}, b"\0" * 8, r"declares F32\[3\] \(12 bytes\)"),
    ({"w": {"dtype": "F32", "shape": [-1], "data_offsets": [0, 0]}}, b"", r"shape \[-1\]"),
    ({"w": {"dtype": 4, "shape": [1], "data_offsets": [0, 4]}}, b"\0" * 4, r"dtype 4"),
    ({"w": [1, 2]}, b"", r"tensor 'w' has no dtype"),
    ({"__metadata__": {"a": 1}}, b"", r"__metadata__ must map names to strings"),
])
def test_inconsistent_declarations_are_refused_before_reading(tmp_path, entries, data, reason):
    path = tmp_path / "w.safetensors"
    path.write_bytes(craft(entries, data))
    with pytest.raises(CheckpointError, match=reason):
        read_safetensors_header(path)


def test_header_reports_shapes_and_metadata(tmp_path):
    path = tmp_path / "w.safetensors"
    safetensors.torch.save_file({"a": torch.zeros(2, 3), "b": torch.zeros(4, dtype=torch.int64)}, str(path),
                                metadata={"format": "x"})
    header = read_safetensors_header(path)
    assert header.metadata == {"format": "x"}
    assert {k: (v.dtype, v.shape) for k, v in header.tensors.items()} == {"a": ("F32", (2, 3)), "b": ("I64", (4,))}
