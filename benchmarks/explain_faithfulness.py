"""Faithfulness and speed of every explanation method on the Fashion-MNIST seed CNN (CPU).

    .venv/bin/python benchmarks/explain_faithfulness.py                   # trains the CNN briefly
    .venv/bin/python benchmarks/explain_faithfulness.py --run-dir runs/x  # a `bigmodel train` run
    .venv/bin/python benchmarks/explain_faithfulness.py --images 20 --samples 300   # quick

For ``--images`` test images (default 100; the first ones, explained for their predicted class) and
each method, measured in one process:

- **deletion AUC vs random order**: pixels (or a perturbation method's superpixels) are set to black
  in order of attribution, 20 steps, and the probability of the class is integrated; the same
  images with ``--random-orders`` random orderings give the reference. ``deletion_gain`` = random
  AUC - method AUC (> 0: better than random; the issue asks every gradient method -- saliency,
  integrated gradients, GradientSHAP, DeepSHAP -- to beat random by a clear margin, taken here as
  gain >= 0.05 and a ratio random/method >= 1.25; Grad-CAM, on the last 3x3 map and on conv2's
  11x11 one, and the perturbation methods are measured the same way). Insertion AUCs are recorded.
- **time per example** (``method_s`` of the Explanation: the attribution work, not the set-up),
  the median of ``--repeats`` runs after a warm-up call. Because the CPU is shared, each run is
  paired with a reference measured right after it -- the time per row of one forward + backward
  pass over a batch of the same number of rows (``batch_rows``) -- and the ratio (method time / reference time) is reported as well: it
  says how many gradient evaluations a method costs and cancels most of the machine's load.
- **completeness**: integrated gradients' mean relative error ``|sum(a) - (f(x) - f(b))| /
  |f(x) - f(b)|`` (target <= 5%), and the same numbers for GradientSHAP, DeepSHAP and the SHAP
  efficiency of KernelSHAP.

Targets (issue 7): integrated gradients (50 steps) <= 0.2 s per 28x28 image; LIME / KernelSHAP with
<= 1,000 samples <= 5 s per image; IG completeness error <= 5% on average.

With ``--lstm`` and the ``seed-rnn`` model registered (``bigmodel.models.rnn``), the same is done
for an LSTM reading images as 28 time steps of 28 pixels (attributions grouped per time step for the
perturbation methods). Results go to ``benchmarks/out/explain_faithfulness.json`` and a Markdown
table is printed.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import (  # noqa: E402
    log,
    machine_info,
    markdown_table,
    median,
    peak_rss_mib,
    set_threads,
    today,
    write_json,
)

GRADIENT_METHODS = ("integrated_gradients", "saliency", "gradient_shap", "deep_shap")
CAM_METHODS = ("gradcam", "gradcam:conv2")  # method[:layer]; the seed CNN's conv3 map is 3x3
PERTURBATION_METHODS = ("lime", "kernel_shap")
TARGETS = {"integrated_gradients_s": 0.2, "perturbation_s": 5.0, "ig_completeness": 0.05,
           "gradient_gain": 0.05, "gradient_ratio": 1.25}
OUT = Path(__file__).resolve().parent / "out"


def parse(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--run-dir", default=None, help="explain this `bigmodel train` run's model")
    parser.add_argument("--data-path", default=None, help="Fashion-MNIST IDX directory")
    parser.add_argument("--images", type=int, default=100, help="test images explained")
    parser.add_argument("--perturbation-images", type=int, default=None,
                        help="images for LIME / KernelSHAP (default: --images)")
    parser.add_argument("--samples", type=int, default=1000, help="LIME / KernelSHAP samples")
    parser.add_argument("--segments", type=int, default=50, help="SLIC superpixels per image")
    parser.add_argument("--steps", type=int, default=50, help="integrated gradients steps")
    parser.add_argument("--curve-steps", type=int, default=20, help="deletion curve steps")
    parser.add_argument("--random-orders", type=int, default=5, help="random orderings averaged")
    parser.add_argument("--repeats", type=int, default=3, help="timing repeats (gradient methods)")
    parser.add_argument("--train-images", type=int, default=20000, help="CNN training subset")
    parser.add_argument("--epochs", type=int, default=2, help="CNN training epochs")
    parser.add_argument("--batch-size", type=int, default=None,
                        help="explain batch_size (default: explain's automatic choice)")
    parser.add_argument("--methods", nargs="+", metavar="METHOD[:LAYER]",
                        default=list(GRADIENT_METHODS + CAM_METHODS + PERTURBATION_METHODS))
    parser.add_argument("--lstm", action="store_true", help="also the seed-rnn LSTM, if registered")
    parser.add_argument("--lstm-images", type=int, default=20, help="test images for the LSTM")
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: all)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", default=str(OUT), help="output folder for the JSON")
    return parser.parse_args(argv)


def load_data(path: str | None, train_images: int, seed: int) -> tuple[np.ndarray, ...]:
    from bigmodel.keras.datasets import fashion_mnist

    (x, y), (x_test, y_test) = fashion_mnist.load_data(path) if path else fashion_mnist.load_data()
    keep = np.random.default_rng(seed).permutation(len(x))[:train_images]
    scale = np.float32(1 / 255)
    return (x[keep, None].astype(np.float32) * scale, y[keep].astype(np.int64),
            x_test[:, None].astype(np.float32) * scale, y_test.astype(np.int64))


def train(model: torch.nn.Module, x: np.ndarray, y: np.ndarray, epochs: int, seed: int
          ) -> torch.nn.Module:
    from bigmodel.engine import Trainer

    trainer = Trainer(model, loss=F.cross_entropy, optimizer="adam", lr=1e-3, seed=seed,
                      verbose=0)
    trainer.fit((x, y), epochs=epochs, batch_size=64)
    return model.eval()


def accuracy(model: torch.nn.Module, x: np.ndarray, y: np.ndarray) -> float:
    with torch.no_grad():
        logits = torch.cat([model(torch.from_numpy(x[i: i + 500])) for i in range(0, len(x), 500)])
    return float((logits.argmax(1).numpy() == y).mean())


def gradient_reference(model: torch.nn.Module, x: torch.Tensor, batch_size: int) -> float:
    """Seconds per row of one forward + backward pass over a full batch of ``batch_size`` rows
    (the images repeated): the unit a gradient method's cost is counted in."""
    rows = x.repeat(-(-batch_size // len(x)), *([1] * (x.ndim - 1)))[:batch_size]
    chunk = rows.clone().requires_grad_(True)
    started = time.perf_counter()
    torch.autograd.grad(model(chunk).max(dim=1).values.sum(), chunk)
    return (time.perf_counter() - started) / batch_size


def options_for(method: str, args: argparse.Namespace, kind: str) -> dict[str, Any]:
    if method.startswith("gradcam:"):
        return {"layer": method.split(":", 1)[1]}
    if method == "integrated_gradients":
        return {"n_steps": args.steps}
    if method in PERTURBATION_METHODS:
        extra = {"n_segments": args.segments} if kind == "image" else {}
        return {"n_samples": args.samples, **extra}
    return {}


def measure(model: torch.nn.Module, x: torch.Tensor, method: str, args: argparse.Namespace,
            kind: str) -> dict[str, Any]:
    from bigmodel.explain import explain
    from bigmodel.explain.metrics import completeness, deletion_insertion

    perturbation = method in PERTURBATION_METHODS
    images = x[: args.perturbation_images] if perturbation and args.perturbation_images else x
    options = options_for(method, args, kind)
    repeats = 1 if perturbation else max(1, args.repeats)
    name = method.split(":", 1)[0]
    explain(model, images[:1], method=name, **options)  # warm-up: imports, first-call costs
    seconds, references, result = [], [], None
    for _ in range(repeats):
        result = explain(model, images, method=name, batch_size=args.batch_size, seed=args.seed,
                         **options)
        seconds.append(result.timings["per_example_s"])
        rows = result.options["batch_size"]
        references.append(gradient_reference(model, images, rows))
    curves = deletion_insertion(model, result, steps=args.curve_steps, baseline="zeros"
                                if kind != "image" else "black", n_random=args.random_orders,
                                seed=args.seed, batch_size=result.options["batch_size"])
    summary = curves.summary()
    row = {"method": method, "images": len(images), "options": options,
           "batch_rows": result.options["batch_size"],
           "seconds_per_example": median(seconds), "seconds_all": seconds,
           "reference_seconds_per_example": median(references),
           "cost_in_gradients": median([s / r for s, r in zip(seconds, references)]),
           **summary,
           "deletion_ratio": summary["random_deletion_auc"] / max(summary["deletion_auc"], 1e-9),
           "deletion_beats_random_per_image": float(
               (curves.deletion_auc < curves.random_deletion_auc).float().mean())}
    if result.baselines is not None:
        check = completeness(model, result, result.options["batch_size"])
        row["completeness_error_mean"] = check.mean_relative_error
        row["completeness_error_median"] = float(check.relative_error.median())
    if result.convergence_delta is not None:
        row["captum_delta_abs_mean"] = float(result.convergence_delta.abs().mean())
    return row


def run_family(name: str, model: torch.nn.Module, x: torch.Tensor, args: argparse.Namespace,
               kind: str) -> list[dict[str, Any]]:
    from bigmodel.explain import applicable_methods

    usable = set(applicable_methods(model, x[:1]))
    layers = {name for name, _ in model.named_modules()}
    rows = []
    for method in args.methods:
        base, _, layer = method.partition(":")
        if base not in usable or (layer and layer not in layers):
            log(f"[{name}] {method}: does not apply, skipped")
            continue
        log(f"[{name}] {method} ...")
        row = measure(model, x, method, args, kind)
        log(f"[{name}] {method}: {row['seconds_per_example']:.3f} s/example "
            f"({row['cost_in_gradients']:.1f} gradients), deletion AUC {row['deletion_auc']:.3f} "
            f"vs random {row['random_deletion_auc']:.3f}")
        rows.append(row)
    return rows


def targets(rows: list[dict[str, Any]]) -> dict[str, Any]:
    by = {row["method"]: row for row in rows}
    checks: dict[str, Any] = {}
    if "integrated_gradients" in by:
        ig = by["integrated_gradients"]
        checks["ig_seconds_per_image"] = {"value": ig["seconds_per_example"],
                                          "target": TARGETS["integrated_gradients_s"],
                                          "met": ig["seconds_per_example"]
                                          <= TARGETS["integrated_gradients_s"]}
        checks["ig_completeness_error"] = {"value": ig["completeness_error_mean"],
                                           "target": TARGETS["ig_completeness"],
                                           "met": ig["completeness_error_mean"]
                                           <= TARGETS["ig_completeness"]}
    for method in PERTURBATION_METHODS:
        if method in by:
            value = by[method]["seconds_per_example"]
            checks[f"{method}_seconds_per_image"] = {"value": value,
                                                     "target": TARGETS["perturbation_s"],
                                                     "met": value <= TARGETS["perturbation_s"]}
    for method in GRADIENT_METHODS + CAM_METHODS + PERTURBATION_METHODS:
        if method in by:
            row = by[method]
            checks[f"{method}_beats_random"] = {
                "gain": row["deletion_gain"], "ratio": row["deletion_ratio"],
                "required": method in GRADIENT_METHODS,
                "met": row["deletion_gain"] >= TARGETS["gradient_gain"]
                and row["deletion_ratio"] >= TARGETS["gradient_ratio"]}
    return checks


def table(rows: list[dict[str, Any]]) -> str:
    body = []
    for row in rows:
        body.append([row["method"], row["images"], row["seconds_per_example"],
                     row["cost_in_gradients"], row["deletion_auc"], row["random_deletion_auc"],
                     row["insertion_auc"], row["random_insertion_auc"],
                     row.get("completeness_error_mean", "-")])
    return markdown_table(["method", "images", "s / image", "cost (gradients)", "deletion AUC",
                           "random deletion AUC", "insertion AUC", "random insertion AUC",
                           "completeness error"], body)


def main(argv: list[str] | None = None) -> dict[str, Any]:
    args = parse(argv)
    set_threads(args.threads)
    torch.manual_seed(args.seed)
    started = time.perf_counter()
    x_train, y_train, x_test, y_test = load_data(args.data_path, args.train_images, args.seed)
    if args.run_dir:
        from bigmodel.models import load_model

        cnn = load_model(args.run_dir)
        source = f"run {args.run_dir}"
    else:
        from bigmodel.models import create_model

        log(f"training seed-cnn on {len(x_train)} images, {args.epochs} epoch(s) ...")
        cnn = train(create_model("seed-cnn"), x_train, y_train, args.epochs, args.seed)
        source = f"seed-cnn trained here: {len(x_train)} images, {args.epochs} epochs"
    cnn_accuracy = accuracy(cnn, x_test[:2000], y_test[:2000])
    log(f"seed-cnn test accuracy (2,000 images): {cnn_accuracy:.4f}")
    images = torch.from_numpy(x_test[: args.images])
    families = {"cnn": {"model": source, "test_accuracy_2000": cnn_accuracy,
                        "rows": run_family("cnn", cnn, images, args, "image")}}
    if args.lstm:
        from bigmodel.models import create_model, list_models

        if "seed-rnn" in list_models():
            log("training seed-rnn (LSTM over 28 rows) ...")
            rows_train, rows_test = x_train[:, 0], x_test[:, 0]
            lstm = train(create_model("seed-rnn"), rows_train, y_train, args.epochs, args.seed)
            families["lstm"] = {"model": "seed-rnn trained here",
                                "test_accuracy_2000": accuracy(lstm, rows_test[:2000],
                                                               y_test[:2000]),
                                "rows": run_family("lstm", lstm,
                                                   torch.from_numpy(rows_test[: args.lstm_images]),
                                                   args, "sequence")}
        else:
            log("seed-rnn is not registered: LSTM skipped")
    result = {"benchmark": "explain_faithfulness", "date": today(), "machine": machine_info(),
              "command": "benchmarks/explain_faithfulness.py " + " ".join(argv or sys.argv[1:]),
              "config": {k: v for k, v in vars(args).items() if k != "out"},
              "targets": TARGETS, "families": families,
              "checks": {name: targets(family["rows"]) for name, family in families.items()},
              "seconds": round(time.perf_counter() - started, 1), "peak_rss_mib": peak_rss_mib()}
    write_json(result, args.out, "explain_faithfulness.json")
    for name, family in families.items():
        print(f"\n### {name}: {family['model']} (test accuracy {family['test_accuracy_2000']:.3f})\n")
        print(table(family["rows"]))
    return result


if __name__ == "__main__":
    main()
