"""The layering of ``src/bigmodel`` (issue #16), checked by parsing every import.

Every ``import`` / ``from ... import`` of the package (module level and inside functions, relative
ones resolved, ``importlib.import_module("bigmodel...")`` / ``__import__`` calls with a literal or
f-string prefix included) is checked against the table "package | may import" in
``docs/INTERFACES.md``, which this test parses, so the page and the test cannot drift. It fails on

- (a) ``layer``: an import of a package the table does not allow for the importer's package;
- (b) ``cycle``: an import cycle between modules (function-level and ``TYPE_CHECKING`` imports
  included: a cycle hidden in a function is still two modules that need each other);
- (c) ``private-cross-package``: a private name (``_x``, not ``__x__``) imported from, or read as an
  attribute of, a module of another package;
- (d) ``private-same-package``: the same from another module of the importer's own package.

``KNOWN_VIOLATIONS`` lists what is still being removed, each entry with who removes it. It may only
shrink: a violation not in it fails, and so does an entry that no longer occurs.
"""

from __future__ import annotations

import ast
import re
from collections import deque
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SRC = ROOT / "src" / "bigmodel"
INTERFACES = ROOT / "docs" / "INTERFACES.md"
TOP = "bigmodel"

# (rule, importer module, imported thing) -> who removes it. Imported thing: the package for
# `layer`, "module:name" for the private rules, the sorted members joined by " " for `cycle`.
KNOWN_VIOLATIONS: dict[tuple[str, str, str], str] = {}


@dataclass(frozen=True)
class Import:
    """One import statement's edge: ``importer`` (module) reads ``target`` (module), optionally
    the attribute ``name`` of it; ``dynamic`` when only a prefix of the target is known."""

    importer: str
    path: str
    line: int
    target: str
    name: str | None = None
    dynamic: bool = False


@dataclass(frozen=True)
class Violation:
    rule: str
    importer: str
    thing: str
    where: str
    message: str

    @property
    def key(self) -> tuple[str, str, str]:
        return (self.rule, self.importer, self.thing)


