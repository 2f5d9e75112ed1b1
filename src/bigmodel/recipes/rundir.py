"""The run directory of a recipe run: created new (or empty), locked while the run writes, and
checked before a run is resumed in it.

``claimed_run_dir(recipe, run_dir, default_name)`` creates ``run_dir`` / ``output.root/output.name``
(new or empty) or a fresh ``<default_name>-<timestamp>`` under ``output.root`` and holds its lock
(:mod:`bigmodel.engine.run_lock`); ``check_resumable(recipe, run_dir)`` checks that a run can be
continued with this recipe.
"""

from __future__ import annotations

import contextlib
import datetime
import os
from collections.abc import Iterator
from pathlib import Path

from bigmodel.engine import run_lock
from bigmodel.errors import ConfigError
from bigmodel.recipes import workers as torchrun_workers

# Recipe keys a resumed run may change: how long, how often it checkpoints, where it runs.
RESUMABLE_CHANGES = ("description", "output.", "train.epochs", "train.checkpoint_every",
                     "train.keep_checkpoints", "train.device")


def _explicit_run_dir(recipe, run_dir: str | None) -> Path | None:
    """The run directory named by ``--run-dir`` or ``output.name``, checked to be new or empty.

    Raises:
        ConfigError: it exists and is not an empty directory.
    """
    if run_dir is None and recipe.output.name is None:
        return None
    path = Path(run_dir) if run_dir is not None else Path(recipe.output.root) / recipe.output.name
    if path.exists() and (not path.is_dir() or any(not run_lock.is_lock_file(entry)
                                                   for entry in path.iterdir())):
        raise ConfigError(f"Run directory {path} already exists and is not empty; choose another "
                          "(--run-dir / output.name) or remove it")
    return path


def make_run_dir(recipe, run_dir: str | None, default_name: str) -> Path:
    """Create the run directory: ``run_dir`` / ``output.name`` if given (new or empty), else a fresh
    ``<default_name>-<timestamp>`` under ``output.root``.

    Raises:
        ConfigError: an explicitly named directory exists and is not empty.
    """
    path = _explicit_run_dir(recipe, run_dir)
    if path is not None:
        path.mkdir(parents=True, exist_ok=True)
        return path
    stamp = datetime.datetime.now().strftime("%Y%m%d-%H%M%S")
    base = Path(recipe.output.root) / f"{default_name}-{stamp}"
    path, suffix = base, 1
    while True:
        try:
            path.mkdir(parents=True, exist_ok=False)
            return path
        except FileExistsError:
            path = base.with_name(f"{base.name}-{suffix}")
            suffix += 1


def worker_run_dir(recipe, run_dir: str | None, default_name: str) -> Path:
    """The run directory every worker of one torchrun job shares (created if needed, may hold a
    previous attempt's checkpoints)."""
    if run_dir is not None:
        path = Path(run_dir)
    elif recipe.output.name is not None:
        path = Path(recipe.output.root) / recipe.output.name
    else:
        job = os.environ.get("TORCHELASTIC_RUN_ID", "job")
        path = Path(recipe.output.root) / f"{default_name}-{job}"
    path.mkdir(parents=True, exist_ok=True)
    return path


@contextlib.contextmanager
def claimed_run_dir(recipe, run_dir: str | None, default_name: str,
                    workers: bool = False) -> Iterator[Path]:
    """Create the run directory (as :func:`make_run_dir`) and hold its lock for the block
    (:mod:`bigmodel.engine.run_lock`), before anything is loaded or written: two runs started
    together on one directory cannot both pass the emptiness check. The check is made again
    under the lock. A directory left empty (an error before anything was written) is removed.
    Torchrun workers share the directory (:func:`worker_run_dir`); rank 0 holds the lock for them.

    Raises:
        ConfigError: the directory is not empty, or another process holds it (names its pid).
    """
    if workers:
        path = worker_run_dir(recipe, run_dir, default_name)
        with run_lock.hold(path, enabled=torchrun_workers.rank() == 0):
            yield path
        return
    path = make_run_dir(recipe, run_dir, default_name)
    try:
        with run_lock.hold(path):
            if run_dir is not None or recipe.output.name is not None:
                _explicit_run_dir(recipe, str(path))  # again, now that no one else can write
            yield path
    finally:
        remove_if_empty(path)


def remove_if_empty(path: Path) -> None:
    """Remove a run directory this process created if nothing was written into it yet."""
    with contextlib.suppress(OSError):
        path.rmdir()


def _flatten(tree, prefix: str = "") -> dict:
    if isinstance(tree, dict):
        flat = {}
        for key, value in tree.items():
            flat.update(_flatten(value, f"{prefix}{key}."))
        return flat or {prefix[:-1]: {}}
    return {prefix[:-1]: tree}


def check_resumable(recipe, run_dir: str | None) -> Path:
    """Check that ``run_dir`` is a run of ``recipe`` that can be continued; returns its path.

    Raises:
        ConfigError: no such run directory, no ``recipe.yaml`` or checkpoint in it, or a recipe
            that differs from the run's in a key that matters (names each key and both values).
    """
    from bigmodel.recipes.schema import read_recipe_yaml, validate_recipe

    path = Path(run_dir) if run_dir is not None else None
    if path is None or not path.is_dir():
        raise ConfigError(f"--resume: {run_dir} is not a run directory")
    if not (path / "recipe.yaml").is_file() or not (path / "checkpoints").is_dir():
        raise ConfigError(f"--resume: {path} holds no recipe.yaml or no checkpoints/; nothing to resume "
                          "(start a new run with --run-dir)")
    saved = _flatten(validate_recipe(read_recipe_yaml(path / "recipe.yaml"),
                                     str(path / "recipe.yaml")).model_dump(mode="json"))
    wanted = _flatten(recipe.model_dump(mode="json"))
    differences = [f"{key}: the run has {saved.get(key)!r}, this recipe {wanted.get(key)!r}"
                   for key in sorted(set(saved) | set(wanted))
                   if saved.get(key) != wanted.get(key)
                   and not any(key == allowed or (allowed.endswith(".") and key.startswith(allowed))
                               for allowed in RESUMABLE_CHANGES)]
    if differences:
        raise ConfigError(f"--resume: the recipe differs from {path / 'recipe.yaml'} in "
                          f"{'; '.join(differences)}. Only {', '.join(RESUMABLE_CHANGES)} may change "
                          "when a run is resumed")
    return path


__all__ = ["RESUMABLE_CHANGES", "check_resumable", "claimed_run_dir", "make_run_dir",
           "remove_if_empty", "worker_run_dir"]
