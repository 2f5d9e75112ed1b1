"""Test accuracy of the seed CNN on Fashion-MNIST, trained through the Keras surface exactly as the
seed program does (raw uint8 images, ``adam``, sparse categorical cross-entropy, 5 epochs, batch 32).

    .venv/bin/python benchmarks/fashion_accuracy.py            # target: >= 90.0 % on the 10,000 test images
    .venv/bin/python benchmarks/fashion_accuracy.py --cli      # also `bigmodel train configs/fashion_cnn.yaml`

Prints the time of every epoch and writes ``benchmarks/out/fashion_accuracy.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import torch

from bigmodel import keras
from bigmodel.keras import layers

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _common as common  # noqa: E402

TARGET_ACCURACY = 0.90
REPO = Path(__file__).resolve().parents[1]


class EpochTimer(keras.callbacks.Callback):
    """Records the wall time of every epoch (validation included, if any) and logs it."""

    def __init__(self) -> None:
        super().__init__()
        self.seconds: list[float] = []
        self._start = 0.0

    def on_epoch_begin(self, epoch: int, logs: Any = None) -> None:
        self._start = time.perf_counter()

    def on_epoch_end(self, epoch: int, logs: Any = None) -> None:
        self.seconds.append(time.perf_counter() - self._start)
        common.log(f"  epoch {epoch + 1}: {self.seconds[-1]:.1f}s  " + "  ".join(
            f"{k}={v:.4f}" for k, v in (logs or {}).items()))


def run_keras(train: tuple, test: tuple, epochs: int, batch_size: int, seed: int) -> dict[str, Any]:
    """The seed program, verbatim apart from the imports (and a seed and a timing callback)."""
    (train_images, train_labels), (test_images, test_labels) = train, test
    torch.manual_seed(seed)
    model = keras.Sequential([
        layers.Conv2D(32, (3, 3), activation="relu", input_shape=(28, 28, 1)),
        layers.MaxPooling2D((2, 2)),
        layers.Conv2D(64, (3, 3), activation="relu"),
        layers.MaxPooling2D((2, 2)),
        layers.Conv2D(64, (3, 3), activation="relu"),
        layers.Flatten(),
        layers.Dense(64, activation="relu"),
        layers.Dense(10, activation="softmax"),
    ])
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    timer = EpochTimer()
    t0 = time.perf_counter()
    history = model.fit(train_images, train_labels, epochs=epochs, batch_size=batch_size,
                        callbacks=[timer], verbose=0)
    fit_seconds = time.perf_counter() - t0
    test_loss, test_acc = model.evaluate(test_images, test_labels, verbose=0)
    return {"test_accuracy": float(test_acc), "test_loss": float(test_loss),
            "epoch_seconds": timer.seconds, "fit_seconds": fit_seconds,
            "history": {k: [float(v) for v in vs] for k, vs in history.history.items()},
            "params": model.count_params()}


def run_tf(python: str, train: tuple, test: tuple, epochs: int, batch_size: int, seed: int,
           threads: int | None) -> dict[str, Any]:
    """The seed program on Keras 3 + TensorFlow (tf_reference.py --mode accuracy), same raw data."""
    import numpy as np

    script = Path(__file__).resolve().parent / "tf_reference.py"
    with tempfile.TemporaryDirectory() as tmp:
        train_file, test_file = Path(tmp) / "train.npz", Path(tmp) / "test.npy"
        np.savez(train_file, x=train[0][..., None], y=train[1], y_test=test[1])
        np.save(test_file, test[0][..., None])
        cmd = [python, str(script), "--mode", "accuracy", "--train", str(train_file), "--test",
               str(test_file), "--epochs", str(epochs), "--batch-size", str(batch_size),
               "--seed", str(seed), "--threads", str(threads or 0)]
        proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode != 0:
        return {"status": "failed", "stderr_tail": proc.stderr[-1500:]}
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    out["status"] = "measured"
    out["target_met"] = out["test_accuracy"] >= TARGET_ACCURACY
    return out


def run_cli(epochs: int, train_samples: int | None, threads: int | None) -> dict[str, Any]:
    """`bigmodel train configs/fashion_cnn.yaml` in a subprocess, if the command exists."""
    recipe = REPO / "configs" / "fashion_cnn.yaml"
    if not recipe.exists():
        return {"status": "skipped", "note": f"{recipe} does not exist"}
    with tempfile.TemporaryDirectory() as tmp:
        run_dir = Path(tmp) / "run"
        cmd = [sys.executable, "-m", "bigmodel", "train", str(recipe), "--run-dir", str(run_dir),
               "--set", f"train.epochs={epochs}"]
        t0 = time.perf_counter()
        env = dict(os.environ, **({"OMP_NUM_THREADS": str(threads)} if threads else {}))
        proc = subprocess.run(cmd, capture_output=True, text=True, cwd=REPO, env=env)
        seconds = time.perf_counter() - t0
        shown = "bigmodel train configs/fashion_cnn.yaml" + (
            f" --set train.epochs={epochs}" if epochs != 5 else "")
        if proc.returncode != 0:
            return {"status": "failed", "command": shown, "returncode": proc.returncode,
                    "stderr_tail": proc.stderr[-1500:]}
        results_file = run_dir / "results.json"
        results = json.loads(results_file.read_text()) if results_file.exists() else {}
        out = {"status": "measured", "command": shown, "seconds": seconds,
               "stdout_tail": proc.stdout[-500:], "results": results}
        acc = results.get("test_accuracy", results.get("results", {}).get("test", {}).get("accuracy"))
        if acc is not None:
            out["test_accuracy"] = float(acc)
            out["target_met"] = float(acc) >= TARGET_ACCURACY
        if train_samples is not None:
            out["note"] = "the CLI always trains on the full training set"
        return out


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--epochs", type=int, default=5)
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--samples", type=int, default=None, help="training images (default: all 60,000)")
    p.add_argument("--test-samples", type=int, default=None, help="test images (default: all 10,000)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--cli", action="store_true", help="also run `bigmodel train configs/fashion_cnn.yaml`")
    p.add_argument("--scaled", action="store_true",
                   help="diagnostic: also train the same program on images / 255.0")
    p.add_argument("--tf-python", default=None,
                   help="an interpreter with tensorflow + keras 3: also run the seed program there")
    p.add_argument("--threads", type=int, default=None)
    p.add_argument("--data", default=None)
    p.add_argument("--out", default=str(common.DEFAULT_OUT))
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> dict[str, Any]:
    args = parse_args(argv)
    common.set_threads(args.threads)
    (x_train, y_train), (x_test, y_test) = common.load_fashion(args.data)
    if args.samples:
        x_train, y_train = x_train[:args.samples], y_train[:args.samples]
    if args.test_samples:
        x_test, y_test = x_test[:args.test_samples], y_test[:args.test_samples]
    info = common.machine_info()
    common.log(f"fashion_accuracy: {len(x_train)} training / {len(x_test)} test images, "
               f"{args.epochs} epochs, batch {args.batch_size}, {info['torch_threads']} threads")
    keras_result = run_keras((x_train, y_train), (x_test, y_test), args.epochs, args.batch_size,
                             args.seed)
    keras_result["target_accuracy"] = TARGET_ACCURACY
    keras_result["target_met"] = keras_result["test_accuracy"] >= TARGET_ACCURACY
    scaled = None
    if args.scaled:
        common.log("diagnostic: the same program on train_images / 255.0")
        scaled = run_keras((x_train / 255.0, y_train), (x_test / 255.0, y_test), args.epochs,
                           args.batch_size, args.seed)
    tf_result = None
    if args.tf_python:
        common.log(f"Keras 3 on TensorFlow ({args.tf_python}), same raw data")
        tf_result = run_tf(args.tf_python, (x_train, y_train), (x_test, y_test), args.epochs,
                           args.batch_size, args.seed, args.threads)
    cli = run_cli(args.epochs, args.samples, args.threads) if args.cli else {
        "status": "not run", "note": "pass --cli to also run `bigmodel train configs/fashion_cnn.yaml`"}
    result = {
        "benchmark": "fashion_accuracy",
        "date": common.today(),
        "machine": info,
        "command": "benchmarks/fashion_accuracy.py " + " ".join(argv if argv is not None else sys.argv[1:]),
        "config": {"train_samples": len(x_train), "test_samples": len(x_test),
                   "epochs": args.epochs, "batch_size": args.batch_size, "seed": args.seed,
                   "inputs": "raw uint8 images, as the seed program"},
        "keras": keras_result,
        "keras_scaled_inputs": scaled if scaled is not None else {"status": "not run"},
        "tensorflow": tf_result if tf_result is not None else {"status": "not run"},
        "cli": cli,
        "peak_rss_mib": common.peak_rss_mib(),
    }
    path = common.write_json(result, args.out, "fashion_accuracy.json")
    rows = [[f"epoch {i + 1}", f"{s:.1f}", f"{keras_result['history']['loss'][i]:.4f}",
             f"{keras_result['history']['accuracy'][i]:.4f}"]
            for i, s in enumerate(keras_result["epoch_seconds"])]
    print(common.markdown_table(["epoch", "seconds", "train loss", "train accuracy"], rows))
    print()
    summary = [["Keras surface (seed program)", f"{100 * keras_result['test_accuracy']:.2f}%",
                f"{100 * TARGET_ACCURACY:.1f}%", "met" if keras_result["target_met"] else "MISSED"]]
    if scaled is not None:
        summary.append(["same, inputs / 255.0 (diagnostic)", f"{100 * scaled['test_accuracy']:.2f}%",
                        f"{100 * TARGET_ACCURACY:.1f}%",
                        "met" if scaled["test_accuracy"] >= TARGET_ACCURACY else "MISSED"])
    if tf_result is not None and tf_result.get("status") == "measured":
        summary.append([f"Keras {tf_result['keras']} on TensorFlow {tf_result['tensorflow']} (peer)",
                        f"{100 * tf_result['test_accuracy']:.2f}%", f"{100 * TARGET_ACCURACY:.1f}%",
                        "met" if tf_result["target_met"] else "MISSED"])
    if cli.get("test_accuracy") is not None:
        summary.append([cli["command"], f"{100 * cli['test_accuracy']:.2f}%",
                        f"{100 * TARGET_ACCURACY:.1f}%", "met" if cli["target_met"] else "MISSED"])
    print(common.markdown_table(["how", "test accuracy", "target", ""], summary))
    if cli["status"] != "measured":
        print(f"CLI: {cli['status']} ({cli.get('note') or cli.get('stderr_tail', '')[-300:]})")
    print(f"JSON: {path}")
    return result


if __name__ == "__main__":
    main()
