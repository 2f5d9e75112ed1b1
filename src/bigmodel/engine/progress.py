"""Keras-like progress display for training, evaluation and prediction.

- ``verbose=1`` on a terminal: a live bar redrawn in place::

      Epoch 1/5
      1500/1875 ━━━━━━━━━━━━━━━━━━━━ 2s 6ms/step - accuracy: 0.8012 - loss: 0.5566

- ``verbose=1`` without a terminal (output piped to a file or ``tee``): one line every
  :func:`progress_interval` seconds within an epoch (default 10 s, environment variable
  ``BIGMODEL_PROGRESS_INTERVAL``), then the epoch's line::

      Epoch 1/5 - 600/1875 - ETA 0:24 - 6ms/step - accuracy: 0.7012 - loss: 0.8566
      Epoch 1/5 - 1875/1875 - 12s 6ms/step - accuracy: 0.8123 - loss: 0.5234 - val_loss: 0.4431

- ``verbose=2``: the epoch's line only (Keras's ``verbose=2``).
- ``verbose=0``: nothing.

With interactive output turned off (:func:`set_interactive_output`, what Keras's
``keras.config.disable_interactive_logging`` calls), progress goes line by line to the Python logger
``bigmodel.progress`` (level INFO) instead of standard output, as Keras sends it to absl logging.

Long steps that are not epochs (rendering a speech corpus, evaluating a large test set) report
through :class:`Phase`: the same in-place bar on a terminal, one line every
:func:`progress_interval` seconds otherwise, nothing for a phase shorter than that. Its default
verbosity is the one :func:`verbosity` sets around a run (``run_recipe(verbose=0)`` silences it).

The bar is hand-written (no tqdm/rich) because the trainer only asks it to draw at most
``REFRESH_SECONDS`` apart, so its cost per training step is zero; values are read from the
accelerator only when it draws.
"""

from __future__ import annotations

import contextlib
import contextvars
import logging
import math
import os
import sys
import time
from collections.abc import Iterator, Mapping
from typing import TextIO

from bigmodel.errors import ConfigError

REFRESH_SECONDS = 0.1  # at most ~10 redraws (and device reads) per second
DEFAULT_INTERVAL = 10.0  # seconds between progress lines when output is not a terminal
INTERVAL_VARIABLE = "BIGMODEL_PROGRESS_INTERVAL"
_BAR_WIDTH = 20
_VERBOSITY: contextvars.ContextVar[int] = contextvars.ContextVar("bigmodel_progress", default=1)
_INTERACTIVE = [True]  # one process-wide switch, as Keras's


class _LogLines:
    """A write-only text stream whose complete lines go to the ``bigmodel.progress`` logger."""

    def __init__(self) -> None:
        self._pending = ""

    def write(self, text: str) -> int:
        self._pending += text.replace("\r", "\n")
        *lines, self._pending = self._pending.split("\n")
        for line in lines:
            if line.strip():
                logging.getLogger("bigmodel.progress").info(line.rstrip())
        return len(text)

    def flush(self) -> None:
        pass

    def isatty(self) -> bool:
        return False


def set_interactive_output(enabled: bool) -> None:
    """Progress to standard output (True, the default) or, line by line, to the
    ``bigmodel.progress`` logger (False), for every bar and phase made afterwards."""
    _INTERACTIVE[0] = bool(enabled)


def interactive_output() -> bool:
    """Whether progress goes to standard output (see :func:`set_interactive_output`)."""
    return _INTERACTIVE[0]


def default_stream() -> TextIO:
    """Where progress goes when no stream is given: ``sys.stdout`` or the logging stream."""
    return sys.stdout if _INTERACTIVE[0] else _LogLines()  # type: ignore[return-value]


def print_message(message: str) -> None:
    """One message line to standard output, or to the ``bigmodel.progress`` logger when
    interactive output is off (Keras's ``io_utils.print_msg``)."""
    stream = default_stream()
    stream.write(message + "\n")
    stream.flush()


