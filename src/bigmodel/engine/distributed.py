"""Data-parallel training through PyTorch's own engine: process groups from torchrun's environment,
DDP or FSDP2 (``torch.distributed.fsdp.fully_shard``) wrapping by policy, per-rank batch slices and
metric reduction.

Nothing here knows a model. Sharding follows one policy: each *block* is its own FSDP unit, where
the blocks of a model are those of ``engine/blocks.py`` (``_no_split_modules`` classes, else the
items of ``nn.ModuleList`` attributes named ``blocks``, ``layers``, ``h`` or ``layer``).
The root module is always sharded last, so embeddings and heads form the last unit.

Strategies:
    ``single``  one process, no process group.
    ``ddp``     ``DistributedDataParallel``: full replicas, gradients all-reduced (``no_sync`` while
                accumulating).
    ``fsdp``    ``fully_shard`` per block + root: parameters, gradients and optimizer state sharded
                over all processes; bf16/fp16 through a ``MixedPrecisionPolicy`` (fp32 reduction).
    ``hybrid``  ``fully_shard`` on a 2-D mesh (replicate across nodes, shard within a node):
                HSDP; the node size is ``LOCAL_WORLD_SIZE``.

A launch without torchrun (no ``WORLD_SIZE``) and a non-single strategy gets a one-process group
(a ``HashStore``, no network), so the same code path resumes a 2-process run on 1 process.
"""

from __future__ import annotations

import contextlib
import gc
import os
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import torch
import torch.distributed as dist
from torch import nn

from bigmodel.engine.activation_checkpoint import apply_activation_checkpointing
from bigmodel.engine.blocks import find_blocks
from bigmodel.errors import ConfigError

STRATEGIES = ("single", "ddp", "fsdp", "hybrid")


@dataclass(frozen=True)
class DistributedContext:
    """Where this process stands: its strategy, rank, world size and device."""

    strategy: str
    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    local_world_size: int = 1
    device: torch.device = torch.device("cpu")
    owns_group: bool = False  # this context created the process group (and destroys it)
    # Tensor parallelism: the processes of one model-parallel group see the same batches, so the
    # data are split over ``data_world_size`` groups only (None: every process is its own group).
    data_rank: int | None = None
    data_world_size: int | None = None

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def data_partition(self) -> tuple[int, int]:
        """``(index, count)``: this process's share of each global batch and the number of shares."""
        if self.data_world_size is None:
            return self.rank, self.world_size
        return int(self.data_rank or 0), int(self.data_world_size)

    @property
    def is_distributed(self) -> bool:
        return self.strategy != "single"

    def barrier(self) -> None:
        if self.is_distributed and dist.is_initialized():
            dist.barrier()

    def close(self) -> None:
        """Destroy the process group if this context created it, once every rank got here.

        Two-process CPU runs (``bigmodel train --nproc 2``, gloo) on a loaded machine sometimes
        aborted a rank after training ("terminate called without an active exception"): 5 of 26
        runs without this barrier, 1 of 40 with it. The remaining aborts are PyTorch's known
        interpreter-exit problem (gloo objects freed during finalization): unreachable wrappers are
        collected here, before the group goes, and ``bigmodel train`` workers end with
        ``os._exit`` (``bigmodel.recipes.workers.end_worker``), which skips finalization altogether.
        """
        if self.owns_group and dist.is_initialized():
            gc.collect()  # free DDP reducers / work objects left in cycles while the group exists
            if dist.get_world_size() > 1:
                dist.barrier()
            dist.destroy_process_group()


def env_int(name: str, default: int) -> int:
    value = os.environ.get(name)
    if value is None or value == "":
        return default
    try:
        return int(value)
    except ValueError:
        raise ConfigError(f"Environment variable {name} must be an integer; received {value!r}") from None


def launched_world_size() -> int:
    """``WORLD_SIZE`` set by torchrun, 1 without it."""
    return env_int("WORLD_SIZE", 1)


def check_strategy(strategy: str, precision: str, device: torch.device) -> None:
    """Reject strategy/precision/device combinations that cannot run, before anything starts.

    Raises:
        ConfigError: unknown strategy; fp16 off CUDA; ``single`` launched with several processes.
    """
    if strategy not in STRATEGIES:
        raise ConfigError(f"strategy must be one of {', '.join(STRATEGIES)}; received {strategy!r}")
    if precision in ("fp16", "float16", "16-mixed") and device.type != "cuda":
        raise ConfigError(f"precision={precision!r} with strategy={strategy!r} needs CUDA devices "
                          f"(this process runs on {device}); use precision='bf16' or 'fp32' on CPU")
    world = launched_world_size()
    if strategy == "single" and world > 1:
        raise ConfigError(f"strategy='single' but this process was launched as one of {world} "
                          "(WORLD_SIZE); choose strategy 'ddp', 'fsdp' or 'hybrid'")


