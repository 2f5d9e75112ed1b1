"""Run-directory artifacts: training curves, a confusion matrix and a short ``report.md``.

Everything here works from plain data (a ``metrics.csv`` as the CSV logger writes it, label arrays,
dicts of numbers), so it serves the CLI, notebooks and the Keras surface alike. Plots use
matplotlib's Agg canvas directly (no pyplot state, no display needed) and every file is written
atomically.
"""

from __future__ import annotations

import csv
import io
import math
import os
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np

from bigmodel.errors import DataError, DataFileError, ShapeError, describe
from bigmodel.utils.io import atomic_write_bytes, atomic_write_text

__all__ = [
    "confusion_matrix",
    "format_duration",
    "plot_confusion_matrix",
    "plot_training_curves",
    "read_metrics_csv",
    "render_report",
    "write_report",
]


def read_metrics_csv(path: str | os.PathLike) -> dict[str, list[float]]:
    """Columns of a per-epoch metrics CSV (header ``epoch,loss,accuracy,val_loss,...``) as floats.

    Empty and ``NA`` cells (a metric missing in some epoch, as Keras's CSVLogger writes it) become NaN.

    Raises:
        DataFileError: the file is missing, has no header, or a cell is not a number.
    """
    path = Path(path)
    if not path.is_file():
        raise DataFileError(f"Metrics file not found: {path}")
    with open(path, newline="", encoding="utf-8") as handle:
        reader = csv.DictReader(handle)
        if not reader.fieldnames:
            raise DataFileError(f"{path}: empty metrics file (expected a header such as "
                                "'epoch,loss,accuracy')")
        columns: dict[str, list[float]] = {name: [] for name in reader.fieldnames}
        for line, row in enumerate(reader, start=2):
            for name in reader.fieldnames:
                cell = (row.get(name) or "").strip()
                try:
                    missing = not cell or cell.upper() == "NA"  # Keras's CSVLogger writes NA
                    columns[name].append(math.nan if missing else float(cell))
                except ValueError:
                    raise DataFileError(f"{path}, line {line}: column '{name}' holds {cell!r}; "
                                        "expected a number") from None
    return columns


def _png_bytes(figure) -> bytes:
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=100, bbox_inches="tight")
    return buffer.getvalue()


def plot_training_curves(metrics_csv: str | os.PathLike, out_png: str | os.PathLike,
                         title: str | None = None) -> Path:
    """One panel per quantity (loss first), training and validation curves over epochs.

    Args:
        metrics_csv: per-epoch log with an ``epoch`` column (0-based, as Keras's CSVLogger writes)
            and columns ``loss``, ``accuracy``, ``val_loss``, ``val_accuracy``, ``lr``, ...
        out_png: where to write the PNG.
        title: figure title.

    Returns:
        ``out_png`` as a Path.

    Raises:
        DataFileError: the CSV is missing or malformed, or holds no epoch rows.
    """
    from matplotlib.figure import Figure

    columns = read_metrics_csv(metrics_csv)
    num_rows = max((len(values) for values in columns.values()), default=0)
    if num_rows == 0:
        raise DataFileError(f"{metrics_csv}: no epochs recorded; nothing to plot")
    epochs = columns.pop("epoch", None)
    x = [e + 1 for e in epochs] if epochs else list(range(1, num_rows + 1))
    # A panel per base quantity: "loss" pairs with "val_loss"; lr gets its own panel.
    bases = [name for name in columns if not name.startswith("val_")]
    bases += [name[4:] for name in columns if name.startswith("val_") and name[4:] not in columns]
    bases.sort(key=lambda name: (name != "loss", name == "lr", name))
    figure = Figure(figsize=(5.0 * len(bases), 3.6), layout="constrained")
    for index, base in enumerate(bases):
        axes = figure.add_subplot(1, len(bases), index + 1)
        for name, label, style in ((base, "train", "-o"), (f"val_{base}", "validation", "--s")):
            if name in columns and not all(math.isnan(v) for v in columns[name]):
                axes.plot(x, columns[name], style, label=label, markersize=3)
        axes.set_xlabel("epoch")
        axes.set_title(base)
        axes.grid(alpha=0.3)
        if base == "lr":
            axes.set_yscale("log")
        axes.legend()
        axes.xaxis.get_major_locator().set_params(integer=True)
    if title:
        figure.suptitle(title)
    atomic_write_bytes(out_png, _png_bytes(figure))
    return Path(out_png)


