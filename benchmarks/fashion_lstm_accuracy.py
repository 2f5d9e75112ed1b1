"""Test accuracy of the seed RNN program on Fashion-MNIST rows after 5 epochs (target >= 88%).

    .venv/bin/python benchmarks/fashion_lstm_accuracy.py                 # the seed program (Keras)
    .venv/bin/python benchmarks/fashion_lstm_accuracy.py --recipe        # also configs/fashion_lstm.yaml

The Keras run is seed-examples/seed_rnn.py with its imports pointed at bigmodel and the data
defined as a user would: ``fashion_mnist.load_data()``, pixels scaled to [0, 1], each image read as
28 steps of 28 pixels; ``fit(epochs=5, batch_size=32)`` then ``evaluate`` on the 10,000 test
images. ``--recipe`` also trains the plain-PyTorch ``seed-rnn`` through ``bigmodel train``'s code
path (``bigmodel.recipes.run.run_recipe``) with the recipe as shipped. Results go to
``benchmarks/out/fashion_lstm_accuracy.json``.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

TARGET = 0.88
ROOT = Path(__file__).resolve().parents[1]
SEED_RNN = ROOT.parent / "shared" / "seed-examples" / "seed_rnn.py"
OUT = Path(__file__).resolve().parent / "out"


def run_seed_program(epochs: int, samples: int | None) -> dict[str, Any]:
    from bigmodel.keras.datasets import fashion_mnist

    (x, y), (x_test, y_test) = fashion_mnist.load_data()
    if samples:
        x, y = x[:samples], y[:samples]
    train_data = x.astype(np.float32) / 255.0  # (N, 28, 28): 28 rows of 28 pixels
    train_labels = y
    if not SEED_RNN.is_file():
        raise SystemExit(f"The seed program is not at {SEED_RNN}")
    source = SEED_RNN.read_text()
    source = source.replace("import tensorflow as tf\n", "")
    source = source.replace("from tensorflow.keras.", "from bigmodel.keras.")
    source = source.replace("epochs=5", f"epochs={epochs}")
    torch.manual_seed(0)
    namespace = {"train_data": train_data, "train_labels": train_labels}
    started = time.perf_counter()
    exec(compile(source, "seed_rnn.py", "exec"), namespace)
    seconds = time.perf_counter() - started
    model = namespace["model"]
    loss, accuracy = model.evaluate(x_test.astype(np.float32) / 255.0, y_test, batch_size=256,
                                    verbose=0)
    history = model.history.history
    return {"test_accuracy": float(accuracy), "test_loss": float(loss),
            "train_accuracy_per_epoch": [float(a) for a in history["accuracy"]],
            "parameters": model.count_params(), "fit_seconds": seconds,
            "train_samples": len(train_data), "epochs": epochs}


def run_recipe(epochs: int, samples: int | None) -> dict[str, Any]:
    from bigmodel.recipes.run import run_recipe
    from bigmodel.recipes.schema import load_recipe

    overrides = [f"train.epochs={epochs}"]
    if samples:
        overrides.append(f"data.train_subset={samples}")
    recipe = load_recipe(ROOT / "configs" / "fashion_lstm.yaml", overrides)
    with tempfile.TemporaryDirectory() as tmp:
        result = run_recipe(recipe, run_dir=str(Path(tmp) / "run"), verbose=0)
    return {"test_accuracy": result.test_accuracy, "test_loss": result.test_loss,
            "parameters": result.parameters, "seconds": result.seconds, "epochs": epochs}


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=5)
    parser.add_argument("--samples", type=int, default=None, help="training images (default all)")
    parser.add_argument("--recipe", action="store_true", help="also run configs/fashion_lstm.yaml")
    parser.add_argument("--out", type=Path, default=OUT / "fashion_lstm_accuracy.json")
    parser.add_argument("--threads", type=int, default=None,
                        help="torch CPU threads (default: torch's choice)")
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)

    results: dict[str, Any] = {"date": time.strftime("%Y-%m-%d"), "target": TARGET,
                               "torch": torch.__version__, "threads": torch.get_num_threads()}
    results["seed_program"] = run_seed_program(args.epochs, args.samples)
    results["seed_program"]["target_met"] = results["seed_program"]["test_accuracy"] >= TARGET
    print(f"seed RNN program: test accuracy {results['seed_program']['test_accuracy']:.4f} "
          f"(target {TARGET}), {results['seed_program']['fit_seconds']:.0f} s", flush=True)
    if args.recipe:
        results["recipe"] = run_recipe(args.epochs, args.samples)
        results["recipe"]["target_met"] = results["recipe"]["test_accuracy"] >= TARGET
        print(f"configs/fashion_lstm.yaml: test accuracy {results['recipe']['test_accuracy']:.4f}",
              flush=True)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    tmp = args.out.with_suffix(".tmp")
    tmp.write_text(json.dumps(results, indent=2))
    tmp.replace(args.out)
    return results


if __name__ == "__main__":
    main(sys.argv[1:])
