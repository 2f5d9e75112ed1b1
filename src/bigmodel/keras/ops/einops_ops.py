"""``keras.ops.rearrange``: einops-style axis rearrangement, computed by the einops library."""

from __future__ import annotations

from typing import Any

import torch

from bigmodel.errors import ConfigError, InputTypeError
from bigmodel.keras.ops.dtypes import convert_to_tensor
from bigmodel.keras.ops.node import keras_op


@keras_op()
def rearrange(tensor: Any, pattern: str, **axes_lengths: int) -> torch.Tensor:
    """Axes of ``tensor`` reordered, merged and split as ``pattern`` says (einops notation).

    Args:
        tensor: the input.
        pattern: e.g. ``"b h w c -> b (h w) c"`` or ``"b (h p) w -> b h p w"``.
        **axes_lengths: sizes of the axes a split needs (``p=2``).

    Returns:
        The rearranged tensor.

    Raises:
        InputTypeError: ``pattern`` not a string.
        ConfigError: a malformed pattern, or one that does not fit the tensor's shape.
    """
    import einops  # the library (pyproject's keras extra); only this op needs it

    if not isinstance(pattern, str):
        raise InputTypeError(f"keras.ops.rearrange: pattern must be a string; received "
                             f"{type(pattern).__name__}")
    x = convert_to_tensor(tensor)
    try:
        return einops.rearrange(x, pattern, **axes_lengths)
    except einops.EinopsError as error:
        raise ConfigError(f"keras.ops.rearrange: pattern {pattern!r} with axes_lengths="
                          f"{axes_lengths} does not fit a tensor of shape {tuple(x.shape)}: "
                          f"{str(error).splitlines()[0]}") from error