def progress_interval() -> float:
    """Seconds between progress lines on output that is not a terminal:
    ``$BIGMODEL_PROGRESS_INTERVAL`` or :data:`DEFAULT_INTERVAL`.

    Raises:
        ConfigError: the variable is set to something other than a positive number.
    """
    text = os.environ.get(INTERVAL_VARIABLE, "").strip()
    if not text:
        return DEFAULT_INTERVAL
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not math.isfinite(value) or value <= 0:
        raise ConfigError(f"{INTERVAL_VARIABLE} must be a positive number of seconds; received "
                          f"{text!r}")
    return value


@contextlib.contextmanager
def verbosity(level: int) -> Iterator[None]:
    """Within the block, :class:`Phase` reports at ``level`` (0 silent) unless told otherwise."""
    token = _VERBOSITY.set(int(level))
    try:
        yield
    finally:
        _VERBOSITY.reset(token)


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


def format_eta(seconds: float) -> str:
    """Time left as ``0:07`` / ``1:05`` / ``1:02:03`` (always with minutes, so it reads as a
    clock and not as a duration already spent)."""
    seconds = max(int(round(seconds)), 0)
    if seconds >= 3600:
        return f"{seconds // 3600}:{seconds % 3600 // 60:02d}:{seconds % 60:02d}"
    return f"{seconds // 60}:{seconds % 60:02d}"


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
        verbose: 0 silent; 1 live bar on a terminal, otherwise a line every
            :func:`progress_interval` seconds and one per epoch; 2 one line per epoch.
        stream: where to write; when ``None``, :func:`default_stream`.
    """

    def __init__(self, verbose: int = 1, stream: TextIO | None = None) -> None:
        self.verbose = verbose
        self.stream = stream if stream is not None else default_stream()
        isatty = getattr(self.stream, "isatty", None)
        self.live = verbose == 1 and bool(isatty and isatty())
        # Piped output (verbose 1): a line every `interval` seconds within the epoch.
        self.interval = progress_interval() if verbose == 1 and not self.live else math.inf
        self._next_line = math.inf
        self._prefix = ""
        self._steps: int | None = None
        self._last_width = 0

    def epoch_begin(self, epoch: int, epochs: int, steps: int | None) -> None:
        """Start an epoch (``epoch`` is 0-based); prints ``Epoch i/n`` above the live bar."""
        self._steps = steps
        self._prefix = f"Epoch {epoch + 1}/{epochs}"
        self._next_line = time.perf_counter() + self.interval
        if self.live:
            self._write(self._prefix + "\n")

    def due(self, now: float) -> bool:
        """Whether :meth:`update` would draw at ``now`` (``time.perf_counter()``): always for the
        live bar, every :attr:`interval` seconds for piped output, never otherwise. The trainer
        reads the running loss from the device only when this is true."""
        return self.live or now >= self._next_line

    def update(self, step: int, elapsed: float, logs: Mapping[str, float]) -> None:
        """Redraw the live bar after ``step`` batches; for piped output print a progress line
        with the epoch's ETA when :meth:`due`; nothing otherwise."""
        if not self.live:
            now = time.perf_counter()
            if now < self._next_line or (self._steps and step >= self._steps):
                return  # the epoch's own line follows at once
            self._next_line = now + self.interval
            counter = f"{step}/{self._steps}" if self._steps else f"{step}/Unknown"
            timing = (f"ETA {format_eta(elapsed / step * max(self._steps - step, 0))}"
                      if self._steps and step else f"{format_duration(elapsed)} elapsed")
            self._write(f"{self._prefix} - {counter} - {timing} - "
                        f"{format_per_step(elapsed, step)}{format_logs(logs)}\n")
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


