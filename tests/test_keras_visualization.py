"""keras.visualization: drawn pixels and plotted galleries against real Keras 3 (torch backend)."""

import os

import matplotlib
import numpy as np
import pytest

from bigmodel import keras
from bigmodel.errors import ConfigError, DataError, InputTypeError, NotSupportedError, ShapeError

matplotlib.use("Agg")
vis = keras.visualization
pytest.importorskip("cv2")  # the `keras` extra; Keras draws boxes with OpenCV too


def _real():
    os.environ.setdefault("KERAS_BACKEND", "torch")
    real = pytest.importorskip("keras")
    if real.backend.backend() != "torch":  # pragma: no cover - another backend chosen first
        pytest.skip("real Keras runs on another backend here")
    return real


def _images(batch=2, seed=0):
    return np.random.default_rng(seed).uniform(0, 1, (batch, 48, 64, 3)).astype("float32")


BOXES = {"boxes": np.array([[[5, 6, 40, 40], [10, 30, 60, 46]],
                            [[0, 0, 20, 20], [-1, -1, -1, -1]]], "float32"),
         "labels": np.array([[0, 1], [2, -1]]),
         "confidences": np.array([[0.9, 0.5], [0.3, 0.1]], "float32")}


def test_draw_bounding_boxes_equals_keras_and_hand_pixels():
    real = _real()
    images = _images()
    for fmt, kwargs in (("xyxy", {}), ("rel_yxyx", {}), ("xywh", dict(line_thickness=1)),
                        ("xyxy", dict(class_mapping={0: "cat", 1: "dog"}, color=(255, 0, 0)))):
        boxes = dict(BOXES)
        boxes["boxes"] = keras.utils.bounding_boxes.convert_format(BOXES["boxes"], "xyxy", fmt,
                                                                   height=48, width=64).numpy()
        ours = vis.draw_bounding_boxes(images, dict(boxes), fmt, **kwargs)
        ref = real.visualization.draw_bounding_boxes(images, dict(boxes), fmt, **kwargs)
        assert ours.dtype == np.uint8 and ours.shape == images.shape
        np.testing.assert_array_equal(ours, ref, err_msg=fmt)
    thin = vis.draw_bounding_boxes(images, dict(BOXES), "xyxy", line_thickness=1,
                                   color=(255, 0, 0))
    # a 1-pixel outline on x1, x2, y1, y2 of box (5, 6, 40, 40); the inside keeps the image
    assert (thin[0, 6, 5:41] == [255, 0, 0]).all() and (thin[0, 6:41, 40] == [255, 0, 0]).all()
    np.testing.assert_array_equal(thin[0, 20, 20], (images[0, 20, 20] * 255).astype("uint8"))
    # label -1 is not drawn: image 1 outside box 0 is untouched
    np.testing.assert_array_equal(thin[1, 30:, 30:], (images[1, 30:, 30:] * 255).astype("uint8"))


def test_draw_bounding_boxes_bad_input():
    images = _images()
    with pytest.raises(ShapeError, match=r"images.shape=\(48, 64, 3\)"):
        vis.draw_bounding_boxes(images[0], BOXES, "xyxy")
    with pytest.raises(InputTypeError, match="bounding_boxes"):
        vis.draw_bounding_boxes(images, BOXES["boxes"], "xyxy")
    with pytest.raises(DataError, match="'labels'"):
        vis.draw_bounding_boxes(images, {"boxes": BOXES["boxes"]}, "xyxy")
    with pytest.raises(ConfigError, match="'corners'"):
        vis.draw_bounding_boxes(images, BOXES, "corners")
    with pytest.raises(ShapeError, match="boxes.shape"):
        vis.draw_bounding_boxes(images, {"boxes": BOXES["boxes"][0], "labels": BOXES["labels"]},
                                "xyxy")


