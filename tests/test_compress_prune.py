"""Unstructured magnitude pruning: exact masks (NumPy reference), zeros kept through training,
schedules, sparse size, and a tiny model that still learns at 80% sparsity."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from bigmodel.compress import (
    MagnitudePruner,
    SparsitySchedule,
    check_sparsity,
    iterative_prune,
    magnitude_prune,
    model_sparsity,
    sparse_size_bytes,
)
from bigmodel.compress.prune import dense_size_bytes, prunable_weights
from bigmodel.engine.callbacks import Callback
from bigmodel.engine.trainer import Trainer
from bigmodel.errors import ConfigError


def mlp(seed: int = 0) -> nn.Module:
    torch.manual_seed(seed)
    return nn.Sequential(nn.Linear(8, 32), nn.ReLU(), nn.Linear(32, 32), nn.ReLU(), nn.Linear(32, 3))


def blobs(n: int = 384, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """Three Gaussian clusters in 8-D: learnable to ~100% by a small MLP."""
    centers = torch.randn(3, 8, generator=torch.Generator().manual_seed(1234)) * 3
    gen = torch.Generator().manual_seed(seed)
    y = torch.randint(0, 3, (n,), generator=gen)
    return centers[y] + torch.randn(n, 8, generator=gen), y


@pytest.mark.parametrize("value", [-0.1, 1.0, 1.5, float("nan"), "0.5", True, None])
def test_sparsity_outside_unit_interval_is_rejected(value):
    with pytest.raises(ConfigError, match="sparsity"):
        check_sparsity(value)
    with pytest.raises(ConfigError):
        magnitude_prune(mlp(), value)


def test_layer_scope_prunes_exactly_the_smallest_weights_of_each_layer():
    model = mlp()
    before = {name: getattr(m, a).detach().clone().numpy() for name, m, a in prunable_weights(model)}
    magnitude_prune(model, 0.6, scope="layer", attach=False)
    for name, module, attr in prunable_weights(model):
        reference = before[name].ravel()
        count = int(round(0.6 * reference.size))
        expected = np.ones(reference.size, bool)
        expected[np.argsort(np.abs(reference), kind="stable")[:count]] = False
        got = getattr(module, attr).detach().numpy().ravel()
        np.testing.assert_array_equal(got != 0, expected)
        np.testing.assert_array_equal(got[expected], reference[expected])  # survivors untouched


def test_global_scope_uses_one_threshold_over_all_layers():
    model = mlp()
    all_before = np.concatenate([getattr(m, a).detach().numpy().ravel()
                                 for _, m, a in prunable_weights(model)])
    pruner = magnitude_prune(model, 0.7, scope="global", attach=False)
    after = np.concatenate([getattr(m, a).detach().numpy().ravel()
                            for _, m, a in prunable_weights(model)])
    assert int((after == 0).sum()) == int(round(0.7 * all_before.size))
    pruned, kept = np.abs(all_before[after == 0]), np.abs(all_before[after != 0])
    assert pruned.max() <= kept.min()
    layer = pruner.layer_sparsity()
    assert max(layer.values()) - min(layer.values()) > 0.01  # layers differ, unlike scope="layer"
    with pytest.raises(ConfigError, match="scope"):
        MagnitudePruner(model, scope="channel")


def test_biases_and_embeddings_are_left_dense_and_include_exclude_filter():
    model = nn.Sequential(nn.Embedding(10, 4), nn.Linear(4, 4))
    names = [n for n, _, _ in prunable_weights(model)]
    assert names == ["1.weight"]
    assert [n for n, _, _ in prunable_weights(model, embeddings=True)] == ["0.weight", "1.weight"]
    assert prunable_weights(mlp(), exclude=["4.*"])[-1][0] == "2.weight"
    with pytest.raises(ConfigError, match="no prunable weight"):
        MagnitudePruner(mlp(), include=["nothing*"])


def test_pruned_weights_stay_zero_through_training_with_momentum_and_weight_decay():
    model = mlp()
    pruner = magnitude_prune(model, 0.5)
    masks = {k: v.clone() for k, v in pruner.masks.items()}
    x, y = blobs(128)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9, weight_decay=1e-2)
    for _ in range(15):
        optimizer.zero_grad()
        loss = F.cross_entropy(model(x), y)
        loss.backward()
        for name, module, attr in pruner.targets:  # masked gradients: optimizer state stays clean
            assert torch.all(getattr(module, attr).grad[~masks[name]] == 0)
        optimizer.step()
    model(x)
    for name, module, attr in pruner.targets:
        weight = getattr(module, attr)
        assert torch.all(weight[~masks[name]] == 0)
        assert torch.count_nonzero(weight[masks[name]]) == int(masks[name].sum())  # others train
    pruner.detach()
    assert not pruner.attached
    assert pruner.sparsity() == pytest.approx(0.5, abs=0.01)


def test_lstm_weights_are_pruned_and_stay_zero():
    torch.manual_seed(0)
    lstm = nn.LSTM(4, 8, num_layers=2, batch_first=True)
    pruner = magnitude_prune(lstm, 0.75)
    assert {n for n, _, _ in pruner.targets} == {f"weight_{k}_l{i}" for k in ("ih", "hh")
                                                for i in (0, 1)}
    optimizer = torch.optim.Adam(lstm.parameters(), lr=0.05)
    for _ in range(5):
        optimizer.zero_grad()
        lstm(torch.randn(3, 5, 4))[0].pow(2).mean().backward()
        optimizer.step()
    lstm(torch.randn(1, 2, 4))
    for rate in pruner.layer_sparsity().values():
        assert rate == pytest.approx(0.75, abs=0.01)


def test_iterative_pruning_only_adds_zeros_and_fine_tunes_each_round():
    model = mlp()
    seen = []

    def fine_tune(m, round_index):
        zeros = {n: (getattr(mod, a) == 0).clone() for n, mod, a in prunable_weights(m)}
        if seen:
            for name, previous in seen[-1][1].items():
                assert torch.all(zeros[name][previous])  # nothing pruned earlier was revived
        seen.append((round_index, zeros))
        with torch.no_grad():
            for p in m.parameters():
                p.add_(0.01)  # training would move the weights; the masks must win

    iterative_prune(model, 0.8, rounds=3, fine_tune=fine_tune)
    assert [r for r, _ in seen] == [1, 2, 3]
    fractions = [float(np.mean([z.float().mean() for z in zeros.values()])) for _, zeros in seen]
    assert fractions[0] < fractions[1] < fractions[2]
    assert model_sparsity(model) == pytest.approx(0.8, abs=0.01)
    with pytest.raises(ConfigError, match="rounds"):
        iterative_prune(mlp(), 0.5, rounds=0, fine_tune=None)


def test_sparsity_schedule_follows_the_cubic_formula_and_reaches_the_target_in_fit():
    model = mlp()
    schedule = SparsitySchedule(model, final_sparsity=0.8, begin_step=2, end_step=10, frequency=2)
    for step in range(0, 14):
        if step < 2:
            expected = 0.0
        else:
            progress = min(1.0, (step - 2) / 8)
            expected = 0.8 + (0.0 - 0.8) * (1 - progress) ** 3
        assert schedule.sparsity_at(step) == pytest.approx(expected)
    x, y = blobs(96)
    trainer = Trainer(model, loss="cross_entropy", optimizer="adam", lr=1e-2, verbose=0, seed=0)
    trainer.fit((x, y), epochs=4, batch_size=32, callbacks=[schedule])  # 12 steps
    assert schedule.step == 12
    assert model_sparsity(model) == pytest.approx(0.8, abs=0.01)
    assert not schedule.pruner.attached  # detached at the end, zeros kept
    with pytest.raises(ConfigError):
        SparsitySchedule(model, final_sparsity=0.5, end_step=5, begin_step=5)
    with pytest.raises(ConfigError):
        SparsitySchedule(model, final_sparsity=0.3, initial_sparsity=0.5, end_step=5)
    with pytest.raises(ConfigError):
        SparsitySchedule(model, final_sparsity=1.0, end_step=5)


def test_sparse_size_counts_a_bitmap_plus_the_nonzero_values():
    layer = nn.Linear(100, 10, bias=False)
    with torch.no_grad():
        layer.weight.zero_()
        layer.weight[:, :20] = 1.0  # 200 nonzeros of 1000
    assert dense_size_bytes(layer) == 4000
    assert sparse_size_bytes(layer) == math.ceil(1000 / 8) + 200 * 4
    with torch.no_grad():
        layer.weight.fill_(1.0)
    assert sparse_size_bytes(layer) == 4000  # dense is cheaper when nothing is zero


def test_eighty_percent_sparse_model_still_learns():
    x, y = blobs(384)
    x_test, y_test = blobs(256, seed=1)
    model = mlp()
    trainer = Trainer(model, loss="cross_entropy", optimizer="adam", lr=1e-2, verbose=0, seed=0)
    trainer.fit((x, y), epochs=6, batch_size=32)
    dense_acc = (model(x_test).argmax(1) == y_test).float().mean().item()
    pruner = magnitude_prune(model, 0.8)
    Trainer(model, loss="cross_entropy", optimizer="adam", lr=5e-3, verbose=0, seed=0).fit(
        (x, y), epochs=3, batch_size=32)
    pruner.detach()
    sparse_acc = (model(x_test).argmax(1) == y_test).float().mean().item()
    assert dense_acc > 0.9
    assert sparse_acc >= dense_acc - 0.05
    assert model_sparsity(model) == pytest.approx(0.8, abs=0.01)
    assert sparse_size_bytes(model) < 0.45 * dense_size_bytes(model)


class TokenModel(nn.Module):
    """A ViT-like stem: a position table and a [CLS] token added to activations, one layer."""

    def __init__(self) -> None:
        super().__init__()
        self.position = nn.Parameter(torch.randn(1, 5, 8))
        self.cls_token = nn.Parameter(torch.randn(1, 1, 8))
        self.proj = nn.Linear(8, 8)

    def forward(self, x):
        tokens = torch.cat([self.cls_token.expand(len(x), -1, -1), x], 1) + self.position
        return self.proj(tokens)


def test_positions_and_cls_tokens_stay_dense_unless_asked_for():
    torch.manual_seed(0)
    model = TokenModel()
    position, cls_token = model.position.detach().clone(), model.cls_token.detach().clone()
    assert [n for n, _, _ in prunable_weights(model)] == ["proj.weight"]
    assert {n for n, _, _ in prunable_weights(model, tokens=True)} == {
        "position", "cls_token", "proj.weight"}
    pruner = magnitude_prune(model, 0.75)
    model(torch.randn(2, 4, 8)).sum().backward()
    torch.testing.assert_close(model.position.detach(), position)  # untouched
    torch.testing.assert_close(model.cls_token.detach(), cls_token)
    assert pruner.sparsity() == pytest.approx(0.75)
    pruner.detach()
    all_pruner = magnitude_prune(TokenModel(), 0.75, attach=False)
    assert len(all_pruner.targets) == 1
    tokens_pruner = MagnitudePruner(TokenModel(), tokens=True)
    tokens_pruner.prune(0.75)
    assert tokens_pruner.layer_sparsity()["position"] == pytest.approx(0.75)


def test_positional_embedding_modules_count_as_embeddings():
    from bigmodel.nn.positional import LearnedPositionalEmbedding

    model = nn.Sequential(LearnedPositionalEmbedding(16, 8), nn.Linear(8, 8))
    assert [n for n, _, _ in prunable_weights(model)] == ["1.weight"]
    assert "0.weight" in [n for n, _, _ in prunable_weights(model, embeddings=True)]


def test_schedule_for_steps_prunes_over_the_first_part_then_holds_through_fit():
    model = mlp()
    schedule = SparsitySchedule.for_steps(model, 0.8, total_steps=12, pruning_fraction=0.5,
                                          updates=3)
    assert (schedule.end_step, schedule.frequency, schedule.begin_step) == (6, 2, 0)
    seen = []

    class Watch(Callback):
        wants_batch_hooks = True

        def on_train_batch_end(self, batch, logs=None):  # zeros the masks keep at next forward
            masks = schedule.pruner.masks.values()
            seen.append(1 - sum(int(m.sum()) for m in masks) / sum(m.numel() for m in masks))

    x, y = blobs(96)
    Trainer(model, loss="cross_entropy", optimizer="adam", lr=1e-2, verbose=0, seed=0).fit(
        (x, y), epochs=4, batch_size=32, callbacks=[schedule, Watch()])  # 12 steps
    assert seen[5] == pytest.approx(0.8, abs=0.01)  # the target at step 6 ...
    assert all(s == pytest.approx(0.8, abs=0.01) for s in seen[5:])  # ... held to the end
    assert all(a <= b + 1e-9 for a, b in zip(seen, seen[1:]))  # never revived
    assert model_sparsity(model) == pytest.approx(0.8, abs=0.01)
    for bad in ({"total_steps": 1}, {"total_steps": 10, "pruning_fraction": 0.0},
                {"total_steps": 10, "pruning_fraction": 1.5}, {"total_steps": 10, "updates": 0},
                {"total_steps": True}):
        with pytest.raises(ConfigError):
            SparsitySchedule.for_steps(model, 0.5, **bad)
    with pytest.raises(ConfigError, match="final_sparsity"):
        SparsitySchedule.for_steps(model, 1.0, total_steps=10)
