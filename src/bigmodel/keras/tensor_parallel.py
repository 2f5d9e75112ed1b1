"""Tensor parallelism of ``Dense`` and ``MultiHeadAttention`` layers where a ``keras.distribution``
layout asks for it.

Keras 3's ``ModelParallel`` on JAX lays a kernel out over the mesh's model axis and lets the
compiler split the matrix product (GSPMD). Here the same layout becomes PyTorch's own tensor
parallelism: the weights turn into ``DTensor`` shards on the model axis of a
``torch.distributed`` device mesh, and each layer's matrix product runs on its shard, with the
collectives DTensor derives (as ``torch.distributed.tensor.parallel``'s ``ColwiseParallel`` and
``RowwiseParallel`` do for ``nn.Linear``; a Keras ``Dense`` is not an ``nn.Linear``, so the same
placements are applied here to its ``kernel``/``bias``).

A ``Dense`` kernel has the Keras shape ``(input_dim, units)``:

=======================================  =====================================================
layout of ``kernel`` (Keras axes)         what each process of the model axis holds and does
=======================================  =====================================================
``(None, "model")``                       column parallel: a slice of the ``units`` (kernel and
                                          bias split alike, the bias's layout may say
                                          ``("model",)`` or nothing); its output slice is
                                          gathered, unless the next layer is row parallel
``("model", None)``                       row parallel: a slice of the ``input_dim``; partial
                                          sums all-reduced; the bias is replicated
=======================================  =====================================================

A ``MultiHeadAttention`` whose query/key/value kernels are laid out ``(None, "model", None)`` and
output kernel ``("model", None, None)`` (Keras's axes: the heads) is split by heads as Megatron's
attention: each process projects, attends and projects back with its ``num_heads / model`` heads,
the partial outputs are all-reduced, the output bias is added once.

A column-parallel layer whose only consumer is a row-parallel layer (Megatron's MLP) hands it its
output slice without any gather. The processes of one model-axis group see the same batches (the
engine splits data over the batch axis only) and end every step with equal replicated weights; a
batch axis of size > 1 adds data parallelism: gradients are averaged over it.

What cannot be mapped raises on every process before anything is sharded: a dimension not
divisible by the model axis (:class:`~bigmodel.errors.ConfigError`), a sharded weight of a layer
that has no tensor-parallel form (convolutions, recurrent layers, ...), an attention layout other
than by heads, a sharded bias of a row-parallel layer, a regularizer or constraint on a split
weight (:class:`~bigmodel.errors.NotSupportedError`).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch
import torch.distributed as dist

from bigmodel.errors import ConfigError, NotSupportedError
from bigmodel.keras.layers.attention import MultiHeadAttention
from bigmodel.keras.layers.core import Dense

__all__ = ["TensorParallelPlan", "tensor_parallel_plan"]

COLUMN, ROW, HEADS = "column", "row", "heads"
PARALLEL_LAYERS = (Dense, MultiHeadAttention)
# MultiHeadAttention split by heads: the Keras axis of the heads in each weight laid out.
HEAD_AXES = {"query_kernel": 1, "key_kernel": 1, "value_kernel": 1, "output_kernel": 0,
             "query_bias": 0, "key_bias": 0, "value_bias": 0}


@dataclass
class TensorParallelPlan:
    """The tensor-parallel layers of a model and how the mesh splits the processes.

    Attributes:
        model: the Keras model.
        roles: ``{layer: "column" | "row" | "heads"}``.
        keep_sharded: column-parallel layers whose output goes, still split, to a row-parallel one.
        batch, model_size: sizes of the mesh's batch and model axes.
    """

    model: Any
    roles: dict[Any, str]
    keep_sharded: set[Any] = field(default_factory=set)
    batch: int = 1
    model_size: int = 1

    def data_partition(self, rank: int) -> tuple[int, int]:
        """``(index, count)`` of this process's data share: processes ``b * model + m`` of a mesh
        ``(batch, model)`` share the batch index ``b``."""
        return rank // self.model_size, self.batch

    def __call__(self, mp_policy: Any = None) -> None:
        """Shard the layers (the engine's ``_shard_plan`` hook; ``mp_policy`` is FSDP's and
        unused: autocast casts the DTensor computations)."""
        apply(self)


def tensor_parallel_plan(model: Any, chosen: Any, paths: list[tuple[str, Any, str]]
                         ) -> TensorParallelPlan | None:
    """The tensor-parallel plan a ModelParallel layout asks for, or None when it asks for none (no
    ``Dense``/``MultiHeadAttention`` weight laid out over a model axis of size > 1: FSDP storage
    sharding applies).

    Args:
        model: the Keras model.
        chosen: the ``ModelParallel`` distribution.
        paths: ``(path, layer, attribute)`` of every weight (``distributed_fit.weight_paths``).

    Raises:
        ConfigError: a split dimension not divisible by the model axis size.
        NotSupportedError: a sharded weight of a layer without a tensor-parallel form, an
            attention layout other than by heads, a sharded bias of a row-parallel layer or without
            a sharded kernel, a regularizer/constraint on a split weight.
    """
    axis_name = chosen.model_dim_name
    if axis_name is None:
        return None
    sizes = dict(zip(chosen.device_mesh.axis_names, chosen.device_mesh.shape))
    model_size = sizes[axis_name]
    sharded = []  # (path, layer, attribute, keras axis)
    for path, layer, attribute in paths:
        layout = chosen.layout_map[path]
        axes = [axis for axis, name in enumerate(layout.axes) if name == axis_name] if layout else []
        if axes:
            sharded.append((path, layer, attribute, axes[0]))
    if model_size < 2 or not any(isinstance(layer, PARALLEL_LAYERS) for _, layer, _, _ in sharded):
        return None
    roles: dict[Any, str] = {}
    for path, layer, attribute, axis in sharded:
        if not isinstance(layer, PARALLEL_LAYERS):
            raise NotSupportedError(
                f"ModelParallel: '{path}' of layer '{layer.name}' ({type(layer).__name__}) is laid "
                f"out over the model axis {axis_name!r}, but only Dense and MultiHeadAttention "
                f"layers have a tensor-parallel form here; leave this weight's layout out (it is "
                "then replicated)")
        if isinstance(layer, MultiHeadAttention):
            roles[layer] = HEADS
        elif attribute == "kernel":
            roles[layer] = COLUMN if axis == 1 else ROW
    for layer in [layer for layer, role in roles.items() if role == HEADS]:
        _check_heads(layer, {attribute: axis for _, owner, attribute, axis in sharded
                             if owner is layer}, model_size, axis_name)
    for path, layer, attribute, _ in sharded:
        if attribute == "bias" and roles.get(layer) != COLUMN:
            raise NotSupportedError(
                f"ModelParallel: the bias '{path}' is laid out over {axis_name!r} but the kernel of "
                f"'{layer.name}' is {'split by rows' if layer in roles else 'not split'}; a bias "
                "can follow a column-parallel kernel (None, 'model') only")
    for layer, role in roles.items():
        if role != HEADS:
            _check_layer(layer, role, model_size, axis_name)
    plan = TensorParallelPlan(model, roles, batch=sizes[chosen.batch_dim_name], model_size=model_size)
    plan.keep_sharded = {left for left, right in _consecutive(model) if
                         roles.get(left) == COLUMN and roles.get(right) == ROW}
    return plan


def _check_layer(layer: Dense, role: str, model_size: int, axis_name: str) -> None:
    units, input_dim = layer.kernel.shape  # stored (units, input_dim), as F.linear takes it
    split, what = (units, "units") if role == COLUMN else (input_dim, "input dimension")
    if split % model_size:
        raise ConfigError(
            f"ModelParallel: layer '{layer.name}' is {role} parallel over {axis_name!r} of size "
            f"{model_size}, but its {what} ({split}) is not divisible by {model_size}")
    regularized = sorted(name for name in ("kernel", "bias") if layer._weight_regularizers.get(name))
    constrained = sorted(name for name in ("kernel", "bias")
                         if getattr(getattr(layer, name, None), "_keras_constraint", None))
    if layer.activity_regularizer is not None:
        regularized.append("its output (activity_regularizer)")
    if regularized or constrained:
        raise NotSupportedError(
            f"ModelParallel: layer '{layer.name}' has a regularizer or constraint on "
            f"{regularized + constrained}, which tensor parallelism does not apply to split weights")


def _check_heads(layer: MultiHeadAttention, laid_out: dict[str, int], model_size: int,
                 axis_name: str) -> None:
    """A MultiHeadAttention splits by heads: query/key/value kernels along their heads axis (Keras
    ``(None, "model", None)``), the output kernel along its heads axis (``("model", None, None)``);
    q/k/v biases may follow (``("model", None)``), the output bias stays replicated."""
    wanted = {"query_kernel", "key_kernel", "value_kernel", "output_kernel"}
    wrong = sorted(name for name, axis in laid_out.items() if HEAD_AXES.get(name) != axis)
    if wrong or not wanted <= set(laid_out):
        raise NotSupportedError(
            f"ModelParallel: layer '{layer.name}' (MultiHeadAttention) is tensor parallel by heads "
            f"only: lay out query/key/value kernels (None, {axis_name!r}, None) and the output "
            f"kernel ({axis_name!r}, None, None) (q/k/v biases may follow, the output bias stays "
            f"replicated); received layouts over {axis_name!r} for "
            f"{ {name: laid_out[name] for name in sorted(laid_out)} } (weight: Keras axis)")
    if layer.num_heads % model_size:
        raise ConfigError(
            f"ModelParallel: layer '{layer.name}' is split by heads over {axis_name!r} of size "
            f"{model_size}, but its num_heads ({layer.num_heads}) is not divisible by {model_size}")
    regularized = sorted(name for name, reg in layer._weight_regularizers.items() if reg)
    if regularized or layer.activity_regularizer is not None:
        raise NotSupportedError(
            f"ModelParallel: layer '{layer.name}' has a regularizer on {regularized or 'its output'}, "
            "which tensor parallelism does not apply to split weights")


def _consecutive(model: Any) -> list[tuple[Any, Any]]:
    """Pairs ``(a, b)`` where ``b`` is the only consumer of ``a``'s output and ``a``'s output is
    ``b``'s only input: adjacent layers of a Sequential, single-use edges of a functional graph."""
    if getattr(model, "_is_stack", False):
        stack = list(model.layers)
        return list(zip(stack, stack[1:]))
    nodes = getattr(model, "_nodes", None)
    if nodes is None:  # a subclassed model: its call order is unknown; every output is gathered
        return []
    calls: dict[int, int] = {}
    consumers: dict[int, list[Any]] = {}
    for node in nodes:
        calls[id(node.layer)] = calls.get(id(node.layer), 0) + 1
        for parent in node.parents:
            consumers.setdefault(id(parent), []).append(node)
    outputs = {id(out) for out in model._outputs}
    pairs = []
    for node in nodes:
        users = consumers.get(id(node), [])
        if (len(users) == 1 and id(node) not in outputs and len(users[0].parents) == 1
                and calls[id(node.layer)] == 1 and calls[id(users[0].layer)] == 1):
            pairs.append((node.layer, users[0].layer))
    return pairs


