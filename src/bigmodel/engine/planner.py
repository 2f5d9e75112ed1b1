"""Memory planner: per-device bytes of parameters, gradients, optimizer state and activations for
each strategy, with and without activation checkpointing, and the deepest model of a family that
fits a device.

Activations are *measured*, not guessed: one forward pass on a small batch (under the run's
autocast) records every tensor autograd saves for backward (``saved_tensors_hooks``; parameters and
tensors sharing their storage excluded), split into what each block saves and what the rest of the
model saves; two batch sizes give bytes per sample. Then, with ``b`` samples per device::

    activations, plain         b * (outside + sum(block_i))
    activations, checkpointed  b * (outside + sum(input_i) + max(block_i))   # inputs kept, one block
                                                                            # recomputed at a time
    parameters / gradients     P * 4 bytes (fp32 master weights; gradients in the parameter dtype)
    optimizer state            P * 4 * k   (adam/adamw k=2, sgd with momentum / rmsprop k=1)
    single                     params + grads + optimizer + activations
    ddp                        + one gradient copy in DDP's communication buckets
    fsdp (N devices)           (params + grads + optimizer) / N + gathered working set: the root
                               unit's parameters + two blocks' parameters and gradients (one
                               computed, one prefetched) in the compute dtype
    hybrid                     as fsdp, sharded over the devices of one node

``overhead_bytes`` (CUDA context, allocator slack) is added as given; on CPU it defaults to 0.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any

import torch
from torch import nn

from bigmodel.engine.blocks import find_blocks
from bigmodel.engine.distributed import STRATEGIES
from bigmodel.errors import ConfigError

# Tensors of optimizer state per parameter, for every name engine.optimizers builds.
OPTIMIZER_STATES = {"adam": 2, "adamw": 2, "sgd": 0, "sgd_momentum": 1, "rmsprop": 1,
                    "rmsprop_momentum": 2, "adagrad": 1}
DEPTH_KEYS = ("num_layers", "depth", "num_blocks", "n_layer", "layers", "num_hidden_layers")
UNITS = {"": 1, "b": 1, "kb": 10**3, "mb": 10**6, "gb": 10**9, "tb": 10**12, "kib": 2**10,
         "mib": 2**20, "gib": 2**30, "tib": 2**40}


def parse_bytes(text: str | int | float) -> int:
    """``"80GB"`` -> 80e9, ``"16GiB"`` -> 16 * 2**30, ``1024`` -> 1024.

    Raises:
        ConfigError: not a positive size with a known unit.
    """
    if isinstance(text, (int, float)) and not isinstance(text, bool):
        value, unit = float(text), ""
    else:
        import re

        match = re.fullmatch(r"\s*([0-9]*\.?[0-9]+)\s*([A-Za-z]*)\s*", str(text))
        if not match or match.group(2).lower() not in UNITS:
            raise ConfigError(f"A memory size must look like 80GB, 16GiB or 512MB; received {text!r}")
        value, unit = float(match.group(1)), match.group(2).lower()
    if value <= 0:
        raise ConfigError(f"A memory size must be > 0; received {text!r}")
    return int(value * UNITS[unit])


@dataclass
class ModelProfile:
    """What the planner measured of one model (bytes per sample for activations)."""

    parameters: int
    parameter_bytes: int
    block_parameters: list[int]
    activation_outside: float  # per sample, saved outside every block
    activation_blocks: list[float]  # per sample, saved inside each block
    block_inputs: list[float]  # per sample, each block's input

    @property
    def root_parameters(self) -> int:
        return self.parameters - sum(self.block_parameters)

    def activations(self, checkpointing: bool) -> float:
        if checkpointing and self.activation_blocks:
            return (self.activation_outside + sum(self.block_inputs) + max(self.activation_blocks))
        return self.activation_outside + sum(self.activation_blocks)


def _tensor_bytes(value: Any) -> int:
    if isinstance(value, torch.Tensor):
        return value.numel() * value.element_size()
    if isinstance(value, (tuple, list)):
        return sum(_tensor_bytes(item) for item in value)
    if isinstance(value, dict):
        return sum(_tensor_bytes(item) for item in value.values())
    return 0


def _saved_bytes(model: nn.Module, inputs: Any, autocast_dtype: torch.dtype | None,
                 device: torch.device) -> tuple[int, list[int], list[int]]:
    """Bytes autograd saves in one forward: (outside blocks, per block, each block's input)."""
    blocks = find_blocks(model)
    index = {id(block): i for i, block in enumerate(blocks)}
    current: list[int] = []
    parameter_storages = {p.untyped_storage().data_ptr() for p in model.parameters()}
    seen: set[int] = set()
    outside, inside = [0], [0] * len(blocks)
    block_inputs = [0] * len(blocks)

    def pack(tensor: torch.Tensor) -> torch.Tensor:
        storage = tensor.untyped_storage()
        pointer = storage.data_ptr()
        if pointer not in parameter_storages and pointer not in seen and storage.nbytes():
            seen.add(pointer)
            if current:
                inside[current[-1]] += storage.nbytes()
            else:
                outside[0] += storage.nbytes()
        return tensor

    def before(module, args):
        current.append(index[id(module)])
        block_inputs[index[id(module)]] += _tensor_bytes(args)

    def after(module, args, output):
        current.pop()

    handles = [h for block in blocks for h in (block.register_forward_pre_hook(before),
                                               block.register_forward_hook(after))]
    autocast = (torch.autocast(device.type, dtype=autocast_dtype) if autocast_dtype is not None
                else torch.autocast(device.type, enabled=False))
    try:
        with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t), autocast:
            output = model(inputs)
        del output
    finally:
        for handle in handles:
            handle.remove()
    return outside[0], inside, block_inputs


