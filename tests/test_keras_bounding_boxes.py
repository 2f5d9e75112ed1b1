"""keras.utils.bounding_boxes: every function against real Keras 3 (torch backend), hand values."""

import os

import numpy as np
import pytest
import torch

from bigmodel import keras
from bigmodel.errors import ConfigError, DataError, InputTypeError, NotSupportedError, ShapeError
from bigmodel.keras.utils import bounding_boxes as bb

FORMATS = bb.SUPPORTED_FORMATS


def _real():
    os.environ.setdefault("KERAS_BACKEND", "torch")
    real = pytest.importorskip("keras")
    if real.backend.backend() != "torch":  # pragma: no cover - another backend chosen first
        pytest.skip("real Keras runs on another backend here")
    return real


def _np(x):
    return x.detach().cpu().numpy() if isinstance(x, torch.Tensor) else np.asarray(x)


def _boxes(shape, seed=0):
    """Valid xyxy boxes inside a 40 x 60 (height x width) image."""
    rng = np.random.default_rng(seed)
    low = rng.uniform(0, 30, size=shape + (2,))
    size = rng.uniform(1, 25, size=shape + (2,))
    return np.concatenate([low, low + size], axis=-1).astype("float32")


def test_namespace_and_import_paths():
    from bigmodel.keras.utils.bounding_boxes import convert_format
    assert keras.utils.bounding_boxes.convert_format is convert_format
    with pytest.raises(AttributeError, match="keras.utils.bounding_boxes.nope"):
        keras.utils.bounding_boxes.nope  # noqa: B018


def test_convert_format_hand_values_from_keras_docstring():
    boxes = np.array([[10, 20, 30, 40], [50, 60, 70, 80]])
    np.testing.assert_allclose(_np(bb.convert_format(boxes, "xyxy", "xywh")),
                               [[10, 20, 20, 20], [50, 60, 20, 20]])
    rel = _np(bb.convert_format(boxes, "xyxy", "rel_xyxy", height=200, width=300))
    np.testing.assert_allclose(rel, [[10 / 300, 20 / 200, 30 / 300, 40 / 200],
                                     [50 / 300, 60 / 200, 70 / 300, 80 / 200]], rtol=1e-6)
    np.testing.assert_allclose(_np(bb.convert_format(boxes, "XYXY", "center_yxhw")),
                               [[30, 20, 20, 20], [70, 60, 20, 20]])
    assert bb.convert_format(boxes, "xyxy", "yxyx").dtype == torch.float32


@pytest.mark.parametrize("source", FORMATS)
def test_convert_format_every_pair_equals_keras_and_round_trips(source):
    real = _real()
    xyxy = _boxes((2, 3))
    boxes = _np(bb.convert_format(xyxy, "xyxy", source, height=40, width=60))
    for target in FORMATS:
        ours = _np(bb.convert_format(boxes, source, target, height=40, width=60))
        ref = _np(real.utils.bounding_boxes.convert_format(boxes, source, target, height=40,
                                                            width=60))
        np.testing.assert_allclose(ours, ref, rtol=1e-6, atol=1e-6, err_msg=f"{source}->{target}")
        back = _np(bb.convert_format(ours, target, "xyxy", height=40, width=60))
        np.testing.assert_allclose(back, xyxy, rtol=1e-5, atol=1e-4)


def test_convert_format_dict_and_dtype():
    data = {"boxes": np.array([[0, 0, 4, 2]]), "labels": np.array([3])}
    out = bb.convert_format(data, "xyxy", "center_xywh", dtype="float64")
    assert out["boxes"].dtype == torch.float64 and out["labels"] is data["labels"]
    np.testing.assert_allclose(_np(out["boxes"]), [[2, 1, 4, 2]])


def test_convert_format_bad_input():
    with pytest.raises(ShapeError, match=r"boxes.shape=\(2, 3\)"):
        bb.convert_format(np.zeros((2, 3)), "xyxy", "xywh")
    with pytest.raises(ConfigError, match="source='xxyy'"):
        bb.convert_format(np.zeros((2, 4)), "xxyy", "xywh")
    with pytest.raises(ConfigError, match="target='corners'"):
        bb.convert_format(np.zeros((2, 4)), "xyxy", "corners")
    with pytest.raises(ConfigError, match="height=None"):
        bb.convert_format(np.zeros((2, 4)), "xyxy", "rel_xyxy")
    with pytest.raises(DataError, match="'boxes'"):
        bb.convert_format({"labels": np.zeros(2)}, "xyxy", "xywh")


