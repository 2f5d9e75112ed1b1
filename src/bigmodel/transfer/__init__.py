"""Transfer learning: freeze / unfreeze by name, new heads, discriminative learning rates,
gradual unfreezing, LoRA adapters and pretrained Transformer weights.

>>> from bigmodel import transfer
>>> model = transfer.pretrained.load("all-MiniLM-L6-v2", num_classes=6)
>>> transfer.freeze(model, "embeddings")
>>> print(transfer.summary(model))

``pretrained`` and ``lora`` are imported on first use (they pull in ``tokenizers`` / ``peft``).
"""

from bigmodel.transfer.freezing import TrainableSummary, freeze, match_parameters, summary, unfreeze
from bigmodel.transfer.heads import check_head, head_size, replace_head
from bigmodel.transfer.param_groups import layer_blocks, layerwise_lr, param_groups
from bigmodel.transfer.unfreezing import GradualUnfreezing

__all__ = [
    "GradualUnfreezing", "TrainableSummary", "add_lora", "check_head", "freeze", "head_size",
    "layer_blocks", "layerwise_lr", "load_lora", "lora", "match_parameters", "merge_lora",
    "param_groups", "pretrained", "replace_head", "save_lora", "summary", "unfreeze",
]

_LAZY = {"add_lora": "lora", "merge_lora": "lora", "save_lora": "lora", "load_lora": "lora"}


def __getattr__(name: str):
    import importlib

    if name in ("pretrained", "lora"):
        return importlib.import_module(f"bigmodel.transfer.{name}")
    if name in _LAZY:
        return getattr(importlib.import_module(f"bigmodel.transfer.{_LAZY[name]}"), name)
    raise AttributeError(f"module 'bigmodel.transfer' has no attribute {name!r}")
