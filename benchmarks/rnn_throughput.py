"""Training and inference throughput of the seed RNN program on CPU: ``keras.Sequential.fit`` /
``predict`` against a minimal hand-written ``nn.LSTM`` loop, in the same process.

    .venv/bin/python benchmarks/rnn_throughput.py                     # one epoch of 60,000, 3 repeats
    .venv/bin/python benchmarks/rnn_throughput.py --samples 6000      # quick

The seed program (seed-examples/seed_rnn.py): Fashion-MNIST images as 28 steps of 28 pixels, two
stacked LSTM(128), Dense(10, softmax), Adam, batch 32. The reference is what a PyTorch user writes::

    lstm1 = nn.LSTM(28, 128, batch_first=True); lstm2 = nn.LSTM(128, 128, batch_first=True)
    head = nn.Linear(128, 10); optimizer = Adam(lr=1e-3, eps=1e-7)
    for each shuffled batch: zero_grad; h = lstm2(lstm1(x)[0])[0][:, -1]
                             loss = cross_entropy(head(h), y); backward; step

Both start from the same weights (the Keras model's, copied in). Runs are interleaved (Keras,
reference, reference, Keras, ...) after a warm-up, repeated, and the ratio of the medians of
samples/s is reported, so load from other processes cancels as far as possible. The Keras time is
the whole ``model.fit(...)`` call (``verbose=0``). ``predict`` (batch 256, the 10,000 test images) is
compared with an eval loop under ``torch.inference_mode()`` returning softmax probabilities as NumPy.

A third comparison isolates the layer: ``bigmodel.nn.recurrent.LSTM`` (one Keras bias, the second
bias of the fused op passed as zeros) against ``torch.nn.LSTM`` (two biases), forward + backward of
one batch, same fused kernel: the ratio should be ~1.

Keras 3 on TensorFlow is timed when ``import tensorflow`` works; otherwise it is recorded as skipped.
Results go to ``benchmarks/out/rnn_throughput.json`` and a Markdown table is printed.
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

TARGET_RATIO = 0.95
OUT = Path(__file__).resolve().parent / "out"


def load_rows(samples: int, test_samples: int) -> tuple[np.ndarray, ...]:
    from bigmodel.keras.datasets import fashion_mnist

    (x, y), (x_test, _) = fashion_mnist.load_data()
    x = (x[:samples].astype(np.float32) / 255.0)  # (N, 28, 28): 28 rows of 28 pixels
    return x, y[:samples].astype(np.int64), x_test[:test_samples].astype(np.float32) / 255.0


def keras_model(seed: int) -> Any:
    from bigmodel.keras.layers import LSTM, Dense
    from bigmodel.keras.models import Sequential

    torch.manual_seed(seed)
    model = Sequential([LSTM(128, input_shape=(None, 28), return_sequences=True), LSTM(128),
                        Dense(10, activation="softmax")])
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    return model


class Reference(nn.Module):
    """The seed RNN written directly with ``torch.nn``."""

    def __init__(self) -> None:
        super().__init__()
        self.lstm1 = nn.LSTM(28, 128, batch_first=True)
        self.lstm2 = nn.LSTM(128, 128, batch_first=True)
        self.head = nn.Linear(128, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.lstm2(self.lstm1(x)[0])[0][:, -1]
        return self.head(h)

    def load_keras(self, weights: list[np.ndarray]) -> Reference:
        with torch.no_grad():
            for lstm, (kernel, recurrent, bias) in ((self.lstm1, weights[0:3]),
                                                    (self.lstm2, weights[3:6])):
                lstm.weight_ih_l0.copy_(torch.from_numpy(kernel).T)  # gates i, f, c, o = i, f, g, o
                lstm.weight_hh_l0.copy_(torch.from_numpy(recurrent).T)
                lstm.bias_ih_l0.copy_(torch.from_numpy(bias))
                lstm.bias_hh_l0.zero_()
            self.head.weight.copy_(torch.from_numpy(weights[6]).T)
            self.head.bias.copy_(torch.from_numpy(weights[7]))
        return self


def reference_epoch(model: Reference, optimizer: torch.optim.Optimizer, x: torch.Tensor,
                    y: torch.Tensor, batch_size: int, generator: torch.Generator) -> float:
    model.train()
    started = time.perf_counter()
    order = torch.randperm(len(x), generator=generator)
    for start in range(0, len(x), batch_size):
        index = order[start:start + batch_size]
        optimizer.zero_grad(set_to_none=True)
        loss = F.cross_entropy(model(x[index]), y[index])
        loss.backward()
        optimizer.step()
    return time.perf_counter() - started


def reference_predict(model: Reference, x: torch.Tensor, batch_size: int) -> float:
    model.eval()
    started = time.perf_counter()
    with torch.inference_mode():
        parts = [model(x[i:i + batch_size]).softmax(-1) for i in range(0, len(x), batch_size)]
        torch.cat(parts).numpy()
    return time.perf_counter() - started


def layer_ratio(repeats: int) -> dict[str, float]:
    """Forward+backward of one batch (32, 28, 28): bigmodel LSTM vs torch.nn.LSTM, same kernel."""
    from bigmodel.nn.recurrent import LSTM

    torch.manual_seed(0)
    reference = nn.LSTM(28, 128, batch_first=True)
    ours = LSTM.from_torch(reference)
    x = torch.randn(32, 28, 28)

    def run(module: nn.Module) -> float:
        started = time.perf_counter()
        for _ in range(20):
            out, _ = module(x)
            out.sum().backward()
        return (time.perf_counter() - started) / 20

    ours_times, ref_times = [], []
    for index in range(2 * repeats + 1):
        first, second = (ours, reference) if index % 2 == 0 else (reference, ours)
        t_first, t_second = run(first), run(second)
        if index == 0:
            continue  # warm-up
        ours_times.append(t_first if first is ours else t_second)
        ref_times.append(t_second if first is ours else t_first)
    ours_ms, ref_ms = statistics.median(ours_times) * 1e3, statistics.median(ref_times) * 1e3
    return {"bigmodel_ms": ours_ms, "torch_ms": ref_ms, "speed_ratio": ref_ms / ours_ms}


def tensorflow_keras(x: np.ndarray, y: np.ndarray, x_test: np.ndarray, batch_size: int) -> Any:
    try:
        import tensorflow as tf  # noqa: F401
    except ImportError:
        return "skipped: tensorflow is not installed in this interpreter"
    from tensorflow import keras as tfk

    model = tfk.Sequential([tfk.layers.LSTM(128, input_shape=(None, 28), return_sequences=True),
                            tfk.layers.LSTM(128), tfk.layers.Dense(10, activation="softmax")])
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    model.fit(x[:batch_size * 4], y[:batch_size * 4], epochs=1, batch_size=batch_size, verbose=0)
    started = time.perf_counter()
    model.fit(x, y, epochs=1, batch_size=batch_size, verbose=0)
    fit = len(x) / (time.perf_counter() - started)
    started = time.perf_counter()
    model.predict(x_test, batch_size=256, verbose=0)
    return {"fit_samples_per_s": fit, "predict_samples_per_s": len(x_test) / (time.perf_counter()
                                                                              - started)}


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--samples", type=int, default=60_000)
    parser.add_argument("--test-samples", type=int, default=10_000)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--out", type=Path, default=OUT / "rnn_throughput.json")
    parser.add_argument("--threads", type=int, default=None,
                        help="torch CPU threads (default: torch's choice)")
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)

    x_np, y_np, test_np = load_rows(args.samples, args.test_samples)
    x, y, x_test = torch.from_numpy(x_np), torch.from_numpy(y_np), torch.from_numpy(test_np)
    model = keras_model(seed=0)
    reference = Reference().load_keras(model.get_weights())
    optimizer = torch.optim.Adam(reference.parameters(), lr=1e-3, eps=1e-7)
    generator = torch.Generator().manual_seed(0)

    # Warm-up: a few batches of each path (allocator, oneDNN primitives, lazy set-up).
    warm = args.batch_size * 8
    model.fit(x_np[:warm], y_np[:warm], epochs=1, batch_size=args.batch_size, verbose=0)
    reference_epoch(reference, optimizer, x[:warm], y[:warm], args.batch_size, generator)
    model.predict(test_np[:512], batch_size=256, verbose=0)
    reference_predict(reference, x_test[:512], 256)

    fit_keras, fit_ref, pred_keras, pred_ref = [], [], [], []
    for index in range(args.repeats):
        order = ("keras", "ref") if index % 2 == 0 else ("ref", "keras")
        for which in order:
            if which == "keras":
                started = time.perf_counter()
                model.fit(x_np, y_np, epochs=1, batch_size=args.batch_size, verbose=0)
                fit_keras.append(len(x) / (time.perf_counter() - started))
                started = time.perf_counter()
                model.predict(test_np, batch_size=256, verbose=0)
                pred_keras.append(len(x_test) / (time.perf_counter() - started))
            else:
                fit_ref.append(len(x) / reference_epoch(reference, optimizer, x, y,
                                                        args.batch_size, generator))
                pred_ref.append(len(x_test) / reference_predict(reference, x_test, 256))
        print(f"repeat {index + 1}/{args.repeats}: fit keras {fit_keras[-1]:,.0f} vs reference "
              f"{fit_ref[-1]:,.0f} samples/s; predict keras {pred_keras[-1]:,.0f} vs reference "
              f"{pred_ref[-1]:,.0f}", flush=True)

    results: dict[str, Any] = {
        "date": time.strftime("%Y-%m-%d"),
        "machine": {"cpu": platform.processor() or platform.machine(),
                    "threads": torch.get_num_threads(), "torch": torch.__version__},
        "samples": len(x), "test_samples": len(x_test), "batch_size": args.batch_size,
        "repeats": args.repeats,
        "fit": {"keras_samples_per_s": statistics.median(fit_keras),
                "reference_samples_per_s": statistics.median(fit_ref),
                "all_keras": fit_keras, "all_reference": fit_ref},
        "predict": {"keras_samples_per_s": statistics.median(pred_keras),
                    "reference_samples_per_s": statistics.median(pred_ref),
                    "all_keras": pred_keras, "all_reference": pred_ref},
        "layer": layer_ratio(args.repeats),
        "tensorflow": tensorflow_keras(x_np, y_np, test_np, args.batch_size),
    }
    for part in ("fit", "predict"):
        entry = results[part]
        entry["ratio"] = entry["keras_samples_per_s"] / entry["reference_samples_per_s"]
        entry["target_met"] = entry["ratio"] >= TARGET_RATIO
    args.out.parent.mkdir(parents=True, exist_ok=True)
    tmp = args.out.with_suffix(".tmp")
    tmp.write_text(json.dumps(results, indent=2))
    tmp.replace(args.out)

    print("\n| path | Keras surface (samples/s) | hand-written nn.LSTM (samples/s) | ratio | "
          f"target >= {TARGET_RATIO} |")
    print("| --- | --- | --- | --- | --- |")
    for part in ("fit", "predict"):
        entry = results[part]
        print(f"| {part} | {entry['keras_samples_per_s']:,.0f} | "
              f"{entry['reference_samples_per_s']:,.0f} | {entry['ratio']:.3f} | "
              f"{'met' if entry['target_met'] else 'NOT met'} |")
    layer = results["layer"]
    print(f"\nLSTM layer, forward+backward of (32, 28, 28): bigmodel {layer['bigmodel_ms']:.2f} ms, "
          f"torch.nn.LSTM {layer['torch_ms']:.2f} ms, speed ratio {layer['speed_ratio']:.3f}")
    print(f"Keras 3 on TensorFlow: {results['tensorflow']}")
    return results


if __name__ == "__main__":
    main(sys.argv[1:])
