"""Activation checkpointing by policy: every block of a model (see
:func:`bigmodel.engine.blocks.find_blocks`) keeps only its inputs during the forward pass and
recomputes its internals during backward (``torch.utils.checkpoint``, non-reentrant).

The block's ``forward`` is replaced on the instance, so parameter names, ``state_dict`` keys and
FSDP sharding (applied afterwards, around the block) are unchanged. Outside of autograd (eval,
``torch.no_grad``) blocks run normally. RNG state (dropout) is replayed in the recomputation, so
gradients equal those of the plain model.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence
from typing import Any

import torch
from torch import nn
from torch.utils.checkpoint import checkpoint

from bigmodel.engine.blocks import BLOCK_LIST_NAMES, find_blocks
from bigmodel.errors import ConfigError

_MARK = "_bigmodel_checkpointed_forward"


def _checkpointed(forward: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(forward)
    def run(*args: Any, **kwargs: Any) -> Any:
        if torch.is_grad_enabled():
            return checkpoint(forward, *args, use_reentrant=False, **kwargs)
        return forward(*args, **kwargs)

    return run


def apply_activation_checkpointing(model: nn.Module, blocks: Sequence[nn.Module] | None = None) -> int:
    """Checkpoint each block of ``model`` (or the given ``blocks``) in place.

    Returns:
        The number of blocks checkpointed (already checkpointed blocks are left as they are).

    Raises:
        ConfigError: the model has no blocks to checkpoint.
    """
    blocks = list(find_blocks(model) if blocks is None else blocks)
    if not blocks:
        raise ConfigError(
            f"activation_checkpointing: {type(model).__name__} has no blocks to checkpoint; expected "
            f"an nn.ModuleList attribute named one of {', '.join(BLOCK_LIST_NAMES)} or a "
            "_no_split_modules class attribute naming the block classes")
    count = 0
    for block in blocks:
        if getattr(block, _MARK, False):
            continue
        block.forward = _checkpointed(block.forward)
        setattr(block, _MARK, True)
        count += 1
    return count


def is_checkpointed(module: nn.Module) -> bool:
    """Whether ``module``'s forward was wrapped by :func:`apply_activation_checkpointing`."""
    return bool(getattr(module, _MARK, False))


__all__ = ["apply_activation_checkpointing", "is_checkpointed"]
