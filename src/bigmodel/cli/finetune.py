"""``bigmodel finetune RUN_DIR_OR_PRETRAINED RECIPE.yaml [--set key=value ...] [--run-dir DIR]``.

Parses the arguments and prints; the run is :func:`bigmodel.recipes.run.run_recipe` with the
``finetune`` task (:mod:`bigmodel.recipes.tasks.finetune`: the source model, the data, the
adaptation and the extra files it writes).
"""

from __future__ import annotations

import argparse
from pathlib import Path


def add_parser(subparsers, parents) -> None:
    parser = subparsers.add_parser(
        "finetune", parents=parents, help="fine-tune a trained run or a pretrained model",
        description="Fine-tune a run directory or a pretrained model (e.g. all-MiniLM-L6-v2) on a "
                    "recipe's data, with freezing, new heads, per-group learning rates, gradual "
                    "unfreezing or LoRA as the recipe's 'finetune' section says.")
    parser.add_argument("source", metavar="RUN_DIR_OR_PRETRAINED",
                        help="a run directory written by bigmodel, or a pretrained model name "
                             "(all-MiniLM-L6-v2) or directory")
    parser.add_argument("recipe", metavar="RECIPE.yaml", help="fine-tuning recipe (configs/finetune_*)")
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                        help="override a recipe value, e.g. --set finetune.lora.rank=4")
    parser.add_argument("--run-dir", metavar="DIR", default=None,
                        help="write the run here (must be new or empty)")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from bigmodel.recipes.finetune_schema import load_finetune_recipe
    from bigmodel.recipes.run import run_recipe
    from bigmodel.recipes.tasks import get_task

    recipe = load_finetune_recipe(args.recipe, args.overrides)
    result = run_recipe(recipe, run_dir=args.run_dir, default_name=Path(args.recipe).stem,
                        task=get_task("finetune", source=args.source))
    print(f"run directory: {result.run_dir}")
    print(f"trainable parameters: {result.trainable:,} of {result.parameters:,} "
          f"({100 * result.trainable / max(result.parameters, 1):.2f}%)")
    print(f"test accuracy: {result.test_accuracy:.4f} (test loss {result.test_loss:.4f}, "
          f"{result.num_test} {result.unit})")
    return 0
