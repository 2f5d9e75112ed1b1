"""``keras.utils.bounding_boxes.compute_iou`` / ``compute_ciou``: pairwise IoU and Complete IoU.

Same arguments, defaults and numbers as Keras 3.15 on its torch backend (results are
``torch.Tensor``), including Keras's ``epsilon`` terms.
"""

from __future__ import annotations

import math
from typing import Any

import torch

from bigmodel.errors import ConfigError, ShapeError
from bigmodel.keras.bounding_boxes_convert import as_box_tensor, convert_format, image_size_of
from bigmodel.keras.config import epsilon


def _area(boxes: torch.Tensor) -> torch.Tensor:
    """``(..., 4)`` yxyx boxes -> ``(...)`` areas."""
    return (boxes[..., 2] - boxes[..., 0]) * (boxes[..., 3] - boxes[..., 1])


def _last_two_swapped(x: torch.Tensor) -> torch.Tensor:
    return x.transpose(-1, -2)


def compute_iou(boxes1: Any, boxes2: Any, bounding_box_format: str, use_masking: bool = False,
                mask_val: float = -1, image_shape: Any = None) -> torch.Tensor:
    """The IoU of every box of ``boxes1`` with every box of ``boxes2``.

    Args:
        boxes1: ``(M, 4)`` or ``(batch, M, 4)`` boxes.
        boxes2: ``(N, 4)`` or ``(batch, N, 4)`` boxes.
        bounding_box_format: the format of both (any of ``convert_format``'s).
        use_masking: give ``mask_val`` to pairs where a box has all coordinates < 0 (padding).
        mask_val: the value of masked pairs (default -1).
        image_shape: ``(height, width, channels)``, needed for relative formats.

    Returns:
        ``(M, N)``, or ``(batch, M, N)`` when either input is batched.

    Raises:
        ShapeError: an input not of rank 2 or 3, or last dimension not 4.
        ConfigError: an unknown format, or a relative one without ``image_shape``.
    """
    boxes1 = as_box_tensor(boxes1, "boxes1")
    boxes2 = as_box_tensor(boxes2, "boxes2")
    for name, boxes in (("boxes1", boxes1), ("boxes2", boxes2)):
        if boxes.ndim not in (2, 3):
            raise ShapeError(f"compute_iou() expects {name} of rank 2 (N, 4) or 3 (batch, N, 4); "
                             f"received {name}.shape={tuple(boxes.shape)}")
    if "rel" in str(bounding_box_format) and image_shape is None:
        raise ConfigError(f"compute_iou(): a relative bounding_box_format "
                          f"({bounding_box_format!r}) needs `image_shape`; received "
                          f"image_shape={image_shape}")
    height, width = image_size_of(image_shape)
    # Keras computes in yxyx
    boxes1 = convert_format(boxes1, bounding_box_format, "yxyx", height, width)
    boxes2 = convert_format(boxes2, bounding_box_format, "yxyx", height, width)
    y_min1, x_min1, y_max1, x_max1 = (boxes1[..., i:i + 1] for i in range(4))  # (.., M, 1)
    y_min2, x_min2, y_max2, x_max2 = (_last_two_swapped(boxes2[..., i:i + 1])
                                      for i in range(4))  # (.., 1, N)
    zero = torch.zeros((), dtype=boxes1.dtype, device=boxes1.device)
    inter_h = torch.maximum(zero, torch.minimum(y_max1, y_max2) - torch.maximum(y_min1, y_min2))
    inter_w = torch.maximum(zero, torch.minimum(x_max1, x_max2) - torch.maximum(x_min1, x_min2))
    intersection = inter_h * inter_w
    union = _area(boxes1)[..., :, None] + _area(boxes2)[..., None, :] - intersection
    iou = intersection / (union + epsilon())
    if not use_masking:
        return iou
    background = torch.logical_or(boxes1.amax(dim=-1, keepdim=True) < 0.0,
                                  _last_two_swapped(boxes2.amax(dim=-1, keepdim=True) < 0.0))
    return torch.where(background, torch.full_like(iou, float(mask_val)), iou)


def compute_ciou(boxes1: Any, boxes2: Any, bounding_box_format: str,
                 image_shape: Any = None) -> torch.Tensor:
    """Complete IoU of matching boxes: IoU - centre distance² / enclosing diagonal² - v·alpha.

    Args:
        boxes1: ``(..., 4)`` boxes.
        boxes2: ``(..., 4)`` boxes (broadcast against ``boxes1``).
        bounding_box_format: the format of both; relative formats are refused, as in Keras 3.15.
        image_shape: ``(height, width, channels)`` (unused by Keras for absolute formats).

    Returns:
        ``(...)`` CIoU values.

    Raises:
        ConfigError: a relative or unknown format. ShapeError: last dimension not 4.
    """
    if "rel" in str(bounding_box_format):
        raise ConfigError(f"compute_ciou() does not take relative formats (Keras 3.15 refuses "
                          f"them); received bounding_box_format={bounding_box_format!r}")
    height, width = image_size_of(image_shape)
    boxes1 = convert_format(boxes1, bounding_box_format, "xyxy", height, width)
    boxes2 = convert_format(boxes2, bounding_box_format, "xyxy", height, width)
    eps = epsilon()
    x_min1, y_min1, x_max1, y_max1 = boxes1.unbind(-1)
    x_min2, y_min2, x_max2, y_max2 = boxes2.unbind(-1)
    width_1, height_1 = x_max1 - x_min1, y_max1 - y_min1 + eps
    width_2, height_2 = x_max2 - x_min2, y_max2 - y_min2 + eps
    overlap_x = torch.minimum(x_max1, x_max2) - torch.maximum(x_min1, x_min2)
    overlap_y = torch.minimum(y_max1, y_max2) - torch.maximum(y_min1, y_min2)
    intersection = torch.clamp(overlap_x, min=0) * torch.clamp(overlap_y, min=0)
    union = width_1 * height_1 + width_2 * height_2 - intersection + eps
    iou = intersection / (union + eps)
    convex_w = torch.maximum(x_max1, x_max2) - torch.minimum(x_min1, x_min2)
    convex_h = torch.maximum(y_max1, y_max2) - torch.minimum(y_min1, y_min2)
    diagonal_sq = convex_w ** 2 + convex_h ** 2 + eps
    centers_sq = (((x_min1 + x_max1) / 2 - (x_min2 + x_max2) / 2) ** 2
                  + ((y_min1 + y_max1) / 2 - (y_min2 + y_max2) / 2) ** 2)
    v = (4 / math.pi ** 2) * (torch.atan(width_2 / height_2) - torch.atan(width_1 / height_1)) ** 2
    alpha = v / (v - iou + (1 + eps))
    return iou - (centers_sq / diagonal_sq + v * alpha)


__all__ = ["compute_ciou", "compute_iou"]
