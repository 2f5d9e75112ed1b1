"""Callbacks: Keras 3 behaviour, driven by a stand-in model and by a real Trainer."""

import csv
import math
import warnings

import numpy as np
import pytest
import torch
from torch import nn

from bigmodel.engine import (
    CSVLogger,
    EarlyStopping,
    LambdaCallback,
    LearningRateScheduler,
    ModelCheckpoint,
    ReduceLROnPlateau,
    TensorBoard,
    TerminateOnNaN,
    Trainer,
)
from bigmodel.engine.callbacks import Callback, needs_batch_hooks
from bigmodel.errors import ConfigError


@pytest.fixture(autouse=True)
def one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # tiny models: thread hand-offs cost more than they save
    yield
    torch.set_num_threads(threads)


class StandIn:
    """The callback protocol of docs/INTERFACES.md and nothing more; weights = epoch index."""

    def __init__(self, lr=1.0):
        self.stop_training = False
        self.optimizer = torch.optim.SGD([nn.Parameter(torch.zeros(1))], lr=lr)
        self.weights = None
        self.saved = []

    def get_weights(self):
        return self.weights

    def set_weights(self, weights):
        self.weights = weights

    def save(self, path):
        self.saved.append(path)


def drive(callback, logs_per_epoch, model=None):
    """Run the epoch hooks like fit does; returns (model, epochs run)."""
    model = model or StandIn()
    callback.set_model(model)
    callback.on_train_begin()
    ran = 0
    for epoch, logs in enumerate(logs_per_epoch):
        callback.on_epoch_begin(epoch)
        model.weights = epoch
        callback.on_epoch_end(epoch, dict(logs))
        ran += 1
        if model.stop_training:
            break
    callback.on_train_end()
    return model, ran


def losses(*values):
    return [{"loss": v, "val_loss": v} for v in values]


def test_early_stopping_epoch_and_patience():
    stopper = EarlyStopping(patience=2)
    _, ran = drive(stopper, losses(1.0, 0.9, 0.95, 0.96, 0.97, 0.5))
    assert ran == 4 and stopper.stopped_epoch == 3 and stopper.best == 0.9
    # min_delta: improvements smaller than 0.2 do not count.
    stopper = EarlyStopping(patience=1, min_delta=0.2)
    _, ran = drive(stopper, losses(1.0, 0.9, 0.85, 0.5))
    assert ran == 2


def test_early_stopping_restores_best_weights():
    stopper = EarlyStopping(monitor="val_accuracy", patience=2, restore_best_weights=True)
    logs = [{"val_accuracy": v} for v in (0.5, 0.8, 0.7, 0.75, 0.9)]
    model, ran = drive(stopper, logs)
    assert ran == 4 and model.weights == 1 and stopper.best_epoch == 1  # "max" inferred


def test_early_stopping_baseline_and_start_epoch():
    # An epoch that misses the baseline does not restart the patience count (Keras).
    _, ran = drive(EarlyStopping(patience=2, baseline=0.5), losses(0.9, 0.95, 0.96, 0.97))
    assert ran == 2
    _, ran = drive(EarlyStopping(patience=2), losses(0.9, 0.95, 0.96, 0.97))
    assert ran == 3
    stopper = EarlyStopping(patience=0, start_from_epoch=3)
    _, ran = drive(stopper, losses(1.0, 2.0, 3.0, 4.0, 5.0))
    assert ran == 5  # epochs before 3 are not monitored; epoch 3 is the first best


def test_early_stopping_direction_and_missing_monitor():
    with pytest.raises(ConfigError, match=r"monitor=val_score"):
        drive(EarlyStopping(monitor="val_score"), [{"val_score": 1.0}])
    _, ran = drive(EarlyStopping(monitor="val_score", mode="max", patience=0), [{"val_score": v} for v in (1, 0, 2)])
    assert ran == 2
    with pytest.warns(UserWarning, match=r"Early stopping conditioned on metric `val_loss` which is not available"):
        _, ran = drive(EarlyStopping(), [{"loss": 1.0}, {"loss": 2.0}])
    assert ran == 2


