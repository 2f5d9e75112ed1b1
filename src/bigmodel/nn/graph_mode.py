"""Is the forward pass being captured into a static graph (ONNX export, ``torch.export``, tracing)?

Eager forward passes check their inputs' *values* (token ids in range, no empty rows, padding only
at the end) and take faster value-dependent paths (packing variable-length batches). A captured
graph cannot hold either: a Python ``if`` on a tensor value would freeze one branch or stop the
export. While capturing, models skip the value checks (the graph keeps only the shape checks) and
take their branch-free paths, which compute the same outputs; see ``docs/compress.md`` (ONNX export).
"""

from __future__ import annotations

import torch

__all__ = ["capturing_graph"]


def capturing_graph() -> bool:
    """True inside ``torch.export`` / the dynamo ONNX exporter or ``torch.jit.trace``."""
    return bool(torch.compiler.is_exporting() or torch.jit.is_tracing())