def test_clip_crop_pad_equal_keras():
    real = _real()
    rbb = real.utils.bounding_boxes
    boxes = np.array([[[-10, -20, 150, 160], [50, 40, 70, 80], [130, 10, 140, 20]]], "float32")
    labels = np.array([[0, 1, 2]])
    ours = bb.clip_to_image_size({"boxes": boxes, "labels": labels}, height=100, width=120)
    ref = rbb.clip_to_image_size({"boxes": boxes, "labels": labels}, height=100, width=120)
    np.testing.assert_allclose(_np(ours["boxes"]), _np(ref["boxes"]))
    np.testing.assert_array_equal(_np(ours["labels"]), _np(ref["labels"]))
    # the third box lies outside the image: no area left, label -1 (hand value)
    np.testing.assert_array_equal(_np(ours["labels"]), [[0, 1, -1]])
    rel = {"boxes": np.array([[-0.5, 0.2, 0.5, 1.5]], "float32"), "labels": np.array([4])}
    np.testing.assert_allclose(
        _np(bb.clip_to_image_size(rel, bounding_box_format="rel_xyxy")["boxes"]),
        _np(rbb.clip_to_image_size(rel, bounding_box_format="rel_xyxy")["boxes"]))
    xyxy = np.array([[10, 20, 50, 60], [70, 80, 100, 120]], "float32")
    np.testing.assert_allclose(_np(bb.crop(xyxy, top=10, left=20, height=40, width=30)),
                               [[0, 10, 30, 40], [30, 40, 30, 40]])
    np.testing.assert_allclose(_np(bb.crop(xyxy, 10, 20, 40, 30)),
                               _np(rbb.crop(xyxy, 10, 20, 40, 30)))
    np.testing.assert_allclose(_np(bb.pad(xyxy, top=5, left=7)),
                               _np(rbb.pad(xyxy, top=5, left=7)))
    np.testing.assert_allclose(_np(bb.pad(xyxy, 5, 7)), xyxy + [7, 5, 7, 5])


def test_clip_crop_pad_bad_input():
    with pytest.raises(ConfigError, match="height=None"):
        bb.clip_to_image_size({"boxes": np.zeros((1, 4))})
    with pytest.raises(NotSupportedError, match="'xywh'"):
        bb.clip_to_image_size({"boxes": np.zeros((1, 4))}, 4, 4, bounding_box_format="xywh")
    with pytest.raises(InputTypeError, match="dict"):
        bb.clip_to_image_size(np.zeros((1, 4)), 4, 4)
    with pytest.raises(DataError, match="'boxes'"):
        bb.clip_to_image_size({"labels": np.zeros(1)}, 4, 4)
    with pytest.raises(NotSupportedError, match="'yxyx'"):
        bb.crop(np.zeros((1, 4)), 0, 0, 4, 4, bounding_box_format="yxyx")
    with pytest.raises(NotSupportedError, match="'yxyx'"):
        bb.pad(np.zeros((1, 4)), 0, 0, bounding_box_format="yxyx")
    with pytest.raises(ShapeError, match="boxes.shape"):
        bb.pad(np.zeros((1, 5)), 0, 0)


