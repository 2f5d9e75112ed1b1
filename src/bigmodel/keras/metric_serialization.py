"""The config of a metric object and its rebuilding, for ``keras.metrics.serialize`` /
``deserialize`` (Keras 3's dict: ``module``, ``class_name``, ``config``, ``registered_name``).

A metric with ``get_config`` gives its own; the engine's metrics (``AUC``, ``Precision`` ...) are
described by the constructor arguments they keep as attributes of the same name.
"""

from __future__ import annotations

import inspect
from typing import Any

from bigmodel.errors import ConfigError

__all__ = ["metric_config", "metric_from_config"]


def _parameters(cls: type) -> dict[str, inspect.Parameter]:
    params = inspect.signature(cls.__init__).parameters
    return {name: p for name, p in params.items() if name != "self"
            and p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)}


def metric_config(metric: Any) -> dict[str, Any]:
    """``metric``'s constructor arguments as Keras writes them (``name`` and ``dtype`` first)."""
    if hasattr(metric, "get_config"):
        return dict(metric.get_config())
    config: dict[str, Any] = {"name": metric.name, "dtype": "float32"}
    for name in _parameters(type(metric)):
        if name not in config and name in vars(metric):
            value = vars(metric)[name]
            if value is None or isinstance(value, (bool, int, float, str, list, tuple)):
                config[name] = list(value) if isinstance(value, tuple) else value
    return config


def metric_from_config(cls: type, config: dict[str, Any]) -> Any:
    """``cls(**config)``. ``dtype`` and options bigmodel's class lacks are left out when they hold
    Keras's "off" value (None or False, e.g. ``AUC(multi_label=False)`` in every Keras config).

    Raises:
        ConfigError: an option the class does not take, set to something else.
    """
    params = _parameters(cls)
    unknown = {k: v for k, v in config.items() if k not in params}
    asked = sorted(k for k, v in unknown.items() if k != "dtype" and v is not None
                   and v is not False)
    if asked:
        raise ConfigError(f"keras.metrics.deserialize: {cls.__name__} does not support "
                          f"{', '.join(f'{k}={unknown[k]!r}' for k in asked)} in bigmodel; it "
                          f"takes {sorted(params)}")
    return cls(**{k: v for k, v in config.items() if k in params})
