"""Model registry: named factory functions, one ``create_model``, and JSON + safetensors model files.

Register a factory with ``@register_model("name")``; its keyword arguments (with defaults) are the
model's configuration. ``create_model(name, **overrides)`` builds it; overrides are checked against
the factory's signature and annotations, so a typo or a wrong type is a :class:`ConfigError` naming
the argument. Every module in ``bigmodel.models`` is imported on first use, so models defined in
sibling files appear in :func:`list_models` without extra wiring.

A model is saved as two files in a directory and rebuilt from them, never from a pickle (written
and read by :mod:`bigmodel.models.model_files`, the one model-file reader/writer)::

    model.json          {"format": "bigmodel-model", "name": "seed-cnn", "config": {...}, ...}
    model.safetensors   the state dict (shared tensors stored once)
"""

from __future__ import annotations

import fnmatch
import importlib
import inspect
import os
import pkgutil
import typing
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from bigmodel.errors import CheckpointError, ConfigError, UnknownNameError
from bigmodel.models.model_files import (
    FileFormat,
    read_model_document,
    read_weights,
    write_model_files,
)
from bigmodel.utils.loading import check_shapes, meta_shapes

MODEL_JSON = "model.json"
MODEL_WEIGHTS = "model.safetensors"
FORMAT_NAME = "bigmodel-model"
FORMAT_VERSION = 1
#: A model of the registry: ``name`` + ``config`` rebuild it, the weights fill it.
MODEL_FILE = FileFormat(FORMAT_NAME, FORMAT_VERSION, "a bigmodel model file", json_name=MODEL_JSON,
                        weights_name=MODEL_WEIGHTS)


@dataclass(frozen=True)
class _Entry:
    name: str
    fn: Callable[..., nn.Module]
    module: str
    example_input: Callable[[int], Any] | None = None


_REGISTRY: dict[str, _Entry] = {}
_IMPORT_ERRORS: dict[str, str] = {}
_discovered = False


def register_model(name: str | None = None, *, example_input: Callable[[int], Any] | None = None,
                   ) -> Callable[[Callable[..., nn.Module]], Callable[..., nn.Module]]:
    """Decorator registering a factory function under ``name`` (default: the function's name).

    The factory must take keyword arguments only, each with a default; those arguments are the
    model's configuration as saved in ``model.json``.

    Args:
        name: the registry name.
        example_input: ``batch_size -> input`` valid for the model built with its defaults (e.g.
            ``lambda b: torch.rand(b, 1, 28, 28)``); the generic test over every registered model
            runs forward/backward on it.

    Raises:
        ConfigError: another function is already registered under that name, or an argument has
            no default.
    """

    def decorator(fn: Callable[..., nn.Module]) -> Callable[..., nn.Module]:
        key = name or fn.__name__
        existing = _REGISTRY.get(key)
        if existing is not None and (existing.module, existing.fn.__qualname__) != (
                fn.__module__, fn.__qualname__):
            raise ConfigError(f"Model name '{key}' is already registered by "
                              f"{existing.module}.{existing.fn.__qualname__}")
        for param in inspect.signature(fn).parameters.values():
            if param.kind in (param.VAR_POSITIONAL, param.VAR_KEYWORD) or param.default is param.empty:
                raise ConfigError(f"Model factory '{key}': argument '{param.name}' needs a default "
                                  "(factories take keyword arguments with defaults only)")
        _REGISTRY[key] = _Entry(key, fn, fn.__module__, example_input)
        return fn

    return decorator


def _discover() -> None:
    """Import every module of ``bigmodel.models`` once so their ``@register_model`` calls run."""
    global _discovered
    if _discovered:
        return
    _discovered = True
    # The siblings are found by this file's folder, not by importing the package: the package
    # imports this module, and a registry that imports its package back is an import circle.
    for info in pkgutil.iter_modules([str(Path(__file__).parent)]):
        module_name = f"{__package__}.{info.name}"
        if info.name == "registry" or info.name.startswith("_"):
            continue
        try:
            importlib.import_module(module_name)
        except Exception as exc:  # a broken sibling must not hide the models that do work
            _IMPORT_ERRORS[module_name] = f"{type(exc).__name__}: {exc}"


def list_models(pattern: str | None = None) -> list[str]:
    """Sorted names of registered models, optionally filtered by a glob ``pattern`` (``"*cnn*"``)."""
    _discover()
    names = sorted(_REGISTRY)
    return [n for n in names if fnmatch.fnmatch(n, pattern)] if pattern else names


