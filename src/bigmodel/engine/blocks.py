"""The block policy: which submodules of a model are its repeated *blocks*.

The blocks of a model are (1) the submodules whose class name is listed in a ``_no_split_modules``
class attribute of any module of the model (Hugging Face's convention), else (2) the items of every
``nn.ModuleList`` attribute named ``blocks``, ``layers``, ``h`` or ``layer`` (outermost lists only).
Distributed wrapping (each block its own FSDP unit), activation checkpointing, ``torch.compile`` per
block and the memory planner all follow it.
"""

from __future__ import annotations

from torch import nn

BLOCK_LIST_NAMES = ("blocks", "layers", "h", "layer")


def find_blocks(model: nn.Module) -> list[nn.Module]:
    """The repeated blocks of ``model`` (see the module doc), outermost first, none inside another."""
    names: set[str] = set()
    for module in model.modules():
        listed = getattr(type(module), "_no_split_modules", None) or getattr(module, "_no_split_modules", None)
        if listed:
            names.update(listed)
    if names:
        candidates = [m for m in model.modules() if type(m).__name__ in names and m is not model]
    else:
        candidates = []
        for module in model.modules():
            for attr in BLOCK_LIST_NAMES:
                child = module._modules.get(attr)
                if isinstance(child, nn.ModuleList):
                    candidates.extend(child)
    blocks: list[nn.Module] = []
    inside: set[int] = set()
    for block in candidates:
        if id(block) in inside:
            continue
        blocks.append(block)
        inside.update(id(m) for m in block.modules())
    return blocks