def test_draw_segmentation_masks_equals_keras_and_hand_values():
    real = _real()
    images = _images() * 255
    masks = np.random.default_rng(1).integers(-1, 4, (2, 48, 64, 1)).astype("int32")
    for kwargs in (dict(num_classes=4), dict(num_classes=5, blend=False),
                   dict(num_classes=4, ignore_index=0, alpha=0.5),
                   dict(num_classes=4, color_mapping={0: (1, 2, 3), 1: (200, 100, 50),
                                                      2: (0, 0, 0), 3: (9, 250, 9)})):
        ours = vis.draw_segmentation_masks(images, masks, **kwargs)
        ref = real.ops.convert_to_numpy(real.visualization.draw_segmentation_masks(
            images, masks, **kwargs))
        assert ours.dtype == ref.dtype
        np.testing.assert_array_equal(ours, ref)
    # hand value: alpha blend of class 1's colour over the pixel
    out = vis.draw_segmentation_masks(images, masks, num_classes=2,
                                      color_mapping={0: (0, 0, 0), 1: (200, 100, 50)}, alpha=0.25)
    i, j = np.argwhere(masks[0, ..., 0] == 1)[0]
    expected = (images[0, i, j] * 0.75 + np.array([200, 100, 50]) * 0.25).astype("uint8")
    np.testing.assert_array_equal(out[0, i, j], expected)
    i, j = np.argwhere(masks[0, ..., 0] == -1)[0]  # ignore_index: the image pixel
    np.testing.assert_array_equal(out[0, i, j], images[0, i, j].astype("uint8"))
    # (batch, height, width) masks are taken as (batch, height, width, 1)
    np.testing.assert_array_equal(
        vis.draw_segmentation_masks(images, masks[..., 0], num_classes=3),
        vis.draw_segmentation_masks(images, masks, num_classes=3))
    # values >= num_classes stay uncoloured (Keras on TensorFlow / JAX; its torch backend fails)
    out = vis.draw_segmentation_masks(images, masks, num_classes=None, blend=False)
    np.testing.assert_array_equal(out[masks[..., 0] == 3], images[masks[..., 0] == 3])


def test_draw_segmentation_masks_bad_input():
    images = _images()
    with pytest.raises(InputTypeError, match="float32"):
        vis.draw_segmentation_masks(images, np.zeros((2, 48, 64, 1), "float32"))
    with pytest.raises(ShapeError, match="segmentation_masks.shape"):
        vis.draw_segmentation_masks(images, np.zeros((2, 10, 10, 1), "int32"))
    with pytest.raises(ShapeError, match="images.shape"):
        vis.draw_segmentation_masks(images[0], np.zeros((48, 64, 1), "int32"))
    with pytest.raises(ConfigError, match=r"classes \[1\]"):
        vis.draw_segmentation_masks(images, np.ones((2, 48, 64, 1), "int32"), num_classes=2,
                                    color_mapping={0: (1, 1, 1)})


def _png(path):
    import matplotlib.image
    return matplotlib.image.imread(path)


def test_plot_galleries_equal_keras_png(tmp_path):
    real = _real()
    images = _images(4) * 255
    masks = np.random.default_rng(2).integers(0, 3, (4, 48, 64, 1)).astype("int32")
    boxes = {k: np.concatenate([v, v]) for k, v in BOXES.items()}
    cases = [
        ("plot_image_gallery", (images,), dict(y_true=np.array([0, 1, 2, 0]), label_map={
            0: "a", 1: "b", 2: "c"}, rows=2, cols=2)),
        ("plot_bounding_box_gallery", (images, "xyxy"), dict(
            y_true=boxes, y_pred=boxes, class_mapping={0: "cat"}, legend=True)),
        ("plot_segmentation_mask_gallery", (images[:2], 3), dict(y_true=masks[:2],
                                                                 y_pred=masks[1::-1])),
    ]
    for name, args, kwargs in cases:
        ours_path, ref_path = tmp_path / f"{name}.png", tmp_path / f"{name}_keras.png"
        getattr(vis, name)(*args, path=str(ours_path), **kwargs)
        getattr(real.visualization, name)(*args, path=str(ref_path), **kwargs)
        ours, ref = _png(ours_path), _png(ref_path)
        assert ours.shape == ref.shape, name
        np.testing.assert_allclose(ours, ref, atol=1 / 255, err_msg=name)
    # the bounding-box gallery: 2 x 2 images of 64 x 48 at 2 inches x 60 dpi, with the true-box
    # colour (0, 188, 212) drawn (the predicted boxes are drawn over them, in yellow)
    gallery = _png(tmp_path / "plot_bounding_box_gallery.png")
    assert 200 <= gallery.shape[1] <= 260 and gallery.shape[2] == 4
    rgb = (gallery[..., :3] * 255).round().astype(int)
    assert (np.abs(rgb - [255, 235, 59]).sum(-1) <= 3).sum() > 100


