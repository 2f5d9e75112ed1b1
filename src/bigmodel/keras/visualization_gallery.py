"""``keras.visualization`` galleries: grids of images, with boxes or segmentation masks, drawn
with matplotlib as Keras 3.15 draws them (same arguments, defaults and layout)."""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from bigmodel.errors import ConfigError
from bigmodel.keras.visualization_draw import (
    batched_images,
    check_data_format,
    draw_bounding_boxes,
    draw_segmentation_masks,
    to_numpy,
)


def _to_0_255(images: np.ndarray, value_range: Any) -> np.ndarray:
    """Linearly map ``value_range`` to (0, 255), as Keras's ``_transform_value_range``."""
    low, high = value_range
    if low == 0 and high == 255:
        return images
    images = images.astype("float32")
    return (images - low) / (high - low) * 255.0


def plot_image_gallery(images: Any, y_true: Any = None, y_pred: Any = None,
                       label_map: dict | None = None, rows: int | None = None,
                       cols: int | None = None, value_range: Any = (0, 255), scale: float = 2,
                       path: str | None = None, show: bool | None = None,
                       transparent: bool = True, dpi: int = 60, legend_handles: Any = None,
                       data_format: str | None = None) -> None:
    """Show (or save to ``path``) a ``rows x cols`` grid of images with optional class titles.

    Args:
        images: ``(batch, height, width, channels)`` images.
        y_true: true class per image (titles "Label: name").
        y_pred: predicted class per image (titles "Pred: name").
        label_map: class -> name; required with ``y_true`` / ``y_pred``.
        rows: grid rows (default ``ceil(sqrt(batch))``).
        cols: grid columns (default ``batch // rows``, Keras's formula).
        value_range: the range of the pixel values, mapped to (0, 255).
        scale: inches per image.
        path: save the figure there (PNG, ...) instead of showing it.
        show: show with ``plt.show()`` (default: when ``path`` is None).
        transparent: transparent background in the saved file.
        dpi: dots per inch of the saved file.
        legend_handles: matplotlib handles for a legend under the grid.
        data_format: ``"channels_last"`` or ``"channels_first"``.

    Raises:
        ConfigError: ``path`` with ``show=True``, labels without ``label_map``.
        ShapeError: ``images`` not 4D.
    """
    import matplotlib.pyplot as plt

    if path is not None and show:
        raise ConfigError(f"plot_image_gallery() expects either `path` to be set or `show` to be "
                          f"true; received path={path!r}, show={show}")
    if (y_true is not None or y_pred is not None) and label_map is None:
        raise ConfigError("plot_image_gallery(): `y_true` / `y_pred` need a `label_map`; "
                          "received label_map=None")
    show = show if show is not None else path is None
    data_format = check_data_format(data_format, "plot_image_gallery()")
    images = batched_images(images, "plot_image_gallery()")
    batch_size = images.shape[0]
    rows = rows or int(math.ceil(math.sqrt(batch_size)))
    cols = cols or int(math.ceil(batch_size // rows))
    images = images[:min(rows * cols, batch_size)]
    if data_format == "channels_first":
        images = images.transpose(0, 2, 3, 1)
    fig, axes = plt.subplots(nrows=rows, ncols=cols, figsize=(cols * scale, rows * scale),
                             frameon=False, layout="tight", squeeze=True, sharex="row",
                             sharey="col")
    fig.subplots_adjust(wspace=0, hspace=0)
    if isinstance(axes, np.ndarray) and axes.ndim == 1:
        axes = np.expand_dims(axes, 0 if rows == 1 else -1)
    if legend_handles is not None:
        fig.legend(handles=legend_handles, loc="lower center")
    images = _to_0_255(images, value_range)
    y_true = to_numpy(y_true) if y_true is not None else None
    y_pred = to_numpy(y_pred) if y_pred is not None else None
    for row in range(rows):
        for col in range(cols):
            index = row * cols + col
            axis = axes[row, col] if isinstance(axes, np.ndarray) else axes
            if index >= len(images):  # Keras fails on an IndexError here; leave the cell blank
                axis.axis("off")
                continue
            axis.imshow(images[index].astype("uint8"))
            axis.margins(x=0, y=0)
            axis.axis("off")
            parts = []
            if y_true is not None and index < len(y_true):
                parts.append(f"Label: {label_map.get(y_true[index], 'Unknown')}")
            if y_pred is not None and index < len(y_pred):
                parts.append(f"Pred: {label_map.get(y_pred[index], 'Unknown')}")
            if parts:
                axis.set_title("  ".join(parts), fontsize=8)
    if path is not None:
        plt.savefig(fname=path, pad_inches=0, bbox_inches="tight", transparent=transparent,
                    dpi=dpi)
        plt.close()
    elif show:
        plt.show()
        plt.close()


def plot_bounding_box_gallery(images: Any, bounding_box_format: str, y_true: dict | None = None,
                              y_pred: dict | None = None, value_range: Any = (0, 255),
                              true_color: Any = (0, 188, 212), pred_color: Any = (255, 235, 59),
                              line_thickness: int = 2, font_scale: float = 1.0,
                              text_thickness: int | None = None,
                              class_mapping: dict | None = None,
                              ground_truth_mapping: dict | None = None,
                              prediction_mapping: dict | None = None, legend: bool = False,
                              legend_handles: Any = None, rows: int | None = None,
                              cols: int | None = None, data_format: str | None = None,
                              **kwargs: Any) -> None:
    """A gallery of images with true and predicted boxes drawn (see ``draw_bounding_boxes``).

    Args:
        images: ``(batch, height, width, channels)`` images.
        bounding_box_format: the format of the boxes.
        y_true: ``{"boxes", "labels"[, "confidences"]}`` ground truth, drawn in ``true_color``.
        y_pred: the same for predictions, drawn in ``pred_color``.
        value_range: range of the pixel values.
        true_color: RGB of the true boxes.
        pred_color: RGB of the predicted boxes.
        line_thickness: box line thickness.
        font_scale: label font scale.
        text_thickness: label thickness (default ``line_thickness``).
        class_mapping: class -> name for both, unless the next two are given.
        ground_truth_mapping: class -> name for ``y_true``.
        prediction_mapping: class -> name for ``y_pred``.
        legend: add a "Ground Truth" / "Prediction" legend.
        legend_handles: matplotlib handles of a legend of your own (not with ``legend``).
        rows: grid rows.
        cols: grid columns.
        data_format: ``"channels_last"`` or ``"channels_first"``.
        **kwargs: passed to :func:`plot_image_gallery` (``path``, ``scale``, ``dpi``, ...).

    Raises:
        ConfigError: both ``legend`` and ``legend_handles``. ShapeError: images not 4D.
    """
    from matplotlib import patches

    prediction_mapping = prediction_mapping or class_mapping
    ground_truth_mapping = ground_truth_mapping or class_mapping
    data_format = check_data_format(data_format, "plot_bounding_box_gallery()")
    plotted = batched_images(images, "plot_bounding_box_gallery()")
    if data_format == "channels_first":
        plotted = plotted.transpose(0, 2, 3, 1)
    common = dict(bounding_box_format=bounding_box_format, line_thickness=line_thickness,
                  text_thickness=text_thickness, font_scale=font_scale)
    if y_true is not None:
        plotted = draw_bounding_boxes(plotted, y_true, color=true_color,
                                      class_mapping=ground_truth_mapping, **common)
    if y_pred is not None:
        plotted = draw_bounding_boxes(plotted, y_pred, color=pred_color,
                                      class_mapping=prediction_mapping, **common)
    if legend:
        if legend_handles:
            raise ConfigError("plot_bounding_box_gallery(): pass `legend` or `legend_handles`, "
                              "not both")
        legend_handles = [
            patches.Patch(color=np.array(true_color) / 255.0, label="Ground Truth"),
            patches.Patch(color=np.array(pred_color) / 255.0, label="Prediction"),
        ]
    return plot_image_gallery(plotted, value_range=value_range, legend_handles=legend_handles,
                              rows=rows, cols=cols, **kwargs)


def plot_segmentation_mask_gallery(images: Any, num_classes: int, value_range: Any = (0, 255),
                                   y_true: Any = None, y_pred: Any = None,
                                   color_mapping: dict | None = None, blend: bool = True,
                                   alpha: float = 0.8, ignore_index: int = -1,
                                   data_format: str | None = None, **kwargs: Any) -> None:
    """One row per image: the image, then its true and/or predicted masks drawn over it.

    Args:
        images: ``(batch, height, width, channels)`` images.
        num_classes: number of classes (see ``draw_segmentation_masks``).
        value_range: range of the pixel values.
        y_true: ``(batch, height, width[, 1])`` true masks.
        y_pred: the same for predicted masks.
        color_mapping: class -> RGB.
        blend: blend the colours with the image.
        alpha: opacity of the colours.
        ignore_index: mask value not drawn.
        data_format: ``"channels_last"`` or ``"channels_first"``.
        **kwargs: passed to :func:`plot_image_gallery`.

    Raises:
        ShapeError: images not 4D, masks of another size.
    """
    data_format = check_data_format(data_format, "plot_segmentation_mask_gallery()")
    images_np = batched_images(images, "plot_segmentation_mask_gallery()")
    if data_format == "channels_first":
        images_np = images_np.transpose(0, 2, 3, 1)
    cols = 1 + (y_true is not None) + (y_pred is not None)

    def draw(masks: Any) -> np.ndarray:
        masks = to_numpy(masks)
        if data_format == "channels_first" and masks.ndim == 4:
            masks = masks.transpose(0, 2, 3, 1)
        return draw_segmentation_masks(images_np, masks.astype("int32"), num_classes=num_classes,
                                       color_mapping=color_mapping, alpha=alpha,
                                       ignore_index=ignore_index, blend=blend)

    true_drawn = draw(y_true) if y_true is not None else None
    pred_drawn = draw(y_pred) if y_pred is not None else None
    gallery = []
    for i in range(images_np.shape[0]):
        gallery.append(images_np[i])
        if true_drawn is not None:
            gallery.append(true_drawn[i])
        if pred_drawn is not None:
            gallery.append(pred_drawn[i])
    return plot_image_gallery(np.stack(gallery, axis=0), value_range=value_range,
                              rows=images_np.shape[0], cols=cols, **kwargs)


__all__ = ["plot_bounding_box_gallery", "plot_image_gallery", "plot_segmentation_mask_gallery"]