# --- applying the plan ------------------------------------------------------------------------


def apply(plan: TensorParallelPlan) -> None:
    """Turn the planned layers' weights into DTensor shards and wrap their ``call``; with a batch
    axis of size > 1, average every gradient over it."""
    from torch.distributed.device_mesh import init_device_mesh

    device = next(plan.model.parameters()).device.type
    mesh = init_device_mesh(device, (plan.batch, plan.model_size), mesh_dim_names=("batch", "model"))
    model_mesh = mesh["model"]
    for layer, role in plan.roles.items():
        if "_tensor_parallel" in layer.__dict__:  # compiled again: already split
            continue
        object.__setattr__(layer, "_tensor_parallel", role)
        if role == HEADS:
            _shard_heads(layer, model_mesh)
            object.__setattr__(layer, "call", _heads_call(layer, layer.call, model_mesh))
            continue
        _shard_weights(layer, role, model_mesh)
        object.__setattr__(layer, "call", _parallel_call(layer.call, role, model_mesh,
                                                          keep=layer in plan.keep_sharded))
    if plan.batch > 1 and "_tensor_parallel" not in plan.model.__dict__:
        object.__setattr__(plan.model, "_tensor_parallel", "model")
        _average_gradients_over(mesh["batch"].get_group(), plan.model)


