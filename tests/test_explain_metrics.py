"""Faithfulness metrics: deletion / insertion curves recomputed by hand, orderings that must beat
(or lose to) random, completeness and SHAP efficiency, and their errors."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from bigmodel.errors import ConfigError
from bigmodel.explain import explain
from bigmodel.explain.metrics import completeness, deletion_insertion, efficiency, faithfulness


class Linear(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        generator = torch.Generator().manual_seed(0)
        self.weight = nn.Parameter(torch.randn(3, 8, generator=generator))

    def forward(self, x):
        return x @ self.weight.T


def softmax(z):
    z = z - z.max(axis=-1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=-1, keepdims=True)


def test_deletion_and_insertion_curves_match_a_hand_computation():
    model = Linear()
    x = torch.rand(2, 8) + 0.5
    result = explain(model, x, method="integrated_gradients", target=0)  # = w * x exactly
    curves = deletion_insertion(model, result, steps=4, n_random=2)
    weight = model.weight.detach().numpy()
    fractions = np.linspace(0, 1, 5)
    np.testing.assert_allclose(curves.fractions.numpy(), fractions)
    for i in range(2):
        contribution = (weight[0] * x[i].numpy())
        order = np.argsort(-contribution, kind="stable")
        deletion, insertion = [], []
        for fraction in fractions:
            k = int(round(fraction * 8))
            removed = np.zeros(8, bool)
            removed[order[:k]] = True
            deleted = np.where(removed, 0.0, x[i].numpy())
            inserted = np.where(removed, x[i].numpy(), 0.0)
            deletion.append(softmax(weight @ deleted)[0])
            insertion.append(softmax(weight @ inserted)[0])
        np.testing.assert_allclose(curves.deletion[i].numpy(), deletion, rtol=1e-5)
        np.testing.assert_allclose(curves.insertion[i].numpy(), insertion, rtol=1e-5)
        # every ordering starts at the input and ends at the baseline
        for curve in (curves.random_deletion[i], curves.deletion[i]):
            assert curve[0] == pytest.approx(deletion[0], rel=1e-5)
            assert curve[-1] == pytest.approx(deletion[-1], rel=1e-5)
    area = np.trapezoid(curves.deletion.numpy(), fractions, axis=1)
    np.testing.assert_allclose(curves.deletion_auc.numpy(), area, rtol=1e-6)


def test_true_ranking_beats_random_and_reversed_ranking_loses():
    model = Linear()
    x = torch.rand(16, 8) + 0.5
    # the curves follow the class probability, so explain the probability (with three classes,
    # a ranking by logit contributions need not order the probability changes)
    result = explain(model, x, method="integrated_gradients", target=1, output="probabilities")
    good = deletion_insertion(model, result, steps=8, n_random=8).summary()
    assert good["deletion_gain"] > 0.05 and good["insertion_gain"] > 0.05
    result.attributions = -result.attributions
    bad = deletion_insertion(model, result, steps=8, n_random=8).summary()
    assert bad["deletion_gain"] < -0.05 and bad["insertion_gain"] < -0.05


def test_segments_are_removed_together():
    model = Linear()
    x = torch.rand(1, 8) + 0.5
    mask = torch.tensor([0, 0, 1, 1, 2, 2, 3, 3])
    result = explain(model, x, method="kernel_shap", target=2, segmentation=mask, n_samples=60)
    curves = deletion_insertion(model, result, steps=4, n_random=1)
    assert curves.num_features == [4]
    weight = model.weight.detach().numpy()[2]
    groups = (weight * x[0].numpy()).reshape(4, 2).sum(axis=1)
    order = np.argsort(-groups)
    remaining = x[0].numpy().copy()
    expected = [softmax(model.weight.detach().numpy() @ remaining)[2]]
    for group in order:
        remaining[2 * group: 2 * group + 2] = 0
        expected.append(softmax(model.weight.detach().numpy() @ remaining)[2])
    np.testing.assert_allclose(curves.deletion[0].numpy(), expected, rtol=1e-4)


class Tanh(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        generator = torch.Generator().manual_seed(1)
        self.u = nn.Parameter(torch.randn(5, 4, generator=generator))
        self.v = nn.Parameter(torch.randn(2, 5, generator=generator))

    def forward(self, x):
        return torch.tanh(x @ self.u.T) @ self.v.T


def test_completeness_is_measured_by_running_the_model():
    model = Tanh()
    x = torch.randn(3, 4)
    coarse = explain(model, x, method="integrated_gradients", n_steps=2, target=0)
    fine = explain(model, x, method="integrated_gradients", n_steps=100, target=0)
    with torch.no_grad():
        difference = (model(x) - model(torch.zeros(1, 4)))[:, 0].double()
    for result in (coarse, fine):
        check = completeness(model, result)
        total = result.attributions.double().sum(dim=1)
        torch.testing.assert_close(check.output_difference, difference)
        torch.testing.assert_close(check.relative_error, (total - difference).abs() / difference.abs())
    assert completeness(model, fine).mean_relative_error < 1e-4
    assert completeness(model, coarse).mean_relative_error > 10 * completeness(model, fine)\
        .mean_relative_error


def test_shap_efficiency_and_distribution_baselines():
    model = Tanh()
    x = torch.randn(2, 4)
    shap = explain(model, x, method="kernel_shap", n_samples=200, target=1)
    assert efficiency(model, shap).mean_relative_error < 1e-3
    # E f(baseline) for a distribution: an explanation built by hand with the exact gap
    background = torch.randn(5, 4)
    result = explain(model, x, method="gradient_shap", baseline=background, target=1)
    assert result.baseline_distribution and result.baselines.shape == (5, 4)
    with torch.no_grad():
        gap = model(x)[:, 1] - model(background)[:, 1].mean()
    result.attributions = torch.zeros_like(x)
    result.attributions[:, 0] = gap
    assert completeness(model, result).mean_relative_error < 1e-5


def test_faithfulness_summary_and_errors():
    model = Linear()
    x = torch.rand(4, 8)
    summary = faithfulness(model, explain(model, x), steps=4, n_random=2)
    assert {"deletion_auc", "random_deletion_auc", "insertion_auc", "completeness_error"} <= set(
        summary)
    saliency = explain(model, x, method="saliency")
    assert "completeness_error" not in faithfulness(model, saliency, steps=4)
    with pytest.raises(ConfigError, match="has no baseline"):
        completeness(model, saliency)
    with pytest.raises(ConfigError, match="steps must be a positive int"):
        deletion_insertion(model, saliency, steps=0)
    with pytest.raises(ConfigError, match="needs one baseline per example"):
        deletion_insertion(model, saliency, baseline="uniform")
