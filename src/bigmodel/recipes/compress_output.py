"""Where ``bigmodel compress`` writes: all or nothing, and stages that ``evaluate`` / ``predict`` read.

Every stage and the report are built in a hidden folder beside ``--out``
(``.compressed.partial-<pid>``) that takes the final name only when everything succeeded: a failure
at any step (an interrupt too) leaves no ``compressed/`` and no half-written stage. A folder that
an earlier ``bigmodel compress`` wrote is replaced as a whole (kept until the new one is complete);
any other existing folder is refused, never overwritten.

Each stage folder (``pruned/``, ``distilled/``, ``int8/``) is a model directory of its own: beside
its ``model.json`` + ``model.safetensors`` it holds a copy of the run's ``recipe.yaml`` and the
tokenizer / vocabulary file its texts are encoded with, so ``bigmodel evaluate RUN/compressed/int8``
and ``bigmodel predict RUN/compressed/pruned INPUT`` work on it as on the run itself.
"""

from __future__ import annotations

import contextlib
import os
import shutil
from collections.abc import Iterator
from pathlib import Path

#: Files a finished ``bigmodel compress`` output folder always holds (how a folder is recognised as
#: one that may be replaced).
OUTPUT_MARKERS = ("report.md", "results.json")


def check_out(out: Path) -> None:
    """Refuse an ``--out`` that exists but was not written by ``bigmodel compress``.

    Raises:
        ConfigError: ``out`` is a file, or a non-empty folder without the report files.
    """
    from bigmodel.errors import ConfigError

    if out.is_file() or out.is_symlink():
        raise ConfigError(f"--out {out} is a file (or a link); give a folder for the stages")
    if out.is_dir() and any(out.iterdir()) and \
            not all((out / name).is_file() for name in OUTPUT_MARKERS):
        raise ConfigError(f"--out {out} exists and is not the output of an earlier 'bigmodel "
                          "compress' (no report.md / results.json), so it is not replaced; remove it or give "
                          "another --out")


@contextlib.contextmanager
def staged_output(out: Path) -> Iterator[Path]:
    """Yield a hidden folder beside ``out`` to build into; it becomes ``out`` only if the block
    finishes. On any exception it is removed and ``out`` is left as it was."""
    out.parent.mkdir(parents=True, exist_ok=True)
    staging = out.parent / f".{out.name}.partial-{os.getpid()}"
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir()
    try:
        yield staging
        old = out.parent / f".{out.name}.old-{os.getpid()}"
        if out.exists():
            os.rename(out, old)
        try:
            os.rename(staging, out)
        except BaseException:
            if old.exists():
                os.rename(old, out)
            raise
        shutil.rmtree(old, ignore_errors=True)
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def run_files(run_dir: Path, metadata: dict) -> list[Path]:
    """The files of ``run_dir`` a stage folder needs besides its model: ``recipe.yaml`` and the
    tokenizer / vocabulary file named in ``metadata["input"]`` (confined to the run dir).

    Raises:
        ConfigError / DataFileError: a recorded name that leaves the run dir or does not exist.
    """
    from bigmodel.errors import ConfigError, DataFileError
    from bigmodel.utils.loading import confined_path

    files = [confined_path(run_dir, "recipe.yaml", "Run recipe", error=ConfigError, kind=None)]
    spec = metadata.get("input") or {}
    for key in ("vocabulary", "tokenizer"):
        name = spec.get(key)
        if isinstance(name, str) and name.endswith(".json"):
            path = confined_path(run_dir, name, "Tokenizer file", error=DataFileError)
            if path not in files:
                files.append(path)
    return files


def complete_stage(stage_dir: Path, files: list[Path]) -> None:
    """Copy the run's ``files`` (:func:`run_files`) into a stage folder."""
    for path in files:
        shutil.copyfile(path, stage_dir / path.name)


__all__ = ["OUTPUT_MARKERS", "check_out", "complete_stage", "run_files", "staged_output"]
