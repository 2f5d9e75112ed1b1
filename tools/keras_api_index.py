"""Keras 3's public API and its state in bigmodel: `docs/keras_api.json` and `docs/keras_api.md`.

Two steps, kept apart so the page can be rebuilt (and tested) without real Keras:

1. the index: every public name of every public Keras 3 module (``keras.layers``, ``keras.ops.nn``,
   ``keras.applications.resnet50``, ...), read from the installed ``keras`` (torch backend) and
   written to ``docs/keras_api.json``. It is checked in, so a Keras upgrade is a visible diff;
2. the page: for each indexed name, its state in bigmodel, found by looking the name up on the
   matching ``bigmodel.keras`` module — present (**supported**, or **partial** where
   ``docs/keras_api_notes.yaml`` says what differs) or raising ``UnsupportedAPIError``
   (**not supported**, with the reason from the notes or the module's stand-in). A name that is
   absent without that error is a **problem** (silently missing): the page says so and the tests
   fail.

Usage (from the repository root)::

    python tools/keras_api_index.py            # rebuild the page from the checked-in index
    python tools/keras_api_index.py --index    # re-read the installed Keras first (needs keras)
    python tools/keras_api_index.py --check    # exit 1 when the page (or index) is out of date
"""

from __future__ import annotations

import argparse
import importlib
import json
import os
import sys
import types
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[1]
INDEX_PATH = ROOT / "docs" / "keras_api.json"
NOTES_PATH = ROOT / "docs" / "keras_api_notes.yaml"
PAGE_PATH = ROOT / "docs" / "keras_api.md"

SUPPORTED, PARTIAL, NOT_SUPPORTED, PROBLEM = "supported", "partial", "not supported", "PROBLEM"
DEFAULT_REASON = "not implemented in bigmodel"


# -- 1. the index of real Keras ------------------------------------------------------------------
def collect_keras_api(keras: types.ModuleType | None = None) -> dict[str, Any]:
    """Every public name of every public module of the installed Keras 3.

    Args:
        keras: the ``keras`` package (imported here with ``KERAS_BACKEND=torch`` when omitted).

    Returns:
        ``{"keras_version": str, "modules": {module path: sorted names}}``; submodules are their own
        entries (``keras.ops.nn``), not names of their parent; ``keras.src`` (private) is skipped.
    """
    if keras is None:
        os.environ.setdefault("KERAS_BACKEND", "torch")
        import keras  # noqa: PLC0415 - real Keras only when asked: CI machines may lack it
    modules: dict[str, list[str]] = {}

    def walk(module: types.ModuleType, path: str) -> None:
        names = [n for n in dir(module) if not n.startswith("_")]
        subs = [n for n in names if isinstance(getattr(module, n), types.ModuleType)]
        modules[path] = sorted(n for n in names if n not in subs)
        for sub in sorted(subs):
            child = getattr(module, sub)
            if sub != "src" and child.__name__.startswith("keras."):
                walk(child, f"{path}.{sub}")

    walk(keras, "keras")
    return {"keras_version": keras.__version__, "modules": dict(sorted(modules.items()))}


def load_index(path: Path = INDEX_PATH) -> dict[str, Any]:
    """The checked-in index (``docs/keras_api.json``)."""
    return json.loads(path.read_text())


def index_text(index: dict[str, Any]) -> str:
    """The index as written to ``docs/keras_api.json`` (one module per line)."""
    lines = [f'{{"keras_version": {json.dumps(index["keras_version"])}, "modules": {{']
    items = list(index["modules"].items())
    for i, (module, names) in enumerate(items):
        comma = "," if i < len(items) - 1 else ""
        lines.append(f"  {json.dumps(module)}: {json.dumps(names)}{comma}")
    lines.append("}}")
    return "\n".join(lines) + "\n"


