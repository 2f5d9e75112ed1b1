"""Trainer: learning, data forms, accumulation, clipping, schedules, precision, progress, NaN stops."""

import io
import math
import re

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from bigmodel.engine import Trainer, get_learning_rate, set_learning_rate
from bigmodel.engine.checkpoint import verify_checkpoint
from bigmodel.engine.progress import ProgressBar
from bigmodel.engine.schedules import build_scheduler, constant, noam, step_decay, warmup_cosine
from bigmodel.errors import ConfigError, DataError, InputTypeError, TrainingError, UnknownNameError


@pytest.fixture(autouse=True)
def one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # tiny models: thread hand-offs cost more than they save
    yield
    torch.set_num_threads(threads)


def blobs(n=256, seed=0):
    """Two separable classes in 4-D, float64 like most NumPy data."""
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, 4))
    return x, (x[:, 0] + 0.5 * x[:, 1] > 0).astype(np.int64)


def mlp(seed=0, dropout=0.0):
    torch.manual_seed(seed)
    return nn.Sequential(nn.Linear(4, 16), nn.ReLU(), nn.Dropout(dropout), nn.Linear(16, 2))


def test_mlp_learns_separable_problem():
    x, y = blobs()
    trainer = Trainer(mlp(), nn.CrossEntropyLoss(), lr=1e-2, metrics=["accuracy"], seed=0, verbose=0)
    history = trainer.fit((x, y), val=blobs(128, seed=1), epochs=8, batch_size=32)
    loss = history.history["loss"]
    assert loss[-1] < 0.5 * loss[0]
    assert history.history["val_accuracy"][-1] >= 0.9
    assert set(history.history) == {"loss", "accuracy", "val_loss", "val_accuracy"}
    assert trainer.epoch == 8 and trainer.global_step == 8 * 8
    result = trainer.evaluate(blobs(128, seed=1))
    assert result["accuracy"] == pytest.approx(history.history["val_accuracy"][-1])
    predictions = trainer.predict(x[:10])
    assert predictions.shape == (10, 2) and predictions.device.type == "cpu"


def test_dataset_loader_and_generator_inputs():
    x, y = blobs(64)
    tx, ty = torch.tensor(x, dtype=torch.float32), torch.tensor(y)
    dataset = TensorDataset(tx, ty)
    for data in (dataset, DataLoader(dataset, batch_size=16), [(tx[i:i + 16], ty[i:i + 16]) for i in range(0, 64, 16)]):
        trainer = Trainer(mlp(), "cross_entropy", verbose=0)
        history = trainer.fit(data, epochs=2, batch_size=16)
        assert len(history.history["loss"]) == 2 and trainer.global_step == 8

    def generate():
        while True:
            for i in range(0, 64, 16):
                yield x[i:i + 16], y[i:i + 16]  # NumPy float64 batches are converted on the way

    trainer = Trainer(mlp(), "cross_entropy", verbose=0)
    trainer.fit(generate(), epochs=3, steps_per_epoch=3)
    assert trainer.global_step == 9
    one_shot = iter([(tx[:16], ty[:16])] * 2)
    trainer = Trainer(mlp(), "cross_entropy", verbose=0)
    with pytest.warns(UserWarning, match=r"ran out of data"):
        history = trainer.fit(one_shot, epochs=3)
    assert len(history.epoch) == 1
    assert trainer.predict(dataset).shape == (64, 2)
    assert trainer.evaluate(DataLoader(dataset, batch_size=32))["loss"] > 0


def final_weights(batch_size, accum, n):
    x, y = blobs(n)
    trainer = Trainer(mlp(), nn.CrossEntropyLoss(), optimizer="sgd", lr=0.1, grad_accum_steps=accum,
                      seed=3, verbose=0)
    trainer.fit((x, y), epochs=2, batch_size=batch_size)
    return trainer


@pytest.mark.parametrize("n", [64, 80])  # 80: a last group of one 16-sample micro-batch
def test_gradient_accumulation_matches_big_batch(n):
    big, accumulated = final_weights(32, 1, n), final_weights(16, 2, n)
    assert big.global_step == accumulated.global_step == 2 * math.ceil(n / 32)
    for (name, a), b in zip(big.model.state_dict().items(), accumulated.model.state_dict().values()):
        assert torch.allclose(a, b, atol=1e-6), name


