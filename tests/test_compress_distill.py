"""Distillation: the loss equals Hinton's formula (NumPy), its gradient has the closed form,
class mismatches fail clearly, feature matching, and a student that learns from a teacher."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from bigmodel.compress import Distiller, attention_map, distillation_loss
from bigmodel.engine.trainer import Trainer
from bigmodel.errors import ConfigError, ShapeError


def np_softmax(z: np.ndarray) -> np.ndarray:
    z = z - z.max(axis=1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=1, keepdims=True)


def reference_loss(s: np.ndarray, t: np.ndarray, y: np.ndarray, temperature: float,
                   alpha: float) -> float:
    p_t, p_s = np_softmax(t / temperature), np_softmax(s / temperature)
    kl = np.sum(p_t * (np.log(p_t) - np.log(p_s)), axis=1).mean()
    ce = -np.log(np_softmax(s)[np.arange(len(y)), y]).mean()
    return alpha * temperature**2 * kl + (1 - alpha) * ce


@pytest.mark.parametrize("temperature,alpha", [(1.0, 0.5), (4.0, 0.9), (2.5, 0.0), (8.0, 1.0)])
def test_loss_equals_the_formula(temperature, alpha):
    rng = np.random.default_rng(0)
    s, t = rng.normal(size=(6, 5)) * 3, rng.normal(size=(6, 5)) * 3
    y = rng.integers(0, 5, 6)
    got = distillation_loss(torch.tensor(s, dtype=torch.float64), torch.tensor(t), torch.tensor(y),
                            temperature, alpha)
    assert got.item() == pytest.approx(reference_loss(s, t, y, temperature, alpha), rel=1e-5)


def test_soft_gradient_is_temperature_times_probability_difference():
    # d/dz [T^2 KL(p_t || softmax(z / T))] = T (softmax(z / T) - p_t), per sample (mean over B).
    torch.manual_seed(0)
    s = torch.randn(4, 3, requires_grad=True)
    t = torch.randn(4, 3)
    distillation_loss(s, t, None, temperature=3.0, alpha=1.0).backward()
    expected = 3.0 * (F.softmax(s.detach() / 3, 1) - F.softmax(t / 3, 1)) / 4
    torch.testing.assert_close(s.grad, expected, atol=1e-6, rtol=1e-5)


def test_mismatched_classes_and_bad_hyper_parameters_fail_clearly():
    with pytest.raises(ShapeError, match="same classes"):
        distillation_loss(torch.randn(2, 10), torch.randn(2, 5), torch.tensor([0, 1]))
    for kwargs in ({"temperature": 0}, {"temperature": -1.0}, {"alpha": 1.5}, {"alpha": -0.1}):
        with pytest.raises(ConfigError):
            distillation_loss(torch.randn(2, 3), torch.randn(2, 3), torch.tensor([0, 1]), **kwargs)

    class Classifier(nn.Linear):
        def __init__(self, classes):
            super().__init__(4, classes)
            self.num_classes = classes

    with pytest.raises(ConfigError, match="10 classes and the student 5"):
        Distiller(Classifier(5), Classifier(10))
    distiller = Distiller(nn.Linear(4, 5), nn.Linear(4, 7))  # no num_classes: caught at forward
    with pytest.raises(ShapeError, match="same classes"):
        distiller.train()(torch.randn(2, 4))
    with pytest.raises(ConfigError, match="feature_loss"):
        Distiller(nn.Linear(4, 5), nn.Linear(4, 5), feature_loss="cosine")
    with pytest.raises(ConfigError, match="no layer"):
        Distiller(nn.Linear(4, 5), nn.Linear(4, 5), features=[("missing", "")])


def test_attention_map_matches_numpy():
    x = torch.randn(2, 3, 4, 5)
    maps = (x.numpy() ** 2).mean(axis=1).reshape(2, -1)
    maps /= np.linalg.norm(maps, axis=1, keepdims=True)
    np.testing.assert_allclose(attention_map(x).numpy(), maps, rtol=1e-5, atol=1e-6)


def conv_net(width: int) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(1, width, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
                         nn.Conv2d(width, width, 3, padding=1), nn.ReLU(),
                         nn.AdaptiveAvgPool2d(2), nn.Flatten(), nn.Linear(4 * width, 4))


def squares(n: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """8x8 images: class k has a bright 3x3 square in quadrant k, plus noise."""
    gen = torch.Generator().manual_seed(seed)
    y = torch.randint(0, 4, (n,), generator=gen)
    x = torch.rand(n, 1, 8, 8, generator=gen) * 0.3
    for i, k in enumerate(y.tolist()):
        r, c = 4 * (k // 2), 4 * (k % 2)
        x[i, 0, r: r + 3, c: c + 3] += 1.0
    return x, y


def test_feature_matching_terms():
    torch.manual_seed(0)
    student, teacher = conv_net(4), conv_net(8)
    x, y = squares(8, 0)
    attention = Distiller(student, teacher, features=[("3", "3")], feature_loss="attention").train()
    out = attention(x)
    loss = attention.loss(out, y)
    plain = distillation_loss(out, teacher(x), y, attention.temperature, attention.alpha)
    s_map, t_map = attention_map(student[:4](x)), attention_map(teacher[:4](x))
    assert (loss - plain).item() == pytest.approx((s_map - t_map).pow(2).sum(1).mean().item(),
                                                  rel=1e-4)
    mse = Distiller(conv_net(4), conv_net(8), features=[("3", "3")], feature_loss="mse").train()
    with pytest.raises(ShapeError, match="attention"):
        mse.loss(mse(x), y)


def test_student_learns_from_teacher_and_teacher_stays_frozen():
    x, y = squares(160, 0)
    x_test, y_test = squares(128, 1)
    torch.manual_seed(0)
    teacher = conv_net(8)
    Trainer(teacher, loss="cross_entropy", optimizer="adam", lr=1e-2, verbose=0, seed=0).fit(
        (x, y), epochs=4, batch_size=32)
    teacher_acc = (teacher(x_test).argmax(1) == y_test).float().mean().item()
    frozen = {k: v.clone() for k, v in teacher.state_dict().items()}
    torch.manual_seed(1)
    student = conv_net(4)
    distiller = Distiller(student, teacher, temperature=4.0, alpha=0.7)
    history = Trainer(distiller, loss=distiller.loss, optimizer="adam", lr=1e-2, verbose=0,
                      metrics=["accuracy"], seed=0).fit((x, y), epochs=8, batch_size=32)
    student_acc = (student(x_test).argmax(1) == y_test).float().mean().item()
    assert teacher_acc > 0.9
    assert student_acc > 0.85
    assert history.history["loss"][-1] < history.history["loss"][0]
    for key, value in teacher.state_dict().items():
        assert torch.equal(value, frozen[key]), key
    assert not teacher.training