# -- 2. the state of each name in bigmodel --------------------------------------------------------
def load_notes(path: Path = NOTES_PATH) -> dict[str, Any]:
    """The hand-kept notes: ``{"modules": {path: reason}, "names": {api: note}}``.

    A name's note is a string (said on the page whatever the state: for a name that is not
    supported, why) or ``{"partial": "what differs"}`` (the name resolves but differs from Keras).
    """
    notes = yaml.safe_load(path.read_text()) or {}
    return {"modules": notes.get("modules") or {}, "names": notes.get("names") or {}}


@dataclass(frozen=True)
class Entry:
    """One Keras API and its state here."""

    module: str
    name: str
    state: str
    note: str

    @property
    def api(self) -> str:
        return f"{self.module}.{self.name}"


def bigmodel_module(path: str) -> Any:
    """The bigmodel object standing for the Keras module ``path`` (``keras.ops.nn`` ->
    ``bigmodel.keras.ops.nn``), found attribute by attribute as a user's code reaches it.

    Raises:
        UnsupportedAPIError: the module (or one above it) is not supported.
        AttributeError: it is silently missing (a problem).
    """
    obj = importlib.import_module("bigmodel.keras")
    for part in path.split(".")[1:]:
        obj = getattr(obj, part)
    return obj


def _namespace_reason(module: str) -> str | None:
    from bigmodel.keras.unsupported import NAMESPACES  # noqa: PLC0415 - bigmodel after sys.path

    for path in sorted(NAMESPACES, key=len, reverse=True):
        if module == path or module.startswith(path + "."):
            return NAMESPACES[path][0]
    return None


def state_of(module: str, name: str, notes: dict[str, Any]) -> Entry:
    """The state of ``keras.<module>.<name>`` in bigmodel (see the module docstring)."""
    from bigmodel.keras.config import UnsupportedAPIError  # noqa: PLC0415

    note = notes["names"].get(f"{module}.{name}")
    try:
        getattr(bigmodel_module(module), name)
    except UnsupportedAPIError:
        if isinstance(note, dict):
            return Entry(module, name, PROBLEM, f"the notes call it partial: {note}")
        reason = note or notes["modules"].get(module) or _namespace_reason(module) or DEFAULT_REASON
        return Entry(module, name, NOT_SUPPORTED, reason)
    except AttributeError as error:
        return Entry(module, name, PROBLEM, f"missing without UnsupportedAPIError: {error}")
    if isinstance(note, dict):
        if set(note) != {"partial"}:
            return Entry(module, name, PROBLEM, f"a note mapping takes only 'partial': {note}")
        return Entry(module, name, PARTIAL, str(note["partial"]))
    return Entry(module, name, SUPPORTED, note or "")


def states(index: dict[str, Any], notes: dict[str, Any]) -> list[Entry]:
    """Every indexed name's :class:`Entry`, in index order."""
    return [state_of(module, name, notes)
            for module, names in index["modules"].items() for name in names]


def stale_notes(index: dict[str, Any], notes: dict[str, Any]) -> list[str]:
    """Notes that name no indexed API or module (left behind by a Keras upgrade or a typo)."""
    apis = {f"{m}.{n}" for m, names in index["modules"].items() for n in names}
    return sorted([a for a in notes["names"] if a not in apis]
                  + [m for m in notes["modules"] if m not in index["modules"]])


