"""The one run path: ``run_recipe(recipe)`` trains what a recipe describes and fills a run dir::

    recipe.yaml            the resolved recipe (every default written out)
    model.json             registry name + config (+ the task's metadata: class names, input spec)
    model.safetensors      final weights
    checkpoints/ ...       the Trainer's own checkpoints (it is given the run directory)
    metrics.csv            one row per epoch (CSV logger)
    <the task's files>     vocabulary / tokenizer / adapters, plots (training curves, confusion
                           matrix, ...)
    results.json           final numbers, machine-readable
    report.md              recipe summary, results, parameter count, time

Every task (:mod:`bigmodel.recipes.tasks`) and every command that trains (``bigmodel train``,
``bigmodel finetune``; ``compress`` fine-tunes through :mod:`bigmodel.recipes.training`) goes
through it: seed -> run dir -> task data -> model -> Trainer (callbacks, CSV logger, early
stopping) -> the start-of-run summary on stdout (:mod:`bigmodel.recipes.summary`, when ``verbose``)
-> fit -> save model -> ``task.evaluate`` -> results.json, plots, report.md.
"""

from __future__ import annotations

import math
import os
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bigmodel.engine import progress, run_lock
from bigmodel.recipes import workers as torchrun_workers
from bigmodel.recipes.rundir import check_resumable, claimed_run_dir
from bigmodel.recipes.summary import run_summary
from bigmodel.recipes.tasks import Evaluation, Task, get_task

TRAIN_ROW = "train (last epoch, running average)"


@dataclass
class RunResult:
    """What a run measured. ``evaluation`` is None in torchrun workers other than rank 0."""

    run_dir: Path
    evaluation: Evaluation | None
    parameters: int = 0
    trainable: int = 0
    seconds: float = 0.0
    epochs_run: int = 0

    @property
    def results(self) -> dict[str, dict[str, float | None]]:
        return {} if self.evaluation is None else self.evaluation.results

    @property
    def test_loss(self) -> float:
        value = self.results.get("test", {}).get("loss")
        return math.nan if value is None else value

    @property
    def test_accuracy(self) -> float:
        value = self.results.get("test", {}).get("accuracy")
        return math.nan if value is None else value

    @property
    def num_test(self) -> int:
        return 0 if self.evaluation is None else self.evaluation.num_test

    @property
    def unit(self) -> str:
        return "examples" if self.evaluation is None else self.evaluation.unit


def recipe_task(recipe, **options: Any) -> Task:
    """The task a recipe names (``recipe.task``), built with ``options``."""
    return get_task(recipe.task, **options)


def run_recipe(recipe, run_dir: str | None = None, default_name: str = "run", verbose: int = 1,
               resume: bool = False, task: Task | None = None) -> RunResult:
    """Train what ``recipe`` describes and write the run directory (see the module doc).

    The run directory is created and locked first (:func:`~bigmodel.recipes.rundir.
    claimed_run_dir`); data, model and trainer are all built before anything is written into it,
    so an error in the recipe leaves no run directory behind.

    Args:
        recipe: a validated recipe (:class:`~bigmodel.recipes.schema.Recipe` or a fine-tuning one).
        run_dir: where to write (new or empty); None: ``output.name`` or
            ``<default_name>-<timestamp>`` under ``output.root``.
        default_name: the run's name when neither ``run_dir`` nor ``output.name`` gives one.
        verbose: the Trainer's progress output (0, 1, 2).
        resume: ``run_dir`` is an existing run of the same recipe
            (:func:`~bigmodel.recipes.rundir.check_resumable`), continued from its newest valid
            checkpoint.
        task: the task to run (default: ``get_task(recipe.task)``; ``finetune`` needs its source:
            ``get_task("finetune", source=...)``).

    Raises:
        ConfigError / DataFileError / TrainingError / ...: any :class:`BigModelError`;
        :class:`~bigmodel.errors.Preempted` when SIGTERM/SIGINT stopped the training.
    """
    import torch

    started = time.perf_counter()
    task = task if task is not None else recipe_task(recipe)
    train = recipe.train
    workers = torchrun_workers.under_torchrun()  # one of several processes: a shared, resumable run dir
    if workers:
        from bigmodel.engine.distributed import check_strategy

        check_strategy(train.strategy, train.precision, torch.device("cpu") if train.device == "cpu"
                       else torch.device("cuda" if torch.cuda.is_available() else "cpu"))
    # Long phases (data, evaluation) report as verbose says, in one process of a torchrun job.
    with progress.verbosity(verbose if torchrun_workers.rank() == 0 else 0):
        if resume and not workers:
            path = check_resumable(recipe, run_dir)
            with run_lock.hold(path):
                return _run_in(task, recipe, path, workers, verbose, started, resume=True)
        with claimed_run_dir(recipe, run_dir, default_name, workers) as path:
            return _run_in(task, recipe, path, workers, verbose, started)


