"""``keras.utils.bounding_boxes`` (part): convert, clip, crop, pad, transform and encode boxes.

The same functions, arguments, defaults and numbers as Keras 3.15 on its torch backend (results are
``torch.Tensor``). Box formats (case-insensitive), every one Keras knows:

- ``"xyxy"`` ``[left, top, right, bottom]``, ``"yxyx"`` ``[top, left, bottom, right]``,
- ``"xywh"`` ``[left, top, width, height]``,
- ``"center_xywh"`` ``[center_x, center_y, width, height]``,
  ``"center_yxhw"`` ``[center_y, center_x, height, width]``,
- ``"rel_xyxy"``, ``"rel_yxyx"``, ``"rel_xywh"``, ``"rel_center_xywh"``: the same divided by the
  image width (x) and height (y); converting to or from them needs ``height`` and ``width``.

IoU / CIoU live in :mod:`bigmodel.keras.bounding_boxes_iou`; :mod:`bigmodel.keras.bounding_boxes`
is the Keras namespace holding both.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import torch

from bigmodel.errors import ConfigError, DataError, InputTypeError, NotSupportedError, ShapeError
from bigmodel.keras.config import epsilon

#: every box format Keras 3.15 knows (keras.src...bounding_boxes.bounding_box.SUPPORTED_FORMATS)
SUPPORTED_FORMATS = ("xyxy", "yxyx", "xywh", "center_xywh", "center_yxhw",
                     "rel_xyxy", "rel_yxyx", "rel_xywh", "rel_center_xywh")


def as_box_tensor(x: Any, name: str, dtype: torch.dtype | None = None) -> torch.Tensor:
    """``x`` (tensor, array, list) as a torch tensor, optionally cast to ``dtype``."""
    if isinstance(x, dict):
        raise InputTypeError(f"{name} must be a tensor or array of boxes; received a dict")
    try:
        t = x if isinstance(x, torch.Tensor) else torch.as_tensor(np.asarray(x))
    except (TypeError, ValueError) as exc:
        raise InputTypeError(f"{name} must be a tensor or array; received {type(x).__name__}: "
                             f"{exc}") from exc
    return t.to(dtype) if dtype is not None else t


def _torch_dtype(dtype: Any) -> torch.dtype:
    """A Keras dtype name (``"float32"``) or torch/NumPy dtype as a torch dtype."""
    if isinstance(dtype, torch.dtype):
        return dtype
    name = np.dtype(dtype).name if not isinstance(dtype, str) else dtype
    found = getattr(torch, name, None)
    if not isinstance(found, torch.dtype):
        raise ConfigError(f"convert_format: unknown dtype; received dtype={dtype!r}")
    return found


def _check_format(value: Any, argument: str, where: str) -> str:
    """``value`` lower-cased if it is a format of :data:`SUPPORTED_FORMATS`, else ConfigError."""
    if not isinstance(value, str) or value.lower() not in SUPPORTED_FORMATS:
        raise ConfigError(f"{where}: unknown bounding box format {argument}={value!r}; expected "
                          f"one of {', '.join(SUPPORTED_FORMATS)}")
    return value.lower()


def _check_boxes(boxes: torch.Tensor, where: str, name: str = "boxes") -> None:
    if boxes.ndim == 0 or boxes.shape[-1] != 4:
        raise ShapeError(f"{where}: `{name}` must have a last dimension of 4; received "
                         f"{name}.shape={tuple(boxes.shape)}")


def _split(boxes: torch.Tensor) -> tuple[torch.Tensor, ...]:
    return tuple(boxes[..., i:i + 1] for i in range(4))


def _to_xyxy(boxes: torch.Tensor, source: str, height: Any, width: Any) -> torch.Tensor:
    a, b, c, d = _split(boxes)
    if source == "xyxy":
        return boxes
    if source == "yxyx":
        parts = [b, a, d, c]
    elif source == "xywh":
        parts = [a, b, a + c, b + d]
    elif source == "center_xywh":
        parts = [a - c / 2.0, b - d / 2.0, a + c / 2.0, b + d / 2.0]
    elif source == "center_yxhw":
        parts = [b - d / 2.0, a - c / 2.0, b + d / 2.0, a + c / 2.0]
    elif source == "rel_xyxy":
        parts = [a * width, b * height, c * width, d * height]
    elif source == "rel_yxyx":
        parts = [b * width, a * height, d * width, c * height]
    elif source == "rel_xywh":
        parts = [a * width, b * height, (a + c) * width, (b + d) * height]
    else:  # rel_center_xywh
        parts = [(a - c / 2.0) * width, (b - d / 2.0) * height,
                 (a + c / 2.0) * width, (b + d / 2.0) * height]
    return torch.cat(parts, dim=-1)


def _from_xyxy(boxes: torch.Tensor, target: str, height: Any, width: Any) -> torch.Tensor:
    x1, y1, x2, y2 = _split(boxes)
    if target == "xyxy":
        return boxes
    # the centre as x1 + (x2 - x1) / 2, as Keras computes it (same float rounding)
    cx, cy = x1 + (x2 - x1) / 2.0, y1 + (y2 - y1) / 2.0
    if target == "yxyx":
        parts = [y1, x1, y2, x2]
    elif target == "xywh":
        parts = [x1, y1, x2 - x1, y2 - y1]
    elif target == "center_xywh":
        parts = [cx, cy, x2 - x1, y2 - y1]
    elif target == "center_yxhw":
        parts = [cy, cx, y2 - y1, x2 - x1]
    elif target == "rel_xyxy":
        parts = [x1 / width, y1 / height, x2 / width, y2 / height]
    elif target == "rel_yxyx":
        parts = [y1 / height, x1 / width, y2 / height, x2 / width]
    elif target == "rel_xywh":
        parts = [x1 / width, y1 / height, (x2 - x1) / width, (y2 - y1) / height]
    else:  # rel_center_xywh
        parts = [cx / width, cy / height, (x2 - x1) / width, (y2 - y1) / height]
    return torch.cat(parts, dim=-1)


def convert_format(boxes: Any, source: str, target: str, height: Any = None, width: Any = None,
                   dtype: Any = "float32") -> Any:
    """Convert bounding boxes between formats (see the module docstring for the formats).

    Args:
        boxes: ``(..., 4)`` tensor/array, or a dict whose ``"boxes"`` entry is one.
        source: the format of ``boxes``.
        target: the format to return.
        height: image height; needed when ``source`` or ``target`` is relative (``rel_*``).
        width: image width; likewise.
        dtype: the dtype of the result (Keras casts to it first), default ``"float32"``.

    Returns:
        A ``torch.Tensor`` of the same shape in ``target`` format; for a dict, a copy of the dict
        with ``"boxes"`` converted (Keras changes the given dict in place and returns it).

    Raises:
        ShapeError: the last dimension of ``boxes`` is not 4.
        ConfigError: an unknown ``source`` / ``target`` / ``dtype``, or a relative format without
            ``height`` and ``width``.
        DataError: a dict without ``"boxes"``.
    """
    if isinstance(boxes, dict):
        if "boxes" not in boxes:
            raise DataError(f"convert_format: a dict of boxes needs a 'boxes' entry; received "
                            f"keys {sorted(boxes)}")
        result = dict(boxes)
        result["boxes"] = convert_format(boxes["boxes"], source, target, height, width, dtype)
        return result
    boxes = as_box_tensor(boxes, "boxes")
    _check_boxes(boxes, "convert_format()")
    source = _check_format(source, "source", "convert_format()")
    target = _check_format(target, "target", "convert_format()")
    if (source.startswith("rel_") or target.startswith("rel_")) and (height is None
                                                                      or width is None):
        raise ConfigError(f"convert_format() needs `height` and `width` to convert between "
                          f"relative and absolute formats; received source={source!r}, "
                          f"target={target!r}, height={height}, width={width}")
    torch_dtype = _torch_dtype(dtype)
    boxes = boxes.to(torch_dtype)
    if source == target:
        return boxes
    if width is not None:
        width = torch.as_tensor(width).to(torch_dtype)
    if height is not None:
        height = torch.as_tensor(height).to(torch_dtype)
    if source.startswith("rel_") and target.startswith("rel_"):
        # relative to relative: the image size cancels, as in Keras
        source, target = source[4:], target[4:]
    return _from_xyxy(_to_xyxy(boxes, source, height, width), target, height, width)


def clip_to_image_size(bounding_boxes: dict, height: Any = None, width: Any = None,
                       bounding_box_format: str = "xyxy") -> dict:
    """Clip boxes to the image; labels of boxes left with no area become -1.

    Args:
        bounding_boxes: dict with ``"boxes"`` ``(N, 4)`` / ``(batch, N, 4)`` and optionally
            ``"labels"`` ``(N,)`` / ``(batch, N)``.
        height: image height (needed for ``"xyxy"``).
        width: image width (needed for ``"xyxy"``).
        bounding_box_format: ``"xyxy"`` (clipped to ``[0, width] x [0, height]``) or
            ``"rel_xyxy"`` (clipped to ``[0, 1]``), as in Keras.

    Returns:
        A copy of ``bounding_boxes`` with the clipped ``"boxes"`` (and ``"labels"``).

    Raises:
        NotSupportedError: another ``bounding_box_format`` (Keras raises NotImplementedError).
        ConfigError: ``"xyxy"`` without ``height`` / ``width``.
        InputTypeError / DataError: not a dict / no ``"boxes"``.
    """
    if bounding_box_format not in ("xyxy", "rel_xyxy"):
        raise NotSupportedError(f"clip_to_image_size() supports bounding_box_format 'xyxy' and "
                                f"'rel_xyxy' (as Keras); received {bounding_box_format!r}")
    if bounding_box_format == "xyxy" and (height is None or width is None):
        raise ConfigError(f"clip_to_image_size(): `height` and `width` must be set for "
                          f"bounding_box_format='xyxy'; received height={height}, width={width}")
    if not isinstance(bounding_boxes, dict):
        raise InputTypeError(f"clip_to_image_size(): `bounding_boxes` must be a dict with "
                             f"'boxes'; received {type(bounding_boxes).__name__}")
    if "boxes" not in bounding_boxes:
        raise DataError(f"clip_to_image_size(): `bounding_boxes` needs a 'boxes' entry; "
                        f"received keys {sorted(bounding_boxes)}")
    boxes = as_box_tensor(bounding_boxes["boxes"], "bounding_boxes['boxes']")
    _check_boxes(boxes, "clip_to_image_size()", "bounding_boxes['boxes']")
    labels = bounding_boxes.get("labels")
    if bounding_box_format == "xyxy":
        high_x = torch.as_tensor(width).to(boxes.device, boxes.dtype)
        high_y = torch.as_tensor(height).to(boxes.device, boxes.dtype)
    else:
        high_x = high_y = torch.tensor(1.0, dtype=boxes.dtype, device=boxes.device)
    x1, y1, x2, y2 = _split(boxes)
    zero = torch.zeros((), dtype=boxes.dtype, device=boxes.device)
    boxes = torch.cat([torch.clamp(x1, zero, high_x), torch.clamp(y1, zero, high_y),
                       torch.clamp(x2, zero, high_x), torch.clamp(y2, zero, high_y)], dim=-1)
    result = dict(bounding_boxes)
    result["boxes"] = boxes
    if labels is not None:
        areas = ((boxes[..., 2] - boxes[..., 0]) * (boxes[..., 3] - boxes[..., 1]))
        labels = as_box_tensor(labels, "bounding_boxes['labels']")
        result["labels"] = torch.where(areas > 0, labels, torch.full_like(labels, -1))
    return result


def _inverse_affine_matrix(center_x: Any, center_y: Any, angle: torch.Tensor,
                           translate_x: Any, translate_y: Any, scale: Any, shear_x: Any,
                           shear_y: Any, height: Any, width: Any) -> torch.Tensor:
    """The ``(batch, 3, 3)`` inverse affine matrix Keras builds (TF's inverse affine matrix)."""
    angle, shear_x, shear_y = -angle, -shear_x, -shear_y
    cx = center_x * (width - 1)
    cy = center_y * (height - 1)
    rot = angle * (1.0 / 180.0 * math.pi)
    tx = -translate_x * (width - 1)
    ty = -translate_y * (height - 1)
    sx = shear_x * (1.0 / 180.0 * math.pi)
    sy = shear_y * (1.0 / 180.0 * math.pi)
    cos_sy, tan_sx = torch.cos(sy), torch.tan(sx)
    a = torch.cos(rot - sy) / cos_sy
    b = a * tan_sx + torch.sin(rot)
    c = -torch.sin(rot - sy) / cos_sy
    d = torch.cos(rot) - c * tan_sx
    a0, a1, b0, b1 = d * scale, -b * scale, -c * scale, a * scale
    a2 = cx - a0 * (cx + tx) - a1 * (cy + ty)
    b2 = cy - b0 * (cx + tx) - b1 * (cy + ty)
    zeros, ones = torch.zeros_like(a0), torch.ones_like(a0)
    return torch.stack([a0, a1, a2, b0, b1, b2, zeros, zeros, ones], dim=-1).reshape(-1, 3, 3)


def affine_transform(boxes: Any, angle: Any, translate_x: Any, translate_y: Any, scale: Any,
                     shear_x: Any, shear_y: Any, height: Any, width: Any, center_x: Any = None,
                     center_y: Any = None, bounding_box_format: str = "xyxy") -> torch.Tensor:
    """Apply Keras's (inverse) affine transform to ``"xyxy"`` boxes: the box around the 4 moved
    corners.

    Args:
        boxes: ``(batch, N, 4)`` boxes (an unbatched ``(N, 4)`` is taken as a batch of one and
            returned unbatched; Keras needs the batch).
        angle: rotation in degrees, a scalar or one per image ``(batch,)``; the result has its
            dtype (float32 for Python numbers).
        translate_x: horizontal translation, a fraction of ``width - 1``.
        translate_y: vertical translation, a fraction of ``height - 1``.
        scale: scale factor.
        shear_x: shear angle in x (degrees).
        shear_y: shear angle in y (degrees).
        height: image height.
        width: image width.
        center_x: transform centre, a fraction of ``width - 1`` (default 0.5).
        center_y: transform centre, a fraction of ``height - 1`` (default 0.5).
        bounding_box_format: only ``"xyxy"``, as in Keras.

    Returns:
        The transformed boxes, same shape as ``boxes``.

    Raises:
        NotSupportedError: ``bounding_box_format`` other than ``"xyxy"``.
        ShapeError: ``boxes`` not ``(N, 4)`` / ``(batch, N, 4)``.
    """
    if bounding_box_format != "xyxy":
        raise NotSupportedError(f"affine_transform() supports bounding_box_format='xyxy' only "
                                f"(as Keras); received {bounding_box_format!r}")
    boxes = as_box_tensor(boxes, "boxes")
    _check_boxes(boxes, "affine_transform()")
    if boxes.ndim not in (2, 3):
        raise ShapeError(f"affine_transform(): `boxes` must be (N, 4) or (batch, N, 4); "
                         f"received boxes.shape={tuple(boxes.shape)}")
    unbatched = boxes.ndim == 2
    if unbatched:
        boxes = boxes[None]
    batch = boxes.shape[0]
    angle = as_box_tensor(angle, "angle").to(boxes.device)
    if not angle.is_floating_point():
        angle = angle.to(torch.float32)
    dtype = angle.dtype

    def per_image(value: Any, name: str) -> torch.Tensor:
        value = as_box_tensor(value, name, dtype).to(boxes.device)
        return torch.broadcast_to(value.reshape(-1), (batch,))

    matrix = _inverse_affine_matrix(
        0.5 if center_x is None else per_image(center_x, "center_x"),
        0.5 if center_y is None else per_image(center_y, "center_y"),
        per_image(angle, "angle"), per_image(translate_x, "translate_x"),
        per_image(translate_y, "translate_y"), per_image(scale, "scale"),
        per_image(shear_x, "shear_x"), per_image(shear_y, "shear_y"), height, width)
    boxes = boxes.to(dtype)
    x1, y1, x2, y2 = boxes.unbind(-1)
    # the 4 corners (x, y, 1) of each box: (B, N, 4, 3)
    corners = torch.stack([torch.stack([x1, y1], -1), torch.stack([x2, y1], -1),
                           torch.stack([x2, y2], -1), torch.stack([x1, y2], -1)], dim=2)
    corners = torch.cat([corners, torch.ones_like(corners[..., :1])], dim=-1)
    moved = torch.einsum("bnxy,byz->bnxz", corners, matrix[:, :2, :].transpose(1, 2))
    out = torch.cat([moved.amin(dim=2), moved.amax(dim=2)], dim=-1)
    return out[0] if unbatched else out


def crop(boxes: Any, top: Any, left: Any, height: Any, width: Any,
         bounding_box_format: str = "xyxy") -> torch.Tensor:
    """Move ``"xyxy"`` boxes into the crop window at ``(top, left)`` and clip them to its size.

    Args:
        boxes: ``(N, 4)`` or ``(batch, N, 4)`` boxes.
        top: vertical offset of the crop window.
        left: horizontal offset of the crop window.
        height: window height (None: no upper clip).
        width: window width (None: no upper clip).
        bounding_box_format: only ``"xyxy"``, as in Keras.

    Returns:
        The cropped boxes, same shape and dtype as ``boxes``.

    Raises:
        NotSupportedError: another ``bounding_box_format``. ShapeError: last dimension not 4.
    """
    if bounding_box_format != "xyxy":
        raise NotSupportedError(f"crop() supports bounding_box_format='xyxy' only (as Keras); "
                                f"received {bounding_box_format!r}")
    boxes = as_box_tensor(boxes, "boxes")
    _check_boxes(boxes, "crop()")
    x1, y1, x2, y2 = _split(boxes)
    return torch.cat([torch.clamp(x1 - left, 0, width), torch.clamp(y1 - top, 0, height),
                      torch.clamp(x2 - left, 0, width), torch.clamp(y2 - top, 0, height)], dim=-1)


def pad(boxes: Any, top: Any, left: Any, height: Any = None, width: Any = None,
        bounding_box_format: str = "xyxy") -> torch.Tensor:
    """Shift ``"xyxy"`` boxes by the padding added above (``top``) and left of the image.

    Args:
        boxes: ``(N, 4)`` or ``(batch, N, 4)`` boxes.
        top: rows added above the image.
        left: columns added left of the image.
        height: unused (Keras's signature).
        width: unused (Keras's signature).
        bounding_box_format: only ``"xyxy"``, as in Keras.

    Returns:
        The shifted boxes.

    Raises:
        NotSupportedError: another ``bounding_box_format``. ShapeError: last dimension not 4.
    """
    if bounding_box_format != "xyxy":
        raise NotSupportedError(f"pad() supports bounding_box_format='xyxy' only (as Keras); "
                                f"received {bounding_box_format!r}")
    boxes = as_box_tensor(boxes, "boxes")
    _check_boxes(boxes, "pad()")
    x1, y1, x2, y2 = _split(boxes)
    return torch.cat([x1 + left, y1 + top, x2 + left, y2 + top], dim=-1)


def _variance(variance: Any) -> torch.Tensor | None:
    if variance is None:
        return None
    v = as_box_tensor(variance, "variance", torch.float32)
    if v.ndim == 0 or v.shape[-1] != 4:
        raise ConfigError(f"`variance` must be length 4; received variance={variance}")
    return v


def image_size_of(image_shape: Any) -> tuple[Any, Any]:
    if image_shape is None:
        return None, None
    if len(image_shape) != 3:
        raise ConfigError(f"`image_shape` must be (height, width, channels); received "
                          f"image_shape={image_shape}")
    return image_shape[0], image_shape[1]


_ENCODINGS = ("center_xywh", "center_yxhw")


def encode_box_to_deltas(anchors: Any, boxes: Any, anchor_format: str, box_format: str,
                         encoding_format: str = "center_yxhw", variance: Any = None,
                         image_shape: Any = None) -> torch.Tensor:
    """The deltas that move ``anchors`` onto ``boxes``: centre offsets / anchor size, log sizes.

    Args:
        anchors: ``(N, 4)`` anchors in ``anchor_format``.
        boxes: ``(N, 4)`` or ``(batch, N, 4)`` boxes in ``box_format``.
        anchor_format: format of ``anchors``.
        box_format: format of ``boxes``.
        encoding_format: ``"center_yxhw"`` (default) or ``"center_xywh"``: the order of the deltas.
        variance: 4 numbers the deltas are divided by (None: not scaled).
        image_shape: ``(height, width, channels)``, needed for relative formats.

    Returns:
        ``torch.Tensor`` of deltas, the shape of ``boxes``.

    Raises:
        ConfigError: ``variance`` not of length 4, ``encoding_format`` not a centre format, an
            unknown format, or a relative format without ``image_shape``.
    """
    variance = _variance(variance)
    if encoding_format not in _ENCODINGS:
        raise ConfigError(f"`encoding_format` should be one of 'center_xywh' or 'center_yxhw'; "
                          f"received encoding_format={encoding_format!r}")
    height, width = image_size_of(image_shape)
    anchors = convert_format(anchors, anchor_format, encoding_format, height, width)
    boxes = convert_format(boxes, box_format, encoding_format, height, width)
    anchor_size = torch.clamp(anchors[..., 2:], min=epsilon())
    box_size = torch.clamp(boxes[..., 2:], min=epsilon())
    deltas = torch.cat([(boxes[..., :2] - anchors[..., :2]) / anchor_size,
                        torch.log(box_size / anchor_size)], dim=-1)
    return deltas / variance.to(deltas.device) if variance is not None else deltas


def decode_deltas_to_boxes(anchors: Any, boxes_delta: Any, anchor_format: str, box_format: str,
                           encoded_format: str = "center_yxhw", variance: Any = None,
                           image_shape: Any = None) -> Any:
    """Apply deltas (from :func:`encode_box_to_deltas`) to anchors and return boxes.

    Args:
        anchors: ``(N, 4)`` anchors, or a dict ``level -> anchors``.
        boxes_delta: ``(N, 4)`` / ``(batch, N, 4)`` deltas, or a dict with the same keys as
            ``anchors``.
        anchor_format: format of ``anchors``.
        box_format: format of the returned boxes.
        encoded_format: ``"center_yxhw"`` (default) or ``"center_xywh"``: the order of the deltas.
        variance: 4 numbers the deltas are multiplied by first (None: not scaled).
        image_shape: ``(height, width, channels)``, needed for relative formats.

    Returns:
        Boxes in ``box_format`` (a dict ``level -> boxes`` for dict inputs).

    Raises:
        ConfigError: as :func:`encode_box_to_deltas`. DataError: a level of ``anchors`` missing
            from ``boxes_delta``.
    """
    variance = _variance(variance)
    if encoded_format not in _ENCODINGS:
        raise ConfigError(f"`encoded_format` should be 'center_xywh' or 'center_yxhw'; received "
                          f"encoded_format={encoded_format!r}")
    height, width = image_size_of(image_shape)

    def decode(anchor: Any, delta: Any) -> torch.Tensor:
        anchor = convert_format(anchor, anchor_format, encoded_format, height, width)
        delta = as_box_tensor(delta, "boxes_delta")
        if variance is not None:
            delta = delta * variance.to(delta.device)
        box = torch.cat([delta[..., :2] * anchor[..., 2:] + anchor[..., :2],
                         torch.exp(delta[..., 2:]) * anchor[..., 2:]], dim=-1)
        return convert_format(box, encoded_format, box_format, height, width)

    if isinstance(anchors, dict) and isinstance(boxes_delta, dict):
        missing = [level for level in anchors if level not in boxes_delta]
        if missing:
            raise DataError(f"decode_deltas_to_boxes(): `boxes_delta` lacks the anchor levels "
                            f"{missing}; received keys {list(boxes_delta)}")
        return {level: decode(anchor, boxes_delta[level]) for level, anchor in anchors.items()}
    return decode(anchors, boxes_delta)


__all__ = ["affine_transform", "clip_to_image_size", "convert_format", "crop",
           "decode_deltas_to_boxes", "encode_box_to_deltas", "pad"]
