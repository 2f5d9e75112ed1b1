"""TransformerClassifier vs TF-IDF + logistic regression on the fortunes categories.

Same data, split, word vocabulary and baseline as ``benchmarks/text_rcnn_fortunes.py`` (whose
``encode_split`` and ``tfidf_baseline`` are reused, so the three models are compared on identical
texts): six categories of the Debian ``fortunes`` package, a seeded 80/20 split inside each
category; the baseline's n-grams and regularization are chosen by 3-fold cross-validation on the
training texts only.

    .venv/bin/python benchmarks/transformer_classifier_fortunes.py
        [--recipe configs/fortunes_transformer_classifier.yaml] [--set train.epochs=3 ...]
        [--seeds 0 1 2] [--threads 1]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import torch
from torch import nn

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))
sys.path.insert(0, str(ROOT / "benchmarks"))

from text_rcnn_fortunes import encode_split, tfidf_baseline, trim_collate  # noqa: E402


def train_classifier(recipe, split, vocab, x_train, x_test, seed: int):
    from bigmodel.engine import Trainer
    from bigmodel.models import create_model
    from bigmodel.recipes.training import recipe_optimizer

    train = recipe.train
    torch.manual_seed(seed)
    model = create_model(recipe.model.name, **{"vocab_size": len(vocab),
                                               "num_classes": split.num_classes,
                                               "max_length": x_train.shape[1],
                                               **recipe.model.overrides})
    trainer = Trainer(model, loss=nn.CrossEntropyLoss(), metrics=["accuracy"],
                      optimizer=recipe_optimizer(train, model.parameters()),
                      grad_clip_norm=train.grad_clip_norm, seed=seed, verbose=0, device="cpu",
                      scheduler=train.scheduler.engine_spec() if train.scheduler else None)
    dataset = torch.utils.data.TensorDataset(torch.from_numpy(x_train),
                                             torch.from_numpy(split.train_labels))
    loader = torch.utils.data.DataLoader(dataset, batch_size=train.batch_size, shuffle=True,
                                         collate_fn=trim_collate,
                                         generator=torch.Generator().manual_seed(seed))
    started = time.perf_counter()
    trainer.fit(loader, epochs=train.epochs)
    seconds = time.perf_counter() - started
    model.eval()
    with torch.no_grad():
        logits = torch.cat([model(trim_collate(list(zip(ids, ids[:, 0])))[0])
                            for ids in torch.from_numpy(x_test).split(256)])
    accuracy = float((logits.argmax(1).numpy() == split.test_labels).mean())
    return model, accuracy, seconds


def main(argv: list[str] | None = None) -> dict:
    from bigmodel.recipes.schema import load_recipe

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--recipe",
                        default=str(ROOT / "configs" / "fortunes_transformer_classifier.yaml"))
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE")
    parser.add_argument("--seeds", type=int, nargs="+", default=None)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    recipe = load_recipe(args.recipe, args.set)
    if recipe.data.name != "fortunes":
        sys.exit(f"{args.recipe}: data.name must be 'fortunes'; received '{recipe.data.name}'")
    split, vocab, x_train, x_test = encode_split(recipe)
    print(f"fortunes: {split.num_classes} categories; {len(x_train)} train / {len(x_test)} test "
          f"texts; vocabulary {len(vocab)} ids", flush=True)
    baseline, baseline_seconds, best = tfidf_baseline(split, seed=0)
    print(f"TF-IDF + logistic regression: test accuracy {baseline:.4f} ({baseline_seconds:.0f} s "
          f"incl. 3-fold CV; chosen {best})", flush=True)
    seeds = args.seeds or [recipe.train.seed or 0]
    accuracies = []
    for seed in seeds:
        model, accuracy, seconds = train_classifier(recipe, split, vocab, x_train, x_test, seed)
        accuracies.append(accuracy)
        print(f"TransformerClassifier seed {seed}: test accuracy {accuracy:.4f} "
              f"({recipe.train.epochs} epochs, {seconds:.0f} s)", flush=True)
    params = sum(p.numel() for p in model.parameters())
    median = statistics.median(accuracies)
    print("\n| model | parameters | test accuracy |\n| --- | --- | --- |")
    print(f"| TF-IDF (CV-chosen n-grams) + logistic regression | - | {baseline:.4f} |")
    print(f"| TransformerClassifier (median of {len(seeds)} seed(s)) | {params:,} | {median:.4f} |")
    print(f"\nTransformerClassifier - baseline: {100 * (median - baseline):+.2f} points "
          f"({'beats' if median > baseline else 'does not beat'} the baseline)")
    return {"baseline": baseline, "transformer": median, "accuracies": accuracies,
            "parameters": params, "baseline_params": best}


if __name__ == "__main__":
    main()