class Phase:
    """Progress of one long step that is not an epoch: data preparation, evaluation, ...

    Use as a context manager and call :meth:`update` (or :meth:`advance`) as work gets done.
    On a terminal (``verbose=1``) a bar is redrawn in place after the first second; otherwise a
    line is printed every :func:`progress_interval` seconds::

        synthesizing the speech corpus: 120/400 clips (30%) - 16s elapsed - ETA 0:37

    and, if any line was printed, a last one when the phase ends (``... 400 clips in 55s``).
    A phase shorter than the interval prints nothing.

    Args:
        label: what is being done, e.g. ``"synthesizing the speech corpus"``.
        total: units of work in all (None: unknown, then no ETA); :meth:`update` may set it.
        unit: what one unit is (``"clips"``, ``"images"``).
        verbose: 0 silent, 1 bar / periodic lines; None: the level :func:`verbosity` set
            (1 outside any).
        stream: where to write; when None, :func:`default_stream`.
        interval: seconds between lines on output that is not a terminal; None:
            :func:`progress_interval`.
    """

    def __init__(self, label: str, total: int | None = None, unit: str = "",
                 verbose: int | None = None, stream: TextIO | None = None,
                 interval: float | None = None) -> None:
        self.label, self.total, self.unit = label, total, unit
        self.verbose = _VERBOSITY.get() if verbose is None else int(verbose)
        self.stream = stream if stream is not None else default_stream()
        isatty = getattr(self.stream, "isatty", None)
        self.live = self.verbose >= 1 and bool(isatty and isatty())
        self.interval = (interval if interval is not None else progress_interval()
                         ) if self.verbose >= 1 else math.inf
        self.done = 0
        self.started = time.perf_counter()
        self._first: tuple[float, int] | None = None  # (time, done) of the first update
        first = min(1.0, self.interval) if self.live else self.interval
        self._next = self.started + first
        self.printed = False

    def __enter__(self) -> Phase:
        return self

    def __exit__(self, kind, value, traceback) -> None:
        self.finish(completed=kind is None)

    def advance(self, count: int = 1) -> None:
        """``count`` more units are done."""
        self.update(self.done + count)

    def update(self, done: int, total: int | None = None) -> None:
        """``done`` units are done (of ``total``, when given); draws when it is time."""
        self.done = done
        if total is not None:
            self.total = total
        now = time.perf_counter()
        if self._first is None:
            self._first = (now, done)
        if self.verbose < 1 or now < self._next:
            return
        self._next = now + (REFRESH_SECONDS if self.live else self.interval)
        line = self.line(now - self.started)
        if self.live:
            self._write("\r" + line + "\x1b[K")
        else:
            self._write(line + "\n")
        self.printed = True

    def line(self, elapsed: float) -> str:
        """The progress line after ``elapsed`` seconds."""
        unit = f" {self.unit}" if self.unit else ""
        if self.total:
            share = self.done / self.total
            text = f"{self.label}: {self.done:,}/{self.total:,}{unit} ({100 * share:.0f}%)"
        else:
            text = f"{self.label}: {self.done:,}{unit}"
        text += f" - {format_duration(elapsed)} elapsed"
        if self.total and self.done:
            left = self.seconds_per_unit(elapsed) * max(self.total - self.done, 0)
            text += f" - ETA {format_eta(left)}"
        return text

    def seconds_per_unit(self, elapsed: float) -> float:
        """The pace for the ETA: measured from the first update on when units were done since
        (what comes before it, such as loading or a slow first unit, does not repeat)."""
        if self._first is not None:
            first_time, first_done = self._first
            now = self.started + elapsed
            if self.done > first_done and now > first_time:
                return (now - first_time) / (self.done - first_done)
        return elapsed / max(self.done, 1)

    def finish(self, completed: bool = True) -> None:
        """End the phase: its last line, if it printed any."""
        if not self.printed:
            return
        elapsed = time.perf_counter() - self.started
        unit = f" {self.unit}" if self.unit else ""
        end = (f"{self.label}: {self.done:,}{unit} in {format_duration(elapsed)}" if completed
               else f"{self.label}: stopped after {self.done:,}{unit}")
        self._write(("\r" + end + "\x1b[K\n") if self.live else end + "\n")
        self.printed = False

    def _write(self, text: str) -> None:
        self.stream.write(text)
        self.stream.flush()


__all__ = ["DEFAULT_INTERVAL", "INTERVAL_VARIABLE", "REFRESH_SECONDS", "Phase", "ProgressBar",
           "default_stream", "format_duration", "format_eta", "format_logs", "format_per_step",
           "format_value", "interactive_output", "print_message", "progress_interval",
           "set_interactive_output", "verbosity"]
