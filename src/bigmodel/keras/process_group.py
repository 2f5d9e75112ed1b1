"""The process group of a Keras program run by torchrun: this process's ``(rank, world_size)``,
whether it is one of several, and the group itself, joined on first need (gloo on CPU, NCCL on
CUDA) when torchrun launched us and nobody did, and destroyed at exit. ``keras.distribution`` and
``keras/distributed_fit.py`` both build on it.
"""

from __future__ import annotations

import atexit
import os

import torch.distributed as dist

from bigmodel.engine import distributed as engine_distributed
from bigmodel.errors import ConfigError

_OWNED = {"group": False}


def world() -> tuple[int, int]:
    """``(rank, world_size)``: the process group's when one exists, else torchrun's environment
    (``(0, 1)`` for a plain run)."""
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    try:
        return int(os.environ.get("RANK", 0)), int(os.environ.get("WORLD_SIZE", 1))
    except ValueError:
        raise ConfigError(f"RANK/WORLD_SIZE must be integers; received RANK="
                          f"{os.environ.get('RANK')!r}, WORLD_SIZE={os.environ.get('WORLD_SIZE')!r}") from None


def is_distributed() -> bool:
    """True when this process is one of several (torchrun or an initialized process group)."""
    return world()[1] > 1


def ensure_process_group() -> None:
    """Join torchrun's process group if nobody did (gloo on CPU, NCCL on CUDA); destroyed at exit."""
    if dist.is_initialized():
        return
    engine_distributed.setup("ddp")
    _OWNED["group"] = True
    atexit.register(_destroy_group)


def _destroy_group() -> None:
    # Free DDP reducers / FSDP state while the group exists: freeing gloo objects during
    # interpreter teardown can abort the process (see engine.distributed.DistributedContext.close).
    if _OWNED["group"] and dist.is_initialized():
        import gc

        gc.collect()
        dist.destroy_process_group()
        _OWNED["group"] = False
