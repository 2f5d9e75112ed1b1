"""Interpretable features for the perturbation methods (LIME, KernelSHAP) and the faithfulness curves.

Perturbing single pixels of an image tells little and costs many samples; these methods switch
*groups* of input values on and off instead:

- images: ``slic`` superpixels (regions of similar colour, compact in space) or square ``patches``;
- sequences: windows of ``group_size`` consecutive time steps (all features of a step together);
- token ids: windows of ``group_size`` tokens;
- vectors: each feature on its own (or windows of ``group_size``).

:func:`feature_masks` returns one integer label per input value, shaped so it broadcasts against
the inputs (labels ``0..n-1`` per example), as Captum's ``feature_mask`` expects.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import torch

from bigmodel.errors import ConfigError, ShapeError, describe
from bigmodel.explain.inputs import InputSpec

SEGMENTATIONS = ("auto", "slic", "patches", "pixels")


def patches(height: int, width: int, patch_size: int | tuple[int, int]) -> torch.Tensor:
    """Labels ``(H, W)`` of a grid of ``patch_size`` squares (the last row/column may be smaller).

    Raises:
        ConfigError: a patch size below 1.
    """
    ph, pw = (patch_size, patch_size) if isinstance(patch_size, int) else patch_size
    if ph < 1 or pw < 1:
        raise ConfigError(f"explain: patch_size must be at least 1; received {patch_size!r}")
    rows = torch.arange(height) // ph
    cols = torch.arange(width) // pw
    return rows[:, None] * math.ceil(width / pw) + cols[None, :]


def groups(length: int, group_size: int = 1) -> torch.Tensor:
    """Labels ``(length,)``: windows of ``group_size`` consecutive positions.

    Raises:
        ConfigError: a group size below 1.
    """
    if not isinstance(group_size, int) or group_size < 1:
        raise ConfigError(f"explain: group_size must be a positive int; received {group_size!r}")
    return torch.arange(length) // group_size


def slic(image: Any, n_segments: int = 50, compactness: float = 0.2, iterations: int = 10,
         channels_last: bool = False) -> torch.Tensor:
    """SLIC superpixels (Achanta et al., 2012) of one image: labels ``(H, W)``, 0..n-1.

    k-means on (colour, position) started from a regular grid of ``n_segments`` centres, each pixel
    compared only with centres within two grid steps ``S``; the distance is
    ``sqrt(d_colour^2 + (compactness * d_space / S)^2)`` with colours scaled to [0, 1]. Afterwards
    every label is split into its 4-connected pieces and pieces smaller than half a grid
    cell are merged into the neighbour they share most border with.

    Args:
        image: ``(C, H, W)`` (or ``(H, W, C)`` with ``channels_last``) or ``(H, W)`` values.
        n_segments: approximate number of superpixels.
        compactness: weight of spatial distance (larger: squarer superpixels).
        iterations: k-means iterations.

    Raises:
        ConfigError: ``n_segments`` < 1 or ``compactness`` < 0.
        ShapeError: not a 2-D or 3-D image.
    """
    from scipy import ndimage

    if not isinstance(n_segments, int) or n_segments < 1:
        raise ConfigError(f"explain: n_segments must be a positive int; received {n_segments!r}")
    if compactness < 0:
        raise ConfigError(f"explain: compactness must be >= 0; received {compactness!r}")
    array = image.detach().cpu().double().numpy() if isinstance(image, torch.Tensor) \
        else np.asarray(image, dtype=np.float64)
    if array.ndim == 2:
        array = array[None]
    elif array.ndim == 3 and channels_last:
        array = array.transpose(2, 0, 1)
    elif array.ndim != 3:
        raise ShapeError(f"explain: slic needs one image (C, H, W) or (H, W); received "
                         f"{describe(array)}")
    channels, height, width = array.shape
    span = array.max() - array.min()
    colour = (array - array.min()) / span if span > 0 else np.zeros_like(array)  # (C, H, W)
    step = math.sqrt(height * width / n_segments)
    cy, cx = np.meshgrid(np.arange(step / 2, height, step), np.arange(step / 2, width, step),
                         indexing="ij")
    centres = np.stack([cy.ravel(), cx.ravel()], axis=1)  # (K, 2) positions
    iy = np.minimum(centres[:, 0].astype(int), height - 1)
    ix = np.minimum(centres[:, 1].astype(int), width - 1)
    centre_colour = colour[:, iy, ix].T.copy()  # (K, C)
    weight = (compactness / step) ** 2
    ys, xs = np.mgrid[0:height, 0:width].astype(np.float64)
    labels = np.zeros((height, width), dtype=np.int64)
    reach = 2 * step
    for _ in range(max(1, iterations)):
        best = np.full((height, width), np.inf)
        for k, (y, x) in enumerate(centres):
            y0, y1 = max(0, int(y - reach)), min(height, int(y + reach) + 1)
            x0, x1 = max(0, int(x - reach)), min(width, int(x + reach) + 1)
            if y0 >= y1 or x0 >= x1:
                continue
            window = colour[:, y0:y1, x0:x1]
            distance = ((window - centre_colour[k][:, None, None]) ** 2).sum(axis=0) + weight * (
                (ys[y0:y1, x0:x1] - y) ** 2 + (xs[y0:y1, x0:x1] - x) ** 2)
            closer = distance < best[y0:y1, x0:x1]
            best[y0:y1, x0:x1][closer] = distance[closer]
            labels[y0:y1, x0:x1][closer] = k
        flat = labels.ravel()
        counts = np.bincount(flat, minlength=len(centres)).astype(np.float64)
        keep = counts > 0
        safe = np.maximum(counts, 1.0)
        centres = np.stack([np.bincount(flat, ys.ravel(), len(centres)) / safe,
                            np.bincount(flat, xs.ravel(), len(centres)) / safe], axis=1)
        centre_colour = np.stack([np.bincount(flat, colour[c].ravel(), len(centres)) / safe
                                  for c in range(channels)], axis=1)
        centres, centre_colour = centres[keep], centre_colour[keep]
    labels = labels.reshape(height, width)
    return torch.from_numpy(_enforce_connectivity(labels, max(1, int(step * step / 2)), ndimage))


def _enforce_connectivity(labels: np.ndarray, min_size: int, ndimage: Any) -> np.ndarray:
    pieces = np.zeros_like(labels)
    count = 0
    for value in np.unique(labels):
        components, n = ndimage.label(labels == value)
        pieces[components > 0] = components[components > 0] + count - 1
        count += n
    sizes = np.bincount(pieces.ravel(), minlength=count)
    for piece in np.argsort(sizes):  # smallest first
        if sizes[piece] >= min_size or sizes[piece] == 0 or len(np.unique(pieces)) == 1:
            continue
        region = pieces == piece
        border = ndimage.binary_dilation(region) & ~region
        neighbours = pieces[border]
        if len(neighbours) == 0:
            continue
        target = np.bincount(neighbours).argmax()
        pieces[region] = target
        sizes[target] += sizes[piece]
        sizes[piece] = 0
    _, relabelled = np.unique(pieces, return_inverse=True)
    return relabelled.reshape(labels.shape).astype(np.int64)


def feature_masks(x: torch.Tensor, spec: InputSpec, segmentation: Any = "auto", *,
                  n_segments: int = 50, patch_size: int = 4, compactness: float = 0.2,
                  group_size: int = 1) -> torch.Tensor:
    """Integer labels grouping the values of each example into interpretable features.

    Args:
        x: inputs ``(B, ...)``.
        segmentation: ``"auto"`` (SLIC for images, groups otherwise), ``"slic"``, ``"patches"``,
            ``"pixels"`` (every pixel, all channels together), or a label tensor broadcastable to
            one input (e.g. ``(H, W)`` / ``(1, H, W)`` for images) or to the batch.

    Returns:
        Labels broadcastable to ``x``: images ``(B, 1, H, W)`` / ``(B, H, W, 1)``; sequences
        ``(B, T, 1)``; tokens and vectors ``(B, T)`` / ``(B, F)``. Labels are ``0..n-1`` per example.

    Raises:
        ConfigError: unknown segmentation name or one that does not fit the input type.
        ShapeError: a label tensor that does not broadcast to the inputs.
    """
    if isinstance(segmentation, (torch.Tensor, np.ndarray)):
        return _given_mask(torch.as_tensor(segmentation), x, spec)
    if segmentation not in SEGMENTATIONS:
        raise ConfigError(f"explain: unknown segmentation {segmentation!r}; expected one of "
                          f"{', '.join(SEGMENTATIONS)} or a tensor of labels")
    batch = len(x)
    if spec.kind != "image":
        if segmentation not in ("auto",):
            raise ConfigError(f"explain: segmentation {segmentation!r} is for images; "
                              f"{spec.kind} inputs are grouped with group_size=")
        labels = groups(x.shape[1], group_size).to(x.device)
        if spec.kind == "sequence":
            return labels.view(1, -1, 1).expand(batch, -1, 1).contiguous()
        return labels.view(1, -1).expand(batch, -1).contiguous()
    height, width = spec.spatial_shape(x)
    if segmentation == "patches":
        masks = patches(height, width, patch_size).expand(batch, height, width)
    elif segmentation == "pixels":
        masks = torch.arange(height * width).view(height, width).expand(batch, height, width)
    else:
        masks = torch.stack([slic(image, n_segments, compactness, channels_last=spec.channels_last)
                             for image in x])
    masks = masks.to(x.device).contiguous()
    return masks.unsqueeze(spec.channel_axis)


def _given_mask(mask: torch.Tensor, x: torch.Tensor, spec: InputSpec) -> torch.Tensor:
    if mask.is_floating_point():
        raise ShapeError(f"explain: a segmentation mask must hold integer labels; received "
                         f"{describe(mask)}")
    mask = mask.to(x.device).long()
    if spec.kind == "image":
        spatial = spec.spatial_shape(x)
        if tuple(mask.shape) == spatial:
            mask = mask.unsqueeze(0)
        if mask.ndim == 3 and tuple(mask.shape[1:]) == spatial:
            mask = mask.unsqueeze(spec.channel_axis)
    elif spec.kind == "sequence" and mask.ndim == 1:
        mask = mask.view(1, -1, 1)
    elif mask.ndim == 1:
        mask = mask.unsqueeze(0)
    try:
        expanded = mask.expand(len(x), *mask.shape[1:]) if len(mask) == 1 else mask
        torch.broadcast_shapes(expanded.shape, x.shape)
    except RuntimeError:
        raise ShapeError(f"explain: segmentation mask {describe(mask)} does not broadcast to the "
                         f"inputs {describe(x)}") from None
    if len(expanded) != len(x):
        raise ShapeError(f"explain: segmentation mask {describe(mask)} does not broadcast to the "
                         f"inputs {describe(x)}")
    relabelled = []
    for labels in expanded:  # Captum wants labels 0..n-1 per example
        _, inverse = torch.unique(labels, return_inverse=True)
        relabelled.append(inverse)
    return torch.stack(relabelled)


def num_features(masks: torch.Tensor) -> list[int]:
    """Number of features (labels) in each example's mask."""
    return [int(m.max()) + 1 for m in masks]
