"""keras.ops.image: warps, map_coordinates, blur, Sobel, SSIM, HSV, 3-D patches, crop / pad and
scale_and_translate against real Keras 3 (torch backend), SciPy / colorsys / NumPy references,
symbolic shapes and bad input."""

from __future__ import annotations

import colorsys
import os

import numpy as np
import pytest

from bigmodel import keras
from bigmodel.errors import ConfigError, InputTypeError, NotSupportedError, ShapeError
from bigmodel.keras import ops

RNG = np.random.default_rng(0)
IMG = RNG.uniform(size=(2, 9, 8, 3)).astype(np.float32)
IMG2 = np.clip(IMG + RNG.normal(0, 0.1, IMG.shape), 0, 1).astype(np.float32)
VOLUMES = RNG.uniform(size=(2, 5, 6, 7, 2)).astype(np.float32)
TRANSFORMS = np.array([[1.1, 0.2, -1.0, -0.1, 0.9, 0.5, 0, 0],
                       [0.8, -0.3, 2.0, 0.2, 1.2, -1.5, 0, 0]], np.float32)
START = np.array([[0, 0], [7, 0], [0, 8], [7, 8]], np.float32)
END = np.array([[1, 0.5], [6, 1], [0.5, 7], [7, 8]], np.float32)
COORDS = RNG.uniform(-2, 10, size=(2, 5, 4)).astype(np.float32)
UINT8 = (IMG * 255).astype(np.uint8)
COORDS_3D = RNG.uniform(-2, 10, size=(3, 6)).astype(np.float32)
MODES = ["constant", "nearest", "wrap", "mirror", "reflect"]


def _real():
    os.environ.setdefault("KERAS_BACKEND", "torch")
    real = pytest.importorskip("keras")
    if real.backend.backend() != "torch":  # pragma: no cover - another backend chosen first
        pytest.skip("real Keras runs on another backend here")
    return real


