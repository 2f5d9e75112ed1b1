"""The reference page of every recipe key (``docs/recipes.md``), generated from the schema.

    python -m bigmodel.recipes.reference > docs/recipes.md

Each key of :class:`~bigmodel.recipes.schema.Recipe` (its nested sections in
:mod:`bigmodel.recipes.sections`) and the keys a fine-tuning recipe
(:class:`~bigmodel.recipes.finetune_schema.FinetuneRecipe`) adds is listed with its dotted path,
type (with bounds), default and meaning, taken from the pydantic fields themselves (``description=``)
and the section classes' docstrings, so the page cannot drift from what the loader accepts. A test
(``tests/test_recipe_reference.py``) checks that the committed page equals this text.
"""

from __future__ import annotations

import inspect
import re
import types
import typing
from collections.abc import Iterator
from typing import Any, Literal

import annotated_types
from pydantic import BaseModel
from pydantic.fields import FieldInfo
from pydantic_core import PydanticUndefined

from bigmodel.recipes.finetune_schema import FinetuneRecipe
from bigmodel.recipes.schema import Recipe

__all__ = ["field_paths", "recipe_reference_markdown", "schema_fields"]

_COMMAND = "python -m bigmodel.recipes.reference > docs/recipes.md"
_BOUNDS = ((annotated_types.Ge, "ge", "≥"), (annotated_types.Gt, "gt", ">"),
           (annotated_types.Le, "le", "≤"), (annotated_types.Lt, "lt", "<"),
           (annotated_types.MinLen, "min_length", "at least"))


def _section(annotation: Any) -> type[BaseModel] | None:
    """The section class a field holds (directly, optionally or as list items), else None."""
    if inspect.isclass(annotation) and issubclass(annotation, BaseModel):
        return annotation
    for arg in typing.get_args(annotation):
        found = _section(arg)
        if found is not None:
            return found
    return None


def _is_list(annotation: Any) -> bool:
    if typing.get_origin(annotation) is list:
        return True
    return any(_is_list(a) for a in typing.get_args(annotation)
               if typing.get_origin(annotation) in (typing.Union, types.UnionType))


def _type(annotation: Any) -> str:
    """A YAML reader's name for ``annotation``: ``int``, ``list[str]``, ``"a" | "b"``, ``null``."""
    origin, args = typing.get_origin(annotation), typing.get_args(annotation)
    if annotation is type(None):
        return "null"
    if annotation is Any:
        return "any"
    if origin is Literal:
        return " | ".join(f'"{a}"' for a in args)
    if origin in (typing.Union, types.UnionType):
        return " | ".join(_type(a) for a in args)
    if origin is list:
        return f"list[{_type(args[0])}]"
    if origin is dict:
        return f"mapping[{_type(args[0])}, {_type(args[1])}]"
    if inspect.isclass(annotation) and issubclass(annotation, BaseModel):
        return "section"
    return getattr(annotation, "__name__", str(annotation))


def _bounds(info: FieldInfo) -> str:
    parts = []
    for item in info.metadata:
        for cls, attribute, sign in _BOUNDS:
            if isinstance(item, cls):
                parts.append(f"{sign} {getattr(item, attribute)}")
    return ", ".join(parts)


