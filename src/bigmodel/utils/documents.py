"""JSON and YAML documents read with bounds: size, nesting depth and YAML alias expansion.

A small crafted document must not make a large allocation or blow the stack:

- JSON: the file is refused past ``max_bytes`` before it is read; ``json.loads`` turns a very deep
  document into ``RecursionError`` (caught here), and every parsed document is then checked
  against ``max_depth`` without recursion, so the code that walks it later (recursively) is safe.
- YAML: the node graph is composed first (aliases are shared there, so composing stays small), then
  its *expanded* size -- the number of nodes a walk of the result would visit, each alias counted
  again -- is counted without recursion and refused past ``max_nodes``; recursive aliases are
  refused. A 400-byte "billion laughs" bomb fails here in milliseconds instead of taking gigabytes
  in the first ``json.dumps`` or pydantic walk of the result.

Every failure is the caller's :class:`~bigmodel.errors.BigModelError` subclass naming the file.
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from bigmodel.errors import BigModelError, CheckpointError, ConfigError

MAX_JSON_BYTES = 64 * 1024 * 1024
MAX_DEPTH = 100
MAX_YAML_BYTES = 1024 * 1024
MAX_YAML_NODES = 100_000

# Opening bytes of pickles (protocols 2-5) and torch.save zips: a document never starts so.
_UNSAFE_MAGICS = (b"\x80\x02", b"\x80\x03", b"\x80\x04", b"\x80\x05", b"PK\x03\x04")


def _depth(document: Any) -> int:
    """Nesting depth of a parsed JSON/YAML value (scalars 0), computed with an explicit stack."""
    deepest = 0
    stack = [(document, 1)]
    while stack:
        value, level = stack.pop()
        if isinstance(value, dict):
            children = value.values()
        elif isinstance(value, list):
            children = value
        else:
            continue
        deepest = max(deepest, level)
        stack.extend((child, level + 1) for child in children)
    return deepest


def loads_json(text: str | bytes, what: str, error: type[BigModelError] = CheckpointError,
               max_depth: int = MAX_DEPTH) -> Any:
    """Parse JSON ``text`` (``what`` names it in errors), refusing nesting deeper than ``max_depth``.

    Raises:
        ``error``: not UTF-8, not JSON, or nested too deeply.
    """
    try:
        if isinstance(text, bytes):
            text = text.decode("utf-8")
        document = json.loads(text)
    except UnicodeDecodeError as exc:
        raise error(f"{what} is not UTF-8 text: {exc}") from None
    except RecursionError:
        raise error(f"{what} is nested too deeply to be read (more than {max_depth} levels)") from None
    except ValueError as exc:
        raise error(f"{what} is not valid JSON: {exc}") from None
    depth = _depth(document)
    if depth > max_depth:
        raise error(f"{what} is nested {depth} levels deep; at most {max_depth} are read")
    return document


def _read_bounded(path: Path, what: str, error: type[BigModelError], max_bytes: int) -> bytes:
    if not path.is_file():
        raise error(f"{what} {path} does not exist")
    size = path.stat().st_size
    if size > max_bytes:
        raise error(f"{what} {path} is {size} bytes; at most {max_bytes} are read")
    try:
        with open(path, "rb") as handle:
            data = handle.read(max_bytes + 1)
    except OSError as exc:
        raise error(f"Cannot read {what} {path}: {exc}") from None
    if len(data) > max_bytes:  # grew since stat
        raise error(f"{what} {path} is over {max_bytes} bytes; at most {max_bytes} are read")
    if data.startswith(_UNSAFE_MAGICS):
        raise error(f"Refusing to unpickle {path}: {what} starts like a pickle or torch.save file "
                    "(bigmodel reads only JSON, YAML and safetensors)")
    return data


def read_json(path: str | os.PathLike, what: str = "JSON file",
              error: type[BigModelError] = CheckpointError, max_bytes: int = MAX_JSON_BYTES,
              max_depth: int = MAX_DEPTH) -> Any:
    """The parsed JSON file ``path``, read only if at most ``max_bytes`` long.

    Args:
        path: the file (already confined by the caller, see :func:`confined_path`).
        what: how errors name the file ("model file", "checkpoint manifest", ...).
        error: the error class raised.
        max_bytes / max_depth: size and nesting bounds.

    Raises:
        ``error``: missing, too large, pickle-like, not UTF-8, not JSON or nested too deeply (the
        message names ``path``).
    """
    path = Path(path)
    data = _read_bounded(path, what, error, max_bytes)
    return loads_json(data, f"{what} {path}", error, max_depth)


def _node_children(node: yaml.Node) -> list[yaml.Node]:
    if isinstance(node, yaml.SequenceNode):
        return list(node.value)
    if isinstance(node, yaml.MappingNode):
        return [part for pair in node.value for part in pair]
    return []


def _check_expanded_size(root: yaml.Node, source: str, max_nodes: int,
                         error: type[BigModelError]) -> None:
    """Refuse a composed YAML graph whose expansion (aliases repeated) exceeds ``max_nodes``.

    Iterative depth-first walk with memoised subtree sizes: a node marked open but not sized is on
    the current path, so meeting it again is a recursive alias.
    """
    sizes: dict[int, int] = {}
    opened: set[int] = set()
    stack: list[tuple[yaml.Node, bool]] = [(root, False)]
    while stack:
        node, close = stack.pop()
        key = id(node)
        if close:
            total = 1 + sum(sizes[id(child)] for child in _node_children(node))
            if total > max_nodes:
                raise error(f"{source}: the YAML expands to more than {max_nodes} values (aliases "
                            "repeated); refusing it (an alias bomb?)")
            sizes[key] = total
            continue
        if key in sizes:
            continue
        if key in opened:
            raise error(f"{source}: the YAML holds a recursive alias; refusing it")
        opened.add(key)
        stack.append((node, True))
        stack.extend((child, False) for child in _node_children(node))


_QUOTED = re.compile(r""""(?:[^"\\]|\\.)*"|'(?:[^']|'')*'""")


