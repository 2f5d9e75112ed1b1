"""Keras-like progress display for training, evaluation and prediction.

- ``verbose=1`` on a terminal: a live bar redrawn in place::

      Epoch 1/5
      1500/1875 ━━━━━━━━━━━━━━━━━━━━ 2s 6ms/step - accuracy: 0.8012 - loss: 0.5566

- ``verbose=1`` without a terminal, or ``verbose=2``: one line per epoch::

      Epoch 1/5 - 1875/1875 - 12s 6ms/step - accuracy: 0.8123 - loss: 0.5234 - val_loss: 0.4431

- ``verbose=0``: nothing.

The bar is hand-written (no tqdm/rich) because the trainer only asks it to draw at most
``REFRESH_SECONDS`` apart, so its cost per training step is zero; values are read from the
accelerator only when it draws.
"""

from __future__ import annotations

import sys
from collections.abc import Mapping
from typing import TextIO

REFRESH_SECONDS = 0.1  # at most ~10 redraws (and device reads) per second
_BAR_WIDTH = 20


def format_value(value: float) -> str:
    """Keras formatting: 4 decimals, or scientific notation for tiny magnitudes."""
    return f"{value:.4f}" if value == 0 or abs(value) >= 1e-3 else f"{value:.4e}"


def format_duration(seconds: float) -> str:
    """``12s``, ``250ms``; ETA style ``1:05`` / ``1:02:03`` above a minute."""
    if seconds >= 3600:
        return f"{int(seconds // 3600)}:{int(seconds % 3600 // 60):02d}:{int(seconds % 60):02d}"
    if seconds >= 60:
        return f"{int(seconds // 60)}:{int(seconds % 60):02d}"
    if seconds >= 1:
        return f"{int(seconds)}s"
    return f"{int(seconds * 1000)}ms"


def format_per_step(seconds: float, steps: int) -> str:
    """``6ms/step`` (``us/step`` below a millisecond, ``s/step`` above a second)."""
    per = seconds / max(steps, 1)
    if per >= 1:
        return f"{per:.0f}s/step"
    if per >= 1e-3:
        return f"{per * 1e3:.0f}ms/step"
    return f"{per * 1e6:.0f}us/step"


def format_logs(logs: Mapping[str, float]) -> str:
    """`` - key: value`` pairs: training keys in name order, then ``val_`` keys in name order."""
    train = sorted(key for key in logs if not key.startswith("val_"))
    val = sorted(key for key in logs if key.startswith("val_"))
    parts = []
    for key in train + val:
        try:
            parts.append(f"{key}: {format_value(float(logs[key]))}")
        except (TypeError, ValueError):
            continue  # a non-numeric entry a callback added
    return "".join(f" - {part}" for part in parts)


class ProgressBar:
    """Draws training/evaluation progress. Cheap to call: nothing happens when ``verbose=0``.

    Args:
        verbose: 0 silent, 1 live bar on a terminal (one line per epoch otherwise), 2 one line per epoch.
        stream: where to write; ``sys.stdout`` when ``None``.
    """

    def __init__(self, verbose: int = 1, stream: TextIO | None = None) -> None:
        self.verbose = verbose
        self.stream = stream if stream is not None else sys.stdout
        isatty = getattr(self.stream, "isatty", None)
        self.live = verbose == 1 and bool(isatty and isatty())
        self._prefix = ""
        self._steps: int | None = None
        self._last_width = 0

    def epoch_begin(self, epoch: int, epochs: int, steps: int | None) -> None:
        """Start an epoch (``epoch`` is 0-based); prints ``Epoch i/n`` above the live bar."""
        self._steps = steps
        self._prefix = f"Epoch {epoch + 1}/{epochs}"
        if self.live:
            self._write(self._prefix + "\n")

    def update(self, step: int, elapsed: float, logs: Mapping[str, float]) -> None:
        """Redraw the live bar after ``step`` batches (no-op unless live)."""
        if not self.live:
            return
        per = elapsed / max(step, 1)
        if self._steps:
            timing = format_duration(per * max(self._steps - step, 0))
        else:
            timing = format_duration(elapsed)
        line = f"{self._counter(step)} {timing} {format_per_step(elapsed, step)}{format_logs(logs)}"
        self._redraw(line)

    def epoch_end(self, step: int, elapsed: float, logs: Mapping[str, float]) -> None:
        """Print the epoch's final line (live: completes the bar; otherwise one full line)."""
        if self.verbose == 0:
            return
        tail = f"{format_duration(elapsed)} {format_per_step(elapsed, step)}{format_logs(logs)}"
        if self.live:
            self._redraw(f"{self._counter(step, final=True)} {tail}")
            self._write("\n")
            self._last_width = 0
        else:
            total = self._steps or step
            self._write(f"{self._prefix} - {step}/{total} - {tail}\n")

    def summary(self, step: int, elapsed: float, logs: Mapping[str, float]) -> None:
        """One final line for ``evaluate``/``predict``."""
        if self.verbose == 0:
            return
        self._write(f"{step}/{step} - {format_duration(elapsed)} "
                    f"{format_per_step(elapsed, step)}{format_logs(logs)}\n")

    def _counter(self, step: int, final: bool = False) -> str:
        if not self._steps:
            return f"{step}/Unknown"
        done = _BAR_WIDTH if final else min(_BAR_WIDTH, int(_BAR_WIDTH * step / self._steps))
        width = len(str(self._steps))
        return f"{step:>{width}}/{self._steps} " + "━" * done + " " * (_BAR_WIDTH - done)

    def _redraw(self, line: str) -> None:
        padding = " " * max(0, self._last_width - len(line))
        self._last_width = len(line)
        self._write("\r" + line + padding)

    def _write(self, text: str) -> None:
        self.stream.write(text)
        self.stream.flush()


__all__ = ["REFRESH_SECONDS", "ProgressBar", "format_duration", "format_logs", "format_per_step",
           "format_value"]
