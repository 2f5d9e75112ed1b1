"""Files of compressed models: safetensors + JSON, never pickle.

* pruned (structured or unstructured) model of the registry: ``model.json`` in the registry's own
  format (``name``, ``config``, checksum) plus ``"structure"``, the new layer sizes, which
  :func:`load_compressed` applies to a freshly built model before loading the weights;
* int8 model: see :class:`bigmodel.compress.quantize.Int8Model` (graph JSON + initializers).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from torch import nn

from bigmodel.errors import CheckpointError


def save_compressed(model: nn.Module, directory: str | os.PathLike,
                    structure: dict[str, dict[str, int]] | None = None,
                    metadata: dict[str, Any] | None = None) -> Path:
    """Save a (pruned) registry model; ``structure`` records layer sizes changed by pruning."""
    from bigmodel.models.registry import save_model

    extra = dict(metadata or {})
    extra["structure"] = structure or {}
    return save_model(model, directory, metadata=extra)


def load_compressed(directory: str | os.PathLike, device: str = "cpu"):
    """Load any model directory bigmodel writes: a trained run, a pruned model or an int8 model.

    Returns:
        An ``nn.Module`` in eval mode, or an :class:`~bigmodel.compress.quantize.Int8Model`.

    Raises:
        CheckpointError: missing, corrupt, tampered-with or pickled files.
    """
    from safetensors.torch import load_file

    from bigmodel.compress.quantize import INT8_FORMAT, load_int8
    from bigmodel.compress.structured import apply_structure
    from bigmodel.models.registry import create_model, load_model, read_model_spec
    from bigmodel.utils.io import sha256_file
    from bigmodel.utils.loading import (
        check_shapes,
        confined_path,
        meta_shapes,
        read_json,
        read_safetensors_header,
    )

    directory = Path(directory)
    path = directory / "model.json"
    if path.is_file():
        confined_path(directory, "model.json", "Model file")  # no symlink out of the folder
        document = read_json(path, "Model file")
        if isinstance(document, dict) and document.get("format") == INT8_FORMAT:
            return load_int8(directory)
    spec = read_model_spec(directory)
    structure = (spec.get("metadata") or {}).get("structure") \
        if isinstance(spec.get("metadata") or {}, dict) else None
    if not structure:
        return load_model(directory, device=device)
    if not isinstance(structure, dict) or not all(isinstance(v, dict) for v in structure.values()):
        raise CheckpointError(f"{path}: metadata.structure must map layer names to sizes; "
                              f"received {structure!r}")
    weights = confined_path(directory, spec.get("weights", "model.safetensors"), "Model weights")
    header = read_safetensors_header(weights)  # pickle or not safetensors: refused unread
    if spec.get("weights_sha256") and sha256_file(weights) != spec["weights_sha256"]:
        raise CheckpointError(f"{weights} does not match the checksum recorded in {path}")
    aliases = spec.get("aliases") or {}
    if not isinstance(aliases, dict):
        raise CheckpointError(f"{path}: 'aliases' must map names to names; received {aliases!r}")

    def build():
        try:
            return apply_structure(create_model(spec["name"], **spec["config"]), structure)
        except (TypeError, ValueError, KeyError, IndexError, RuntimeError) as exc:
            raise CheckpointError(f"{path}: the pruned structure cannot be applied: {exc}") from None

    # Shapes first, on the meta device: a crafted structure or config allocates nothing.
    what = f"the pruned model recorded in {path}"
    check_shapes(meta_shapes(build, what), header, what, aliases=aliases)
    model = build()
    state = load_file(str(weights))
    for alias, source in (spec.get("aliases") or {}).items():
        if source in state:
            state[alias] = state[source]
    try:
        model.load_state_dict(state, strict=True)
    except RuntimeError as exc:
        raise CheckpointError(f"{weights} does not fit the pruned structure recorded in {path}: "
                              f"{str(exc).splitlines()[0]}") from None
    return model.to(device).eval()