def profile_model(model: nn.Module, make_input: Callable[[int], Any], precision: str = "fp32",
                  device: str | torch.device = "cpu", batch_sizes: tuple[int, int] = (1, 3)) -> ModelProfile:
    """Measure ``model``: parameter counts (whole and per block) and activation bytes per sample.

    Args:
        make_input: ``batch_size -> model input``.
        precision: "fp32" or "bf16"/"fp16" (measured under that autocast).
    """
    from bigmodel.engine.resolve import PRECISIONS

    device = torch.device(device)
    dtype = PRECISIONS.get(precision)
    model = model.to(device).train()
    blocks = find_blocks(model)
    small, large = batch_sizes
    low = _saved_bytes(model, make_input(small), dtype, device)
    high = _saved_bytes(model, make_input(large), dtype, device)
    span = large - small

    def slope(a: float, b: float) -> float:
        return max(b - a, 0) / span

    parameters = sum(p.numel() for p in model.parameters())
    return ModelProfile(
        parameters=parameters,
        parameter_bytes=sum(p.numel() * p.element_size() for p in model.parameters()),
        block_parameters=[sum(p.numel() for p in block.parameters()) for block in blocks],
        activation_outside=slope(low[0], high[0]),
        activation_blocks=[slope(a, b) for a, b in zip(low[1], high[1])],
        block_inputs=[slope(a, b) for a, b in zip(low[2], high[2])])


@dataclass
class Estimate:
    """Per-device bytes of one configuration."""

    strategy: str
    activation_checkpointing: bool
    devices: int
    micro_batch: int
    parameters: float
    gradients: float
    optimizer: float
    activations: float
    working_set: float  # DDP buckets, or FSDP's gathered parameters and gradients
    overhead: float = 0.0
    total: float = field(init=False)

    def __post_init__(self) -> None:
        self.total = (self.parameters + self.gradients + self.optimizer + self.activations
                      + self.working_set + self.overhead)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def optimizer_states(optimizer: str, momentum: float = 0.0) -> int:
    """fp32 state tensors per parameter for an optimizer name."""
    name = optimizer.lower()
    if name in ("sgd", "rmsprop") and momentum:
        name = f"{name}_momentum"
    if name not in OPTIMIZER_STATES:
        known = ", ".join(sorted(key for key in OPTIMIZER_STATES if not key.endswith("_momentum")))
        raise ConfigError(f"Unknown optimizer {optimizer!r} for the planner; known: {known}")
    return OPTIMIZER_STATES[name]


def estimate(profile: ModelProfile, strategy: str, devices: int, global_batch: int,
             activation_checkpointing: bool = False, optimizer: str = "adam", momentum: float = 0.0,
             precision: str = "fp32", grad_accum_steps: int = 1, devices_per_node: int | None = None,
             overhead_bytes: float = 0.0) -> Estimate:
    """Per-device memory of training ``profile``'s model under one configuration.

    Raises:
        ConfigError: unknown strategy; ``single`` with several devices; a batch that does not split.
    """
    if strategy not in STRATEGIES:
        raise ConfigError(f"strategy must be one of {', '.join(STRATEGIES)}; received {strategy!r}")
    if strategy == "single" and devices != 1:
        raise ConfigError(f"strategy='single' runs on 1 device; received devices={devices}")
    per_step = devices * grad_accum_steps
    if global_batch % per_step:
        raise ConfigError(f"The global batch {global_batch} does not split over {devices} devices x "
                          f"{grad_accum_steps} accumulation steps")
    micro = global_batch // per_step
    weights = float(profile.parameter_bytes)
    states = optimizer_states(optimizer, momentum) * weights
    compute_bytes = 2 if precision in ("bf16", "fp16") else 4
    activations = micro * profile.activations(activation_checkpointing)
    working = 0.0
    shards = 1
    if strategy == "ddp":
        working = weights  # gradient buckets
    elif strategy in ("fsdp", "hybrid"):
        shards = devices if strategy == "fsdp" else (devices_per_node or devices)
        largest = max(profile.block_parameters, default=0)
        gathered = profile.root_parameters + 2 * largest  # root unit + current and prefetched block
        working = gathered * compute_bytes + 2 * largest * compute_bytes  # + unsharded gradients
    return Estimate(strategy, activation_checkpointing, devices, micro, weights / shards,
                    weights / shards, states / shards, activations, working, float(overhead_bytes))


