"""nn/init.py is the one initializer math: its fans and variances are the textbook formulas
(NumPy), its samples follow the named distributions (SciPy), its orthogonal matrix is NumPy's QR of
the same draw, and the Keras initializers give the very same tensors for the same seed."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from scipy import stats

from bigmodel.errors import ConfigError
from bigmodel.keras import initializers
from bigmodel.nn.init import (
    TRUNCATED_STD,
    channels_last_fans,
    identity_,
    initialize,
    orthogonal_,
    scaled_variance,
    truncated_normal_,
    variance_scaling_,
)


def _gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


@pytest.mark.parametrize("shape", [(7, 3), (3, 3, 16, 32), (5, 2, 4, 6, 8), (9,), ()])
def test_fans_are_the_textbook_ones(shape):
    if len(shape) >= 2:  # receptive field = product of the spatial sizes (all but the last two)
        receptive = int(np.prod(shape[:-2])) if len(shape) > 2 else 1
        expected = (shape[-2] * receptive, shape[-1] * receptive)
    else:
        expected = (shape[0], shape[0]) if shape else (1, 1)
    assert channels_last_fans(shape) == expected
    assert initializers.compute_fans(shape) == expected  # the Keras name is this function
    assert channels_last_fans((4, 5, 6), [0, 1], [2]) == (20, 6)


def test_variances_of_glorot_he_lecun():
    fan_in, fan_out = 120, 30
    assert scaled_variance(fan_in, fan_out, 1.0, "fan_avg") == pytest.approx(2 / (fan_in + fan_out))
    assert scaled_variance(fan_in, fan_out, 2.0, "fan_in") == pytest.approx(2 / fan_in)
    assert scaled_variance(fan_in, fan_out, 1.0, "fan_in") == pytest.approx(1 / fan_in)
    assert scaled_variance(fan_in, fan_out, 3.0, "fan_out") == pytest.approx(3 / fan_out)
    assert scaled_variance(0, 0, 1.0, "fan_in") == 1.0  # n below 1 counts as 1


def test_truncated_std_constant_is_scipys():
    assert TRUNCATED_STD == pytest.approx(stats.truncnorm(-2, 2).std(), rel=1e-12)


def test_samples_follow_their_distributions():
    sample = truncated_normal_(torch.empty(20_000, dtype=torch.float64), 0.3, 0.07, _gen(0))
    assert stats.kstest(sample.numpy(), stats.truncnorm(-2, 2, loc=0.3, scale=0.07).cdf).pvalue > 1e-3
    he = variance_scaling_(torch.empty(20_000, dtype=torch.float64), 50, 10, 2.0, "fan_in",
                           "truncated_normal", _gen(1)).numpy()
    # the truncated normal keeps the variance 2 / fan_in
    assert he.std() == pytest.approx(math.sqrt(2 / 50), rel=0.03)
    limit = math.sqrt(6 / (50 + 10))
    glorot = variance_scaling_(torch.empty(20_000, dtype=torch.float64), 50, 10, 1.0, "fan_avg",
                               "uniform", _gen(2)).numpy()
    assert stats.kstest(glorot, stats.uniform(-limit, 2 * limit).cdf).pvalue > 1e-3
    plain = variance_scaling_(torch.empty(20_000, dtype=torch.float64), 50, 10, 1.0, "fan_out",
                              "untruncated_normal", _gen(3)).numpy()
    assert stats.kstest(plain, stats.norm(scale=math.sqrt(1 / 10)).cdf).pvalue > 1e-3


@pytest.mark.parametrize("shape", [(6, 4), (3, 8), (2, 3, 4, 5)])
def test_orthogonal_is_numpys_qr_of_the_same_draw(shape):
    rows, cols = int(np.prod(shape[:-1])), shape[-1]
    draw = torch.empty(max(rows, cols), min(rows, cols), dtype=torch.float64).normal_(
        generator=_gen(4)).numpy()
    q, r = np.linalg.qr(draw)
    q = q * np.sign(np.diag(r))
    expected = 1.5 * (q.T if rows < cols else q)
    got = orthogonal_(torch.empty(shape, dtype=torch.float64), 1.5, _gen(4))
    np.testing.assert_allclose(got.reshape(rows, cols).numpy(), expected, atol=1e-12)


def test_identity():
    np.testing.assert_array_equal(identity_(torch.empty(3, 5), 2.0).numpy(), 2.0 * np.eye(3, 5))


def test_keras_initializers_give_the_same_tensors_for_the_same_seed():
    shape = (3, 3, 4, 8)
    fan_in, fan_out = channels_last_fans(shape)
    pairs = [
        (initializers.GlorotUniform(seed=3), (1.0, "fan_avg", "uniform")),
        (initializers.GlorotNormal(seed=3), (1.0, "fan_avg", "truncated_normal")),
        (initializers.HeNormal(seed=3), (2.0, "fan_in", "truncated_normal")),
        (initializers.HeUniform(seed=3), (2.0, "fan_in", "uniform")),
        (initializers.LecunNormal(seed=3), (1.0, "fan_in", "truncated_normal")),
        (initializers.LecunUniform(seed=3), (1.0, "fan_in", "uniform")),
        (initializers.VarianceScaling(0.5, "fan_out", "untruncated_normal", seed=3),
         (0.5, "fan_out", "untruncated_normal")),
    ]
    for keras_init, (scale, mode, distribution) in pairs:
        ours = variance_scaling_(torch.empty(shape), fan_in, fan_out, scale, mode, distribution,
                                 _gen(3))
        assert torch.equal(keras_init(shape), ours), type(keras_init).__name__
    assert torch.equal(initializers.TruncatedNormal(0.1, 0.2, seed=5)(shape),
                       truncated_normal_(torch.empty(shape), 0.1, 0.2, _gen(5)))
    assert torch.equal(initializers.OrthogonalInitializer(2.0, seed=6)(shape),
                       orthogonal_(torch.empty(shape), 2.0, _gen(6)))
    assert torch.equal(initializers.Identity(3.0)((4, 2)), identity_(torch.empty(4, 2), 3.0))


def test_named_nn_initializers_equal_keras_under_the_global_seed():
    """A PyTorch ``(out, in)`` weight and a Keras ``(in, out)`` kernel draw the same numbers in
    the same order; the fans are given explicitly for the PyTorch layout."""
    for name in ("glorot_uniform", "glorot_normal", "he_normal", "lecun_uniform",
                 "truncated_normal", "orthogonal"):
        torch.manual_seed(11)
        keras_kernel = initializers.get(name)((12, 5))  # (in, out)
        torch.manual_seed(11)
        weight = initialize(torch.empty(5, 12), name, fan_in=12, fan_out=5)  # (out, in)
        if name == "orthogonal":  # a matrix of the other orientation: compare the math instead
            torch.testing.assert_close(weight @ weight.T, torch.eye(5), atol=1e-5, rtol=0)
            continue
        assert torch.equal(keras_kernel.flatten(), weight.flatten()), name


def test_bad_input():
    with pytest.raises(ConfigError, match="at least two-dimensional.*shape=\\(4,\\)"):
        orthogonal_(torch.empty(4))
    with pytest.raises(ConfigError, match="2D matrices.*rank 3"):
        identity_(torch.empty(2, 2, 2))
    with pytest.raises(ConfigError, match="mode.*fan_sum"):
        scaled_variance(3, 4, 1.0, "fan_sum")
    with pytest.raises(ConfigError, match="distribution.*'normal'"):
        variance_scaling_(torch.empty(3), 3, 3, distribution="normal")