def _yaml(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return f'"{value}"'
    if isinstance(value, BaseModel):
        return "(section defaults)"
    if isinstance(value, (list, dict)) and not value:
        return "[]" if isinstance(value, list) else "{}"
    return repr(value)


def _default(info: FieldInfo) -> str:
    if info.default_factory is not None:
        return _yaml(info.default_factory())
    if info.default is PydanticUndefined:
        return "required"
    return _yaml(info.default)


def _rows(model: type[BaseModel], prefix: str, only: set[str] | None = None
          ) -> Iterator[tuple[str, FieldInfo, type[BaseModel] | None]]:
    """``(dotted path, field, section class or None)`` for each field, depth first."""
    for name, info in model.model_fields.items():
        if only is not None and name not in only:
            continue
        path = f"{prefix}{name}"
        section = _section(info.annotation)
        yield path, info, section
        if section is not None:
            child = f"{path}[]." if _is_list(info.annotation) else f"{path}."
            yield from _rows(section, child)


def schema_fields(model: type[BaseModel] = Recipe) -> list[tuple[str, FieldInfo]]:
    """``(dotted key path, pydantic field)`` of every key of ``model`` (list items as
    ``key[].field``), depth first."""
    return [(path, info) for path, info, _ in _rows(model, "")]


def field_paths(model: type[BaseModel] = Recipe) -> list[str]:
    """Every dotted key path of ``model`` (list items as ``key[].field``)."""
    return [path for path, _ in schema_fields(model)]


def _cell(text: str) -> str:
    """Text for a table cell: pipes escaped, and ``<``, ``>``, ``*`` shown as written."""
    return (text.replace("|", "\\|").replace("\n", " ").replace("<", "&lt;").replace(">", "&gt;")
            .replace("*", "\\*"))


def _code(text: str) -> str:
    return "`" + text.replace("|", "\\|") + "`"


def _doc(cls: type[BaseModel]) -> str:
    """The class's own docstring as one Markdown paragraph (reST roles and ````x```` -> ```x```)."""
    own = cls.__dict__.get("__doc__")
    if not own:
        return ""
    text = " ".join(inspect.cleandoc(own).split())
    text = re.sub(r":\w+:`~?([^`]+)`", r"`\1`", text)
    return re.sub(r"``(.+?)``", r"`\1`", text)


def _table(model: type[BaseModel], prefix: str, only: set[str] | None = None,
           paths: set[str] | None = None) -> list[str]:
    """A Markdown table of the fields under ``model`` (``paths``: only these dotted paths)."""
    lines = ["| key | type | default | meaning |", "| --- | --- | --- | --- |"]
    for path, info, _section_class in _rows(model, prefix, only):
        if paths is not None and path not in paths:
            continue
        kind = _type(info.annotation)
        bounds = _bounds(info)
        if bounds:
            kind += f" ({bounds})"
        default = _default(info)
        lines.append(f"| {_code(path)} | {_code(kind)} | "
                     f"{default if default == 'required' else _code(default)} | "
                     f"{_cell(info.description or '')} |")
    return lines


def _sections(model: type[BaseModel], prefix: str, only: set[str] | None = None
              ) -> Iterator[tuple[str, type[BaseModel]]]:
    """Section classes under ``model`` with their dotted paths (for their docstrings)."""
    for path, _info, section in _rows(model, prefix, only):
        if section is not None and _doc(section):
            yield path, section


def recipe_reference_markdown() -> str:
    """The Markdown text of ``docs/recipes.md``: one table per top-level section."""
    out = [
        "# Recipe keys",
        "",
        "<!-- Generated from src/bigmodel/recipes/schema.py, sections.py and finetune_schema.py by "
        f"`{_COMMAND}`; do not edit by hand. -->",
        "",
        "Every key a recipe YAML file may hold, with its type, default and meaning. "
        "Unknown keys and values of the wrong type are refused with an error naming the key path; "
        "`--set key.path=value` (parsed as YAML) overrides any key from the command line. "
        "Types are strict: a quoted `\"5\"` is not an int. "
        "`list[]` in a path stands for each item of a list. "
        f"This page is generated from the schema (`{_COMMAND}`).",
        "",
    ]
    top = [(name, info) for name, info in Recipe.model_fields.items()
           if _section(info.annotation) is None]
    out += ["## Top level", ""]
    out += _table(Recipe, "", {name for name, _ in top})
    out.append("")
    for name, info in Recipe.model_fields.items():
        section = _section(info.annotation)
        if section is None:
            continue
        out += [f"## `{name}`", ""]
        if info.description:
            out += [info.description, ""]
        if _doc(section):
            out += [_doc(section), ""]
        out += _table(section, f"{name}.")
        out.append("")
        for path, child in _sections(section, f"{name}."):
            out += [f"`{path}`: {_doc(child)}", ""]
    out += ["## Fine-tuning recipes (`bigmodel finetune`)", "",
            _doc(FinetuneRecipe) or "A fine-tuning recipe holds every key above (its `model` "
            "section is not used: the model comes from the command line) plus these; `task` is "
            "always `finetune`.", ""]
    added = set(field_paths(FinetuneRecipe)) - set(field_paths(Recipe))
    out += _table(FinetuneRecipe, "", paths=added)
    out.append("")
    for path, child in _sections(FinetuneRecipe, ""):
        if path in added:
            out += [f"`{path}`: {_doc(child)}", ""]
    return "\n".join(out).rstrip("\n") + "\n"


if __name__ == "__main__":  # pragma: no cover - exercised by the docs test through the function
    print(recipe_reference_markdown(), end="")
