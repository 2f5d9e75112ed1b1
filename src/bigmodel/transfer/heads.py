"""New classification heads for a pretrained body, and the check that a head fits the labels.

Every bigmodel classifier has ``reset_classifier(num_classes)`` (timm's surface), which
:func:`replace_head` uses; for other modules it replaces the last ``nn.Linear`` (in registration
order), which is the head of most plain PyTorch classifiers.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from torch import nn

from bigmodel.errors import ConfigError, InputTypeError, ShapeError

__all__ = ["check_head", "head_size", "replace_head"]


def _last_linear(model: nn.Module) -> tuple[str, nn.Linear] | None:
    found = None
    for name, module in model.named_modules():
        if isinstance(module, nn.Linear) and name:
            found = (name, module)
    return found


def head_size(model: nn.Module) -> int:
    """The number of outputs of the model's classification head.

    Raises:
        ConfigError: the model has neither ``num_classes``/``get_classifier`` nor an ``nn.Linear``.
    """
    if callable(getattr(model, "get_classifier", None)):
        head = model.get_classifier()
        if isinstance(head, nn.Linear):
            return head.out_features
    if isinstance(getattr(model, "num_classes", None), int):
        return model.num_classes
    last = _last_linear(model)
    if last is None:
        raise ConfigError(f"{type(model).__name__} has no classification head bigmodel can find "
                          "(no reset_classifier / get_classifier and no nn.Linear)")
    return last[1].out_features


def replace_head(model: nn.Module, num_classes: int) -> nn.Module:
    """Give ``model`` a freshly initialized head of ``num_classes`` outputs (trainable).

    Args:
        model: a bigmodel classifier (``reset_classifier``) or any module ending in an ``nn.Linear``.
        num_classes: outputs of the new head.

    Returns:
        The new head module.

    Raises:
        ConfigError: ``num_classes`` is not a positive int, or the model has no head to replace.
    """
    if not isinstance(model, nn.Module):
        raise InputTypeError(f"replace_head: 'model' must be a torch.nn.Module; received "
                             f"{type(model).__name__}")
    if not isinstance(num_classes, int) or isinstance(num_classes, bool) or num_classes < 1:
        raise ConfigError(f"replace_head: 'num_classes' must be a positive int; received "
                          f"{num_classes!r}")
    if callable(getattr(model, "reset_classifier", None)):
        model.reset_classifier(num_classes)
        head = model.get_classifier() if callable(getattr(model, "get_classifier", None)) else None
    else:
        last = _last_linear(model)
        if last is None:
            raise ConfigError(f"replace_head: {type(model).__name__} has no reset_classifier() "
                              "and no nn.Linear to replace")
        name, old = last
        head = nn.Linear(old.in_features, num_classes, bias=old.bias is not None,
                         device=old.weight.device, dtype=old.weight.dtype)
        parent_name, _, attr = name.rpartition(".")
        parent = model.get_submodule(parent_name) if parent_name else model
        setattr(parent, attr, head)
        if hasattr(model, "num_classes"):
            model.num_classes = num_classes
    if head is not None:
        for param in head.parameters():
            param.requires_grad_(True)
    return head


def check_head(model: nn.Module, labels: Any, what: str = "labels") -> int:
    """Check that integer class labels fit the model's head; return the head size.

    Raises:
        ShapeError: a label is ``>= `` the head's outputs or negative (names both numbers).
        InputTypeError: labels are not integers.
    """
    array = labels.detach().cpu().numpy() if isinstance(labels, torch.Tensor) else np.asarray(labels)
    if array.size and array.dtype.kind not in "iu":
        raise InputTypeError(f"check_head: {what} must be integer class ids; received dtype "
                             f"{array.dtype}")
    size = head_size(model)
    if array.size:
        low, high = int(array.min()), int(array.max())
        if low < 0 or high >= size:
            raise ShapeError(f"The head of {type(model).__name__} has {size} outputs but the "
                             f"{what} hold class ids in [{low}, {high}] (need {high + 1} classes); "
                             f"call replace_head(model, {high + 1}) or remap the labels")
    return size
