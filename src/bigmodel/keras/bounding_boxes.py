"""``keras.utils.bounding_boxes``: Keras 3's bounding-box utilities (the namespace module).

The functions live in :mod:`bigmodel.keras.bounding_boxes_convert` (formats, clip, crop, pad,
affine, delta encoding) and :mod:`bigmodel.keras.bounding_boxes_iou` (IoU, CIoU).
"""

from bigmodel.keras.bounding_boxes_convert import (
    SUPPORTED_FORMATS,
    affine_transform,
    clip_to_image_size,
    convert_format,
    crop,
    decode_deltas_to_boxes,
    encode_box_to_deltas,
    pad,
)
from bigmodel.keras.bounding_boxes_iou import compute_ciou, compute_iou
from bigmodel.keras.unsupported import unsupported_attribute

__all__ = ["SUPPORTED_FORMATS", "affine_transform", "clip_to_image_size", "compute_ciou",
           "compute_iou", "convert_format", "crop", "decode_deltas_to_boxes",
           "encode_box_to_deltas", "pad"]


def __getattr__(name: str) -> object:
    raise unsupported_attribute("keras.utils.bounding_boxes", name)
