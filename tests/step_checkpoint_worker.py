"""Training runs that get killed, for ``tests/test_step_checkpoints.py``.

``python tests/step_checkpoint_worker.py PLAN.json`` imports torch once, then runs each attempt of
the plan in a forked child (so twenty runs cost one interpreter start): a tiny MLP with dropout
(every RNG matters) on 36 fixed samples, batch 4 (9 batches per epoch, the last one short), 3
epochs, Adam, accuracy, a ``CSVLogger`` into ``metrics.csv``, ``checkpoint_every`` steps,
``fit(resume=True)``. An attempt may die:

- ``kill_batch``: SIGKILL itself after that many batches of the whole run (1-based, counted over
  all epochs), at the end of the batch;
- ``kill_write``: SIGKILL itself inside the N-th checkpoint file this attempt writes (the file is
  half written: its first bytes only);
- ``kill_prune``: SIGKILL itself inside the N-th pruning of old checkpoints (after the new one is in
  place, before the old ones are gone);
- ``kill_epoch_end``: SIGKILL itself at the end of that epoch (1-based), after the CSV row, before
  the epoch's checkpoint;
- ``keras``: the same run through ``bigmodel.keras`` with ``BackupAndRestore`` (in ``dir/backup``);
- ``term_batch`` / ``int_batch``: send itself SIGTERM / SIGINT after that batch; the child exits
  with ``Preempted.exit_code`` and prints the message.

A run that finishes writes ``final.safetensors`` (weights and the optimizer's tensors) and
``final.json`` (history, optimizer step counts) into its run dir. The parent prints one JSON line:
the exit status of every attempt (``-9`` for SIGKILL).
"""

from __future__ import annotations

import json
import os
import signal
import sys
from pathlib import Path

import numpy as np
import torch
from torch import nn

torch.set_num_threads(1)

from bigmodel.engine import checkpoint as ckpt  # noqa: E402
from bigmodel.engine.callbacks import Callback, CSVLogger  # noqa: E402
from bigmodel.engine.trainer import Trainer  # noqa: E402
from bigmodel.errors import Preempted  # noqa: E402

