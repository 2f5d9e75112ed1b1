"""``keras.mixed_precision``: dtype policies, as Keras 3 names them.

A policy pairs a *compute* dtype (what a layer's forward pass runs in) with a *variable* dtype (what
its weights are stored in). ``"mixed_bfloat16"`` computes in bfloat16 with float32 weights;
bigmodel runs it as the engine's ``precision="bf16"`` (``torch.autocast``) so ``fit``, ``evaluate``
and ``predict`` of a model built under it run their forward passes in bfloat16 while the weights and
the optimizer's update stay float32. ``"mixed_float16"`` is the engine's ``precision="fp16"``
(autocast plus a ``GradScaler``), which the engine offers on CUDA only. Weights stored in a 16-bit
dtype (policies ``"bfloat16"``/``"float16"``) are not supported: they raise an error naming them.

A layer takes the global policy when it is constructed (``layer.dtype_policy``), as in Keras.
"""

from __future__ import annotations

from typing import Any

from bigmodel.errors import ConfigError, InputTypeError, NotSupportedError
from bigmodel.keras.unsupported import unsupported_attribute

# name -> (compute dtype, variable dtype), the names Keras 3's DTypePolicy parses
_POLICIES = {
    "float32": ("float32", "float32"),
    "mixed_bfloat16": ("bfloat16", "float32"),
    "mixed_float16": ("float16", "float32"),
    "bfloat16": ("bfloat16", "bfloat16"),
    "float16": ("float16", "float16"),
}
# policy name -> the engine's precision; a policy absent here stores 16-bit weights (refused)
_PRECISION = {"float32": "fp32", "mixed_bfloat16": "bf16", "mixed_float16": "fp16"}


class DTypePolicy:
    """A dtype policy (``keras.mixed_precision.DTypePolicy``, alias ``Policy``).

    Args:
        name: ``"float32"``, ``"mixed_bfloat16"``, ``"mixed_float16"``, ``"bfloat16"`` or
            ``"float16"``; ``None`` means ``"float32"`` (Keras's ``floatx()``).

    Raises:
        InputTypeError: ``name`` is not a string. ConfigError: an unknown name.
    """

    def __init__(self, name: str | None = None):
        if name is None:
            name = "float32"
        if not isinstance(name, str):
            raise InputTypeError(f"keras.mixed_precision.DTypePolicy: name must be a string such as "
                                 f"'mixed_bfloat16'; received {name!r} ({type(name).__name__})")
        if name not in _POLICIES:
            raise ConfigError(f"keras.mixed_precision.DTypePolicy: unknown policy name {name!r}; "
                              f"known: {sorted(_POLICIES)}")
        self._name = name
        self._compute_dtype, self._variable_dtype = _POLICIES[name]

    @property
    def name(self) -> str:
        return self._name

    @property
    def compute_dtype(self) -> str:
        return self._compute_dtype

    @property
    def variable_dtype(self) -> str:
        return self._variable_dtype

    def get_config(self) -> dict[str, Any]:
        return {"name": self._name}

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> DTypePolicy:
        return cls(**config)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, DTypePolicy) and other.name == self.name

    def __hash__(self) -> int:
        return hash(self._name)

    def __repr__(self) -> str:
        return f'<DTypePolicy "{self._name}">'


Policy = DTypePolicy
_global: DTypePolicy = DTypePolicy("float32")


def get(policy: Any) -> DTypePolicy:
    """A :class:`DTypePolicy` from a policy or its name (``None``: the global policy).

    Raises:
        InputTypeError: neither a policy nor a string. ConfigError: an unknown name.
    """
    if policy is None:
        return _global
    if isinstance(policy, DTypePolicy):
        return policy
    if isinstance(policy, dict) and policy.get("class_name") == "DTypePolicy":
        return DTypePolicy(**policy.get("config", {}))  # a Keras 3 config entry
    return DTypePolicy(policy)


def set_dtype_policy(policy: Any) -> None:
    """Set the global policy; layers constructed afterwards take it (``set_global_policy``).

    Raises:
        InputTypeError / ConfigError: see :func:`get`. NotSupportedError: a policy that stores
            weights in 16 bits (``"bfloat16"``, ``"float16"``); use its ``mixed_`` twin.
    """
    global _global
    chosen = get(policy)
    if chosen.name not in _PRECISION:
        raise NotSupportedError(
            f"keras.mixed_precision.set_global_policy({chosen.name!r}): bigmodel keeps weights in "
            f"float32; use 'mixed_{chosen.name}' (compute in {chosen.compute_dtype}, float32 weights)")
    _global = chosen


def dtype_policy() -> DTypePolicy:
    """The global policy (``global_policy``)."""
    return _global


set_global_policy = set_dtype_policy
global_policy = dtype_policy


def engine_precision(policy: DTypePolicy) -> str:
    """The engine's ``precision`` for ``policy``.

    Raises:
        NotSupportedError: ``mixed_float16`` without CUDA (the engine's fp16 autocast and
            GradScaler are CUDA-only; ``mixed_bfloat16`` runs everywhere); a 16-bit-weight policy.
    """
    import torch

    if policy.name not in _PRECISION:
        raise NotSupportedError(f"dtype policy {policy.name!r} stores weights in "
                                f"{policy.variable_dtype}; bigmodel keeps weights in float32")
    if policy.name == "mixed_float16" and not torch.cuda.is_available():
        raise NotSupportedError(
            "dtype policy 'mixed_float16' needs a CUDA device: float16 autocast with loss scaling "
            "(GradScaler) is CUDA-only in bigmodel's engine; use 'mixed_bfloat16' on the CPU")
    return _PRECISION[policy.name]


__all__ = ["DTypePolicy", "Policy", "dtype_policy", "global_policy", "set_dtype_policy",
           "set_global_policy"]


def __getattr__(name: str) -> object:
    raise unsupported_attribute("keras.mixed_precision", name)
