"""``Trainer``: fits any ``nn.Module`` -- devices, precision, accumulation, clipping, schedules,
metrics, callbacks, progress, checkpoints and exact resume -- around a lean step loop.

The loop is benchmarked against the minimal hand-written loop (zero_grad, forward, loss, backward,
step), so per step it adds only: a detached loss appended to a list, metric updates that stay on
the device, one clock read. The loss is read back from the device (and checked for NaN/Inf) at most
every ``progress.REFRESH_SECONDS``, at the end of the epoch, or after every batch only when a
callback asks for batch logs.
"""

from __future__ import annotations

import itertools
import math
import time
import warnings
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import torch
from torch import nn

from bigmodel.data.batching import (
    EpochSteps,
    batch_size_of,
    make_batches,
    num_batches,
)
from bigmodel.engine import checkpoint as ckpt
from bigmodel.engine import distributed, step_checkpoints, training_state
from bigmodel.engine import metrics as metrics_module
from bigmodel.engine.backup import with_backup
from bigmodel.engine.callbacks import (
    Callback,
    CallbackList,
    History,
    needs_batch_hooks,
)
from bigmodel.engine.metrics import RunningLoss
from bigmodel.engine.progress import REFRESH_SECONDS, ProgressBar
from bigmodel.engine.resolve import (
    class_weight_table,
    class_weights,
    resolve_device,
    resolve_loss,
    resolve_optimizer,
    resolve_precision,
    seed_everything,
)
from bigmodel.engine.schedules import build_scheduler, needs_total_steps
from bigmodel.engine.trainer_inference import InferenceMixin
from bigmodel.engine.trainer_persistence import PersistenceMixin, holding_run_dir
from bigmodel.engine.trainer_step import StepMixin
from bigmodel.errors import ConfigError, InputTypeError, TrainingError