# (name, call on an ops.image module): run on both and compare values, shapes and dtypes
CASES = [
    *[(f"affine_{interp}_{mode}",
       lambda m, i=interp, f=mode: m.affine_transform(IMG, TRANSFORMS, i, f, 0.5))
      for interp in ("nearest", "bilinear") for mode in MODES],
    ("affine_one_image", lambda m: m.affine_transform(IMG[0], TRANSFORMS[0])),
    ("affine_uint8", lambda m: m.affine_transform(UINT8, TRANSFORMS, "bilinear", "reflect")),
    ("patches_3d_uint8", lambda m: m.extract_patches_3d(UINT8[..., None], (2, 2, 1))),
    ("affine_channels_first", lambda m: m.affine_transform(
        IMG.transpose(0, 3, 1, 2), TRANSFORMS, data_format="channels_first")),
    ("perspective", lambda m: m.perspective_transform(IMG, START, END)),
    ("perspective_nearest", lambda m: m.perspective_transform(IMG, START, END, "nearest", 0.3)),
    *[(f"map_coordinates_{mode}_{order}",
       lambda m, f=mode, o=order: m.map_coordinates(IMG[0, :, :, 0], COORDS, o, f, 0.25))
      for mode in MODES for order in (0, 1)],
    ("map_coordinates_3d", lambda m: m.map_coordinates(
        IMG[0], COORDS_3D, 1, "reflect")),
    ("gaussian_blur", lambda m: m.gaussian_blur(IMG, (3, 3), (1.0, 2.0),
                                                data_format="channels_last")),
    ("gaussian_blur_5", lambda m: m.gaussian_blur(IMG, (5, 5), (0.7, 1.3),
                                                  data_format="channels_last")),
    ("sobel_edges", lambda m: m.sobel_edges(IMG)),
    ("sobel_edges_channels_first", lambda m: m.sobel_edges(IMG.transpose(0, 3, 1, 2),
                                                           data_format="channels_first")),
    ("ssim", lambda m: m.ssim(IMG, IMG2, filter_size=5)),
    ("ssim_one_image", lambda m: m.ssim(IMG[0], IMG2[0], filter_size=3, max_val=2.0)),
    ("rgb_to_hsv", lambda m: m.rgb_to_hsv(IMG)),
    ("hsv_to_rgb", lambda m: m.hsv_to_rgb(IMG)),
    ("patches_3d", lambda m: m.extract_patches_3d(VOLUMES, (2, 3, 2))),
    ("patches_3d_same", lambda m: m.extract_patches_3d(VOLUMES, 2, strides=(1, 2, 3),
                                                       padding="same")),
    ("patches_3d_dilated", lambda m: m.extract_patches_3d(VOLUMES[0], (2, 2, 2), strides=1,
                                                          dilation_rate=(1, 2, 2))),
    ("pad_images", lambda m: m.pad_images(IMG, 1, 2, None, 0, 12, None)),
    ("pad_images_target", lambda m: m.pad_images(IMG[0], None, None, 2, 3, 13, 14)),
    ("crop_images", lambda m: m.crop_images(IMG, 1, 2, None, 1, 5, None)),
    ("crop_images_target", lambda m: m.crop_images(IMG[0], None, 1, 2, None, 4, 5)),
    *[(f"resize_{interp}_{aspect}",
       lambda m, i=interp, a=aspect: m.resize(IMG[:, :, :6], (4, 5), i, crop_to_aspect_ratio=a == "crop",
                                              pad_to_aspect_ratio=a == "pad", fill_value=0.5))
      for interp in ("bilinear", "nearest", "bicubic") for aspect in ("crop", "pad")],
    *[(f"scale_and_translate_{method}_{antialias}",
       lambda m, k=method, a=antialias: m.scale_and_translate(
           IMG, (2, 5, 12, 3), np.array([0.6, 1.5], np.float32),
           np.array([0.3, -1.0], np.float32), (1, 2), k, a))
      for method in ("linear", "cubic", "lanczos3", "lanczos5") for antialias in (True, False)],
]


