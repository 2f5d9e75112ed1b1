"""``keras.visualization``: draw bounding boxes and segmentation masks on images, and plot
galleries of them, as Keras 3.15 does (:mod:`bigmodel.keras.visualization_draw`,
:mod:`bigmodel.keras.visualization_gallery`)."""

from bigmodel.keras.unsupported import unsupported_attribute
from bigmodel.keras.visualization_draw import draw_bounding_boxes, draw_segmentation_masks
from bigmodel.keras.visualization_gallery import (
    plot_bounding_box_gallery,
    plot_image_gallery,
    plot_segmentation_mask_gallery,
)

__all__ = ["draw_bounding_boxes", "draw_segmentation_masks", "plot_bounding_box_gallery",
           "plot_image_gallery", "plot_segmentation_mask_gallery"]


def __getattr__(name: str) -> object:
    raise unsupported_attribute("keras.visualization", name)