def is_model(name: str) -> bool:
    _discover()
    return name in _REGISTRY


def _entry(name: str) -> _Entry:
    _discover()
    try:
        return _REGISTRY[name]
    except (KeyError, TypeError):
        known = ", ".join(sorted(_REGISTRY)) or "(none)"
        message = f"Unknown model '{name}'. Known models: {known}"
        if _IMPORT_ERRORS:
            failed = "; ".join(f"{mod} ({err})" for mod, err in sorted(_IMPORT_ERRORS.items()))
            message += f". Model modules that failed to import: {failed}"
        raise UnknownNameError(message) from None


def example_input(name: str, batch_size: int = 2) -> Any | None:
    """An input batch for model ``name`` built with its defaults, or None when none was registered."""
    make = _entry(name).example_input
    return None if make is None else make(batch_size)


def model_defaults(name: str) -> dict[str, Any]:
    """The factory's arguments and their defaults: every key ``create_model`` accepts."""
    fn = _entry(name).fn
    return {p.name: p.default for p in inspect.signature(fn).parameters.values()}


def check_overrides(name: str, overrides: dict[str, Any]) -> dict[str, Any]:
    """Validate ``overrides`` against model ``name``'s factory; returns them (types coerced).

    Raises:
        UnknownNameError: ``name`` is not registered.
        ConfigError: an override is not an argument of the factory (names it and lists the
            accepted ones), or its value does not match the argument's annotation.
    """
    from pydantic import TypeAdapter, ValidationError

    entry = _entry(name)
    defaults = model_defaults(name)
    unknown = [key for key in overrides if key not in defaults]
    if unknown:
        raise ConfigError(f"Model '{name}' has no argument {', '.join(repr(k) for k in unknown)}. "
                          f"Accepted arguments: {', '.join(defaults)}")
    try:
        hints = typing.get_type_hints(entry.fn)
    except Exception:  # unresolvable annotations: fall back to the factory's own checks
        hints = {}
    checked = {}
    for key, value in overrides.items():
        hint = hints.get(key)
        if hint is None:
            checked[key] = value
            continue
        try:
            checked[key] = TypeAdapter(hint).validate_python(value)
        except ValidationError as exc:
            reason = exc.errors()[0].get("msg", str(exc))
            raise ConfigError(f"Model '{name}': argument '{key}' expects {_type_name(hint)}; "
                              f"received {value!r} ({reason})") from None
    return checked


def _type_name(hint: Any) -> str:
    return getattr(hint, "__name__", None) or str(hint).replace("typing.", "")


def create_model(name: str, **overrides: Any) -> nn.Module:
    """Build registered model ``name`` with keyword ``overrides`` of its defaults.

    Raises:
        UnknownNameError: no model of that name (the message lists the known names).
        ConfigError: an unknown override or a value of the wrong type (names the argument).
    """
    checked = check_overrides(name, overrides)
    model = _entry(name).fn(**checked)
    config = model_defaults(name)
    config.update(checked)
    # Remembered so save_model can write (name, config) without the caller repeating them.
    model._registry_name = name  # type: ignore[attr-defined]
    model._registry_config = _jsonable(config)  # type: ignore[attr-defined]
    return model


def model_name_and_config(model: nn.Module) -> tuple[str, dict[str, Any]]:
    """``(registry name, config)`` of a model built by :func:`create_model`.

    The config comes from ``model.get_config()`` when the model has one (so changes such as
    ``reset_classifier`` are reflected), otherwise from the arguments it was created with.

    Raises:
        ConfigError: the model was not built through the registry.
    """
    name = getattr(model, "_registry_name", None)
    if name is None:
        raise ConfigError(f"{type(model).__name__} was not built by create_model(); cannot record "
                          "a registry name to rebuild it from")
    config = dict(model._registry_config)  # type: ignore[attr-defined]
    if callable(getattr(model, "get_config", None)):
        accepted = model_defaults(name)
        config.update({k: v for k, v in model.get_config().items() if k in accepted})
    return name, _jsonable(config)


def _jsonable(value: Any) -> Any:
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    return value


# -- model files --------------------------------------------------------------------------------


def _dedupe_state(state: dict[str, torch.Tensor]) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    """Contiguous CPU copies of each tensor, storing tensors that share memory (tied weights) once."""
    tensors: dict[str, torch.Tensor] = {}
    aliases: dict[str, str] = {}
    seen: dict[tuple, str] = {}
    for key in sorted(state):
        tensor = state[key].detach()
        ident = (tensor.device, tensor.untyped_storage().data_ptr(), tensor.storage_offset(),
                 tuple(tensor.shape), tuple(tensor.stride()), tensor.dtype)
        if tensor.numel() > 0 and ident in seen:
            aliases[key] = seen[ident]
            continue
        seen[ident] = key
        tensors[key] = tensor.to("cpu").contiguous()  # channels_last weights are not contiguous
    return tensors, aliases