def test_model_checkpoint_best_only_and_formatting(tmp_path):
    pattern = str(tmp_path / "sub" / "m-{epoch:02d}-{val_loss:.2f}.bin")
    saver = ModelCheckpoint(pattern, save_best_only=True)
    model, _ = drive(saver, losses(0.5, 0.7, 0.4, 0.4))
    assert model.saved == [str(tmp_path / "sub" / "m-01-0.50.bin"), str(tmp_path / "sub" / "m-03-0.40.bin")]
    assert (tmp_path / "sub").is_dir()
    saver = ModelCheckpoint(str(tmp_path / "m.bin"), save_best_only=True, initial_value_threshold=0.45)
    model, _ = drive(saver, losses(0.5, 0.44, 0.46))
    assert len(model.saved) == 1
    model, _ = drive(ModelCheckpoint(str(tmp_path / "e{epoch}.bin")), losses(1, 1, 1))
    assert [p[-6:] for p in model.saved] == ["e1.bin", "e2.bin", "e3.bin"]
    with pytest.raises(KeyError, match=r"Failed to format"):
        drive(ModelCheckpoint(str(tmp_path / "{val_auc}.bin")), losses(1))
    with pytest.raises(ConfigError, match=r"save_freq"):
        ModelCheckpoint("x", save_freq="often")


def test_csv_logger_content(tmp_path):
    path = tmp_path / "log.csv"
    drive(CSVLogger(path), [{"loss": 0.5, "accuracy": 0.75}, {"loss": 0.25, "accuracy": 1.0}])
    rows = list(csv.reader(open(path)))
    assert rows == [["epoch", "accuracy", "loss", "val_accuracy", "val_loss"],
                    ["0", "0.75", "0.5", "NA", "NA"], ["1", "1.0", "0.25", "NA", "NA"]]
    drive(CSVLogger(path, separator=";", append=True), [{"loss": 0.1, "val_loss": 0.2}])
    lines = open(path).read().splitlines()
    assert len(lines) == 4 and lines[-1] == "0;0.1;0.2"  # appended, no second header
    drive(CSVLogger(path), [{"loss": 1.0, "val_loss": 2.0}])
    assert open(path).read().splitlines() == ["epoch,loss,val_loss", "0,1.0,2.0"]


def test_reduce_lr_on_plateau_values():
    reducer = ReduceLROnPlateau(factor=0.5, patience=1, cooldown=2, min_lr=0.2)
    model = StandIn(lr=1.0)
    seen = []
    reducer.set_model(model)
    reducer.on_train_begin()
    for epoch, value in enumerate([1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0]):
        logs = {"val_loss": value}
        reducer.on_epoch_end(epoch, logs)
        seen.append(model.optimizer.param_groups[0]["lr"])
        assert logs["learning_rate"] == (seen[-2] if epoch else 1.0)  # logged before reducing
    # Keras counts the cooldown down before judging: epoch 1 reduces (wait 1 >= patience 1),
    # epoch 2 is in cooldown, epoch 3 reduces, epoch 5 hits min_lr, then nothing is above it.
    assert seen == [1.0, 0.5, 0.5, 0.25, 0.25, 0.2, 0.2]
    with pytest.raises(ConfigError, match=r"factor >= 1.0"):
        ReduceLROnPlateau(factor=1.5)


def test_reduce_lr_keeps_group_ratios():
    model = StandIn()
    model.optimizer = torch.optim.SGD([{"params": [nn.Parameter(torch.zeros(1))], "lr": 1.0},
                                       {"params": [nn.Parameter(torch.zeros(1))], "lr": 0.1}])
    drive(ReduceLROnPlateau(patience=0, factor=0.5), losses(1.0, 1.0), model)
    assert [g["lr"] for g in model.optimizer.param_groups] == pytest.approx([0.5, 0.05])


