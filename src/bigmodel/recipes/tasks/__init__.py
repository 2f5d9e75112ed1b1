"""Task types of the one run path (:func:`bigmodel.recipes.run.run_recipe`) and their registry.

A recipe names its task (``task:`` at the top level, see :mod:`bigmodel.recipes.schema`); the run
path is the same for every task::

    seed -> run dir (claimed, locked) -> data = task.prepare(recipe, seed)
         -> model = task.build_model(recipe, data) -> fit = task.fit_inputs(recipe, data, model)
         -> Trainer(model, loss=fit.loss, metrics=fit.metrics, optimizer=recipe_optimizer(...),
                    callbacks: fit.callbacks + early stopping + CSV logger)
         -> trainer.fit(fit.train, fit.validation, ...)
         -> model = task.finish(recipe, model, data, run_dir)   (vocabulary, tokenizer, adapters)
         -> save_model(model, run_dir, metadata=task.model_metadata(recipe, data))
         -> evaluation = task.evaluate(recipe, model, data, run_dir)   (writes its own plots)
         -> results.json, report.md (the run path's, from ``evaluation``)

A task implements :class:`Task` (a structural protocol: any object with these methods will do)
and is registered in :data:`_TASKS` below under one of :data:`TASK_NAMES`. The run path owns
everything that is not task-specific: seeding, the run directory and its lock, resume, the
optimizer (``recipe.train``), L2 penalty, image augmentation, schedules, early stopping, the CSV
logger, torchrun workers, ``recipe.yaml``, ``results.json`` and ``report.md``. A task never builds
a ``Trainer`` and never writes those files.

Tasks: ``image_classification`` / ``text_classification`` / ``speech_classification``
(:mod:`bigmodel.recipes.tasks.classification`), ``seq2seq`` (:mod:`~.seq2seq`), ``language_model``
(:mod:`~.language_model`), ``finetune`` (:mod:`~.finetune`: a trained run or a pretrained encoder
as the model source, ``get_task("finetune", source=...)``).
"""

from __future__ import annotations

import importlib
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

from bigmodel.errors import ConfigError
from bigmodel.recipes.task_types import TASKS as TASK_NAMES

# task name -> (module, class); imported on first use so a task's dependencies load only when run
_TASKS = {
    "image_classification": ("bigmodel.recipes.tasks.classification", "ImageClassification"),
    "text_classification": ("bigmodel.recipes.tasks.classification", "TextClassification"),
    "speech_classification": ("bigmodel.recipes.tasks.classification", "SpeechClassification"),
    "seq2seq": ("bigmodel.recipes.tasks.seq2seq", "Seq2SeqTask"),
    "language_model": ("bigmodel.recipes.tasks.language_model", "LanguageModelTask"),
    "finetune": ("bigmodel.recipes.tasks.finetune", "FinetuneTask"),
}


@dataclass
class FitInputs:
    """What the run path hands the engine's ``Trainer`` for one task.

    Attributes:
        loss: the Trainer's ``loss`` (a callable ``loss(outputs, targets) -> scalar`` or a name).
        train: the Trainer's ``fit(train=...)``: ``(x, y)`` arrays/tensors, a Dataset, a DataLoader
            or an iterable of batches.
        validation: the same forms, or None (then no ``val_*`` logs).
        metrics: the Trainer's ``metrics`` (e.g. ``["accuracy"]``); empty for none.
        parameters: what the optimizer gets (parameters or param groups with their own ``lr``);
            None: every parameter of the model that requires a gradient.
        callbacks: task callbacks (e.g. gradual unfreezing), run before early stopping and the
            CSV logger.
        steps_per_epoch: batches per epoch for streamed data (None: one pass over ``train``).
        shuffle: reshuffle in-memory data each epoch.
    """

    loss: Any
    train: Any
    validation: Any = None
    metrics: Sequence[Any] = ()
    parameters: Any = None
    callbacks: list = field(default_factory=list)
    steps_per_epoch: int | None = None
    shuffle: bool = True


