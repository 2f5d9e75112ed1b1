"""What this machine offers the recipes, for ``bigmodel info``: the local data (Fashion-MNIST,
MNIST, the fortunes texts, the espeak-ng speech synthesizer) and the optional extras of bigmodel
(``pip install 'bigmodel[x]'``) with the installed version of each of their packages.

The extras are read from bigmodel's installed package metadata (the ``[project.optional-
dependencies]`` of ``pyproject.toml``), so this list cannot drift from what ``pip`` installs.
"""

from __future__ import annotations

import importlib.metadata as metadata
import re
import shutil

NOT_FOUND = "not found locally (downloaded on first use unless BIGMODEL_OFFLINE=1)"
_EXTRA = re.compile(r"""extra\s*==\s*["']([^"']+)["']""")
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*")


def data_sources() -> dict[str, str]:
    """``{name: where it is, or how to get it}`` for every data source of the recipes."""
    from bigmodel.data.datasets import find_datasets
    from bigmodel.data.fortunes import find_fortunes_dir, list_categories
    from bigmodel.data.speech_synth import espeak_variants
    from bigmodel.errors import DataFileError

    facts = {name: str(path) if path is not None else NOT_FOUND
             for name, path in find_datasets().items()}
    try:
        folder = find_fortunes_dir(categories=())
        count = len(list_categories(folder))
        facts["fortunes"] = (f"{folder} ({count} categor{'y' if count == 1 else 'ies'})" if count
                             else f"{folder} holds no category files (apt-get install fortunes)")
    except DataFileError:
        facts["fortunes"] = "not found (apt-get install fortunes, or put the category files in " \
                            "$BIGMODEL_DATA/fortunes)"
    program = shutil.which("espeak-ng")
    if program is None:
        facts["espeak-ng"] = "not found (apt-get install espeak-ng; it renders the speech corpus)"
    else:
        voices = len(espeak_variants())
        facts["espeak-ng"] = f"{program} ({voices} voice variant{'s' if voices != 1 else ''})"
    return facts


def extras() -> dict[str, list[tuple[str, str | None]]]:
    """``{extra: [(package, installed version or None), ...]}`` of bigmodel's optional extras
    (``all`` and ``dev`` left out: they gather the others). Empty when bigmodel's package
    metadata cannot be read (a source tree that was never installed)."""
    try:
        requirements = metadata.requires("bigmodel") or []
    except metadata.PackageNotFoundError:
        return {}
    found: dict[str, list[tuple[str, str | None]]] = {}
    for requirement in requirements:
        extra = _EXTRA.search(requirement)
        name = _NAME.match(requirement)
        if extra is None or name is None or extra.group(1) in ("all", "dev"):
            continue
        package = name.group(0)
        if package.lower() == "bigmodel":
            continue
        try:
            version = metadata.version(package)
        except metadata.PackageNotFoundError:
            version = None
        found.setdefault(extra.group(1), []).append((package, version))
    return found


def extra_lines() -> dict[str, str]:
    """``{"extra <name>": "pkg 1.2, other 3.4; not installed: x (pip install 'bigmodel[name]')"}``."""
    lines = {}
    for extra, packages in extras().items():
        present = [f"{package} {version}" for package, version in packages if version]
        absent = [package for package, version in packages if not version]
        text = ", ".join(present)
        if absent:
            text += ("; " if text else "") + (f"not installed: {', '.join(absent)} "
                                              f"(pip install 'bigmodel[{extra}]')")
        lines[f"extra {extra}"] = text
    return lines


__all__ = ["NOT_FOUND", "data_sources", "extra_lines", "extras"]
