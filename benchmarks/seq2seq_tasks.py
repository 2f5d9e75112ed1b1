"""Sequence-to-sequence tasks with a small TransformerModel on the CPU: exact match on held-out data.

Tasks (``bigmodel.data.seq2seq``): ``numbers_to_words`` (4071 -> "four thousand seventy one"),
``dates_to_iso`` (many formats -> YYYY-MM-DD), ``reversal``. The recipe names the task
(``data.name``), the number of training / held-out test examples (``data.train_subset`` /
``data.test_subset``), the model (``model.name: transformer`` + overrides) and the training
settings. Test examples never occur in training (different numbers / calendar days / strings).

    .venv/bin/python benchmarks/seq2seq_tasks.py --recipe configs/seq2seq_numbers.yaml
        [--set train.epochs=4 ...] [--threads 1] [--time-budget 900] [--run-dir DIR]

Reports exact-match accuracy (greedy decoding; beam search too with ``--beam 4``), training
time, parameter count; with ``--run-dir`` saves the model and both tokenizers.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

from bigmodel.engine.callbacks import Callback  # noqa: E402

DEFAULT_COUNTS = {"numbers_to_words": (20000, 2000), "dates_to_iso": (20000, 2000),
                  "reversal": (5000, 500)}


def build_task(recipe):
    """``(task, source tokenizer, target tokenizer)`` for the recipe's data section."""
    from bigmodel.data import seq2seq
    from bigmodel.data.tokenizers import CharTokenizer, WordTokenizer

    data, seed = recipe.data, recipe.train.seed or 0
    num_train, num_test = DEFAULT_COUNTS[data.name]
    num_train, num_test = data.train_subset or num_train, data.test_subset or num_test
    if data.name == "numbers_to_words":
        task = seq2seq.numbers_to_words(num_train, num_test, seed=seed)
        return task, CharTokenizer.train(task.train_sources), WordTokenizer.train(task.train_targets)
    if data.name == "dates_to_iso":
        task = seq2seq.dates_to_iso(num_train, num_test, seed=seed)
    elif data.name == "reversal":
        task = seq2seq.reversal(num_train, num_test, seed=seed)
    else:
        raise SystemExit(f"seq2seq_tasks.py: data.name {data.name!r} is not a sequence task "
                         f"(expected one of {', '.join(DEFAULT_COUNTS)})")
    return task, CharTokenizer.train(task.train_sources), CharTokenizer.train(task.train_targets)


class TimeBudget(Callback):
    """Stops training after the epoch during which ``seconds`` of CPU time have been used.

    CPU time (this process, all threads) rather than wall time: on a shared machine the wall
    clock also counts the time other jobs hold the cores.
    """

    def __init__(self, seconds: float) -> None:
        super().__init__()
        self.seconds, self.started = seconds, time.process_time()

    def on_epoch_end(self, epoch, logs=None) -> None:
        if time.process_time() - self.started > self.seconds:
            self.model.stop_training = True


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

    from bigmodel.data.seq2seq import encode_pairs, exact_match
    from bigmodel.keras.transformer import TransformerModel
    from bigmodel.models import model_defaults
    from bigmodel.recipes.schema import load_recipe

    recipe = load_recipe(args.recipe, args.overrides)
    train = recipe.train
    if train.seed is not None:
        torch.manual_seed(train.seed)
    task, source_tokenizer, target_tokenizer = build_task(recipe)
    x, y = encode_pairs(task.train_sources, task.train_targets, source_tokenizer, target_tokenizer)
    overrides = {"input_vocab_size": source_tokenizer.vocab_size,
                 "target_vocab_size": target_tokenizer.vocab_size, **recipe.model.overrides}
    model = TransformerModel(**{**model_defaults(recipe.model.name), **overrides})
    schedule = train.scheduler.engine_spec() if train.scheduler is not None else None
    model.compile(optimizer=train.optimizer, learning_rate=train.lr, lr_schedule=schedule,
                  grad_clip_norm=train.grad_clip_norm, metrics=["accuracy"])
    budget = TimeBudget(args.time_budget)
    started, cpu_started = time.perf_counter(), time.process_time()
    history = model.fit(x, y, epochs=train.epochs, batch_size=train.batch_size,
                        callbacks=[budget], seed=train.seed, verbose=2)
    train_seconds = time.perf_counter() - started
    train_cpu_seconds = time.process_time() - cpu_started
    longest = max(len(target_tokenizer.encode(t)) for t in task.train_targets) + 4
    started = time.perf_counter()
    predictions = model.translate(task.test_sources, tokenizer=source_tokenizer,
                                  target_tokenizer=target_tokenizer, max_new_tokens=longest,
                                  beam_size=args.beam)
    decode_seconds = time.perf_counter() - started
    accuracy = exact_match(predictions, task.test_targets)
    wrong = [(s, p, t) for s, p, t in zip(task.test_sources, predictions, task.test_targets)
             if p != t][:5]
    result = {"task": task.name, "recipe": args.recipe, "num_train": len(task.train_sources),
              "num_test": len(task.test_sources), "parameters": model.num_parameters(),
              "epochs_run": len(history.history["loss"]), "train_seconds": train_seconds,
              "train_cpu_seconds": train_cpu_seconds,
              "decode_seconds": decode_seconds, "beam_size": args.beam,
              "threads": args.threads, "exact_match": accuracy, "examples_wrong": wrong,
              "final_loss": history.history["loss"][-1]}
    print(f"{task.name}: exact match {100 * accuracy:.2f}% on {len(task.test_sources)} held-out "
          f"examples ({'greedy' if args.beam == 1 else f'beam {args.beam}'}); "
          f"{result['epochs_run']} epochs, {train_cpu_seconds:.0f} s CPU ({train_seconds:.0f} s wall) "
          f"on {args.threads} thread(s); "
          f"{result['parameters']:,} parameters; target >= 99%")
    for source, predicted, target in wrong:
        print(f"  wrong: {source!r} -> {predicted!r} (expected {target!r})")
    if args.run_dir:
        run_dir = Path(args.run_dir)
        model.save(run_dir)
        source_tokenizer.save(run_dir / "source_tokenizer.json")
        target_tokenizer.save(run_dir / "target_tokenizer.json")
        (run_dir / "results.json").write_text(json.dumps(result, indent=2))
    if args.out:
        Path(args.out).write_text(json.dumps(result, indent=2))
    return result


if __name__ == "__main__":
    main()
