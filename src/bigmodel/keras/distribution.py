"""``keras.distribution`` on PyTorch: Keras 3's names and arguments, run by torchrun processes.

Keras 3 implements this API on JAX only. Here every *device* of a mesh is one torchrun process
(``cpu:R`` or ``gpu:R`` for rank ``R``), and the two distributions map onto the engine's strategies:

* ``DataParallel`` -> ``DistributedDataParallel``: full replicas, each process trains on its slice
  of every global batch, gradients all-reduced.
* ``ModelParallel(layout_map=..., batch_dim_name=...)`` with a ``Dense`` (or ``MultiHeadAttention``)
  kernel laid out over the model axis (a mesh axis other than the batch axis, size > 1) -> tensor
  parallelism of those layers (``keras/tensor_parallel.py``: column parallel for
  ``(None, "model")``, row parallel for ``("model", None)``, attention by heads; data split over
  the batch axis only).
* Other ``ModelParallel`` layouts -> FSDP2 (``fully_shard``): every layer
  with a weight that the layout shards over the mesh's model axis becomes its own FSDP unit, that
  weight stored sharded along the dimension the layout names (a Keras axis, mapped to the stored
  PyTorch dimension); the rest of the model forms the root unit. Weights are gathered for each
  layer's computation (ZeRO-3), so the results equal those of a single process while each process
  stores only its share. A 2-D mesh ``(batch, model)`` with both sizes > 1 is HSDP (replicas over
  ``batch``, shards over ``model``). Data are split over *all* processes: the gradient is the same
  global-batch mean the layout's SPMD program computes.

What a layout asks for that FSDP cannot give raises :class:`~bigmodel.errors.NotSupportedError`
naming it: a weight sharded along two mesh axes or over the batch axis, a mesh of more than two
axes, layouts of intermediate tensors (``".../output"``). A key that matches no weight of the
model, an axis name that is not the mesh's, or a mesh whose size is not the number of processes
raises :class:`~bigmodel.errors.ConfigError` (a ``ValueError``, as in Keras) on every process.
"""

from __future__ import annotations

import collections.abc
import contextlib
import math
import os
import re
from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np

from bigmodel.errors import ConfigError, InputTypeError
from bigmodel.keras.process_group import ensure_process_group, world
from bigmodel.keras.unsupported import unsupported_attribute

__all__ = ["DataParallel", "DeviceMesh", "Distribution", "LayoutMap", "ModelParallel",
           "TensorLayout", "distribution", "get_device_count", "initialize", "list_devices",
           "set_distribution"]

DEFAULT_BATCH_DIM_NAME = "batch"
_GLOBAL: dict[str, Any] = {"distribution": None}


def _default_device_type() -> str:
    import torch

    return "gpu" if torch.cuda.is_available() else "cpu"


def list_devices(device_type: str | None = None) -> list[str]:
    """The devices of the whole job, one per process: ``["cpu:0", "cpu:1", ...]`` (or ``gpu:R``).

    Args:
        device_type: ``"cpu"`` or ``"gpu"``; defaults to ``"gpu"`` when CUDA is present.

    Raises:
        ConfigError: an unknown ``device_type`` (``"tpu"`` included: there is none here).
    """
    kind = (device_type or _default_device_type()).lower()
    if kind not in ("cpu", "gpu"):
        raise ConfigError(f"list_devices: device_type must be 'cpu' or 'gpu'; received {device_type!r}")
    return [f"{kind}:{rank}" for rank in range(world()[1])]


def get_device_count(device_type: str | None = None) -> int:
    """The number of devices (processes) of the job."""
    return len(list_devices(device_type))