def check_global_batch(batch_size: int, world_size: int, grad_accum_steps: int = 1) -> int:
    """The per-process micro-batch size for a global ``batch_size`` split over ``world_size``.

    Raises:
        ConfigError: ``world_size`` does not divide ``batch_size``.
    """
    if batch_size % world_size:
        raise ConfigError(
            f"The global batch size {batch_size} is not divisible by the world size {world_size} "
            f"(processes); choose a batch_size that is a multiple of {world_size} (e.g. "
            f"{max(world_size, batch_size - batch_size % world_size)})"
            + (f" -- with grad_accum_steps={grad_accum_steps}, batch_size is per micro-batch"
               if grad_accum_steps > 1 else ""))
    return batch_size // world_size


def _restart_store() -> dist.Store | None:
    """The store for a process that torchrun restarted, or None to let torch build the usual one.

    Under torchrun the workers share the agent's TCPStore, and torch 2.13 hands the *same* store,
    without a per-attempt prefix, to the workers of every restart: the new workers then read the
    addresses the killed ones published (gloo: "connectFullMesh ... Connection refused"; NCCL: a
    stale unique id) and the job dies or hangs. Prefixing the keys with the restart count gives each
    attempt its own namespace.
    """
    restart = env_int("TORCHELASTIC_RESTART_COUNT", 0)
    if restart == 0 or os.environ.get("TORCHELASTIC_USE_AGENT_STORE") != "True":
        return None
    client = dist.TCPStore(os.environ["MASTER_ADDR"], env_int("MASTER_PORT", 0),
                           env_int("WORLD_SIZE", 1), is_master=False)
    return dist.PrefixStore(f"bigmodel/restart-{restart}", client)


def setup(strategy: str, device: Any = "auto", precision: str = "fp32",
          data_partition: tuple[int, int] | None = None) -> DistributedContext:
    """Join (or create) the process group for ``strategy`` and pick this process's device.

    Reads ``RANK``, ``WORLD_SIZE``, ``LOCAL_RANK``, ``LOCAL_WORLD_SIZE`` (torchrun). The backend is
    NCCL on CUDA, gloo on CPU. ``device="auto"`` is ``cuda:LOCAL_RANK`` when CUDA is present.

    Args:
        data_partition: ``(index, count)`` when fewer data shares than processes are wanted
            (tensor parallelism: the processes of a model-parallel group share one); None: one
            share per process.

    Raises:
        ConfigError: an invalid strategy/precision/device combination (see :func:`check_strategy`).
    """
    from bigmodel.engine.resolve import resolve_device

    local_rank = env_int("LOCAL_RANK", 0)
    if device in (None, "auto"):
        device = f"cuda:{local_rank}" if torch.cuda.is_available() else "cpu"
    resolved = resolve_device(device)
    if resolved.type == "cuda" and resolved.index is None:
        resolved = torch.device("cuda", local_rank)
    check_strategy(strategy, precision, resolved)
    if strategy == "single":
        return DistributedContext("single", device=resolved)
    if resolved.type == "cuda":
        torch.cuda.set_device(resolved)
    owns = False
    if not dist.is_initialized():
        backend = "nccl" if resolved.type == "cuda" else "gloo"
        if "WORLD_SIZE" in os.environ and "MASTER_ADDR" in os.environ:
            device_id = resolved if resolved.type == "cuda" else None
            store = _restart_store()
            if store is None:
                dist.init_process_group(backend, device_id=device_id)
            else:
                dist.init_process_group(backend, store=store, rank=env_int("RANK", 0),
                                        world_size=env_int("WORLD_SIZE", 1), device_id=device_id)
        else:  # one process, no launcher: a private in-memory store
            dist.init_process_group(backend, store=dist.HashStore(), rank=0, world_size=1)
        owns = True
    world = dist.get_world_size()
    share, shares = data_partition if data_partition is not None else (None, None)
    return DistributedContext(strategy, dist.get_rank(), world, local_rank,
                              env_int("LOCAL_WORLD_SIZE", world), resolved, owns, share, shares)


# --- wrapping -----------------------------------------------------------------------------------


def broadcast_parameters(model: nn.Module) -> None:
    """Copy rank 0's parameters and buffers to every process (all start from the same weights)."""
    if not dist.is_initialized() or dist.get_world_size() == 1:
        return
    with torch.no_grad():
        for tensor in [*model.parameters(), *model.buffers()]:
            if hasattr(tensor, "to_local"):  # a DTensor (already sharded): its shards differ by design
                continue
            dist.broadcast(tensor.data, src=0)


def _mixed_precision_policy(precision: str):
    from torch.distributed.fsdp import MixedPrecisionPolicy

    dtype = {"bf16": torch.bfloat16, "fp16": torch.float16}.get(precision)
    if dtype is None:
        return MixedPrecisionPolicy()
    # Parameters are gathered in low precision for compute; gradients are reduced in fp32.
    return MixedPrecisionPolicy(param_dtype=dtype, reduce_dtype=torch.float32)


