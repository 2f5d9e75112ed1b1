"""Training and inference throughput of the seed CNN: ``keras.Sequential.fit``/``predict`` against a
minimal hand-written PyTorch loop, in the same process, on CPU.

    .venv/bin/python benchmarks/fit_throughput.py                  # full epoch of 60,000, 3 repeats
    .venv/bin/python benchmarks/fit_throughput.py --samples 6000   # quick

Method: both paths train the same architecture (the Keras model's initial weights are copied into
the PyTorch one) on the same float32 NHWC data, batch 32, one epoch, shuffled. The runs are
interleaved (Keras, PyTorch, PyTorch, Keras, ...) after a warm-up of both, each repeated, and the
ratio of the medians is reported, so load from other processes on the machine cancels out as far
as possible. The CPU time of the process is recorded too (its ratio is less disturbed by other
load when torch runs one thread; with more threads it also counts the pool's spin-waiting). The
Keras time is the whole ``model.fit(...)`` call (input conversion and checks included,
``verbose=0``); the reference is::

    for each batch: zero_grad; loss = F.cross_entropy(model(x), y); loss.backward(); opt.step()

with ``torch.optim.Adam(lr=1e-3, eps=1e-7)`` (Keras's epsilon). ``predict`` (batch 256, the
10,000 test images) is compared with an eval loop under ``torch.inference_mode()`` returning softmax
probabilities as a NumPy array, as ``predict`` does.

Keras 3 on TensorFlow is timed too when ``import tensorflow`` works in this interpreter or in the one
given by ``--tf-python`` (run as a subprocess, see ``tf_reference.py``); otherwise it is recorded as
skipped. Results go to ``benchmarks/out/fit_throughput.json`` and a Markdown table is printed.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _common as common  # noqa: E402

TARGET_FIT_RATIO = 0.95


def _keras_model(seed: int) -> Any:
    torch.manual_seed(seed)
    model = common.seed_cnn_keras()
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    return model


def _torch_model(keras_model: Any, fused: bool = False) -> tuple[common.TorchSeedCNN, torch.optim.Optimizer]:
    """The hand-written model; its Adam is torch's default implementation (the per-tensor loop
    on CPU) unless ``fused`` (the single-kernel one bigmodel's engine picks)."""
    model = common.TorchSeedCNN().load_keras_weights(keras_model.get_weights())
    return model, torch.optim.Adam(model.parameters(), lr=1e-3, eps=1e-7, fused=fused or None)


def torch_fit_epoch(model: torch.nn.Module, optimizer: torch.optim.Optimizer, x: torch.Tensor,
                    y: torch.Tensor, batch_size: int, generator: torch.Generator) -> float:
    """The minimal loop; returns the last loss (read once, at the end)."""
    model.train()
    order = torch.randperm(x.shape[0], generator=generator)
    loss = torch.zeros(())
    for start in range(0, x.shape[0], batch_size):
        index = order[start:start + batch_size]
        xb, yb = x.index_select(0, index), y.index_select(0, index)
        optimizer.zero_grad(set_to_none=True)
        loss = F.cross_entropy(model(xb), yb)
        loss.backward()
        optimizer.step()
    return float(loss.detach())


def torch_predict(model: torch.nn.Module, x: torch.Tensor, batch_size: int) -> np.ndarray:
    model.eval()
    with torch.inference_mode():
        out = [F.softmax(model(x[s:s + batch_size]), dim=-1)
               for s in range(0, x.shape[0], batch_size)]
    return torch.cat(out).numpy()


def _tf_python(requested: str | None, disabled: bool = False) -> tuple[str | None, str]:
    """The interpreter to time Keras-on-TensorFlow with, or None and why not."""
    if disabled:
        return None, "skipped: --no-tf"
    if importlib.util.find_spec("tensorflow") is not None:
        return sys.executable, "tensorflow importable in this interpreter"
    if requested:
        probe = subprocess.run([requested, "-c", "import tensorflow, keras; print(tensorflow.__version__)"],
                               capture_output=True, text=True)
        if probe.returncode == 0:
            return requested, f"tensorflow {probe.stdout.strip()} in {requested}"
        return None, f"--tf-python {requested} cannot import tensorflow: {probe.stderr.strip()[-200:]}"
    return None, ("skipped: `import tensorflow` fails in this interpreter and no --tf-python was "
                  "given (TensorFlow is an optional peer, not installed in the project venv)")


def _run_tf(python: str, data_file: Path, test_file: Path, batch_size: int,
            predict_batch: int, threads: int) -> dict[str, Any]:
    script = Path(__file__).resolve().parent / "tf_reference.py"
    proc = subprocess.run([python, str(script), "--train", str(data_file), "--test", str(test_file),
                           "--batch-size", str(batch_size), "--predict-batch", str(predict_batch),
                           "--threads", str(threads)],
                          capture_output=True, text=True)
    if proc.returncode != 0:
        raise RuntimeError(f"tf_reference.py failed:\n{proc.stderr[-2000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--samples", type=int, default=60000, help="training images (default: all)")
    p.add_argument("--predict-samples", type=int, default=10000, help="test images for predict")
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--predict-batch", type=int, default=256)
    p.add_argument("--repeats", type=int, default=3, help="timed epochs per path")
    p.add_argument("--predict-repeats", type=int, default=5)
    p.add_argument("--warmup-batches", type=int, default=50)
    p.add_argument("--threads", type=int, default=None, help="torch.set_num_threads (default: torch's)")
    p.add_argument("--tf-python", default=None,
                   help="a Python interpreter with tensorflow+keras 3 to time the TF peer with")
    p.add_argument("--no-tf", action="store_true", help="do not time Keras on TensorFlow")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--data", default=None, help="Fashion-MNIST directory (default: search order)")
    p.add_argument("--out", default=str(common.DEFAULT_OUT))
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> dict[str, Any]:
    args = parse_args(argv)
    common.set_threads(args.threads)
    (x_train, y_train), (x_test, _) = common.load_fashion(args.data)
    n, m = min(args.samples, len(x_train)), min(args.predict_samples, len(x_test))
    x = (x_train[:n].astype(np.float32) / 255.0)[..., None]  # (n, 28, 28, 1), C-contiguous
    y = y_train[:n].astype(np.int64)
    xt = (x_test[:m].astype(np.float32) / 255.0)[..., None]
    x_t, y_t, xt_t = torch.from_numpy(x), torch.from_numpy(y), torch.from_numpy(xt)
    rss_after_data = common.peak_rss_mib()
    info = common.machine_info()
    common.log(f"fit_throughput: {n} samples, batch {args.batch_size}, {args.repeats} repeats, "
               f"{info['torch_threads']} torch threads")

    tf_python, tf_note = _tf_python(args.tf_python, args.no_tf)
    tf_files: tuple[Path, Path] | None = None
    tmp = None
    if tf_python is not None:
        tmp = tempfile.TemporaryDirectory()
        tf_files = (Path(tmp.name) / "train.npz", Path(tmp.name) / "test.npy")
        np.savez(tf_files[0], x=x, y=y)
        np.save(tf_files[1], xt)

    # Warm-up: oneDNN primitives, allocator, first-call paths of both.
    warm = min(n, args.warmup_batches * args.batch_size)
    km = _keras_model(args.seed)
    km.fit(x[:warm], y[:warm], batch_size=args.batch_size, epochs=1, verbose=0)
    tm, topt = _torch_model(_keras_model(args.seed))
    torch_fit_epoch(tm, topt, x_t[:warm], y_t[:warm], args.batch_size, torch.Generator().manual_seed(0))

    runs: dict[str, list[float]] = {"keras": [], "torch": [], "torch_fused": [], "tensorflow": []}
    cpu: dict[str, list[float]] = {"keras": [], "torch": [], "torch_fused": [], "keras_predict": [],
                                   "torch_predict": []}
    final_loss: dict[str, list[float]] = {"keras": [], "torch": [], "torch_fused": []}
    keras_model = torch_model = None
    for rep in range(args.repeats):
        order = ["keras", "torch", "torch_fused", "tensorflow"]
        order = order if rep % 2 == 0 else order[::-1]
        for path in order:
            if path == "keras":
                keras_model = _keras_model(args.seed + rep)
                t0, c0 = time.perf_counter(), time.process_time()
                hist = keras_model.fit(x, y, batch_size=args.batch_size, epochs=1, verbose=0)
                runs["keras"].append(time.perf_counter() - t0)
                cpu["keras"].append(time.process_time() - c0)
                final_loss["keras"].append(hist.history["loss"][-1])
            elif path in ("torch", "torch_fused"):
                model, opt = _torch_model(_keras_model(args.seed + rep), fused=path == "torch_fused")
                torch_model = model if path == "torch" else torch_model
                gen = torch.Generator().manual_seed(args.seed + rep)
                t0, c0 = time.perf_counter(), time.process_time()
                final_loss[path].append(torch_fit_epoch(model, opt, x_t, y_t, args.batch_size, gen))
                runs[path].append(time.perf_counter() - t0)
                cpu[path].append(time.process_time() - c0)
            elif tf_python is not None and tf_files is not None:
                tf = _run_tf(tf_python, *tf_files, args.batch_size, args.predict_batch,
                             info["torch_threads"])
                runs["tensorflow"].append(tf["fit_seconds"])
                runs.setdefault("tensorflow_predict", []).append(tf["predict_seconds"])
                cpu.setdefault("tensorflow", []).append(tf["fit_cpu_seconds"])
                cpu.setdefault("tensorflow_predict", []).append(tf["predict_cpu_seconds"])
                tf_note = f"keras {tf['keras']} on tensorflow {tf['tensorflow']} ({tf_python})"
            common.log(f"  repeat {rep + 1}: " + ", ".join(
                f"{k} {v[-1]:.2f}s" for k, v in runs.items() if len(v) > rep))

    # predict: the last trained models of both paths, interleaved.
    pred: dict[str, list[float]] = {"keras": [], "torch": []}
    agree = None
    for rep in range(args.predict_repeats):
        for path in (["keras", "torch"] if rep % 2 == 0 else ["torch", "keras"]):
            t0, c0 = time.perf_counter(), time.process_time()
            if path == "keras":
                out_k = keras_model.predict(xt, batch_size=args.predict_batch, verbose=0)
            else:
                out_t = torch_predict(torch_model, xt_t, args.predict_batch)
            pred[path].append(time.perf_counter() - t0)
            cpu[f"{path}_predict"].append(time.process_time() - c0)
    agree = {"keras_shape": list(out_k.shape), "torch_shape": list(out_t.shape),
             "same_dtype": str(out_k.dtype) == str(out_t.dtype)}
    if tmp is not None:
        tmp.cleanup()

    def sps(seconds: list[float], count: int) -> float:
        return count / common.median(seconds) if seconds else float("nan")

    fit_k, fit_t = sps(runs["keras"], n), sps(runs["torch"], n)
    pred_k, pred_t = sps(pred["keras"], m), sps(pred["torch"], m)
    steps = -(-n // args.batch_size)
    result: dict[str, Any] = {
        "benchmark": "fit_throughput",
        "date": common.today(),
        "machine": info,
        "command": "benchmarks/fit_throughput.py " + " ".join(argv if argv is not None else sys.argv[1:]),
        "config": {"samples": n, "predict_samples": m, "batch_size": args.batch_size,
                   "predict_batch": args.predict_batch, "repeats": args.repeats,
                   "predict_repeats": args.predict_repeats, "steps_per_epoch": steps},
        "fit": {
            "keras_samples_per_s": fit_k,
            "torch_samples_per_s": fit_t,
            "ratio": fit_k / fit_t,
            # The same hand-written loop with torch's fused Adam (the implementation bigmodel's
            # engine picks): how much of the ratio is the optimizer kernel.
            "torch_fused_samples_per_s": sps(runs["torch_fused"], n),
            "ratio_vs_fused_reference": fit_k / sps(runs["torch_fused"], n),
            "torch_fused_cpu_seconds": cpu["torch_fused"],
            "keras_ms_per_step": 1000 * common.median(runs["keras"]) / steps,
            "torch_ms_per_step": 1000 * common.median(runs["torch"]) / steps,
            "keras_seconds": runs["keras"],
            "torch_seconds": runs["torch"],
            "keras_cpu_seconds": cpu["keras"],
            "torch_cpu_seconds": cpu["torch"],
            "ratio_cpu_time": common.median(cpu["torch"]) / common.median(cpu["keras"]),
            "keras_epoch_loss": final_loss["keras"],
            "torch_last_batch_loss": final_loss["torch"],
            "target_ratio": TARGET_FIT_RATIO,
            "target_met": fit_k / fit_t >= TARGET_FIT_RATIO,
        },
        "predict": {
            "keras_samples_per_s": pred_k,
            "torch_samples_per_s": pred_t,
            "ratio": pred_k / pred_t,
            "keras_seconds": pred["keras"],
            "torch_seconds": pred["torch"],
            "keras_cpu_seconds": cpu["keras_predict"],
            "torch_cpu_seconds": cpu["torch_predict"],
            "ratio_cpu_time": common.median(cpu["torch_predict"]) / common.median(cpu["keras_predict"]),
            "outputs": agree,
        },
        "tensorflow": {
            "status": "measured" if runs["tensorflow"] else "skipped",
            "note": tf_note,
        },
        "peak_rss_mib": {
            "after_data": rss_after_data,
            "process": common.peak_rss_mib(),
            "note": "one process runs both paths; ru_maxrss is the peak of the whole process",
        },
    }
    if runs["tensorflow"]:
        tf_fit = sps(runs["tensorflow"], n)
        tf_pred = sps(runs["tensorflow_predict"], m)
        result["tensorflow"].update({
            "fit_samples_per_s": tf_fit, "fit_seconds": runs["tensorflow"],
            "predict_samples_per_s": tf_pred, "predict_seconds": runs["tensorflow_predict"],
            "keras_over_tf_fit": fit_k / tf_fit, "keras_over_tf_predict": pred_k / tf_pred,
            "fit_cpu_seconds": cpu["tensorflow"], "predict_cpu_seconds": cpu["tensorflow_predict"],
            "keras_over_tf_fit_cpu_time": common.median(cpu["tensorflow"]) / common.median(cpu["keras"]),
            "keras_over_tf_predict_cpu_time": (common.median(cpu["tensorflow_predict"])
                                               / common.median(cpu["keras_predict"])),
            "peak_rss_mib_children": common.peak_rss_mib(common.resource.RUSAGE_CHILDREN),
        })
    path = common.write_json(result, args.out, "fit_throughput.json")

    rows = [[f"fit (batch {args.batch_size}, {n} samples)", fit_k, fit_t,
             f"{fit_k / fit_t:.3f}", f"{result['fit']['ratio_cpu_time']:.3f}"],
            [f"predict (batch {args.predict_batch}, {m} samples)", pred_k, pred_t,
             f"{pred_k / pred_t:.3f}", f"{result['predict']['ratio_cpu_time']:.3f}"]]
    header = ["task", "bigmodel keras samples/s", "hand-written torch samples/s", "ratio (wall)",
              "ratio (CPU time)"]
    if runs["tensorflow"]:
        header.append("keras-on-TF samples/s")
        rows[0].append(result["tensorflow"]["fit_samples_per_s"])
        rows[1].append(result["tensorflow"]["predict_samples_per_s"])
    print(common.markdown_table(header, rows))
    fused = result["fit"]["torch_fused_samples_per_s"]
    print(f"\nhand-written loop with torch's fused Adam: {fused:,.1f} samples/s; bigmodel / it "
          f"{result['fit']['ratio_vs_fused_reference']:.3f} (wall)")
    print(f"fit target >= {TARGET_FIT_RATIO}: {'met' if result['fit']['target_met'] else 'MISSED'}; "
          f"torch threads {info['torch_threads']}; peak RSS {result['peak_rss_mib']['process']} MiB; "
          f"TensorFlow: {result['tensorflow']['status']} ({tf_note})")
    print(f"JSON: {path}")
    return result


if __name__ == "__main__":
    main()
