"""Input checks shared by the token models (Transformer, GPT, text classifier).

Every check names the model, the input and what was received, so a bad batch fails with a message a
user can act on rather than an index error deep inside an embedding.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from bigmodel.errors import DataError, InputTypeError, ShapeError, describe

__all__ = ["as_token_ids", "check_token_ids", "embed_tokens", "pad_sequences"]


def pad_sequences(sequences: Any, pad_id: int = 0) -> torch.Tensor:
    """A list of token-id lists -> right-padded ``(N, L)`` int64 tensor."""
    rows = [list(map(int, row)) for row in sequences]
    width = max((len(row) for row in rows), default=0)
    out = torch.full((len(rows), width), pad_id, dtype=torch.long)
    for index, row in enumerate(rows):
        out[index, : len(row)] = torch.tensor(row, dtype=torch.long)
    return out


def as_token_ids(x: Any, owner: str, what: str = "input") -> torch.Tensor:
    """``(batch, length)`` integer tensor from a tensor, an array or a list of lists.

    Raises:
        InputTypeError: not integers (floats holding whole numbers are accepted and cast).
        ShapeError: not 2-D, or an empty sequence axis.
    """
    if isinstance(x, (list, tuple)) and x and isinstance(x[0], (list, tuple, np.ndarray)):
        lengths = {len(row) for row in x}
        x = pad_sequences(x) if len(lengths) > 1 else torch.as_tensor(np.asarray(x))
    elif isinstance(x, (np.ndarray, list, tuple)):
        array = np.asarray(x)
        if array.dtype.kind not in "biuf":
            raise InputTypeError(f"{owner}: {what} must hold token ids (integers); received "
                                 f"{describe(array)}")
        x = torch.from_numpy(np.ascontiguousarray(array))
    if not isinstance(x, torch.Tensor):
        raise InputTypeError(f"{owner}: {what} must be a tensor, array or list of token-id lists; "
                             f"received {type(x).__name__}")
    if x.is_floating_point():
        if not torch.equal(x, x.round()):
            raise InputTypeError(f"{owner}: {what} must hold integer token ids; received "
                                 f"non-integer values ({describe(x)})")
        x = x.long()
    elif x.dtype == torch.bool or x.is_complex():
        raise InputTypeError(f"{owner}: {what} must hold integer token ids; received {describe(x)}")
    if x.dim() == 1:
        x = x.unsqueeze(0)
    if x.dim() != 2:
        raise ShapeError(f"{owner}: {what} must be (batch, length) token ids; received {describe(x)}")
    if x.shape[1] == 0:
        raise ShapeError(f"{owner}: {what} is an empty sequence (length 0); expected at least one "
                         "token")
    return x


def check_token_ids(ids: torch.Tensor, vocab_size: int, owner: str, what: str) -> None:
    """Raise ``DataError`` when an id lies outside ``[0, vocab_size)`` (names the id and range)."""
    if ids.numel() == 0:
        return
    low, high = int(ids.min()), int(ids.max())
    if low < 0 or high >= vocab_size:
        bad = low if low < 0 else high
        raise DataError(f"{owner}: {what} contains token id {bad}, outside the vocabulary "
                        f"[0, {vocab_size}) (vocab_size={vocab_size}); received ids in "
                        f"[{low}, {high}]")


def embed_tokens(ids: torch.Tensor, weight: torch.Tensor, owner: str, what: str) -> torch.Tensor:
    """``F.embedding`` with a clear error for out-of-range ids.

    On the CPU the range is checked only when the lookup fails (no cost otherwise); on accelerators
    it is checked first, because there a bad index is a device-side assertion. Inside
    ``torch.compile`` the check is left out (it would force a host sync and a graph break).
    """
    if torch.compiler.is_compiling():
        return F.embedding(ids, weight)
    if ids.device.type != "cpu":
        check_token_ids(ids, weight.shape[0], owner, what)
        return F.embedding(ids, weight)
    try:
        return F.embedding(ids, weight)
    except (IndexError, RuntimeError):
        check_token_ids(ids, weight.shape[0], owner, what)
        raise