def _device_mesh(context: DistributedContext):
    from torch.distributed.device_mesh import init_device_mesh

    if context.strategy == "hybrid":
        per_node = context.local_world_size
        if context.world_size % per_node:
            raise ConfigError(f"strategy='hybrid' needs a world size ({context.world_size}) that is a "
                              f"multiple of the processes per node ({per_node})")
        return init_device_mesh(context.device.type, (context.world_size // per_node, per_node),
                                mesh_dim_names=("replicate", "shard"))
    return init_device_mesh(context.device.type, (context.world_size,))


def wrap_model(model: nn.Module, context: DistributedContext, precision: str = "fp32") -> nn.Module:
    """The module the training step calls: ``model`` itself (single, and FSDP, which shards it in
    place) or a ``DistributedDataParallel`` wrapper. Parameters are first broadcast from rank 0.
    Under FSDP, a model carrying a callable ``_shard_plan(mp_policy)`` (set by its caller, e.g.
    ``keras.distribution.ModelParallel``) is sharded by that plan instead of the block policy.

    Returns:
        The module to call in the training step.
    """
    strategy = context.strategy
    if strategy == "single":
        return model
    broadcast_parameters(model)
    if strategy == "ddp":
        from torch.nn.parallel import DistributedDataParallel

        device_ids = [context.device.index] if context.device.type == "cuda" else None
        return DistributedDataParallel(model, device_ids=device_ids)
    from torch.distributed.fsdp import fully_shard

    policy = _mixed_precision_policy(precision)
    plan = getattr(model, "_shard_plan", None)
    if callable(plan):  # a caller's own per-layer FSDP plan (keras.distribution.ModelParallel)
        plan(policy)
        return model
    mesh = _device_mesh(context)
    for block in find_blocks(model):
        fully_shard(block, mesh=mesh, mp_policy=policy)
    fully_shard(model, mesh=mesh, mp_policy=policy)
    return model


def remap_optimizer(optimizer: torch.optim.Optimizer, names: dict[int, str], model: nn.Module) -> None:
    """Point a fresh optimizer at the parameters ``fully_shard`` put in place of the originals.

    Args:
        names: ``id(original parameter) -> qualified name`` taken before sharding.

    Raises:
        ConfigError: the optimizer already has state, or holds a tensor that is not a model parameter.
    """
    if optimizer.state:
        raise ConfigError("strategy='fsdp' needs an optimizer without state (it is re-pointed at the "
                          "sharded parameters); create the optimizer before any step")
    current = dict(model.named_parameters())
    for group in optimizer.param_groups:
        remapped = []
        for param in group["params"]:
            name = names.get(id(param))
            if name is None or name not in current:
                raise ConfigError("The optimizer holds a tensor that is not a parameter of the model; "
                                  "strategy='fsdp' can only shard the model's own parameters")
            remapped.append(current[name])
        group["params"] = remapped
        kinds = {type(param).__name__ == "DTensor" for param in remapped}
        if len(kinds) > 1:  # tensor parallelism: shards beside replicated weights; the fused and
            group["fused"], group["foreach"] = False, False  # foreach kernels take one kind only


@contextlib.contextmanager
def gradient_sync(network: nn.Module, enabled: bool) -> Iterator[None]:
    """Skip the gradient all-reduce / reduce-scatter of a micro-batch that is not the last of an
    accumulation group (DDP ``no_sync``; FSDP2 ``set_requires_gradient_sync``)."""
    if enabled:
        yield
        return
    if hasattr(network, "no_sync"):
        with network.no_sync():
            yield
        return
    if hasattr(network, "set_requires_gradient_sync"):
        network.set_requires_gradient_sync(False)
        try:
            yield
        finally:
            network.set_requires_gradient_sync(True)
        return
    yield


# --- data and metrics ---------------------------------------------------------------------------


class RankSlices:
    """Each global batch of ``batches`` cut into ``world_size`` parts; this rank keeps its own part.

    Every rank iterates the same global batches (same shuffle seed), so the union of the slices is
    exactly the single-process batch -- a distributed sampler at batch granularity. Parts differ by
    at most one sample when the last batch is not divisible; ``fraction`` of the current slice is
    ``len(slice) / len(global batch)`` so losses can be weighted to the global mean.
    """

    def __init__(self, batches: Any, rank: int, world_size: int) -> None:
        self.batches, self.rank, self.world_size = batches, rank, world_size
        self.fraction = 1.0 / world_size

    def __len__(self) -> int:
        return len(self.batches)

    def __iter__(self) -> Iterator[tuple]:
        from bigmodel.data.batching import batch_size_of, tree_map

        for batch in self.batches:
            total = batch_size_of(batch[1] if len(batch) > 1 and batch[1] is not None else batch[0])
            if total < self.world_size:
                continue  # a remainder smaller than the world: no rank may get an empty slice
            bounds = [total * r // self.world_size for r in range(self.world_size + 1)]
            start, stop = bounds[self.rank], bounds[self.rank + 1]
            self.fraction = (stop - start) / total
            yield tuple(None if part is None else tree_map(lambda t, a=start, b=stop: t[a:b], part)
                        for part in batch)


def all_reduce_weighted(values: dict[str, float], weight: float, device: torch.device) -> dict[str, float]:
    """Weighted mean of each value over all processes (``weight`` = this process's sample count)."""
    if not dist.is_initialized() or dist.get_world_size() == 1 or not values:
        return dict(values)
    keys = sorted(values)
    data = torch.tensor([values[k] * weight for k in keys] + [weight], dtype=torch.float64, device=device)
    dist.all_reduce(data)
    total = data[-1].item()
    return {k: data[i].item() / total for i, k in enumerate(keys)}


__all__ = [
    "STRATEGIES", "DistributedContext", "RankSlices", "all_reduce_weighted", "broadcast_parameters",
    "check_global_batch", "check_strategy", "collective_device", "find_blocks", "gradient_sync", "launched_world_size",
    "rank_stream_seed", "remap_optimizer", "seed_rank_stream", "setup", "wrap_model",
]


def prepare(model: nn.Module, optimizer: Any, lr: float, context: DistributedContext,
            precision: str = "fp32", activation_checkpointing: bool = False,
            compile: bool | str = False) -> tuple[nn.Module, torch.optim.Optimizer | None]:
    """Apply activation checkpointing, ``torch.compile`` and DDP/FSDP to ``model`` (already on its
    device), in that order, and build the optimizer over the resulting parameters.

    Args:
        optimizer: what ``Trainer(optimizer=...)`` accepts (name, Optimizer, ``params -> Optimizer``).
        compile: ``True`` (inductor) or a ``torch.compile`` backend name; each block is compiled in
            place (``Module.compile``), or the whole model when it has no blocks.

    Returns:
        ``(network, optimizer)``: the module the training step calls and the optimizer.
    """
    from bigmodel.engine.resolve import resolve_optimizer

    if activation_checkpointing:
        apply_activation_checkpointing(model)
    if compile:
        if not isinstance(compile, (bool, str)):
            raise ConfigError(f"compile must be a bool or a torch.compile backend name; received {compile!r}")
        backend = "inductor" if compile is True else compile
        for module in find_blocks(model) or [model]:
            module.compile(backend=backend)
    names = {id(param): name for name, param in model.named_parameters()}
    built = resolve_optimizer(optimizer, lr, model)
    network = wrap_model(model, context, precision)
    if built is not None and context.strategy in ("fsdp", "hybrid"):
        remap_optimizer(built, names, model)
    return network, built


def collective_device() -> torch.device:
    """Where this process's collectives must put their tensors: its own GPU under NCCL (which
    reduces only GPU tensors), the CPU otherwise (gloo)."""
    if dist.is_initialized() and dist.get_backend() == "nccl":
        return torch.device("cuda", torch.cuda.current_device())
    return torch.device("cpu")


def shared_seed(context: DistributedContext | None) -> int:
    """A random seed drawn on rank 0 (from torch's global RNG) and given to every process."""
    seed = torch.randint(0, 2**62, (), dtype=torch.int64)
    if context is not None and context.is_distributed and dist.get_world_size() > 1:
        seed = seed.to(collective_device())
        dist.broadcast(seed, src=0)
    return int(seed.item())


def seed_rank_stream(base_seed: int, epoch: int, context: DistributedContext | None) -> None:
    """Give each rank its own torch RNG stream for the epoch (dropout, random augmentation).

    Every rank starts from the same seed, so without this the ranks of a data-parallel job would
    draw identical dropout masks for different samples. The stream is a function of the shared
    shuffling seed, the epoch and the rank only, so a job resumed at an epoch boundary draws exactly
    what the uninterrupted job drew. One process: nothing changes.
    """
    if context is None or context.world_size == 1:
        return
    # The processes of one tensor-parallel group share a stream: their replicated activations
    # (and so their dropout masks) must agree.
    torch.manual_seed(rank_stream_seed(base_seed, epoch, context.data_partition[0]))


def rank_stream_seed(base_seed: int, epoch: int, rank: int) -> int:
    """A 63-bit seed mixed from ``(base_seed, epoch, rank)`` by NumPy's SeedSequence."""
    import numpy as np

    sequence = np.random.SeedSequence([base_seed % 2**63, epoch, rank])
    return int(sequence.generate_state(1, np.uint64)[0] >> np.uint64(1))
