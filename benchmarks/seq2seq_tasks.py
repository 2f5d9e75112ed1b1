"""Sequence-to-sequence tasks with a small TransformerModel on the CPU: exact match on held-out data.

Tasks (``bigmodel.data.seq2seq``): ``numbers_to_words`` (4071 -> "four thousand seventy one"),
``dates_to_iso`` (many formats -> YYYY-MM-DD), ``reversal``. The recipe names the task
(``data.name``), the number of training / held-out test examples (``data.train_subset`` /
``data.test_subset``), the model (``model.name: transformer`` + overrides) and the training
settings. Test examples never occur in training (different numbers / calendar days / strings).

    .venv/bin/python benchmarks/seq2seq_tasks.py --recipe configs/seq2seq_numbers.yaml
        [--set train.epochs=4 ...] [--threads 1] [--time-budget 900] [--run-dir DIR]

The run is ``bigmodel train``'s (:func:`bigmodel.recipes.run.run_recipe` with the ``seq2seq``
task, :mod:`bigmodel.recipes.tasks.seq2seq`): it writes a complete run dir (model, both
tokenizers, metrics.csv, results.json, report.md; ``--run-dir``, else under ``output.root``).
This script adds a CPU-time budget, beam search (``--beam 4``) and prints / records the figures:
exact-match accuracy, training time, parameter count.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from _cpu_budget import CpuBudget  # noqa: E402

from bigmodel.recipes.run import TRAIN_ROW, run_recipe  # noqa: E402
from bigmodel.recipes.schema import load_recipe  # noqa: E402
from bigmodel.recipes.tasks import get_task  # noqa: E402


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--recipe", default=str(ROOT / "configs" / "seq2seq_numbers.yaml"))
    parser.add_argument("--set", dest="overrides", action="append", default=[])
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--time-budget", type=float, default=900.0,
                        help="CPU seconds of training (checked after each epoch)")
    parser.add_argument("--beam", type=int, default=1)
    parser.add_argument("--run-dir", default=None)
    parser.add_argument("--out", default=None, help="write the results as JSON here")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)

    recipe = load_recipe(args.recipe, args.overrides)
    budget = CpuBudget(args.time_budget)
    run = run_recipe(recipe, run_dir=args.run_dir, default_name=Path(args.recipe).stem,
                     verbose=2, task=get_task("seq2seq", beam_size=args.beam, callbacks=[budget]))
    extra = run.evaluation.extra
    result = {"task": recipe.data.name, "recipe": args.recipe, "run_dir": str(run.run_dir),
              "num_train": extra["num_train"], "num_test": extra["num_test"],
              "parameters": run.parameters, "epochs_run": run.epochs_run,
              "train_seconds": budget.wall_seconds, "train_cpu_seconds": budget.cpu_seconds,
              "decode_seconds": extra["decode_seconds"], "beam_size": args.beam,
              "threads": args.threads, "exact_match": extra["exact_match"],
              "examples_wrong": extra["examples_wrong"],
              "final_loss": run.results[TRAIN_ROW]["loss"]}
    print(f"{result['task']}: exact match {100 * result['exact_match']:.2f}% on "
          f"{result['num_test']} held-out examples "
          f"({'greedy' if args.beam == 1 else f'beam {args.beam}'}); {result['epochs_run']} "
          f"epochs, {budget.cpu_seconds:.0f} s CPU ({budget.wall_seconds:.0f} s wall) on "
          f"{args.threads} thread(s); {result['parameters']:,} parameters; target >= 99%")
    for source, predicted, target in result["examples_wrong"]:
        print(f"  wrong: {source!r} -> {predicted!r} (expected {target!r})")
    print(f"run directory: {run.run_dir}")
    if args.out:
        Path(args.out).write_text(json.dumps(result, indent=2))
    return result


if __name__ == "__main__":
    main()