def initialize(job_addresses: str | None = None, num_processes: int | None = None,
               process_id: int | None = None) -> None:
    """Join the job's process group (gloo on CPU, NCCL on CUDA); under torchrun nothing is needed.

    Args:
        job_addresses: ``"host:port"`` of process 0 (the first of a comma-separated list is used);
            defaults to ``MASTER_ADDR``/``MASTER_PORT``.
        num_processes: the world size; defaults to ``WORLD_SIZE``.
        process_id: this process's rank; defaults to ``RANK``.

    Raises:
        ConfigError: no address/world size/rank given or in the environment.
    """
    if job_addresses:
        host, _, port = job_addresses.split(",")[0].strip().rpartition(":")
        if not host or not port.isdigit():
            raise ConfigError(f"initialize: job_addresses must start with 'host:port'; received "
                              f"{job_addresses!r}")
        os.environ["MASTER_ADDR"], os.environ["MASTER_PORT"] = host, port
    if num_processes is not None:
        os.environ["WORLD_SIZE"] = str(int(num_processes))
    if process_id is not None:
        os.environ["RANK"] = str(int(process_id))
        os.environ.setdefault("LOCAL_RANK", str(int(process_id)))
    missing = [n for n in ("MASTER_ADDR", "MASTER_PORT", "WORLD_SIZE", "RANK") if n not in os.environ]
    if missing:
        raise ConfigError(f"initialize: {', '.join(missing)} unknown; pass job_addresses, "
                          "num_processes and process_id, or launch with torchrun")
    ensure_process_group()


class DeviceMesh:
    """Devices arranged in named axes, e.g. ``DeviceMesh((2,), ["batch"])``.

    Args:
        shape: sizes of the axes; their product must be the number of processes.
        axis_names: one name per axis.
        devices: defaults to :func:`list_devices`.

    Raises:
        ConfigError: empty shape/names, lengths that differ, or a size that is not the number of
            devices (processes).
    """

    def __init__(self, shape: Sequence[int], axis_names: Sequence[str],
                 devices: Sequence[Any] | None = None) -> None:
        if not shape or not axis_names:
            raise ConfigError(f"DeviceMesh: shape and axis_names cannot be empty. Received: "
                              f"shape={shape}, axis_names={axis_names}")
        if len(shape) != len(axis_names):
            raise ConfigError(f"DeviceMesh: shape and axis_names should have the same length. "
                              f"Received: shape={shape}, axis_names={axis_names}")
        devices = np.array(list_devices() if devices is None else list(devices))
        if math.prod(shape) != devices.size:
            raise ConfigError(
                f"DeviceMesh: shape {tuple(shape)} holds {math.prod(shape)} devices but there are "
                f"{devices.size} ({world()[1]} process(es); each torchrun process is one device). "
                f"Launch {math.prod(shape)} processes or use a mesh of {devices.size}")
        self._shape, self._axis_names = tuple(int(s) for s in shape), list(axis_names)
        self._devices = devices.reshape(self._shape)

    @property
    def shape(self) -> tuple[int, ...]:
        return self._shape

    @property
    def axis_names(self) -> list[str]:
        return self._axis_names

    @property
    def devices(self) -> np.ndarray:
        return self._devices

    def __repr__(self) -> str:
        return f"<DeviceMesh shape={self.shape}, axis_names={self.axis_names}>"


class TensorLayout:
    """How one tensor is laid out on a mesh: one mesh axis name (or ``None``) per tensor axis."""

    def __init__(self, axes: Sequence[str | None], device_mesh: DeviceMesh | None = None) -> None:
        self._axes = tuple(axes)
        self._device_mesh = device_mesh
        self._validate_axes()

    @property
    def axes(self) -> tuple[str | None, ...]:
        return self._axes

    @property
    def device_mesh(self) -> DeviceMesh | None:
        return self._device_mesh

    @device_mesh.setter
    def device_mesh(self, device_mesh: DeviceMesh) -> None:
        if self._device_mesh is not None:
            raise ConfigError(f"Cannot override the device mesh of {self!r}")
        self._device_mesh = device_mesh
        self._validate_axes()

    def _validate_axes(self) -> None:
        if self._device_mesh is None:
            return
        unknown = {a for a in self._axes if a is not None} - set(self._device_mesh.axis_names)
        if unknown:
            raise ConfigError(f"TensorLayout axes {self._axes} name {sorted(unknown)}, which are not "
                              f"axes of the mesh {self._device_mesh.axis_names}")

    def __repr__(self) -> str:
        return f"<TensorLayout axes={self.axes}, device_mesh={self.device_mesh}>"


