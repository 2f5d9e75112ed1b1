"""Keras's step loop (``keras/trainer_steps.py``) as one process of several under torchrun.

Models that customize training (``train_step``/``test_step``/``predict_step``/``compute_loss``,
several outputs, ``add_loss`` without a compiled loss, callbacks given to ``evaluate``/``predict``)
run the step loop, not the engine's. :class:`StepSync` makes that loop data-parallel:

- every global batch (``batch_size`` is global) is cut among the processes exactly as the engine
  cuts it (``engine.distributed.RankSlices``); the user's step method runs on this process's share;
- gradients are averaged over the processes at every optimizer step, whatever path the step takes
  (``optimizer.apply``, ``apply_gradients``, a torch optimizer's ``step()``): a global optimizer
  step pre-hook, active only during the loop, reduces the gradients of the optimizer's variables
  before the Keras optimizer clips them. A GAN's two optimizers each reduce their own variables; a
  variable no process used keeps no gradient, one used by some processes only counts as zero on
  the others (as DDP's ``find_unused_parameters``), so nothing waits for a gradient that never comes;
- the logs a step returns are reduced: the state of every metric of ``model.metrics`` (loss
  trackers, compiled metrics, the user's ``Mean`` trackers) is summed over the processes and the
  results recomputed; any other value is averaged weighted by samples. ``History`` and every
  callback's epoch logs are the same on every process (batch logs too when a callback reads them);
- each epoch ends with a check that every process holds the same weights (a step that updates
  weights outside an optimizer is refused rather than left to diverge);
- ``evaluate`` shares the batches the same way; ``predict`` gives each process a contiguous share of
  the samples and returns the whole result, in order, on every process.

Every check is a collective decision: a process that finds a problem tells the others, and every
process raises the same :class:`~bigmodel.errors.BigModelError` (no process is left waiting).
"""

from __future__ import annotations

import contextlib
import math
import zlib
from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np
import torch
import torch.distributed as dist
from torch.optim.optimizer import register_optimizer_step_pre_hook

from bigmodel.engine import distributed as engine_distributed
from bigmodel.engine.callbacks import needs_batch_hooks
from bigmodel.errors import NotSupportedError, TrainingError
from bigmodel.keras import distributed_fit
from bigmodel.keras import distribution as distribution_lib
from bigmodel.keras.process_group import is_distributed, world
from bigmodel.keras.trainer_steps import predict_with_steps

__all__ = ["StepSync", "predict", "step_sync"]

# Accumulator attributes of the engine's and Keras's metric states (sums over samples): summed
# over processes. Anything else a metric holds (thresholds, k, names) is configuration.
_SUMMED = ("_total", "_weight_sum", "_count", "_counts", "_correct")
# Attributes holding the metric a wrapper / container reads its result from.
_INNER = ("metric", "_inner")


@contextlib.contextmanager
def step_sync(model: Any, callbacks: Sequence[Any], what: str) -> Iterator[StepSync | None]:
    """A :class:`StepSync` for the duration of a step loop under several processes, else ``None``.

    Raises:
        ConfigError: the processes hold different models (every process raises it).
        NotSupportedError: a ``keras.distribution.ModelParallel`` layout (FSDP) is set.
    """
    if not is_distributed():
        yield None
        return
    sync = StepSync(model, callbacks, what)
    handle = register_optimizer_step_pre_hook(sync.average_gradients)
    try:
        yield sync
    finally:
        handle.remove()


