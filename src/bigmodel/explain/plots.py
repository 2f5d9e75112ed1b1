"""Pictures of explanations (matplotlib's Agg canvas; no pyplot state, no display needed).

- :func:`plot_explanation`: one example -- images: input, heatmap, overlay; spectrograms (a speech
  model's log-mel / MFCC input): the same, stacked, with time in s and frequency in Hz (mel bands);
  sequences: the series over time and the attribution per step; tokens: the text's tokens
  coloured by attribution, wrapped by measured width, padding and framing tokens hidden; vectors:
  bars. The title always says ``predicted: X (p=0.93) · true: Y`` (true when labels were given).
- :func:`plot_attention`: raw per-head maps of chosen layers and the rollout; token maps cropped to
  the real (non-padding) tokens, both axes labelled with them.
- :func:`plot_curves`: deletion / insertion curves against random order.
- :func:`tokens_html`: an HTML page colouring each token by its attribution.
- :func:`figure_texts`: every text of a figure (titles, axis and tick labels, words), for tests.

Signed attributions use a diverging map centred on 0 (red: for the explained class, blue: against);
non-negative ones (saliency, Grad-CAM, attention) a sequential map.
"""

from __future__ import annotations

import html
import io
import os
from collections.abc import Collection, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from bigmodel.explain.spectrogram import label_axes
from bigmodel.explain.token_figure import PAD_TOKENS, token_figure, visible_positions
from bigmodel.utils.io import atomic_write_bytes, atomic_write_text


def save_figure(figure: Any, path: str | os.PathLike, dpi: int = 100) -> Path:
    """Write ``figure`` as PNG to ``path`` atomically."""
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=dpi, bbox_inches="tight")
    atomic_write_bytes(path, buffer.getvalue())
    return Path(path)


def _name(names: Sequence | None, index: int) -> str:
    return str(names[index]) if names is not None and 0 <= index < len(names) else str(index)


def figure_texts(figure: Any) -> list[str]:
    """Every non-empty visible text of ``figure`` once laid out: suptitle, axes titles, axis and
    tick labels, colour-bar labels, words drawn with ``text`` (what a reader of the PNG sees)."""
    from matplotlib.text import Text

    figure.draw_without_rendering()  # tick labels of automatic locators exist after a draw
    outside = set()  # labels of ticks a locator made beyond the axis limits are not drawn
    for ax in figure.axes:
        for axis in (ax.xaxis, ax.yaxis):
            low, high = sorted(axis.get_view_interval())
            margin = 1e-9 * max(1.0, abs(high - low))
            for tick in axis.get_major_ticks():
                if not low - margin <= tick.get_loc() <= high + margin:
                    outside.update((id(tick.label1), id(tick.label2)))
    return [t.get_text() for t in figure.findobj(Text)
            if t.get_visible() and t.get_text() and id(t) not in outside]


