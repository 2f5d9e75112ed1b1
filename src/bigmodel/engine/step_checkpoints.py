"""Checkpoints between epochs: when to write one (every N optimizer steps, every N seconds, or on
SIGTERM/SIGINT), and where the data stream stands so a resumed run continues mid-epoch.

A mid-epoch checkpoint records, beside the trainer's state (``engine.training_state``):

- ``step``: batches done in the epoch in progress;
- ``pass_state`` / ``pass_offset``: the shuffling generator's state *before* the current pass over
  the data drew its order, and the batches that pass has produced. On resume the generator is set
  back, the same order is drawn, and the batches already trained on are left out without being
  gathered (in-memory data) or are read and dropped (other iterables) -- never trained on again;
- ``loss`` / ``metrics``: the epoch's running loss and metric accumulators, so the epoch's logged
  values equal those of a run that was never stopped.

Signals: :func:`catch_signals` makes SIGTERM/SIGINT set :attr:`CheckpointPolicy.signal`; the trainer
writes a checkpoint at the next step boundary and raises :class:`~bigmodel.errors.Preempted`. A
second signal of the same kind acts at once (the previous handler: Ctrl-C twice interrupts).
"""

from __future__ import annotations

import contextlib
import functools
import re
import signal
import sys
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from typing import Any

import torch

from bigmodel.errors import ConfigError

_EVERY = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(s|sec|secs|seconds?|m|min|mins|minutes?|h|hours?)?\s*$")
_UNIT_SECONDS = {"s": 1, "m": 60, "h": 3600}


def parse_every(every: int | str | None) -> tuple[int | None, float | None]:
    """``checkpoint_every`` -> ``(steps, seconds)``, at most one of them set.

    ``500`` or ``"500"`` means every 500 optimizer steps; ``"30s"``, ``"10min"``, ``"2h"`` every so
    much wall time; ``None`` never (only at epoch ends).

    Raises:
        ConfigError: anything else (names the value received).
    """
    if every is None:
        return None, None
    if isinstance(every, bool) or not isinstance(every, (int, str)):
        raise ConfigError(f"checkpoint_every must be a number of steps (e.g. 500) or a duration "
                          f"('30s', '10min', '2h'); received {every!r}")
    if isinstance(every, int):
        if every < 1:
            raise ConfigError(f"checkpoint_every must be >= 1 step; received {every}")
        return every, None
    match = _EVERY.match(every)
    if match is None:
        raise ConfigError(f"checkpoint_every must be a number of steps (e.g. 500) or a duration "
                          f"('30s', '10min', '2h'); received {every!r}")
    number, unit = match.groups()
    if unit is None:
        if "." in number or int(number) < 1:
            raise ConfigError(f"checkpoint_every in steps must be a whole number >= 1; received {every!r}")
        return int(number), None
    seconds = float(number) * _UNIT_SECONDS[unit[0]]
    if seconds <= 0:
        raise ConfigError(f"checkpoint_every must be a positive duration; received {every!r}")
    return None, seconds


class CheckpointPolicy:
    """Decides, at each optimizer-step boundary, whether to write a checkpoint now.

    Args:
        every: see :func:`parse_every`.
    """

    def __init__(self, every: int | str | None = None) -> None:
        self.every = every
        self.steps, self.seconds = parse_every(every)
        self.signal: int | None = None  # set by the handlers of catch_signals
        self._last = time.monotonic()

    def due(self, global_step: int) -> bool:
        """True when a signal arrived, ``global_step`` is a multiple of the step interval, or the
        time interval has passed since the last checkpoint."""
        if self.signal is not None:
            return True
        if self.steps is not None:
            return global_step % self.steps == 0
        return self.seconds is not None and time.monotonic() - self._last >= self.seconds

    def saved(self) -> None:
        """A checkpoint was just written: the time interval starts over."""
        self._last = time.monotonic()


@contextlib.contextmanager
def catch_signals(policy: CheckpointPolicy) -> Iterator[None]:
    """While the block runs, SIGTERM and SIGINT set ``policy.signal`` instead of ending the process;
    the handlers found on entry are put back on exit. Outside the main thread (where Python cannot
    install handlers) nothing changes."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous: dict[int, Any] = {}

    def handler(signum: int, frame: Any) -> None:
        if policy.signal == signum:  # the second one: do what would have happened without us
            old = previous.get(signum)
            signal.signal(signum, old if old is not None else signal.SIG_DFL)
            if callable(old):
                old(signum, frame)
            else:
                signal.raise_signal(signum)
            return
        policy.signal = signum
        name = signal.Signals(signum).name
        print(f"\n{name} received: writing a checkpoint at the next step boundary, then stopping "
              f"(send {name} again to stop at once)", file=sys.stderr, flush=True)

    try:
        for signum in (signal.SIGTERM, signal.SIGINT):
            previous[signum] = signal.signal(signum, handler)
        yield
    finally:
        for signum, old in previous.items():
            signal.signal(signum, old if old is not None else signal.SIG_DFL)


def handling_signals(method: Callable) -> Callable:
    """Wrap ``Trainer.fit``: with a ``run_dir`` (single process), SIGTERM/SIGINT during the call
    ask for a checkpoint at the next step boundary (:func:`catch_signals` on the trainer's
    ``_policy``); the previous handlers are back when it returns or raises."""
    @functools.wraps(method)
    def wrapper(self, *args: Any, **kwargs: Any) -> Any:
        policy = self._policy
        policy.signal = None
        if self._checkpoints is None or self._dist is not None:
            return method(self, *args, **kwargs)
        with catch_signals(policy):
            return method(self, *args, **kwargs)

    return wrapper


class TrackedBatches:
    """The trainer's innermost batch source, wrapped to know where the current pass stands.

    Args:
        source: an :class:`~bigmodel.data.batching.ArrayBatches` (skips without gathering, via its
            ``skip``) or any re-iterable of batches.
        generator: the shuffling generator the source draws its order from.
    """

    def __init__(self, source: Iterable, generator: torch.Generator | None) -> None:
        self.source, self.generator = source, generator
        self.pass_state: torch.Tensor | None = None  # generator state before this pass drew
        self.offset = 0  # batches this pass has produced
        self.active = False  # a pass is under way (not exhausted)
        self._skip = 0

    @property
    def one_shot(self) -> bool:
        return bool(getattr(self.source, "one_shot", False))

    def __len__(self) -> int:
        return len(self.source)  # type: ignore[arg-type]

    def resume_at(self, pass_state: torch.Tensor | None, offset: int) -> None:
        """Make the next pass repeat the recorded pass's order and start after ``offset`` batches."""
        if pass_state is not None and self.generator is not None:
            self.generator.set_state(pass_state)
        self._skip = int(offset)

    def __iter__(self) -> Iterator[Any]:
        self.pass_state = self.generator.get_state() if self.generator is not None else None
        skip, self._skip = self._skip, 0
        if skip and hasattr(self.source, "skip"):
            self.source.skip = skip
            iterator = iter(self.source)
        else:
            iterator = iter(self.source)
            for _ in range(skip):  # read and dropped, not trained on
                if next(iterator, None) is None:
                    break
        self.offset, self.active = skip, True
        for batch in iterator:
            self.offset += 1
            yield batch
        self.active = False


