"""``results.json`` and ``report.md`` of a run, from the task's :class:`~bigmodel.recipes.tasks.
Evaluation` and what the run path measured (parameters, epochs, time)."""

from __future__ import annotations

from typing import Any

from bigmodel.utils.io import atomic_write_json


def _optimizer_row(train) -> str:
    return (f"{train.optimizer}, lr {train.lr:g}, batch {train.batch_size}"
            + (f", weight decay {train.weight_decay:g}" if train.weight_decay else "")
            + (f", L2 {train.l2:g}" if train.l2 else ""))


def write_results(recipe, task_name: str, result, stopper, device: Any, fit_seconds: float) -> None:
    """Write ``results.json`` and ``report.md`` into ``result.run_dir``.

    Args:
        recipe: the run's recipe.
        task_name: the task's name (written to results.json).
        result: the run's :class:`~bigmodel.recipes.run.RunResult` (with its evaluation).
        stopper: the ``EarlyStopping`` callback, or None.
        device: the device the model trained on.
        fit_seconds: seconds spent in ``Trainer.fit``.
    """
    import torch

    from bigmodel.engine.report import format_duration, write_report
    from bigmodel.recipes.schema import dump_recipe
    from bigmodel.recipes.summary import count_noun

    train, evaluation, path = recipe.train, result.evaluation, result.run_dir
    epochs_run, seconds = result.epochs_run, result.seconds
    summary = {
        "model": f"{recipe.model.name} ({result.parameters:,} parameters)",
        "parameters": f"{result.trainable:,} trainable of {result.parameters:,} "
                      f"({100 * result.trainable / max(result.parameters, 1):.2f}%) as configured",
        **evaluation.summary,
        "optimizer": _optimizer_row(train),
        "epochs": f"{epochs_run} of {train.epochs}"
                  + (" (stopped early)" if epochs_run < train.epochs else ""),
        "time": f"{format_duration(seconds)} in all, {format_duration(fit_seconds)} training "
                f"({format_duration(fit_seconds / max(epochs_run, 1))} per epoch)",
        "device": f"{device}, precision {train.precision}, "
                  f"{count_noun(torch.get_num_threads(), 'CPU thread')}",
        "seed": str(train.seed),
    }
    notes = []
    if train.l2 > 0:
        notes.append("Validation and test losses are the task's loss alone; the training loss "
                     "(and the losses in metrics.csv) include the L2 penalty, as Keras reports them.")
    if stopper is not None and stopper.best is not None:
        restored = train.early_stopping.restore_best_weights
        notes.append(f"Early stopping on '{stopper.monitor}': best epoch {stopper.best_epoch + 1} "
                     f"({stopper.monitor} {stopper.best:.4f})" + (
                         "; its weights were restored, so the validation and test numbers are "
                         "for that epoch." if restored else "; the final weights are the last "
                         "epoch's."))
    notes += evaluation.notes
    title = evaluation.title or (f"Run {path.name}"
                                 + (f": {recipe.description}" if recipe.description else ""))
    atomic_write_json(path / "results.json", {
        "results": evaluation.results, "parameters": result.parameters,
        "trainable_parameters": result.trainable, "epochs_run": epochs_run,
        "seconds": round(seconds, 3), "task": task_name, "model": recipe.model.name,
        "data": recipe.data.name, evaluation.headline[0]: evaluation.headline[1],
        **evaluation.extra})
    write_report(path / "report.md", title, summary, evaluation.results, evaluation.matrix,
                 evaluation.class_names, evaluation.images, dump_recipe(recipe), notes)


__all__ = ["write_results"]
