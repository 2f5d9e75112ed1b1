"""``bigmodel train RECIPE.yaml [--set key=value ...] [--run-dir DIR] [--resume RUN_DIR] [--nproc N]``.

Parses the arguments and prints; the run itself is :func:`bigmodel.recipes.run.run_recipe` (the
run directory it writes is described there), torchrun jobs :func:`bigmodel.recipes.launch.
launch_torchrun`.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path


def add_parser(subparsers, parents) -> None:
    parser = subparsers.add_parser(
        "train", parents=parents, help="train a model from a YAML recipe",
        description="Train a model from a YAML recipe and write a run directory (resolved recipe, "
                    "model files, checkpoints, metrics.csv, plots, report.md).")
    parser.add_argument("recipe", metavar="RECIPE.yaml", help="recipe file (see configs/)")
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                        help="override a recipe value, e.g. --set train.epochs=3 (repeatable; values "
                             "are YAML)")
    parser.add_argument("--run-dir", metavar="DIR", default=None,
                        help="write the run here (must be new or empty) instead of "
                             "<output.root>/<output.name or recipe-timestamp>")
    parser.add_argument("--resume", metavar="RUN_DIR", default=None,
                        help="continue the run in RUN_DIR from its newest valid checkpoint (within an "
                             "epoch when train.checkpoint_every wrote one); the recipe must be the "
                             "run's, except train.epochs, train.checkpoint_every, "
                             "train.keep_checkpoints, train.device and output")
    parser.add_argument("--nproc", type=int, default=0, metavar="N",
                        help="start N processes with torchrun (train.strategy ddp/fsdp/hybrid)")
    parser.add_argument("--max-restarts", type=int, default=0, metavar="M",
                        help="with --nproc: restart all workers up to M times when one fails; they "
                             "resume from the newest complete checkpoint")
    parser.set_defaults(func=run)


def print_result(result) -> None:
    """The run directory and the task's headline number."""
    print(f"run directory: {result.run_dir}")
    evaluation = result.evaluation
    test = evaluation.results.get("test", {})
    if evaluation.headline[0] == "test accuracy" and "loss" in test:
        print(f"test accuracy: {result.test_accuracy:.4f} (test loss {result.test_loss:.4f}, "
              f"{result.num_test} {result.unit})")
    else:
        print(f"{evaluation.headline[0]}: {evaluation.headline[1]:.4f} ({result.num_test} "
              f"{result.unit})")


def run(args: argparse.Namespace) -> int:
    from bigmodel.errors import ConfigError, Preempted
    from bigmodel.recipes import launch, workers
    from bigmodel.recipes.run import run_recipe
    from bigmodel.recipes.schema import load_recipe

    resume = getattr(args, "resume", None)
    if resume is not None and (args.run_dir is not None or args.nproc):
        raise ConfigError(f"--resume {resume} cannot be combined with --run-dir or --nproc (a "
                          "torchrun job resumes its own run dir with --max-restarts)")
    if args.nproc:
        return launch.launch_torchrun(args.recipe, list(args.overrides), args.run_dir, args.nproc,
                                      args.max_restarts, bool(getattr(args, "debug", False)))
    recipe = load_recipe(args.recipe, args.overrides)
    try:
        result = run_recipe(recipe, run_dir=resume if resume is not None else args.run_dir,
                            default_name=Path(args.recipe).stem, resume=resume is not None)
    except Preempted as stop:
        import shlex
        import signal

        run_dir = Path(stop.checkpoint).parent.parent if stop.checkpoint else resume
        command = ["bigmodel", "train", args.recipe,
                   *[part for text in args.overrides for part in ("--set", text)],
                   "--resume", str(run_dir)]
        print(f"{signal.Signals(stop.signal_number).name}: training stopped, checkpoint "
              f"{stop.checkpoint}\nresume with: {shlex.join(command)}", file=sys.stderr)
        return stop.exit_code
    if workers.rank() != 0:
        return 0  # rank 0 reports
    print_result(result)
    return 0
