"""Batch-wise augmentation modules (NCHW) against exact expectations."""

from __future__ import annotations

import pytest
import torch

from bigmodel.errors import ConfigError, ShapeError
from bigmodel.nn import augment as A


def images(n=4, c=2, h=6, w=8, seed=0):
    return torch.randn(n, c, h, w, generator=torch.Generator().manual_seed(seed))


ALL = [
    lambda seed=None: A.RandomFlip(seed=seed),
    lambda seed=None: A.RandomTranslation(0.2, 0.3, seed=seed),
    lambda seed=None: A.RandomRotation(0.2, seed=seed),
    lambda seed=None: A.RandomZoom(0.3, seed=seed),
    lambda seed=None: A.RandomErasing(probability=1.0, seed=seed),
]


@pytest.mark.parametrize("make", ALL)
def test_identity_in_eval_and_changes_in_training(make):
    x = images(n=16)
    module = make(seed=1)
    module.eval()
    assert module(x) is x
    module.train()
    out = module(x)
    assert out.shape == x.shape and out.dtype == x.dtype
    assert not torch.allclose(out, x)


@pytest.mark.parametrize("make", ALL)
def test_seeded_reproducibility(make):
    x = images(n=8)
    first, second = make(seed=3), make(seed=3)
    a1, a2 = first.transform(x), first.transform(x)
    torch.testing.assert_close(second.transform(x), a1)  # same seed, same sequence
    torch.testing.assert_close(second.transform(x), a2)
    assert not torch.allclose(a1, a2)  # the generator advances between batches


def test_flip_exactly_reverses_axes():
    x = images(n=64)
    out = A.RandomFlip("horizontal", seed=0).transform(x)
    same = (out == x).flatten(1).all(1)
    flipped = (out == x.flip(3)).flatten(1).all(1)
    assert bool((same | flipped).all()) and same.any() and flipped.any()
    out = A.RandomFlip("vertical", seed=0).transform(x)
    flipped = (out == x.flip(2)).flatten(1).all(1)
    assert bool(((out == x).flatten(1).all(1) | flipped).all()) and flipped.any()
    out = A.RandomFlip("horizontal_and_vertical", seed=0).transform(x)
    options = [x, x.flip(2), x.flip(3), x.flip(2).flip(3)]
    matches = torch.stack([(out == o).flatten(1).all(1) for o in options])
    assert bool(matches.any(0).all())
    assert bool(matches.any(1).all())  # all four outcomes occur in 64 draws
    ints = torch.arange(12, dtype=torch.uint8).reshape(1, 1, 3, 4)
    assert A.RandomFlip("horizontal", seed=1).transform(ints).dtype == torch.uint8


def test_rotation_quarter_turn_is_counter_clockwise():
    x = images(n=3, h=7, w=7)
    out = A.RandomRotation((0.25, 0.25)).transform(x)  # exactly +90 degrees
    torch.testing.assert_close(out, torch.rot90(x, 1, dims=(2, 3)), atol=1e-5, rtol=0)
    out = A.RandomRotation((-0.25, -0.25), interpolation="nearest").transform(x)
    torch.testing.assert_close(out, torch.rot90(x, -1, dims=(2, 3)), atol=1e-5, rtol=0)
    half = A.RandomRotation((0.5, 0.5)).transform(images(n=2, h=6, w=8))
    torch.testing.assert_close(half, images(n=2, h=6, w=8).flip(2).flip(3), atol=1e-5, rtol=0)


def test_translation_by_whole_pixels_and_fill_modes():
    x = images(n=2, h=4, w=8)
    right2 = dict(height_factor=(0.0, 0.0), width_factor=(0.25, 0.25))  # 2 of 8 pixels right
    out = A.RandomTranslation(**right2, fill_mode="constant", fill_value=5.0).transform(x)
    torch.testing.assert_close(out[..., 2:], x[..., :-2])
    assert bool((out[..., :2] == 5.0).all())
    out = A.RandomTranslation(**right2, fill_mode="reflect").transform(x)  # d c b a | a b c d
    torch.testing.assert_close(out[..., :2], x[..., [1, 0]])
    out = A.RandomTranslation(**right2, fill_mode="nearest").transform(x)
    torch.testing.assert_close(out[..., :2], x[..., [0, 0]])
    out = A.RandomTranslation(**right2, fill_mode="wrap").transform(x)
    torch.testing.assert_close(out, torch.roll(x, 2, dims=3))
    down = A.RandomTranslation((-0.5, -0.5), 0.0, fill_mode="constant").transform(x)  # 2 up
    torch.testing.assert_close(down[:, :, :2], x[:, :, 2:])
    assert bool((down[:, :, 2:] == 0).all())