def one_step_change(**clip):
    model = nn.Linear(4, 2)
    before = [p.detach().clone() for p in model.parameters()]
    x = torch.randn(8, 4) * 100
    trainer = Trainer(model, nn.MSELoss(), optimizer="sgd", lr=1.0, verbose=0, **clip)
    trainer.fit((x, torch.zeros(8, 2)), epochs=1, batch_size=8, shuffle=False)
    return [(p.detach() - b) for p, b in zip(model.parameters(), before)]


def test_gradient_clipping():
    torch.manual_seed(0)
    changes = one_step_change(grad_clip_norm=0.5)  # SGD lr 1: the change is minus the gradient
    assert torch.sqrt(sum((c ** 2).sum() for c in changes)).item() == pytest.approx(0.5, rel=1e-5)
    torch.manual_seed(0)
    changes = one_step_change(grad_clip_value=0.01)
    assert max(c.abs().max().item() for c in changes) == pytest.approx(0.01, rel=1e-5)
    with pytest.raises(ConfigError, match=r"grad_clip_norm must be > 0"):
        Trainer(nn.Linear(1, 1), nn.MSELoss(), grad_clip_norm=0)


def test_schedule_factors_follow_their_formulas():
    cosine = warmup_cosine(total_steps=100, warmup_steps=10, min_lr_ratio=0.1)
    for step in (1, 5, 10):
        assert cosine(step - 1) == pytest.approx(step / 10)
    for step in (11, 40, 100, 150):
        progress = min(1.0, (step - 10) / 90)
        assert cosine(step - 1) == pytest.approx(0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * progress)))
    decay = step_decay(step_size=5, gamma=0.5)
    assert [decay(s - 1) for s in (1, 5, 6, 10, 11)] == [1, 1, 0.5, 0.5, 0.25]
    transformer = noam(d_model=512, warmup_steps=4000)
    for step in (1, 100, 4000, 10_000):
        assert transformer(step - 1) == pytest.approx(512 ** -0.5 * min(step ** -0.5, step * 4000 ** -1.5))
    assert [constant(warmup_steps=4)(s - 1) for s in (1, 2, 4, 9)] == [0.25, 0.5, 1, 1]


def test_scheduler_spec_steps_per_optimizer_step():
    optimizer = torch.optim.SGD([nn.Parameter(torch.zeros(1))], lr=2.0)
    scheduler = build_scheduler(optimizer, {"name": "step", "step_size": 2, "gamma": 0.1})
    rates = []
    for _ in range(5):
        rates.append(get_learning_rate(optimizer))
        optimizer.step()
        scheduler.step()
    assert rates == pytest.approx([2.0, 2.0, 0.2, 0.2, 0.02])
    with pytest.raises(UnknownNameError, match=r"Unknown schedule 'linear'"):
        build_scheduler(optimizer, {"name": "linear"})
    with pytest.raises(ConfigError, match=r"missing \['step_size'\].*unknown \['size'\]"):
        build_scheduler(optimizer, {"name": "step", "size": 3})

    x, y = blobs(64)  # 4 batches of 16, accumulation 2 -> 2 optimizer steps per epoch
    trainer = Trainer(mlp(), "cross_entropy", lr=1.0, grad_accum_steps=2, verbose=0,
                      scheduler={"name": "cosine", "warmup_steps": 1})
    trainer.fit((x, y), epochs=3, batch_size=16)
    assert trainer.global_step == 6 and trainer.scheduler.last_epoch == 6
    assert get_learning_rate(trainer.optimizer) == pytest.approx(warmup_cosine(6, 1)(6))  # total filled in


def test_set_learning_rate_keeps_group_ratios():
    optimizer = torch.optim.SGD([{"params": [nn.Parameter(torch.zeros(1))], "lr": 0.1},
                                 {"params": [nn.Parameter(torch.zeros(1))], "lr": 0.01}])
    set_learning_rate(optimizer, 0.5)
    assert [g["lr"] for g in optimizer.param_groups] == pytest.approx([0.5, 0.05])
    with pytest.raises(ConfigError, match=r"finite number >= 0"):
        set_learning_rate(optimizer, -1)


