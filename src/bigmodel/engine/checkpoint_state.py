"""What a training checkpoint holds besides weights: nested state (optimizer, scheduler, callbacks,
the position in an epoch) split into a JSON document and a flat dict of tensors, and the random
number generators' states. ``engine/checkpoint.py`` writes and reads the files.
"""

from __future__ import annotations

import random
from collections.abc import Mapping
from typing import Any

import numpy as np
import torch

from bigmodel.errors import CheckpointError

__all__ = ["capture_rng_state", "decode_state", "encode_state", "restore_rng_state"]

_MARKERS = ("__tensor__", "__ndarray__", "__tuple__", "__items__")


# --- state dicts <-> (JSON document, flat tensor dict) ------------------------------------------

def encode_state(obj: Any, prefix: str = "") -> tuple[Any, dict[str, torch.Tensor]]:
    """Split a nested state (dicts, lists, tuples, tensors, plain values) into JSON and tensors.

    Tensors are replaced by ``{"__tensor__": key}`` (NumPy arrays by ``{"__ndarray__": key}``); tuples and dicts with non-string keys are
    tagged so :func:`decode_state` rebuilds them exactly (optimizer states are keyed by ints).

    Returns:
        ``(document, tensors)``: a JSON-serializable document and ``{key: tensor}``.

    Raises:
        CheckpointError: a value is neither a tensor nor JSON-serializable (names its path).
    """
    tensors: dict[str, torch.Tensor] = {}

    def encode(value: Any, path: str) -> Any:
        if isinstance(value, torch.Tensor):
            tensors[path] = value
            return {"__tensor__": path}
        if isinstance(value, np.ndarray) and value.dtype.kind in "biuf":
            tensors[path] = torch.from_numpy(np.ascontiguousarray(value))
            return {"__ndarray__": path}
        if value is None or isinstance(value, (bool, int, float, str)):
            return value
        if isinstance(value, (np.integer, np.floating, np.bool_)):
            return value.item()
        if isinstance(value, tuple):
            return {"__tuple__": [encode(v, f"{path}.{i}") for i, v in enumerate(value)]}
        if isinstance(value, list):
            return [encode(v, f"{path}.{i}") for i, v in enumerate(value)]
        if isinstance(value, Mapping):
            if all(isinstance(k, str) for k in value) and not any(k in _MARKERS for k in value):
                return {k: encode(v, f"{path}.{k}") for k, v in value.items()}
            return {"__items__": [[encode(k, f"{path}.key{i}"), encode(v, f"{path}.{k}")]
                                  for i, (k, v) in enumerate(value.items())]}
        raise CheckpointError(
            f"Cannot store {path or 'state'} in a checkpoint: {type(value).__name__} is neither a "
            "tensor nor a JSON value"
        )

    return encode(obj, prefix), tensors


def decode_state(document: Any, tensors: Mapping[str, torch.Tensor]) -> Any:
    """Inverse of :func:`encode_state`."""
    if isinstance(document, list):
        return [decode_state(v, tensors) for v in document]
    if isinstance(document, dict):
        if "__tensor__" in document:
            key = document["__tensor__"]
            if key not in tensors:
                raise CheckpointError(f"Checkpoint state refers to a missing tensor {key!r}")
            return tensors[key]
        if "__ndarray__" in document:
            key = document["__ndarray__"]
            if key not in tensors:
                raise CheckpointError(f"Checkpoint state refers to a missing tensor {key!r}")
            return tensors[key].numpy()
        if "__tuple__" in document:
            return tuple(decode_state(v, tensors) for v in document["__tuple__"])
        if "__items__" in document:
            return {_hashable(decode_state(k, tensors)): decode_state(v, tensors)
                    for k, v in document["__items__"]}
        return {k: decode_state(v, tensors) for k, v in document.items()}
    return document


def _hashable(key: Any) -> Any:
    return tuple(key) if isinstance(key, list) else key


# --- random number generators -------------------------------------------------------------------

def capture_rng_state() -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """Current RNG states: torch CPU/CUDA as uint8 tensors, numpy and Python ``random`` as JSON."""
    tensors = {"torch_cpu": torch.get_rng_state()}
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        for index, state in enumerate(torch.cuda.get_rng_state_all()):
            tensors[f"torch_cuda_{index}"] = state
    name, keys, position, has_gauss, cached = np.random.get_state()
    version, python_state, gauss_next = random.getstate()
    document = {
        "numpy": {"algorithm": name, "keys": keys.tolist(), "pos": int(position),
                  "has_gauss": int(has_gauss), "cached_gaussian": float(cached)},
        "python": {"version": version, "state": list(python_state), "gauss_next": gauss_next},
    }
    return tensors, document


def restore_rng_state(tensors: Mapping[str, torch.Tensor], document: Mapping[str, Any]) -> None:
    """Restore what :func:`capture_rng_state` captured (CUDA states only when devices match)."""
    torch.set_rng_state(tensors["torch_cpu"])
    cuda = [tensors[k] for k in sorted(tensors) if k.startswith("torch_cuda_")]
    if cuda and torch.cuda.is_available() and len(cuda) == torch.cuda.device_count():
        torch.cuda.set_rng_state_all(cuda)
    state = document["numpy"]
    np.random.set_state((state["algorithm"], np.asarray(state["keys"], dtype=np.uint32),
                         state["pos"], state["has_gauss"], state["cached_gaussian"]))
    state = document["python"]
    random.setstate((state["version"], tuple(state["state"]), state["gauss_next"]))
