"""Step checkpoints, exact mid-epoch resume and preemption (issue 18).

The kill tests run ``tests/step_checkpoint_worker.py`` once: it imports torch once and forks one child
per attempt, so twenty-odd killed runs cost about one interpreter start.
"""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import load_file
from torch import nn

from bigmodel.engine.callbacks import Callback
from bigmodel.engine.checkpoint import find_checkpoints
from bigmodel.engine.step_checkpoints import parse_every
from bigmodel.engine.trainer import Trainer
from bigmodel.errors import CheckpointError, ConfigError

pytestmark = pytest.mark.usefixtures("one_torch_thread")

WORKER = Path(__file__).with_name("step_checkpoint_worker.py")
TOTAL_BATCHES = 27  # 3 epochs of 9 batches (see the worker)


def run_plan(tmp_path: Path, attempts: list[dict]) -> tuple[list[int], str]:
    plan = tmp_path / "plan.json"
    plan.write_text(json.dumps(attempts))
    done = subprocess.run([sys.executable, str(WORKER), str(plan)], capture_output=True, text=True,
                          timeout=600, env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert done.returncode == 0, done.stdout + done.stderr
    return json.loads(done.stdout.strip().splitlines()[-1]), done.stdout


def final_state(run_dir: Path) -> tuple[dict, dict, bytes]:
    return (load_file(str(run_dir / "final.safetensors")), json.loads((run_dir / "final.json").read_text()),
            (run_dir / "metrics.csv").read_bytes())


def assert_identical(run_dir: Path, reference: Path) -> None:
    tensors, record, csv = final_state(run_dir)
    ref_tensors, ref_record, ref_csv = final_state(reference)
    assert sorted(tensors) == sorted(ref_tensors)
    assert any(key.startswith("optimizer.") and key.endswith("exp_avg_sq") for key in tensors)
    for key, value in ref_tensors.items():
        assert torch.equal(tensors[key], value), key  # bit for bit
    assert record == ref_record  # history (every logged value), epochs, optimizer step counts
    assert csv == ref_csv
    assert len(ref_record["epochs"]) == 3 and ref_record["global_step"] == TOTAL_BATCHES


# Where the worker's runs write complete checkpoints (every 2 steps; the epoch ends 9, 18, 27 replace
# the step checkpoint of the same step), in batches of the whole run.
CHECKPOINTED = [2, 4, 6, 8, 9, 10, 12, 14, 16, 18, 20, 22, 24, 26]


def kill_chain(rng: random.Random, run_dir: str) -> list[dict]:
    """Attempts on one run dir that each die somewhere past the newest complete checkpoint, in a
    random order of kinds; the last attempt finishes. ``done`` follows the newest checkpoint."""
    kinds = ["batch"] * 12 + ["write"] * 5 + ["prune"] * 2
    rng.shuffle(kinds)
    attempts, done, epoch_ends = [], 0, {1, 2}
    for kind in kinds:
        epoch = done // 9 + 1
        if epoch in epoch_ends and done >= 9 * epoch - 5:  # after its CSV row, before its checkpoint
            epoch_ends.discard(epoch)
            attempts.append({"dir": run_dir, "kill_epoch_end": epoch})
            done = max(c for c in CHECKPOINTED if c < 9 * epoch)
        if kind == "batch" and done + 1 < TOTAL_BATCHES:
            position = rng.randint(done + 1, min(done + 2, TOTAL_BATCHES - 1))
            attempts.append({"dir": run_dir, "kill_batch": position})
            # The kill comes after the step's checkpoint, but before an epoch end's.
            done = max([c for c in CHECKPOINTED if c <= position and (c < position or c % 9)] + [done])
        elif kind != "prune":  # inside one of the first three files of the next checkpoint
            attempts.append({"dir": run_dir, "kill_write": rng.randint(1, 3)})
        else:  # the next checkpoint is in place, the old ones not yet deleted
            attempts.append({"dir": run_dir, "kill_prune": 1})
            done = min(c for c in CHECKPOINTED if c > done)
    return [*attempts, {"dir": run_dir}]


@pytest.fixture(scope="module")
def killed_runs(tmp_path_factory):
    """One worker process for every killed or signalled run of this module."""
    root = tmp_path_factory.mktemp("killed")
    dirs = {name: root / name for name in ("reference", "killed", "stopped", "interrupted",
                                           "keras_reference", "keras_killed", "keras_epochs")}
    chain = kill_chain(random.Random(18), str(dirs["killed"]))
    signalled = [{"dir": str(dirs["stopped"]), "term_batch": 5, "every": 1000},
                 {"dir": str(dirs["stopped"]), "every": 1000},
                 {"dir": str(dirs["interrupted"]), "int_batch": 12, "every": 1000}]
    keras = [{"dir": str(dirs["keras_reference"])},
             {"dir": str(dirs["keras_killed"]), "kill_batch": 5},
             {"dir": str(dirs["keras_killed"]), "kill_batch": 14},
             {"dir": str(dirs["keras_killed"]), "kill_write": 2},
             {"dir": str(dirs["keras_killed"])},
             {"dir": str(dirs["keras_epochs"]), "kill_batch": 13, "every": "epoch"},
             {"dir": str(dirs["keras_epochs"]), "every": "epoch"}]
    keras = [{**attempt, "keras": True} for attempt in keras]
    statuses, output = run_plan(root, [{"dir": str(dirs["reference"])}, *chain, *signalled, *keras])
    first, second = 1 + len(chain), 1 + len(chain) + len(signalled)
    return dirs, chain, statuses[:first], statuses[first:second], statuses[second:], output


def test_kill_at_random_steps_resumes_bit_identically(killed_runs):
    dirs, chain, statuses, _, _, output = killed_runs
    assert statuses[0] == 0, output
    assert statuses[1:] == [-9] * (len(chain) - 1) + [0], output
    assert len(chain) - 1 >= 20  # kill positions, some inside checkpoint writes and pruning
    assert sum("kill_write" in a for a in chain) >= 5
    assert_identical(dirs["killed"], dirs["reference"])
    names = sorted(p.name for p in (dirs["killed"] / "checkpoints").iterdir())
    assert len(names) == 2 and names[-1] == "epoch-0003", names  # keep_checkpoints=2


def test_sigterm_and_sigint_checkpoint_at_the_next_step_and_exit_143_130(killed_runs):
    dirs, _, _, statuses, _, output = killed_runs
    assert statuses == [143, 0, 130], output
    assert "PREEMPTED 143 SIGTERM received: training stopped at epoch 1, batch 6" in output
    assert "resume=True" in output and str(dirs["stopped"]) in output
    assert "PREEMPTED 130 SIGINT received" in output
    # The signal came during batch 12's callbacks (epoch 2): batch 13 ran, then the checkpoint.
    assert (dirs["interrupted"] / "checkpoints" / "epoch-0001-step-00000004").is_dir()
    assert_identical(dirs["stopped"], dirs["reference"])


def test_keras_backup_and_restore_resumes_a_killed_fit_exactly(killed_runs):
    dirs, _, _, _, statuses, output = killed_runs
    assert statuses == [0, -9, -9, -9, 0, -9, 0], output
    for name in ("keras_killed", "keras_epochs"):  # every 2 batches / every epoch (Keras's default)
        assert_identical(dirs[name], dirs["keras_reference"])
        assert not (dirs[name] / "backup").exists()  # delete_checkpoint=True after a finished fit


def test_backup_and_restore_arguments():
    from bigmodel import keras

    callback = keras.callbacks.BackupAndRestore("somewhere")
    assert (callback.save_freq, callback.double_checkpoint, callback.delete_checkpoint) == ("epoch", False, True)
    for bad in (0, -2, "batch", 1.5, True):
        with pytest.raises(ValueError, match="save_freq"):
            keras.callbacks.BackupAndRestore("somewhere", save_freq=bad)
    with pytest.raises(ValueError, match="backup_dir"):
        keras.callbacks.BackupAndRestore("")


def test_backup_and_restore_on_a_trainer_keeps_its_run_dir(tmp_path):
    from bigmodel.engine.backup import BackupAndRestore

    trainer = _trainer(tmp_path / "run", every=None)
    backup = BackupAndRestore(tmp_path / "backup", save_freq=3, delete_checkpoint=False,
                              double_checkpoint=True)
    trainer.fit(_data(), epochs=1, batch_size=4, callbacks=[backup])
    names = sorted(p.name for p in (tmp_path / "backup" / "checkpoints").iterdir())
    assert names == ["epoch-0000-step-00000006", "epoch-0001"]  # two kept: double_checkpoint
    assert not (tmp_path / "run" / "checkpoints").exists()
    assert trainer.run_dir == tmp_path / "run"


def _data(samples=30):
    rng = np.random.RandomState(1)
    x = rng.randn(samples, 4).astype("float32")
    return x, (x[:, 0] + x[:, 2] > 0).astype("int64")


def _trainer(run_dir, every=2, keep=2, **kwargs):
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(4, 6), nn.Tanh(), nn.Dropout(0.2), nn.Linear(6, 2))
    return Trainer(model, "cross_entropy", "sgd", lr=0.1, metrics=["accuracy"], device="cpu",
                   run_dir=run_dir, seed=5, verbose=0, checkpoint_every=every, keep_checkpoints=keep,
                   **kwargs)