def test_optimizer_forms():
    model = mlp()
    assert isinstance(Trainer(model, "mse", optimizer="AdamW", lr=0.5, verbose=0).optimizer, torch.optim.AdamW)
    rms = Trainer(model, "mse", optimizer="rmsprop", lr=0.5, verbose=0).optimizer
    assert isinstance(rms, torch.optim.RMSprop) and get_learning_rate(rms) == 0.5
    given = torch.optim.SGD(model.parameters(), lr=0.3)
    assert Trainer(model, "mse", optimizer=given, verbose=0).optimizer is given
    built = Trainer(model, "mse", optimizer=lambda params: torch.optim.Adagrad(params), verbose=0).optimizer
    assert isinstance(built, torch.optim.Adagrad)
    with pytest.raises(UnknownNameError, match=r"Unknown optimizer 'adamax'.*adamw"):
        Trainer(model, "mse", optimizer="adamax")
    with pytest.raises(InputTypeError, match=r"nn.Module"):
        Trainer("model", "mse")
    with pytest.raises(UnknownNameError, match=r"Unknown loss"):
        Trainer(model, "hinge")


def test_sample_and_class_weights_scale_the_loss():
    x, y = blobs(32)
    model = mlp()
    trainer = Trainer(model, nn.CrossEntropyLoss(), optimizer="sgd", lr=0.0, verbose=0)
    weight = np.linspace(0, 2, 32)
    logits = model(torch.tensor(x, dtype=torch.float32))
    per_sample = F.cross_entropy(logits, torch.tensor(y), reduction="none").detach().numpy()
    weighted = trainer.evaluate((x, y, weight), batch_size=32)["loss"]
    assert weighted == pytest.approx(float((per_sample * weight).sum() / 32), rel=1e-5)
    history = trainer.fit((x, y), epochs=1, batch_size=32, class_weight={0: 0.0, 1: 3.0})
    expected = float((per_sample * np.where(y == 1, 3.0, 0.0)).sum() / 32)
    assert history.history["loss"][0] == pytest.approx(expected, rel=1e-5)


def test_extra_loss_is_added():
    x, y = blobs(32)
    trainer = Trainer(mlp(), "cross_entropy", optimizer="sgd", lr=0.0, verbose=0)
    plain = trainer.evaluate((x, y))["loss"]
    trainer.extra_loss = lambda: torch.tensor(1.5)
    assert trainer.evaluate((x, y))["loss"] == pytest.approx(plain + 1.5)


def test_bf16_on_cpu_and_fp16_needs_cuda():
    x, y = blobs(64)
    trainer = Trainer(mlp(), "cross_entropy", lr=1e-2, precision="bf16", device="cpu", verbose=0)
    history = trainer.fit((x, y), epochs=2, batch_size=32)
    assert all(math.isfinite(v) for v in history.history["loss"])
    assert trainer.predict(x[:4]).dtype == torch.float32
    with pytest.raises(ConfigError, match=r"fp16.*needs a CUDA device"):
        Trainer(mlp(), "cross_entropy", precision="fp16", device="cpu")
    with pytest.raises(ConfigError, match=r"precision must be one of"):
        Trainer(mlp(), "cross_entropy", precision="int8")


def test_channels_last_cnn():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(3, 4, 3), nn.ReLU(), nn.Flatten(), nn.Linear(4 * 6 * 6, 2))
    x = np.random.default_rng(0).normal(size=(16, 3, 8, 8)).astype(np.float32)
    trainer = Trainer(model, "cross_entropy", channels_last=True, verbose=0)
    trainer.fit((x, np.zeros(16, dtype=np.int64)), epochs=1, batch_size=8)
    assert model[0].weight.is_contiguous(memory_format=torch.channels_last)
    assert trainer.predict(x).shape == (16, 2)