def test_wrap_blends_across_the_seam():
    x = images(n=1, h=2, w=4)
    out = A.RandomTranslation(0.0, (0.125, 0.125), fill_mode="wrap").transform(x)  # half pixel
    torch.testing.assert_close(out[..., 0], 0.5 * (x[..., 3] + x[..., 0]))
    torch.testing.assert_close(out[..., 2], 0.5 * (x[..., 1] + x[..., 2]))


def test_zoom():
    x = images(n=2, h=6, w=6)
    torch.testing.assert_close(A.RandomZoom((0.0, 0.0)).transform(x), x, atol=1e-6, rtol=0)
    ones = torch.ones(2, 1, 6, 6)
    zoomed_out = A.RandomZoom((1.0, 1.0), fill_mode="constant").transform(ones)  # zoom x2 out
    assert bool((zoomed_out[..., 0, :] == 0).all())  # border filled
    torch.testing.assert_close(zoomed_out[..., 2:4, 2:4], ones[..., 2:4, 2:4])
    zoomed_in = A.RandomZoom((-0.5, -0.5), fill_mode="constant").transform(ones)
    torch.testing.assert_close(zoomed_in, ones)  # reads only the central part
    stretch = A.RandomZoom((0.0, 0.0), (1.0, 1.0), fill_mode="constant").transform(ones)
    assert bool((stretch[..., :, 0] == 0).all())  # width zoomed out: left column filled
    torch.testing.assert_close(stretch[..., :, 2:4], ones[..., :, 2:4])  # height unchanged


def test_erasing_rectangles():
    x = torch.ones(32, 3, 16, 12)
    out = A.RandomErasing(probability=1.0, scale=(0.1, 0.2), value=0.0, seed=0).transform(x)
    erased = out == 0
    assert bool((erased == erased[:, :1]).all())  # same rectangle in every channel
    mask = erased[:, 0]
    rows, cols = mask.any(2), mask.any(1)
    assert bool((mask == (rows[:, :, None] & cols[:, None, :])).all())  # a rectangle
    fractions = mask.flatten(1).float().mean(1)
    assert bool((fractions > 0.05).all()) and bool((fractions < 0.3).all())
    assert len({int(m.sum()) for m in mask}) > 3  # sizes differ between samples
    half = A.RandomErasing(probability=0.5, seed=1).transform(x)
    changed = (half != x).flatten(1).any(1).float().mean().item()
    assert 0.2 < changed < 0.8
    torch.testing.assert_close(A.RandomErasing(probability=0.0).transform(x), x)
    colored = A.RandomErasing(1.0, value=(1.0, 2.0, 3.0), seed=0).transform(torch.zeros(4, 3, 8, 8))
    for channel, value in enumerate((1.0, 2.0, 3.0)):
        assert set(colored[:, channel].unique().tolist()) == {0.0, value}
    noisy = A.RandomErasing(1.0, value="random", seed=0).transform(x)
    assert (noisy != x).any() and noisy.std() > 0


def test_unbatched_images_and_errors():
    single = images(n=1)[0]
    assert A.RandomRotation(0.1, seed=0).transform(single).shape == single.shape
    with pytest.raises(ShapeError, match="RandomFlip"):
        A.RandomFlip().transform(torch.zeros(1, 1, 1, 4, 4))
    with pytest.raises(ConfigError, match="mode"):
        A.RandomFlip("diagonal")
    with pytest.raises(ConfigError, match="factor"):
        A.RandomRotation(1.5)
    with pytest.raises(ConfigError, match="height_factor"):
        A.RandomTranslation((0.1, 0.2, 0.3), 0.1)
    with pytest.raises(ConfigError, match="fill_mode"):
        A.RandomZoom(0.1, fill_mode="mirror")
    with pytest.raises(ConfigError, match="interpolation"):
        A.RandomZoom(0.1, interpolation="bicubic")
    with pytest.raises(ConfigError, match="scale"):
        A.RandomErasing(scale=(0.5, 0.1))
    with pytest.raises(ConfigError, match="probability"):
        A.RandomErasing(probability=2)
    with pytest.raises(ConfigError, match="seed"):
        A.RandomFlip(seed="abc")


def test_factor_convention_matches_keras():
    assert A.RandomRotation(0.2).factor_range == (-0.2, 0.2)
    assert A.RandomRotation(-0.2).factor_range == (-0.2, 0.2)
    assert A.RandomZoom((0.3, -0.1)).height_range == (-0.1, 0.3)
