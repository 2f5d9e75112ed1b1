"""Size / speed / accuracy of each compression stage against the original, as Markdown and a PNG.

Speeds are measured interleaved: every round times each stage once (batch-1 latency, then batch
throughput), and the median over rounds is kept, so load from other processes hits all stages alike
and the ratios stay meaningful on a shared machine.
"""

from __future__ import annotations

import json
import os
import statistics
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch

from bigmodel.engine.inference import predict_batches
from bigmodel.errors import DataError
from bigmodel.utils.io import atomic_path, atomic_write_text


@dataclass
class StageResult:
    """One row of the report."""

    name: str
    accuracy: float
    size_bytes: int
    latency_ms: float = float("nan")  # batch of 1, median
    throughput: float = float("nan")  # images per second at the large batch, median
    params: int | None = None
    macs: int | None = None
    note: str = ""


def files_size(directory: str | os.PathLike) -> int:
    """Bytes of ``model.json`` + ``model.safetensors`` in a model directory."""
    directory = Path(directory)
    return sum((directory / n).stat().st_size for n in ("model.json", "model.safetensors")
               if (directory / n).is_file())


def accuracy(predict: Callable[[Any], torch.Tensor], x, y, batch_size: int = 256) -> float:
    """Top-1 accuracy of ``predict`` (a model, or any callable inputs -> logits) over ``(x, y)``,
    run in batches by :func:`bigmodel.engine.inference.predict_batches` (0.0 for no samples).

    Raises:
        DataError: ``x`` and ``y`` hold different numbers of samples.
    """
    if len(x) != len(y):
        raise DataError(f"accuracy: x has {len(x)} samples but y has {len(y)}")
    logits = predict_batches(predict, x, batch_size, empty=None, name="accuracy")
    if logits is None:
        return 0.0
    return int((logits.argmax(-1) == torch.as_tensor(y)).sum()) / len(x)


def compare_speed(predictors: dict[str, Callable[[Any], Any]], one, batch, rounds: int = 7,
                  min_seconds: float = 0.2) -> dict[str, tuple[float, float]]:
    """``{name: (batch-1 latency ms, images/s at len(batch))}``, medians of interleaved rounds."""
    def timed(fn, x, calls):
        start = time.perf_counter()
        for _ in range(calls):
            fn(x)
        return (time.perf_counter() - start) / calls

    with torch.inference_mode():
        calls = {}
        for name, fn in predictors.items():  # warm up and size each measurement to ~min_seconds
            fn(one)
            fn(batch)
            calls[name] = (max(3, int(min_seconds / max(timed(fn, one, 3), 1e-6))),
                           max(1, int(min_seconds / max(timed(fn, batch, 1), 1e-6))))
        samples: dict[str, tuple[list[float], list[float]]] = {n: ([], []) for n in predictors}
        for _ in range(rounds):
            for name, fn in predictors.items():
                samples[name][0].append(timed(fn, one, calls[name][0]))
                samples[name][1].append(timed(fn, batch, calls[name][1]))
    return {name: (statistics.median(lat) * 1e3, len(batch) / statistics.median(thr))
            for name, (lat, thr) in samples.items()}


def _ratio(value: float, base: float) -> str:
    if not (value == value and base == base) or value == 0:
        return "–"
    return f"{base / value:.2f}×"


def _singular(unit: str) -> str:
    return unit[:-1] if unit.endswith("s") else unit


def markdown_table(stages: list[StageResult], unit: str = "images") -> str:
    """The comparison table; ratios are against the first stage (the original). ``unit``: what
    one input is (``images``, ``texts``, ``clips``), for the throughput column (``clips/s``)."""
    base = stages[0]
    lines = ["| stage | accuracy | Δ acc (points) | size | size ratio | latency b=1 | speed-up b=1 "
             "| throughput | speed-up | params | MACs | note |",
             "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |"]
    for s in stages:
        delta = (s.accuracy - base.accuracy) * 100
        thr_ratio = (f"{s.throughput / base.throughput:.2f}×"
                     if s.throughput == s.throughput and base.throughput == base.throughput else "–")
        lines.append(
            f"| {s.name} | {s.accuracy * 100:.2f}% | {delta:+.2f} | {s.size_bytes / 1024:.1f} KiB | "
            f"{_ratio(s.size_bytes, base.size_bytes)} | "
            f"{f'{s.latency_ms:.3f} ms' if s.latency_ms == s.latency_ms else '–'} | "
            f"{_ratio(s.latency_ms, base.latency_ms)} | "
            f"{f'{s.throughput:,.0f} {unit}/s' if s.throughput == s.throughput else '–'} | "
            f"{thr_ratio} | "
            f"{s.params if s.params is not None else '–'} | "
            f"{s.macs if s.macs is not None else '–'} | {s.note} |")
    return "\n".join(lines) + "\n"


def plot_stages(stages: list[StageResult], path: str | os.PathLike) -> Path:
    """PNG: accuracy against size (left) and against batch-1 latency (right), one point per stage."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(11, 4.6))
    markers = "osD^v<>PX*"
    for index, s in enumerate(stages):
        style = {"s": 70, "marker": markers[index % len(markers)], "color": f"C{index % 10}"}
        axes[0].scatter([s.size_bytes / 1024], [s.accuracy * 100], label=s.name, **style)
        if s.latency_ms == s.latency_ms:  # NaN: no speed measured for this stage
            axes[1].scatter([s.latency_ms], [s.accuracy * 100], **style)
    for ax, label, title in ((axes[0], "model size (KiB)", "accuracy vs size"),
                             (axes[1], "latency, batch 1 (ms)", "accuracy vs latency")):
        ax.set_xlabel(label)
        ax.set_ylabel("test accuracy (%)")
        ax.set_title(title)
        ax.grid(alpha=0.3)
    fig.legend(loc="lower center", ncol=min(4, len(stages)), frameon=False)
    fig.tight_layout(rect=(0, 0.06 * ((len(stages) + 3) // 4) + 0.02, 1, 1))
    path = Path(path)
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=100)
    plt.close(fig)
    return path


def write_report(stages: list[StageResult], directory: str | os.PathLike,
                 title: str = "Compression report", notes: str = "", unit: str = "images") -> Path:
    """Write ``report.md``, ``compression.png`` and ``results.json`` into ``directory``
    (``unit``: what one input is, as in :func:`markdown_table`)."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    plot_stages(stages, directory / "compression.png")
    text = (f"# {title}\n\n{markdown_table(stages, unit)}\n"
            f"Ratios are against the first row. Latency: median time of one {_singular(unit)}; "
            f"throughput: {unit} per second at the large batch; both measured interleaved in one "
            "process.\n\n"
            f"{notes}\n![accuracy against size and latency](compression.png)\n")
    atomic_write_text(directory / "report.md", text)
    atomic_write_text(directory / "results.json",
                      json.dumps([asdict(s) for s in stages], indent=2) + "\n")
    return directory / "report.md"