def package_of(module: str) -> str:
    """``bigmodel.keras.layers.base`` -> ``keras``; ``bigmodel.errors`` -> ``errors``;
    ``bigmodel`` (the top-level ``__init__``) -> ``bigmodel``."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else TOP


def is_private(name: str) -> bool:
    return name.startswith("_") and not (name.startswith("__") and name.endswith("__"))


def read_sources(root: Path = SRC) -> dict[str, tuple[str, str]]:
    """``{module name: (path relative to the repository, source)}`` for every file of the package;
    a package's ``__init__.py`` is the package's own name."""
    sources = {}
    for file in sorted(root.rglob("*.py")):
        parts = file.relative_to(root).with_suffix("").parts
        if parts[-1] == "__init__":
            parts = parts[:-1]
        module = ".".join((TOP, *parts))
        try:
            shown = str(file.relative_to(ROOT))
        except ValueError:
            shown = str(file)
        sources[module] = (shown, file.read_text(encoding="utf-8"))
    return sources


def _packages_of_source(sources: dict[str, tuple[str, str]]) -> set[str]:
    return {name for name, (path, _) in sources.items() if path.endswith("__init__.py")}


def _resolve_relative(importer: str, is_package: bool, level: int, module: str | None) -> str:
    base = importer.split(".")
    if not is_package:
        base = base[:-1]
    base = base[: len(base) - (level - 1)]
    return ".".join(base + ([module] if module else []))


def _longest_known(name: str, modules: set[str]) -> str | None:
    parts = name.split(".")
    for end in range(len(parts), 0, -1):
        candidate = ".".join(parts[:end])
        if candidate in modules:
            return candidate
    return None


def _dynamic_import_target(call: ast.Call) -> tuple[str, bool] | None:
    """The module named by ``importlib.import_module(...)`` / ``__import__(...)``: the literal,
    or the literal prefix of an f-string (then ``dynamic``)."""
    func = call.func
    name = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", None)
    if name not in ("import_module", "__import__") or not call.args:
        return None
    arg = call.args[0]
    if isinstance(arg, ast.Constant) and isinstance(arg.value, str):
        return arg.value, False
    if isinstance(arg, ast.JoinedStr) and arg.values:
        head = arg.values[0]
        if isinstance(head, ast.Constant) and isinstance(head.value, str):
            return head.value.rstrip("."), True
    return None


def collect_imports(sources: dict[str, tuple[str, str]]) -> tuple[list[Import], list[Import]]:
    """Every import of ``TOP`` modules in ``sources``, and every read of a private attribute of an
    imported ``TOP`` module (``rcl._odd_pair`` after ``from bigmodel.nn import rcl``)."""
    modules = set(sources)
    packages = _packages_of_source(sources)
    imports: list[Import] = []
    attribute_reads: list[Import] = []
    for importer, (path, text) in sources.items():
        tree = ast.parse(text, filename=path)
        bound: dict[str, str] = {}  # local name -> imported TOP module
        found: list[Import] = []
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                for alias in node.names:
                    if alias.name.split(".")[0] != TOP:
                        continue
                    target = _longest_known(alias.name, modules) or alias.name
                    found.append(Import(importer, path, node.lineno, target))
                    if alias.asname:
                        bound[alias.asname] = target
            elif isinstance(node, ast.ImportFrom):
                if node.level:
                    base = _resolve_relative(
                        importer, importer in packages, node.level, node.module
                    )
                else:
                    base = node.module or ""
                if base.split(".")[0] != TOP:
                    continue
                for alias in node.names:
                    submodule = f"{base}.{alias.name}"
                    if submodule in modules:
                        found.append(Import(importer, path, node.lineno, submodule))
                        bound[alias.asname or alias.name] = submodule
                    else:
                        target = _longest_known(base, modules) or base
                        found.append(Import(importer, path, node.lineno, target, alias.name))
            elif isinstance(node, ast.Call):
                named = _dynamic_import_target(node)
                if named and named[0].split(".")[0] == TOP:
                    target = _longest_known(named[0], modules) or named[0]
                    found.append(Import(importer, path, node.lineno, target, dynamic=named[1]))
        imports.extend(found)
        for node in ast.walk(tree):
            if (
                isinstance(node, ast.Attribute)
                and isinstance(node.value, ast.Name)
                and node.value.id in bound
                and is_private(node.attr)
            ):
                target = bound[node.value.id]
                attribute_reads.append(Import(importer, path, node.lineno, target, node.attr))
    return imports, attribute_reads


def parse_layering_table(markdown: str, packages: set[str]) -> dict[str, set[str]]:
    """The table under the heading ``## Layering`` of ``docs/INTERFACES.md``: ``{package: the
    packages it may import}``. Names are in backticks (outside parentheses, which are notes);
    ``everything`` means every package, ``everything but `a`, `b``` every package but those; the
    row ``every package`` lists what all may import (its own packages take only their own row).
    Raises ``ValueError`` when the section, a row or a package is missing or unknown."""
    section = re.search(r"^## Layering.*?$(.*?)(?=^## |\Z)", markdown, re.M | re.S)
    if not section:
        raise ValueError("docs/INTERFACES.md has no '## Layering' section")
    rows: dict[str, set[str]] = {}
    common: set[str] = set()
    for line in section.group(1).splitlines():
        cells = [cell.strip() for cell in line.strip().strip("|").split("|")]
        if not line.lstrip().startswith("|") or len(cells) < 2:
            continue
        if cells[0].lower() in ("package", "") or set(cells[0]) <= set("-: "):
            continue
        named = re.findall(r"`([^`]+)`", re.sub(r"\(.*?\)", "", cells[1]))  # (notes) aside
        unknown = [name for name in named if name not in packages]
        if unknown:
            raise ValueError(f"layering table row {cells[0]!r} names unknown packages {unknown}")
        if cells[1].startswith("everything"):
            allowed = set(packages) - set(named)
        else:
            allowed = set(named)
        if cells[0] == "every package":
            common = allowed
            continue
        (package,) = re.findall(r"`([^`]+)`", cells[0]) or [cells[0]]
        if package not in packages:
            raise ValueError(f"layering table has a row for unknown package {package!r}")
        rows[package] = allowed
    missing = sorted(packages - set(rows))
    if missing:
        raise ValueError(f"layering table has no row for packages {missing}")
    # The packages every package may import take only what their own row names (no cycle).
    return {
        package: allowed | (set() if package in common else common) | {package}
        for package, allowed in rows.items()
    }


def find_cycles(edges: dict[str, set[str]]) -> list[tuple[list[str], list[str]]]:
    """The strongly connected components of more than one module (Tarjan, iterative), each with
    one concrete cycle ``[a, b, ..., a]`` through its first member (shortest, breadth-first)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    on_stack: set[str] = set()
    stack: list[str] = []
    components: list[list[str]] = []
    counter = 0
    for start in sorted(edges):
        if start in index:
            continue
        work = [(start, iter(sorted(edges.get(start, ()))))]
        index[start] = low[start] = counter
        counter += 1
        stack.append(start)
        on_stack.add(start)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = counter
                    counter += 1
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(edges.get(child, ())))))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                component = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.append(member)
                    if member == node:
                        break
                if len(component) > 1 or node in edges.get(node, ()):
                    components.append(sorted(component))
    cycles = []
    for component in sorted(components):
        members = set(component)
        first = component[0]
        previous = {first: None}
        queue = deque([first])
        end = None
        while queue and end is None:
            node = queue.popleft()
            for child in sorted(edges.get(node, ())):
                if child == first:
                    end = node
                    break
                if child in members and child not in previous:
                    previous[child] = node
                    queue.append(child)
        path = [first]
        while end is not None and end != first:
            path.append(end)
            end = previous[end]
        cycles.append((component, [first] + path[1:][::-1] + [first]))
    return cycles