def save_model(model: nn.Module, directory: str | os.PathLike,
               metadata: dict[str, Any] | None = None) -> Path:
    """Write ``model.safetensors`` then ``model.json`` into ``directory`` (each atomically).

    Args:
        model: a module built by :func:`create_model`.
        directory: created if missing.
        metadata: extra JSON-serializable facts kept in ``model.json`` (class names, input spec).

    Returns:
        The path of ``model.json``.
    """
    from bigmodel import __version__

    name, config = model_name_and_config(model)
    tensors, aliases = _dedupe_state(model.state_dict())
    document = {"name": name, "config": config, "aliases": aliases,
                "bigmodel_version": __version__, "metadata": metadata or {}}
    return write_model_files(directory, MODEL_FILE, document, tensors)


def read_model_spec(directory: str | os.PathLike) -> dict[str, Any]:
    """The parsed ``model.json`` of a model directory, checked for the expected keys.

    Raises:
        CheckpointError: the file is missing, not JSON, or not a bigmodel model file.
    """
    spec, _ = read_model_document(directory, MODEL_FILE)
    if not isinstance(spec.get("name"), str) or not isinstance(spec.get("config"), dict):
        raise CheckpointError(f"{Path(directory) / MODEL_JSON} lacks a model 'name' (str) and "
                              "'config' (object)")
    return spec


def model_aliases(spec: dict[str, Any], directory: str | os.PathLike) -> dict[str, str]:
    """The ``aliases`` of a model document (tensors stored once under another key), checked.

    Raises:
        CheckpointError: ``aliases`` is not a mapping of names to names.
    """
    aliases = spec.get("aliases") or {}
    if not isinstance(aliases, dict) or not all(isinstance(v, str) for v in aliases.values()):
        raise CheckpointError(f"{Path(directory) / MODEL_JSON}: 'aliases' must map names to names; "
                              f"received {aliases!r}")
    return aliases


def build_and_load(build: Callable[[], nn.Module], directory: str | os.PathLike,
                   spec: dict[str, Any], what: str) -> nn.Module:
    """``build()`` with the weights of a model directory loaded strictly, the weights' shapes
    compared with a build on the meta device first (a config declaring ``num_classes=6000000``
    over a small file is refused before a byte is allocated for it).

    Args:
        build: makes the model the document describes.
        spec: the document (:func:`read_model_spec`).
        what: names the model in messages.

    Raises:
        CheckpointError: the weights are refused (confinement, pickle, checksum; see
            :func:`~bigmodel.models.model_files.read_weights`) or do not fit ``what``.
    """
    aliases = spec.get("aliases") or {}
    if not isinstance(aliases, dict) or not all(isinstance(v, str) for v in aliases.values()):
        raise CheckpointError(f"{Path(directory) / MODEL_JSON}: 'aliases' must map names to names; "
                              f"received {aliases!r}")

    def check(header: Any) -> None:
        check_shapes(meta_shapes(build, what), header, what, aliases=aliases)

    state = read_weights(directory, spec, MODEL_FILE, check=check)
    model = build()
    for alias, source in aliases.items():
        if source in state:
            state[alias] = state[source]
    try:
        model.load_state_dict(state, strict=True)
    except RuntimeError as exc:  # e.g. a dtype the parameter cannot take
        weights = spec.get("weights", MODEL_WEIGHTS)
        raise CheckpointError(f"{Path(directory) / str(weights)} does not fit {what}: "
                              f"{str(exc).splitlines()[0]}") from None
    return model


def load_model(directory: str | os.PathLike, device: str | torch.device = "cpu") -> nn.Module:
    """Rebuild a model from ``model.json`` + ``model.safetensors`` (no pickle involved).

    Returns:
        The model in eval mode on ``device``.

    Raises:
        CheckpointError: a file is missing, corrupt, pickled, modified since saving, or its tensors
            do not fit the model the config describes.
        UnknownNameError / ConfigError: the recorded model name or config is not accepted.
    """
    spec = read_model_spec(directory)
    what = f"model '{spec['name']}' with config {spec['config']}"
    model = build_and_load(lambda: create_model(spec["name"], **spec["config"]), directory, spec, what)
    return model.to(device).eval()