def test_affine_transform_equals_keras_and_identity():
    real = _real()
    boxes = _boxes((2, 3), seed=1)
    args = dict(angle=np.array([15.0, -30.0], "float32"),
                translate_x=np.array([0.1, -0.05], "float32"),
                translate_y=np.array([0.0, 0.2], "float32"),
                scale=np.array([1.2, 0.8], "float32"),
                shear_x=np.array([5.0, 0.0], "float32"), shear_y=np.array([0.0, -10.0], "float32"),
                height=40, width=60)
    ours = _np(bb.affine_transform(boxes, **args))
    ref = _np(real.utils.bounding_boxes.affine_transform(
        boxes, **{k: (torch.tensor(v) if isinstance(v, np.ndarray) else v)
                  for k, v in args.items()}))
    np.testing.assert_allclose(ours, ref, rtol=1e-5, atol=1e-4)
    # no rotation/shift/shear and scale 1: the boxes come back unchanged (hand value)
    same = bb.affine_transform(boxes[0], 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 40, 60)
    np.testing.assert_allclose(_np(same), boxes[0], atol=1e-4)
    # translate_x=0.5 moves the boxes right by 0.5 * (width - 1) = 29.5 pixels (hand value)
    moved = bb.affine_transform(boxes[0], 0.0, 0.5, 0.0, 1.0, 0.0, 0.0, 40, 60)
    np.testing.assert_allclose(_np(moved), boxes[0] + [29.5, 0, 29.5, 0], atol=1e-4)
    # a 90 degree turn about the centre (29.5, 19.5) maps the point (x, y) to
    # (29.5 - (y - 19.5), 19.5 + (x - 29.5)) or its mirror; check against the corners by hand
    box = np.array([[30.0, 20.0, 40.0, 24.0]], "float32")
    turned = _np(bb.affine_transform(box, 90.0, 0.0, 0.0, 1.0, 0.0, 0.0, 40, 60))
    corners = np.array([[30, 20], [40, 20], [40, 24], [30, 24]], "float64")
    candidates = [np.stack([29.5 - s * (corners[:, 1] - 19.5), 19.5 + s * (corners[:, 0] - 29.5)],
                           -1) for s in (1, -1)]
    expected = [np.concatenate([c.min(0), c.max(0)]) for c in candidates]
    assert any(np.allclose(turned[0], e, atol=1e-3) for e in expected), (turned, expected)
    with pytest.raises(NotSupportedError, match="'xywh'"):
        bb.affine_transform(boxes, 0, 0, 0, 1, 0, 0, 4, 4, bounding_box_format="xywh")


@pytest.mark.parametrize("encoding", ["center_yxhw", "center_xywh"])
def test_encode_decode_equal_keras_and_invert(encoding):
    real = _real()
    rbb = real.utils.bounding_boxes
    anchors = _boxes((5,), seed=2)
    boxes = _boxes((2, 5), seed=3)
    kwargs = dict(anchor_format="xyxy", box_format="xywh", variance=[0.1, 0.1, 0.2, 0.2])
    boxes_xywh = _np(bb.convert_format(boxes, "xyxy", "xywh"))
    ours = _np(bb.encode_box_to_deltas(anchors, boxes_xywh, encoding_format=encoding, **kwargs))
    ref = _np(rbb.encode_box_to_deltas(anchors, boxes_xywh, encoding_format=encoding, **kwargs))
    np.testing.assert_allclose(ours, ref, rtol=1e-5, atol=1e-5)
    decoded = bb.decode_deltas_to_boxes(anchors, ours, encoded_format=encoding, **kwargs)
    # (real Keras multiplies a NumPy delta array by a torch variance: give it a tensor)
    ref_decoded = rbb.decode_deltas_to_boxes(anchors, torch.tensor(ours), encoded_format=encoding,
                                             **kwargs)
    np.testing.assert_allclose(_np(decoded), _np(ref_decoded), rtol=1e-5, atol=1e-4)
    np.testing.assert_allclose(_np(decoded), boxes_xywh, rtol=1e-5, atol=1e-4)
    levels = bb.decode_deltas_to_boxes({"P3": anchors}, {"P3": ours}, encoded_format=encoding,
                                       **kwargs)
    np.testing.assert_allclose(_np(levels["P3"]), _np(decoded))


def test_encode_hand_values_and_bad_input():
    # anchor centre (5, 5), 10 x 10; box centre (7, 5), 20 wide x 10 -> yxhw deltas (0, .2, 0, ln 2)
    deltas = bb.encode_box_to_deltas(np.array([[0, 0, 10, 10.]]), np.array([[-3, 0, 17, 10.]]),
                                     "xyxy", "xyxy")
    np.testing.assert_allclose(_np(deltas), [[0, 0.2, 0, np.log(2)]], rtol=1e-6, atol=1e-7)
    with pytest.raises(ConfigError, match="variance"):
        bb.encode_box_to_deltas(np.zeros((1, 4)), np.zeros((1, 4)), "xyxy", "xyxy",
                                variance=[1, 1])
    with pytest.raises(ConfigError, match="encoding_format='xyxy'"):
        bb.encode_box_to_deltas(np.zeros((1, 4)), np.zeros((1, 4)), "xyxy", "xyxy",
                                encoding_format="xyxy")
    with pytest.raises(ConfigError, match="encoded_format='xywh'"):
        bb.decode_deltas_to_boxes(np.zeros((1, 4)), np.zeros((1, 4)), "xyxy", "xyxy",
                                  encoded_format="xywh")
    with pytest.raises(DataError, match="P4"):
        bb.decode_deltas_to_boxes({"P4": np.zeros((1, 4))}, {"P3": np.zeros((1, 4))},
                                  "xyxy", "xyxy")