def _flow_depth(text: str) -> int:
    """Deepest nesting of YAML flow brackets in ``text``, quoted strings skipped (an upper bound:
    brackets in comments count too)."""
    raw = np.frombuffer(_QUOTED.sub("", text).encode("utf-8"), dtype=np.uint8)
    if raw.size == 0:
        return 0
    steps = (np.isin(raw, (0x5B, 0x7B)).astype(np.int64)  # [ {
             - np.isin(raw, (0x5D, 0x7D)).astype(np.int64))  # ] }
    return int(np.cumsum(steps).max(initial=0))


def parse_yaml(text: str, source: str = "<string>", loader: type = yaml.SafeLoader,
               error: type[BigModelError] = ConfigError, max_bytes: int = MAX_YAML_BYTES,
               max_nodes: int = MAX_YAML_NODES, max_depth: int = MAX_DEPTH) -> Any:
    """Parse YAML ``text`` (from ``source``) with ``loader`` (a ``yaml.SafeLoader`` subclass), bounded.

    Raises:
        ``error`` naming ``source``: too long, invalid YAML, more than one document, an expansion
        past ``max_nodes`` (alias bomb), a recursive alias, or nesting deeper than ``max_depth``.
    """
    if not issubclass(loader, yaml.SafeLoader):
        raise TypeError(f"parse_yaml needs a yaml.SafeLoader subclass; received {loader!r}")
    if len(text) > max_bytes:
        raise error(f"{source} is {len(text)} characters of YAML; at most {max_bytes} are read")
    if _flow_depth(text) > max_depth:  # PyYAML's scanner is quadratic in bracket depth
        raise error(f"{source}: the YAML nests brackets more than {max_depth} levels deep; at most "
                    f"{max_depth} are read")
    instance = loader(text)
    try:
        node = instance.get_single_node()
        if node is None:
            return None
        _check_expanded_size(node, source, max_nodes, error)
        document = instance.construct_document(node)
    except yaml.YAMLError as exc:
        raise error(f"{source}: invalid YAML: {exc}") from None
    except RecursionError:
        raise error(f"{source}: the YAML is nested too deeply to be read") from None
    finally:
        instance.dispose()
    depth = _depth(document)
    if depth > max_depth:
        raise error(f"{source}: the YAML is nested {depth} levels deep; at most {max_depth} are read")
    return document


def read_yaml(path: str | os.PathLike, what: str = "YAML file", loader: type = yaml.SafeLoader,
              error: type[BigModelError] = ConfigError, max_bytes: int = MAX_YAML_BYTES,
              max_nodes: int = MAX_YAML_NODES) -> Any:
    """The parsed YAML file ``path`` with :func:`parse_yaml`'s bounds, refused unread past ``max_bytes``.

    Raises:
        ``error`` naming ``path``: missing, too large, not UTF-8, or as :func:`parse_yaml`.
    """
    path = Path(path)
    data = _read_bounded(path, what, error, max_bytes)
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise error(f"{what} {path} is not UTF-8 text: {exc}") from None
    return parse_yaml(text, str(path), loader, error, max_bytes, max_nodes)


__all__ = ["MAX_DEPTH", "MAX_JSON_BYTES", "MAX_YAML_BYTES", "MAX_YAML_NODES", "loads_json",
           "parse_yaml", "read_json", "read_yaml"]