class _Crash(Callback):
    """Raises at the end of the N-th batch of this fit (a crash after that step's checkpoint)."""

    def __init__(self, at):
        super().__init__()
        self.at, self.seen = at, 0

    def on_train_batch_end(self, batch, logs=None):
        self.seen += 1
        if self.seen == self.at:
            raise KeyboardInterrupt


def _fit(trainer, crash=-1, **kwargs):
    kwargs = {"epochs": 3, "batch_size": 4, "resume": True, **kwargs}
    return trainer.fit(_data(), callbacks=[_Crash(crash)], **kwargs)


def _same(a: Trainer, b: Trainer) -> None:
    for key, value in a.model.state_dict().items():
        assert torch.equal(value, b.model.state_dict()[key]), key
    assert a.optimizer.state_dict()["state"].keys() == b.optimizer.state_dict()["state"].keys()
    for index, state in a.optimizer.state_dict()["state"].items():
        for key, value in state.items():
            assert torch.equal(torch.as_tensor(value), torch.as_tensor(b.optimizer.state_dict()["state"][index][key]))


def test_steps_per_epoch_stream_resumes_mid_pass(tmp_path):
    # 30 samples, batch 4: passes of 8 batches cut into epochs of 5, so epochs start mid-pass.
    reference = _trainer(tmp_path / "ref")
    expected = _fit(reference, steps_per_epoch=5).history
    crashed = _trainer(tmp_path / "run")
    with pytest.raises(KeyboardInterrupt):
        _fit(crashed, crash=12, steps_per_epoch=5)  # epoch 3, batch 2; last checkpoint: step 12 of 15
    assert (tmp_path / "run" / "checkpoints" / "epoch-0002-step-00000002").is_dir()
    resumed = _trainer(tmp_path / "run")
    assert _fit(resumed, steps_per_epoch=5).history == expected
    _same(resumed, reference)
    assert resumed.global_step == reference.global_step == 15


