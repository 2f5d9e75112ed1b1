"""Key paths of a recipe schema (pydantic models): validation errors that name the key and suggest
the closest one, and ``--set key.path=value`` overrides checked against the schema before
validation. Shared by the training recipe (``bigmodel.recipes.schema``) and the fine-tuning recipe
(``bigmodel.recipes.finetune_schema``); also the recipe YAML loader."""

from __future__ import annotations

import difflib
import re
import types
import typing
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ValidationError

from bigmodel.errors import ConfigError
from bigmodel.utils.loading import parse_yaml as bounded_parse_yaml
from bigmodel.utils.loading import read_yaml


class _Loader(yaml.SafeLoader):
    """Safe YAML loader that also reads ``1e-3`` as a float (YAML 1.1 requires ``1.0e-3``)."""


_Loader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(r"^[-+]?(?:[0-9][0-9_]*)(?:\.[0-9_]*)?[eE][-+]?[0-9]+$"),
    list("-+0123456789"),
)


def parse_yaml(text: str, source: str = "<string>") -> Any:
    """Parse YAML with the recipe loader, bounded (size, alias expansion, depth: an alias bomb fails
    at once); a syntax error or a bound is a :class:`ConfigError` naming ``source``."""
    return bounded_parse_yaml(text, source, loader=_Loader, error=ConfigError)


def read_yaml_file(path: Path) -> Any:
    """The parsed recipe YAML file ``path``, refused unread past the size bound (:class:`ConfigError`)."""
    return read_yaml(path, "Recipe", loader=_Loader, error=ConfigError)


def suggest(name: str, choices: typing.Iterable[str], prefix: str = "") -> str:
    close = difflib.get_close_matches(str(name), list(choices), n=1)
    return f" (did you mean '{prefix}{close[0]}'?)" if close else ""


def _key_path(loc: tuple) -> str:
    return ".".join(str(part) for part in loc) or "<recipe>"


def _unwrap(annotation: Any) -> Any:
    """``X | None`` -> ``X`` (the only unions the schema uses)."""
    origin = typing.get_origin(annotation)
    if origin in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(annotation) if a is not type(None)]
        if len(args) == 1:
            return args[0]
    return annotation


def _section_at(root: type[BaseModel], loc: tuple) -> type[BaseModel] | None:
    """The schema class under ``root`` that owns the keys at ``loc`` (list indices skipped)."""
    current: Any = root
    for part in loc:
        if isinstance(part, int):
            continue
        if not (isinstance(current, type) and issubclass(current, BaseModel)):
            return None
        field = current.model_fields.get(str(part))
        if field is None:
            return None
        current = _unwrap(field.annotation)
        if typing.get_origin(current) is list:
            current = typing.get_args(current)[0]
    return current if isinstance(current, type) and issubclass(current, BaseModel) else None


def _format_error(error: dict, source: str, root: type[BaseModel]) -> str:
    loc = tuple(error.get("loc", ()))
    path = _key_path(loc)
    kind = error.get("type", "")
    if kind == "extra_forbidden":
        section = _section_at(root, loc[:-1])
        known = list(section.model_fields) if section else []
        where = _key_path(loc[:-1]) if loc[:-1] else "the recipe"
        prefix = f"{_key_path(loc[:-1])}." if loc[:-1] else ""
        hint = (f"{suggest(str(loc[-1]), known, prefix)}; keys of {where}: {', '.join(known)}"
                if known else "")
        return f"{source}: unknown key '{path}'{hint}"
    if kind == "missing":
        return f"{source}: missing required key '{path}'"
    message = str(error.get("msg", "invalid value"))
    message = message.removeprefix("Value error, ")
    if kind.endswith("_type") or kind.startswith(("int_", "float_", "bool_", "literal_", "string_",
                                                   "greater_", "less_", "too_")):
        return f"{source}: {path}: {message}; received {error.get('input')!r}"
    if not loc or message.startswith(f"{path}."):  # the validator already named the key path
        return f"{source}: {message}"
    return f"{source}: {path}: {message}"


def validate_schema(schema: type[BaseModel], raw: Any, source: str) -> Any:
    """``schema.model_validate(raw)``; errors become one :class:`ConfigError`, a line per problem,
    each naming its key path (unknown keys with the closest known one)."""
    try:
        return schema.model_validate(raw)
    except ValidationError as exc:
        raise ConfigError("\n".join(_format_error(err, source, schema)
                                    for err in exc.errors())) from None


def parse_override(text: str) -> tuple[list[str], Any]:
    """``"train.epochs=3"`` -> ``(["train", "epochs"], 3)``; the value is parsed as YAML."""
    key, sep, value = text.partition("=")
    key = key.strip()
    if not sep or not key or any(not part for part in key.split(".")):
        raise ConfigError(f"--set {text!r}: expected KEY.PATH=VALUE, e.g. train.epochs=3")
    return key.split("."), (parse_yaml(value, f"--set {key}") if value.strip() else None)


def apply_schema_override(raw: dict, schema: type[BaseModel], text: str) -> None:
    """Apply one ``--set`` override to a raw mapping, checking the key path against ``schema``.

    Raises:
        ConfigError: the key path names no key (names it, suggests the closest), indexes a list
            out of range, or descends into a value that is not a section.
    """
    parts, value = parse_override(text)
    try:
        _apply(raw, schema, parts, value, [])
    except ConfigError as exc:
        raise ConfigError(f"--set {text}: {exc}") from None


def _child_dict(node: dict, key: str) -> dict:
    child = node.get(key)
    if not isinstance(child, dict):  # absent or null optional section: start an empty one
        child = {}
        node[key] = child
    return child


def _apply(node: dict, schema: type[BaseModel], parts: list[str], value: Any,
           prefix: list[str]) -> None:
    part = parts[0]
    path = ".".join([*prefix, part])
    fields = schema.model_fields
    if part not in fields:
        where = ".".join(prefix) or "the recipe"
        raise ConfigError(f"unknown key '{path}'{suggest(part, fields, path[: -len(part)])}; "
                          f"keys of {where}: "
                          f"{', '.join(fields)}")
    if len(parts) == 1:
        node[part] = value
        return
    annotation = _unwrap(fields[part].annotation)
    origin = typing.get_origin(annotation)
    if origin is dict or annotation is dict:  # free-form (model.overrides, *.args): checked later
        child = _child_dict(node, part)
        for key in parts[1:-1]:
            child = _child_dict(child, key)
        child[parts[-1]] = value
    elif origin is list:
        items = node.get(part) if isinstance(node.get(part), list) else []
        index = parts[1]
        if not index.isdigit() or int(index) >= len(items):
            raise ConfigError(f"'{path}' has {len(items)} item(s); '{index}' is not an index of it")
        if len(parts) == 2:
            items[int(index)] = value
            return
        if not isinstance(items[int(index)], dict):
            items[int(index)] = {}
        _apply(items[int(index)], typing.get_args(annotation)[0], parts[2:], value,
               [*prefix, part, index])
    elif isinstance(annotation, type) and issubclass(annotation, BaseModel):
        _apply(_child_dict(node, part), annotation, parts[1:], value, [*prefix, part])
    else:
        raise ConfigError(f"'{path}' is a value, not a section")


__all__ = ["apply_schema_override", "parse_override", "parse_yaml", "read_yaml_file", "suggest",
           "validate_schema"]
