"""A time budget for the recipe-run benchmarks (``seq2seq_tasks.py``, ``char_lm_fortunes.py``).

:class:`CpuBudget` is an engine callback given to the run path's task (``get_task(name,
callbacks=[budget])``): it stops training after the epoch during which ``seconds`` of CPU time
have been used, and records the CPU and wall seconds of the fit itself (data preparation and
evaluation excluded). CPU time (this process, all threads) rather than wall time: on a shared
machine the wall clock also counts the time other jobs hold the cores.
"""

from __future__ import annotations

import time

from bigmodel.engine.callbacks import Callback


class CpuBudget(Callback):
    """Stops training after the epoch that passed ``seconds`` of CPU time; times the fit."""

    def __init__(self, seconds: float) -> None:
        super().__init__()
        self.seconds = seconds
        self.started = self.wall_started = 0.0
        self.cpu_seconds = self.wall_seconds = 0.0

    def on_train_begin(self, logs=None) -> None:
        self.started, self.wall_started = time.process_time(), time.perf_counter()

    def on_epoch_end(self, epoch, logs=None) -> None:
        if time.process_time() - self.started > self.seconds:
            self.model.stop_training = True

    def on_train_end(self, logs=None) -> None:
        self.cpu_seconds = time.process_time() - self.started
        self.wall_seconds = time.perf_counter() - self.wall_started