def check(sources: dict[str, tuple[str, str]], table: dict[str, set[str]]) -> list[Violation]:
    """Every violation of rules (a)-(d) in ``sources`` under ``table``."""
    imports, attribute_reads = collect_imports(sources)
    violations = []
    edges: dict[str, set[str]] = {module: set() for module in sources}
    where_edge: dict[tuple[str, str], str] = {}
    for imp in imports:
        where = f"{imp.path}:{imp.line}"
        source_package, target_package = package_of(imp.importer), package_of(imp.target)
        allowed = table.get(source_package, set())
        if target_package not in allowed:
            violations.append(
                Violation(
                    "layer",
                    imp.importer,
                    target_package,
                    where,
                    f"{where}: {imp.importer} imports {imp.target}"
                    f"{'.' + imp.name if imp.name else ''}, but package {source_package!r} may "
                    f"import only {sorted(allowed)} (docs/INTERFACES.md, '## Layering')",
                )
            )
        if not imp.dynamic and imp.target in sources and imp.target != imp.importer:
            edges[imp.importer].add(imp.target)
            where_edge.setdefault((imp.importer, imp.target), where)
    for imp in imports + attribute_reads:
        private = [part for part in imp.target.split(".") if is_private(part)]
        if imp.name and is_private(imp.name):
            private.append(imp.name)
        if not private or imp.target == imp.importer:
            continue
        same = package_of(imp.target) == package_of(imp.importer)
        rule = "private-same-package" if same else "private-cross-package"
        where = f"{imp.path}:{imp.line}"
        thing = f"{imp.target}:{imp.name or ''}"
        violations.append(
            Violation(
                rule,
                imp.importer,
                thing,
                where,
                f"{where}: {imp.importer} uses the private name {'.'.join(private)} of {imp.target}"
                f" ({'its own package' if same else 'another package'}): make it public or move it",
            )
        )
    for component, cycle in find_cycles(edges):
        steps = " -> ".join(f"{a} ({where_edge[(a, b)]})" for a, b in zip(cycle, cycle[1:]))
        others = (
            f" (one of the cycles among {len(component)} modules: {', '.join(component)})"
            if len(component) > len(cycle) - 1
            else ""
        )
        violations.append(
            Violation(
                "cycle",
                cycle[0],
                " ".join(component),
                where_edge[(cycle[0], cycle[1])],
                f"import cycle: {steps} -> {cycle[-1]}{others}; move the shared piece into a module"
                " both import",
            )
        )
    return violations


def _table() -> dict[str, set[str]]:
    sources = read_sources()
    packages = {package_of(module) for module in sources}
    return parse_layering_table(INTERFACES.read_text(encoding="utf-8"), packages)


def test_imports_follow_the_layering_table():
    violations = check(read_sources(), _table())
    new = [v.message for v in violations if v.key not in KNOWN_VIOLATIONS]
    assert not new, "imports against the layering (see docs/INTERFACES.md):\n" + "\n".join(new)


def test_known_violations_only_shrink():
    found = {v.key for v in check(read_sources(), _table())}
    gone = [f"{key} ({who})" for key, who in KNOWN_VIOLATIONS.items() if key not in found]
    assert not gone, "fixed, remove from KNOWN_VIOLATIONS in tests/test_layering.py:\n" + "\n".join(
        gone
    )


def test_the_table_itself_has_no_cycle():
    table = _table()
    edges = {package: allowed - {package} for package, allowed in table.items()}
    assert find_cycles(edges) == []


# --- the checker itself, on synthetic source -------------------------------------------------

SYNTHETIC_TABLE = """
## Layering
| package | may import |
| --- | --- |
| every package | `errors` |
| `bigmodel` | `errors` |
| `errors` | nothing |
| `low` | nothing |
| `high` | `low` |
| `top` | everything but `errors` |

## Next section
| `low` | `high` |
"""


def _synthetic_sources(files: dict[str, str]) -> dict[str, tuple[str, str]]:
    """``{"bigmodel.low.__init__": text}`` -> the ``read_sources`` form (a package's
    ``__init__`` named by the package)."""
    return {
        module.removesuffix(".__init__"): (module.replace(".", "/") + ".py", text)
        for module, text in files.items()
    }


