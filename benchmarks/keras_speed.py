"""``fit`` and ``predict`` speed of four Keras-corpus models: bigmodel's Keras surface against a
hand-written PyTorch module + loop, and against real Keras 3 on its torch backend (issue 15, item 4).

    .venv/bin/python benchmarks/keras_speed.py            # 4 models x threads 1, 2 x 5 rounds (~12 min)
    .venv/bin/python benchmarks/keras_speed.py --quick    # smoke run, seconds

The models, from ``tests/keras_programs/`` (same layers, sizes, optimizer, loss and batch size):

* ``cnn`` -- the seed CNN (seed-examples/seed_cnn.py; the TF tutorial CNN), 28x28x1, Adam, batch 32;
* ``lstm`` -- bidirectional_lstm_text.py: Embedding(2000, 32), 2 x Bidirectional(LSTM(32)),
  Dense(1, sigmoid), length 48, Adam, binary cross-entropy, batch 32;
* ``resnet`` -- toy_resnet.py: the functional toy ResNet (two ``add`` blocks), RMSprop(1e-3),
  categorical cross-entropy from logits, batch 64;
* ``transformer`` -- text_classification_transformer.py: token + position embedding, one
  TransformerBlock (MultiHeadAttention(2 heads, key_dim 32), LayerNorm, FFN 32), length 64, Adam,
  batch 32.

Method: for each torch thread count, each model and each round, the three paths run one after the
other (a: ``from bigmodel import keras``; b: the hand-written ``nn.Module`` and minimal loop, with
the optimizer set up as Keras's (Adam/RMSprop epsilon 1e-7, RMSprop rho 0.9); c: real Keras 3 with
``KERAS_BACKEND=torch``), the order rotating per round so drift cancels. Each path builds and
compiles a fresh model, warms up with a short ``fit`` and ``predict``, then times ``fit`` on a
fixed number of steps (one epoch, ``verbose=0``, the whole call) and ``predict`` on a fixed number
of samples. Real Keras runs in a long-lived subprocess per thread count (both packages are named
``keras``), which this script starts as ``--worker`` and feeds one JSON request a line; only the
timed calls inside it count. Samples/s are medians over rounds; the ratios bigmodel /
hand-written (target >= 0.95) and bigmodel / real Keras (target >= 2) are medians of each round's
own ratio (paired: a slow spell of the shared machine slows both sides of a round), with the
ratio of the medians also in the JSON. Parameter counts of the three paths are checked to agree. JSON goes to ``benchmarks/out/keras_speed.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _common as common  # noqa: E402
import _keras_speed_models as models  # noqa: E402

TARGET_VS_TORCH = 0.95
TARGET_VS_KERAS = 2.0
MODELS = ("cnn", "lstm", "resnet", "transformer")
# Default timed steps per fit and samples per predict, sized so that one round of the three paths
# takes a few seconds per model at 1 thread on a 2-core EPYC.
DEFAULT_STEPS = {"cnn": 80, "lstm": 60, "resnet": 40, "transformer": 80}
DEFAULT_PREDICT = {"cnn": 6144, "lstm": 3072, "resnet": 3072, "transformer": 6144}


# ------------------------------------------------------------------------------ one measurement
def time_keras(keras: Any, name: str, steps: int, predict_n: int, warmup: int,
               seed: int) -> dict[str, Any]:
    """Build, compile, warm up and time one Keras-API model (bigmodel's or real Keras's)."""
    spec = models.SPECS[name]
    x, y = models.data(name, steps * spec["batch"], seed)
    xp, _ = models.data(name, predict_n, seed + 1)
    torch.manual_seed(seed)
    model = models.build_keras(keras, name)
    model.compile(**models.compile_args(keras, name))
    wb = warmup * spec["batch"]
    model.fit(x[:wb], y[:wb], batch_size=spec["batch"], epochs=1, verbose=0)
    model.predict(xp[:spec["predict_batch"]], batch_size=spec["predict_batch"], verbose=0)
    t0 = time.perf_counter()
    model.fit(x, y, batch_size=spec["batch"], epochs=1, verbose=0)
    fit_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    out = model.predict(xp, batch_size=spec["predict_batch"], verbose=0)
    predict_s = time.perf_counter() - t0
    return {"fit_s": fit_s, "predict_s": predict_s, "params": int(model.count_params()),
            "predict_shape": list(np.asarray(out).shape)}


def time_torch(name: str, steps: int, predict_n: int, warmup: int, seed: int) -> dict[str, Any]:
    """The same for the hand-written module and loop."""
    spec = models.SPECS[name]
    x, y = models.data(name, steps * spec["batch"], seed)
    xp, _ = models.data(name, predict_n, seed + 1)
    torch.manual_seed(seed)
    module, optimizer, loss_fn, out_fn = models.build_torch(name)
    xt, yt, xpt = torch.from_numpy(x), torch.from_numpy(y), torch.from_numpy(xp)
    models.torch_fit(module, optimizer, loss_fn, xt[:warmup * spec["batch"]],
                     yt[:warmup * spec["batch"]], spec["batch"])
    models.torch_predict(module, out_fn, xpt[:spec["predict_batch"]], spec["predict_batch"])
    t0 = time.perf_counter()
    models.torch_fit(module, optimizer, loss_fn, xt, yt, spec["batch"])
    fit_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    out = models.torch_predict(module, out_fn, xpt, spec["predict_batch"])
    predict_s = time.perf_counter() - t0
    return {"fit_s": fit_s, "predict_s": predict_s,
            "params": sum(p.numel() for p in module.parameters()),
            "predict_shape": list(out.shape)}


# ------------------------------------------------------------------------------ real-Keras worker
def worker() -> None:
    """Serve requests from stdin with real Keras 3 (torch backend): one JSON line in, one out."""
    os.environ["KERAS_BACKEND"] = "torch"
    import keras  # real Keras 3: this process never imports bigmodel's surface

    assert keras.backend.backend() == "torch", keras.backend.backend()
    print(json.dumps({"ready": keras.__version__}), flush=True)
    for line in sys.stdin:
        req = json.loads(line)
        torch.set_num_threads(req["threads"])
        try:
            res = time_keras(keras, req["model"], req["steps"], req["predict_n"], req["warmup"],
                             req["seed"])
        except Exception as exc:  # noqa: BLE001 - reported to the parent, which raises
            res = {"error": f"{type(exc).__name__}: {exc}"}
        print(json.dumps(res), flush=True)


class KerasWorker:
    """A real-Keras subprocess (started once per run, asked one measurement at a time)."""

    def __init__(self) -> None:
        env = dict(os.environ, KERAS_BACKEND="torch", PYTHONPATH="")
        self.proc = subprocess.Popen([sys.executable, str(Path(__file__).resolve()), "--worker"],
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
                                     env=env)
        self.version = self._read()["ready"]

    def _read(self) -> dict[str, Any]:
        line = self.proc.stdout.readline()
        if not line:
            raise RuntimeError(f"real-Keras worker exited (rc {self.proc.wait()})")
        return json.loads(line)

    def ask(self, **req: Any) -> dict[str, Any]:
        self.proc.stdin.write(json.dumps(req) + "\n")
        self.proc.stdin.flush()
        res = self._read()
        if "error" in res:
            raise RuntimeError(f"real Keras failed on {req['model']}: {res['error']}")
        return res

    def close(self) -> None:
        self.proc.stdin.close()
        self.proc.wait(timeout=60)


# ------------------------------------------------------------------------------ driver
def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--models", nargs="+", choices=MODELS, default=list(MODELS))
    p.add_argument("--threads", nargs="+", type=int, default=[1, 2])
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--steps", type=int, default=None, help="timed fit steps (default per model)")
    p.add_argument("--predict-samples", type=int, default=None, help="default per model")
    p.add_argument("--warmup-steps", type=int, default=5)
    p.add_argument("--quick", action="store_true", help="smoke run: 1 round, 1 thread, 3 steps")
    p.add_argument("--no-keras", action="store_true", help="skip real Keras (c)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", default=str(common.DEFAULT_OUT))
    p.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.quick:
        args.rounds, args.threads, args.warmup_steps = 1, [1], 1
        args.steps = args.steps or 3
        args.predict_samples = args.predict_samples or 64
    return args


def main(argv: list[str] | None = None) -> dict[str, Any]:
    args = parse_args(argv)
    if args.worker:
        worker()
        return {}
    from bigmodel import keras as bm_keras

    threads_before = torch.get_num_threads()
    kw = None if args.no_keras else KerasWorker()
    paths = ["bigmodel", "torch"] + ([] if kw is None else ["keras"])
    runs: dict[str, Any] = {}
    try:
        for threads in args.threads:
            torch.set_num_threads(threads)
            for name in args.models:
                steps = args.steps or DEFAULT_STEPS[name]
                pn = args.predict_samples or DEFAULT_PREDICT[name]
                rec = runs.setdefault(f"{name}@{threads}", {p: [] for p in paths})
                for rnd in range(args.rounds):
                    seed = args.seed + rnd
                    order = paths[rnd % len(paths):] + paths[:rnd % len(paths)]
                    for path in order:
                        if path == "bigmodel":
                            res = time_keras(bm_keras, name, steps, pn, args.warmup_steps, seed)
                        elif path == "torch":
                            res = time_torch(name, steps, pn, args.warmup_steps, seed)
                        else:
                            res = kw.ask(model=name, steps=steps, predict_n=pn, threads=threads,
                                         warmup=args.warmup_steps, seed=seed)
                        rec[path].append(res)
                    common.log(f"{name} threads={threads} round {rnd + 1}: " + ", ".join(
                        f"{p} fit {rec[p][-1]['fit_s']:.2f}s predict {rec[p][-1]['predict_s']:.2f}s"
                        for p in paths))
    finally:
        if kw is not None:
            kw.close()
        torch.set_num_threads(threads_before)
    return _report(args, argv, runs, paths, None if kw is None else kw.version)


def _paired(reference_s: list[float], bigmodel_s: list[float]) -> float:
    """Median over rounds of (reference time / bigmodel time) in the same round: bigmodel's
    speed relative to the reference."""
    return common.median([ref / ours for ref, ours in zip(reference_s, bigmodel_s)])


def _report(args: argparse.Namespace, argv: list[str] | None, runs: dict[str, Any],
            paths: list[str], keras_version: str | None) -> dict[str, Any]:
    rows, results = [], {}
    all_met = {"vs_torch": True, "vs_keras": True}
    for key, rec in runs.items():
        name, threads = key.split("@")
        spec = models.SPECS[name]
        steps = args.steps or DEFAULT_STEPS[name]
        pn = args.predict_samples or DEFAULT_PREDICT[name]
        entry: dict[str, Any] = {"model": name, "threads": int(threads), "batch": spec["batch"],
                                 "fit_steps": steps, "predict_samples": pn,
                                 "params": {p: rec[p][0]["params"] for p in paths}}
        entry["params_agree"] = len(set(entry["params"].values())) == 1
        for task, count in (("fit", steps * spec["batch"]), ("predict", pn)):
            sps = {p: count / common.median([r[f"{task}_s"] for r in rec[p]]) for p in paths}
            seconds = {p: [r[f"{task}_s"] for r in rec[p]] for p in paths}
            # The ratio is the median over rounds of each round's own ratio: the paths of a round
            # run back to back, so a slow spell of the machine shifts both sides of it.
            t = {"samples_per_s": sps, "seconds": seconds,
                 "ratio_vs_torch": _paired(seconds["torch"], seconds["bigmodel"]),
                 "ratio_of_medians_vs_torch": sps["bigmodel"] / sps["torch"]}
            t["vs_torch_met"] = t["ratio_vs_torch"] >= TARGET_VS_TORCH
            all_met["vs_torch"] &= t["vs_torch_met"]
            if "keras" in sps:
                t["ratio_vs_keras"] = _paired(seconds["keras"], seconds["bigmodel"])
                t["ratio_of_medians_vs_keras"] = sps["bigmodel"] / sps["keras"]
                t["vs_keras_met"] = t["ratio_vs_keras"] >= TARGET_VS_KERAS
                all_met["vs_keras"] &= t["vs_keras_met"]
            entry[task] = t
            rows.append([name, threads, task, sps["bigmodel"], sps["torch"],
                         sps.get("keras", float("nan")), f"{t['ratio_vs_torch']:.2f}",
                         f"{t.get('ratio_vs_keras', float('nan')):.2f}",
                         "/".join(str(v) for v in entry["params"].values())])
        results[key] = entry
    result = {
        "benchmark": "keras_speed",
        "date": common.today(),
        "machine": common.machine_info(),
        "command": "benchmarks/keras_speed.py " + " ".join(argv if argv is not None else sys.argv[1:]),
        "config": {"models": args.models, "threads": args.threads, "rounds": args.rounds,
                   "warmup_steps": args.warmup_steps, "quick": args.quick,
                   "real_keras": keras_version or "skipped"},
        "targets": {"bigmodel_over_torch": TARGET_VS_TORCH, "bigmodel_over_keras": TARGET_VS_KERAS},
        "all_met": all_met if "keras" in paths else {"vs_torch": all_met["vs_torch"]},
        "results": results,
        "peak_rss_mib": common.peak_rss_mib(),
    }
    path = common.write_json(result, args.out, "keras_speed.json")
    print(common.markdown_table(
        ["model", "threads", "task", "bigmodel samples/s", "hand-written torch samples/s",
         "real Keras 3 (torch) samples/s", "bigmodel / torch", "bigmodel / Keras",
         "params (bigmodel/torch/Keras)"], rows))
    print(f"\ntargets: bigmodel/torch >= {TARGET_VS_TORCH}: "
          f"{'met' if all_met['vs_torch'] else 'MISSED somewhere'}; bigmodel/Keras >= "
          f"{TARGET_VS_KERAS}: " + ("skipped" if "keras" not in paths else
                                    "met" if all_met["vs_keras"] else "MISSED somewhere"))
    print(f"real Keras: {keras_version or 'skipped'}; rounds {args.rounds}; JSON: {path}")
    return result


if __name__ == "__main__":
    main()
