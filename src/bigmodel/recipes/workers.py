"""This process as a torchrun worker: whether it is one, its rank, and how it ends.

Workers of one job see ``WORLD_SIZE`` and ``RANK``; they share one run directory
(:func:`bigmodel.recipes.rundir.worker_run_dir`), which rank 0 writes.
"""

from __future__ import annotations

import os
import sys
from typing import NoReturn


def under_torchrun() -> bool:
    """Whether this process was started by torchrun (``WORLD_SIZE`` and ``RANK`` are set)."""
    return "WORLD_SIZE" in os.environ and "RANK" in os.environ


def rank() -> int:
    """This process's rank in its torchrun job (0 outside torchrun)."""
    return int(os.environ.get("RANK", "0"))


def end_worker(code: int) -> NoReturn:
    """End a torchrun worker process now, with exit status ``code``, skipping interpreter teardown.

    Two-process CPU runs (gloo) sometimes lost a rank to SIGABRT ("terminate called without an
    active exception") *after* everything was written: PyTorch's C++ objects (gloo work and store
    threads) are destroyed in an arbitrary order while the interpreter finalizes. ``os._exit``
    skips that finalization. What it also skips -- ``atexit`` handlers and the flush of file objects
    still open -- is done here for what a run leaves open: the ``logging`` handlers and the
    standard streams. Everything else a run writes (checkpoints, ``metrics.csv``, TensorBoard
    events, the report) is closed by its writer before the command returns.
    """
    import logging

    logging.shutdown()
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):  # a closed or broken stream has nothing left to flush
            pass
    os._exit(code)


__all__ = ["end_worker", "rank", "under_torchrun"]
