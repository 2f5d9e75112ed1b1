"""Token explanations as pictures: which tokens to show, and text wrapped by its measured width.

Padding and the tokenizers' framing tokens say nothing about a text: a fortunes text of 37 words
padded to 256 ids would show 219 ``<pad>`` boxes. :data:`SPECIAL_TOKENS` (every bigmodel tokenizer's
``<pad>`` / ``<bos>`` / ``<eos>`` and WordPiece's ``[PAD]`` / ``[CLS]`` / ``[SEP]``; ``<unk>`` stays:
an unknown word is part of the text) are hidden from token figures and pages; attention maps drop
only :data:`PAD_TOKENS` (a ``[CLS]`` row is what a class-token model reads). A caller with its own
tokenizer passes ``hidden_tokens`` (e.g. :func:`special_token_strings` of it).
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from typing import Any

import numpy as np

PAD_TOKENS = frozenset({"<pad>", "[PAD]"})
SPECIAL_TOKENS = PAD_TOKENS | {"<bos>", "<eos>", "[CLS]", "[SEP]"}

_FONT_SIZE = 9  # points
_BOX_PAD = 2.0  # points around each word (matplotlib's bbox pad)
_GAP = 0.05  # inches between boxes


def special_token_strings(tokenizer: Any) -> frozenset[str]:
    """The token strings of a tokenizer's special ids (``pad_id``, ``bos_id``, ``eos_id``,
    ``cls_id``, ``sep_id``; None or absent ones skipped), read through its ``itos``."""
    itos = list(getattr(tokenizer, "itos", ()) or ())
    found = set()
    for name in ("pad_id", "bos_id", "eos_id", "cls_id", "sep_id"):
        index = getattr(tokenizer, name, None)
        if isinstance(index, int) and 0 <= index < len(itos):
            found.add(str(itos[index]))
    return frozenset(found)


def visible_positions(words: Sequence[str], hidden: Collection[str] | None = None) -> list[int]:
    """Indices of ``words`` not in ``hidden`` (default :data:`SPECIAL_TOKENS`)."""
    hidden = SPECIAL_TOKENS if hidden is None else hidden
    return [i for i, word in enumerate(words) if word not in hidden]


def layout_words(words: Sequence[str], width: float, font_size: float = _FONT_SIZE,
                 dpi: float = 100.0) -> list[list[tuple[int, float, float]]]:
    """Rows of ``(index, x, box width)`` in inches: each word's box measured with the Agg renderer,
    a new row when the next box would pass ``width`` (a box wider than a row gets its own row)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
    from matplotlib.font_manager import FontProperties

    renderer = FigureCanvasAgg(Figure(figsize=(1, 1), dpi=dpi)).get_renderer()
    font = FontProperties(size=font_size)
    rows: list[list[tuple[int, float, float]]] = [[]]
    x = 0.0
    for index, word in enumerate(words):
        text_width = renderer.get_text_width_height_descent(word, font, ismath=False)[0] / dpi
        box = text_width + 2 * _BOX_PAD / 72.0
        if rows[-1] and x + box > width:
            rows.append([])
            x = 0.0
        rows[-1].append((index, x, box))
        x += box + _GAP
    return rows


def token_figure(words: Sequence[str], values: np.ndarray, cmap: str, low: float, high: float,
                 colour_label: str, note: str = "", width: float = 9.5) -> Any:
    """A ``Figure``: the words in reading order on boxes coloured by ``values``, wrapped to rows of
    ``width`` inches, and a horizontal colour bar labelled ``colour_label``."""
    import matplotlib as mpl
    from matplotlib.figure import Figure

    rows = layout_words(words, width)
    row_height = 2.3 * _FONT_SIZE / 72.0
    text_height = max(len(rows), 1) * row_height
    margin, bar, top, bottom = 0.25, 0.14, 0.55, 0.75  # top: room for a two-line suptitle
    height = top + text_height + 0.2 + bar + bottom
    figure = Figure(figsize=(width + 2 * margin, height))
    ax = figure.add_axes((margin / (width + 2 * margin), (height - top - text_height) / height,
                          width / (width + 2 * margin), text_height / height))
    ax.set_xlim(0, width)
    ax.set_ylim(text_height, 0)  # data units are inches from the top-left corner
    ax.set_axis_off()
    colormap = mpl.colormaps[cmap]
    norm = mpl.colors.Normalize(vmin=low, vmax=high)
    pad = _BOX_PAD / 72.0
    for row_index, row in enumerate(rows):
        for index, x, _ in row:
            ax.text(x + pad, (row_index + 0.5) * row_height, words[index], fontsize=_FONT_SIZE,
                    ha="left", va="center", parse_math=False, clip_on=False,
                    bbox={"facecolor": colormap(norm(values[index])), "edgecolor": "none",
                          "pad": _BOX_PAD})
    if not words:
        ax.text(0, row_height / 2, "(no tokens to show)", fontsize=_FONT_SIZE, va="center")
    colour_axes = figure.add_axes((margin / (width + 2 * margin), bottom / height,
                                   width / (width + 2 * margin), bar / height))
    figure.colorbar(mpl.cm.ScalarMappable(norm=norm, cmap=colormap), cax=colour_axes,
                    orientation="horizontal")
    colour_axes.set_xlabel(colour_label + (f"   ({note})" if note else ""), fontsize=8)
    colour_axes.tick_params(labelsize=7)
    return figure


__all__ = ["PAD_TOKENS", "SPECIAL_TOKENS", "layout_words", "special_token_strings", "token_figure",
           "visible_positions"]
