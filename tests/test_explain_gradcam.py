"""Grad-CAM: against Captum's LayerGradCam, on a model that only looks at one quadrant, the layer
found automatically in plain / Keras / 1-D models, and the errors."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from bigmodel.errors import ConfigError
from bigmodel.explain import explain


def test_matches_captum_layer_gradcam_on_the_seed_cnn():
    from captum.attr import LayerGradCam

    from bigmodel.models import create_model

    torch.manual_seed(0)
    model = create_model("seed-cnn").eval()
    x = torch.rand(3, 1, 28, 28)
    result = explain(model, x, target=[1, 4, 7], method="gradcam")
    assert result.extras["layer"] == "conv3"  # the last convolution, found by running the model
    reference = LayerGradCam(model, model.conv3).attribute(x, target=[1, 4, 7],
                                                           relu_attributions=True)
    torch.testing.assert_close(result.extras["layer_map"], reference.detach()[:, 0])
    assert result.attributions.shape == x.shape and (result.attributions >= 0).all()


class QuadrantModel(nn.Module):
    """Only the top-left 8x8 quadrant of a 16x16 image reaches the classifier."""

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(1)
        self.conv = nn.Conv2d(1, 4, 3, padding=1, bias=False)
        self.head = nn.Linear(4, 2)
        with torch.no_grad():
            self.conv.weight.abs_()  # positive responses to bright pixels
            self.head.weight.copy_(torch.tensor([[1.0, 1.0, 1.0, 1.0], [-1.0, -1.0, -1.0, -1.0]]))
        mask = torch.zeros(1, 1, 16, 16)
        mask[..., :8, :8] = 1
        self.register_buffer("mask", mask)

    def forward(self, x):
        features = F.relu(self.conv(x * self.mask))  # (B, 4, 16, 16), zero outside the quadrant
        return self.head(features.mean(dim=(2, 3)))


def test_gradcam_highlights_the_only_quadrant_the_model_uses():
    x = torch.rand(4, 1, 16, 16)
    result = explain(QuadrantModel(), x, target=0, method="gradcam")
    heat = result.position_map()  # (B, 16, 16)
    inside = heat[:, :9, :9].sum(dim=(1, 2))  # the quadrant plus the 3x3 kernel's one-pixel reach
    assert torch.all(inside / heat.sum(dim=(1, 2)) > 0.99)
    assert heat[:, :8, :8].min() > 0


def test_keras_conv2d_channels_last_matches_the_same_torch_model():
    from bigmodel import keras
    from bigmodel.keras import layers

    torch.manual_seed(2)
    keras_model = keras.Sequential([
        layers.Conv2D(4, (3, 3), activation="relu", input_shape=(8, 8, 1), name="features"),
        layers.Flatten(), layers.Dense(3)])
    kernel, bias, dense_w, dense_b = keras_model.get_weights()

    class Same(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.conv = nn.Conv2d(1, 4, 3)
            self.relu = nn.ReLU()
            self.dense = nn.Linear(6 * 6 * 4, 3)
            with torch.no_grad():
                self.conv.weight.copy_(torch.from_numpy(kernel).permute(3, 2, 0, 1))
                self.conv.bias.copy_(torch.from_numpy(bias))
                self.dense.weight.copy_(torch.from_numpy(dense_w).T)
                self.dense.bias.copy_(torch.from_numpy(dense_b))

        def forward(self, x):  # NHWC in, Keras flatten order
            h = self.relu(self.conv(x.permute(0, 3, 1, 2)))
            return self.dense(h.permute(0, 2, 3, 1).flatten(1))

    x = np.random.default_rng(0).random((2, 8, 8, 1)).astype("float32")
    ours = explain(keras_model, x, target=2, method="gradcam")
    assert ours.extras["layer"] == "features"
    same = explain(Same(), torch.from_numpy(x), target=2, method="gradcam", layer="relu",
                   channels_last=True)
    torch.testing.assert_close(ours.extras["layer_map"], same.extras["layer_map"])
    assert ours.attributions.shape == (2, 8, 8, 1)


class TimeConv(nn.Module):
    """(B, T, F) sequences; only time steps 4 and 5 reach the classifier."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv1d(3, 4, kernel_size=1, bias=False)
        with torch.no_grad():
            self.conv.weight.abs_()
        self.head = nn.Linear(4, 2)
        with torch.no_grad():
            self.head.weight.fill_(1.0)

    def forward(self, x):
        keep = torch.zeros(1, 1, x.shape[1])
        keep[..., 4:6] = 1
        features = F.relu(self.conv(x.transpose(1, 2) * keep))  # (B, 4, T)
        return self.head(features.mean(dim=2))


def test_gradcam_on_a_one_dimensional_feature_map():
    x = torch.rand(2, 10, 3)
    result = explain(TimeConv(), x, target=0, method="gradcam")
    assert result.input_type == "sequence" and result.attributions.shape == x.shape
    steps = result.position_map()
    assert steps[:, 4:6].sum() / steps.sum() > 0.99


def test_gradcam_errors():
    mlp = nn.Sequential(nn.Flatten(), nn.Linear(16, 3))
    x = torch.rand(2, 1, 4, 4)
    with pytest.raises(ConfigError, match="'gradcam' does not apply to Sequential .* needs a "
                                          "convolutional layer"):
        explain(mlp, x, method="gradcam")
    with pytest.raises(ConfigError, match="has no layer named 'conv9'.*Layers: 0, 1"):
        explain(mlp, x, method="gradcam", layer="conv9")
    with pytest.raises(ConfigError, match=r"gradcam layer '1' must output a feature map .*"
                                          r"\(1, 3\)"):
        explain(mlp, x, method="gradcam", layer="1")