class LayoutMap(collections.abc.MutableMapping):
    """Weight path (a regex, matched in full: ``".*dense.*kernel"``, ``"d1/kernel"``) -> layout.

    Paths are ``layer_name/weight_name`` (nested layers: ``outer/inner/kernel``), as Keras's
    ``variable.path``; a tuple value is a shortcut for a :class:`TensorLayout`.
    """

    def __init__(self, device_mesh: DeviceMesh) -> None:
        self._layout_map: dict[str, TensorLayout] = {}
        self._device_mesh = device_mesh

    def __getitem__(self, key: str) -> TensorLayout | None:
        if key in self._layout_map:
            return self._layout_map[key]
        matches = [pattern for pattern in self._layout_map if re.fullmatch(pattern, key)]
        if len(matches) > 1:
            raise ConfigError(f"Path '{key}' matches several LayoutMap keys: {matches}; make each "
                              "weight path match at most one key")
        return self._layout_map[matches[0]] if matches else None

    def __setitem__(self, key: str, layout: Any) -> None:
        if key in self._layout_map:
            raise ConfigError(f"{key} is already in the LayoutMap (value {self._layout_map[key]})")
        if isinstance(layout, tuple):
            layout = TensorLayout(layout)
        if not isinstance(layout, TensorLayout):
            raise InputTypeError(f"LayoutMap['{key}'] must be a TensorLayout or a tuple of axis "
                                 f"names; received {type(layout).__name__}")
        if layout.device_mesh is None and self._device_mesh is not None:
            layout.device_mesh = self._device_mesh
        self._layout_map[key] = layout

    def __delitem__(self, key: str) -> None:
        del self._layout_map[key]

    def __len__(self) -> int:
        return len(self._layout_map)

    def __iter__(self) -> Iterator[str]:
        return iter(self._layout_map)

    @property
    def device_mesh(self) -> DeviceMesh:
        return self._device_mesh


class Distribution:
    """Base of the distributions: a mesh, the batch axis name and ``scope()``."""

    def __init__(self, device_mesh: DeviceMesh, batch_dim_name: str | None = None,
                 auto_shard_dataset: bool = True) -> None:
        self._device_mesh = device_mesh
        self._batch_dim_name = batch_dim_name
        self._auto_shard_dataset = bool(auto_shard_dataset)
        self._process_id, self._num_processes = world()
        if math.prod(device_mesh.shape) != self._num_processes:  # e.g. DeviceMesh(devices=[...])
            raise ConfigError(
                f"{type(self).__name__}: the mesh {device_mesh.shape} holds "
                f"{math.prod(device_mesh.shape)} devices but the job has {self._num_processes} "
                "processes; every process is one device and all of them train")

    @property
    def device_mesh(self) -> DeviceMesh:
        return self._device_mesh

    @property
    def batch_dim_name(self) -> str | None:
        return self._batch_dim_name

    @property
    def num_processes(self) -> int:
        return self._num_processes

    @property
    def auto_shard_dataset(self) -> bool:
        return self._auto_shard_dataset

    @auto_shard_dataset.setter
    def auto_shard_dataset(self, value: bool) -> None:
        self._auto_shard_dataset = bool(value)

    @contextlib.contextmanager
    def scope(self) -> Iterator[None]:
        """Make this the distribution inside the ``with`` block."""
        previous = distribution()
        set_distribution(self)
        try:
            yield
        finally:
            set_distribution(previous)

    def get_data_layout(self, data_shape: Sequence[int]) -> TensorLayout:
        axes = [None] * len(data_shape)
        axes[0] = self.batch_dim_name
        return TensorLayout(axes, self.device_mesh)

    def __repr__(self) -> str:
        return f"<{type(self).__name__} device_mesh={self.device_mesh}>"