def test_learning_rate_scheduler():
    model = StandIn(lr=0.8)
    history = []
    scheduler = LearningRateScheduler(lambda epoch, lr: lr * 0.5 if epoch else lr)
    scheduler.set_model(model)
    for epoch in range(3):
        scheduler.on_epoch_begin(epoch)
        logs = {}
        scheduler.on_epoch_end(epoch, logs)
        history.append(logs["learning_rate"])
    assert history == pytest.approx([0.8, 0.4, 0.2])
    old_api = LearningRateScheduler(lambda epoch: 0.1 * (epoch + 1))
    old_api.set_model(model)
    old_api.on_epoch_begin(2)
    assert model.optimizer.param_groups[0]["lr"] == pytest.approx(0.3)
    bad = LearningRateScheduler(lambda epoch, lr: "fast")
    bad.set_model(model)
    with pytest.raises(ConfigError, match=r"should be a float"):
        bad.on_epoch_begin(0)


def test_terminate_on_nan_and_lambda_callback():
    model = StandIn()
    stopper = TerminateOnNaN()
    stopper.set_model(model)
    stopper.on_train_batch_end(0, {"loss": 1.0})
    assert not model.stop_training
    stopper.on_train_batch_end(1, {"loss": math.nan})
    assert model.stop_training
    calls = []
    lam = LambdaCallback(on_epoch_end=lambda epoch, logs: calls.append(epoch),
                         on_batch_end=lambda batch, logs: calls.append(("b", batch)))
    lam.on_epoch_end(3, {})
    lam.on_train_batch_end(1, {})
    assert calls == [3, ("b", 1)]
    assert needs_batch_hooks(lam) and needs_batch_hooks(stopper)
    assert not needs_batch_hooks(LambdaCallback(on_epoch_end=print))
    assert not needs_batch_hooks(ModelCheckpoint("x")) and needs_batch_hooks(ModelCheckpoint("x", save_freq=2))
    with pytest.raises(ConfigError, match=r"on_nothing"):
        LambdaCallback(on_nothing=print)


def test_tensorboard_writes_epoch_scalars(tmp_path):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    board = TensorBoard(tmp_path)
    drive(board, losses(0.5, 0.25))
    train = EventAccumulator(str(tmp_path / "train"))
    train.Reload()
    assert [e.value for e in train.Scalars("epoch_loss")] == [0.5, 0.25]
    assert "epoch_learning_rate" in train.Tags()["scalars"]
    validation = EventAccumulator(str(tmp_path / "validation"))
    validation.Reload()
    assert [e.step for e in validation.Scalars("epoch_loss")] == [0, 1]
    with pytest.raises(ConfigError, match=r"update_freq"):
        TensorBoard(tmp_path, update_freq=0)


# --- with a real Trainer -------------------------------------------------------------------------

def small_problem(n=64):
    rng = np.random.default_rng(0)
    x = rng.normal(size=(n, 3)).astype(np.float32)
    return x, (x[:, 0] > 0).astype(np.int64)


def test_trainer_early_stopping_and_checkpoint_files(tmp_path):
    torch.manual_seed(0)
    x, y = small_problem()
    trainer = Trainer(nn.Linear(3, 2), nn.CrossEntropyLoss(), optimizer="sgd", lr=0.0, verbose=0)
    saver = ModelCheckpoint(str(tmp_path / "w-{epoch}.safetensors"))
    history = trainer.fit((x, y), val=(x, y), epochs=10, batch_size=16,
                          callbacks=[EarlyStopping(patience=1), saver])
    assert len(history.history["loss"]) == 2 and history.epoch == [0, 1]  # lr 0: no improvement
    assert sorted(p.name for p in tmp_path.iterdir()) == ["w-1.safetensors", "w-2.safetensors"]
    fresh = Trainer(nn.Linear(3, 2), nn.CrossEntropyLoss(), verbose=0)
    fresh.load_weights(tmp_path / "w-2.safetensors")
    assert torch.equal(fresh.model.weight, trainer.model.weight)