def caption(explanation: Any, index: int, class_names: Sequence | None = None) -> str:
    """``predicted: Coat (p=0.91) · true: Coat`` for example ``index`` (``· explained: X`` added
    when the explained class is not the predicted one; no ``true`` without labels)."""
    names = class_names if class_names is not None else explanation.class_names
    predicted = int(explanation.predictions[index])
    target = int(explanation.targets[index])
    probability = float(explanation.probabilities[index, predicted])
    text = f"predicted: {_name(names, predicted)} (p={probability:.2f})"
    if explanation.labels is not None:
        text += f" · true: {_name(names, int(explanation.labels[index]))}"
    if target != predicted:
        text += f" · explained: {_name(names, target)}"
    return text


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
                     title: str | None = None, *, spectrogram: dict | None = None,
                     hidden_tokens: Collection[str] | None = None) -> Any:
    """A ``Figure`` for example ``index`` of an :class:`~bigmodel.explain.Explanation`.

    Args:
        explanation: what :func:`bigmodel.explain.explain` returned.
        index: the example (position in the explanation's batch).
        class_names: names of the classes (default ``explanation.class_names``).
        title: first line of the title (default the method's name); the second line is always the
            :func:`caption` (predicted class and probability, true class when known).
        spectrogram: time / frequency units of spectrogram inputs
            (:func:`bigmodel.explain.spectrogram.spectrogram_axes`; default
            ``explanation.extras["spectrogram"]``, which ``explain`` records for speech models).
        hidden_tokens: token strings not shown (default
            :data:`~bigmodel.explain.token_figure.SPECIAL_TOKENS`: padding and framing tokens).

    Raises:
        ConfigError: ``index`` outside the batch.
    """
    from matplotlib.figure import Figure
    from matplotlib.ticker import MaxNLocator

    from bigmodel.errors import ConfigError

    if not -len(explanation) <= index < len(explanation):
        raise ConfigError(f"plot: index {index} is out of range for {len(explanation)} examples")
    positions = explanation.position_map()[index].float().numpy()
    cmap, low, high = _colour_scale(positions, light=explanation.input_type == "tokens")
    heading = f"{title or explanation.method}\n{caption(explanation, index, class_names)}"
    kind = explanation.input_type
    if spectrogram is None:
        spectrogram = explanation.extras.get("spectrogram")
    if kind == "image" and spectrogram is not None:
        figure = _spectrogram_figure(explanation, index, positions, cmap, low, high, spectrogram)
    elif kind == "image":
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
        bottom.xaxis.set_major_locator(MaxNLocator(integer=True))
    elif kind == "tokens":
        words = token_strings(explanation, index)
        shown = visible_positions(words, hidden_tokens)
        hidden = len(words) - len(shown)
        target = _name(class_names if class_names is not None else explanation.class_names,
                       int(explanation.targets[index]))
        figure = token_figure(
            [words[i] for i in shown], positions[shown], cmap, low, high,
            f"attribution to '{target}'" + (" (red: for, blue: against)" if low < 0 else ""),
            note=f"{hidden} padding / special tokens not shown" if hidden else "")
    else:
        figure = Figure(figsize=(9, 3.5))
        ax = figure.subplots()
        colours = np.where(positions >= 0, "#c0392b", "#2471a3")
        ax.bar(np.arange(len(positions)), positions, color=colours)
        ax.set_xlabel("feature")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.set_ylabel("attribution")
    figure.suptitle(heading, fontsize=10)
    return figure


def _spectrogram_figure(explanation: Any, index: int, positions: np.ndarray, cmap: str,
                        low: float, high: float, axes_info: dict) -> Any:
    """Input, attribution and overlay of a ``(1, F, T)`` spectrogram, stacked, with units."""
    from matplotlib.figure import Figure

    image = _image(explanation, index)
    if image.ndim != 2:  # not one band x frame plane: nothing to put units on
        image = image.mean(axis=-1)
    bands, frames = positions.shape
    figure = Figure(figsize=(9, 8.2))
    axes = figure.subplots(3, 1, sharex=True)
    titles = ("input (normalized features)", "attribution", "overlay")
    for row, ax in enumerate(axes):
        extent = label_axes(ax, axes_info, frames, bands, show_x=row == 2)
        if row != 1:
            ax.imshow(image, cmap="gray", origin="lower", aspect="auto", extent=extent)
        if row == 1:
            shown = ax.imshow(positions, cmap=cmap, vmin=low, vmax=high, origin="lower",
                              aspect="auto", extent=extent)
            figure.colorbar(shown, ax=list(axes), fraction=0.03, pad=0.02, label="attribution")
        if row == 2:
            ax.imshow(_overlay(positions, cmap, low, high), origin="lower", aspect="auto",
                      extent=extent)
        ax.set_title(titles[row], fontsize=9)
    return figure


def token_strings(explanation: Any, index: int) -> list[str]:
    """The example's tokens as strings (``explanation.tokens`` or the ids)."""
    ids = explanation.inputs[index].tolist()
    if explanation.tokens is not None and index < len(explanation.tokens):
        given = [str(t) for t in explanation.tokens[index]]
        if len(given) == len(ids):
            return given
    return [str(i) for i in ids]


