"""Keras's ``encode_categorical_inputs`` for the preprocessing layers (lookups, hashing,
discretization): integer ids -> one-hot / multi-hot / count vectors, float32."""

from __future__ import annotations

import numpy as np
import torch

from bigmodel.errors import DataError

__all__ = ["encode_ids"]


def encode_ids(rows: list[np.ndarray] | np.ndarray, mode: str, depth: int, what: str,
               weights: np.ndarray | None = None) -> torch.Tensor:
    """Keras's ``encode_categorical_inputs`` on id rows: ``one_hot`` adds a depth axis (replacing
    a trailing 1), ``multi_hot`` / ``count`` reduce the last axis; ids >= depth are dropped."""
    if mode == "one_hot":
        ids = np.asarray(rows)
        if ids.ndim >= 1 and ids.shape[-1] == 1 and ids.ndim > 1:
            ids = ids[..., 0]
        out = np.zeros((*ids.shape, depth), dtype=np.float32)
        flat, kept = out.reshape(-1, depth), (ids.reshape(-1) >= 0) & (ids.reshape(-1) < depth)
        flat[np.nonzero(kept)[0], ids.reshape(-1)[kept]] = 1.0
        return torch.from_numpy(out)
    if isinstance(rows, np.ndarray) and rows.ndim > 2:
        raise DataError(f"{what}: output_mode={mode!r} takes inputs of rank 1 or 2; received "
                        f"shape {rows.shape}")
    single = isinstance(rows, np.ndarray) and rows.ndim <= 1
    batch = [np.asarray(rows).reshape(-1)] if single else [np.asarray(r).reshape(-1) for r in rows]
    out = np.zeros((len(batch), depth), dtype=np.float32)
    for i, row in enumerate(batch):
        kept = (row >= 0) & (row < depth)
        np.add.at(out[i], row[kept], 1.0)
    if mode == "multi_hot":
        out = (out > 0).astype(np.float32)
    return torch.from_numpy(out[0] if single else out)