def test_seed_makes_runs_identical():
    x, y = blobs(64)
    runs = []
    for _ in range(2):
        trainer = Trainer(mlp(dropout=0.3), "cross_entropy", seed=7, verbose=0)
        trainer.fit((x, y), epochs=2, batch_size=16)
        runs.append(trainer.get_weights())
    assert all(torch.equal(runs[0][k], runs[1][k]) for k in runs[0])


def test_bad_data_is_reported_by_argument():
    x, y = blobs(16)
    trainer = Trainer(mlp(), "cross_entropy", verbose=0)
    with pytest.raises(DataError, match=r"train x has 16.*train y has 15"):
        trainer.fit((x, y[:15]))
    x[3, 2] = np.nan
    with pytest.raises(DataError, match=r"train x contains NaN or Inf .* index 3"):
        trainer.fit((x, y))
    with pytest.raises(DataError, match=r"needs batches \(x, y\)"):
        trainer.fit([torch.zeros(4, 4)])


class Poisoned(nn.Module):
    """Cross-entropy that returns NaN on its ``at``-th call (1-based)."""

    def __init__(self, at):
        super().__init__()
        self.at, self.calls = at, 0

    def forward(self, outputs, targets):
        self.calls += 1
        loss = F.cross_entropy(outputs, targets)
        return loss * math.nan if self.calls == self.at else loss


def test_nan_loss_stops_and_keeps_last_checkpoint(tmp_path):
    x, y = blobs(64)  # 4 batches per epoch; the 11th loss is epoch 3, step 3
    trainer = Trainer(mlp(), lambda out, tgt, _loss=Poisoned(11): _loss(out, tgt), run_dir=tmp_path, verbose=0)
    good = tmp_path / "checkpoints" / "epoch-0002"
    with pytest.raises(TrainingError) as caught:
        trainer.fit((x, y), epochs=5, batch_size=16)
    message = str(caught.value)
    assert re.search(r"epoch 3, step 3 \(1-based", message) and str(good) in message
    assert sorted(p.name for p in (tmp_path / "checkpoints").iterdir()) == ["epoch-0001", "epoch-0002"]
    verify_checkpoint(good)  # every file still matches its sha256
    fresh = Trainer(mlp(seed=1), "cross_entropy", verbose=0)
    fresh.load_checkpoint(tmp_path)
    assert fresh.epoch == 2 and all(torch.isfinite(v).all() for v in fresh.get_weights().values())


def test_nan_without_run_dir_says_so():
    x, y = blobs(32)
    trainer = Trainer(mlp(), lambda out, tgt, _loss=Poisoned(1): _loss(out, tgt), verbose=0)
    with pytest.raises(TrainingError, match=r"epoch 1, step 1 .*none \(run_dir not set\)"):
        trainer.fit((x, y), epochs=1, batch_size=16)


def test_progress_lines():
    stream = io.StringIO()
    bar = ProgressBar(verbose=2, stream=stream)
    bar.epoch_begin(0, 5, 1875)
    bar.epoch_end(1875, 12.3, {"loss": 0.52341, "accuracy": 0.81234, "val_loss": 0.6, "val_accuracy": 0.7})
    assert stream.getvalue() == ("Epoch 1/5 - 1875/1875 - 12s 7ms/step - accuracy: 0.8123 - loss: 0.5234"
                                 " - val_accuracy: 0.7000 - val_loss: 0.6000\n")

    class Terminal(io.StringIO):
        def isatty(self):
            return True

    terminal = Terminal()
    bar = ProgressBar(verbose=1, stream=terminal)
    bar.epoch_begin(1, 2, 10)
    bar.update(5, 1.0, {"loss": 0.25})
    bar.epoch_end(10, 2.0, {"loss": 0.125})
    text = terminal.getvalue()
    assert text.startswith("Epoch 2/2\n\r 5/10 " + "━" * 10 + " " * 10 + " 1s 200ms/step - loss: 0.2500")
    assert text.endswith("10/10 ━━━━━━━━━━━━━━━━━━━━ 2s 200ms/step - loss: 0.1250\n")
    silent = io.StringIO()
    ProgressBar(verbose=0, stream=silent).epoch_end(1, 1.0, {"loss": 1.0})
    assert silent.getvalue() == ""
