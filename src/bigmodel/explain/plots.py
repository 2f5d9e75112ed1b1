"""Pictures of explanations (matplotlib's Agg canvas; no pyplot state, no display needed).

- :func:`plot_explanation`: one example -- images: input, heatmap, overlay; sequences: the series
  over time and the attribution per step; tokens: tokens coloured by attribution; vectors: bars.
- :func:`plot_attention`: raw per-head maps of chosen layers and the rollout.
- :func:`plot_curves`: deletion / insertion curves against random order.
- :func:`tokens_html`: an HTML page colouring each token by its attribution.

Signed attributions use a diverging map centred on 0 (red: for the explained class, blue: against);
non-negative ones (saliency, Grad-CAM, attention) a sequential map.
"""

from __future__ import annotations

import html
import io
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from bigmodel.utils.io import atomic_write_bytes, atomic_write_text


def save_figure(figure: Any, path: str | os.PathLike, dpi: int = 100) -> Path:
    """Write ``figure`` as PNG to ``path`` atomically."""
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=dpi, bbox_inches="tight")
    atomic_write_bytes(path, buffer.getvalue())
    return Path(path)


def _name(names: Sequence | None, index: int) -> str:
    return str(names[index]) if names is not None and 0 <= index < len(names) else str(index)


def caption(explanation: Any, index: int, class_names: Sequence | None = None) -> str:
    """``predicted: Coat (0.91) | true: Coat | explained: Coat`` for example ``index``."""
    predicted = int(explanation.predictions[index])
    target = int(explanation.targets[index])
    probability = float(explanation.probabilities[index, predicted])
    text = f"predicted: {_name(class_names, predicted)} ({probability:.2f})"
    if explanation.labels is not None:
        text += f" | true: {_name(class_names, int(explanation.labels[index]))}"
    return text + f" | explained: {_name(class_names, target)}"


def _colour_scale(values: np.ndarray, light: bool = False) -> tuple[str, float, float]:
    """Colormap and limits: diverging around 0 for signed values, sequential otherwise (a light
    one behind text)."""
    if values.min() < 0:
        limit = float(np.abs(values).max()) or 1.0
        return "RdBu_r", -limit, limit
    return ("YlOrRd" if light else "inferno"), 0.0, float(values.max()) or 1.0


def _image(explanation: Any, index: int) -> np.ndarray:
    image = explanation.inputs[index].float()
    if not explanation.channels_last:
        image = image.permute(1, 2, 0)
    array = image.numpy()
    low, high = array.min(), array.max()
    array = (array - low) / (high - low) if high > low else np.zeros_like(array)
    return array[..., 0] if array.shape[-1] == 1 else array[..., :3]


def _overlay(positions: np.ndarray, cmap: str, low: float, high: float) -> np.ndarray:
    """RGBA heatmap whose opacity grows with ``|attribution|`` (the input shows where it is ~0)."""
    import matplotlib as mpl

    limit = max(abs(low), abs(high)) or 1.0
    rgba = mpl.colormaps[cmap](mpl.colors.Normalize(vmin=low, vmax=high)(positions))
    rgba[..., 3] = 0.85 * np.clip(np.abs(positions) / limit, 0.0, 1.0)
    return rgba