@pytest.mark.parametrize("name,call", CASES, ids=[c[0] for c in CASES])
def test_matches_real_keras(name, call):
    theirs = call(_real().ops.image)
    ours = call(ops.image)
    theirs = theirs.detach().cpu().numpy()
    assert ours.shape == theirs.shape and ours.numpy().dtype == theirs.dtype
    np.testing.assert_allclose(ours.numpy(), theirs, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("name", ["affine_transform", "crop_images", "pad_images",
                                  "elastic_transform", "extract_patches_3d", "gaussian_blur",
                                  "hsv_to_rgb", "rgb_to_hsv", "map_coordinates",
                                  "perspective_transform", "scale_and_translate", "sobel_edges",
                                  "ssim"])
def test_signature_matches_keras(name):
    import inspect

    def params(fn):
        return [(p.name, p.default, p.kind) for p in inspect.signature(fn).parameters.values()]

    assert params(getattr(ops.image, name)) == params(getattr(_real().ops.image, name))


def test_map_coordinates_matches_scipy():
    ndimage = pytest.importorskip("scipy.ndimage")
    image = IMG[0, :, :, 0].astype(np.float64)
    for ours_mode, scipy_mode in [("nearest", "nearest"), ("reflect", "reflect"),
                                  ("mirror", "mirror"), ("wrap", "grid-wrap"),
                                  ("constant", "grid-constant")]:
        expected = ndimage.map_coordinates(image, COORDS.astype(np.float64), order=1,
                                           mode=scipy_mode, cval=0.25)
        got = ops.image.map_coordinates(image, COORDS.astype(np.float64), 1, ours_mode, 0.25)
        np.testing.assert_allclose(got.numpy(), expected, atol=1e-10, err_msg=ours_mode)


def test_colour_crop_pad_ssim_against_hand_references():
    pixels = IMG.reshape(-1, 3)
    hsv = ops.image.rgb_to_hsv(IMG).numpy().reshape(-1, 3)
    np.testing.assert_allclose(hsv, [colorsys.rgb_to_hsv(*p) for p in pixels], atol=1e-5)
    np.testing.assert_allclose(ops.image.hsv_to_rgb(ops.image.rgb_to_hsv(IMG)).numpy(), IMG,
                               atol=1e-5)
    np.testing.assert_array_equal(ops.image.crop_images(IMG, 1, 2, target_height=5,
                                                        right_cropping=1).numpy(),
                                  IMG[:, 1:6, 2:7])
    padded = ops.image.pad_images(IMG, 1, 2, bottom_padding=0, target_width=12).numpy()
    assert padded.shape == (2, 10, 12, 3)
    np.testing.assert_array_equal(padded[:, 1:, 2:10], IMG)
    assert padded[:, 0].sum() == 0 and padded[:, :, :2].sum() == 0 and padded[:, :, 10:].sum() == 0
    np.testing.assert_allclose(ops.image.ssim(IMG, IMG, filter_size=3).numpy(), [1.0, 1.0], atol=1e-5)
    assert (ops.image.ssim(IMG, IMG2, filter_size=3).numpy() < 0.99).all()
    # integer images: sampled in float, rounded back (Keras's torch backend casts the corner
    # points to the image dtype instead, so its uint8 result is not a reference)
    warped = ops.image.perspective_transform(UINT8, START, END).numpy()
    assert warped.dtype == np.uint8
    np.testing.assert_allclose(warped, ops.image.perspective_transform(
        UINT8.astype(np.float32), START, END).numpy(), atol=0.5 + 1e-4)
    identity = np.array([1, 0, 0, 0, 1, 0, 0, 0], np.float32)
    np.testing.assert_array_equal(ops.image.affine_transform(IMG, identity).numpy(), IMG)
    shift = np.array([1, 0, 2, 0, 1, 0, 0, 0], np.float32)  # output x reads input x + 2
    np.testing.assert_array_equal(ops.image.affine_transform(IMG, shift).numpy()[:, :, :6],
                                  IMG[:, :, 2:])


def test_elastic_transform_is_seeded_and_alpha_zero_is_identity():
    still = ops.image.elastic_transform(IMG, alpha=0.0, sigma=1.0, seed=1)
    np.testing.assert_allclose(still.numpy(), IMG, atol=1e-6)
    first = ops.image.elastic_transform(IMG, alpha=2.0, sigma=1.0, seed=3)
    again = ops.image.elastic_transform(IMG, alpha=2.0, sigma=1.0, seed=3)
    other = ops.image.elastic_transform(IMG, alpha=2.0, sigma=1.0, seed=4)
    np.testing.assert_array_equal(first.numpy(), again.numpy())
    assert first.shape == IMG.shape and not np.allclose(first.numpy(), other.numpy())


def test_symbolic_inputs_get_keras_output_shapes():
    images = keras.Input((9, 8, 3))
    assert tuple(ops.image.affine_transform(images, TRANSFORMS[0]).shape) == (None, 9, 8, 3)
    assert tuple(ops.image.perspective_transform(images, START, END).shape) == (None, 9, 8, 3)
    assert tuple(ops.image.gaussian_blur(images).shape) == (None, 9, 8, 3)
    assert tuple(ops.image.sobel_edges(images).shape) == (None, 9, 8, 3, 2)
    assert tuple(ops.image.rgb_to_hsv(images).shape) == (None, 9, 8, 3)
    assert tuple(ops.image.crop_images(images, 1, 1, 1, 1).shape) == (None, 7, 6, 3)
    assert tuple(ops.image.pad_images(images, 1, 1, 1, 1).shape) == (None, 11, 10, 3)
    assert tuple(ops.image.ssim(images, images, filter_size=3).shape) == (None,)
    volumes = keras.Input((5, 6, 7, 2))
    assert tuple(ops.image.extract_patches_3d(volumes, 2).shape) == (None, 2, 3, 3, 16)
    hsv = ops.image.hsv_to_rgb(ops.image.rgb_to_hsv(images))
    model = keras.Model(images, ops.image.crop_images(hsv, 1, 1, 1, 1))
    np.testing.assert_allclose(model.predict(IMG, verbose=0), IMG[:, 1:8, 1:7], atol=1e-5)


def test_bad_inputs_raise_errors_naming_the_op_and_argument():
    with pytest.raises(ConfigError, match=r"affine_transform: interpolation must be one of"):
        ops.image.affine_transform(IMG, TRANSFORMS, interpolation="cubic")
    with pytest.raises(ConfigError, match=r"affine_transform: fill_mode must be one of"):
        ops.image.affine_transform(IMG, TRANSFORMS, fill_mode="edge")
    with pytest.raises(ShapeError, match=r"affine_transform: transform must be \(8,\)"):
        ops.image.affine_transform(IMG, np.ones((2, 6), np.float32))
    with pytest.raises(ShapeError, match="affine_transform: images must be 3-D"):
        ops.image.affine_transform(IMG[0, 0], TRANSFORMS[0])
    with pytest.raises(InputTypeError, match="gaussian_blur: images must be a float tensor"):
        ops.image.gaussian_blur(np.ones((4, 4, 3), np.uint8))
    with pytest.raises(ConfigError, match="gaussian_blur: kernel_size must be positive odd"):
        ops.image.gaussian_blur(IMG, kernel_size=(2, 2))
    with pytest.raises(ShapeError, match=r"perspective_transform: start_points must be \(4, 2\)"):
        ops.image.perspective_transform(IMG, START[:3], END[:3])
    with pytest.raises(NotSupportedError, match="map_coordinates: order must be 0 or 1"):
        ops.image.map_coordinates(IMG[0, :, :, 0], COORDS, 3)
    with pytest.raises(ShapeError, match="map_coordinates: coordinates must hold one array"):
        ops.image.map_coordinates(IMG[0], COORDS, 1)
    with pytest.raises(ConfigError, match="pad_images: give exactly two of top_padding"):
        ops.image.pad_images(IMG, 1, 1, 1, None, 12, None)
    with pytest.raises(ConfigError, match="pad_images: top_padding comes out -2"):
        ops.image.pad_images(IMG, None, 0, 1, 0, 8, None)
    with pytest.raises(ConfigError, match="crop_images: cropping 5 \\+ 5 is more than"):
        ops.image.crop_images(IMG, 5, 0, 5, 0)
    with pytest.raises(ShapeError, match="ssim: image1 and image2 differ in shape"):
        ops.image.ssim(IMG, IMG[:, :8])
    with pytest.raises(ShapeError, match="rgb_to_hsv: images need 3 channels"):
        ops.image.rgb_to_hsv(IMG[..., :2])
    with pytest.raises(ConfigError, match="extract_patches_3d: padding must be"):
        ops.image.extract_patches_3d(VOLUMES, 2, padding="full")
    with pytest.raises(ConfigError, match="scale_and_translate: method must be one of"):
        ops.image.scale_and_translate(IMG, (2, 5, 12, 3), [1, 1], [0, 0], (1, 2), "area")
    with pytest.raises(ConfigError, match="resize: give crop_to_aspect_ratio or pad_to_aspect"):
        ops.image.resize(IMG, (4, 4), crop_to_aspect_ratio=True, pad_to_aspect_ratio=True)
    with pytest.raises(NotSupportedError, match="interpolation='lanczos3'"):
        ops.image.resize(IMG, (4, 4), interpolation="lanczos3")
    with pytest.raises(ConfigError, match="sigma"):
        ops.image.gaussian_blur(IMG, sigma=(1.0, 2.0, 3.0))
