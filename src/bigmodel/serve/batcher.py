"""Dynamic batching: rows submitted concurrently (one per request row) are gathered for at most
``max_delay`` seconds after the oldest one arrived, or until ``max_batch`` rows wait, then run as
one forward pass in a worker thread; each caller gets its own row of the result.

Rows are stacked only with rows of the same shape and dtype (texts of different lengths run as
separate groups of the same cycle: padding would change a text model's answer).

Bits: CPU kernels pick different code paths for very small batches (PyTorch's matrix-vector
paths for 1-3 rows), so a row computed alone and the same row inside a batch of 8 can differ in the
last bit. Every group is therefore padded (with copies of its first row) to at least
``min_rows`` rows before the forward pass: on the CPU builds tested (torch 2.13, every model served
in the tests), a row's result is then the same bits whatever else shares its batch, so a request
answered alone and the same request batched with others get identical answers. The padding rows'
results are dropped. This is a property of the kernels, not a promise of PyTorch: the tests check
it for the models they serve.
"""

from __future__ import annotations

import asyncio
import collections
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import torch

from bigmodel.errors import ConfigError


class QueueFullError(RuntimeError):
    """More rows wait than the batcher accepts (HTTP 503: try again)."""


@dataclass
class _Pending:
    row: torch.Tensor
    future: asyncio.Future
    enqueued: float = field(default_factory=time.perf_counter)


def check_batching(max_batch: int, max_delay: float, min_rows: int = 4,
                   max_queue: int = 10_000) -> None:
    """Check a batcher's bounds (:class:`DynamicBatcher`).

    Raises:
        ConfigError: a bound below 1 or a negative delay.
    """
    for label, value in (("max_batch", max_batch), ("min_rows", min_rows),
                         ("max_queue", max_queue)):
        if not isinstance(value, int) or value < 1:
            raise ConfigError(f"DynamicBatcher: {label} must be an int >= 1; received {value!r}")
    if not (isinstance(max_delay, (int, float)) and max_delay >= 0):
        raise ConfigError(f"DynamicBatcher: max_delay must be >= 0 seconds; received "
                          f"{max_delay!r}")


class DynamicBatcher:
    """Gather rows into batches for ``run``.

    Args:
        run: ``run(batch (B, ...)) -> outputs (B, ...)``; called in one worker thread at a time.
        max_batch: most rows per forward pass.
        max_delay: seconds the oldest waiting row may wait for others (default 0: a pass starts
            as soon as the worker is free, on every row that arrived during the previous one).
        min_rows: pad each forward pass to at least this many rows (module doc); 1 turns it off.
        max_queue: most rows waiting; more are refused with :class:`QueueFullError`.
        observe: ``observe(batch_size, queue_seconds_per_row)`` after each forward pass.

    Raises:
        ConfigError: a bound below 1 or a negative delay.
    """

    def __init__(self, run: Callable[[torch.Tensor], torch.Tensor], max_batch: int = 64,
                 max_delay: float = 0.0, min_rows: int = 4, max_queue: int = 10_000,
                 observe: Callable[[int, list[float]], Any] | None = None) -> None:
        check_batching(max_batch, max_delay, min_rows, max_queue)
        self.run, self.max_batch, self.max_delay = run, max_batch, float(max_delay)
        self.min_rows, self.max_queue, self.observe = min_rows, max_queue, observe
        self._pending: collections.deque[_Pending] = collections.deque()
        self._wakeup: asyncio.Event | None = None
        self._task: asyncio.Task | None = None
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="bigmodel-batch")

    async def submit(self, row: torch.Tensor) -> torch.Tensor:
        """The output row for one input row (no batch dimension), once its batch has run.

        Raises:
            QueueFullError: ``max_queue`` rows already wait.
            Exception: whatever ``run`` raised for the batch holding this row.
        """
        if len(self._pending) >= self.max_queue:
            raise QueueFullError(f"{len(self._pending)} rows wait already (max_queue="
                                 f"{self.max_queue}); try again")
        loop = asyncio.get_running_loop()
        if self._task is None or self._task.done():
            self._wakeup = asyncio.Event()
            self._task = loop.create_task(self._loop())
        pending = _Pending(row, loop.create_future())
        self._pending.append(pending)
        self._wakeup.set()
        return await pending.future

    async def submit_many(self, rows) -> list[torch.Tensor]:
        """Output rows for several input rows (each batched like a request of its own)."""
        if len(rows) == 1:  # the usual request: no task per row
            return [await self.submit(rows[0])]
        return list(await asyncio.gather(*(self.submit(row) for row in rows)))

    async def run_exclusive(self, function: Callable[[], Any]) -> Any:
        """Run ``function()`` in the batcher's worker thread, between forward passes (e.g. an
        explanation, whose hooks and gradients must not meet a batch running beside it)."""
        return await asyncio.get_running_loop().run_in_executor(self._executor, function)

    async def close(self) -> None:
        """Stop gathering; rows still waiting get a cancelled error."""
        if self._task is not None:
            self._task.cancel()
            try:
                await self._task
            except asyncio.CancelledError:
                pass
        while self._pending:
            self._pending.popleft().future.cancel()
        self._executor.shutdown(wait=False)

    async def _loop(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            if not self._pending:
                self._wakeup.clear()
                await self._wakeup.wait()
                continue
            deadline = self._pending[0].enqueued + self.max_delay
            while len(self._pending) < self.max_batch:
                remaining = deadline - time.perf_counter()
                if remaining <= 0:
                    break
                self._wakeup.clear()
                try:
                    await asyncio.wait_for(self._wakeup.wait(), remaining)
                except TimeoutError:
                    break
            batch = [self._pending.popleft()
                     for _ in range(min(self.max_batch, len(self._pending)))]
            groups: dict[tuple, list[_Pending]] = {}
            for entry in batch:
                groups.setdefault((tuple(entry.row.shape), entry.row.dtype), []).append(entry)
            for group in groups.values():
                await self._run_group(loop, group)

    async def _run_group(self, loop, group: list[_Pending]) -> None:
        group = [entry for entry in group if not entry.future.done()]  # callers gone
        if not group:
            return
        started = time.perf_counter()
        rows = torch.stack([entry.row for entry in group])
        if len(rows) < self.min_rows:
            rows = torch.cat([rows, rows[:1].expand(self.min_rows - len(rows), *rows.shape[1:])])
        try:
            outputs = await loop.run_in_executor(self._executor, self.run, rows)
        except Exception as exc:  # noqa: BLE001 - handed to every caller of this batch
            for entry in group:
                if not entry.future.done():
                    entry.future.set_exception(exc)
            return
        if self.observe is not None:
            self.observe(len(group), [started - entry.enqueued for entry in group])
        for index, entry in enumerate(group):
            if not entry.future.done():
                entry.future.set_result(outputs[index])


__all__ = ["DynamicBatcher", "QueueFullError", "check_batching"]
