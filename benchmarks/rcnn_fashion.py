"""RCNN (<= 0.7 M parameters) vs the seed CNN on Fashion-MNIST, both trained by the same recipe.

The recipe (default ``configs/fashion_rcnn.yaml``) is trained twice through ``bigmodel train``'s
own code path: once as written (the RCNN) and once with only ``model.name`` changed to
``seed-cnn`` (its RCNN-specific overrides dropped): same epochs, optimizer, schedule, augmentation,
seed and data subset; with ``--parallel`` the two trainings run side by side in two processes (each
with ``--threads`` torch threads). Each training's own throughput is reported too (images seen /
the process CPU time of its ``run_recipe`` call, which includes augmentation and the final test
evaluation). Then training throughput (samples/s, process CPU time) of both is measured in
interleaved bursts on the same batches, repeated; medians and their ratio are reported, so the noise
of a shared machine hits both alike.

    .venv/bin/python benchmarks/rcnn_fashion.py [--recipe configs/fashion_rcnn_cpu.yaml]
        [--set model.name=rcnn-32 --set train.epochs=2 --set data.train_subset=10000 ...]
        [--threads 1] [--parallel] [--repeats 5]

The script also prints the projected CPU time of a 30-epoch / 60,000-image run of the recipe's RCNN
from the measured throughput.
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from pathlib import Path

import torch
import torch.nn.functional as F

ROOT = Path(__file__).resolve().parents[1]


def train_once(recipe, work: Path, label: str, threads: int | None = None):
    """Train one recipe; returns (test accuracy, parameters, wall s, test images, CPU s, epochs)."""
    from bigmodel.recipes.run import run_recipe

    if threads:
        torch.set_num_threads(threads)
    cpu = time.process_time()
    result = run_recipe(recipe, run_dir=str(work / label), verbose=0)
    return (result.test_accuracy, result.parameters, result.seconds, result.num_test,
            time.process_time() - cpu, result.epochs_run)


def train_both(variants: dict, work: Path, parallel: bool, threads: int | None) -> dict:
    """Train every ``label -> recipe`` (side by side in processes when ``parallel``)."""
    if not parallel:
        return {label: train_once(recipe, work, label, threads) for label, recipe in variants.items()}
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor

    if threads:  # the workers' OpenMP pools start with this size
        os.environ["OMP_NUM_THREADS"] = str(threads)
    with ProcessPoolExecutor(len(variants), mp_context=multiprocessing.get_context("spawn")) as pool:
        futures = {label: pool.submit(train_once, recipe, work, label, threads)
                   for label, recipe in variants.items()}
        return {label: future.result() for label, future in futures.items()}


def throughput(models: dict, batch_size: int, steps: int, repeats: int,
               channels_last: bool = False) -> dict[str, float]:
    """Median training samples/s (process CPU time) of each model, in interleaved bursts."""
    torch.manual_seed(0)
    x = torch.rand(batch_size, 1, 28, 28)
    if channels_last:
        x = x.contiguous(memory_format=torch.channels_last)
        for model in models.values():
            model.to(memory_format=torch.channels_last)
    y = torch.randint(0, 10, (batch_size,))
    optimizers = {name: torch.optim.AdamW(m.parameters(), lr=1e-3) for name, m in models.items()}

    def burst(name: str, n: int) -> float:
        model, optimizer = models[name], optimizers[name]
        started = time.process_time()
        for _ in range(n):
            optimizer.zero_grad(set_to_none=True)
            F.cross_entropy(model(x), y).backward()
            optimizer.step()
        return n * batch_size / (time.process_time() - started)

    for name in models:  # warm-up (allocator, oneDNN primitive cache)
        burst(name, 2)
    rates: dict[str, list[float]] = {name: [] for name in models}
    for _ in range(repeats):
        for name in models:
            rates[name].append(burst(name, steps))
    return {name: statistics.median(values) for name, values in rates.items()}


def main(argv=None) -> int:
    from bigmodel.models import create_model
    from bigmodel.recipes.schema import load_recipe, recipe_from_dict

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--recipe", default=str(ROOT / "configs" / "fashion_rcnn_cpu.yaml"))
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE")
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--repeats", type=int, default=5, help="throughput bursts per model")
    parser.add_argument("--steps", type=int, default=5, help="training steps per burst")
    parser.add_argument("--skip-training", action="store_true", help="throughput only")
    parser.add_argument("--parallel", action="store_true",
                        help="train the two models side by side in two processes")
    parser.add_argument("--run-root", default=None,
                        help="write the run directories <run-root>/rcnn and <run-root>/seed-cnn "
                             "(must not exist yet) instead of a temporary folder")
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    recipe = load_recipe(args.recipe, args.set)
    raw = recipe.model_dump(mode="json")
    raw["model"] = {"name": "seed-cnn", "overrides": {}}
    seed_recipe = recipe_from_dict(raw, source="seed-cnn variant")
    rcnn_name = recipe.model.name

    rows = {}
    train = recipe.train
    subset = recipe.data.train_subset or 60000
    if not args.skip_training:
        variants = {"rcnn": recipe, "seed-cnn": seed_recipe}
        if args.run_root:  # keep the run directories (history.csv shows progress per epoch)
            results = train_both(variants, Path(args.run_root), args.parallel, args.threads)
        else:
            with tempfile.TemporaryDirectory() as tmp:
                results = train_both(variants, Path(tmp), args.parallel, args.threads)
        for label, (accuracy, params, seconds, num_test, cpu, epochs) in results.items():
            rows[label] = (accuracy, params, seconds, subset * epochs / cpu)
            print(f"{variants[label].model.name}: test accuracy {accuracy:.4f} on {num_test} "
                  f"images, {params:,} parameters, {epochs} epoch(s) in {seconds:.0f} s wall / "
                  f"{cpu:.0f} s CPU ({subset * epochs / cpu:.0f} training images per CPU second)",
                  flush=True)

    models = {"seed-cnn": create_model("seed-cnn").train(),
              "rcnn": create_model(rcnn_name, **recipe.model.overrides).train()}
    rates = throughput(models, train.batch_size, args.steps, args.repeats, train.channels_last)
    print(f"\nrecipe: {args.recipe} {' '.join(args.set)}; {train.epochs} epoch(s) on {subset} "
          f"training images, batch {train.batch_size}, {train.optimizer} lr {train.lr}, "
          f"augmentation: {', '.join(a.name for a in recipe.data.augment) or 'none'}")
    print("\n| model | parameters | test accuracy | train samples/s (bursts, median) | "
          "train samples/s (whole run, CPU time) |")
    print("| --- | --- | --- | --- | --- |")
    for label, name in (("seed-cnn", "seed-cnn"), ("rcnn", rcnn_name)):
        params = sum(p.numel() for p in models[label].parameters())
        accuracy = f"{rows[label][0]:.4f}" if label in rows else "-"
        whole = f"{rows[label][3]:.0f}" if label in rows else "-"
        print(f"| {name} {recipe.model.overrides if label == 'rcnn' else ''} | {params:,} | "
              f"{accuracy} | {rates[label]:.0f} | {whole} |")
    print(f"\nthroughput ratio rcnn / seed-cnn: {rates['rcnn'] / rates['seed-cnn']:.3f} "
          f"(median of {args.repeats} interleaved bursts of {args.steps} steps)")
    if rows:
        gap = 100 * (rows["rcnn"][0] - rows["seed-cnn"][0])
        print(f"accuracy gap rcnn - seed-cnn: {gap:+.2f} points (target: >= +1.5 and rcnn >= 93%)")
    full_hours = 60000 * 30 / rates["rcnn"] / 3600
    print(f"projected CPU time of the full 30-epoch / 60,000-image RCNN run at this throughput: "
          f"{full_hours:.1f} h")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