def test_plot_gallery_bad_input(tmp_path):
    images = _images()
    with pytest.raises(ConfigError, match="show=True"):
        vis.plot_image_gallery(images, path=str(tmp_path / "x.png"), show=True)
    with pytest.raises(ConfigError, match="label_map"):
        vis.plot_image_gallery(images, y_true=[0, 1], path=str(tmp_path / "x.png"))
    with pytest.raises(ShapeError, match="images.shape"):
        vis.plot_image_gallery(images[0], path=str(tmp_path / "x.png"))
    with pytest.raises(ConfigError, match="legend"):
        vis.plot_bounding_box_gallery(images, "xyxy", legend=True, legend_handles=[object()],
                                      path=str(tmp_path / "x.png"))
    assert not (tmp_path / "x.png").exists()


def test_channels_first_and_missing_opencv(monkeypatch):
    images = _images()
    last = vis.draw_bounding_boxes(images, dict(BOXES), "xyxy", color=(0, 255, 0))
    first = vis.draw_bounding_boxes(images.transpose(0, 3, 1, 2), dict(BOXES), "xyxy",
                                    color=(0, 255, 0), data_format="channels_first")
    np.testing.assert_array_equal(first, last.transpose(0, 3, 1, 2))
    masks = np.random.default_rng(3).integers(0, 3, (2, 48, 64, 1)).astype("int32")
    np.testing.assert_array_equal(
        vis.draw_segmentation_masks(images.transpose(0, 3, 1, 2), masks.transpose(0, 3, 1, 2),
                                    num_classes=3, data_format="channels_first"),
        vis.draw_segmentation_masks(images, masks, num_classes=3))
    with pytest.raises(ConfigError, match="data_format='nhwc'"):
        vis.draw_bounding_boxes(images, dict(BOXES), "xyxy", data_format="nhwc")
    monkeypatch.setitem(__import__("sys").modules, "cv2", None)  # as if OpenCV were missing
    with pytest.raises(NotSupportedError, match="opencv-python-headless"):
        vis.draw_bounding_boxes(images, dict(BOXES), "xyxy")


def test_image_gallery_layout_follows_keras(tmp_path, monkeypatch):
    import matplotlib.pyplot as plt

    shapes = []
    real_subplots = plt.subplots

    def spy(*args, **kwargs):
        shapes.append((kwargs["nrows"], kwargs["ncols"], kwargs["figsize"]))
        return real_subplots(*args, **kwargs)

    monkeypatch.setattr(plt, "subplots", spy)
    # Keras's defaults: rows = ceil(sqrt(n)), cols = n // rows (3 images -> 2 x 1: one left out)
    vis.plot_image_gallery(_images(3), value_range=(0, 1), path=str(tmp_path / "a.png"))
    vis.plot_image_gallery(_images(5), value_range=(0, 1), scale=1.5, rows=1,
                           path=str(tmp_path / "b.png"))
    assert shapes == [(2, 1, (2, 4)), (1, 5, (7.5, 1.5))]
    assert _png(tmp_path / "a.png").ndim == 3 and (tmp_path / "b.png").stat().st_size > 0