class DataParallel(Distribution):
    """Replicate the model on every process and split each global batch among them (DDP).

    Args:
        device_mesh: a 1-D mesh; built from ``devices`` (or every device) when omitted.
        devices: the devices (processes) to use: all of them.
        auto_shard_dataset: accepted; the data are always sliced per process by ``fit``.

    Raises:
        ConfigError: a mesh with more than one axis or whose size is not the number of processes.
    """

    def __init__(self, device_mesh: DeviceMesh | None = None, devices: Sequence[Any] | None = None,
                 auto_shard_dataset: bool = True) -> None:
        if device_mesh is None:
            devices = list_devices() if devices is None else list(devices)
            device_mesh = DeviceMesh((len(devices),), [DEFAULT_BATCH_DIM_NAME], devices)
        if len(device_mesh.shape) != 1:
            raise ConfigError(f"DataParallel needs a 1-D device mesh; received shape "
                              f"{device_mesh.shape} (use ModelParallel for several axes)")
        super().__init__(device_mesh, device_mesh.axis_names[0], auto_shard_dataset)


class ModelParallel(Distribution):
    """Shard the weights the ``layout_map`` names over the mesh's model axis (FSDP2 per layer).

    Args:
        layout_map: a :class:`LayoutMap` (its mesh is the distribution's).
        batch_dim_name: the mesh axis that splits the data; defaults to the first axis.
        auto_shard_dataset: accepted; the data are always sliced per process by ``fit``.

    Raises:
        ConfigError: no LayoutMap, or a ``batch_dim_name`` that is not an axis of the mesh.
        NotSupportedError: a mesh of more than two axes.
    """

    def __init__(self, *, layout_map: LayoutMap | None = None, batch_dim_name: str | None = None,
                 auto_shard_dataset: bool = True, **kwargs: Any) -> None:
        from bigmodel.errors import NotSupportedError

        kwargs.pop("device_mesh", None)
        if kwargs:
            raise ConfigError(f"ModelParallel got unknown arguments {sorted(kwargs)}")
        if not isinstance(layout_map, LayoutMap):
            raise ConfigError(f"ModelParallel needs layout_map=LayoutMap(...); received "
                              f"{type(layout_map).__name__}")
        mesh = layout_map.device_mesh
        batch_dim_name = batch_dim_name or mesh.axis_names[0]
        if batch_dim_name not in mesh.axis_names:
            raise ConfigError(f"ModelParallel: batch_dim_name={batch_dim_name!r} is not an axis of "
                              f"the mesh {mesh.axis_names}")
        if len(mesh.shape) > 2:
            raise NotSupportedError(f"ModelParallel: a mesh of {len(mesh.shape)} axes "
                                    f"{mesh.axis_names}; FSDP supports a batch axis and one model axis")
        super().__init__(mesh, batch_dim_name, auto_shard_dataset)
        self._layout_map = layout_map

    @property
    def layout_map(self) -> LayoutMap:
        return self._layout_map

    @property
    def model_dim_name(self) -> str | None:
        """The mesh axis weights are sharded over (None on a 1-D mesh)."""
        others = [n for n in self.device_mesh.axis_names if n != self.batch_dim_name]
        return others[0] if others else None


def distribution() -> Distribution | None:
    """The distribution ``fit`` uses (``set_distribution`` / ``scope``), or None."""
    return _GLOBAL["distribution"]


def set_distribution(value: Distribution | None) -> None:
    """Set the distribution for the models trained from now on (None: data-parallel under torchrun,
    one process otherwise).

    Raises:
        InputTypeError: ``value`` is not a Distribution or None.
    """
    if value is not None and not isinstance(value, Distribution):
        raise InputTypeError(f"set_distribution expects a keras.distribution.Distribution or None; "
                             f"received {type(value).__name__}")
    _GLOBAL["distribution"] = value


def __getattr__(name: str) -> object:
    raise unsupported_attribute("keras.distribution", name)
