"""Crash-safe run directories: one writer (a lock), no duplicate ``metrics.csv`` rows after a resume,
no leftover temporary folders, no checkpoint of NaN weights, reproducible logged losses, and a
clear error when the disk is full."""

from __future__ import annotations

import contextlib
import errno
import json
import math
import multiprocessing
import os
import re
import signal
import socket
import subprocess
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from bigmodel.engine import Trainer, run_lock
from bigmodel.engine import trainer as trainer_module
from bigmodel.engine.callbacks import Callback, CSVLogger
from bigmodel.engine.checkpoint import (
    CheckpointManager,
    first_nonfinite,
    save_weights,
    verify_checkpoint,
)
from bigmodel.engine.metrics import RunningLoss
from bigmodel.errors import CheckpointError, ConfigError, TrainingError

pytestmark = pytest.mark.usefixtures("one_torch_thread")

ROOT = Path(__file__).resolve().parents[1]


def blobs(n=96, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, 4)).astype(np.float32)
    return x, (x[:, 0] + 0.5 * x[:, 1] > 0).astype(np.int64)


def mlp(seed=0):
    torch.manual_seed(seed)
    return nn.Sequential(nn.Linear(4, 16), nn.ReLU(), nn.Linear(16, 2))


def make_trainer(run_dir, seed=0, **options):
    return Trainer(mlp(seed), loss="cross_entropy", optimizer="adam", lr=0.01, run_dir=run_dir,
                   seed=seed, verbose=0, device="cpu", **options)


FORK = multiprocessing.get_context("fork")  # children start in milliseconds: torch is imported


def _hold_lock(run_dir, locked, done):
    lock = run_lock.acquire(run_dir)
    locked.set()
    done.wait(60)
    lock.release()


@contextlib.contextmanager
def lock_held_by_child(run_dir: Path):
    """A child process that holds ``run_dir``'s lock until the block ends; yields it."""
    locked, done = FORK.Event(), FORK.Event()
    child = FORK.Process(target=_hold_lock, args=(run_dir, locked, done))
    child.start()
    try:
        assert locked.wait(60)
        yield child
    finally:
        if child.is_alive():  # a killed child may have died inside done.wait(): never notify it
            done.set()
        child.join(60)


# --- the lock ------------------------------------------------------------------------------------

def test_lock_names_its_holder_is_reentrant_and_deleted_on_release(tmp_path):
    run_dir = tmp_path / "run"
    lock = run_lock.acquire(run_dir)  # creates the directory
    holder = json.loads((run_dir / ".lock").read_text())
    assert holder["pid"] == os.getpid() and holder["host"] == socket.gethostname()
    assert holder["started"]
    again = run_lock.acquire(run_dir)  # the same process again: a further hold
    assert again is lock
    again.release()
    assert (run_dir / ".lock").is_file() and lock.held
    lock.release()
    assert not (run_dir / ".lock").exists() and not lock.held


def test_second_process_is_refused_with_the_holders_pid_and_host(tmp_path):
    run_dir = tmp_path / "run"
    with lock_held_by_child(run_dir) as child:
        with pytest.raises(ConfigError, match=rf"in use by another bigmodel process: pid {child.pid} "
                                              rf"on host {socket.gethostname()}"):
            run_lock.acquire(run_dir)
        trainer = make_trainer(run_dir)
        with pytest.raises(ConfigError, match=rf"pid {child.pid}"):
            trainer.fit(blobs(), epochs=1)
        assert not (run_dir / "checkpoints").exists()  # refused before writing anything
    with run_lock.hold(run_dir):  # the child let go: free again
        pass


def test_stale_lock_of_a_killed_process_is_reported_and_taken_over(tmp_path):
    run_dir = tmp_path / "run"
    with lock_held_by_child(run_dir) as child:
        os.kill(child.pid, signal.SIGKILL)
        child.join(60)
    assert json.loads((run_dir / ".lock").read_text())["pid"] == child.pid  # left behind
    with pytest.warns(UserWarning, match=rf"took over the lock left by pid {child.pid} on host"):
        lock = run_lock.acquire(run_dir)
    assert lock.previous["pid"] == child.pid
    assert json.loads((run_dir / ".lock").read_text())["pid"] == os.getpid()
    lock.release()