def test_corrupt_newest_checkpoint_falls_back_with_a_warning(tmp_path):
    reference = _trainer(tmp_path / "ref")
    expected = _fit(reference).history
    crashed = _trainer(tmp_path / "run", keep=3)
    with pytest.raises(KeyboardInterrupt):
        _fit(crashed, crash=14)  # epoch 2 (8 batches each), checkpoints at steps 10, 12, 14
    names = [p.name for _, p in find_checkpoints(tmp_path / "run" / "checkpoints")]
    assert names == ["epoch-0001-step-00000002", "epoch-0001-step-00000004", "epoch-0001-step-00000006"]
    newest = tmp_path / "run" / "checkpoints" / names[-1]
    weights = newest / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[:-7])  # truncated
    resumed = _trainer(tmp_path / "run", keep=3)
    with pytest.warns(RuntimeWarning, match="damaged") as caught:
        history = _fit(resumed).history
    message = str(caught[0].message)
    assert names[-1] in message and names[-2] in message and "truncated" in message
    assert history == expected
    _same(resumed, reference)
    # Every checkpoint damaged: resuming refuses rather than silently starting over.
    for _, path in find_checkpoints(tmp_path / "run" / "checkpoints"):
        (path / "trainer.json").write_text("{}")
    with pytest.raises(CheckpointError, match="No valid checkpoint"):
        _fit(_trainer(tmp_path / "run", keep=3))