def _shard_weights(layer: Dense, role: str, mesh: Any) -> None:
    from torch.distributed.tensor import Replicate, Shard, distribute_tensor

    kernel_placement = Shard(0) if role == COLUMN else Shard(1)  # stored (units, input_dim)
    for name in ("kernel", "bias"):
        weight = getattr(layer, name, None)
        if weight is None:
            continue
        placement = kernel_placement if name == "kernel" else (
            Shard(0) if role == COLUMN else Replicate())
        # Every process holds the same (broadcast) weights: each keeps its own slice, no traffic.
        shard = distribute_tensor(weight.detach(), mesh, [placement], src_data_rank=None)
        layer.register_parameter(name, torch.nn.Parameter(shard, weight.requires_grad))


def _parallel_call(call: Callable[..., Any], role: str, mesh: Any, keep: bool) -> Callable[..., Any]:
    """``call`` on DTensors: the input replicated (column) or split on its last axis (row); the
    output replicated and local again, or left split for the row-parallel layer that follows."""
    from torch.distributed.tensor import DTensor, Replicate, Shard

    def parallel_call(inputs: Any, *args: Any, **kwargs: Any) -> Any:
        x = inputs
        if not isinstance(x, DTensor):
            x = DTensor.from_local(x, mesh, [Replicate()], run_check=False)
        if role == ROW and x.placements != (Shard(x.dim() - 1),):
            x = x.redistribute(mesh, [Shard(x.dim() - 1)])  # a local slice, no communication
        out = call(x, *args, **kwargs)
        if keep:
            return out
        return out.redistribute(mesh, [Replicate()]).to_local()

    return parallel_call


