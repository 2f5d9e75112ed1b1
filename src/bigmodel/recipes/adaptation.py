"""How a fine-tuning recipe's ``finetune`` section adapts a model: new head, frozen parts, LoRA,
gradual unfreezing and per-group learning rates (:mod:`bigmodel.transfer` does the work)."""

from __future__ import annotations

from bigmodel.errors import ConfigError


def _head_name(model) -> str:
    """The module name of the classification head: ``get_classifier()``'s, else the last
    ``nn.Linear``'s ('' when there is none)."""
    from torch import nn

    head = model.get_classifier() if callable(getattr(model, "get_classifier", None)) else None
    name = next((n for n, m in model.named_modules() if m is head and n), None)
    if name is not None:
        return name
    linears = [n for n, m in model.named_modules() if isinstance(m, nn.Linear) and n]
    return linears[-1] if linears else ""


def configure(model, section, train, data_classes: int, new_head_default: bool, labels=None):
    """Apply the ``finetune`` section to ``model``; return ``(optimizer parameters, callbacks)``.

    Args:
        model: the source model (changed in place).
        section: the recipe's ``finetune`` section; train: its ``train`` section (``lr``).
        data_classes: classes of the fine-tuning data.
        new_head_default: ``head: auto`` replaces the head even when its size fits (a pretrained
            encoder's head is untrained).
        labels: the training labels, checked against the head.

    Raises:
        ShapeError: ``head: keep`` and the head does not fit the data's classes.
        ConfigError: a pattern / target matching nothing, an unsupported LoRA layer, or nothing
            left to train.
    """
    from bigmodel import transfer

    if section.head == "new" or (section.head == "auto" and (
            new_head_default or transfer.head_size(model) != data_classes)):
        transfer.replace_head(model, data_classes)
    transfer.check_head(model, labels if labels is not None else [data_classes - 1],
                        "training labels")
    if section.freeze:
        transfer.freeze(model, section.freeze, norm_eval=section.norm_eval)
    callbacks = []
    if section.lora is not None:
        from bigmodel.transfer.lora import add_lora

        head_name = _head_name(model)
        spec = section.lora
        add_lora(model, spec.target, rank=spec.rank, alpha=spec.alpha, dropout=spec.dropout,
                 trainable=[head_name] if head_name else ())
    gradual = section.gradual_unfreezing
    include_frozen = gradual is not None
    if gradual is not None:
        callbacks.append(transfer.GradualUnfreezing(model, blocks=gradual.blocks,
                                                    every=gradual.every, initial=gradual.initial))
    if section.layer_decay is not None:
        params = transfer.layerwise_lr(model, train.lr, section.layer_decay,
                                       include_frozen=include_frozen)
    elif section.lr_groups:
        params = transfer.param_groups(model, [(g.pattern, g.lr) for g in section.lr_groups],
                                       default_lr=train.lr, include_frozen=include_frozen)
    else:
        params = [p for p in model.parameters() if include_frozen or p.requires_grad]
    if not params:
        raise ConfigError("finetune: nothing is left to train (every parameter is frozen)")
    return params, callbacks


__all__ = ["configure"]