def _synthetic_check(files):
    sources = _synthetic_sources(files)
    packages = {package_of(module) for module in sources}
    return check(sources, parse_layering_table(SYNTHETIC_TABLE, packages))


BASE_FILES = {
    "bigmodel.__init__": "",
    "bigmodel.errors": "class Oops(Exception):\n    pass\n",
    "bigmodel.low.__init__": "",
    "bigmodel.low.a": "from bigmodel.errors import Oops\n",
    "bigmodel.low.b": "X = 1\n",
    "bigmodel.high.__init__": "",
    "bigmodel.high.c": "from bigmodel.low.a import Oops\n",
    "bigmodel.top.__init__": "",
}


def test_checker_accepts_allowed_imports():
    assert _synthetic_check(BASE_FILES) == []


@pytest.mark.parametrize(
    "source",
    [
        "from bigmodel.high.c import Oops\n",
        "import bigmodel.high.c\n",
        "def f():\n    from ..high import c\n    return c\n",
        "import importlib\nM = importlib.import_module('bigmodel.high.c')\n",
        "import importlib\ndef f(n):\n    return importlib.import_module(f'bigmodel.high.{n}')\n",
    ],
)
def test_checker_refuses_an_import_upwards(source):
    violations = _synthetic_check({**BASE_FILES, "bigmodel.low.b": source})
    assert [v.rule for v in violations] == ["layer"]
    assert violations[0].where.startswith("bigmodel/low/b.py:")
    assert "'low' may import only" in violations[0].message


def test_checker_refuses_a_cycle_even_in_functions():
    files = {
        **BASE_FILES,
        "bigmodel.low.a": "from bigmodel.low.b import X\n",
        "bigmodel.low.b": "def f():\n    from . import a\n    return a\n",
    }
    violations = _synthetic_check(files)
    assert [v.rule for v in violations] == ["cycle"]
    assert violations[0].thing == "bigmodel.low.a bigmodel.low.b"
    assert "bigmodel.low.a (bigmodel/low/a.py:1) -> bigmodel.low.b (bigmodel/low/b.py:2)" in (
        violations[0].message
    )


def test_checker_refuses_private_names():
    files = {
        **BASE_FILES,
        "bigmodel.low.b": "_HIDDEN = 1\n__version__ = '1'\n",
        "bigmodel.low.a": "from .b import _HIDDEN, __version__\n",
        "bigmodel.high.c": "from bigmodel.low import b\nY = b._HIDDEN + len(b.__name__)\n",
    }
    rules = sorted((v.rule, v.importer, v.thing) for v in _synthetic_check(files))
    assert rules == [
        ("private-cross-package", "bigmodel.high.c", "bigmodel.low.b:_HIDDEN"),
        ("private-same-package", "bigmodel.low.a", "bigmodel.low.b:_HIDDEN"),
    ]


def test_table_parser_refuses_drift():
    packages = {"bigmodel", "errors", "low", "high", "top"}
    with pytest.raises(ValueError, match="no row for packages \\['extra'\\]"):
        parse_layering_table(SYNTHETIC_TABLE, packages | {"extra"})
    with pytest.raises(ValueError, match="unknown package"):
        parse_layering_table(SYNTHETIC_TABLE, packages - {"top"})
    with pytest.raises(ValueError, match="no '## Layering' section"):
        parse_layering_table("# nothing here\n", packages)


def test_table_parser_reads_everything_but_and_only_its_section():
    packages = {"bigmodel", "errors", "low", "high", "top"}
    table = parse_layering_table(SYNTHETIC_TABLE, packages)
    assert table["top"] == {"bigmodel", "low", "high", "top", "errors"}
    assert table["low"] == {"low", "errors"}  # the row under '## Next section' does not count
    assert table["errors"] == {"errors"}  # the common row's own packages take only their row


def test_checker_counts_type_checking_imports_and_aliases():
    files = {
        **BASE_FILES,
        "bigmodel.low.b": (
            "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from bigmodel.high.c import Oops\n"
        ),
        "bigmodel.high.c": "import bigmodel.low.a as la\nY = la._private\n",
    }
    rules = sorted((v.rule, v.importer, v.thing) for v in _synthetic_check(files))
    assert rules == [
        ("layer", "bigmodel.low.b", "high"),
        ("private-cross-package", "bigmodel.high.c", "bigmodel.low.a:_private"),
    ]


def test_find_cycles_reports_one_cycle_per_component():
    edges = {"a": {"b"}, "b": {"c"}, "c": {"a", "d"}, "d": set(), "e": {"e"}}
    assert find_cycles(edges) == [(["a", "b", "c"], ["a", "b", "c", "a"]), (["e"], ["e", "e"])]