def _shard_heads(layer: MultiHeadAttention, mesh: Any) -> None:
    from torch.distributed.tensor import Replicate, Shard, distribute_tensor

    # Stored: q/k/v kernels (heads, dim, in), biases (heads, dim), output kernel (out, heads, dim).
    for name in ("query_kernel", "key_kernel", "value_kernel", "query_bias", "key_bias",
                 "value_bias", "output_kernel", "output_bias"):
        weight = getattr(layer, name, None)
        if weight is None:
            continue
        placement = (Replicate() if name == "output_bias"
                     else Shard(1) if name == "output_kernel" else Shard(0))
        shard = distribute_tensor(weight.detach(), mesh, [placement], src_data_rank=None)
        layer.register_parameter(name, torch.nn.Parameter(shard, weight.requires_grad))


def _heads_call(layer: MultiHeadAttention, call: Callable[..., Any], mesh: Any) -> Callable[..., Any]:
    """``call`` of a MultiHeadAttention on this process's heads (Megatron's attention): the layer's
    own computation runs on local tensors -- its weights' local shards and ``num_heads / model``
    heads -- and the partial output projections are summed over the model axis."""
    from torch.distributed.tensor import DTensor, Partial, Replicate, Shard

    def enter(x: Any) -> Any:
        # The same inputs on every process; their gradient is the sum of every process's part.
        if not isinstance(x, torch.Tensor):
            return x
        return DTensor.from_local(x, mesh, [Replicate()], run_check=False).to_local(
            grad_placements=[Partial()])

    def heads_call(query: Any, value: Any, key: Any, *args: Any, **kwargs: Any) -> Any:
        names = [name for name, param in layer._parameters.items() if isinstance(param, DTensor)]
        saved = {name: layer._parameters[name] for name in names}
        bias, heads = saved.get("output_bias"), layer.num_heads
        try:
            for name in names:  # differentiable views of the local shards
                layer._parameters[name] = saved[name].to_local()
            if "output_bias" in layer._parameters:
                layer._parameters["output_bias"] = None  # added once, after the sum
            layer.num_heads = heads // mesh.size()
            result = call(enter(query), enter(value), enter(key), *args, **kwargs)
        finally:
            layer._parameters.update(saved)
            layer.num_heads = heads
        out, scores = result if isinstance(result, tuple) else (result, None)
        out = DTensor.from_local(out, mesh, [Partial()]).redistribute(mesh, [Replicate()]).to_local()
        if bias is not None:
            out = out + bias.to_local()
        if scores is None:
            return out
        scores = DTensor.from_local(scores, mesh, [Shard(1)]).redistribute(mesh, [Replicate()])
        return out, scores.to_local()

    return heads_call


def _average_gradients_over(group: Any, model: Any) -> None:
    """After each backward, average every gradient (each process's shard of split weights) over
    the batch axis, as DDP does over data-parallel replicas."""
    size = dist.get_world_size(group)

    def hook(param: torch.Tensor) -> None:
        grad = param.grad
        local = grad.to_local() if hasattr(grad, "to_local") else grad
        dist.all_reduce(local, group=group)
        local.div_(size)

    for param in model.parameters():
        if param.requires_grad:
            param.register_post_accumulate_grad_hook(hook)
