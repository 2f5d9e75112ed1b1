"""Character-level GPT on the Debian ``fortunes`` texts: validation bits per character vs a bigram.

The fortunes of the recipe's categories are split by entry (``bigmodel.data.char_lm``, seeded), a
character tokenizer is learned on the training text, and a small GPT is trained on random windows
with the engine's ``Trainer``. Validation bits per character are measured on consecutive windows
of the validation text (every character predicted once, with up to ``max_length - 1`` characters
of context). The baseline is an add-alpha bigram model fitted on the same training text (alpha
chosen on a held-out tenth of the training text), evaluated on the same validation characters.

    .venv/bin/python benchmarks/char_lm_fortunes.py --recipe configs/fortunes_char_gpt.yaml
        [--set train.epochs=2 ...] [--threads 1] [--time-budget 900] [--run-dir DIR]

The run is ``bigmodel train``'s (:func:`bigmodel.recipes.run.run_recipe` with the
``language_model`` task, :mod:`bigmodel.recipes.tasks.language_model`): a complete run dir
(model, tokenizer, metrics.csv, results.json, report.md; ``--run-dir``, else under
``output.root``). ``--steps N`` is ``--set data.train_subset=N*batch_size`` (windows per epoch),
``--validation-chars N`` is ``--set data.test_subset=N``. This script adds a CPU-time budget and
prints / records the figures.
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

from bigmodel.recipes.run import run_recipe  # noqa: E402
from bigmodel.recipes.schema import load_recipe  # noqa: E402
from bigmodel.recipes.tasks import get_task  # noqa: E402


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--recipe", default=str(ROOT / "configs" / "fortunes_char_gpt.yaml"))
    parser.add_argument("--set", dest="overrides", action="append", default=[])
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--time-budget", type=float, default=900.0, help="CPU seconds of training")
    parser.add_argument("--run-dir", default=None)
    parser.add_argument("--steps", type=int, default=None,
                        help="batches per epoch (default: one pass worth of training tokens)")
    parser.add_argument("--validation-chars", type=int, default=None,
                        help="evaluate on the first N validation characters only (smoke runs)")
    parser.add_argument("--out", default=None)
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)

    overrides = list(args.overrides)
    if args.steps is not None:
        batch_size = load_recipe(args.recipe, overrides).train.batch_size
        overrides.append(f"data.train_subset={args.steps * batch_size}")
    if args.validation_chars is not None:
        overrides.append(f"data.test_subset={args.validation_chars}")
    recipe = load_recipe(args.recipe, overrides)
    budget = CpuBudget(args.time_budget)
    run = run_recipe(recipe, run_dir=args.run_dir, default_name=Path(args.recipe).stem,
                     verbose=2, task=get_task("language_model", callbacks=[budget]))
    extra = run.evaluation.extra
    result = {"recipe": args.recipe, "run_dir": str(run.run_dir),
              **{key: extra[key] for key in ("categories", "train_entries", "validation_entries",
                                             "train_chars", "validation_chars", "vocab_size")},
              "parameters": run.parameters, "epochs_run": run.epochs_run,
              "train_seconds": budget.wall_seconds, "train_cpu_seconds": budget.cpu_seconds,
              "gpt_bits_per_char": extra["bits_per_char"],
              "bigram_bits_per_char": extra["bigram_bits_per_char"],
              "bigram_alpha": extra["bigram_alpha"], "sample": extra["sample"]}
    print(f"fortunes char LM: GPT {result['gpt_bits_per_char']:.3f} bits/char vs bigram "
          f"{result['bigram_bits_per_char']:.3f} bits/char (alpha {result['bigram_alpha']}) on "
          f"{result['validation_chars']:,} validation characters "
          f"({result['validation_entries']} held-out fortunes); {result['parameters']:,} "
          f"parameters, {result['epochs_run']} epochs, {budget.cpu_seconds:.0f} s CPU "
          f"({budget.wall_seconds:.0f} s wall)")
    print("sample:", repr(result["sample"]))
    print(f"run directory: {run.run_dir}")
    if args.out:
        Path(args.out).write_text(json.dumps(result, indent=2))
    return result


if __name__ == "__main__":
    main()