SAMPLES, BATCH, EPOCHS = 36, 4, 3
BATCHES_PER_EPOCH = -(-SAMPLES // BATCH)


def data() -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.RandomState(0)
    x = rng.randn(SAMPLES, 5).astype("float32")
    y = ((x[:, 0] > 0).astype("int64") + (x[:, 1] > 0.5)).astype("int64")
    return x, y


class Killer(Callback):
    """Ends the process at a chosen batch or epoch end (placed after the CSVLogger)."""

    def __init__(self, attempt: dict) -> None:
        super().__init__()
        self.attempt = attempt
        self.epoch = 0

    def on_epoch_begin(self, epoch, logs=None) -> None:
        self.epoch = epoch

    def on_train_batch_end(self, batch, logs=None) -> None:
        done = self.epoch * BATCHES_PER_EPOCH + batch + 1
        if done == self.attempt.get("kill_batch"):
            os.kill(os.getpid(), signal.SIGKILL)
        if done == self.attempt.get("term_batch"):
            os.kill(os.getpid(), signal.SIGTERM)
        if done == self.attempt.get("int_batch"):
            os.kill(os.getpid(), signal.SIGINT)

    def on_epoch_end(self, epoch, logs=None) -> None:
        if epoch + 1 == self.attempt.get("kill_epoch_end"):
            os.kill(os.getpid(), signal.SIGKILL)


def _die_inside(name: str, count: int, original):
    """``original`` wrapped to SIGKILL the process on its ``count``-th call, half done."""
    calls = [0]

    def wrapper(*args, **kwargs):
        calls[0] += 1
        if calls[0] != count:
            return original(*args, **kwargs)
        if name == "save_file":  # the first bytes of the file, then death
            tensors, path = args[0], args[1]
            original(tensors, path)
            size = os.path.getsize(path)
            with open(path, "r+b") as handle:
                handle.truncate(size // 2)
        os.kill(os.getpid(), signal.SIGKILL)

    return wrapper


def run(attempt: dict) -> None:
    """One attempt, in the forked child; never returns."""
    code = 0
    try:
        if attempt.get("kill_write"):
            ckpt.save_file = _die_inside("save_file", attempt["kill_write"], ckpt.save_file)
        if attempt.get("kill_prune"):
            original = ckpt.CheckpointManager.prune
            counter = [0]

            def prune(self):
                counter[0] += 1
                if counter[0] == attempt["kill_prune"]:
                    os.kill(os.getpid(), signal.SIGKILL)
                original(self)

            ckpt.CheckpointManager.prune = prune
        run_dir = Path(attempt["dir"])
        (fit_keras if attempt.get("keras") else fit_trainer)(run_dir, attempt)
    except Preempted as err:
        print(f"PREEMPTED {err.exit_code} {err}", flush=True)
        code = err.exit_code
    except BaseException as err:  # noqa: BLE001 - reported to the parent through the exit code
        print(f"FAILED {type(err).__name__}: {err}", flush=True)
        code = 3
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


def warm_up() -> None:
    """Import what training imports lazily (torch.optim pulls in torch._dynamo: seconds), once,
    before the forks."""
    trainer = Trainer(nn.Linear(5, 3), "cross_entropy", "adam", device="cpu", verbose=0)
    trainer.fit(data(), epochs=1, batch_size=BATCH)
    from bigmodel import keras  # noqa: F401


def fit_trainer(run_dir: Path, attempt: dict) -> None:
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(5, 8), nn.ReLU(), nn.Dropout(0.25), nn.Linear(8, 3))
    trainer = Trainer(model, "cross_entropy", "adam", lr=0.02, metrics=["accuracy"],
                      device="cpu", run_dir=run_dir, seed=3, verbose=0,
                      checkpoint_every=attempt.get("every", 2),
                      keep_checkpoints=attempt.get("keep", 2))
    history = trainer.fit(data(), epochs=EPOCHS, batch_size=BATCH, resume=True, callbacks=[
        CSVLogger(run_dir / "metrics.csv", append=True), Killer(attempt)])
    write_final(run_dir, trainer, history)


def write_final(run_dir: Path, trainer: Trainer, history) -> None:
    """``final.safetensors`` (weights, optimizer tensors) and ``final.json`` (history, counters)."""
    from safetensors.torch import save_file

    tensors = {f"model.{k}": v for k, v in trainer.model.state_dict().items()}
    steps = {}
    for index, state in trainer.optimizer.state_dict()["state"].items():
        for key, value in state.items():
            if key == "step":
                steps[str(index)] = float(value)
            else:
                tensors[f"optimizer.{index}.{key}"] = value
    save_file({k: v.contiguous() for k, v in tensors.items()}, str(run_dir / "final.safetensors"))
    (run_dir / "final.json").write_text(json.dumps(
        {"history": history.history, "epochs": history.epoch, "steps": steps,
         "global_step": trainer.global_step}))


def fit_keras(run_dir: Path, attempt: dict) -> None:
    """The same run through the Keras surface, with ``keras.callbacks.BackupAndRestore``."""
    from bigmodel import keras

    torch.manual_seed(0)
    model = keras.Sequential([keras.Input((5,)), keras.layers.Dense(8, activation="relu"),
                              keras.layers.Dropout(0.25), keras.layers.Dense(3)])
    model.compile(optimizer=keras.optimizers.Adam(0.02), metrics=["accuracy"],
                  loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    backup = keras.callbacks.BackupAndRestore(run_dir / "backup", save_freq=attempt.get("every", 2))
    x, y = data()
    history = model.fit(x, y, batch_size=BATCH, epochs=EPOCHS, verbose=0,
                        callbacks=[backup, Killer(attempt)])
    write_final(run_dir, model._trainer, history)
    (run_dir / "metrics.csv").write_text("")  # no CSV logger here: compared as equal


def main(plan_path: str) -> None:
    warm_up()
    statuses = []
    for attempt in json.loads(Path(plan_path).read_text()):
        pid = os.fork()
        if pid == 0:
            run(attempt)
        _, status = os.waitpid(pid, 0)
        statuses.append(-os.WTERMSIG(status) if os.WIFSIGNALED(status) else os.WEXITSTATUS(status))
    print(json.dumps(statuses))


if __name__ == "__main__":
    main(sys.argv[1])
