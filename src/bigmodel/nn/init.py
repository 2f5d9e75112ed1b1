"""Named weight initializers for plain ``nn`` models (the names a Keras user passes as strings).

``initialize(tensor, name, fan_in, fan_out)`` fills ``tensor`` in place. Fans are given explicitly
because a PyTorch weight's layout is not Keras's: an ``nn.Linear`` weight ``(out, in)`` has
``fan_in = in``; an embedding table ``(vocab, d)`` has, as in Keras, ``fan_in = vocab``.

Names and their meaning (Keras 3 defaults where Keras has the name):

=====================================  ============================================================
``random_truncated_normal_with_mean``  Normal(mean 0, stddev 0.02) with values beyond two standard
                                       deviations redrawn: the truncated normal of BERT / the
                                       Tensor2Tensor Transformer (the seed program's name).
``truncated_normal``                   Normal(0, 0.05) truncated at two standard deviations.
``random_normal``                      Normal(0, 0.05).
``random_uniform`` / ``uniform``       Uniform(-0.05, 0.05).
``glorot_uniform`` / ``xavier_uniform``  Uniform(+-sqrt(6 / (fan_in + fan_out))).
``glorot_normal``                      truncated Normal(0, sqrt(2 / (fan_in + fan_out))).
``he_uniform`` / ``he_normal``         ``sqrt(6 / fan_in)`` / truncated ``sqrt(2 / fan_in)``.
``lecun_uniform`` / ``lecun_normal``   ``sqrt(3 / fan_in)`` / truncated ``sqrt(1 / fan_in)``.
``orthogonal``                         a (semi-)orthogonal matrix.
``zeros`` / ``ones``                   constants.
=====================================  ============================================================
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
from torch import nn

from bigmodel.errors import UnknownNameError

__all__ = ["INITIALIZERS", "check_initializer", "initialize"]

# Standard deviation of the standard normal truncated to [-2, 2] (dividing by it keeps the target
# variance after truncation, as Keras's variance-scaling initializers do).
_TRUNCATED_STD = 0.87962566103423978


_CDF_AT_2 = 0.5 * (1.0 + math.erf(2.0 / math.sqrt(2.0)))  # standard normal CDF at +2


def _truncated(tensor: torch.Tensor, stddev: float) -> None:
    """Normal(0, stddev) truncated to +-2 stddev, by the inverse CDF of a uniform draw.

    (The same method as ``nn.init.trunc_normal_``, written out because that function is about
    ten times slower on the CPU in torch 2.13.)
    """
    tensor.uniform_(1.0 - 2.0 * _CDF_AT_2, 2.0 * _CDF_AT_2 - 1.0)
    tensor.erfinv_().mul_(stddev * math.sqrt(2.0)).clamp_(-2.0 * stddev, 2.0 * stddev)


def _scaled(mode: str, scale: float, distribution: str) -> Callable[[torch.Tensor, int, int], None]:
    def fill(tensor: torch.Tensor, fan_in: int, fan_out: int) -> None:
        fan = {"fan_in": fan_in, "fan_avg": (fan_in + fan_out) / 2}[mode]
        variance = scale / max(1.0, fan)
        if distribution == "uniform":
            limit = math.sqrt(3.0 * variance)
            nn.init.uniform_(tensor, -limit, limit)
        else:
            _truncated(tensor, math.sqrt(variance) / _TRUNCATED_STD)
    return fill


INITIALIZERS: dict[str, Callable[[torch.Tensor, int, int], None]] = {
    "random_truncated_normal_with_mean": lambda t, i, o: _truncated(t, 0.02),
    "truncated_normal": lambda t, i, o: _truncated(t, 0.05),
    "random_normal": lambda t, i, o: nn.init.normal_(t, 0.0, 0.05),
    "random_uniform": lambda t, i, o: nn.init.uniform_(t, -0.05, 0.05),
    "glorot_uniform": _scaled("fan_avg", 1.0, "uniform"),
    "glorot_normal": _scaled("fan_avg", 1.0, "normal"),
    "he_uniform": _scaled("fan_in", 2.0, "uniform"),
    "he_normal": _scaled("fan_in", 2.0, "normal"),
    "lecun_uniform": _scaled("fan_in", 1.0, "uniform"),
    "lecun_normal": _scaled("fan_in", 1.0, "normal"),
    "orthogonal": lambda t, i, o: nn.init.orthogonal_(t),
    "zeros": lambda t, i, o: nn.init.zeros_(t),
    "ones": lambda t, i, o: nn.init.ones_(t),
}
_ALIASES = {"uniform": "random_uniform", "normal": "random_normal", "xavier_uniform": "glorot_uniform",
            "xavier_normal": "glorot_normal", "zero": "zeros", "one": "ones"}


def check_initializer(name: str, argument: str = "initializer", owner: str = "") -> str:
    """The canonical name for ``name``.

    Raises:
        UnknownNameError: not a known initializer (names the argument and lists the known names).
    """
    key = _ALIASES.get(name, name) if isinstance(name, str) else name
    if key not in INITIALIZERS:
        where = f"{owner}: " if owner else ""
        raise UnknownNameError(f"{where}unknown initializer {name!r} for '{argument}'; known: "
                               f"{', '.join([*INITIALIZERS, *_ALIASES])}")
    return key


@torch.no_grad()
def initialize(tensor: torch.Tensor, name: str, fan_in: int = 1, fan_out: int = 1) -> torch.Tensor:
    """Fill ``tensor`` in place with initializer ``name`` (see the module table); returns it."""
    INITIALIZERS[check_initializer(name)](tensor, fan_in, fan_out)
    return tensor
