"""``bigmodel evaluate RUN_DIR``: rebuild a trained model and measure it on the test set.

The model comes from the run's ``model.json`` + ``model.safetensors`` (never a pickle); the test data
from the run's resolved ``recipe.yaml`` (same data set, path and ``test_subset``). Runs written by
``bigmodel finetune`` are scored on their fine-tuning recipe's test split.
"""

from __future__ import annotations

import argparse


def add_parser(subparsers, parents) -> None:
    parser = subparsers.add_parser(
        "evaluate", parents=parents, help="measure a trained run on its test data again",
        description="Rebuild the model of a run directory from model.json + model.safetensors and "
                    "print its loss and accuracy on the recipe's test set. Seq2seq runs: "
                    "teacher-forced loss / token accuracy and greedy exact match on the held-out "
                    "pairs; language-model runs: validation bits per character (the numbers of "
                    "the run's results.json).")
    parser.add_argument("run_dir", metavar="RUN_DIR",
                        help="a directory written by 'bigmodel train' or 'bigmodel finetune', or "
                             "a stage of 'bigmodel compress' (RUN_DIR/compressed/int8, .../pruned)")
    parser.add_argument("--batch-size", type=int, default=256, help="images per forward pass")
    parser.add_argument("--data-path", default=None,
                        help="directory of the data set's IDX files (default: the recipe's)")
    parser.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from bigmodel.recipes.runs import evaluate_run

    result = evaluate_run(args.run_dir, args.batch_size, args.data_path, args.device)
    if "headline" in result:  # seq2seq / language model: the task's own measurement
        for split, scores in result["results"].items():
            for name, value in scores.items():
                row = f"{split} {name.replace('_', ' ')}"
                if row != result["headline"]:  # the headline line follows, with its count
                    print(f"{row}: {value:.4f}")
        print(f"{result['headline']}: {result['value']:.4f} ({result['num_images']} "
              f"{result['unit']})")
        return 0
    print(f"test loss: {result['loss']:.4f}")
    print(f"test accuracy: {result['accuracy']:.4f} ({result['num_images']} {result['unit']})")
    return 0
