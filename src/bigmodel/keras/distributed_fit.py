"""Keras ``fit``/``evaluate``/``predict``/``save`` of one program run by several torchrun processes.

``Model`` asks this module which engine strategy its ``Trainer`` gets: ``"single"`` for one
process; under torchrun (``WORLD_SIZE`` > 1) or an initialized process group of several processes,
``"ddp"`` (``keras.distribution.DataParallel`` or no distribution set) or ``"fsdp"`` with the
per-layer plan of a ``keras.distribution.ModelParallel`` layout. The group is created here when
torchrun launched us and nobody did (``keras/process_group.py``).

What each process does: the engine slices every global batch (``batch_size`` is global) among the
processes, reduces gradients, and averages losses and metrics over all processes weighted by their
samples, so ``History`` and every callback's ``logs`` are the same on every process. Only process
0 writes files: ``TensorBoard`` runs there only, ``CSVLogger`` writes there only, ``model.save`` /
``save_weights`` (and so ``ModelCheckpoint``) write one file from process 0 and every process waits
for it; ``BackupAndRestore`` writes the engine's sharded checkpoint once. A stop asked by a callback
(``EarlyStopping``) is process 0's decision, given to every process at each epoch end. ``predict``
gives each process a contiguous share of the samples and returns the whole result on every process.
Models on Keras's step loop (custom ``train_step``, several outputs, ``add_loss``) are made
data-parallel the same way by ``keras/distributed_steps.py``.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist

from bigmodel.engine import distributed as engine_distributed
from bigmodel.engine.backup import BackupAndRestore
from bigmodel.engine.callbacks import Callback, TensorBoard
from bigmodel.errors import ConfigError, NotSupportedError
from bigmodel.keras import distribution as distribution_lib
from bigmodel.keras import tensor_parallel
from bigmodel.keras.process_group import ensure_process_group, is_distributed, world

__all__ = ["check_global_batch", "evaluate",
           "predict_sharded", "rank_callbacks", "trainer_strategy",
           "weight_paths", "write_once"]

def check_global_batch(batch_size: int, what: str) -> None:
    """Refuse, on every process alike, a global ``batch_size`` the processes cannot share evenly.

    Raises:
        ConfigError: ``batch_size`` is not a multiple of the number of processes.
    """
    _, size = world()
    if size > 1 and batch_size % size:
        raise ConfigError(f"{what}: batch_size={batch_size} is the global batch size, split over "
                          f"{size} processes; it must be a multiple of {size} (e.g. "
                          f"{max(size, batch_size - batch_size % size)})")


# --- the strategy and the ModelParallel plan --------------------------------------------------


def weight_paths(model: Any) -> list[tuple[str, Any, str]]:
    """``(path, layer, attribute)`` of every weight, paths ``layer/weight`` (``outer/inner/w``)."""
    from bigmodel.keras.layers.layer_state import child_layers

    found: list[tuple[str, Any, str]] = []

    def walk(layer: Any, prefix: str) -> None:
        for attribute in layer._weight_perms:
            found.append((f"{prefix}{attribute}", layer, attribute))
        for child in child_layers(layer):
            walk(child, f"{prefix}{child.name}/")

    for layer in child_layers(model):
        walk(layer, f"{layer.name}/")
    return found


def trainer_strategy(model: Any) -> str:
    """The engine strategy for ``model``'s Trainer; joins the process group when several processes
    run, and checks that every process holds the same model.

    Raises:
        ConfigError: the processes' models differ; a bad layout (see ``shard_plan``).
        NotSupportedError: a layout FSDP cannot give.
    """
    chosen = distribution_lib.distribution()
    # A layout is checked against the model on one process too, where it changes nothing.
    plan = shard_plan(model, chosen) if isinstance(chosen, distribution_lib.ModelParallel) else None
    if plan is not None:  # Dense/attention kernels over a model axis: tensor parallelism, not FSDP
        plan = tensor_parallel.tensor_parallel_plan(model, chosen, weight_paths(model)) or plan
    if not is_distributed():
        # A one-process group reads the sharded checkpoint of a several-process run (engine).
        return "ddp" if getattr(model, "_resume_sharded", False) else "single"
    ensure_process_group()
    _check_same_model(model)
    if plan is not None:
        object.__setattr__(model, "_shard_plan", plan)  # engine.distributed.wrap_model applies it
        # The engine splits the data over the batch axis only under tensor parallelism.
        object.__setattr__(model, "_data_partition", plan.data_partition(dist.get_rank())
                           if isinstance(plan, tensor_parallel.TensorParallelPlan) else None)
        return "fsdp"
    return "ddp"


def _check_same_model(model: Any) -> None:
    signature = repr([(path, tuple(getattr(layer, name).shape))
                      for path, layer, name in weight_paths(model)])
    digest = int.from_bytes(hashlib.sha256(signature.encode()).digest()[:7], "big")
    mine = torch.tensor([digest], dtype=torch.int64, device=engine_distributed.collective_device())
    every = [torch.zeros_like(mine) for _ in range(dist.get_world_size())]
    dist.all_gather(every, mine)
    differ = [rank for rank, value in enumerate(every) if int(value) != digest]
    if differ:
        raise ConfigError(f"Model '{model.name}': the processes disagree about the model (weight "
                          f"names or shapes of process(es) {differ} differ from process "
                          f"{dist.get_rank()}'s); every process must build the same model")


def shard_plan(model: Any, chosen: Any) -> Callable[[Any], None]:
    """The FSDP wrapping a ModelParallel layout asks for: ``plan(mp_policy)`` shards ``model``.

    Raises:
        ConfigError: a layout key matching no weight, axes of the wrong length.
        NotSupportedError: intermediate-tensor layouts, a weight sharded along two axes or over
            the batch axis of a 2-D mesh.
    """
    paths = weight_paths(model)
    layout_map, mesh = chosen.layout_map, chosen.device_mesh
    names = [path for path, _, _ in paths]
    for key in layout_map:
        if not any(key == p or _fullmatch(key, p) for p in names):
            if key.endswith("output"):
                raise NotSupportedError(f"ModelParallel: the layout {key!r} lays out an intermediate "
                                        "tensor; only weights can be laid out (sharded) here")
            raise ConfigError(f"ModelParallel: the layout key {key!r} matches no weight of model "
                              f"'{model.name}'; its weight paths are {names}")
    model_axis = chosen.model_dim_name or chosen.batch_dim_name
    placements: dict[int, int] = {}
    units: list[Any] = []
    for path, layer, attribute in paths:
        layout = layout_map[path]
        if layout is None:
            continue
        weight = getattr(layer, attribute)
        if len(layout.axes) != weight.dim():
            raise ConfigError(f"ModelParallel: the layout {layout.axes} for '{path}' has "
                              f"{len(layout.axes)} axes; the weight has {weight.dim()}")
        sharded = [(axis, name) for axis, name in enumerate(layout.axes) if name is not None]
        if len(sharded) > 1:
            raise NotSupportedError(f"ModelParallel: '{path}' is sharded along {len(sharded)} axes "
                                    f"{layout.axes}; FSDP shards a weight along one axis")
        if not sharded:
            continue
        axis, name = sharded[0]
        if name != model_axis:
            raise NotSupportedError(
                f"ModelParallel: '{path}' is sharded over the mesh axis {name!r}, the batch axis of "
                f"the mesh {mesh.axis_names}; weights can be sharded over {model_axis!r} only")
        perm = layer._weight_perms[attribute]
        placements[id(weight)] = list(perm).index(axis) if perm is not None else axis
        if layer not in units:
            units.append(layer)
    sizes = dict(zip(mesh.axis_names, mesh.shape))
    batch, shards = sizes[chosen.batch_dim_name], sizes.get(model_axis, 1)

    def plan(mp_policy: Any) -> None:
        from torch.distributed.device_mesh import init_device_mesh
        from torch.distributed.fsdp import fully_shard
        from torch.distributed.tensor import Shard

        device = next(model.parameters()).device.type
        if batch > 1 and chosen.model_dim_name is not None and shards > 1:
            torch_mesh = init_device_mesh(device, (batch, shards), mesh_dim_names=("replicate", "shard"))
        else:
            torch_mesh = init_device_mesh(device, (dist.get_world_size(),))

        def placement(param: torch.nn.Parameter) -> Any:
            return Shard(placements[id(param)]) if id(param) in placements else None

        for layer in units:
            fully_shard(layer, mesh=torch_mesh, mp_policy=mp_policy, shard_placement_fn=placement)
        fully_shard(model, mesh=torch_mesh, mp_policy=mp_policy)

    return plan


def _fullmatch(pattern: str, text: str) -> bool:
    import re

    try:
        return re.fullmatch(pattern, text) is not None
    except re.error as err:
        raise ConfigError(f"ModelParallel: the layout key {pattern!r} is not a valid regex: {err}") from None


# --- callbacks, predict, saving ----------------------------------------------------------------


class _SameStop(Callback):
    """Give process 0's ``stop_training`` to every process at each epoch end (after the user's
    callbacks), so no process trains on alone and waits forever in a collective."""

    def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
        flag = torch.tensor([1 if self.model.stop_training else 0], dtype=torch.int64,
                            device=engine_distributed.collective_device())
        dist.broadcast(flag, src=0)
        if bool(flag.item()) != bool(self.model.stop_training):
            self.model.stop_training = bool(flag.item())


def rank_callbacks(callbacks: Sequence[Any], model: Any = None) -> list[Any]:
    """This process's callbacks: all of them on process 0; elsewhere those that write files
    (TensorBoard) are left out. A stop-synchronizing callback is appended under several processes.

    One process given a ``BackupAndRestore`` whose folder holds a sharded (several-process)
    checkpoint: ``model``'s trainer is then made with a one-process group, which reads it.
    """
    rank, size = world()
    if size == 1:
        if model is not None and any(
                isinstance(cb, BackupAndRestore)
                and (Path(cb.backup_dir) / "checkpoints" / "sharded").is_dir() for cb in callbacks):
            object.__setattr__(model, "_resume_sharded", True)
            if getattr(model._trainer, "strategy", None) == "single":
                model._trainer = None  # remade with the group; the checkpoint restores its state
        return list(callbacks)
    kept = [cb for cb in callbacks if rank == 0 or not isinstance(cb, TensorBoard)]
    return [*kept, _SameStop()]


def write_once(model: Any, write: Callable[[], None]) -> None:
    """Run ``write`` on process 0 only; every process waits for it. Under FSDP the full weights are
    gathered first (every process must call this, as every process runs the Keras program)."""
    if not is_distributed():
        write()
        return
    ensure_process_group()  # a save before any fit: still one writer
    from torch.distributed.fsdp import FSDPModule
    from torch.distributed.tensor import DTensor

    swapped, classes = [], []
    try:
        for module in model.modules():
            if isinstance(module, FSDPModule):  # fully_shard's FSDP<Class>: the Keras class is saved
                classes.append((module, type(module)))
                object.__setattr__(module, "__class__", type(module).__bases__[1])
            for name, param in list(module._parameters.items()):
                if isinstance(param, DTensor):  # gathered on every process, in the same order
                    full = torch.nn.Parameter(param.full_tensor().detach(), param.requires_grad)
                    swapped.append((module, name, param))
                    module._parameters[name] = full
        failure = None
        if dist.get_rank() == 0:
            try:
                write()
            except Exception as err:  # noqa: BLE001 -- told to every process below
                failure = err
        flag = torch.tensor([0 if failure is None else 1], dtype=torch.int64,
                            device=engine_distributed.collective_device())
        dist.broadcast(flag, src=0)
        if failure is not None:
            raise failure
        if flag.item():
            raise ConfigError(f"Saving model '{model.name}' failed on process 0 (see its error)")
    finally:
        for module, name, param in swapped:
            module._parameters[name] = param
        for module, cls in classes:
            object.__setattr__(module, "__class__", cls)


def predict_sharded(trainer: Any, x: Any, batch_size: int, verbose: int) -> Any:
    """``trainer.predict`` with each process on a contiguous share of ``x`` (arrays/tensors, or a
    tuple/list/dict of them); the whole result, in order, on every process.

    Shares are padded (repeating the last sample) to the same length so that every process runs
    the same number of batches (FSDP gathers weights in each forward on every process).
    """
    from bigmodel.data.batching import tree_leaves, tree_map

    ensure_process_group()  # a predict before any fit
    if getattr(trainer, "strategy", "single") == "single":  # not trained here: rank 0's weights
        engine_distributed.broadcast_parameters(trainer.model)
    process, world_size = world()
    # Tensor parallelism: the processes of one model-axis group predict the same share together.
    rank, size = getattr(trainer.model, "_data_partition", None) or world()
    total = int(tree_leaves(x)[0].shape[0])
    share = -(-total // size)
    start, stop = min(rank * share, total), min((rank + 1) * share, total)

    def piece(t: Any) -> torch.Tensor:
        t = torch.as_tensor(t) if not isinstance(t, torch.Tensor) else t
        part = t[start:stop]
        if part.shape[0] < share:  # pad with the last sample (dropped again below)
            filler = t[-1:].expand(share - part.shape[0], *t.shape[1:])
            part = torch.cat([part, filler])
        return part

    local = trainer.predict(tree_map(piece, x), batch_size=max(batch_size // size, 1),
                            verbose=verbose if process == 0 else 0)

    def gather(t: torch.Tensor) -> torch.Tensor:
        device = engine_distributed.collective_device()
        parts = [torch.empty_like(t, device=device) for _ in range(world_size)]
        dist.all_gather(parts, t.contiguous().to(device))
        step = world_size // size  # one part per share (the first process of each group)
        return torch.cat([p.cpu() for p in parts[::step]])[:total]

    return tree_map(gather, local)


def evaluate(trainer: Any, data: Any, batch_size: int, verbose: int) -> dict[str, float]:
    """``trainer.evaluate``; under DDP each process takes a contiguous share of in-memory data
    ``(x, y[, sample_weight])`` and the engine averages the logs weighted by samples.

    FSDP gathers weights in every forward, so there every process must run the same batches: it
    evaluates all the data (as does DDP with fewer samples than processes, or a Dataset/generator).
    """
    from bigmodel.data.batching import tree_leaves, tree_map

    rank, size = world()
    leaves = tree_leaves(data) if isinstance(data, tuple) else []
    total = int(leaves[0].shape[0]) if leaves and hasattr(leaves[0], "shape") else 0
    if size == 1 or getattr(trainer, "strategy", "single") != "ddp" or total < size:
        return trainer.evaluate(data, batch_size=batch_size, verbose=verbose)
    start, stop = total * rank // size, total * (rank + 1) // size
    share = tuple(tree_map(lambda t: t[start:stop], part) if part is not None else None
                  for part in data)
    return trainer.evaluate(share, batch_size=batch_size // size, verbose=verbose if rank == 0 else 0)
