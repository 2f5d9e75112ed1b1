"""Checkpoints: layout, retention, exact resume, and refusal of damaged or unsafe files."""

import json
import pickle
import zipfile

import numpy as np
import pytest
import torch
from torch import nn

from bigmodel.engine import Callback, EarlyStopping, Trainer, build_scheduler
from bigmodel.engine.checkpoint import (
    latest_checkpoint,
    read_checkpoint,
    verify_checkpoint,
    write_checkpoint,
)
from bigmodel.engine.checkpoint_state import decode_state, encode_state
from bigmodel.errors import CheckpointError
from bigmodel.utils.io import sha256_file


@pytest.fixture(autouse=True)
def one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def data(n=96):
    rng = np.random.default_rng(0)
    x = rng.normal(size=(n, 4)).astype(np.float32)
    return x, (x[:, 0] - x[:, 2] > 0).astype(np.int64)


def make_trainer(run_dir, seed=1, init_seed=0, **kwargs):
    torch.manual_seed(init_seed)
    model = nn.Sequential(nn.Linear(4, 16), nn.ReLU(), nn.Dropout(0.25), nn.Linear(16, 2))
    kwargs.setdefault("scheduler", {"name": "cosine", "warmup_steps": 3})
    return Trainer(model, nn.CrossEntropyLoss(), optimizer="adam", lr=1e-2, metrics=["accuracy"],
                   run_dir=run_dir, seed=seed, verbose=0, **kwargs)


class Crash(Exception):
    pass


class CrashAt(Callback):
    def __init__(self, epoch):
        super().__init__()
        self.epoch = epoch

    def on_epoch_begin(self, epoch, logs=None):
        if epoch == self.epoch:
            raise Crash(f"killed before epoch {epoch + 1}")


def test_resume_is_bit_identical(tmp_path):
    x, y = data()
    full = make_trainer(tmp_path / "full")
    full_history = full.fit((x, y), val=(x[:32], y[:32]), epochs=4, batch_size=16,
                            callbacks=[EarlyStopping(monitor="val_loss", patience=10)])

    interrupted = make_trainer(tmp_path / "run")
    with pytest.raises(Crash):
        interrupted.fit((x, y), val=(x[:32], y[:32]), epochs=4, batch_size=16, callbacks=[CrashAt(2)])
    assert latest_checkpoint(tmp_path / "run" / "checkpoints").name == "epoch-0002"

    stopper = EarlyStopping(monitor="val_loss", patience=10)
    resumed = make_trainer(tmp_path / "run", init_seed=123)  # different init: weights come from disk
    history = resumed.fit((x, y), val=(x[:32], y[:32]), epochs=4, batch_size=16, callbacks=[stopper],
                          resume=True)
    for (name, a), b in zip(full.model.state_dict().items(), resumed.model.state_dict().values()):
        assert torch.equal(a, b), name
    for name, state in full.optimizer.state_dict()["state"].items():
        assert torch.equal(state["exp_avg"], resumed.optimizer.state_dict()["state"][name]["exp_avg"])
    assert resumed.global_step == full.global_step == 24 and resumed.epoch == 4
    assert history.history == full_history.history and history.epoch == [0, 1, 2, 3]
    assert stopper.best == min(full_history.history["val_loss"])  # callback state survived


def test_layout_retention_and_best(tmp_path):
    x, y = data()
    trainer = make_trainer(tmp_path, checkpoint_monitor="val_accuracy", keep_checkpoints=2)
    history = trainer.fit((x, y), val=(x, y), epochs=4, batch_size=32)
    root = tmp_path / "checkpoints"
    assert sorted(p.name for p in root.iterdir()) == ["best", "epoch-0003", "epoch-0004"]
    manifest = verify_checkpoint(root / "epoch-0004")
    assert set(manifest["files"]) == {"model.safetensors", "optimizer.safetensors", "optimizer.json",
                                      "scheduler.json", "rng.safetensors", "rng.json", "trainer.json"}
    best_epoch = int(np.argmax(history.history["val_accuracy"])) + 1
    best = json.loads((root / "best" / "trainer.json").read_text())
    assert best["epoch"] == best_epoch and verify_checkpoint(root / "best")
    (root / "epoch-0009").mkdir()  # no manifest: never "latest"
    assert latest_checkpoint(root).name == "epoch-0004"


def test_save_and_load_checkpoint_round_trip(tmp_path):
    x, y = data()
    def schedule(optimizer):
        return build_scheduler(optimizer, {"name": "cosine", "warmup_steps": 3, "total_steps": 6})

    trainer = make_trainer(None, scheduler=schedule)
    trainer.fit((x, y), epochs=2, batch_size=32)
    path = trainer.save_checkpoint(tmp_path / "manual")
    other = make_trainer(None, init_seed=5, scheduler=schedule)
    other.load_checkpoint(path)
    assert all(torch.equal(a, b) for a, b in zip(trainer.get_weights().values(), other.get_weights().values()))
    assert other.scheduler.state_dict()["last_epoch"] == trainer.scheduler.state_dict()["last_epoch"] == 6
    assert other.optimizer.param_groups[0]["lr"] == trainer.optimizer.param_groups[0]["lr"]
    with pytest.raises(CheckpointError, match=r"No checkpoint found"):
        other.load_checkpoint(tmp_path / "nothing-here")


