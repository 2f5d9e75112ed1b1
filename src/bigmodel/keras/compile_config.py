"""A model's ``compile()`` settings as Keras 3 writes them (``compile_config`` in ``.keras``
archives; bigmodel's ``.safetensors`` model files hold the same JSON), and back.

The config keeps the structure of each argument: a loss or a list/dict of losses (one per output),
``loss_weights``, metrics and weighted metrics as names or ``{"module", "class_name", "config"}``
objects, nested per output as given. Reading one rebuilds the objects by class name from
bigmodel's ``keras.optimizers`` / ``keras.losses`` / ``keras.metrics`` or the registered custom
objects; nothing in the file is executed.
"""

from __future__ import annotations

import inspect
import warnings
from typing import Any

from bigmodel.engine.metric_base import Metric as EngineMetric
from bigmodel.errors import BigModelError, UnknownNameError
from bigmodel.keras import losses as losses_mod
from bigmodel.keras import metrics as metrics_mod
from bigmodel.keras import optimizers as optimizers_mod
from bigmodel.keras.object_registry import get_registered_object

__all__ = ["compile_config", "keras_compile_config", "restore_compile"]

_JSON_SCALARS = (str, int, float, bool, type(None))


def _tree(value: Any, leaf: Any) -> Any:
    """``leaf`` applied to each item of a (nested) list/tuple/dict; ``None`` stays."""
    if value is None:
        return None
    if isinstance(value, (list, tuple)):
        return [_tree(item, leaf) for item in value]
    if isinstance(value, dict) and "class_name" not in value:  # per output, by name
        return {key: _tree(item, leaf) for key, item in value.items()}
    return leaf(value)  # one object (a serialized one is a dict with "class_name")


def _object(module: str, class_name: str, config: dict[str, Any]) -> dict[str, Any]:
    return {"module": module, "class_name": class_name, "config": config, "registered_name": None}


def _loss_spec(loss: Any) -> Any:
    if isinstance(loss, str):
        return loss
    if not isinstance(loss, losses_mod.Loss):
        loss = losses_mod.get(loss)
    spec = losses_mod.serialize(loss)
    if isinstance(spec, str):  # a function loss: Keras writes its name
        return spec
    # Keras's regression losses take no from_logits: unset flags are left out
    config = {k: v for k, v in spec["config"].items() if v is not None and v is not False}
    return _object("keras.losses", spec["class_name"], config)


def _metric_spec(metric: Any) -> Any:
    """A metric name as given, or a metric object as its class and constructor arguments."""
    if isinstance(metric, str):
        return metric
    if isinstance(metric, type):
        metric = metric()
    if not isinstance(metric, EngineMetric):
        return getattr(metric, "__name__", None)  # a function: Keras writes its name
    config: dict[str, Any] = {"name": metric.name}
    for name in inspect.signature(type(metric).__init__).parameters:
        if name in ("self", "name", "dtype", "args", "kwargs"):
            continue
        value = getattr(metric, name, getattr(metric, f"_{name}", inspect.Parameter.empty))
        if isinstance(value, _JSON_SCALARS) or (isinstance(value, (list, tuple)) and all(
                isinstance(v, _JSON_SCALARS) for v in value)):
            config[name] = list(value) if isinstance(value, tuple) else value
    return _object("keras.metrics", type(metric).__name__, config)


def compile_config(optimizer: Any, loss: Any, loss_weights: Any, metrics: Any,
                   weighted_metrics: Any) -> dict[str, Any]:
    """The JSON-able record of a ``compile()`` call (Keras 3's ``compile_config`` fields).

    Args:
        optimizer: the optimizer the model got (a bigmodel Keras optimizer or a torch one).
        loss, loss_weights, metrics, weighted_metrics: as passed to ``compile``.
    """
    spec = optimizers_mod.serialize(optimizer)
    return {
        "optimizer": None if spec is None else _object("keras.optimizers", spec["class_name"],
                                                       spec["config"]),
        "loss": _tree(loss, _loss_spec),
        "loss_weights": _tree(loss_weights, float),
        "metrics": _tree(metrics, _metric_spec),
        "weighted_metrics": _tree(weighted_metrics, _metric_spec),
    }


def keras_compile_config(config: dict[str, Any] | None) -> dict[str, Any] | None:
    """``config`` with the fields Keras 3 also writes (no effect here)."""
    if not config:
        return None
    return {**config, "run_eagerly": False, "steps_per_execution": 1, "jit_compile": False}


def _clean(value: dict[str, Any]) -> dict[str, Any]:
    """Keras 3 config keys bigmodel's constructors do not take, when they hold their defaults."""
    inner = {k: v for k, v in (value.get("config") or {}).items() if v is not None}
    if not inner.get("use_ema", False):
        for key in ("use_ema", "ema_momentum", "ema_overwrite_frequency"):
            inner.pop(key, None)
    if inner.get("reduction") in (None, "sum_over_batch_size"):
        inner.pop("reduction", None)
    inner.pop("dtype", None)
    return {"class_name": value.get("class_name"), "config": inner}


def _metric(spec: Any, custom_objects: Any) -> Any:
    if not isinstance(spec, dict):
        return spec
    name = spec.get("class_name", "")
    cls = getattr(metrics_mod, name, None)
    if not (isinstance(cls, type) and issubclass(cls, EngineMetric)):
        cls = get_registered_object(spec.get("registered_name") or name, custom_objects)
    if cls is None:
        raise UnknownNameError(f"unknown metric class {name!r}")
    accepted = inspect.signature(cls.__init__).parameters
    config = {k: v for k, v in (spec.get("config") or {}).items()
              if k in accepted and k != "self"}
    return cls(**config)


def _loss(spec: Any, custom_objects: Any) -> Any:
    if isinstance(spec, dict):
        cls = getattr(losses_mod, spec.get("class_name", ""), None)
        if not (isinstance(cls, type) and issubclass(cls, losses_mod.Loss)):
            custom = get_registered_object(spec.get("registered_name") or spec.get("class_name"),
                                           custom_objects)
            if custom is not None:
                return custom.from_config(spec.get("config") or {}) \
                    if hasattr(custom, "from_config") else custom(**(spec.get("config") or {}))
        return losses_mod.deserialize(_clean(spec))
    if isinstance(spec, str):
        custom = get_registered_object(spec, custom_objects)
        return custom if custom is not None and callable(custom) else losses_mod.get(spec)
    return spec


def restore_compile(model: Any, config: dict[str, Any], where: Any,
                    custom_objects: Any = None) -> None:
    """``model.compile(...)`` with the settings of ``config`` (see :func:`compile_config`).

    A setting that cannot be rebuilt (an unknown class) leaves the model loaded but not compiled,
    with a warning that says why, as a Keras file from another library version might.
    """
    try:
        optimizer = config.get("optimizer")
        if isinstance(optimizer, dict):
            optimizer = optimizers_mod.deserialize(_clean(optimizer))
        loss = _tree(config.get("loss"), lambda spec: _loss(spec, custom_objects))
        metrics = _tree(config.get("metrics"), lambda spec: _metric(spec, custom_objects))
        weighted = _tree(config.get("weighted_metrics"),
                         lambda spec: _metric(spec, custom_objects))
        model.compile(optimizer=optimizer or "rmsprop", loss=loss,
                      loss_weights=config.get("loss_weights"), metrics=metrics or None,
                      weighted_metrics=weighted or None)
    except (BigModelError, TypeError, ValueError) as exc:
        warnings.warn(f"'{where}': the model was loaded but its compile() settings could not "
                      f"be restored ({exc}); call compile() yourself", stacklevel=3)
