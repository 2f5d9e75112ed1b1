"""Segmentation (patches, SLIC superpixels, time-step / token groups) and baselines (blur against
SciPy, dataset mean, distributions, pad tokens), with their errors."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy import ndimage

from bigmodel.errors import ConfigError, InputTypeError, ShapeError
from bigmodel.explain.baselines import gaussian_blur, make_baseline
from bigmodel.explain.inputs import InputSpec
from bigmodel.explain.segmentation import feature_masks, groups, patches, slic


def test_patches_and_groups():
    expected = torch.tensor([[0, 0, 1, 1, 2, 2], [0, 0, 1, 1, 2, 2], [3, 3, 4, 4, 5, 5],
                             [3, 3, 4, 4, 5, 5], [6, 6, 7, 7, 8, 8]])
    assert torch.equal(patches(5, 6, 2), expected)
    assert groups(7, 3).tolist() == [0, 0, 0, 1, 1, 1, 2]
    with pytest.raises(ConfigError, match="patch_size must be at least 1"):
        patches(4, 4, 0)
    with pytest.raises(ConfigError, match="group_size must be a positive int"):
        groups(4, 0)


def two_tone_image(seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    image = rng.normal(0.2, 0.02, (3, 24, 24))
    image[:, :, 13:] += 0.6  # a vertical edge between columns 12 and 13
    return image


def test_slic_superpixels_are_connected_and_respect_edges():
    image = two_tone_image()
    labels = slic(torch.from_numpy(image), n_segments=16).numpy()
    count = labels.max() + 1
    assert sorted(np.unique(labels)) == list(range(count))
    assert 8 <= count <= 24
    for label in range(count):
        _, pieces = ndimage.label(labels == label)
        assert pieces == 1  # 4-connected
        columns = np.nonzero(labels == label)[1]
        assert columns.max() <= 12 or columns.min() >= 13  # no superpixel crosses the edge
    again = slic(torch.from_numpy(image.transpose(1, 2, 0)), n_segments=16, channels_last=True)
    assert np.array_equal(again.numpy(), labels)
    with pytest.raises(ConfigError, match="n_segments must be a positive int"):
        slic(image, n_segments=0)
    with pytest.raises(ShapeError, match="slic needs one image"):
        slic(np.zeros((1, 2, 3, 4)))


def test_feature_masks_broadcast_to_each_input_kind():
    images = torch.rand(2, 3, 12, 12)
    masks = feature_masks(images, InputSpec("image"), "patches", patch_size=4)
    assert masks.shape == (2, 1, 12, 12) and int(masks.max()) == 8
    nhwc = feature_masks(images.permute(0, 2, 3, 1), InputSpec("image", True), "slic",
                         n_segments=9)
    assert nhwc.shape == (2, 12, 12, 1)
    sequences = feature_masks(torch.rand(2, 6, 4), InputSpec("sequence"), group_size=2)
    assert sequences.shape == (2, 6, 1) and sequences[0, :, 0].tolist() == [0, 0, 1, 1, 2, 2]
    tokens = feature_masks(torch.ones(2, 5, dtype=torch.long), InputSpec("tokens"))
    assert tokens.tolist() == [[0, 1, 2, 3, 4]] * 2
    given = feature_masks(images, InputSpec("image"), torch.tensor([[5, 5, 9]]).repeat_interleave(
        4, dim=1).repeat(12, 1)[:, :12])
    assert given.shape == (2, 1, 12, 12) and sorted(given.unique().tolist()) == [0, 1]
    with pytest.raises(ShapeError, match="does not broadcast"):
        feature_masks(images, InputSpec("image"), torch.zeros(5, 5, dtype=torch.long))
    with pytest.raises(ConfigError, match="is for images"):
        feature_masks(torch.rand(2, 6, 4), InputSpec("sequence"), "slic")


def test_blurred_baseline_matches_scipy_gaussian_filter():
    x = torch.rand(2, 3, 20, 17, dtype=torch.float64)
    got = gaussian_blur(x, 1.7, axes=(2, 3))
    expected = ndimage.gaussian_filter(x.numpy(), sigma=(0, 0, 1.7, 1.7), mode="mirror",
                                       truncate=4.0)
    np.testing.assert_allclose(got.numpy(), expected, atol=1e-12)
    nhwc = make_baseline("blurred", x.permute(0, 2, 3, 1), InputSpec("image", True), sigma=1.7)
    np.testing.assert_allclose(nhwc.values.permute(0, 3, 1, 2).numpy(), expected, atol=1e-12)
    default = make_baseline("blurred", x, InputSpec("image"))  # sigma = a tenth of 20
    expected = ndimage.gaussian_filter(x.numpy(), sigma=(0, 0, 2.0, 2.0), mode="mirror")
    np.testing.assert_allclose(default.values.numpy(), expected, atol=1e-12)


def test_other_baselines():
    x = torch.rand(3, 1, 4, 4)
    data = torch.rand(10, 1, 4, 4)
    spec = InputSpec("image")
    mean = make_baseline("mean", x, spec, data=data)
    assert not mean.distribution
    torch.testing.assert_close(mean.values, data.mean(dim=0, keepdim=True).expand_as(x))
    drawn = make_baseline("data", x, spec, data=data, num_samples=4, seed=1)
    assert drawn.distribution and drawn.values.shape == (4, 1, 4, 4)
    assert all(any(torch.equal(row, d) for d in data) for row in drawn.values)
    uniform = make_baseline("uniform", x, spec, num_samples=6)
    assert uniform.values.shape == (6, 1, 4, 4)
    assert x.min() <= uniform.values.min() and uniform.values.max() <= x.max()
    assert torch.equal(make_baseline(0.5, x, spec).values, torch.full_like(x, 0.5))
    ids = torch.tensor([[4, 5, 6]])
    assert make_baseline(None, ids, InputSpec("tokens"), pad_id=1).values.tolist() == [[1, 1, 1]]
    assert torch.equal(make_baseline(None, x, spec).values, torch.zeros_like(x))


def test_baseline_errors():
    x = torch.rand(2, 1, 4, 4)
    spec = InputSpec("image")
    with pytest.raises(ConfigError, match="'blurred' does not apply to token ids"):
        make_baseline("blurred", torch.ones(1, 3, dtype=torch.long), InputSpec("tokens"))
    with pytest.raises(ConfigError, match="'pad' is for token ids"):
        make_baseline("pad", x, spec)
    with pytest.raises(ShapeError, match=r"must be examples shaped \(N, 1, 4, 4\)"):
        make_baseline("mean", x, spec, data=torch.rand(5, 4, 4))
    with pytest.raises(InputTypeError, match="baseline must be a name"):
        make_baseline(object(), x, spec)
    with pytest.raises(InputTypeError, match="must hold integer ids"):
        make_baseline(torch.zeros(1, 3), torch.ones(1, 3, dtype=torch.long), InputSpec("tokens"))