def plot_attention(explanation: Any, index: int = 0, layers: Sequence[int] | None = None,
                   heads: Sequence[int] | None = None, *,
                   hidden_tokens: Collection[str] | None = None) -> Any:
    """Per-head attention maps of the chosen layers (rows) and heads (columns), plus the rollout.

    Token inputs: the maps are cropped to the tokens not in ``hidden_tokens`` (default
    :data:`~bigmodel.explain.token_figure.PAD_TOKENS`) and both axes carry them (every k-th
    beyond 40 tokens).

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
    side = int(maps[names[0]].shape[-1])
    labels, keep = _attention_tokens(explanation, index, side, hidden_tokens)
    size = min(max(2.4, 0.15 * len(keep) + 1.2), 7.0) if labels is not None else 2.4
    columns = len(heads) + 1
    figure = Figure(figsize=(size * columns, size * len(layers) + 0.5), layout="constrained")
    axes = np.atleast_2d(figure.subplots(len(layers), columns, squeeze=False))
    crop = np.ix_(keep, keep)
    for row, layer in enumerate(layers):
        weights = maps[names[layer]][index]
        for col, head in enumerate(heads):
            ax = axes[row, col]
            ax.imshow(weights[head].numpy()[crop], cmap="viridis", vmin=0)
            ax.set_title(f"{names[layer]} head {head}", fontsize=7)
            # Token labels on the outer edges only (left column, bottom row): the panels share
            # their axes, and labelling all of them cost ~15 s of text layout for 6x8 panels.
            _token_ticks(ax, labels, size, first_column=col == 0,
                         bottom_row=row == len(layers) - 1)
        ax = axes[row, -1]
        if row == 0 and "rollout" in explanation.extras:
            ax.imshow(explanation.extras["rollout"][index].numpy()[crop], cmap="viridis", vmin=0)
            ax.set_title("rollout", fontsize=7)
            _token_ticks(ax, labels, size, first_column=True, bottom_row=True)  # alone in its column
        else:
            ax.set_axis_off()
    heading = f"attention: {caption(explanation, index)}"
    if labels is not None and len(keep) < side:
        heading += f" ({side - len(keep)} padding tokens cropped)"
    figure.suptitle(heading, fontsize=9)
    return figure


def _attention_tokens(explanation: Any, index: int, side: int,
                      hidden: Collection[str] | None) -> tuple[list[str] | None, list[int]]:
    """Labels of the kept rows / columns of a ``side x side`` map and their indices: the token
    strings minus padding (a map one longer than the text starts with a class token, ``[CLS]``);
    no labels and every index for other inputs."""
    every = list(range(side))
    if explanation.input_type != "tokens":
        return None, every
    words = token_strings(explanation, index)
    if side == len(words) + 1:
        words = ["[CLS]", *words]
    if side != len(words):
        return None, every
    keep = visible_positions(words, PAD_TOKENS if hidden is None else hidden)
    return [words[i] for i in keep], keep


def _token_ticks(ax: Any, labels: list[str] | None, panel: float = 2.4,
                 first_column: bool = True, bottom_row: bool = True) -> None:
    """Token labels on both axes: every one up to 40 tokens, else every k-th; rotated, the font
    sized to the room per label in a ``panel``-inch panel (4.5 to 8 points). Panels outside the
    first column / bottom row keep the tick marks and leave the labels to their neighbours."""
    if labels is None or not labels:
        ax.set_xticks([])
        ax.set_yticks([])
        return
    step = max(1, -(-len(labels) // 40))
    ticks = list(range(0, len(labels), step))
    room = 0.7 * panel * 72.0 / len(ticks)  # points per label along an axis
    size = min(8.0, max(4.5, 0.8 * room))
    names = [labels[i] if len(labels[i]) <= 14 else labels[i][:13] + "…" for i in ticks]
    if bottom_row:
        ax.set_xticks(ticks, names, rotation=90, fontsize=size)
        ax.set_xlabel("key token" + (f" (every {step})" if step > 1 else ""), fontsize=7)
    else:
        ax.set_xticks(ticks, [])
    if first_column:
        ax.set_yticks(ticks, names, fontsize=size)
        ax.set_ylabel("query token", fontsize=7)
    else:
        ax.set_yticks(ticks, [])


def plot_curves(curves: Any, index: int | None = None, title: str = "") -> Any:
    """Deletion and insertion curves (mean over examples, or one example) against random order."""
    from matplotlib.figure import Figure

    pick = (lambda c: c.mean(dim=0)) if index is None else (lambda c: c[index])
    fractions = curves.fractions.numpy()
    figure = Figure(figsize=(9, 3.8), layout="constrained")  # the suptitle clear of the titles
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
                title: str | None = None, *, hidden_tokens: Collection[str] | None = None) -> str:
    """A self-contained HTML page: per example a caption and its tokens on coloured backgrounds
    (red for the explained class, blue against; the attribution in each token's tooltip).
    Tokens in ``hidden_tokens`` (default padding and framing tokens) are left out."""
    positions = explanation.position_map().float()
    parts = []
    for index in indices:
        words = token_strings(explanation, index)
        shown = visible_positions(words, hidden_tokens)
        values = positions[index].numpy()[shown]
        scale = float(np.abs(values).max()) if len(values) else 1.0
        scale = scale or 1.0
        spans = []
        for word, value in zip([words[i] for i in shown], values):
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
