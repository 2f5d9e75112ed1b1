"""Runs under torchrun: start ``bigmodel train RECIPE`` in N processes (``--nproc N``).

The parent process validates the recipe, checks that N divides the global batch, creates the run
directory and then runs::

    python -m torch.distributed.run --standalone --nproc-per-node N --max-restarts M \\
        -m bigmodel train RECIPE --run-dir DIR [--set ...]

Workers see ``WORLD_SIZE`` (:mod:`bigmodel.recipes.workers`); they all use the same run directory
(:func:`bigmodel.recipes.rundir.worker_run_dir`: ``--run-dir``, ``output.name``, or
``<recipe>-<TORCHELASTIC_RUN_ID>`` when launched by hand), accept that it already exists and resume
from its newest committed sharded checkpoint -- which is what a restart after a failed worker needs.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path


def torchrun_command(recipe_path: str, run_dir: Path, nproc: int, max_restarts: int,
                     overrides: list[str], debug: bool = False) -> list[str]:
    """The command line that starts ``nproc`` workers of ``bigmodel train`` on this machine."""
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone",
               f"--nproc-per-node={nproc}", f"--max-restarts={max_restarts}",
               "-m", "bigmodel", "train", str(recipe_path), "--run-dir", str(run_dir)]
    for override in overrides:
        command += ["--set", override]
    if debug:
        command.append("--debug")
    return command


def launch_torchrun(recipe_path: str, overrides: list[str], run_dir: str | None, nproc: int,
                    max_restarts: int = 0, debug: bool = False) -> int:
    """Validate, create the run directory, run torchrun; returns torchrun's exit code.

    Args:
        recipe_path: the recipe file the workers load (with ``overrides``, ``--set`` strings).
        run_dir: the run directory (None: ``output.name`` or ``<recipe stem>-<timestamp>``).
        nproc: worker processes; max_restarts: torchrun's restarts of all workers on a failure.
        debug: pass ``--debug`` to the workers.

    Raises:
        ConfigError: bad recipe, N < 1, a strategy of 'single' with N > 1, N not dividing the batch,
            or a run directory that is not new or empty -- all before any process starts.
    """
    from bigmodel.engine import run_lock
    from bigmodel.engine.distributed import check_global_batch
    from bigmodel.errors import ConfigError
    from bigmodel.recipes.rundir import claimed_run_dir
    from bigmodel.recipes.schema import load_recipe

    if nproc < 1 or max_restarts < 0:
        raise ConfigError(f"--nproc must be >= 1 and --max-restarts >= 0; received --nproc "
                          f"{nproc}, --max-restarts {max_restarts}")
    recipe = load_recipe(recipe_path, overrides)
    if recipe.train.strategy == "single" and nproc > 1:
        raise ConfigError(f"--nproc {nproc} needs train.strategy ddp, fsdp or hybrid; the recipe "
                          "says 'single' (add --set train.strategy=ddp)")
    check_global_batch(recipe.train.batch_size, nproc, recipe.train.grad_accum_steps)
    # This process holds the run directory's lock for the whole job; its workers are told so.
    with claimed_run_dir(recipe, run_dir, Path(recipe_path).stem) as path:
        command = torchrun_command(recipe_path, path, nproc, max_restarts, list(overrides), debug)
        print(f"launching {nproc} processes: {' '.join(command)}", flush=True)
        environment = {**os.environ, **run_lock.launcher_environment(path)}
        return subprocess.run(command, check=False, env=environment).returncode
