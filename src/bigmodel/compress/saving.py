"""Files of compressed models: safetensors + JSON, never pickle.

* pruned (structured or unstructured) model of the registry: ``model.json`` in the registry's own
  format (``name``, ``config``, checksum) plus ``"structure"``, the new layer sizes, which
  :func:`load_any` applies to a freshly built model before loading the weights;
* int8 model: see :class:`bigmodel.compress.quantize.Int8Model` (graph JSON + initializers).

Both are written and read by :mod:`bigmodel.models.model_files`; :func:`load_any` loads each by the
format its ``model.json`` names, so ``predict`` and ``evaluate`` can run what ``compress`` writes.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from torch import nn

from bigmodel.errors import CheckpointError
from bigmodel.models.model_files import read_model_document
from bigmodel.models.registry import (
    MODEL_FILE,
    build_and_load,
    create_model,
    load_model,
    read_model_spec,
    save_model,
)


def save_compressed(model: nn.Module, directory: str | os.PathLike,
                    structure: dict[str, dict[str, int]] | None = None,
                    metadata: dict[str, Any] | None = None) -> Path:
    """Save a (pruned) registry model; ``structure`` records layer sizes changed by pruning."""
    extra = dict(metadata or {})
    extra["structure"] = structure or {}
    return save_model(model, directory, metadata=extra)


def load_any(directory: str | os.PathLike, device: str = "cpu", threads: int | None = None):
    """Load any model directory bigmodel writes, by the ``"format"`` its ``model.json`` names: a
    trained run or plain registry model, a pruned model (``metadata.structure``) or an int8 model.

    Args:
        device: where an ``nn.Module`` goes (an int8 model runs on the CPU).
        threads: ONNX Runtime threads of an int8 model (default: its own).

    Returns:
        An ``nn.Module`` in eval mode, or an :class:`~bigmodel.compress.quantize.Int8Model`.

    Raises:
        CheckpointError: missing, corrupt, tampered-with or pickled files; another format.
    """
    from bigmodel.compress.quantize import INT8_FILE, load_int8
    from bigmodel.compress.structured import apply_structure

    directory = Path(directory)
    spec, found = read_model_document(directory, (MODEL_FILE, INT8_FILE))
    if found is INT8_FILE:
        return load_int8(directory, threads)
    spec = read_model_spec(directory)
    metadata = spec.get("metadata") or {}
    structure = metadata.get("structure") if isinstance(metadata, dict) else None
    if not structure:
        return load_model(directory, device=device)
    path = directory / MODEL_FILE.json_name
    if not isinstance(structure, dict) or not all(isinstance(v, dict) for v in structure.values()):
        raise CheckpointError(f"{path}: metadata.structure must map layer names to sizes; "
                              f"received {structure!r}")

    def build() -> nn.Module:
        try:
            return apply_structure(create_model(spec["name"], **spec["config"]), structure)
        except (TypeError, ValueError, KeyError, IndexError, RuntimeError) as exc:
            raise CheckpointError(f"{path}: the pruned structure cannot be applied: {exc}") from None

    # Shapes first, on the meta device: a crafted structure or config allocates nothing.
    model = build_and_load(build, directory, spec, f"the pruned model recorded in {path}")
    return model.to(device).eval()


def read_any_spec(directory: str | os.PathLike) -> dict[str, Any]:
    """The checked ``model.json`` document of any model directory :func:`load_any` loads: a
    registry model's (``name``, ``config``, ``metadata``) or an int8 model's (``metadata``, no
    ``config``); the weights are not read.

    Raises:
        CheckpointError: missing, corrupt or of another format.
    """
    from bigmodel.compress.quantize import INT8_FILE

    spec, found = read_model_document(directory, (MODEL_FILE, INT8_FILE))
    return spec if found is INT8_FILE else read_model_spec(directory)