def plot_explanation(explanation: Any, index: int = 0, class_names: Sequence | None = None,
                     title: str | None = None) -> Any:
    """A ``Figure`` for example ``index`` of an :class:`~bigmodel.explain.Explanation`.

    Raises:
        ConfigError: ``index`` outside the batch.
    """
    from matplotlib.figure import Figure

    from bigmodel.errors import ConfigError

    if not -len(explanation) <= index < len(explanation):
        raise ConfigError(f"plot: index {index} is out of range for {len(explanation)} examples")
    positions = explanation.position_map()[index].float().numpy()
    cmap, low, high = _colour_scale(positions, light=explanation.input_type == "tokens")
    heading = title or f"{explanation.method}: {caption(explanation, index, class_names)}"
    kind = explanation.input_type
    if kind == "image":
        image = _image(explanation, index)
        figure = Figure(figsize=(9.5, 3.6))
        axes = figure.subplots(1, 3)
        gray = "gray" if image.ndim == 2 else None
        axes[0].imshow(image, cmap=gray)
        axes[0].set_title("input")
        shown = axes[1].imshow(positions, cmap=cmap, vmin=low, vmax=high)
        axes[1].set_title("attribution")
        figure.colorbar(shown, ax=axes[1], fraction=0.046, pad=0.04)
        axes[2].imshow(image, cmap=gray)
        axes[2].imshow(_overlay(positions, cmap, low, high))
        axes[2].set_title("overlay")
        for ax in axes:
            ax.set_xticks([])
            ax.set_yticks([])
    elif kind == "sequence":
        series = explanation.inputs[index].float().numpy()  # (T, F)
        figure = Figure(figsize=(9, 5))
        top, bottom = figure.subplots(2, 1, sharex=True)
        steps = np.arange(series.shape[0])
        for feature in range(min(series.shape[1], 8)):
            top.plot(steps, series[:, feature], linewidth=1, label=f"feature {feature}")
        if series.shape[1] > 1:
            top.legend(fontsize=7, ncol=4)
        top.set_ylabel("input")
        colours = np.where(positions >= 0, "#c0392b", "#2471a3")
        bottom.bar(steps, positions, color=colours)
        bottom.set_ylabel("attribution per step")
        bottom.set_xlabel("time step")
    elif kind == "tokens":
        figure = _token_figure(explanation, index, positions, cmap, low, high)
    else:
        figure = Figure(figsize=(9, 3.5))
        ax = figure.subplots()
        colours = np.where(positions >= 0, "#c0392b", "#2471a3")
        ax.bar(np.arange(len(positions)), positions, color=colours)
        ax.set_xlabel("feature")
        ax.set_ylabel("attribution")
    figure.suptitle(heading, fontsize=10)
    return figure


def token_strings(explanation: Any, index: int) -> list[str]:
    """The example's tokens as strings (``explanation.tokens`` or the ids)."""
    ids = explanation.inputs[index].tolist()
    if explanation.tokens is not None and index < len(explanation.tokens):
        given = [str(t) for t in explanation.tokens[index]]
        if len(given) == len(ids):
            return given
    return [str(i) for i in ids]


