"""``keras.dtype_policies``: look up, serialize and deserialize dtype policies, as Keras 3 does.

``DTypePolicy`` is :class:`bigmodel.keras.mixed_precision.DTypePolicy` (the same object, as in
Keras); ``FloatDTypePolicy`` is Keras's alias subclass of it. The quantized policies
(``QuantizedDTypePolicy``, ``Int4DTypePolicy``, ``GPTQDTypePolicy``, ...) and ``DTypePolicyMap``
are not supported: bigmodel quantizes with ``bigmodel.compress`` (int8), not with dtype policies.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from bigmodel.errors import ConfigError, NotSupportedError
from bigmodel.keras import mixed_precision
from bigmodel.keras.mixed_precision import DTypePolicy
from bigmodel.keras.unsupported import unsupported_attribute

__all__ = ["DTypePolicy", "FloatDTypePolicy", "deserialize", "get", "serialize"]

# the prefixes of Keras's quantized policy names ("int8_from_float32", "gptq/4/128_from_float32")
_QUANTIZATION_MODES = ("int8", "float8", "int4", "gptq", "awq")
_QUANTIZED_HINT = "quantized dtype policies: use bigmodel's int8 quantization (bigmodel.compress)"


class FloatDTypePolicy(DTypePolicy):
    """Keras's alias of :class:`DTypePolicy` (kept by Keras for older saved configs)."""


_CLASSES = {"DTypePolicy": DTypePolicy, "FloatDTypePolicy": FloatDTypePolicy}


def serialize(dtype_policy: DTypePolicy) -> dict[str, Any]:
    """Keras's config dict of a policy:
    ``{"module": "keras", "class_name": "DTypePolicy", "config": {"name": ...},
    "registered_name": None}``.

    Raises:
        ConfigError: ``dtype_policy`` is not a policy.
    """
    if not isinstance(dtype_policy, DTypePolicy):
        raise ConfigError(f"keras.dtype_policies.serialize: expected a DTypePolicy; received "
                          f"{dtype_policy!r} ({type(dtype_policy).__name__})")
    return {"module": "keras", "class_name": type(dtype_policy).__name__,
            "config": dtype_policy.get_config(), "registered_name": None}


def deserialize(config: dict[str, Any], custom_objects: dict[str, Any] | None = None
                ) -> DTypePolicy:
    """The policy a :func:`serialize` dict (or Keras's) describes.

    Args:
        config: ``{"class_name": ..., "config": {"name": ...}}`` (``module`` and
            ``registered_name`` are ignored).
        custom_objects: classes by name, looked up before Keras's own.

    Raises:
        NotSupportedError: a quantized policy or ``DTypePolicyMap``.
        ConfigError: not such a dict, an unknown class or policy name.
    """
    if not isinstance(config, dict) or "class_name" not in config:
        raise ConfigError(f"keras.dtype_policies.deserialize: expected a dict with 'class_name' "
                          f"and 'config'; received {config!r}")
    name = config["class_name"]
    classes = {**_CLASSES, **(custom_objects or {})}
    if name not in classes:
        if name.endswith("DTypePolicy") or name == "DTypePolicyMap":
            raise NotSupportedError(f"keras.dtype_policies.deserialize: {name} is not supported "
                                    f"by bigmodel ({_QUANTIZED_HINT})")
        raise ConfigError(f"keras.dtype_policies.deserialize: unknown class_name {name!r}; "
                          f"known: {sorted(classes)}")
    return classes[name](**(config.get("config") or {}))


def get(identifier: Any) -> DTypePolicy:
    """A policy from ``None`` (the global policy), a policy, its name, a serialized dict, or a
    float dtype (``torch.bfloat16``, ``np.float32``: the policy of that name).

    Raises:
        NotSupportedError: a quantized policy name (``"int8_from_float32"``).
        ConfigError: anything else that names no policy (Keras raises ValueError; ConfigError
            is one).
    """
    if identifier is None:
        return mixed_precision.dtype_policy()
    if isinstance(identifier, DTypePolicy):
        return identifier
    if isinstance(identifier, dict):
        return deserialize(identifier)
    if isinstance(identifier, str):
        if identifier.startswith(_QUANTIZATION_MODES):
            raise NotSupportedError(f"keras.dtype_policies.get({identifier!r}): "
                                    f"{_QUANTIZED_HINT}")
        return DTypePolicy(identifier)
    if isinstance(identifier, torch.dtype):
        return DTypePolicy(str(identifier).removeprefix("torch."))
    try:
        name = np.dtype(identifier).name
    except TypeError:
        name = None
    if name is None or not isinstance(identifier, (type, np.dtype)):
        raise ConfigError("Cannot interpret `dtype` argument. Expected a string or an instance "
                          f"of DTypePolicy. Received: dtype={identifier!r}")
    return DTypePolicy(name)


def __getattr__(name: str) -> object:
    raise unsupported_attribute("keras.dtype_policies", name, _QUANTIZED_HINT)