# -- 3. the page ----------------------------------------------------------------------------------
_HEADER = """\
# Keras 3 API: state in bigmodel

<!-- Generated by tools/keras_api_index.py from docs/keras_api.json and docs/keras_api_notes.yaml:
     edit those (or the code) and rerun `python tools/keras_api_index.py`; do not edit this page. -->

Every public name of Keras {version}'s public modules (read from real Keras on the torch backend
into `docs/keras_api.json`), with its state in `bigmodel.keras`, looked up on the module a program
reaches after its import lines are changed (`import keras` -> `from bigmodel import keras`):

- **supported**: same name, arguments, defaults and results as Keras 3 (details, tests and the few
  documented differences of behaviour in [keras.md](keras.md));
- **partial**: present, with what differs said in the notes;
- **not supported**: looking the name up raises `keras.config.UnsupportedAPIError` (a
  `BigModelError`, `NotImplementedError` and `AttributeError`, so `hasattr` answers False; in a
  `from bigmodel.keras.x import Name` statement an `UnsupportedImportError`, an `ImportError`)
  naming `keras.<module>.<name>` and this page. Nothing is silently missing: `tests/test_keras_api_page.py`
  looks up every name below and checks this page against the code.

{summary}
"""


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def render_page(index: dict[str, Any], entries: list[Entry]) -> str:
    """The Markdown page: a summary table, then one table per module (name | state | notes)."""
    by_module: dict[str, list[Entry]] = {m: [] for m in index["modules"]}
    for entry in entries:
        by_module[entry.module].append(entry)
    summary = ["| module | names | supported | partial | not supported |",
               "| --- | ---: | ---: | ---: | ---: |"]
    total = {SUPPORTED: 0, PARTIAL: 0, NOT_SUPPORTED: 0, PROBLEM: 0}
    for module, rows in by_module.items():
        counts = {s: sum(e.state == s for e in rows) for s in total}
        for s in total:
            total[s] += counts[s]
        anchor = module.replace(".", "")
        summary.append(f"| [`{module}`](#{anchor}) | {len(rows)} | {counts[SUPPORTED]} | "
                       f"{counts[PARTIAL]} | {counts[NOT_SUPPORTED] + counts[PROBLEM]} |")
    summary.append(f"| all | {len(entries)} | {total[SUPPORTED]} | {total[PARTIAL]} | "
                   f"{total[NOT_SUPPORTED] + total[PROBLEM]} |")
    parts = [_HEADER.format(version=index["keras_version"], summary="\n".join(summary))]
    for module, rows in by_module.items():
        parts.append(f"\n## {module}\n")
        if not rows:
            parts.append("No names of its own (its submodules follow).\n")
            continue
        parts.append("| name | state | notes |\n| --- | --- | --- |\n")
        parts.append("".join(f"| `{e.name}` | {e.state} | {_cell(e.note)} |\n" for e in rows))
    return "".join(parts)


def build_page(index: dict[str, Any] | None = None,
               notes: dict[str, Any] | None = None) -> tuple[str, list[Entry]]:
    """The page text for the checked-in index and notes (or those given), and its entries."""
    index = load_index() if index is None else index
    notes = load_notes() if notes is None else notes
    entries = states(index, notes)
    return render_page(index, entries), entries


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--index", action="store_true",
                        help="re-read the installed Keras into docs/keras_api.json first")
    parser.add_argument("--check", action="store_true",
                        help="write nothing; exit 1 when the page or the index is out of date")
    args = parser.parse_args(argv)
    sys.path.insert(0, str(ROOT / "src"))
    index = load_index()
    if args.index:
        fresh = collect_keras_api()
        if args.check and fresh != index:
            print(f"{INDEX_PATH.relative_to(ROOT)} differs from the installed Keras "
                  f"{fresh['keras_version']}: rerun with --index")
            return 1
        index = fresh
        if not args.check:
            INDEX_PATH.write_text(index_text(index))
    notes = load_notes()
    page, entries = build_page(index, notes)
    problems = [e for e in entries if e.state == PROBLEM] + stale_notes(index, notes)
    for problem in problems:
        print(f"problem: {problem}")
    if args.check:
        if PAGE_PATH.read_text() != page:
            print(f"{PAGE_PATH.relative_to(ROOT)} is out of date: rerun tools/keras_api_index.py")
            return 1
        return 1 if problems else 0
    PAGE_PATH.write_text(page)
    print(f"wrote {PAGE_PATH.relative_to(ROOT)}: {len(entries)} names, {len(problems)} problems")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
