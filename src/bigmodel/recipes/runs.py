"""Trained run directories: rebuild a run's model and data and measure it again.

``evaluate_run(run_dir)`` scores the saved model (``model.json`` + ``model.safetensors``, never a
pickle) on its resolved recipe's test split (same data set, path, ``test_subset``; runs of
``bigmodel finetune`` on their fine-tuning recipe's split, with the run's tokenizer).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any


def evaluate_run(run_dir: str | Path, batch_size: int = 256, data_path: str | None = None,
                 device: str = "auto") -> dict[str, float]:
    """``{"loss", "accuracy", "num_images"}`` of a run's saved model on its recipe's test set.

    Raises:
        CheckpointError: the run has no (valid) model files.
        ConfigError: the run's recipe is missing or invalid, or ``batch_size`` < 1.
        DataFileError: the test data cannot be loaded.
    """
    from bigmodel.engine.resolve import resolve_device
    from bigmodel.errors import ConfigError
    from bigmodel.models import load_model
    from bigmodel.recipes.classification_data import load_classification_data
    from bigmodel.recipes.inference import loss_and_accuracy, predict_logits
    from bigmodel.recipes.schema import load_recipe
    from bigmodel.recipes.text_data import TEXT_DATA, load_vocabulary
    from bigmodel.utils.loading import confined_path

    if batch_size < 1:
        raise ConfigError(f"--batch-size must be at least 1; received {batch_size}")
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise ConfigError(f"Run directory not found: {run_dir}")
    if is_finetune_run(run_dir):
        return evaluate_finetune_run(run_dir, batch_size, data_path, device)
    model = load_model(run_dir, device=resolve_device(device))
    recipe = load_recipe(confined_path(
        run_dir, "recipe.yaml", "Run recipe", error=ConfigError, kind=None))
    data = recipe.data.model_copy(update={"path": data_path}) if data_path else recipe.data
    vocabulary = None
    if data.name in TEXT_DATA:  # encode the test texts with the run's own vocabulary
        from bigmodel.models import read_model_spec

        spec = (read_model_spec(run_dir).get("metadata") or {}).get("input") or {}
        vocabulary = load_vocabulary(run_dir, spec)
    splits = load_classification_data(data, seed=recipe.train.seed, with_train=False, vocabulary=vocabulary)
    loss, accuracy = loss_and_accuracy(predict_logits(model, splits.x_test, batch_size),
                                       splits.y_test)
    return {"loss": loss, "accuracy": accuracy, "num_images": len(splits.x_test),
            "unit": splits.unit}


def is_finetune_run(run_dir: str | Path) -> bool:
    """Whether ``run_dir`` was written by ``bigmodel finetune`` (its model metadata says so)."""
    from bigmodel.models import read_model_spec

    metadata = read_model_spec(run_dir).get("metadata") or {}
    return "finetuned_from" in metadata


def evaluate_finetune_run(run_dir: str | Path, batch_size: int = 256, data_path: str | None = None,
                          device: str = "auto") -> dict[str, Any]:
    """``{"loss", "accuracy", "num_images", "unit"}`` of a fine-tuning run's saved model on the
    test split its recipe defines (the split ``bigmodel finetune`` scored; same seed, same classes,
    same tokenizer and text length).

    Raises:
        CheckpointError: no (valid) model files. ConfigError: a missing or invalid recipe.
        DataFileError: the test data cannot be loaded.
    """
    from bigmodel.engine.resolve import resolve_device
    from bigmodel.errors import ConfigError
    from bigmodel.recipes.finetune_schema import load_finetune_recipe
    from bigmodel.recipes.inference import loss_and_accuracy
    from bigmodel.recipes.tasks.finetune import load_source, predict, prepare_data
    from bigmodel.utils.loading import confined_path

    run_dir = Path(run_dir)
    recipe = load_finetune_recipe(confined_path(
        run_dir, "recipe.yaml", "Run recipe", error=ConfigError, kind=None))
    model, tokenizer, _ = load_source(str(run_dir), num_classes=0)
    model.to(resolve_device(device))
    section = recipe.data.model_copy(update={"path": data_path}) if data_path else recipe.data
    if tokenizer is not None and section.max_length is None:
        from bigmodel.models import read_model_spec

        spec = (read_model_spec(run_dir).get("metadata") or {}).get("input") or {}
        if spec.get("max_length"):
            section = section.model_copy(update={"max_length": int(spec["max_length"])})
    data = prepare_data(section, tokenizer, 0 if recipe.train.seed is None else recipe.train.seed)
    loss, accuracy = loss_and_accuracy(predict(model, data, data.x_test, batch_size), data.y_test)
    return {"loss": loss, "accuracy": accuracy, "num_images": len(data.x_test),
            "unit": data.unit}


__all__ = ["evaluate_finetune_run", "evaluate_run", "is_finetune_run"]
