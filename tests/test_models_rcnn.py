"""RCNN-K (image) and TextRCNN: sizes, numerics against explicit references, learning, bad input."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from bigmodel.engine import Trainer
from bigmodel.errors import ConfigError, DataError, InputTypeError, ShapeError
from bigmodel.models import create_model, load_model, save_model
from bigmodel.models.rcnn import RCNN, TextRCNN, rcnn_feature_size


# -- image RCNN -----------------------------------------------------------------------------------
@pytest.mark.parametrize("name, params", [("rcnn-96", 672_202), ("rcnn-128", 1_191_178),
                                          ("rcnn-160", 1_857_610)])
def test_paper_sizes(name, params):
    # Liang & Hu (2015), CIFAR-10: RCNN-96 0.67 M, RCNN-128 1.19 M, RCNN-160 1.86 M parameters.
    model = create_model(name, in_channels=3)
    assert sum(p.numel() for p in model.parameters()) == params
    assert round(params / 1e6, 2) == {"rcnn-96": 0.67, "rcnn-128": 1.19, "rcnn-160": 1.86}[name]


def test_rcnn_96_for_fashion_is_under_0_7_m():
    assert sum(p.numel() for p in create_model("rcnn-96").parameters()) == 667_402
    assert sum(p.numel() for p in create_model("rcnn-32").parameters()) == 75_018


def test_rcnn_forward_matches_explicit_composition():
    torch.manual_seed(0)
    model = RCNN(in_channels=1, num_classes=4, width=8, steps=2, norm="lrn").eval()
    x = torch.rand(2, 1, 15, 17)

    def rcl(layer, u):  # the equations, spelled out
        g = lambda z: F.local_response_norm(F.relu(z), 2, 1e-3, 0.75, k=1.0)  # noqa: E731
        ff = F.conv2d(u, layer.weight, layer.bias, padding=1)
        state = g(ff)
        for _ in range(2):
            state = g(ff + F.conv2d(state, layer.recurrent_weight, padding=1))
        return state

    h = F.local_response_norm(F.relu(F.conv2d(x, model.conv1.weight, model.conv1.bias, padding=2)),
                              2, 1e-3, 0.75, k=1.0)
    h = F.max_pool2d(h, 3, 2)  # (7, 8)
    h = F.max_pool2d(rcl(model.rcls[1], rcl(model.rcls[0], h)), 3, 2)  # (3, 3)
    h = rcl(model.rcls[3], rcl(model.rcls[2], h))
    assert model.forward_features(x).shape == (2, 8, 3, 3)
    expected = model.classifier(h.amax(dim=(2, 3)))
    torch.testing.assert_close(model(x), expected)
    # channels-last and (B, H, W) inputs give the same logits
    torch.testing.assert_close(model(x.permute(0, 2, 3, 1).contiguous()), expected)
    torch.testing.assert_close(model(x[:, 0]), expected)


def test_rcnn_surface_and_round_trip(tmp_path):
    model = create_model("rcnn-32", width=8, steps=1, norm="batch", num_classes=5)
    assert model.forward_head(model.forward_features(torch.rand(2, 1, 28, 28)),
                              pre_logits=True).shape == (2, 8)
    model.reset_classifier(3)
    assert model.num_classes == 3 and model(torch.rand(2, 1, 28, 28)).shape == (2, 3)
    model.eval()
    x = torch.rand(2, 1, 20, 20)
    save_model(model, tmp_path / "m")
    loaded = load_model(tmp_path / "m")
    assert loaded.get_config() == model.get_config()
    torch.testing.assert_close(loaded(x), model(x))


def test_rcnn_input_size_limits():
    assert rcnn_feature_size(28) == 6 and rcnn_feature_size(7) == 1 and rcnn_feature_size(6) < 1
    model = RCNN(width=8, steps=1)
    assert model(torch.rand(1, 1, 7, 7)).shape == (1, 10)
    with pytest.raises(ShapeError, match="at least 7"):
        model(torch.rand(1, 1, 6, 28))
    with pytest.raises(ShapeError, match=r"\(B, 1, H, W\)"):
        model(torch.rand(1, 3, 28, 28))
    with pytest.raises(InputTypeError):
        model(torch.zeros(1, 1, 28, 28, dtype=torch.uint8))


@pytest.mark.parametrize("kwargs, match", [
    ({"kernel_size": 2}, "odd"), ({"first_kernel_size": 4}, "odd"), ({"steps": -1}, "steps"),
    ({"norm": "group"}, "norm"), ({"width": 0}, "width"), ({"dropout_rate": 1.0}, "dropout"),
])
def test_rcnn_bad_configuration(kwargs, match):
    with pytest.raises(ConfigError, match=match):
        RCNN(**kwargs)


@pytest.mark.parametrize("pool_size,size", [(3, 9), (2, 8)])
def test_rcnn_learns_bars(pool_size, size):
    rng = np.random.default_rng(0)
    x = np.zeros((128, 1, size, size), dtype=np.float32)
    y = rng.integers(0, 2, 128)
    for n, label in enumerate(y):
        pos = rng.integers(1, size - 1)
        if label == 0:
            x[n, 0, pos, 1:size - 1] = 1.0
        else:
            x[n, 0, 1:size - 1, pos] = 1.0
    x += rng.normal(0, 0.1, x.shape).astype(np.float32)
    model = RCNN(width=8, steps=1, norm="batch", dropout_rate=0.0, pool_size=pool_size)
    trainer = Trainer(model, loss=F.cross_entropy, lr=1e-2, metrics=["accuracy"], seed=0,
                      verbose=0)
    history = trainer.fit((x, y), epochs=10, batch_size=32)
    assert history.history["loss"][-1] < 0.5 * history.history["loss"][0]
    assert trainer.evaluate((x, y))["accuracy"] > 0.9


# -- TextRCNN -------------------------------------------------------------------------------------
def _np_text_rcnn(model: TextRCNN, ids: list[int]) -> np.ndarray:
    """Lai et al.'s equations with a tanh RNN, for one unpadded text."""
    p = {k: v.detach().double().numpy() for k, v in model.named_parameters()}
    e = p["embedding.weight"][ids]  # (n, E)

    def run(seq, suffix):
        h = np.zeros(model.context_size)
        out = []
        for e_t in seq:
            h = np.tanh(p[f"rnn.weight_ih_l0{suffix}"] @ e_t + p[f"rnn.bias_ih_l0{suffix}"]
                        + p[f"rnn.weight_hh_l0{suffix}"] @ h + p[f"rnn.bias_hh_l0{suffix}"])
            out.append(h)
        return out

    forward = run(e, "")
    backward = run(e[::-1], "_reverse")[::-1]
    n = len(ids)
    rows = []
    for i in range(n):
        left = p["left_start"] if i == 0 else forward[i - 1]
        right = p["right_end"] if i == n - 1 else backward[i + 1]
        x_i = np.concatenate([left, e[i], right])
        rows.append(np.tanh(p["projection.weight"] @ x_i + p["projection.bias"]))
    pooled = np.max(rows, axis=0)
    return p["classifier.weight"] @ pooled + p["classifier.bias"]