class StepSync:
    """One process's part in a data-parallel step loop (see the module docstring).

    Args:
        model: the Keras model whose step methods run.
        callbacks: the callbacks of this loop; batch logs are reduced only when one reads them.
        what: ``"fit"``, ``"evaluate"`` or ``"predict"`` (named in errors).
    """

    def __init__(self, model: Any, callbacks: Sequence[Any], what: str) -> None:
        if isinstance(distribution_lib.distribution(), distribution_lib.ModelParallel):
            raise NotSupportedError(
                f"{what} of model '{model.name}' runs Keras's step loop (a custom train_step/"
                "test_step/predict_step/compute_loss, several outputs or add_loss); under torchrun "
                "it is data-parallel only: keras.distribution.ModelParallel layouts (FSDP) need "
                "the engine's loop (a compiled loss, one output, no step overrides)")
        distributed_fit.trainer_strategy(model)  # joins the group; every process: the same model?
        self.model, self.what = model, what
        self.rank, self.size = world()
        self.batch_logs = any(needs_batch_hooks(cb) for cb in callbacks)
        self._slices: engine_distributed.RankSlices | None = None
        self._samples = 0  # this process's samples since the last reset (weights of the logs)
        self._last: dict[str, Any] = {}
        self._epoch: int | None = None
        self._streamed: int | None = None  # the epoch whose random stream is this process's own
        if dist.get_backend() == "nccl":  # NCCL reduces GPU tensors: the model goes to this GPU
            device = engine_distributed.collective_device()
            if any(p.device != device for p in model.parameters()):
                model.to(device)
        engine_distributed.broadcast_parameters(model)  # every process starts from rank 0's weights
        # A seed shared by every process, read from rank 0's random state without drawing from
        # it: a model built lazily in the first step gets the weights one process would give it.
        state = torch.random.get_rng_state().numpy().tobytes()
        seed = torch.tensor([zlib.crc32(state) * 2**20 + len(state)], dtype=torch.int64,
                            device=engine_distributed.collective_device())
        dist.broadcast(seed, src=0)
        self._seed = int(seed.item())
        self._shuffle = torch.Generator().manual_seed(self._seed)

    # --- data --------------------------------------------------------------------------------
    def shard(self, batches: Any) -> engine_distributed.RankSlices:
        """This process's share of every global batch of ``batches``; every process shuffles
        in-memory data with the same generator, so the global batches are the same everywhere."""
        if getattr(batches, "shuffle", False) and hasattr(batches, "generator"):
            batches.generator = self._shuffle
        slices = engine_distributed.RankSlices(batches, self.rank, self.size)
        if self._slices is None:  # the training data (sharded first): it weighs the gradients
            self._slices = slices
        return slices

    def begin(self, epoch: int | None = None) -> None:
        """Start an epoch (or an evaluation, ``epoch`` None): the counts restart."""
        self._samples, self._last = 0, {}
        if epoch is not None:
            self._epoch = epoch
            if self._streamed is not None:
                # Back to a stream common to every process until the epoch's first step is done:
                # a shuffled DataLoader draws its order here, the same on every process.
                torch.manual_seed(engine_distributed.rank_stream_seed(self._seed, epoch, self.size))
            # Buffers and non-trainable weights (BatchNorm statistics) a step changes locally
            # follow rank 0's at every epoch start; trainable ones stay equal by the averaging.
            with torch.no_grad():
                for tensor in [*self.model.buffers(),
                               *(p for p in self.model.parameters() if not p.requires_grad)]:
                    dist.broadcast(tensor.data, src=0)

    # --- gradients ---------------------------------------------------------------------------
    def average_gradients(self, optimizer: Any, args: Any, kwargs: Any) -> None:
        """Optimizer step pre-hook: replace each variable's gradient by the mean over processes
        (each process's share weighted to the global batch's mean, as the engine weights it).

        Raises:
            TrainingError: the processes' optimizers hold different variables.
        """
        params = [p for group in optimizer.param_groups for p in group["params"]]
        count = sum(p.numel() for p in params)
        _agree(torch.tensor([len(params), count], dtype=torch.int64),
               f"{self.what}: the processes' optimizers hold different variables ({len(params)} "
               f"variables of {count} values on process {self.rank}); every process must build "
               "the same model and optimizer")
        if not params:
            return
        device = params[0].device
        scale = 1.0 if self._slices is None else self._slices.fraction * self.size
        pieces = [(p.grad.detach().reshape(-1).float() * scale) if p.grad is not None
                  else torch.zeros(p.numel(), device=device) for p in params]
        present = torch.tensor([p.grad is not None for p in params], dtype=torch.float32,
                               device=device)
        flat = torch.cat([*pieces, present])
        dist.all_reduce(flat)
        flat /= self.size
        used = flat[count:].cpu().tolist()  # one read-back, not one per variable
        offset = 0
        with torch.no_grad():
            for index, p in enumerate(params):
                size = p.numel()
                if used[index] > 0:  # some process has a gradient for it
                    value = flat[offset:offset + size].view_as(p).to(p.dtype)
                    if p.grad is None:
                        p.grad = value.clone()
                    else:
                        p.grad.copy_(value)
                offset += size

    # --- logs --------------------------------------------------------------------------------
    def step_logs(self, logs: dict[str, Any], samples: int) -> dict[str, Any]:
        """Record a step's local logs; reduced over processes when a callback reads batch logs."""
        self._samples += samples
        self._last = dict(logs)
        if self._epoch is not None and self._streamed != self._epoch:
            # From the epoch's second step on, dropout and other random draws come from this
            # process's own stream (as the engine's seed_rank_stream): the first step may build
            # the model (a subclassed one builds on its first call), from the common stream.
            self._streamed = self._epoch
            torch.manual_seed(engine_distributed.rank_stream_seed(self._seed, self._epoch,
                                                                  self.rank))
        return self.reduce(logs, keep=False) if self.batch_logs else logs

    def end_logs(self) -> dict[str, Any]:
        """The logs of an epoch or an evaluation: its last step's, reduced over the processes;
        every metric of the model is left holding the state of all processes, as one process's.

        Raises:
            TrainingError: see :meth:`reduce`.
        """
        return self.reduce(self._last, keep=True)

    def check_weights(self, epoch: int) -> None:
        """Every process must hold bit-identical weights after an epoch.

        Raises:
            TrainingError: they differ (a step updated weights outside an optimizer).
        """
        with torch.no_grad():
            digest = sum(float(p.detach().double().sum()) * (i + 1)
                         for i, p in enumerate(self.model.parameters()) if p.requires_grad)
        values = torch.tensor([digest, -digest], dtype=torch.float64, device=engine_distributed.collective_device())
        dist.all_reduce(values, op=dist.ReduceOp.MAX)
        values = values.cpu()
        if float(values[0]) != -float(values[1]):
            raise TrainingError(
                f"{self.what}: after epoch {epoch + 1} the processes hold different weights of "
                f"model '{self.model.name}'. The train_step must update weights through an "
                "optimizer (optimizer.apply / apply_gradients / a torch optimizer's step()), whose "
                "gradients are averaged over the processes; a manual update is not")

    def reduce(self, logs: dict[str, Any], keep: bool) -> dict[str, Any]:
        """``logs`` of every process combined: metric results from the summed metric states,
        other values averaged weighted by samples. ``keep``: leave the metrics holding the
        summed state (else this process's own state is restored).

        Raises:
            TrainingError: a value that is not a number; processes disagreeing on the keys.
        """
        bad = sorted(key for key, value in logs.items() if not _is_number(value))
        keys = sorted(logs)
        leaves = _accumulators(self.model.metrics)
        states = [_read(owner, name) for owner, name in leaves]
        length = sum(int(s.numel()) for s in states)
        digest = zlib.crc32(repr(keys).encode())
        header = torch.tensor([1 if bad else 0, length, digest], dtype=torch.int64)
        verdict = torch.cat([header, -header]).to(engine_distributed.collective_device())
        dist.all_reduce(verdict, op=dist.ReduceOp.MAX)
        verdict = verdict.cpu()
        if int(verdict[0]):
            detail = (f"this process's {bad} hold {[_describe(logs[k]) for k in bad]}" if bad
                      else "another process's logs hold such values")
            raise TrainingError(
                f"{self.what} of model '{self.model.name}': the step returned logs that are not "
                f"numbers ({detail}); under torchrun every logged value must be a scalar to be "
                "reduced over the processes (return metrics' results or scalar tensors)")
        if int(verdict[1]) != -int(verdict[4]) or int(verdict[2]) != -int(verdict[5]):
            raise TrainingError(
                f"{self.what} of model '{self.model.name}': the processes' steps returned different "
                f"log keys or metric states (process {self.rank}: keys {keys}, {length} metric "
                "state values); every process must run the same step")
        weight = float(max(self._samples, 1))
        values = [float(logs[key]) * weight for key in keys]
        flat = torch.cat([*(s.reshape(-1).double().cpu() for s in states),
                          torch.tensor([*values, weight], dtype=torch.float64)])
        device = engine_distributed.collective_device()
        flat = flat.to(device)
        dist.all_reduce(flat)
        flat = flat.cpu()
        total_weight = float(flat[-1])
        averaged = {key: float(flat[length + i]) / total_weight for i, key in enumerate(keys)}
        local = _results(self.model)  # before the summed states are written
        offset = 0
        for (owner, name), state in zip(leaves, states):
            size = int(state.numel())
            _write(owner, name, flat[offset:offset + size].reshape(state.shape))
            offset += size
        merged = _results(self.model)
        if not keep:
            for (owner, name), state in zip(leaves, states):
                _write(owner, name, state)
        # A value that is a metric's result (the same number as that metric's own result here)
        # becomes the metric's result over all processes; other values are averaged.
        return {key: merged[key] if key in merged and key in local
                and math.isclose(float(logs[key]), local[key], rel_tol=1e-6, abs_tol=1e-12)
                else averaged[key] for key in logs}