def test_trainer_batch_hooks_and_restore_best(tmp_path):
    torch.manual_seed(0)
    x, y = small_problem()
    batches = []
    watcher = LambdaCallback(on_train_batch_end=lambda batch, logs: batches.append((batch, logs["loss"])))
    stopper = EarlyStopping(monitor="loss", patience=10, restore_best_weights=True)
    trainer = Trainer(nn.Linear(3, 2), nn.CrossEntropyLoss(), lr=0.05, verbose=0)
    snapshots = []
    keep = LambdaCallback(on_epoch_end=lambda epoch, logs: snapshots.append(trainer.get_weights()))
    trainer.fit((x, y), epochs=3, batch_size=16, callbacks=[watcher, stopper, keep])
    assert [b for b, _ in batches] == [0, 1, 2, 3] * 3
    assert all(np.isfinite(v) for _, v in batches)
    best = snapshots[stopper.best_epoch]
    assert all(torch.equal(best[k], v) for k, v in trainer.get_weights().items())


def test_trainer_csv_and_reduce_lr(tmp_path):
    x, y = small_problem()
    trainer = Trainer(nn.Linear(3, 2), nn.CrossEntropyLoss(), optimizer="sgd", lr=0.0, verbose=0)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # the monitors exist: no warning expected
        history = trainer.fit((x, y), val=(x, y), epochs=3, batch_size=32,
                              callbacks=[ReduceLROnPlateau(patience=0, factor=0.5), CSVLogger(tmp_path / "m.csv")])
    assert history.history["learning_rate"] == [0.0, 0.0, 0.0]
    rows = list(csv.DictReader(open(tmp_path / "m.csv")))
    assert [r["epoch"] for r in rows] == ["0", "1", "2"]
    assert float(rows[0]["loss"]) == pytest.approx(history.history["loss"][0])


def test_callback_sees_callback_model():
    class Wrapper(StandIn):
        pass

    wrapper = Wrapper()
    seen = []

    class Probe(Callback):
        def on_epoch_end(self, epoch, logs=None):
            seen.append(self.model)
            self.model.stop_training = True

    x, y = small_problem()
    trainer = Trainer(nn.Linear(3, 2), nn.CrossEntropyLoss(), verbose=0, callback_model=wrapper)
    history = trainer.fit((x, y), epochs=5, callbacks=[Probe()])
    assert seen == [wrapper] and len(history.epoch) == 1


def test_trainer_terminate_on_nan_stops_gracefully(tmp_path):
    x, y = small_problem()
    calls = {"n": 0}

    def loss(outputs, targets):
        calls["n"] += 1  # the 6th loss (epoch 2, batch 2) is NaN
        value = nn.functional.cross_entropy(outputs, targets)
        return value * math.nan if calls["n"] == 6 else value

    trainer = Trainer(nn.Linear(3, 2), loss, run_dir=tmp_path, verbose=0)
    history = trainer.fit((x, y), epochs=4, batch_size=16, callbacks=[TerminateOnNaN()])
    assert len(history.epoch) == 2 and math.isnan(history.history["loss"][1])
    assert sorted(p.name for p in (tmp_path / "checkpoints").iterdir()) == ["epoch-0001"]


def test_trainer_tensorboard_batch_scalars(tmp_path):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    x, y = small_problem()
    trainer = Trainer(nn.Linear(3, 2), nn.CrossEntropyLoss(), verbose=0)
    trainer.fit((x, y), epochs=2, batch_size=16, callbacks=[TensorBoard(tmp_path, update_freq=3)])
    events = EventAccumulator(str(tmp_path / "train"))
    events.Reload()
    assert [e.step for e in events.Scalars("batch_loss")] == [3, 6]  # 8 batches, every 3rd
    assert len(events.Scalars("epoch_loss")) == 2