class Trainer(StepMixin, PersistenceMixin, InferenceMixin):
    """Train, evaluate and run any ``nn.Module``.

    Args:
        model: the module; moved to ``device``.
        loss: ``loss(outputs, targets) -> scalar`` (``loss(outputs, targets, sample_weight)`` when
            batches carry weights), a torch loss module (weights handled via ``reduction="none"``),
            or a name: cross_entropy, mse, mae, l1, bce, bce_with_logits, nll, huber. ``None``
            for a trainer that only predicts.
        optimizer: "adam" | "adamw" | "sgd" | "rmsprop" (with ``lr``), an Optimizer over the
            model's parameters, or a callable ``params -> Optimizer``; ``None`` when not training.
        lr: learning rate for an optimizer given by name.
        metrics: ``Metric`` objects or names (``"accuracy"``, ``"auc"``, ...), logged by name.
        device: "auto" (CUDA when present), "cpu", "cuda", "cuda:1" or a ``torch.device``.
        precision: "fp32" | "bf16" (autocast; also on CPU) | "fp16" (CUDA, with a GradScaler).
        grad_clip_norm: clip the global gradient norm to this value.
        grad_accum_steps: micro-batches per optimizer step; each loss is divided so the summed
            gradient equals that of the big batch (for equal-sized micro-batches).
        scheduler: a spec (see ``engine.schedules``), an LRScheduler or ``optimizer -> scheduler``;
            stepped after every optimizer step. A cosine spec without ``total_steps`` gets
            ``epochs * ceil(steps_per_epoch / grad_accum_steps)``.
        run_dir: where epoch checkpoints go (``run_dir/checkpoints``); ``None`` writes none.
        seed: seeds Python, NumPy and torch at the start of the first ``fit`` and the shuffling.
        verbose: 0 silent, 1 progress bar, 2 one line per epoch.
        extra_loss: ``() -> scalar`` added to the loss every step (e.g. weight penalties).
        callback_model: the object callbacks see as ``self.model`` (e.g. a Keras ``Model``);
            the trainer itself when ``None``.
        channels_last: store 4-D inputs and the model in ``torch.channels_last`` memory format.
        grad_clip_value: clip every gradient element to ``[-v, v]``.
        keep_checkpoints: epoch checkpoints kept in ``run_dir`` (newest first).
        checkpoint_monitor: also keep ``run_dir/checkpoints/best`` for the best value of this log key.
        checkpoint_mode: "auto" | "min" | "max" for ``checkpoint_monitor``.
        strategy: "single" | "ddp" | "fsdp" | "hybrid" (see ``engine.distributed``): under torchrun,
            ``fit``'s ``batch_size`` is the global batch, split over the processes; logs are
            averaged over them; epoch checkpoints are sharded (``engine.dist_checkpoint``).
        activation_checkpointing: recompute each block's activations in backward.
        compile: ``torch.compile`` each block in place (``True`` or a backend name).
        checkpoint_every: also checkpoint within epochs: every N optimizer steps (``500``) or every
            so much time (``"30s"``, ``"10min"``); needs ``run_dir``. ``fit(resume=True)`` then
            continues mid-epoch without training on any batch twice (``engine.step_checkpoints``).
            With a ``run_dir``, SIGTERM/SIGINT during ``fit`` write a checkpoint at the next step
            boundary and raise :class:`~bigmodel.errors.Preempted` (exit code 143/130).

    Raises:
        InputTypeError, ConfigError, UnknownNameError: invalid arguments (named in the message).
    """

    def __init__(self, model: nn.Module, loss: Any, optimizer: Any = "adam", lr: float = 1e-3,
                 metrics: Sequence[Any] = (), device: Any = "auto", precision: str = "fp32",
                 grad_clip_norm: float | None = None, grad_accum_steps: int = 1, scheduler: Any = None,
                 run_dir: str | Path | None = None, seed: int | None = None, verbose: int = 1,
                 extra_loss: Callable[[], torch.Tensor] | None = None, callback_model: Any = None,
                 channels_last: bool = False, *, grad_clip_value: float | None = None,
                 keep_checkpoints: int = 2, checkpoint_monitor: str | None = None,
                 checkpoint_mode: str = "auto", strategy: str = "single",
                 activation_checkpointing: bool = False, compile: bool | str = False,
                 checkpoint_every: int | str | None = None) -> None:
        if not isinstance(model, nn.Module):
            raise InputTypeError(f"Trainer needs an nn.Module; received {type(model).__name__}")
        if int(grad_accum_steps) != grad_accum_steps or grad_accum_steps < 1:
            raise ConfigError(f"grad_accum_steps must be an int >= 1; received {grad_accum_steps!r}")
        for name, value in (("grad_clip_norm", grad_clip_norm), ("grad_clip_value", grad_clip_value)):
            if value is not None and not value > 0:
                raise ConfigError(f"{name} must be > 0 or None; received {value!r}")
        if verbose not in (0, 1, 2):
            raise ConfigError(f"verbose must be 0, 1 or 2; received {verbose!r}")
        if checkpoint_mode not in ("auto", "min", "max"):
            raise ConfigError(f"checkpoint_mode must be 'auto', 'min' or 'max'; received {checkpoint_mode!r}")
        self._policy = step_checkpoints.CheckpointPolicy(checkpoint_every)
        if checkpoint_every is not None and run_dir is None:
            raise ConfigError(f"checkpoint_every={checkpoint_every!r} needs a run_dir to write into")
        if self._policy.seconds is not None and strategy != "single":
            raise ConfigError(f"checkpoint_every={checkpoint_every!r}: a duration is not supported with "
                              f"strategy={strategy!r} (the processes must agree on the step); give a "
                              "number of steps")
        self.strategy = strategy
        if strategy == "single":
            self._dist: distributed.DistributedContext | None = None
            self.device = resolve_device(device)
        else:
            self._dist = distributed.setup(strategy, device, precision,
                                           getattr(model, "_data_partition", None))
            self.device = self._dist.device
        self.precision = precision
        self._autocast_dtype = resolve_precision(precision, self.device)
        self.channels_last = bool(channels_last)
        memory_format = torch.channels_last if self.channels_last else torch.preserve_format
        self.model = model.to(self.device, memory_format=memory_format)
        self.loss, self._per_sample_loss = resolve_loss(loss)
        if strategy == "single" and not activation_checkpointing and not compile:
            self.network, self.optimizer = self.model, resolve_optimizer(optimizer, lr, self.model)
        else:  # the module the training step calls: the model, or its DDP wrapper
            self.network, self.optimizer = distributed.prepare(
                self.model, optimizer, lr, self._dist or distributed.DistributedContext("single"),
                precision, activation_checkpointing, compile)
        self._slices: distributed.RankSlices | None = None
        self.metrics = [metrics_module.get(m) for m in metrics]
        names = [m.name for m in self.metrics]
        if len(set(names)) != len(names) or "loss" in names:
            raise ConfigError(f"Metric names must be unique and not 'loss'; received {names}")
        self.grad_clip_norm, self.grad_clip_value = grad_clip_norm, grad_clip_value
        self.grad_accum_steps = int(grad_accum_steps)
        self._scheduler_spec = scheduler
        self.scheduler = None
        if scheduler is not None and self.optimizer is None:
            raise ConfigError("A scheduler needs an optimizer; received optimizer=None")
        if scheduler is not None and not isinstance(scheduler, (str, Mapping)):
            self.scheduler = build_scheduler(self.optimizer, scheduler)
        self.run_dir = Path(run_dir) if run_dir is not None else None
        self._checkpoints = ckpt.CheckpointManager(self.run_dir, keep_checkpoints) if run_dir else None
        self.checkpoint_monitor, self.checkpoint_mode = checkpoint_monitor, checkpoint_mode
        self._position: dict | None = None  # set while a checkpoint records a mid-epoch position
        self._tracked: step_checkpoints.TrackedBatches | None = None
        self.seed, self.verbose = seed, verbose
        self.extra_loss = extra_loss
        self.callback_model = callback_model
        self._scaler = torch.amp.GradScaler("cuda") if self._autocast_dtype == torch.float16 else None
        self._params = [p for p in self.model.parameters() if p.requires_grad]
        self.history = History()
        self.global_step = 0  # optimizer steps taken
        self.epoch = 0  # epochs completed (= 0-based index of the epoch in progress)
        self.stop_training = False
        self._seeded = False
        self._generator: torch.Generator | None = None
        self._callbacks: list[Callback] = []
        self._restored: dict[str, Any] = {}  # parts of a loaded checkpoint applied later in fit
        self._last_checkpoint: Path | None = None
        self._best_value: float | None = None

    # --- fit / evaluate / predict --------------------------------------------------------------

    @with_backup
    @holding_run_dir
    @step_checkpoints.handling_signals
    def fit(self, train: Any, val: Any = None, epochs: int = 1, batch_size: int = 32,
            shuffle: bool = True, callbacks: Iterable[Callback] = (), initial_epoch: int = 0,
            class_weight: Mapping[int, float] | None = None, steps_per_epoch: int | None = None,
            resume: bool = False, *, verbose: int | None = None) -> History:
        """Train for ``epochs`` epochs (the epoch index runs from ``initial_epoch`` to ``epochs``).

        Args:
            train: ``(x, y[, sample_weight])`` arrays/tensors (``x`` may be a tuple/dict), a Dataset,
                a DataLoader or an iterable of ``(x, y[, sample_weight])`` batches.
            val: validation data in the same forms; adds ``val_*`` keys to the logs.
            epochs: index of the last epoch (Keras semantics).
            batch_size: for in-memory data and datasets.
            shuffle: reshuffle in-memory data / map-style datasets each epoch.
            callbacks: Keras-style callbacks; ``self.model`` is ``callback_model`` or this trainer.
            initial_epoch: epoch to start from.
            class_weight: ``{class_index: weight}`` multiplying each sample's loss weight.
            steps_per_epoch: batches per epoch (the data iterator continues across epochs).
            resume: continue from the newest complete checkpoint in ``run_dir`` (if any).
            verbose: overrides the trainer's ``verbose`` for this call.

        Returns:
            The ``History`` (``history.history["loss"]`` has one value per epoch).

        Raises:
            TrainingError: the loss became NaN/Inf (names epoch, step and last good checkpoint).
            DataError, InputTypeError: unusable data. ConfigError: invalid arguments.
        """
        verbose = self.verbose if verbose is None else verbose
        if epochs < 0 or initial_epoch < 0 or batch_size < 1 or (steps_per_epoch or 1) < 1:
            raise ConfigError(f"fit needs epochs >= 0, initial_epoch >= 0, batch_size >= 1 and "
                              f"steps_per_epoch >= 1; received epochs={epochs}, initial_epoch="
                              f"{initial_epoch}, batch_size={batch_size}, steps_per_epoch={steps_per_epoch}")
        if resume and self._checkpoints is None:
            raise ConfigError("fit(resume=True) needs the trainer's run_dir")
        if self.loss is None or self.optimizer is None:
            raise ConfigError("This trainer was built without a loss or an optimizer; fit needs both")
        if self.seed is not None and not self._seeded:
            seed_everything(self.seed)
            self._seeded = True
        train_batches = make_batches(train, batch_size, shuffle, self._shuffle_generator(), self.device, "train")
        # Knows where each pass over the data stands, for checkpoints within an epoch.
        train_batches = self._tracked = step_checkpoints.TrackedBatches(train_batches, self._shuffle_generator())
        val_batches = None if val is None else make_batches(val, batch_size, False, None, self.device, "val")
        if self._dist is not None:
            ctx = self._dist
            distributed.check_global_batch(batch_size, ctx.world_size, self.grad_accum_steps)
            share, shares = ctx.data_partition
            train_batches = self._slices = distributed.RankSlices(train_batches, share, shares)
            if val_batches is not None:
                val_batches = distributed.RankSlices(val_batches, share, shares)
            if not ctx.is_main:
                verbose = 0
        if steps_per_epoch is not None:
            train_batches = EpochSteps(train_batches, steps_per_epoch)
        steps = num_batches(train_batches)
        self._build_scheduler(epochs, steps)
        weight_table = class_weight_table(class_weight, self.device)
        start = None  # a mid-epoch checkpoint's position: where the first epoch resumes
        if resume and self._resume_checkpoint() is not None:
            initial_epoch = max(initial_epoch, self.epoch)
            if (position := self._restored.pop("position", None)) is not None:
                step_checkpoints.check_same_data(position, self._tracked)
                self._tracked.resume_at(position.get("pass_state"), position.get("pass_offset", 0))
                start = position if position.get("step") else None
        self.history = History()
        self._callbacks = list(callbacks)
        callback_list = CallbackList([*self._callbacks, self.history], model=self._callback_target(),
                                     params={"epochs": epochs, "steps": steps, "verbose": verbose,
                                             "initial_epoch": initial_epoch, "resume": bool(resume)})
        batch_hooks = any(needs_batch_hooks(cb) for cb in self._callbacks)
        self._set_stop(False)
        callback_list.on_train_begin()
        training_state.apply_restored(self)
        progress = ProgressBar(verbose)
        logs: dict[str, float] = {}
        for epoch in range(initial_epoch, epochs):
            self.epoch = epoch
            if start is None:  # mid-epoch, the restored RNG state already is the stream's
                distributed.seed_rank_stream(self._shuffle_generator().initial_seed(), epoch, self._dist)
            callback_list.on_epoch_begin(epoch)
            result = self._train_epoch(train_batches, epoch, epochs, steps, callback_list,
                                       batch_hooks, progress, weight_table, start)
            start = None
            if result is None:
                warnings.warn("Your input ran out of data; interrupting training. Make sure the data "
                              "can produce at least steps_per_epoch * epochs batches.", stacklevel=2)
                break
            logs, step, started = result
            if val_batches is not None:
                callback_list.on_test_begin()
                val_logs = self._evaluate_batches(val_batches)
                callback_list.on_test_end(val_logs)
                logs.update({f"val_{key}": value for key, value in val_logs.items()})
            self.epoch = epoch + 1
            callback_list.on_epoch_end(epoch, logs)
            progress.epoch_end(step, time.perf_counter() - started, logs)
            if self._checkpoints is not None and math.isfinite(logs["loss"]):
                # A steps_per_epoch stream may be mid-pass: the checkpoint records where.
                self._position = (step_checkpoints.pass_position(self._tracked)
                                  if isinstance(train_batches, EpochSteps) else None)
                try:
                    self._save_epoch_checkpoint(logs)
                finally:
                    self._position = None
                self._policy.saved()
            if self._policy.signal is not None and self._checkpoints is not None:
                self._preempted(epoch + 1, 0)
            if self._should_stop():
                break
        callback_list.on_train_end(logs)
        return self.history

    def _train_epoch(self, batches, epoch, epochs, steps, callback_list, batch_hooks, progress,
                     weight_table, start=None):
        """One epoch (from a mid-epoch checkpoint's ``start`` position when given); returns
        ``(logs, batches_done, start_time)`` or ``None`` if no batch came."""
        model, optimizer, metrics, scaler = self.model, self.optimizer, self.metrics, self._scaler
        for metric in metrics:
            metric.reset()
        tracker = RunningLoss()
        step = 0
        if start is not None:  # the data source skips the batches done; losses/metrics continue
            step = step_checkpoints.restore_epoch(start, tracker, metrics, self.device)
            if steps:
                batches = itertools.islice(batches, max(steps - step, 0))
        # Checkpoints within the epoch: every N steps / seconds, or on a signal (single process).
        policy = self._policy if self._checkpoints is not None else None
        pending, sizes = tracker.pending, tracker.sizes
        accum = self.grad_accum_steps
        # A short last group of micro-batches is averaged over its own length, when it is known.
        tail_start = (steps // accum) * accum if steps else None
        slices = self._slices
        autocast = self._autocast()
        model.train()
        progress.epoch_begin(epoch, epochs, steps)
        started = time.perf_counter()
        next_read = started + REFRESH_SECONDS
        optimizer.zero_grad(set_to_none=True)
        for batch in batches:
            x, y, weight = self._unpack(batch, "fit")
            if weight_table is not None:
                weight = class_weights(y, weight_table, weight)
            if batch_hooks:
                callback_list.on_train_batch_begin(step)
            # An epoch of unknown length may end on any micro-batch: then always synchronize.
            sync = slices is None or not steps or (step + 1) % accum == 0 or step + 1 == steps
            with distributed.gradient_sync(self.network, sync):
                with autocast:
                    outputs, loss = self._forward(x, y, weight)
                # Weight each rank's mean loss by its share of the global batch, so the average
                # the gradient reduction takes is the global batch's mean.
                scaled = loss if slices is None else loss * (slices.fraction * slices.world_size)
                if not scaled.requires_grad:
                    pass  # nothing trainable reaches the loss: Keras fits such a model as a no-op
                elif accum > 1:
                    divisor = accum if tail_start is None or step < tail_start else steps - tail_start
                    (scaler.scale(scaled / divisor) if scaler else scaled / divisor).backward()
                else:
                    (scaler.scale(scaled) if scaler else scaled).backward()
            pending.append(loss.detach())
            sizes.append(batch_size_of(y))
            if metrics:
                detached = outputs.detach()
                for metric in metrics:
                    metric.update(detached, y)
            step += 1
            if step % accum == 0 or step == steps:
                self._optimizer_step()
                if policy is not None and step != steps and policy.due(self.global_step):
                    self._step_boundary(epoch, step, tracker)
            if batch_hooks:
                callback_list.on_train_batch_end(step - 1, self._running_logs(tracker))
                self._check_finite(tracker, epoch)
            now = time.perf_counter()
            if now >= next_read:
                self._check_finite(tracker, epoch)
                if progress.due(now):  # live bar, or a line every N s when piped
                    progress.update(step, now - started, self._running_logs(tracker))
                next_read = now + REFRESH_SECONDS
            if self._should_stop():
                break
        if step % accum and step != steps and not self._should_stop():
            self._optimizer_step()  # leftover micro-batches of an epoch of unknown length
        if step == 0:
            return None
        self._check_finite(tracker, epoch)
        logs = self._reduce_logs(
            {"loss": tracker.mean(), **{metric.name: metric.result() for metric in metrics}}, tracker)
        return logs, step, started

    def _optimizer_step(self) -> None:
        optimizer, scaler = self.optimizer, self._scaler
        if scaler is not None and (self.grad_clip_norm or self.grad_clip_value):
            scaler.unscale_(optimizer)  # clip true gradients, not scaled ones
        if self.grad_clip_norm:
            nn.utils.clip_grad_norm_(self._params, self.grad_clip_norm)
        if self.grad_clip_value:
            nn.utils.clip_grad_value_(self._params, self.grad_clip_value)
        if scaler is not None:
            scaler.step(optimizer)
            scaler.update()
        else:
            optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        self.global_step += 1
        if self.scheduler is not None:
            self.scheduler.step()

    def _check_finite(self, tracker: RunningLoss, epoch: int) -> None:
        tracker.flush()
        if tracker.bad_step is None or self._should_stop():
            return  # a callback (e.g. TerminateOnNaN) already ended training gracefully
        last = self._last_checkpoint or (self._checkpoints.latest() if self._checkpoints else None)
        where = str(last) if last else ("none written yet" if self._checkpoints else "none (run_dir not set)")
        raise TrainingError(
            f"The loss became NaN or Inf at epoch {epoch + 1}, step {tracker.bad_step} (1-based; the "
            f"step counts batches within the epoch). Training stopped; last good checkpoint: {where}"
        )

    def _reduce_logs(self, logs: dict[str, float], tracker: RunningLoss) -> dict[str, float]:
        """Logs averaged over all processes, weighted by their sample counts."""
        if self._dist is None:
            return logs
        tracker.flush()
        return distributed.all_reduce_weighted(logs, float(tracker.count), self.device)

    @property
    def distributed(self) -> bool:
        """Whether this trainer runs one process of several (a ddp / fsdp / hybrid strategy)."""
        return self._dist is not None

    @property
    def is_main_process(self) -> bool:
        """Whether this process writes what a run writes once (rank 0, or the only process)."""
        return self._dist is None or self._dist.is_main

    def close(self) -> None:
        """Leave the process group this trainer created (distributed strategies).

        The DDP wrapper (and its reducer, which holds the process group) is dropped first, so it
        is freed while the group still exists rather than during interpreter teardown, where
        freeing gloo objects can abort the process. The trainer cannot train after this.
        """
        if self._dist is not None:
            self.network = self.model
            self._dist.close()

    def _running_logs(self, tracker: RunningLoss) -> dict[str, float]:
        return {"loss": tracker.mean(), **{metric.name: metric.result() for metric in self.metrics}}

    # --- helpers ----------------------------------------------------------------------------------

    def _callback_target(self) -> Any:
        return self.callback_model if self.callback_model is not None else self

    def _set_stop(self, value: bool) -> None:
        self.stop_training = value
        if self.callback_model is not None:
            self.callback_model.stop_training = value

    def _should_stop(self) -> bool:
        return self.stop_training or bool(getattr(self.callback_model, "stop_training", False))

    def _shuffle_generator(self) -> torch.Generator:
        if self._generator is None:
            self._generator = torch.Generator()
            # Without a seed the order still follows torch's global RNG (torch.manual_seed).
            seed = self.seed if self.seed is not None else distributed.shared_seed(self._dist)
            self._generator.manual_seed(seed)
        return self._generator

    def _build_scheduler(self, epochs: int, steps: int | None) -> None:
        if self.scheduler is not None or self._scheduler_spec is None or epochs == 0:
            return  # built once, at the first fit that trains: its length fixes the schedule's
        total = math.ceil(steps / self.grad_accum_steps) * epochs if steps else None
        if total is None and needs_total_steps(self._scheduler_spec):
            raise ConfigError("The cosine schedule needs total_steps: the epoch length is unknown "
                              "(pass steps_per_epoch or total_steps)")
        self.scheduler = build_scheduler(self.optimizer, self._scheduler_spec, total)
        if "scheduler" in self._restored:
            self.scheduler.load_state_dict(self._restored.pop("scheduler"))


__all__ = ["Trainer", "seed_everything"]