# --- metric states ------------------------------------------------------------------------------


def _accumulators(metrics: Sequence[Any]) -> list[tuple[Any, Any]]:
    """``(owner, attribute)`` of every summed state of ``metrics`` (nested ones included), in the
    same order on every process; a Keras ``Variable`` is given as ``(variable, None)``."""
    found: list[tuple[Any, Any]] = []
    seen: set[int] = set()

    def walk(metric: Any) -> None:
        if id(metric) in seen:
            return
        seen.add(id(metric))
        state = vars(metric) if hasattr(metric, "__dict__") else {}
        for name in _SUMMED:
            value = state.get(name)
            if isinstance(value, torch.Tensor) or (isinstance(value, (int, float))
                                                    and not isinstance(value, bool)):
                found.append((metric, name))
        for variable, _ in state.get("_variables") or ():
            found.append((variable, None))
        for name in _INNER:
            inner = state.get(name)
            if inner is not None and hasattr(inner, "result"):
                walk(inner)
        inner_metrics = getattr(type(metric), "metrics", None)
        if isinstance(inner_metrics, property):  # a container (compile metrics)
            for inner in metric.metrics:
                walk(inner)

    for metric in metrics:
        walk(metric)
    return found


def _results(model: Any) -> dict[str, float]:
    """``model.get_metrics_result()`` as plain floats (non-scalar results left out)."""
    return {key: float(value) for key, value in model.get_metrics_result().items()
            if _is_number(value)}