def object_state(obj: Any, skip: tuple[str, ...] = ()) -> dict[str, Any]:
    """The plain state of a running loss or a metric: its tensors, numbers, strings and nested
    metrics (``{"__class__": name, "state": ...}``); functions and other objects are left out."""
    names = getattr(type(obj), "__slots__", None) or list(vars(obj))
    state = {}
    for name in names:
        if name in skip or not hasattr(obj, name):
            continue
        value = getattr(obj, name)
        if isinstance(value, torch.Tensor):
            state[name] = value.detach().to("cpu", copy=True)
        elif value is None or isinstance(value, (bool, int, float, str)):
            state[name] = value
        elif isinstance(value, (list, tuple)) and all(isinstance(v, (bool, int, float, str)) for v in value):
            state[name] = list(value)
        elif hasattr(value, "update") and hasattr(value, "result"):  # a metric inside a metric
            state[name] = {"__class__": type(value).__name__, "state": object_state(value)}
    return state


def load_object_state(obj: Any, state: dict[str, Any], device: torch.device) -> None:
    """Inverse of :func:`object_state` (tensors moved to ``device``; nested metrics rebuilt from
    their class in the owner's module when the owner has none yet)."""
    for name, value in state.items():
        if isinstance(value, dict) and "__class__" in value:
            inner = getattr(obj, name, None)
            if inner is None or type(inner).__name__ != value["__class__"]:
                cls = getattr(sys.modules[type(obj).__module__], value["__class__"])
                inner = cls.__new__(cls)
            load_object_state(inner, value["state"], device)
            value = inner
        elif isinstance(value, torch.Tensor):
            value = value.to(device)
        elif isinstance(value, list) and isinstance(getattr(obj, name, None), tuple):
            value = tuple(value)
        setattr(obj, name, value)


def epoch_position(batches: TrackedBatches | None, step: int, tracker: Any, metrics: list) -> dict:
    """What a mid-epoch checkpoint records about the epoch in progress (see the module doc)."""
    tracker.flush()
    return {
        "step": int(step),
        "pass_state": batches.pass_state if batches is not None else None,
        "pass_offset": batches.offset if batches is not None else 0,
        "pass_length": pass_length(batches),
        "loss": object_state(tracker, skip=("pending", "sizes")),
        "metrics": [object_state(metric) for metric in metrics],
    }


def pass_position(batches: TrackedBatches | None) -> dict | None:
    """At an epoch end: the pass a ``steps_per_epoch`` stream is in the middle of, if any."""
    if batches is None or not batches.active:
        return None
    return {"step": 0, "pass_state": batches.pass_state, "pass_offset": batches.offset,
            "pass_length": pass_length(batches)}


def pass_length(batches: Any) -> int | None:
    """Batches per pass over the data, when known."""
    try:
        return len(batches)
    except TypeError:
        return None


def check_same_data(position: dict, batches: TrackedBatches) -> None:
    """A mid-pass position only fits the data it was recorded on.

    Raises:
        ConfigError: the number of batches per pass differs (other data or batch size).
    """
    saved, now = position.get("pass_length"), pass_length(batches)
    if saved is not None and now is not None and saved != now:
        raise ConfigError(f"Cannot resume mid-epoch: the checkpoint was written with {saved} batches "
                          f"per pass over the data, this fit has {now} (other data or batch_size); "
                          "resume with the same data and batch_size")


def restore_epoch(position: dict, tracker: Any, metrics: list, device: torch.device) -> int:
    """Put a recorded epoch's running loss and metrics back; returns the batches it had done."""
    if "loss" in position:
        load_object_state(tracker, position["loss"], device)
    for metric, state in zip(metrics, position.get("metrics", [])):
        load_object_state(metric, state, device)
    return int(position.get("step", 0))


__all__ = ["CheckpointPolicy", "TrackedBatches", "catch_signals", "epoch_position", "handling_signals",
           "check_same_data", "load_object_state", "object_state", "parse_every", "pass_length",
           "pass_position", "restore_epoch"]