def test_text_rcnn_matches_equations_and_ignores_padding():
    torch.manual_seed(0)
    model = TextRCNN(vocab_size=30, num_classes=3, embedding_dim=5, context_size=4, hidden_size=6,
                     rnn_type="rnn", dropout_rate=0.0).double().eval()
    with torch.no_grad():
        model.left_start.normal_()
        model.right_end.normal_()
    texts = [[3, 7, 9, 2, 11], [5, 4], [8]]
    ids = torch.zeros(3, 5, dtype=torch.long)
    for row, text in enumerate(texts):
        ids[row, : len(text)] = torch.tensor(text)
    logits = model(ids).detach().numpy()
    for row, text in enumerate(texts):
        np.testing.assert_allclose(logits[row], _np_text_rcnn(model, text), rtol=1e-9, atol=1e-12)
        alone = model(torch.tensor([text])).detach().numpy()[0]
        np.testing.assert_allclose(alone, logits[row], rtol=1e-9, atol=1e-12)


@pytest.mark.parametrize("rnn_type", ["gru", "lstm"])
def test_text_rcnn_gradients_reach_every_parameter(rnn_type):
    model = TextRCNN(vocab_size=20, num_classes=2, embedding_dim=4, context_size=3,
                     hidden_size=5, rnn_type=rnn_type)
    ids = torch.tensor([[1, 2, 3, 0], [4, 5, 6, 7]])
    model(ids).square().sum().backward()
    for name, param in model.named_parameters():
        assert param.grad is not None and param.grad.abs().sum() > 0, name


def test_text_rcnn_bad_input():
    model = TextRCNN(vocab_size=20, num_classes=2)
    with pytest.raises(DataError, match="empty"):
        model(torch.tensor([[1, 2], [0, 0]]))
    with pytest.raises(DataError, match="right padding"):
        model(torch.tensor([[0, 2, 3]]))
    with pytest.raises(DataError, match=r"\[0, 20\)"):
        model(torch.tensor([[1, 25]]))
    with pytest.raises(InputTypeError):
        model(torch.rand(2, 3))
    with pytest.raises(ShapeError):
        model(torch.tensor([1, 2, 3]))
    with pytest.raises(ConfigError, match="rnn_type"):
        TextRCNN(rnn_type="transformer")
    with pytest.raises(ConfigError, match="pad_id"):
        TextRCNN(vocab_size=10, pad_id=10)


def test_text_rcnn_surface_and_round_trip(tmp_path):
    model = create_model("text-rcnn", vocab_size=50, num_classes=4, hidden_size=16).eval()
    ids = torch.tensor([[3, 4, 5, 0, 0], [6, 7, 8, 9, 10]])
    assert model.forward_features(ids).shape == (2, 16)
    save_model(model, tmp_path / "t")
    loaded = load_model(tmp_path / "t")
    torch.testing.assert_close(loaded(ids), model(ids))
    model.reset_classifier(7)
    assert model(ids).shape == (2, 7) and model.get_config()["num_classes"] == 7


def test_text_rcnn_learns_word_order():
    # Class depends on which of two words comes first: a bag of words cannot tell, context can.
    rng = np.random.default_rng(0)
    rows, labels = [], []
    for _ in range(256):
        filler = list(rng.integers(3, 12, size=rng.integers(2, 6)))
        label = int(rng.integers(0, 2))
        pair = [1, 2] if label == 0 else [2, 1]
        at = int(rng.integers(0, len(filler) + 1))
        text = filler[:at] + pair + filler[at:]
        rows.append(text)
        labels.append(label)
    width = max(len(r) for r in rows)
    ids = np.zeros((len(rows), width), dtype=np.int64)
    for n, row in enumerate(rows):
        ids[n, : len(row)] = np.asarray(row) + 1  # id 0 is padding
    y = np.asarray(labels)
    model = TextRCNN(vocab_size=14, num_classes=2, embedding_dim=8, context_size=8,
                     hidden_size=16, dropout_rate=0.0)
    trainer = Trainer(model, loss=F.cross_entropy, lr=1e-2, metrics=["accuracy"], seed=0,
                      verbose=0)
    trainer.fit((ids, y), epochs=12, batch_size=32)
    assert trainer.evaluate((ids, y))["accuracy"] > 0.95