@pytest.fixture
def saved(tmp_path):
    x, y = data(32)
    trainer = make_trainer(tmp_path, scheduler=None)
    trainer.fit((x, y), epochs=1, batch_size=16)
    return tmp_path / "checkpoints" / "epoch-0001"


def fix_manifest(directory, name):
    """Make the manifest agree with a replaced file, so only the content check can refuse it."""
    manifest = json.loads((directory / "manifest.json").read_text())
    path = directory / name
    manifest["files"][name] = {"sha256": sha256_file(path), "bytes": path.stat().st_size}
    (directory / "manifest.json").write_text(json.dumps(manifest))


def test_tampered_file_is_refused(saved):
    path = saved / "model.safetensors"
    blob = bytearray(path.read_bytes())
    blob[-1] ^= 0xFF
    path.write_bytes(bytes(blob))
    with pytest.raises(CheckpointError, match=r"model\.safetensors was altered: its sha256"):
        read_checkpoint(saved)


def test_truncated_and_missing_files_are_refused(saved):
    path = saved / "optimizer.safetensors"
    path.write_bytes(path.read_bytes()[:-10])
    with pytest.raises(CheckpointError, match=r"optimizer\.safetensors is truncated"):
        make_trainer(None).load_checkpoint(saved)
    (saved / "rng.json").unlink()
    (saved / "optimizer.safetensors").unlink()
    with pytest.raises(CheckpointError, match=r"(rng\.json|optimizer\.safetensors) is missing"):
        verify_checkpoint(saved)
    (saved / "manifest.json").unlink()
    with pytest.raises(CheckpointError, match=r"manifest\.json is missing"):
        read_checkpoint(saved)


class Payload:
    """Unpickling this creates a marker file: proof that code ran."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return (open, (self.marker, "w"))


@pytest.mark.parametrize("kind", ["pickle", "torch.save"])
def test_pickle_files_are_refused_without_running_them(saved, tmp_path, kind):
    marker = tmp_path / "pwned"
    target = saved / "model.safetensors"
    if kind == "pickle":
        target.write_bytes(pickle.dumps(Payload(marker), protocol=4))
    else:
        with zipfile.ZipFile(target, "w") as archive:  # the layout torch.save writes
            archive.writestr("archive/data.pkl", pickle.dumps(Payload(marker), protocol=2))
    fix_manifest(saved, "model.safetensors")
    with pytest.raises(CheckpointError, match=r"Refusing to unpickle .*model\.safetensors"):
        make_trainer(None).load_checkpoint(saved)
    assert not marker.exists()
    weights = tmp_path / "weights.safetensors"
    weights.write_bytes(pickle.dumps(Payload(marker)))
    with pytest.raises(CheckpointError, match=r"Refusing to unpickle"):
        make_trainer(None).load_weights(weights)
    assert not marker.exists()


def test_state_encoding_round_trip():
    state = {"state": {0: {"step": torch.tensor(3.0), "buf": torch.ones(2)}},
             "param_groups": [{"betas": (0.9, 0.999), "params": [0], "lr": 1e-3, "nesterov": False}],
             "array": np.arange(3, dtype=np.int32), "inf": float("inf")}
    document, tensors = encode_state(state, "opt")
    json.dumps(document)
    restored = decode_state(json.loads(json.dumps(document)), tensors)
    assert restored["param_groups"][0]["betas"] == (0.9, 0.999)
    assert torch.equal(restored["state"][0]["buf"], torch.ones(2)) and 0 in restored["state"]
    assert restored["array"].dtype == np.int32 and restored["inf"] == float("inf")
    with pytest.raises(CheckpointError, match=r"opt\.fn .*function"):
        encode_state({"fn": print}, "opt")


def test_failed_write_leaves_nothing(tmp_path):
    target = tmp_path / "ckpt"
    with pytest.raises(TypeError):
        write_checkpoint(target, {"model": {"w": torch.ones(2)}}, {"bad": {"x": object()}})
    assert list(tmp_path.iterdir()) == []
    write_checkpoint(target, {"model": {"w": torch.ones(2)}}, {"ok": {"x": 1}})
    write_checkpoint(target, {"model": {"w": torch.zeros(2)}}, {"ok": {"x": 2}})  # replaces
    loaded = read_checkpoint(target)
    assert loaded.documents["ok"] == {"x": 2} and torch.equal(loaded.tensors["model"]["w"], torch.zeros(2))
    assert [p.name for p in tmp_path.iterdir()] == ["ckpt"]


def test_trainer_save_is_safetensors_and_atomic(tmp_path):
    trainer = make_trainer(None)
    trainer.save(tmp_path / "w.safetensors")
    assert (tmp_path / "w.safetensors").read_bytes()[:8] != b"\x80\x04\x95"  # not a pickle
    other = make_trainer(None, init_seed=9)
    other.load_weights(tmp_path / "w.safetensors")
    assert all(torch.equal(a, b) for a, b in zip(trainer.get_weights().values(), other.get_weights().values()))
    with pytest.raises(CheckpointError, match=r"exists; pass overwrite=True"):
        trainer.save(tmp_path / "w.safetensors", overwrite=False)
    tied = nn.Linear(3, 3)
    model = nn.Sequential(tied, tied)  # shared tensors: safetensors would refuse them as-is
    Trainer(model, "mse", verbose=0).save(tmp_path / "tied.safetensors")