@dataclass
class Evaluation:
    """A task's measurement of the trained model: what ``results.json`` and ``report.md`` show.

    Attributes:
        results: ``{split: {"loss": ..., "accuracy": ...}}`` measured by the task (the report's
            results table; keys other than loss/accuracy go to results.json only), by convention
            "validation" and "test". The run path puts a "train (last epoch, running average)"
            row from the Trainer's logs (loss and the first metric) in front.
        headline: ``(name, value)`` of the number the command prints, e.g. ``("test accuracy",
            0.91)`` or ``("validation bits per character", 2.1)``.
        num_test: number of examples the headline was measured on.
        unit: what one example is ("images", "texts", "clips", "pairs", "characters").
        summary: task rows of the report's table, e.g. ``{"data": "fashion_mnist: 600 train /
            ..."}``; the run path adds model, optimizer, epochs, time, device, seed.
        notes: bullet points for the report.
        matrix: test confusion matrix ``(K, K)`` for the per-class table, or None.
        class_names: the matrix's class names.
        images: ``{caption: file name}`` of plots the task wrote into the run dir.
        extra: more keys for ``results.json`` (e.g. ``{"exact_match": 0.99}``).
        title: the report's heading; None: "Run <run dir name>[: <recipe description>]".
    """

    results: dict[str, dict[str, float | None]]
    headline: tuple[str, float]
    num_test: int = 0
    unit: str = "examples"
    summary: dict[str, str] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    matrix: Any = None
    class_names: Sequence[str] | None = None
    images: dict[str, str] = field(default_factory=dict)
    extra: dict[str, Any] = field(default_factory=dict)
    title: str | None = None


@runtime_checkable
class Task(Protocol):
    """One task type of the run path (see the module doc for the order of the calls).

    ``data`` is the task's own typed data (e.g. :class:`~bigmodel.recipes.tasks.classification.
    ClassificationData`); the run path passes it back to the task and never looks inside.
    """

    name: str

    def prepare(self, recipe: Any, seed: int | None) -> Any:
        """Load and split the recipe's data; check that ``recipe.model`` suits it.

        Called before anything is written into the run dir: raise ConfigError / DataError here.
        """
        ...

    def build_model(self, recipe: Any, data: Any) -> Any:
        """A fresh ``nn.Module`` for ``recipe.model`` sized by ``data`` (vocabulary, classes,
        ...). May be called twice (torchrun: rank 0 rebuilds it to load the gathered weights)."""
        ...

    def fit_inputs(self, recipe: Any, data: Any, model: Any) -> FitInputs:
        """Loss, metrics, training / validation data (and optimizer parameters) for the Trainer."""
        ...

    def model_metadata(self, recipe: Any, data: Any) -> dict[str, Any]:
        """``model.json``'s ``metadata`` (e.g. ``class_names``, ``data``, ``input``)."""
        ...

    def finish(self, recipe: Any, model: Any, data: Any, run_dir: Path) -> Any:
        """After training (``model`` in eval mode), before it is saved: write the task's files
        next to the model (vocabulary, tokenizer, LoRA adapters, ...) and return the model to
        save and evaluate (usually ``model`` itself; e.g. with LoRA merged in)."""
        ...

    def evaluate(self, recipe: Any, model: Any, data: Any, run_dir: Path) -> Evaluation:
        """Measure the trained ``model`` (eval mode) and write the task's plots into ``run_dir``."""
        ...


def get_task(name: str, **options: Any) -> Task:
    """The task called ``name``, built with ``options`` (e.g. ``source=`` for ``finetune``).

    Raises:
        ConfigError: ``name`` is not one of :data:`TASK_NAMES`.
    """
    if name not in _TASKS:
        raise ConfigError(f"unknown task {name!r}; known tasks: {', '.join(TASK_NAMES)}")
    module_name, class_name = _TASKS[name]
    return getattr(importlib.import_module(module_name), class_name)(**options)


__all__ = ["TASK_NAMES", "Evaluation", "FitInputs", "Task", "get_task"]
