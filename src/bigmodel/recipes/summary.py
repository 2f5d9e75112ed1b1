"""The start-of-run summary that ``bigmodel train`` / ``finetune`` print before the first epoch::

    model:      seed-cnn (93,322 parameters, all trainable)
    task:       image_classification
    data:       fashion_mnist: 60,000 train / 0 validation / 10,000 test images
    device:     cpu, precision fp32, 2 CPU threads
    batch size: 32
    epochs:     5
    run dir:    runs/fashion_cnn-20261207-101500

and the small wording helpers the run's texts share (:func:`count_noun`).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any


def count_noun(count: int, singular: str, plural: str | None = None) -> str:
    """``1 CPU thread``, ``2 CPU threads`` (``plural`` when it is not ``singular + "s"``)."""
    return f"{count:,} {singular if count == 1 else (plural or singular + 's')}"


@dataclass
class DataSizes:
    """Examples per split (None: the split does not exist) and what one example is."""

    train: int | None
    validation: int | None
    test: int | None
    unit: str

    def text(self) -> str:
        """``256 train / 0 validation / 64 test images`` (absent splits left out)."""
        parts = [f"{count:,} {name}" for name, count in (
            ("train", self.train), ("validation", self.validation), ("test", self.test))
            if count is not None]
        return " / ".join(parts) + f" {self.unit}"


def _length(value: Any) -> int | None:
    if value is None:
        return None
    if isinstance(value, tuple) and len(value) == 2 and hasattr(value[0], "shape"):
        return len(value[0])  # (inputs, targets) arrays
    try:
        return len(value)
    except TypeError:
        return None


def data_sizes(data: Any) -> DataSizes | None:
    """The split sizes of a task's data, whatever the task: classification data (``x_train`` /
    ``x_val`` / ``x_test``, ``unit``; fine-tuning wraps it in ``.data``), sequence pairs
    (``train`` / ``validation`` tuples and the generated ``pairs``), character streams
    (``train_ids`` / ``validation_ids``). None: a data object of none of these kinds."""
    inner = getattr(data, "data", None)
    if inner is not None and hasattr(inner, "x_test"):
        data = inner
    if hasattr(data, "x_test"):
        return DataSizes(_length(data.x_train), _length(data.x_val) or 0, _length(data.x_test),
                         getattr(data, "unit", "examples"))
    if hasattr(data, "train_ids"):
        return DataSizes(_length(data.train_ids), _length(data.validation_ids), None, "characters")
    pairs = getattr(data, "pairs", None)
    if hasattr(data, "train") and pairs is not None:
        return DataSizes(_length(data.train), _length(data.validation) or 0,
                         _length(getattr(pairs, "test_sources", None)), "pairs")
    return None


def run_summary(recipe, task_name: str, data: Any, parameters: int, trainable: int,
                device: Any, run_dir: Path, resume: bool = False,
                model_name: str | None = None, processes: int = 1) -> list[str]:
    """The summary's lines (see the module doc).

    Args:
        recipe: the run's recipe (model name, data name, train section).
        task_name: the task's name.
        data: the task's data (sizes read by :func:`data_sizes`).
        parameters, trainable: the model's parameter counts.
        device: where it trains.
        run_dir: the run directory.
        resume: the run continues from a checkpoint.
        model_name: what the model is (default ``recipe.model.name``).
        processes: processes of a torchrun job (the batch size is their global batch).
    """
    import torch

    train = recipe.train
    share = ("all trainable" if trainable == parameters else
             f"{trainable:,} trainable, {100 * trainable / max(parameters, 1):.2f}%")
    sizes = data_sizes(data)
    rows = {
        "model": f"{model_name or recipe.model.name} ({count_noun(parameters, 'parameter')}, {share})",
        "task": task_name,
        "data": f"{recipe.data.name}" + (f": {sizes.text()}" if sizes is not None else ""),
        "device": f"{device}, precision {train.precision}, "
                  f"{count_noun(torch.get_num_threads(), 'CPU thread')}",
        "batch size": str(train.batch_size) + (f" (global, over {processes} processes, "
                                                f"{train.strategy})" if processes > 1 else ""),
        "epochs": str(train.epochs) + (" (resuming from the newest checkpoint)" if resume else ""),
        "run dir": str(run_dir),
    }
    if getattr(device, "type", None) == "cuda":  # which GPU, as nvidia-smi names it
        rows["device"] = rows["device"].replace(str(device), f"{device} "
                                                f"({torch.cuda.get_device_name(device)})", 1)
    width = max(len(label) for label in rows) + 1
    return [f"{label + ':':<{width}} {text}" for label, text in rows.items()]


__all__ = ["DataSizes", "count_noun", "data_sizes", "run_summary"]