def _read(owner: Any, name: Any) -> torch.Tensor:
    value = owner if name is None else getattr(owner, name)
    if isinstance(value, torch.Tensor):
        return value.detach().clone()
    return torch.tensor(float(value), dtype=torch.float64)


def _write(owner: Any, name: Any, value: torch.Tensor) -> None:
    if name is None:  # a Keras metric's Variable
        with torch.no_grad():
            owner.data.copy_(value.to(owner.dtype))
        return
    current = getattr(owner, name)
    if isinstance(current, torch.Tensor):
        setattr(owner, name, value.to(dtype=current.dtype, device=current.device).clone())
    elif isinstance(current, int):
        setattr(owner, name, int(round(float(value))))
    else:
        setattr(owner, name, float(value))


def _is_number(value: Any) -> bool:
    if isinstance(value, torch.Tensor):
        return value.numel() == 1
    if isinstance(value, np.ndarray):
        return value.size == 1
    return isinstance(value, (int, float, np.number)) and not isinstance(value, bool)


def _describe(value: Any) -> str:
    shape = getattr(value, "shape", None)
    return f"{type(value).__name__} of shape {tuple(shape)}" if shape is not None \
        else type(value).__name__


def _agree(values: torch.Tensor, message: str) -> None:
    """Raise ``message`` on every process unless ``values`` are the same on every process."""
    both = torch.cat([values, -values]).to(engine_distributed.collective_device())
    dist.all_reduce(both, op=dist.ReduceOp.MAX)
    both = both.cpu()
    size = values.numel()
    if not torch.equal(both[:size], -both[size:]):
        raise TrainingError(message)


# --- predict ----------------------------------------------------------------------------------


class _StepPredictor:
    """``predict_with_steps`` seen as a trainer by ``distributed_fit.predict_sharded``."""

    strategy = "ddp"  # StepSync already gave rank 0's weights to every process

    def __init__(self, model: Any, callbacks: list[Any]) -> None:
        self.model, self.callbacks = model, callbacks

    def predict(self, x: Any, batch_size: int, verbose: int) -> Any:
        out = predict_with_steps(self.model, x, batch_size, verbose, self.callbacks)
        if isinstance(out, dict):
            return {key: torch.from_numpy(np.ascontiguousarray(v)) for key, v in out.items()}
        if isinstance(out, list):
            return [torch.from_numpy(np.ascontiguousarray(v)) for v in out]
        return torch.from_numpy(np.ascontiguousarray(out))


def predict(model: Any, x: Any, batch_size: int, verbose: int, callbacks: list[Any],
            share: bool = True) -> Any:
    """``predict`` through the step loop under several processes: with ``share``, each process
    predicts a contiguous share of in-memory ``x``; the whole result, in order, on every process
    (NumPy, as ``predict_with_steps``). Without it (a Dataset or generator) every process predicts
    all of ``x`` with rank 0's weights.

    Raises:
        ConfigError: the processes hold different models.
        NotSupportedError: a ``ModelParallel`` layout is set.
    """
    StepSync(model, callbacks, "predict")  # fit's checks: the same model, no layouts; rank 0's weights
    if not share:
        return predict_with_steps(model, x, batch_size, verbose if world()[0] == 0 else 0, callbacks)
    out = distributed_fit.predict_sharded(_StepPredictor(model, callbacks), x, batch_size, verbose)
    if isinstance(out, dict):
        return {key: v.numpy() for key, v in out.items()}
    if isinstance(out, list):
        return [v.numpy() for v in out]
    return out.numpy()
