"""RCNN's ``pool_size`` option and the CPU-sized ``rcnn-cpu`` entry: a NumPy/SciPy reference of the
whole forward pass, sizes, gradients, round trip, the recipe, learning, bad input."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from scipy.signal import correlate2d

from bigmodel.errors import ConfigError, ShapeError
from bigmodel.models import create_model, load_model, save_model
from bigmodel.models.rcnn import RCNN, rcnn_feature_size
from bigmodel.recipes.schema import load_recipe

RECIPE = Path(__file__).resolve().parents[1] / "configs" / "fashion_rcnn_cpu.yaml"


# -- a NumPy / SciPy reference of RCNN-K with per-step batch norm (inference mode) ----------------
def _np_conv_same(x: np.ndarray, w: np.ndarray, b: np.ndarray | None) -> np.ndarray:
    """'same' cross-correlation of one image (C_in, H, W) with w (C_out, C_in, k, k)."""
    out = np.zeros((w.shape[0],) + x.shape[1:])
    for o in range(w.shape[0]):
        for i in range(w.shape[1]):
            out[o] += correlate2d(x[i], w[o, i], mode="same", boundary="fill", fillvalue=0.0)
        if b is not None:
            out[o] += b[o]
    return out


def _np_bn_relu(z: np.ndarray, bn: torch.nn.BatchNorm2d) -> np.ndarray:
    p = lambda t: t.detach().double().numpy()[:, None, None]  # noqa: E731
    normed = (z - p(bn.running_mean)) / np.sqrt(p(bn.running_var) + bn.eps)
    return np.maximum(normed * p(bn.weight) + p(bn.bias), 0.0)


def _np_pool(x: np.ndarray, size: int) -> np.ndarray:
    """Max pooling with size×size windows, stride 2, no padding (floor), spelled out."""
    c, h, w = x.shape
    oh, ow = (h - size) // 2 + 1, (w - size) // 2 + 1
    out = np.empty((c, oh, ow))
    for i in range(oh):
        for j in range(ow):
            out[:, i, j] = x[:, 2 * i:2 * i + size, 2 * j:2 * j + size].max(axis=(1, 2))
    return out


def _np_rcnn(model: RCNN, image: np.ndarray) -> np.ndarray:
    n = lambda t: t.detach().double().numpy()  # noqa: E731
    h = _np_bn_relu(_np_conv_same(image, n(model.conv1.weight), n(model.conv1.bias)), model.norm1)
    h = _np_pool(h, model.pool_size)
    for index, layer in enumerate(model.rcls):
        ff = _np_conv_same(h, n(layer.weight), n(layer.bias))  # w_f * u + b
        state = _np_bn_relu(ff, layer.batch_norms[0])
        for step in range(1, model.steps + 1):
            z = ff + _np_conv_same(state, n(layer.recurrent_weight), None)
            state = _np_bn_relu(z, layer.batch_norms[step])
        h = _np_pool(state, model.pool_size) if index == 1 else state
    pooled = h.max(axis=(1, 2))  # global max pooling
    return n(model.classifier.weight) @ pooled + n(model.classifier.bias)


def _randomize_batch_norms(model: RCNN, seed: int) -> None:
    generator = torch.Generator().manual_seed(seed)
    for module in model.modules():
        if isinstance(module, torch.nn.BatchNorm2d):
            size = module.num_features
            module.running_mean.copy_(torch.randn(size, generator=generator) * 0.3)
            module.running_var.copy_(torch.rand(size, generator=generator) + 0.5)
            with torch.no_grad():
                module.weight.copy_(torch.rand(size, generator=generator) + 0.5)
                module.bias.copy_(torch.randn(size, generator=generator) * 0.2)


@pytest.mark.parametrize("pool_size, side, feature", [(2, (13, 10), (3, 2)), (3, (15, 16), (3, 3))])
def test_forward_matches_numpy_reference(pool_size, side, feature):
    torch.manual_seed(0)
    model = RCNN(in_channels=2, num_classes=3, width=3, steps=2, norm="batch",
                 pool_size=pool_size).eval()
    _randomize_batch_norms(model, seed=1)
    x = torch.rand(2, 2, *side)
    assert model.forward_features(x).shape == (2, 3, *feature)
    expected = np.stack([_np_rcnn(model, image) for image in x.double().numpy()])
    np.testing.assert_allclose(model(x).detach().numpy(), expected, rtol=1e-4, atol=1e-5)


def test_rcnn_cpu_size_and_layout():
    model = create_model("rcnn-cpu")
    params = sum(p.numel() for p in model.parameters())
    # conv1 5·5·64 + 64, its BN 2·64; per RCL 2·(64·64·9) + 64 + 4 BNs·2·64; classifier 64·10 + 10
    assert params == (25 * 64 + 64 + 128) + 4 * (2 * 64 * 64 * 9 + 64 + 4 * 128) + 650 == 299_658
    assert params <= 700_000
    config = model.get_config()
    assert (config["width"], config["steps"], config["norm"], config["pool_size"]) == (64, 3,
                                                                                       "batch", 2)
    assert model.forward_features(torch.rand(2, 1, 28, 28)).shape == (2, 64, 7, 7)
    # the paper-size entries keep the paper's pooling, and take the option as an override
    assert create_model("rcnn-96").pool_size == 3
    small = create_model("rcnn-32", width=4, steps=1, pool_size=2)
    assert small.forward_features(torch.rand(1, 1, 28, 28)).shape == (1, 4, 7, 7)
    assert sum(p.numel() for p in small.parameters()) == \
        sum(p.numel() for p in create_model("rcnn-32", width=4, steps=1).parameters())


def test_gradients_reach_every_parameter_and_round_trip(tmp_path):
    torch.manual_seed(0)
    model = create_model("rcnn-cpu", width=6, steps=2, num_classes=4)
    F.cross_entropy(model(torch.rand(3, 1, 12, 12)), torch.tensor([0, 1, 3])).backward()
    missing = [name for name, p in model.named_parameters()
               if p.grad is None or not torch.any(p.grad != 0)]
    assert not missing
    model.eval()
    save_model(model, tmp_path / "m")
    loaded = load_model(tmp_path / "m")
    assert loaded.get_config() == model.get_config() and loaded.pool_size == 2
    x = torch.rand(2, 1, 9, 9)
    torch.testing.assert_close(loaded(x), model(x))


def test_input_size_limits_with_2x2_pooling():
    assert rcnn_feature_size(28, 2) == 7 and rcnn_feature_size(4, 2) == 1
    assert rcnn_feature_size(3, 2) < 1 and rcnn_feature_size(28) == 6
    model = RCNN(width=4, steps=1, pool_size=2)
    assert model(torch.rand(1, 1, 4, 5)).shape == (1, 10)
    with pytest.raises(ShapeError, match=r"3×28 pixels.*2×2 stride-2.*at least 4"):
        model(torch.rand(1, 1, 3, 28))
    with pytest.raises(ShapeError, match="3×3 stride-2.*at least 7"):
        RCNN(width=4, steps=1)(torch.rand(1, 1, 28, 6))


@pytest.mark.parametrize("value", [1, 4, 0, "2", 2.0, True, None])
def test_bad_pool_size(value):
    with pytest.raises(ConfigError, match=rf"RCNN: 'pool_size' must be 3 .* or 2 .*received "
                                          rf"{value!r}"):
        RCNN(pool_size=value)


@pytest.mark.parametrize("value", [1, 4, 0])
def test_bad_pool_size_through_the_registry(value):
    with pytest.raises(ConfigError, match="'pool_size'.*received"):
        create_model("rcnn-cpu", pool_size=value)


def test_cpu_recipe_is_the_documented_one():
    recipe = load_recipe(RECIPE)
    assert recipe.model.name == "rcnn-cpu" and recipe.data.name == "fashion_mnist"
    assert recipe.data.train_subset is None and recipe.data.test_subset is None  # full data
    model = create_model(recipe.model.name, **recipe.model.overrides)
    assert sum(p.numel() for p in model.parameters()) <= 700_000
