"""The seed CNN: parameter count, shapes, input layouts, Keras flatten order, classifier surface."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from bigmodel.errors import ConfigError, InputTypeError, ShapeError
from bigmodel.models import SeedCNN, create_model


def keras_param_count() -> int:
    """The seed program's model.summary(), layer by layer (Keras counts kernel + bias)."""
    conv = lambda cin, cout: 3 * 3 * cin * cout + cout  # noqa: E731
    dense = lambda fin, fout: fin * fout + fout  # noqa: E731
    return conv(1, 32) + conv(32, 64) + conv(64, 64) + dense(3 * 3 * 64, 64) + dense(64, 10)


def test_parameter_count_matches_keras_summary():
    model = create_model("seed-cnn")
    assert keras_param_count() == 93_322
    assert sum(p.numel() for p in model.parameters()) == 93_322


def test_output_shapes_and_input_layouts_agree():
    torch.manual_seed(0)
    model = SeedCNN().eval()
    images = torch.rand(4, 28, 28)
    nchw = model(images[:, None])
    assert nchw.shape == (4, 10)
    torch.testing.assert_close(model(images), nchw)  # (B, H, W)
    torch.testing.assert_close(model(images[..., None]), nchw)  # channels-last (B, H, W, 1)
    assert model.forward_features(images[:, None]).shape == (4, 64, 3, 3)
    features = model.forward_features(images)
    assert model.forward_head(features, pre_logits=True).shape == (4, 64)
    torch.testing.assert_close(model.forward_head(features), nchw)


@pytest.mark.parametrize("shape", [(2, 3, 28, 28), (2, 1, 32, 32), (28, 28), (2, 28, 28, 3)])
def test_wrong_shape_is_a_shape_error_naming_what_was_received(shape):
    model = SeedCNN()
    with pytest.raises(ShapeError, match=r"expects input of shape .*received Tensor\(shape="):
        model(torch.rand(shape))


def test_integer_input_is_rejected():
    with pytest.raises(InputTypeError, match="floating-point"):
        SeedCNN()(torch.zeros(2, 1, 28, 28, dtype=torch.uint8))


def test_other_sizes_and_channels():
    model = SeedCNN(in_channels=3, num_classes=5, image_size=(32, 40))
    assert model(torch.rand(2, 3, 32, 40)).shape == (2, 5)
    assert model(torch.rand(2, 32, 40, 3)).shape == (2, 5)
    assert model.num_features == 64 * 4 * 6
    with pytest.raises(ConfigError, match="too small"):
        SeedCNN(image_size=16)
    with pytest.raises(ConfigError, match="dropout_rate"):
        SeedCNN(dropout_rate=1.0)


def _numpy_keras_forward(model: SeedCNN, images_nhwc: np.ndarray) -> np.ndarray:
    """Independent reference: the seed program in NumPy on Keras-layout (channels-last) weights."""

    def conv_relu(x, conv):
        kernel = conv.weight.detach().numpy().transpose(2, 3, 1, 0)  # (kh, kw, in, out)
        windows = np.lib.stride_tricks.sliding_window_view(x, (3, 3), axis=(1, 2))  # B,H,W,C,3,3
        out = np.einsum("bhwcij,ijco->bhwo", windows, kernel) + conv.bias.detach().numpy()
        return np.maximum(out, 0.0)

    def pool(x):
        b, h, w, c = x.shape
        x = x[:, : h // 2 * 2, : w // 2 * 2]
        return x.reshape(b, h // 2, 2, w // 2, 2, c).max(axis=(2, 4))

    def dense(x, linear):
        return x @ linear.weight.detach().numpy().T + linear.bias.detach().numpy()

    x = pool(conv_relu(images_nhwc, model.conv1))
    x = pool(conv_relu(x, model.conv2))
    x = conv_relu(x, model.conv3)
    x = x.reshape(len(x), -1)  # Keras Flatten on (B, H, W, C)
    return dense(np.maximum(dense(x, model.fc), 0.0), model.classifier)


def test_matches_numpy_reference_with_keras_flatten_order():
    torch.manual_seed(1)
    model = SeedCNN().eval()
    images = np.random.default_rng(0).random((3, 28, 28, 1))
    expected = _numpy_keras_forward(model, images)
    with torch.no_grad():
        got = model(torch.as_tensor(images, dtype=torch.float32)).double().numpy()
    np.testing.assert_allclose(got, expected, rtol=1e-4, atol=1e-5)


def test_every_parameter_gets_a_gradient():
    torch.manual_seed(0)
    model = SeedCNN(dropout_rate=0.5).train()
    loss = torch.nn.functional.cross_entropy(model(torch.rand(8, 1, 28, 28)),
                                             torch.arange(8) % 10)
    loss.backward()
    for name, parameter in model.named_parameters():
        assert parameter.grad is not None and torch.isfinite(parameter.grad).all(), name
        assert parameter.grad.abs().sum() > 0, name


def test_dropout_only_in_training_mode():
    torch.manual_seed(0)
    model = SeedCNN(dropout_rate=0.5)
    x = torch.rand(4, 1, 28, 28)
    model.eval()
    torch.testing.assert_close(model(x), model(x))
    model.train()
    assert not torch.allclose(model(x), model(x))


def test_keras_initialization():
    model = SeedCNN()
    for layer in (model.conv1, model.conv2, model.conv3, model.fc, model.classifier):
        assert torch.count_nonzero(layer.bias) == 0
        receptive = layer.weight[0, 0].numel() if layer.weight.ndim == 4 else 1
        fan_in, fan_out = layer.weight.shape[1] * receptive, layer.weight.shape[0] * receptive
        assert layer.weight.abs().max() <= math.sqrt(6.0 / (fan_in + fan_out))
    assert torch.count_nonzero(SeedCNN(weight_init="torch_default").conv1.bias) > 0


def test_reset_classifier_keeps_the_trunk():
    model = SeedCNN().eval()
    x = torch.rand(2, 1, 28, 28)
    before = model.forward_head(model.forward_features(x), pre_logits=True)
    model.reset_classifier(4)
    assert model.num_classes == 4 and model.get_config()["num_classes"] == 4
    assert model(x).shape == (2, 4)
    torch.testing.assert_close(model.forward_head(model.forward_features(x), pre_logits=True),
                               before)
    assert model.get_classifier().out_features == 4
    with pytest.raises(ConfigError):
        model.reset_classifier(0)