def test_a_file_system_without_locks_warns_and_goes_on(tmp_path, monkeypatch):
    def no_locks(fd, operation):
        raise OSError(errno.ENOLCK, "No locks available")

    monkeypatch.setattr(run_lock.fcntl, "flock", no_locks)
    with pytest.warns(UserWarning, match="cannot lock files"):
        lock = run_lock.acquire(tmp_path / "run")
    assert lock.held
    lock.release()
    assert not lock.held


def _train_in_child(arguments, start, results):
    import io

    from bigmodel.cli.main import main

    torch.set_num_threads(1)  # no OpenMP pool in a forked child (one the parent had is not usable)
    errors = io.StringIO()
    start.wait(60)  # both children reach the command at the same moment
    with contextlib.redirect_stderr(errors), contextlib.redirect_stdout(io.StringIO()):
        code = main(arguments)
    results.put((os.getpid(), code, errors.getvalue()))


def test_two_trainings_started_together_on_one_run_dir_exactly_one_runs(tmp_path, monkeypatch):
    from bigmodel.data.idx import write_idx

    monkeypatch.setenv("BIGMODEL_OFFLINE", "1")
    rng = np.random.default_rng(0)
    data = tmp_path / "data"
    data.mkdir()
    for split, count in (("train", 64), ("t10k", 32)):
        labels = rng.integers(0, 10, count).astype(np.uint8)
        images = (rng.random((count, 28, 28)) * 60 + labels[:, None, None] * 19).astype(np.uint8)
        write_idx(data / f"{split}-images-idx3-ubyte.gz", images)
        write_idx(data / f"{split}-labels-idx1-ubyte.gz", labels)
    run_dir = tmp_path / "run"
    arguments = ["train", str(ROOT / "configs" / "fashion_cnn.yaml"), "--run-dir", str(run_dir),
                 "--set", f"data.path={data}", "--set", "train.epochs=1", "--set", "train.batch_size=32"]
    start, results = FORK.Barrier(2), FORK.Queue()
    children = [FORK.Process(target=_train_in_child, args=(arguments, start, results)) for _ in range(2)]
    for child in children:
        child.start()
    outcomes = sorted((results.get(timeout=120) for _ in children), key=lambda item: item[1])
    for child in children:
        child.join(60)
    assert [code for _, code, _ in outcomes] == [0, 2], outcomes
    (winner, _, _), (_, _, refused) = outcomes
    assert re.search(rf"in use by another bigmodel process: pid {winner}|already exists and is not "
                     "empty", refused), refused
    assert "Traceback" not in refused
    assert (run_dir / "model.safetensors").is_file() and not (run_dir / ".lock").exists()
    assert len((run_dir / "metrics.csv").read_text().splitlines()) == 1 + 1  # one run's rows


# --- resume: metrics.csv rows and temporary folders -----------------------------------------------

class KillDuringCheckpoint(Exception):
    pass


def test_resume_after_a_kill_during_a_checkpoint_write_logs_each_epoch_once(tmp_path, monkeypatch):
    x, y = blobs()
    reference = tmp_path / "reference"
    make_trainer(reference).fit((x, y), epochs=4, batch_size=16,
                                callbacks=[CSVLogger(reference / "metrics.csv", append=True)])

    run_dir = tmp_path / "run"
    save = CheckpointManager.save
    calls = []

    def killed_on_third(self, *args, **kwargs):
        calls.append(args)
        if len(calls) == 3:  # the third epoch's row is in metrics.csv; its checkpoint is not
            (self.root / ".epoch-0003.abc123.tmp").mkdir()  # what a killed write leaves
            (self.root.parent / ".model.safetensors.xyz.tmp").write_bytes(b"partial")
            raise KillDuringCheckpoint
        return save(self, *args, **kwargs)

    monkeypatch.setattr(CheckpointManager, "save", killed_on_third)
    with pytest.raises(KillDuringCheckpoint):
        make_trainer(run_dir).fit((x, y), epochs=4, batch_size=16,
                                  callbacks=[CSVLogger(run_dir / "metrics.csv", append=True)])
    monkeypatch.setattr(CheckpointManager, "save", save)
    rows = (run_dir / "metrics.csv").read_text().splitlines()
    assert [row.split(",")[0] for row in rows] == ["epoch", "0", "1", "2"]

    history = make_trainer(run_dir).fit((x, y), epochs=4, batch_size=16, resume=True,
                                        callbacks=[CSVLogger(run_dir / "metrics.csv", append=True)])
    assert history.epoch == [0, 1, 2, 3]
    assert (run_dir / "metrics.csv").read_bytes() == (reference / "metrics.csv").read_bytes()
    assert not list(run_dir.rglob(".*.tmp"))  # cleaned at the start, under the lock
    assert not (run_dir / ".lock").exists()