def plan_table(profile: ModelProfile, devices: int, global_batch: int, **options: Any) -> list[Estimate]:
    """Estimates for every strategy that runs on ``devices`` (single only on 1), with and without
    activation checkpointing (only when the model has blocks)."""
    strategies = ["single"] if devices == 1 else ["ddp", "fsdp"]
    if devices > 1 and options.get("devices_per_node") and options["devices_per_node"] < devices:
        strategies.append("hybrid")
    modes = (False, True) if profile.block_parameters else (False,)
    return [estimate(profile, s, devices, global_batch, activation_checkpointing=m, **options)
            for s in strategies for m in modes]


def scale_depth(profile: ModelProfile, depth: int) -> ModelProfile:
    """The profile of the same family with ``depth`` blocks (each like the average block)."""
    if not profile.block_parameters:
        raise ConfigError("The model has no blocks; the planner can only scale block depth")
    count = len(profile.block_parameters)

    def mean(values):
        return sum(values) / count

    block_params = round(mean(profile.block_parameters))
    bytes_per = profile.parameter_bytes / max(profile.parameters, 1)
    parameters = profile.root_parameters + depth * block_params
    scaled = copy.copy(profile)
    scaled.parameters = parameters
    scaled.parameter_bytes = int(parameters * bytes_per)
    scaled.block_parameters = [block_params] * depth
    scaled.activation_blocks = [mean(profile.activation_blocks)] * depth
    scaled.block_inputs = [mean(profile.block_inputs)] * depth
    return scaled


def largest_depth(profile: ModelProfile, device_memory: float, strategy: str, devices: int,
                  global_batch: int, activation_checkpointing: bool = False, limit: int = 1_000_000,
                  **options: Any) -> int:
    """The most blocks a model of this family can have and still fit ``device_memory`` (0: none)."""
    def fits(depth: int) -> bool:
        return estimate(scale_depth(profile, depth), strategy, devices, global_batch,
                        activation_checkpointing, **options).total <= device_memory

    if not fits(1):
        return 0
    low, high = 1, 2
    while high <= limit and fits(high):
        low, high = high, high * 2
    high = min(high, limit + 1)
    while high - low > 1:  # memory grows linearly with depth: fits() is monotone
        middle = (low + high) // 2
        low, high = (middle, high) if fits(middle) else (low, middle)
    return low


def format_bytes(value: float) -> str:
    for unit, size in (("GB", 1e9), ("MB", 1e6), ("kB", 1e3)):
        if abs(value) >= size:
            return f"{value / size:.2f} {unit}"
    return f"{value:.0f} B"


def depth_key(defaults: dict[str, Any]) -> str | None:
    """The factory argument that sets a model family's number of blocks, if any."""
    return next((key for key in DEPTH_KEYS if isinstance(defaults.get(key), int)), None)


__all__ = ["Estimate", "ModelProfile", "depth_key", "estimate", "format_bytes", "largest_depth",
           "optimizer_states", "parse_bytes", "plan_table", "profile_model", "scale_depth"]


def _proc_status(field_name: str) -> int:
    import re

    try:
        with open("/proc/self/status", encoding="ascii") as handle:
            text = handle.read()
    except OSError:
        raise ConfigError("Measuring peak memory needs Linux's /proc/self/status") from None
    return int(re.search(rf"{field_name}:\s+(\d+)", text).group(1)) * 1024


def measure_peak(fn: Callable[[], Any]) -> int:
    """Peak resident memory ``fn`` adds above what is resident when it starts (Linux, bytes).

    The process's high-water mark is reset first (``/proc/self/clear_refs``). Run with
    ``MALLOC_MMAP_THRESHOLD_=65536`` so large tensors are returned to the system when freed.
    """
    try:
        with open("/proc/self/clear_refs", "w", encoding="ascii") as handle:
            handle.write("5")
    except OSError:
        raise ConfigError("Measuring peak memory needs Linux's /proc/self/clear_refs") from None
    base = _proc_status("VmRSS")
    fn()
    return _proc_status("VmHWM") - base


__all__ += ["measure_peak"]