def test_keep_last_n_and_checkpoint_names(tmp_path):
    trainer = _trainer(tmp_path / "run", every=3, keep=3)
    _fit(trainer, epochs=2)  # 8 batches per epoch, 16 steps: step checkpoints at 3, 6, 9, 12, 15
    names = sorted(p.name for p in (tmp_path / "run" / "checkpoints").iterdir())
    # In order: e0 steps 3 and 6, epoch-0001, e1 steps 1, 4, 7 (global 9, 12, 15), epoch-0002.
    assert names == ["epoch-0001-step-00000004", "epoch-0001-step-00000007", "epoch-0002"]


def test_signal_handlers_are_restored_and_time_interval(tmp_path):
    before = (signal.getsignal(signal.SIGTERM), signal.getsignal(signal.SIGINT))
    trainer = _trainer(tmp_path / "run", every="1s")
    _fit(trainer, epochs=1)
    assert (signal.getsignal(signal.SIGTERM), signal.getsignal(signal.SIGINT)) == before
    with pytest.raises(KeyboardInterrupt):
        _fit(_trainer(tmp_path / "run2"), crash=3)
    assert (signal.getsignal(signal.SIGTERM), signal.getsignal(signal.SIGINT)) == before


@pytest.mark.parametrize(("value", "expected"), [
    (500, (500, None)), ("500", (500, None)), ("30s", (None, 30.0)), ("10min", (None, 600.0)),
    ("2h", (None, 7200.0)), ("1.5m", (None, 90.0)), (None, (None, None))])
def test_parse_every(value, expected):
    assert parse_every(value) == expected


@pytest.mark.parametrize("value", [0, -3, "0", "1.5", "ten", "10 parsecs", True, 2.5, "0s"])
def test_parse_every_refuses_bad_values(value):
    with pytest.raises(ConfigError, match="checkpoint_every"):
        parse_every(value)


def test_checkpoint_every_needs_a_run_dir():
    with pytest.raises(ConfigError, match="needs a run_dir"):
        _trainer(None)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        _trainer(None, every=None)  # fine without


def test_time_interval_policy(monkeypatch):
    from bigmodel.engine import step_checkpoints

    now = [100.0]
    monkeypatch.setattr(step_checkpoints.time, "monotonic", lambda: now[0])
    policy = step_checkpoints.CheckpointPolicy("30s")
    assert not policy.due(1)
    now[0] = 129.9
    assert not policy.due(2)
    now[0] = 130.0
    assert policy.due(3)
    policy.saved()
    assert not policy.due(4)
    policy.signal = signal.SIGTERM
    assert policy.due(5)  # a signal: at the next step, whatever the interval


def test_mid_epoch_resume_refuses_other_data(tmp_path):
    with pytest.raises(KeyboardInterrupt):
        _fit(_trainer(tmp_path / "run"), crash=5)
    with pytest.raises(ConfigError, match="8 batches per pass.*this fit has 4"):
        _fit(_trainer(tmp_path / "run"), batch_size=8)


def test_backup_and_restore_refuses_a_custom_train_step(tmp_path):
    from bigmodel import keras

    class Custom(keras.Model):
        def __init__(self):
            super().__init__()
            self.dense = keras.layers.Dense(2)

        def call(self, x):
            return self.dense(x)

        def train_step(self, data):
            return super().train_step(data)

    model = Custom()
    model.compile(optimizer="sgd", loss="mse")
    x, y = np.zeros((8, 3), "float32"), np.zeros((8, 2), "float32")
    with pytest.raises(NotImplementedError, match="BackupAndRestore"):
        model.fit(x, y, epochs=1, verbose=0,
                  callbacks=[keras.callbacks.BackupAndRestore(tmp_path / "backup")])