def test_csv_logger_keeps_keras_append_semantics_without_resume(tmp_path):
    x, y = blobs()
    path = tmp_path / "log.csv"
    trainer = Trainer(mlp(), loss="cross_entropy", optimizer="adam", verbose=0, device="cpu")
    for _ in range(2):  # Keras appends every fit's rows, duplicate epoch numbers included
        trainer.fit((x, y), epochs=2, batch_size=32, callbacks=[CSVLogger(path, append=True)])
    assert [row.split(",")[0] for row in path.read_text().splitlines()] == ["epoch", "0", "1", "0", "1"]


# --- NaN weights are never checkpointed -------------------------------------------------------------

class RuinWeightsAtLastStep(Callback):
    """Sets a weight to NaN after the last step of epoch ``epoch`` (0-based): the loss of that step
    (computed before) and the epoch's mean loss stay finite."""

    def __init__(self, epoch, steps):
        super().__init__()
        self.target_epoch, self.steps, self.epoch = epoch, steps, -1

    def on_epoch_begin(self, epoch, logs=None):
        self.epoch = epoch

    def on_train_batch_end(self, batch, logs=None):
        if self.epoch == self.target_epoch and batch == self.steps - 1:
            with torch.no_grad():
                self.model.model[0].weight[0, 0] = math.nan


def test_nan_weights_are_not_checkpointed_and_the_error_names_the_real_last_good(tmp_path):
    x, y = blobs()
    trainer = make_trainer(tmp_path / "run")
    with pytest.raises(TrainingError) as caught:
        trainer.fit((x, y), epochs=3, batch_size=32, callbacks=[RuinWeightsAtLastStep(1, 3)])
    message = str(caught.value)
    assert trainer.history.history["loss"][1] == trainer.history.history["loss"][1]  # finite mean
    good = tmp_path / "run" / "checkpoints" / "epoch-0001"
    assert f"last good checkpoint: {good}" in message and "0.weight" in message
    assert not (tmp_path / "run" / "checkpoints" / "epoch-0002").exists()
    verify_checkpoint(good)
    restored = make_trainer(None)
    restored.load_checkpoint(good)
    assert all(torch.isfinite(p).all() for p in restored.model.parameters())


def test_first_nonfinite_names_the_tensor_in_nested_optimizer_state():
    state = {"model": {"w": torch.ones(3), "steps": torch.tensor([1, 2])},
             "optimizer": {0: {"step": torch.tensor(3.0), "exp_avg": torch.tensor([0.0, math.inf])}}}
    assert first_nonfinite(state) == "optimizer.0.exp_avg"
    state["optimizer"][0]["exp_avg"][1] = 1.0
    assert first_nonfinite(state) is None
    assert first_nonfinite({"w": torch.tensor([math.nan], dtype=torch.bfloat16)}) == "w"


# --- deterministic logged losses ----------------------------------------------------------------------

def test_running_loss_does_not_depend_on_when_it_is_flushed():
    rng = np.random.default_rng(0)
    losses = rng.random(500).astype(np.float32) * 3
    sizes = rng.integers(1, 64, 500)
    expected_total = 0.0
    for value, size in zip(losses.astype(np.float64), sizes):
        expected_total += value * int(size)  # the per-step float64 sum, in step order
    means = set()
    for chunk in (1, 7, 64, 500):
        tracker = RunningLoss()
        for start in range(0, 500, chunk):
            tracker.pending.extend(torch.from_numpy(losses[start:start + chunk]).unbind())
            tracker.sizes.extend(int(s) for s in sizes[start:start + chunk])
            tracker.flush()
        means.add(tracker.mean())
        assert tracker.count == int(sizes.sum()) and tracker.bad_step is None
    assert means == {expected_total / int(sizes.sum())}


