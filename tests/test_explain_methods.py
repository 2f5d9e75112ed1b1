"""Attribution methods against known answers: linear models (attribution = w * (x - b)), a NumPy
integrated-gradients reference, Captum on module-form models for DeepSHAP, and the bad inputs."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from bigmodel.errors import ConfigError, InputTypeError, ShapeError, UnknownNameError
from bigmodel.explain import METHODS, applicable_methods, explain


class LinearImage(nn.Module):
    """f(x) = W vec(x) + c on (B, 1, 4, 4) images, 3 classes."""

    def __init__(self, seed: int = 0) -> None:
        super().__init__()
        generator = torch.Generator().manual_seed(seed)
        self.weight = nn.Parameter(torch.randn(3, 16, generator=generator))
        self.bias = nn.Parameter(torch.randn(3, generator=generator))

    def forward(self, x):
        return x.flatten(1) @ self.weight.T + self.bias


@pytest.fixture
def linear_case():
    torch.manual_seed(1)
    model = LinearImage()
    x = torch.rand(4, 1, 4, 4)
    baseline = torch.full((1, 1, 4, 4), 0.25)
    return model, x, baseline


def true_linear(model, x, baseline, targets):
    weight = model.weight.detach()[targets].view(-1, 1, 4, 4)
    return weight * (x - baseline)


@pytest.mark.parametrize("method, options", [
    ("integrated_gradients", {}),
    ("gradient_shap", {"n_samples": 8}),
    ("deep_shap", {}),
    ("kernel_shap", {"n_samples": 300, "segmentation": "pixels"}),
    ("lime", {"n_samples": 300, "segmentation": "pixels", "alpha": 1e-9}),
])
def test_linear_model_attributions_are_weight_times_difference(linear_case, method, options):
    model, x, baseline = linear_case
    targets = torch.tensor([0, 1, 2, 1])
    result = explain(model, x, target=targets, method=method, baseline=baseline, **options)
    assert result.attributions.shape == x.shape
    torch.testing.assert_close(result.attributions, true_linear(model, x, baseline, targets),
                               atol=2e-4, rtol=1e-3)
    assert torch.equal(result.targets, targets)


def test_saliency_of_a_linear_model_is_abs_weight(linear_case):
    model, x, _ = linear_case
    result = explain(model, x, target=2, method="saliency")
    expected = model.weight.detach()[2].abs().view(1, 1, 4, 4).expand_as(x)
    torch.testing.assert_close(result.attributions, expected)
    assert result.baselines is None


class TanhMLP(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        generator = torch.Generator().manual_seed(3)
        self.u = nn.Parameter(torch.randn(6, 5, generator=generator))
        self.c = nn.Parameter(torch.randn(6, generator=generator))
        self.v = nn.Parameter(torch.randn(4, 6, generator=generator))

    def forward(self, x):
        return torch.tanh(x @ self.u.T + self.c) @ self.v.T


def numpy_integrated_gradients(model, x, baseline, target, steps):
    """Gauss-Legendre IG with the analytic gradient of v tanh(u x + c)."""
    u, c, v = (p.detach().double().numpy() for p in (model.u, model.c, model.v))
    nodes, weights = np.polynomial.legendre.leggauss(steps)
    alphas, weights = (nodes + 1) / 2, weights / 2
    total = np.zeros_like(x)
    for alpha, weight in zip(alphas, weights):
        point = baseline + alpha * (x - baseline)
        hidden = np.tanh(u @ point + c)
        total += weight * (u.T @ (v[target] * (1 - hidden ** 2)))
    return (x - baseline) * total


def test_integrated_gradients_matches_numpy_reference_and_completes():
    model = TanhMLP()
    x = torch.randn(3, 5)
    result = explain(model, x, method="integrated_gradients", n_steps=64)
    for i in range(3):
        expected = numpy_integrated_gradients(model, x[i].double().numpy(), np.zeros(5),
                                              int(result.targets[i]), 64)
        np.testing.assert_allclose(result.attributions[i].numpy(), expected, atol=2e-5)
        with torch.no_grad():
            out = model(x[i: i + 1]) - model(torch.zeros(1, 5))
        assert abs(float(result.attributions[i].sum() - out[0, result.targets[i]])) < 1e-4
    assert result.input_type == "vector"
    assert result.convergence_delta.abs().max() < 1e-4


class FunctionalCNN(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(5)
        self.conv = nn.Conv2d(1, 4, 3)
        self.fc = nn.Linear(4 * 3 * 3, 3)

    def forward(self, x):
        return self.fc(F.max_pool2d(F.relu(self.conv(x)), 2).flatten(1))


class ModuleCNN(FunctionalCNN):
    def __init__(self) -> None:
        super().__init__()
        self.relu, self.pool = nn.ReLU(), nn.MaxPool2d(2)

    def forward(self, x):
        return self.fc(self.pool(self.relu(self.conv(x))).flatten(1))


@pytest.mark.filterwarnings("ignore:Setting forward, backward hooks")
def test_deep_shap_applies_deeplift_rules_to_functional_calls():
    from captum.attr import DeepLiftShap

    functional, modules = FunctionalCNN(), ModuleCNN()
    modules.load_state_dict(functional.state_dict())
    x = torch.rand(3, 1, 8, 8)
    background = torch.rand(4, 1, 8, 8) * 0.2
    result = explain(functional, x, target=1, method="deep_shap", baseline=background)
    reference, delta = DeepLiftShap(modules).attribute(x, background, target=1,
                                                        return_convergence_delta=True)
    torch.testing.assert_close(result.attributions, reference.detach(), atol=1e-5, rtol=1e-4)
    assert result.baseline_distribution
    torch.testing.assert_close(result.convergence_delta, delta.view(3, 4).mean(dim=1),
                               atol=1e-5, rtol=1e-4)
    # without the adapter Captum would fall back to plain gradients at F.relu / F.max_pool2d
    plain = DeepLiftShap(functional).attribute(x, background, target=1)
    assert not torch.allclose(plain, reference, atol=1e-3)
    assert result.extras["rules_for_functional_calls"] == 2  # relu + max_pool2d


class TokenModel(nn.Module):
    """Mean of token embeddings, then a linear layer: attributions are exactly linear per token."""

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(7)
        self.embedding = nn.Embedding(12, 5)
        self.head = nn.Linear(5, 3)

    def forward(self, ids):
        return self.head(self.embedding(ids).mean(dim=1))


@pytest.mark.parametrize("method", ["integrated_gradients", "gradient_shap", "deep_shap"])
def test_token_gradient_methods_work_in_embedding_space(method):
    model = TokenModel()
    ids = torch.tensor([[3, 4, 5, 0, 0], [1, 1, 9, 10, 2]])
    result = explain(model, ids, method=method, target=2)
    assert result.input_type == "tokens" and result.attributions.shape == (2, 5)
    table = model.embedding.weight.detach()
    expected = (table[ids] - table[0]) @ model.head.weight.detach()[2] / ids.shape[1]
    torch.testing.assert_close(result.attributions, expected, atol=1e-5, rtol=1e-4)
    assert torch.equal(result.baselines, torch.zeros_like(ids))  # the pad baseline


def test_token_perturbation_replaces_ids_with_pad():
    model = TokenModel()
    ids = torch.tensor([[3, 4, 5, 6, 7]])
    result = explain(model, ids, method="kernel_shap", target=0, n_samples=200, pad_id=0)
    table = model.embedding.weight.detach()
    expected = (table[ids] - table[0]) @ model.head.weight.detach()[0] / 5
    torch.testing.assert_close(result.attributions, expected, atol=1e-4, rtol=1e-3)
    saliency = explain(model, ids, method="saliency", target=0)
    assert saliency.attributions.shape == (1, 5) and (saliency.attributions > 0).all()


class RefusesEmptyTexts(TokenModel):
    def forward(self, ids):
        if (ids == 0).all(dim=1).any():
            raise ValueError("every text needs at least one token")
        return super().forward(ids)


def test_tokens_are_removed_through_their_embedding():
    from bigmodel.explain.metrics import completeness, deletion_insertion

    model = RefusesEmptyTexts()
    ids = torch.tensor([[3, 4, 5, 6]])
    for method in ("kernel_shap", "lime", "integrated_gradients"):
        result = explain(model, ids, method=method, target=1, n_samples=60) \
            if method != "integrated_gradients" else explain(model, ids, method=method, target=1)
        assert result.extras["embedding_layer"] == "embedding"
        curves = deletion_insertion(model, result, steps=4, n_random=1)  # all removed: no error
        assert curves.deletion.shape == (1, 5)
        assert completeness(model, result).mean_relative_error < (0.05 if method != "lime" else 1)
    # a token model without an embedding layer is perturbed in id space
    no_embedding = lambda_free(nn.Sequential(nn.Linear(4, 2)))
    result = explain(no_embedding, ids, method="kernel_shap", n_samples=40)
    assert "embedding_layer" not in result.extras and result.attributions.shape == (1, 4)


class FunctionalLookup(RefusesEmptyTexts):
    """Looks its ids up with F.embedding on its own table (no embedding module runs)."""

    def forward(self, ids):
        if (ids == 0).all(dim=1).any():
            raise ValueError("every text needs at least one token")
        return self.head(F.embedding(ids, self.embedding.weight).mean(dim=1))


def test_functional_embedding_lookups_are_found():
    from bigmodel.explain.metrics import completeness, deletion_insertion

    model = FunctionalLookup()
    ids = torch.tensor([[3, 4, 5, 6], [7, 1, 2, 2]])
    table = model.embedding.weight.detach()
    expected = (table[ids] - table[0]) @ model.head.weight.detach()[2] / 4
    for method in ("integrated_gradients", "kernel_shap"):
        result = explain(model, ids, method=method, target=2, **(
            {"n_samples": 60} if method == "kernel_shap" else {}))
        assert result.extras["embedding_layer"] == "F.embedding"
        torch.testing.assert_close(result.attributions, expected, atol=1e-4, rtol=1e-3)
        assert completeness(model, result).mean_relative_error < 1e-3
        assert deletion_insertion(model, result, steps=4, n_random=1).deletion.shape == (2, 5)


class LinearSequence(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.randn(2, 6, 3, generator=torch.Generator().manual_seed(2)))

    def forward(self, x):  # (B, T=6, F=3)
        return torch.einsum("btf,ktf->bk", x, self.weight)


@pytest.mark.parametrize("group_size", [1, 2])
def test_kernel_shap_groups_time_steps(group_size):
    model = LinearSequence()
    x = torch.randn(2, 6, 3)
    result = explain(model, x, method="kernel_shap", target=1, n_samples=200,
                     group_size=group_size)
    assert result.input_type == "sequence"
    per_step = (model.weight.detach()[1] * x).sum(dim=-1)  # (B, T), baseline zeros
    per_group = per_step.view(2, -1, group_size).sum(dim=-1)
    got = result.position_map().view(2, -1, group_size).sum(dim=-1)
    torch.testing.assert_close(got, per_group, atol=1e-4, rtol=1e-3)
    assert result.extras["num_features"] == [6 // group_size] * 2


def test_keras_model_is_channels_last_and_can_explain_logits():
    from bigmodel import keras
    from bigmodel.keras import layers

    torch.manual_seed(0)
    model = keras.Sequential([layers.Conv2D(4, (3, 3), activation="relu", input_shape=(8, 8, 1)),
                              layers.Flatten(), layers.Dense(3, activation="softmax")])
    x = np.random.default_rng(0).random((2, 8, 8, 1)).astype("float32")
    result = explain(model, x, method="integrated_gradients")
    assert result.channels_last and result.scores_are_probabilities
    assert result.attributions.shape == (2, 8, 8, 1)
    logits = explain(model, x, method="integrated_gradients", output="logits")
    assert not logits.scores_are_probabilities
    assert not torch.allclose(logits.attributions, result.attributions)
    # a (B, H, W) batch gets its channel axis back for a model declared with (H, W, 1)
    squeezed = explain(model, x[..., 0], method="saliency")
    assert squeezed.input_type == "image" and squeezed.attributions.shape == (2, 8, 8, 1)


def test_model_mode_is_restored_and_options_recorded(linear_case):
    model, x, _ = linear_case
    model.train()
    result = explain(model, x, method="integrated_gradients", n_steps=7)
    assert model.training
    assert result.options["n_steps"] == 7 and result.timings["per_example_s"] > 0
    assert set(applicable_methods(model, x[:1])) == set(METHODS) - {"gradcam", "attention"}


def test_model_state_is_put_back_even_after_an_error():
    from bigmodel.models import create_model

    model = create_model("seed-cnn").train()
    model.fc.weight.requires_grad_(False)
    strides = {name: p.stride() for name, p in model.named_parameters()}
    explain(model, torch.rand(2, 1, 28, 28), method="gradcam")
    with pytest.raises(ConfigError):
        explain(model, torch.rand(2, 1, 28, 28), method="lime", alpha=1.0, segmentation="x")
    assert model.training
    assert [p.requires_grad for p in model.parameters()] == [
        name != "fc.weight" for name, _ in model.named_parameters()]
    assert {name: p.stride() for name, p in model.named_parameters()} == strides


# -- bad input -------------------------------------------------------------------------------------


def test_unknown_method_lists_known_ones(linear_case):
    model, x, _ = linear_case
    with pytest.raises(UnknownNameError, match="Known methods: integrated_gradients"):
        explain(model, x, method="shapley")


def test_target_out_of_range(linear_case):
    model, x, _ = linear_case
    with pytest.raises(ConfigError, match="target class 3 is out of range .* 3 classes; "
                                          "expected 0..2"):
        explain(model, x, target=3)
    with pytest.raises(ConfigError, match="target has 2 entries for a batch of 4"):
        explain(model, x, target=[0, 1])
    with pytest.raises(InputTypeError, match="target must be None, an int"):
        explain(model, x, target=[0.5] * 4)


def test_wrong_input_shape_and_type(linear_case):
    model, _, _ = linear_case
    with pytest.raises(ShapeError, match=r"LinearImage failed on inputs Tensor\(shape=\(2, 1, 5, 5\)"):
        explain(model, torch.rand(2, 1, 5, 5))
    with pytest.raises(ShapeError, match="batch"):
        explain(model, torch.rand(16))
    with pytest.raises(InputTypeError, match="integer inputs are read as token ids"):
        explain(model, torch.zeros(2, 1, 4, 4, dtype=torch.uint8))
    with pytest.raises(InputTypeError, match="must hold numbers"):
        explain(model, np.array([["a"]]))
    from bigmodel.models import create_model

    with pytest.raises(ShapeError, match="SeedCNN expects input of shape"):
        explain(create_model("seed-cnn"), torch.rand(1, 1, 20, 20))


def test_methods_that_do_not_apply_list_those_that_do(linear_case):
    model, x, _ = linear_case
    with pytest.raises(ConfigError, match=r"'gradcam' does not apply .* convolutional .* Methods "
                                          r"that apply: integrated_gradients, saliency"):
        explain(model, x, method="gradcam")
    with pytest.raises(ConfigError, match=r"'attention' does not apply to LinearImage .* "
                                          r"attention layers"):
        explain(model, x, method="attention")
    with pytest.raises(ConfigError, match="does not take option.*'n_steps'.*accepts: n_samples"):
        explain(model, x, method="kernel_shap", n_steps=10)
    no_embedding = nn.Sequential(nn.Flatten(), nn.Linear(5, 2))
    with pytest.raises(ConfigError, match="needs an embedding layer"):
        explain(lambda_free(no_embedding), torch.ones(2, 5, dtype=torch.long))


def lambda_free(module: nn.Module) -> nn.Module:
    class AsFloat(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.inner = module

        def forward(self, ids):
            return self.inner(ids.float())

    return AsFloat()


def test_bad_baselines_and_options(linear_case):
    model, x, _ = linear_case
    with pytest.raises(ConfigError, match="unknown baseline 'grey'; known baselines: black"):
        explain(model, x, baseline="grey")
    with pytest.raises(ConfigError, match="needs one baseline per example.*distribution"):
        explain(model, x, baseline="uniform")
    with pytest.raises(ConfigError, match="needs data="):
        explain(model, x, baseline="mean")
    with pytest.raises(ShapeError, match="baseline tensor must be shaped like one input"):
        explain(model, x, baseline=torch.zeros(1, 1, 3, 3))
    with pytest.raises(ConfigError, match="n_steps must be a positive int"):
        explain(model, x, n_steps=0)
    with pytest.raises(ConfigError, match="unknown segmentation"):
        explain(model, x, method="lime", segmentation="felzenszwalb")
    with pytest.raises(ConfigError, match=r"batch_size must be None \(automatic\) or a positive"):
        explain(model, x, batch_size=0)
    with pytest.raises(InputTypeError, match="model must be a torch.nn.Module"):
        explain(lambda t: t, x)


def test_a_missing_package_is_named(monkeypatch, linear_case):
    import importlib.util

    model, x, _ = linear_case
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda name, *args: None if name == "sklearn" else real(name, *args))
    with pytest.raises(ConfigError, match=r"'lime' needs the package\(s\) scikit-learn, which are "
                                          r"not installed \(pip install scikit-learn\)"):
        explain(model, x, method="lime")
    assert explain(model, x, method="saliency").attributions.shape == x.shape
