"""``keras.utils.Progbar``: the progress bar of custom training loops, as Keras 3's.

Same arguments, metric averaging and text as Keras (``3/10 ━━━━━━──── 2s 6ms/step - loss:
0.5000``), without Keras's ANSI colours. The bar is redrawn in place on a terminal; otherwise
``verbose=1`` prints a line per update (at most every ``interval`` seconds) and ``verbose=2`` one
line when finished. With ``keras.config.disable_interactive_logging()`` the lines go to the
``bigmodel.progress`` logger instead of standard output.
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from typing import Any

import numpy as np

from bigmodel.engine.progress import default_stream
from bigmodel.errors import ConfigError


class Progbar:
    """Displays a progress bar (see the module doc).

    Args:
        target: the number of steps expected; None if unknown.
        width: the bar's width in characters.
        verbose: 0 silent, 1 a bar (or a line per update), 2 one line when finished.
        interval: least seconds between two redraws (``verbose=1``).
        stateful_metrics: names shown as given (the others are averaged over the steps).
        stateless_metrics: names averaged (the others shown as given); not with
            ``stateful_metrics``.
        unit_name: what one step is called (``"step"``, ``"sample"``).

    Raises:
        ConfigError: both ``stateful_metrics`` and ``stateless_metrics``, or a bad ``verbose``.
    """

    def __init__(self, target: int | None, width: int = 20, verbose: int = 1,
                 interval: float = 0.05, stateful_metrics: Iterable[str] | None = None,
                 stateless_metrics: Iterable[str] | None = None, unit_name: str = "step"):
        if stateful_metrics is not None and stateless_metrics is not None:
            raise ConfigError("Progbar: give stateful_metrics or stateless_metrics, not both; "
                              f"received stateful_metrics={stateful_metrics!r}, "
                              f"stateless_metrics={stateless_metrics!r}")
        if verbose not in (0, 1, 2):
            raise ConfigError(f"Progbar: verbose must be 0, 1 or 2; received verbose={verbose!r}")
        self.target, self.width, self.verbose = target, width, verbose
        self.interval, self.unit_name = interval, unit_name
        self.stateful_metrics = (set(stateful_metrics) if stateful_metrics is not None
                                 else None if stateless_metrics is not None else set())
        self.stateless_metrics = None if stateless_metrics is None else set(stateless_metrics)
        self._stream = default_stream()
        isatty = getattr(self._stream, "isatty", None)
        self._dynamic_display = bool(isatty and isatty())
        self._seen_so_far = 0
        self._values: dict[str, list[Any]] = {}  # name -> [weighted sum, weight]
        self._values_order: list[str] = []
        self._start = time.time()
        self._last_update = 0.0
        self._time_after_first_step: float | None = None
        self._prev_total_width = 0

    def _averaged(self, name: str) -> bool:
        if self.stateful_metrics is not None:
            return name not in self.stateful_metrics
        return name in (self.stateless_metrics or ())

    def update(self, current: int, values: Any = None, finalize: bool | None = None) -> None:
        """Show progress at step ``current``.

        Args:
            current: the index of the current step.
            values: ``[(name, value of the last step), ...]``: averaged over steps (weighted by
                the steps since the last update) unless stateful.
            finalize: whether this is the last update; default ``current >= target``.
        """
        if finalize is None:
            finalize = self.target is not None and current >= self.target
        for name, value in values or []:
            if name not in self._values_order:
                self._values_order.append(name)
            if self._averaged(name) and not finalize:
                weight = max(current - self._seen_so_far, 1)
                total = self._values.setdefault(name, [0.0, 0])
                total[0] += value * weight
                total[1] += weight
            else:  # as Keras: the last update shows the value it is given
                self._values[name] = [value, 1]
        self._seen_so_far = current
        now = time.time()
        per_unit = self._step_duration(current, now)
        if self.verbose == 1 and (finalize or now - self._last_update >= self.interval):
            self._draw(current, now, per_unit, finalize)
        elif self.verbose == 2 and finalize and self.target:
            digits = len(str(self.target))
            self._write(f"{current:>{digits}}/{self.target} - {now - self._start:.0f}s -"
                        f"{self._format_time(per_unit)}{self._metrics()}\n")
        self._last_update = now

    def add(self, n: int, values: Any = None) -> None:
        """Advance by ``n`` steps (see :meth:`update`)."""
        self.update(self._seen_so_far + n, values)

    def _draw(self, current: int, now: float, per_unit: float, finalize: bool) -> None:
        if self.target:
            digits = len(str(self.target))
            filled = int(self.width * current / self.target)
            bar = f"{current:>{digits}}/{self.target} " + "━" * filled + "─" * (self.width - filled)
        else:
            bar = f"{current:7d}/Unknown"
        if self.target and not finalize:
            eta = per_unit * (self.target - current)
            timing = (f"{eta // 3600:.0f}:{eta % 3600 // 60:02.0f}:{eta % 60:02.0f}" if eta > 3600
                      else f"{eta // 60:.0f}:{eta % 60:02.0f}" if eta > 60 else f"{eta:.0f}s")
        else:
            timing = f"{now - self._start:.0f}s"
        line = f"{bar} {timing}{self._format_time(per_unit)}{self._metrics()}"
        if self._dynamic_display:
            padding = " " * max(self._prev_total_width - len(line), 0)
            self._write("\r" + line + padding + ("\n" if finalize else ""))
        else:
            self._write(line + "\n")
        self._prev_total_width = len(line)

    def _metrics(self) -> str:
        text = ""
        for name in self._values_order:
            total, count = self._values[name]
            average = float(np.mean(total)) / max(1, count)
            text += f" - {name}: " + (f"{average:.4f}" if abs(average) > 1e-3 else f"{average:.4e}")
        return text

    def _format_time(self, per_unit: float) -> str:
        if per_unit >= 1 or per_unit == 0:
            return f" {per_unit:.0f}s/{self.unit_name}"
        if per_unit >= 1e-3:
            return f" {per_unit * 1e3:.0f}ms/{self.unit_name}"
        return f" {per_unit * 1e6:.0f}us/{self.unit_name}"

    def _step_duration(self, current: int, now: float) -> float:
        """Seconds per step, leaving out the first step (compilation, warm-up) once there are
        more."""
        if not current:
            return 0.0
        if current == 1:
            self._time_after_first_step = now
        if self._time_after_first_step is not None and current > 1:
            return (now - self._time_after_first_step) / (current - 1)
        return (now - self._start) / current

    def _write(self, text: str) -> None:
        self._stream.write(text)
        self._stream.flush()


__all__ = ["Progbar"]