def _run_in(task: Task, recipe, path: Path, workers: bool, verbose: int, started: float,
            resume: bool = False) -> RunResult:
    """:func:`run_recipe` in the claimed run directory ``path``."""
    import numpy as np
    import torch

    from bigmodel.engine.callbacks import CSVLogger
    from bigmodel.models import save_model
    from bigmodel.recipes import training
    from bigmodel.recipes.results import write_results
    from bigmodel.recipes.schema import save_recipe

    train = recipe.train
    if train.seed is not None:
        torch.manual_seed(train.seed)
        np.random.seed(train.seed)
    data = task.prepare(recipe, train.seed)
    model = task.build_model(recipe, data)
    parameters = sum(p.numel() for p in model.parameters())
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    augmentation = training.build_augmentation(recipe.data.augment)
    trained = training.augmented(model, augmentation) if augmentation is not None else model
    inputs = task.fit_inputs(recipe, data, model)
    trainer = training.build_trainer(
        trained, train, inputs, run_dir=path, verbose=verbose,
        extra_loss=training.kernel_l2_penalty(model, train.l2) if train.l2 > 0 else None)
    main_process = trainer.is_main_process
    if main_process and verbose:
        # a fine-tuning task names its source ("pretrained all-MiniLM-L6-v2"), not recipe.model
        model_name = getattr(task, "origin", "") or recipe.model.name
        processes = int(os.environ.get("WORLD_SIZE", "1")) if workers else 1
        print("\n".join(run_summary(recipe, task.name, data, parameters, trainable,
                                    trainer.device, path, resume, model_name, processes)),
              flush=True)
    if main_process:
        save_recipe(recipe, path / "recipe.yaml")
    stopper = training.early_stopping(train, verbose)
    callbacks = [stopper] if stopper is not None else []
    if main_process:  # every process sees the same (averaged) logs; one writes them
        callbacks.append(CSVLogger(path / "metrics.csv", append=workers or resume))
    fit_started = time.perf_counter()
    try:
        history = training.fit(trainer, train, inputs, callbacks, resume=workers or resume)
    except BaseException:
        print(f"note: the incomplete run is left in {path}", file=sys.stderr)
        raise
    fit_seconds = time.perf_counter() - fit_started
    if trainer.distributed:  # gather the (possibly sharded) weights; rank 0 measures alone
        from bigmodel.engine.dist_checkpoint import full_state_dict

        state = full_state_dict(trained)
        trainer.close()
        if not main_process:
            return RunResult(path, None, parameters, trainable)
        model = task.build_model(recipe, data)
        plain = (training.augmented(model, training.build_augmentation(recipe.data.augment))
                 if augmentation is not None else model)
        plain.load_state_dict(state)
        model.to(trainer.device)

    model.eval()
    model = task.finish(recipe, model, data, path)
    save_model(model, path, metadata=task.model_metadata(recipe, data))
    evaluation = task.evaluate(recipe, model, data, path)
    logs = {key: values[-1] for key, values in history.history.items() if values}
    metric = next((str(m) for m in inputs.metrics if isinstance(m, str)), "accuracy")
    evaluation.results = {TRAIN_ROW: {"loss": logs.get("loss"), metric: logs.get(metric)},
                          **evaluation.results}
    result = RunResult(path, evaluation, parameters, trainable,
                       time.perf_counter() - started, len(history.epoch))
    write_results(recipe, task.name, result, stopper, trainer.device, fit_seconds)
    return result


__all__ = ["RunResult", "recipe_task", "run_recipe"]