def test_running_loss_finds_the_first_bad_step_across_flushes():
    tracker = RunningLoss()
    tracker.pending.extend([torch.tensor(1.0), torch.tensor(2.0)])
    tracker.sizes.extend([2, 2])
    tracker.flush()
    tracker.pending.extend([torch.tensor(1.0), torch.tensor(math.inf), torch.tensor(math.nan)])
    tracker.sizes.extend([2, 2, 2])
    tracker.flush()
    assert tracker.bad_step == 4


@pytest.mark.parametrize("refresh", [0.0, 1e9])
def test_identical_runs_log_bit_identical_history_and_metrics_csv(tmp_path, monkeypatch, refresh):
    """The loop reads losses back when its display refreshes (on the wall clock): flushing after
    every step (0 s) or once per epoch (1e9 s) must log the same bits as a default run."""
    x, y = blobs(200)
    logs = []
    for name, seconds in (("default", None), ("other", refresh)):
        if seconds is not None:
            monkeypatch.setattr(trainer_module, "REFRESH_SECONDS", seconds)
        csv_path = tmp_path / name / "metrics.csv"
        trainer = Trainer(mlp(), loss="cross_entropy", optimizer="sgd", lr=0.1, seed=3, verbose=0,
                          device="cpu", metrics=["accuracy"])
        history = trainer.fit((x, y), val=(x[:40], y[:40]), epochs=2, batch_size=8,
                              callbacks=[CSVLogger(csv_path)])
        logs.append((history.history, csv_path.read_bytes()))
    assert logs[0] == logs[1]


# --- disk full ------------------------------------------------------------------------------------------

@pytest.fixture
def small_tmpfs(tmp_path):
    """A 768 KiB tmpfs (needs root and mount permission; the test is skipped otherwise)."""
    mount_point = tmp_path / "small"
    mount_point.mkdir()
    if os.geteuid() != 0:
        pytest.skip("mounting a small tmpfs needs root")
    result = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=768k", "tmpfs", str(mount_point)],
                            capture_output=True, text=True)
    if result.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {result.stderr.strip()}")
    try:
        yield mount_point
    finally:
        subprocess.run(["umount", str(mount_point)], check=False)


def test_disk_full_raises_checkpoint_error_and_keeps_the_previous_checkpoint(small_tmpfs):
    torch.manual_seed(0)
    model = nn.Sequential(nn.Flatten(), nn.Linear(200, 200), nn.Linear(200, 2))  # ~160 KB of weights
    x = np.random.default_rng(0).normal(size=(32, 200)).astype(np.float32)
    y = (x[:, 0] > 0).astype(np.int64)
    run_dir = small_tmpfs / "run"
    trainer = Trainer(model, loss="cross_entropy", optimizer="adam", run_dir=run_dir, verbose=0,
                      device="cpu")  # one checkpoint (weights + Adam moments) takes ~490 KB
    with pytest.raises(CheckpointError) as caught:
        trainer.fit((x, y), epochs=3, batch_size=16)
    message = str(caught.value)
    assert "No space left" in message and str(run_dir / "checkpoints") in message
    needed = int(re.search(r"needs about ([\d,]+) bytes", message).group(1).replace(",", ""))
    assert 480_000 < needed < 600_000
    first = run_dir / "checkpoints" / "epoch-0001"
    verify_checkpoint(first)
    assert sorted(p.name for p in (run_dir / "checkpoints").iterdir()) == ["epoch-0001"]
    assert not (run_dir / ".lock").exists()


def test_save_weights_on_a_full_disk_raises_checkpoint_error_and_leaves_no_file(small_tmpfs):
    with pytest.raises(CheckpointError, match=rf"No space left on the disk holding {small_tmpfs}: "
                                              r"writing the checkpoint needs about 4,00\d,\d{3} bytes"):
        save_weights(nn.Linear(1000, 1000), small_tmpfs / "w.safetensors")  # 4 MB
    assert not list(small_tmpfs.iterdir())