def confusion_matrix(y_true: Sequence[int] | np.ndarray, y_pred: Sequence[int] | np.ndarray,
                     num_classes: int | None = None) -> np.ndarray:
    """Counts ``cm[true, predicted]`` as an int64 ``(num_classes, num_classes)`` array.

    Raises:
        ShapeError: the label arrays are not 1-D or differ in length.
        DataError: a label is negative or not below ``num_classes``.
    """
    y_true = np.asarray(y_true)
    y_pred = np.asarray(y_pred)
    if y_true.ndim != 1 or y_pred.shape != y_true.shape:
        raise ShapeError(f"confusion_matrix expects two 1-D label arrays of equal length; received "
                         f"y_true {describe(y_true)} and y_pred {describe(y_pred)}")
    if y_true.size and (not np.issubdtype(y_true.dtype, np.integer)
                        or not np.issubdtype(y_pred.dtype, np.integer)):
        raise DataError(f"confusion_matrix expects integer labels; received y_true "
                        f"{describe(y_true)} and y_pred {describe(y_pred)}")
    if num_classes is None:
        num_classes = int(max(y_true.max(initial=-1), y_pred.max(initial=-1))) + 1
    low = min(y_true.min(initial=0), y_pred.min(initial=0))
    high = max(y_true.max(initial=0), y_pred.max(initial=0))
    if low < 0 or (y_true.size and high >= num_classes):
        raise DataError(f"confusion_matrix: labels must be in 0..{num_classes - 1}; received values "
                        f"from {low} to {high}")
    flat = y_true.astype(np.int64) * num_classes + y_pred.astype(np.int64)
    return np.bincount(flat, minlength=num_classes * num_classes).reshape(num_classes, num_classes)


def plot_confusion_matrix(matrix: np.ndarray, out_png: str | os.PathLike,
                          class_names: Sequence[str] | None = None,
                          title: str = "Confusion matrix") -> Path:
    """Heat map of a confusion matrix: colour is the row-normalized rate, text the count.

    Args:
        matrix: ``(K, K)`` counts, rows true classes, columns predictions.
        out_png: where to write the PNG.
        class_names: ``K`` tick labels (default ``0..K-1``).

    Raises:
        ShapeError: the matrix is not square, or ``class_names`` has the wrong length.
    """
    from matplotlib.figure import Figure

    matrix = np.asarray(matrix)
    if matrix.ndim != 2 or matrix.shape[0] != matrix.shape[1] or matrix.shape[0] == 0:
        raise ShapeError(f"plot_confusion_matrix expects a square (K, K) matrix; received "
                         f"{describe(matrix)}")
    size = matrix.shape[0]
    names = list(class_names) if class_names is not None else [str(i) for i in range(size)]
    if len(names) != size:
        raise ShapeError(f"plot_confusion_matrix: {len(names)} class names for a {size}×{size} "
                         "matrix")
    totals = matrix.sum(axis=1, keepdims=True)
    rates = np.divide(matrix, totals, out=np.zeros(matrix.shape, dtype=float), where=totals > 0)
    side = max(4.0, 0.55 * size + 2.5)
    figure = Figure(figsize=(side + 1.0, side), layout="constrained")
    axes = figure.add_subplot(1, 1, 1)
    image = axes.imshow(rates, cmap="Blues", vmin=0.0, vmax=1.0)
    figure.colorbar(image, ax=axes, fraction=0.046, pad=0.04, label="fraction of true class")
    axes.set_xticks(range(size), names, rotation=45, ha="right")
    axes.set_yticks(range(size), names)
    axes.set_xlabel("predicted")
    axes.set_ylabel("true")
    if size <= 20:
        for row in range(size):
            for col in range(size):
                axes.text(col, row, str(int(matrix[row, col])), ha="center", va="center",
                          fontsize=7, color="white" if rates[row, col] > 0.5 else "black")
    total = int(matrix.sum())
    accuracy = np.trace(matrix) / total if total else float("nan")
    axes.set_title(f"{title} (accuracy {accuracy:.2%}, n={total})")
    atomic_write_bytes(out_png, _png_bytes(figure))
    return Path(out_png)