@pytest.mark.parametrize("shapes", [((4,), (3,)), ((2, 4), (3,)), ((4,), (2, 3)),
                                    ((2, 4), (2, 3))])
def test_compute_iou_equals_keras_and_numpy(shapes):
    real = _real()
    boxes1, boxes2 = _boxes(shapes[0], seed=4), _boxes(shapes[1], seed=5)
    boxes1[..., 0, :] = -1.0  # a padding box, masked with use_masking
    ours = _np(bb.compute_iou(boxes1, boxes2, "xyxy"))
    # NumPy reference from the definition: intersection / union
    b1 = boxes1 if boxes1.ndim == 3 else boxes1[None]
    b2 = boxes2 if boxes2.ndim == 3 else boxes2[None]
    lo = np.maximum(b1[..., :, None, :2], b2[..., None, :, :2])
    hi = np.minimum(b1[..., :, None, 2:], b2[..., None, :, 2:])
    inter = np.prod(np.clip(hi - lo, 0, None), axis=-1)
    area1 = np.prod(b1[..., 2:] - b1[..., :2], axis=-1)[..., :, None]
    area2 = np.prod(b2[..., 2:] - b2[..., :2], axis=-1)[..., None, :]
    expected = inter / (area1 + area2 - inter + 1e-7)
    if boxes1.ndim == 2 and boxes2.ndim == 2:
        expected = expected[0]
    np.testing.assert_allclose(ours, np.broadcast_to(expected, ours.shape), rtol=1e-5, atol=1e-6)
    ref = _np(real.utils.bounding_boxes.compute_iou(boxes1, boxes2, "xyxy"))
    np.testing.assert_allclose(ours, ref, rtol=1e-5, atol=1e-6)
    masked = _np(bb.compute_iou(boxes1, boxes2, "xyxy", use_masking=True, mask_val=-5))
    assert np.all(masked[..., 0, :] == -5)
    np.testing.assert_allclose(masked[..., 1:, :], ours[..., 1:, :])
    if len(shapes[0]) == len(shapes[1]):  # (Keras's masking fails on mixed ranks)
        ref = _np(real.utils.bounding_boxes.compute_iou(boxes1, boxes2, "xyxy",
                                                        use_masking=True, mask_val=-5))
        np.testing.assert_allclose(masked, ref, rtol=1e-5, atol=1e-6)


def test_compute_iou_relative_and_bad_input():
    real = _real()
    rel = _np(bb.convert_format(_boxes((3,)), "xyxy", "rel_yxyx", height=40, width=60))
    ours = _np(bb.compute_iou(rel, rel, "rel_yxyx", image_shape=(40, 60, 3)))
    ref = _np(real.utils.bounding_boxes.compute_iou(rel, rel, "rel_yxyx",
                                                    image_shape=(40, 60, 3)))
    np.testing.assert_allclose(ours, ref, rtol=1e-5)
    np.testing.assert_allclose(np.diag(ours), 1.0, rtol=1e-5)
    with pytest.raises(ConfigError, match="image_shape"):
        bb.compute_iou(rel, rel, "rel_yxyx")
    with pytest.raises(ShapeError, match="boxes1"):
        bb.compute_iou(np.zeros(4), rel, "xyxy")


def test_compute_ciou_equals_keras_and_hand_values():
    real = _real()
    boxes1, boxes2 = _boxes((2, 3), seed=6), _boxes((2, 3), seed=7)
    for fmt in ("xyxy", "center_xywh"):
        b1 = _np(bb.convert_format(boxes1, "xyxy", fmt))
        b2 = _np(bb.convert_format(boxes2, "xyxy", fmt))
        np.testing.assert_allclose(_np(bb.compute_ciou(b1, b2, fmt)),
                                   _np(real.utils.bounding_boxes.compute_ciou(b1, b2, fmt)),
                                   rtol=1e-5, atol=1e-6)
    # identical boxes: CIoU 1; same shape, disjoint: IoU 0, minus the centre-distance term
    np.testing.assert_allclose(_np(bb.compute_ciou(boxes1, boxes1, "xyxy")), 1.0, atol=1e-5)
    far = _np(bb.compute_ciou(np.array([0, 0, 2, 2.]), np.array([4, 0, 6, 2.]), "xyxy"))
    np.testing.assert_allclose(far, -(16 / 40), rtol=1e-5)
    with pytest.raises(ConfigError, match="rel_xyxy"):
        bb.compute_ciou(boxes1, boxes2, "rel_xyxy")
