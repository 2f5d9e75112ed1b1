"""What a layer's ``call`` accepts (``training``, ``mask``, its first argument's name), read once
per class as Keras does."""

from __future__ import annotations

from collections.abc import Callable

__all__ = ["CallSignature", "call_signature", "call_takes_mask"]


class CallSignature:
    """What ``call`` accepts (Keras inspects it once per class): ``training``, ``mask``, and the
    name of its first argument (for ``layer(inputs=x)`` / ``layer(x=x)`` keyword calls)."""

    __slots__ = ("first", "mask", "positional", "training", "training_default")

    def __init__(self, fn: Callable) -> None:
        import inspect

        params = list(inspect.signature(fn).parameters.values())[1:]  # drop self
        var_kw = any(p.kind is p.VAR_KEYWORD for p in params)
        names = {p.name for p in params}
        self.training = var_kw or "training" in names
        # Keras 3 falls back to call's default for ``training`` (preprocessing layers declare
        # ``training=True``: called directly they augment); None when there is none
        found = next((p for p in params if p.name == "training"), None)
        self.training_default = (None if found is None or found.default is found.empty
                                 else found.default)
        self.mask = "mask" in names
        positional = [p for p in params if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
        self.first = positional[0].name if positional else None
        # names of the arguments after the first that a positional call fills (``layer(a, b)``)
        self.positional = tuple(p.name for p in positional[1:])


_CALL_SIGNATURES: dict[type, CallSignature] = {}


def call_signature(cls: type) -> CallSignature:
    """The :class:`CallSignature` of ``cls.call`` (cached per class)."""
    known = _CALL_SIGNATURES.get(cls)
    if known is None:
        known = _CALL_SIGNATURES[cls] = CallSignature(cls.call)
    return known


def call_takes_mask(cls: type) -> bool:
    """Whether ``cls.call`` has a ``mask`` parameter (cached per class)."""
    return call_signature(cls).mask