def _token_figure(explanation: Any, index: int, positions: np.ndarray, cmap: str, low: float,
                  high: float) -> Any:
    import matplotlib as mpl
    from matplotlib.figure import Figure

    words = token_strings(explanation, index)
    per_row = 12
    rows = max(1, -(-len(words) // per_row))
    figure = Figure(figsize=(10, 0.6 * rows + 1.2))
    ax = figure.subplots()
    colormap = mpl.colormaps[cmap]
    norm = mpl.colors.Normalize(vmin=low, vmax=high)
    for i, (word, value) in enumerate(zip(words, positions)):
        row, col = divmod(i, per_row)
        ax.text(col / per_row, 1 - (row + 0.5) / rows, word, fontsize=9, ha="left", va="center",
                bbox={"facecolor": colormap(norm(value)), "edgecolor": "none", "pad": 2})
    ax.set_axis_off()
    figure.colorbar(mpl.cm.ScalarMappable(norm=norm, cmap=colormap), ax=ax, orientation="horizontal",
                    fraction=0.08, pad=0.05)
    return figure


def plot_attention(explanation: Any, index: int = 0, layers: Sequence[int] | None = None,
                   heads: Sequence[int] | None = None) -> Any:
    """Per-head attention maps of the chosen layers (rows) and heads (columns), plus the rollout.

    Raises:
        ConfigError: the explanation holds no attention maps, or a layer/head index out of range.
    """
    from matplotlib.figure import Figure

    from bigmodel.errors import ConfigError

    maps = explanation.extras.get("attention")
    if not maps:
        raise ConfigError("plot_attention: the explanation holds no attention maps (use "
                          "method='attention')")
    names = list(maps)
    layers = list(range(len(names))) if layers is None else list(layers)
    bad = [i for i in layers if not -len(names) <= i < len(names)]
    if bad:
        raise ConfigError(f"plot_attention: layers {bad} out of range; there are {len(names)} "
                          f"attention layers")
    num_heads = maps[names[0]].shape[1]
    heads = list(range(min(num_heads, 8))) if heads is None else list(heads)
    bad = [h for h in heads if not -num_heads <= h < num_heads]
    if bad:
        raise ConfigError(f"plot_attention: heads {bad} out of range; layers have {num_heads} heads")
    labels = token_strings(explanation, index) if explanation.input_type == "tokens" else None
    columns = len(heads) + 1
    figure = Figure(figsize=(2.4 * columns, 2.4 * len(layers) + 0.6))
    axes = np.atleast_2d(figure.subplots(len(layers), columns, squeeze=False))
    for row, layer in enumerate(layers):
        weights = maps[names[layer]][index]
        for col, head in enumerate(heads):
            ax = axes[row, col]
            ax.imshow(weights[head].numpy(), cmap="viridis", vmin=0)
            ax.set_title(f"{names[layer]} head {head}", fontsize=7)
            _token_ticks(ax, labels)
        ax = axes[row, -1]
        if row == 0 and "rollout" in explanation.extras:
            ax.imshow(explanation.extras["rollout"][index].numpy(), cmap="viridis", vmin=0)
            ax.set_title("rollout", fontsize=7)
            _token_ticks(ax, labels)
        else:
            ax.set_axis_off()
    figure.suptitle(f"attention: {caption(explanation, index, explanation.class_names)}",
                    fontsize=9)
    return figure


def _token_ticks(ax: Any, labels: list[str] | None) -> None:
    if labels is not None and len(labels) <= 32:
        ax.set_xticks(range(len(labels)), labels, rotation=90, fontsize=5)
        ax.set_yticks(range(len(labels)), labels, fontsize=5)
    else:
        ax.set_xticks([])
        ax.set_yticks([])


def plot_curves(curves: Any, index: int | None = None, title: str = "") -> Any:
    """Deletion and insertion curves (mean over examples, or one example) against random order."""
    from matplotlib.figure import Figure

    pick = (lambda c: c.mean(dim=0)) if index is None else (lambda c: c[index])
    fractions = curves.fractions.numpy()
    figure = Figure(figsize=(9, 3.6))
    left, right = figure.subplots(1, 2)
    for ax, name in ((left, "deletion"), (right, "insertion")):
        ours = pick(getattr(curves, name))
        rand = pick(getattr(curves, f"random_{name}"))
        area = float(torch.trapezoid(ours, curves.fractions))
        area_random = float(torch.trapezoid(rand, curves.fractions))
        ax.plot(fractions, ours.numpy(), label=f"attribution order (AUC {area:.3f})")
        ax.plot(fractions, rand.numpy(), "--", label=f"random order (AUC {area_random:.3f})")
        ax.set_xlabel(f"fraction of features {'removed' if name == 'deletion' else 'restored'}")
        ax.set_ylabel("probability of explained class")
        ax.set_title(name)
        ax.set_ylim(0, 1.02)
        ax.legend(fontsize=8)
    if title:
        figure.suptitle(title, fontsize=10)
    return figure


def tokens_html(explanation: Any, indices: Sequence[int], class_names: Sequence | None = None,
                title: str | None = None) -> str:
    """A self-contained HTML page: per example a caption and its tokens on coloured backgrounds
    (red for the explained class, blue against; the attribution in each token's tooltip)."""
    positions = explanation.position_map().float()
    parts = []
    for index in indices:
        values = positions[index].numpy()
        scale = float(np.abs(values).max()) or 1.0
        spans = []
        for word, value in zip(token_strings(explanation, index), values):
            strength = min(1.0, abs(float(value)) / scale)
            colour = (f"rgba(192, 57, 43, {strength:.3f})" if value >= 0
                      else f"rgba(36, 113, 163, {strength:.3f})")
            spans.append(f'<span class="token" style="background:{colour}" '
                         f'title="{float(value):+.4g}">{html.escape(word)}</span>')
        parts.append(f"<section><h2>example {index}: {html.escape(caption(explanation, index, class_names))}"
                     f"</h2><p>{' '.join(spans)}</p></section>")
    heading = html.escape(title or f"{explanation.method} attributions")
    return ("<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\"><title>" + heading
            + "</title><style>body{font-family:sans-serif;max-width:60em;margin:2em auto}"
            ".token{padding:0.1em 0.2em;margin:0.05em;border-radius:0.2em;line-height:2}"
            "h2{font-size:1em}</style></head><body><h1>" + heading + "</h1>\n"
            + "\n".join(parts) + "\n</body></html>\n")


def write_html(text: str, path: str | os.PathLike) -> Path:
    """Write an HTML page atomically."""
    atomic_write_text(path, text)
    return Path(path)
