"""A LoRA fine-tuning run served unmerged: ``bigmodel serve RUN/adapter``.

``bigmodel finetune`` with a ``finetune.lora`` section saves the adapters (and the new head) alone
in ``RUN/adapter/`` and the merged model in ``RUN/model.safetensors``; serving ``RUN`` serves the
merged model. Serving ``RUN/adapter`` rebuilds the model the adapters were trained on (the
source the adapter names: a run directory or a pretrained name, read as ``bigmodel finetune``
reads it, with the run's head size), adds the adapters unmerged
(:func:`bigmodel.transfer.lora.load_lora`) and answers with that model: the same classes,
tokenizer and input conversions as the run (its ``model.json``), logits equal to the merged
model's up to float rounding (``W x + s B A x`` against ``(W + s B A) x``).
"""

from __future__ import annotations

from pathlib import Path

import torch

from bigmodel.errors import BigModelError, CheckpointError
from bigmodel.serve.models import ServedModel

ADAPTER_JSON = "adapter.json"


def is_adapter_dir(path: str | Path) -> bool:
    """Whether ``path`` is a fine-tuning run's ``adapter/`` folder (an ``adapter.json`` beside a
    run's ``model.json`` one level up)."""
    path = Path(path)
    return (path / ADAPTER_JSON).is_file() and (path.parent / "model.json").is_file()


def load_unmerged(adapter_dir: str | Path, device: str | torch.device = "cpu") -> torch.nn.Module:
    """The source model of a LoRA fine-tuning run with its adapters added, not merged, in eval mode.

    Args:
        adapter_dir: ``RUN/adapter`` written by ``bigmodel finetune``.
        device: where the model goes.

    Raises:
        CheckpointError: files missing, modified or not fitting the source; a source that cannot
            be found any more (a run directory moved since fine-tuning: named).
    """
    from bigmodel import transfer
    from bigmodel.models import read_model_spec
    from bigmodel.models.model_files import read_model_document
    from bigmodel.recipes.tasks.finetune import load_source
    from bigmodel.transfer.lora import ADAPTER_FILE, load_lora

    adapter_dir = Path(adapter_dir)
    spec, _ = read_model_document(adapter_dir, ADAPTER_FILE)
    run_metadata = read_model_spec(adapter_dir.parent).get("metadata") or {}
    source = (spec.get("metadata") or {}).get("source") or run_metadata.get("finetuned_from")
    names = run_metadata.get("class_names")
    if not isinstance(source, str) or not isinstance(names, list) or not names:
        raise CheckpointError(f"{adapter_dir / ADAPTER_JSON}: the adapter does not name its source "
                              "model, or its run's model.json names no classes; serve the run "
                              f"directory {adapter_dir.parent} (the merged model) instead")
    max_length = (run_metadata.get("input") or {}).get("max_length")
    try:
        model = load_source(source, len(names), max_length)[0]
    except BigModelError as exc:  # a moved run directory reads as an unknown pretrained name
        raise CheckpointError(f"{adapter_dir}: the source model the adapters were trained on, "
                              f"{source!r}, cannot be loaded ({exc}); serve the run directory "
                              f"{adapter_dir.parent} (the merged model) instead") from None
    if transfer.head_size(model) != len(names):  # finetune's new head (weights: the adapter's)
        transfer.replace_head(model, len(names))
    load_lora(model, adapter_dir)
    return model.to(device).eval()


class UnmergedModel(ServedModel):
    """A LoRA fine-tuning run served with its adapters unmerged (module doc).

    Args:
        adapter_dir: ``RUN/adapter``.
        name: the name clients use (default ``RUN-adapter``).
        device: where the model runs.

    Raises:
        CheckpointError / DataFileError: as :class:`ServedModel` for the run, or
            :func:`load_unmerged`.
    """

    def __init__(self, adapter_dir: str | Path, name: str | None = None,
                 device: str | torch.device = "cpu") -> None:
        adapter_dir = Path(adapter_dir)
        run_dir = adapter_dir.parent
        # The run as a merged model first: its classes, tokenizer and input conversions.
        super().__init__(run_dir, name or f"{run_dir.resolve().name}-adapter", device=device)
        self.model = load_unmerged(adapter_dir, self.device)
        self.run_dir = adapter_dir

    def describe(self) -> dict:
        answer = super().describe()
        answer["parameters"]["lora"] = "unmerged"
        return answer


__all__ = ["UnmergedModel", "is_adapter_dir", "load_unmerged"]