def write_run_plots(run_dir: str | os.PathLike, y_true: Sequence[int] | np.ndarray,
                    y_pred: Sequence[int] | np.ndarray, class_names: Sequence[str],
                    confusion_title: str, curves_title: str) -> tuple[np.ndarray, dict[str, str]]:
    """The run directory's ``confusion_matrix.png`` (test set) and, when ``metrics.csv`` exists,
    ``training_curves.png``; returns the confusion matrix and the report's ``{caption: file}``."""
    run_dir = Path(run_dir)
    matrix = confusion_matrix(y_true, y_pred, len(class_names))
    plot_confusion_matrix(matrix, run_dir / "confusion_matrix.png", class_names,
                          title=confusion_title)
    images = {"Confusion matrix (test set)": "confusion_matrix.png"}
    if (run_dir / "metrics.csv").is_file():
        plot_training_curves(run_dir / "metrics.csv", run_dir / "training_curves.png",
                             title=curves_title)
        images = {"Training curves": "training_curves.png", **images}
    return matrix, images


def format_duration(seconds: float) -> str:
    """``75.2`` -> ``"1m 15s"``; under a minute keeps one decimal."""
    if seconds < 60:
        return f"{seconds:.1f}s"
    minutes, secs = divmod(int(round(seconds)), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h {minutes}m {secs}s" if hours else f"{minutes}m {secs}s"


def _fmt(value: float | None, percent: bool = False) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "–"
    return f"{value:.2%}" if percent else f"{value:.4f}"


def render_report(title: str, summary: Mapping[str, str],
                  results: Mapping[str, Mapping[str, float | None]],
                  matrix: np.ndarray | None = None, class_names: Sequence[str] | None = None,
                  images: Mapping[str, str] | None = None, recipe_yaml: str | None = None,
                  notes: Sequence[str] = ()) -> str:
    """Markdown for ``report.md``.

    Args:
        title: the heading.
        summary: ordered facts shown as a two-column table (model, data, time, ...).
        results: ``{split: {"loss": ..., "accuracy": ...}}`` (missing values shown as "–").
        matrix: test confusion matrix, for a per-class table.
        class_names: names of the matrix's classes.
        images: ``{caption: relative path}`` of plots to embed.
        recipe_yaml: the resolved recipe, appended verbatim.
        notes: extra bullet points.
    """
    lines = [f"# {title}", ""]
    lines += ["| | |", "| --- | --- |"]
    lines += [f"| {key} | {value} |" for key, value in summary.items()]
    lines += ["", "## Results", "", "| split | loss | accuracy |", "| --- | ---: | ---: |"]
    for split, values in results.items():
        lines.append(f"| {split} | {_fmt(values.get('loss'))} | "
                     f"{_fmt(values.get('accuracy'), percent=True)} |")
    if notes:
        lines.append("")
        lines += [f"- {note}" for note in notes]
    if matrix is not None:
        matrix = np.asarray(matrix)
        names = list(class_names) if class_names is not None else [
            str(i) for i in range(len(matrix))]
        lines += ["", "## Per-class test accuracy", "",
                  "| class | accuracy | support | most often mistaken for |",
                  "| --- | ---: | ---: | --- |"]
        for index, name in enumerate(names):
            row = matrix[index]
            support = int(row.sum())
            accuracy = row[index] / support if support else None
            errors = row.copy()
            errors[index] = 0
            confused = (f"{names[int(errors.argmax())]} ({int(errors.max())})"
                        if errors.max() > 0 else "–")
            lines.append(f"| {name} | {_fmt(accuracy, percent=True)} | {support} | {confused} |")
    for caption, path in (images or {}).items():
        lines += ["", f"## {caption}", "", f"![{caption}]({path})"]
    if recipe_yaml:
        lines += ["", "## Recipe (resolved)", "", "```yaml", recipe_yaml.rstrip(), "```"]
    return "\n".join(lines) + "\n"


def write_report(path: str | os.PathLike, *args, **kwargs) -> Path:
    """:func:`render_report` written atomically to ``path``; same arguments."""
    atomic_write_text(path, render_report(*args, **kwargs))
    return Path(path)
