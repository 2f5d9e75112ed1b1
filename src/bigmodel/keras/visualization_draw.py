"""``keras.visualization.draw_bounding_boxes`` / ``draw_segmentation_masks``: annotate images.

Same arguments, defaults and pixels as Keras 3.15: boxes are drawn with OpenCV (``cv2``, the
``opencv-python-headless`` package of the ``keras`` extra) exactly as Keras draws them.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from bigmodel.errors import ConfigError, DataError, InputTypeError, NotSupportedError, ShapeError
from bigmodel.keras.bounding_boxes_convert import convert_format
from bigmodel.keras.config import image_data_format


def to_numpy(x: Any) -> np.ndarray:
    if isinstance(x, torch.Tensor):
        return x.detach().cpu().numpy()
    return np.asarray(x)


def check_data_format(data_format: str | None, where: str) -> str:
    data_format = data_format or image_data_format()
    if data_format not in ("channels_last", "channels_first"):
        raise ConfigError(f"{where}: data_format must be 'channels_last' or 'channels_first'; "
                          f"received data_format={data_format!r}")
    return data_format


def batched_images(images: Any, where: str) -> np.ndarray:
    array = to_numpy(images)
    if array.ndim != 4:
        raise ShapeError(f"{where}: `images` must be a batched 4D tensor; received "
                         f"images.shape={array.shape}")
    return array


def _cv2() -> Any:
    try:
        import cv2
    except ImportError as exc:  # an optional dependency, as in Keras
        raise NotSupportedError("draw_bounding_boxes needs OpenCV: pip install "
                                "opencv-python-headless (bigmodel's `keras` extra)") from exc
    return cv2


def _text_location(x: int, y: int, font_scale: float, thickness: int) -> tuple[int, int]:
    """Where Keras puts a label: above the box, or inside it when there is no room above."""
    font_height = int(font_scale * 12)
    if y - 8 - 2 * font_height > 0:
        return x, y - 8
    return x + 3, y + 2 * font_height + thickness + 3


def draw_bounding_boxes(images: Any, bounding_boxes: dict, bounding_box_format: str,
                        class_mapping: dict | None = None, color: Any = (128, 128, 128),
                        line_thickness: int = 2, text_thickness: int = 1, font_scale: float = 1.0,
                        data_format: str | None = None) -> np.ndarray:
    """Draw boxes (and class names, with confidences if given) on a batch of images.

    Args:
        images: ``(batch, height, width, channels)`` images; floats with max <= 1 are scaled
            by 255, other floats clipped to [0, 255]; drawn as uint8.
        bounding_boxes: dict with ``"boxes"`` ``(batch, num_boxes, 4)`` and ``"labels"``
            ``(batch, num_boxes)`` (label -1: not drawn), optionally ``"confidences"``.
        bounding_box_format: the format of the boxes (see ``convert_format``).
        class_mapping: class id -> name; boxes whose label is in it get the name written.
        color: RGB colour of boxes and text.
        line_thickness: box line thickness in pixels.
        text_thickness: text stroke thickness (0 or None: ``line_thickness``).
        font_scale: OpenCV font scale.
        data_format: ``"channels_last"`` (default) or ``"channels_first"`` (drawn transposed
            and returned in the same layout; Keras would draw on the wrong axes).

    Returns:
        uint8 NumPy array, the shape of ``images``.

    Raises:
        ShapeError: ``images`` not 4D. InputTypeError: ``bounding_boxes`` not a dict.
        DataError: no ``"boxes"`` or ``"labels"``. NotSupportedError: OpenCV missing.
    """
    cv2 = _cv2()
    class_mapping = class_mapping or {}
    text_thickness = text_thickness or line_thickness
    data_format = check_data_format(data_format, "draw_bounding_boxes()")
    images = batched_images(images, "draw_bounding_boxes()")
    if not isinstance(bounding_boxes, dict):
        raise InputTypeError(f"draw_bounding_boxes(): `bounding_boxes` should be a dict with "
                             f"'boxes' and 'labels'; received {type(bounding_boxes).__name__}")
    if "boxes" not in bounding_boxes or "labels" not in bounding_boxes:
        raise DataError(f"draw_bounding_boxes(): `bounding_boxes` should be a dict containing "
                        f"'boxes' and 'labels'; received keys {sorted(bounding_boxes)}")
    if data_format == "channels_first":
        images = images.transpose(0, 2, 3, 1)
    height, width = images.shape[1], images.shape[2]
    converted = convert_format(dict(bounding_boxes), bounding_box_format, "xyxy", height, width)
    if images.dtype.kind == "f" and images.size > 0:
        images = np.clip(images, 0, 1) * 255 if images.max() <= 1.0 else np.clip(images, 0, 255)
    images = np.ascontiguousarray(images.astype("uint8"))
    boxes = to_numpy(converted["boxes"])
    labels = to_numpy(bounding_boxes["labels"])
    if boxes.ndim != 3 or boxes.shape[0] != images.shape[0] or labels.shape != boxes.shape[:2]:
        raise ShapeError(f"draw_bounding_boxes(): boxes must be (batch, num_boxes, 4) and labels "
                         f"(batch, num_boxes) for {images.shape[0]} images; received "
                         f"boxes.shape={boxes.shape}, labels.shape={labels.shape}")
    confidences = (to_numpy(bounding_boxes["confidences"]) if "confidences" in bounding_boxes
                   else None)
    color = tuple(int(c) for c in color)
    for i, image in enumerate(images):
        for box_i in range(boxes.shape[1]):
            x1, y1, x2, y2 = (int(v) for v in boxes[i, box_i].astype("int32"))
            c = int(labels[i, box_i].astype("int32"))
            if c == -1:
                continue
            cv2.rectangle(image, (x1, y1), (x2, y2), color, line_thickness)
            if c in class_mapping:
                label = class_mapping[c]
                if confidences is not None:
                    label = f"{label} | {confidences[i][box_i]:.2f}"
                cv2.putText(img=image, text=label,
                            org=_text_location(x1, y1, font_scale, text_thickness),
                            fontFace=cv2.FONT_HERSHEY_SIMPLEX, fontScale=font_scale,
                            color=color, thickness=text_thickness)
    if data_format == "channels_first":
        images = np.ascontiguousarray(images.transpose(0, 3, 1, 2))
    return images


def _color_palette(num_classes: int) -> list[list[int]]:
    """Keras's default class colours."""
    palette = np.array([2 ** 25 - 1, 2 ** 15 - 1, 2 ** 21 - 1])
    return [((i * palette) % 255).tolist() for i in range(num_classes)]


