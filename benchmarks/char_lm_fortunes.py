"""Character-level GPT on the Debian ``fortunes`` texts: validation bits per character vs a bigram.

The fortunes of the recipe's categories are split by entry (``bigmodel.data.char_lm``, seeded), a
character tokenizer is learned on the training text, and a small GPT is trained on random windows
with the engine's ``Trainer``. Validation bits per character are measured on consecutive windows
of the validation text (every character predicted once, with up to ``max_length - 1`` characters
of context). The baseline is an add-alpha bigram model fitted on the same training text (alpha
chosen on a held-out tenth of the training text), evaluated on the same validation characters.

    .venv/bin/python benchmarks/char_lm_fortunes.py --recipe configs/fortunes_char_gpt.yaml
        [--set train.epochs=2 ...] [--threads 1] [--time-budget 900] [--run-dir DIR]
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

from bigmodel.engine.callbacks import Callback  # noqa: E402


class CpuBudget(Callback):
    """Stops training after the epoch during which ``seconds`` of CPU time have been used."""

    def __init__(self, seconds: float) -> None:
        super().__init__()
        self.seconds, self.started = seconds, time.process_time()

    def on_epoch_end(self, epoch, logs=None) -> None:
        if time.process_time() - self.started > self.seconds:
            self.model.stop_training = True


@torch.no_grad()
def validation_bits_per_char(model, ids: np.ndarray, block: int, batch: int = 32) -> float:
    """Mean -log2 p(next char) over every character of ``ids`` after the first."""
    model.eval()
    stream = torch.as_tensor(ids, dtype=torch.long)
    total, count = 0.0, 0
    starts = list(range(0, len(stream) - 1, block))
    for i in range(0, len(starts), batch):
        chunk = [stream[s: s + block + 1] for s in starts[i: i + batch]]
        full = [w for w in chunk if len(w) == block + 1]
        rest = [w for w in chunk if 2 <= len(w) < block + 1]  # the short last window runs alone
        for group in ([torch.stack(full)] if full else []) + [w[None] for w in rest]:
            logits = model(group[:, :-1])
            nll = torch.nn.functional.cross_entropy(logits.reshape(-1, logits.shape[-1]),
                                                    group[:, 1:].reshape(-1), reduction="sum")
            total += float(nll)
            count += group[:, 1:].numel()
    model.train()
    return total / count / math.log(2)


def best_bigram(train_ids: np.ndarray, vocab: int) -> tuple[float, float]:
    """Alpha chosen on the last tenth of the training text; returns ``(alpha, bits there)``."""
    from bigmodel.data.char_lm import bigram_bits_per_char

    cut = int(len(train_ids) * 0.9)
    scores = {a: bigram_bits_per_char(train_ids[:cut], train_ids[cut:], vocab, alpha=a)
              for a in (0.001, 0.01, 0.1, 0.5, 1.0)}
    alpha = min(scores, key=scores.get)
    return alpha, scores[alpha]


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

    from bigmodel.cli.train import build_optimizer
    from bigmodel.data.char_lm import LMWindows, bigram_bits_per_char, load_fortunes_corpus
    from bigmodel.data.fortunes import DEFAULT_CATEGORIES
    from bigmodel.data.tokenizers import CharTokenizer
    from bigmodel.engine import Trainer
    from bigmodel.models import create_model, save_model
    from bigmodel.models.gpt import language_model_loss
    from bigmodel.recipes.schema import load_recipe

    recipe = load_recipe(args.recipe, args.overrides)
    train, data = recipe.train, recipe.data
    seed = train.seed or 0
    torch.manual_seed(seed)
    corpus = load_fortunes_corpus(data.categories or DEFAULT_CATEGORIES, path=data.path,
                                  validation_fraction=data.validation_split or 0.1, seed=seed)
    tokenizer = CharTokenizer.train([corpus.train_text])
    train_ids = np.asarray(tokenizer.encode(corpus.train_text))
    val_ids = np.asarray(tokenizer.encode(corpus.validation_text))[: args.validation_chars]
    model = create_model(recipe.model.name, **{"vocab_size": tokenizer.vocab_size,
                                               **recipe.model.overrides})
    block = model.max_length
    steps = args.steps or math.ceil(len(train_ids) / (train.batch_size * block))  # one pass
    windows = LMWindows(train_ids, block, train.batch_size, steps, seed=seed)
    optimizer = build_optimizer(train, model.parameters())
    schedule = train.scheduler.engine_spec() if train.scheduler is not None else None
    trainer = Trainer(model, loss=language_model_loss, optimizer=optimizer, scheduler=schedule,
                      grad_clip_norm=train.grad_clip_norm, verbose=2, device="cpu")
    started, cpu_started = time.perf_counter(), time.process_time()
    history = trainer.fit(windows, epochs=train.epochs, callbacks=[CpuBudget(args.time_budget)])
    train_seconds, train_cpu = time.perf_counter() - started, time.process_time() - cpu_started
    model_bits = validation_bits_per_char(model, val_ids, block)
    alpha, _ = best_bigram(train_ids, tokenizer.vocab_size)
    bigram_bits = bigram_bits_per_char(train_ids, val_ids, tokenizer.vocab_size, alpha=alpha)
    result = {"recipe": args.recipe, "categories": list(corpus.categories),
              "train_entries": corpus.num_train_entries,
              "validation_entries": corpus.num_validation_entries,
              "train_chars": len(train_ids), "validation_chars": len(val_ids),
              "vocab_size": tokenizer.vocab_size, "parameters": model.num_parameters(),
              "epochs_run": len(history.history["loss"]), "train_seconds": train_seconds,
              "train_cpu_seconds": train_cpu, "gpt_bits_per_char": model_bits,
              "bigram_bits_per_char": bigram_bits, "bigram_alpha": alpha}
    print(f"fortunes char LM: GPT {model_bits:.3f} bits/char vs bigram {bigram_bits:.3f} "
          f"bits/char (alpha {alpha}) on {len(val_ids):,} validation characters "
          f"({corpus.num_validation_entries} held-out fortunes); {result['parameters']:,} "
          f"parameters, {result['epochs_run']} epochs, {train_cpu:.0f} s CPU "
          f"({train_seconds:.0f} s wall)")
    prompt = tokenizer.encode("The ")
    sample = model.generate(torch.tensor([prompt]), block - len(prompt), temperature=0.8, top_k=20,
                            seed=0)
    result["sample"] = tokenizer.decode(sample[0].tolist())
    print("sample:", repr(result["sample"]))
    if args.run_dir:
        run_dir = Path(args.run_dir)
        save_model(model, run_dir)
        tokenizer.save(run_dir / "tokenizer.json")
        (run_dir / "results.json").write_text(json.dumps(result, indent=2))
    if args.out:
        Path(args.out).write_text(json.dumps(result, indent=2))
    return result


if __name__ == "__main__":
    main()
