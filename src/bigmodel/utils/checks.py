"""Argument checks shared by every package: one wording for every "must be a positive int".

Each check returns the value when it is good and raises :class:`~bigmodel.errors.ConfigError`
otherwise, with a message that names the place (``owner``), the argument and the value received::

    TransformerModel: 'num_layers' must be a positive int; received 0

Integers are Python ``int`` (never ``bool``; a float such as ``2.0`` is refused, so a typo in a
config does not turn into a silent truncation). Numbers are ``int`` or ``float`` (never ``bool``)
and must be finite: NaN and infinity fail every number check.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from typing import Any

from bigmodel.errors import ConfigError

__all__ = ["int_at_least", "number_at_least", "one_of", "positive_int", "positive_number", "rate"]


def _fail(owner: str, name: str, expected: str, value: Any) -> ConfigError:
    return ConfigError(f"{owner}: '{name}' must be {expected}; received {value!r}")


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value: Any) -> bool:
    return (isinstance(value, (int, float)) and not isinstance(value, bool)
            and math.isfinite(value))


def positive_int(owner: str, name: str, value: Any, *, allow_zero: bool = False) -> int:
    """``value`` as an int >= 1 (>= 0 with ``allow_zero``).

    Args:
        owner: the place asking (a class or function name), first in the message.
        name: the argument's name.
        value: what was received.
        allow_zero: accept 0 ("a non-negative int").

    Returns:
        ``value`` unchanged.

    Raises:
        ConfigError: not an int (a bool, a float, a string, None) or below the bound.
    """
    low = 0 if allow_zero else 1
    if not _is_int(value) or value < low:
        raise _fail(owner, name, "a non-negative int" if allow_zero else "a positive int", value)
    return value


def int_at_least(owner: str, name: str, value: Any, low: int) -> int:
    """``value`` as an int >= ``low`` ("must be an int >= 2").

    Returns:
        ``value`` unchanged.

    Raises:
        ConfigError: not an int (a bool, a float, ...) or below ``low``.
    """
    if not _is_int(value) or value < low:
        raise _fail(owner, name, f"an int >= {low}", value)
    return value


def positive_number(owner: str, name: str, value: Any) -> float:
    """``value`` as a finite number > 0 (a learning rate, a decay factor).

    Returns:
        ``float(value)``.

    Raises:
        ConfigError: not a number (a bool, a string, None), NaN, infinite, or <= 0.
    """
    if not _is_number(value) or not value > 0:
        raise _fail(owner, name, "a number > 0", value)
    return float(value)


def number_at_least(owner: str, name: str, value: Any, low: float) -> float:
    """``value`` as a finite number >= ``low``.

    Returns:
        ``float(value)``.

    Raises:
        ConfigError: not a number, NaN, infinite, or below ``low``.
    """
    if not _is_number(value) or not value >= low:
        raise _fail(owner, name, f"a number >= {low:g}", value)
    return float(value)


def rate(owner: str, name: str, value: Any, *, low: float = 0.0, high: float = 1.0,
         high_inclusive: bool = False) -> float:
    """``value`` as a number in ``[low, high)`` (``[low, high]`` with ``high_inclusive``): a
    dropout rate, a momentum, a decay ("'dropout' must be in [0, 1); received 1.5").

    Returns:
        ``float(value)``.

    Raises:
        ConfigError: not a number, NaN, or outside the interval.
    """
    inside = _is_number(value) and low <= value and (value <= high if high_inclusive
                                                     else value < high)
    if not inside:
        closing = "]" if high_inclusive else ")"
        raise _fail(owner, name, f"in [{low:g}, {high:g}{closing}", value)
    return float(value)


def one_of(owner: str, name: str, value: Any, choices: Iterable[Any]) -> Any:
    """``value`` when it is one of ``choices`` (compared with ``==``; a bool never matches an int).

    Returns:
        ``value`` unchanged.

    Raises:
        ConfigError: not among ``choices``; the message lists them.
    """
    options = list(choices)
    if not any(value == c and isinstance(value, bool) == isinstance(c, bool) for c in options):
        listed = ", ".join(repr(c) for c in options)
        raise _fail(owner, name, f"one of {listed}", value)
    return value