def draw_segmentation_masks(images: Any, segmentation_masks: Any, num_classes: int | None = None,
                            color_mapping: dict | None = None, alpha: float = 0.8,
                            blend: bool = True, ignore_index: int = -1,
                            data_format: str | None = None) -> np.ndarray:
    """Colour each pixel by its class in ``segmentation_masks``, blended over the images.

    As in Keras 3.15, class ``k`` gets colour ``k`` for ``k`` in ``range(num_classes)``; other
    values (negative, or >= ``num_classes``: with ``num_classes=None``, the largest class) are left
    uncoloured, as Keras does on TensorFlow / JAX (its torch backend fails there instead).

    Args:
        images: ``(batch, height, width, channels)`` images (``channels_first``: channels second).
        segmentation_masks: integer ``(batch, height, width, 1)`` masks (``(batch, height,
            width)`` is taken too).
        num_classes: number of classes; None: the largest value in the masks.
        color_mapping: class index -> RGB, with keys ``0 .. num_classes - 1``; None: Keras's
            palette.
        alpha: opacity of the colours when blending.
        blend: blend with the image (uint8 result) or return the coloured float32 images.
        ignore_index: mask value left as the image when blending.
        data_format: ``"channels_last"`` or ``"channels_first"``.

    Returns:
        NumPy array ``(batch, height, width, channels)`` (channels last, as Keras returns): uint8
        when ``blend``, else float32 (Keras returns a backend tensor there).

    Raises:
        ShapeError: ``images`` not 4D or masks of another size. InputTypeError: masks not integer.
        ConfigError: ``color_mapping`` without a colour for a class.
    """
    data_format = check_data_format(data_format, "draw_segmentation_masks()")
    images = batched_images(images, "draw_segmentation_masks()")
    masks = to_numpy(segmentation_masks)
    if data_format == "channels_first":
        images = images.transpose(0, 2, 3, 1)
        if masks.ndim == 4:
            masks = masks.transpose(0, 2, 3, 1)
    if masks.dtype.kind not in "iu":
        raise InputTypeError(f"draw_segmentation_masks(): `segmentation_masks` must be of an "
                             f"integer dtype; received segmentation_masks.dtype={masks.dtype}")
    if masks.ndim == 4 and masks.shape[-1] == 1:
        masks = masks[..., 0]
    if masks.shape != images.shape[:3]:
        raise ShapeError(f"draw_segmentation_masks(): `segmentation_masks` must be (batch, height, "
                         f"width[, 1]) matching images {images.shape}; received "
                         f"segmentation_masks.shape={to_numpy(segmentation_masks).shape}")
    images = images.astype("float32")
    if num_classes is None:
        num_classes = int(masks.max())
    if color_mapping is None:
        colors = _color_palette(num_classes)
    else:
        missing = [i for i in range(num_classes) if i not in color_mapping]
        if missing:
            raise ConfigError(f"draw_segmentation_masks(): color_mapping has no colour for the "
                              f"classes {missing} (Keras looks up 0 .. num_classes - 1); received "
                              f"keys {sorted(color_mapping)}")
        colors = [color_mapping[i] for i in range(num_classes)]
    drawn = images.copy()
    for k, color in enumerate(colors):
        drawn[masks == k] = np.asarray(color, dtype="float32")
    if not blend:
        return drawn
    outputs = images * (1 - alpha) + drawn * alpha
    outputs = np.where((masks != ignore_index)[..., None], outputs, images)
    # float -> uint8 as torch casts (truncation), the cast Keras's torch backend makes
    return torch.from_numpy(np.ascontiguousarray(outputs)).to(torch.uint8).numpy()


__all__ = ["draw_bounding_boxes", "draw_segmentation_masks"]
