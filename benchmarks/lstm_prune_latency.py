"""Why structured pruning of the seed LSTM to half the multiply-adds gives ~1.35x at batch 1 in eager
PyTorch: latency of `seed-rnn` at several hidden sizes (random weights: speed depends only on the
sizes), a least-squares fit latency = fixed + per-MAC cost, and the profiler's share of the fused
oneDNN LSTM kernel.

    python benchmarks/lstm_prune_latency.py --threads 1      # ~1-2 min
    python benchmarks/lstm_prune_latency.py --threads 1 --ort   # also each size under ONNX Runtime

With ``--ort`` each size is exported to ONNX and timed under ONNX Runtime (fp32) in the same
rounds; its speed-ups are against the 128-unit model under ONNX Runtime (pruned vs unpruned in one
runtime), reported beside the eager ones.

Interleaved rounds, medians; speed-ups against hidden size 128 measured in the same round.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
import torch

from bigmodel.compress import count_macs
from bigmodel.models import create_model

OUT = Path(__file__).resolve().parent / "out" / "lstm_prune_latency.json"


def median_time(fn, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return float(np.median(times))


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--sizes", default="128,96,90,89,88,80,64")
    parser.add_argument("--ort", action="store_true", help="time ONNX Runtime fp32 too")
    parser.add_argument("--out", default=str(OUT))
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    one, batch = torch.rand(1, 1, 28, 28), torch.rand(256, 1, 28, 28)
    sizes = [int(v) for v in args.sizes.split(",")]
    models = {h: create_model("seed-rnn", hidden_size=h).eval() for h in sizes}
    macs = {h: count_macs(m, one) for h, m in models.items()}
    runners = {("eager", h): m for h, m in models.items()}
    if args.ort:
        import tempfile

        from bigmodel.export.onnx import export_onnx, onnx_session, run_session

        with tempfile.TemporaryDirectory() as tmp:
            for h, model in models.items():
                export_onnx(model, Path(tmp) / f"lstm{h}.onnx", one)
                session = onnx_session(Path(tmp) / f"lstm{h}.onnx", threads=args.threads)
                runners[("ort", h)] = lambda x, s=session: run_session(s, x)[0]
    ratios = {key: ([], []) for key in runners}
    latency: dict = {key: [] for key in runners}
    with torch.inference_mode():
        for _ in range(args.rounds):
            base = {}
            for (runtime, h), run in runners.items():
                b1 = median_time(lambda r=run: r(one), 30)
                b256 = median_time(lambda r=run: r(batch), 3)
                base.setdefault(runtime, (b1, b256))
                latency[runtime, h].append(b1)
                ratios[runtime, h][0].append(base[runtime][0] / b1)
                ratios[runtime, h][1].append(base[runtime][1] / b256)
        from torch.profiler import profile

        model = models[min(sizes, key=lambda h: abs(macs[h] - macs[sizes[0]] / 2))]
        with profile() as prof:
            for _ in range(50):
                model(one)
    events = prof.key_averages()
    total = sum(e.self_cpu_time_total for e in events)
    kernel = sum(e.self_cpu_time_total for e in events if "rnn_layer" in e.key or
                 e.key == "aten::lstm")
    x = np.array([macs[h] for h in sizes], float)

    def fit(runtime: str) -> dict:
        """latency = fixed + slope x MACs (least squares) for one runtime's batch-1 times."""
        y = np.array([np.median(latency[runtime, h]) for h in sizes])
        slope, fixed = np.polyfit(x, y, 1)
        return {"fit_fixed_ms": float(fixed * 1e3), "fit_us_per_kmac": float(slope * 1e6 * 1e3),
                "fixed_share_of_original": float(fixed / y[0]),
                "ideal_speedup_at_half_macs": float(y[0] / (fixed + slope * x[0] / 2))}

    result = {
        "threads": args.threads, "rounds": args.rounds,
        "rows": [{"runtime": runtime, "hidden": h, "macs": macs[h],
                  "macs_ratio": macs[h] / macs[sizes[0]],
                  "latency_b1_ms": float(np.median(latency[runtime, h]) * 1e3),
                  "speedup_b1": float(np.median(ratios[runtime, h][0])),
                  "speedup_b256": float(np.median(ratios[runtime, h][1]))}
                 for runtime, h in runners],
        **fit("eager"),
        **({"ort": fit("ort")} if args.ort else {}),
        "profiled_hidden": int(model.get_config().get("hidden_size", 0)),
        "lstm_kernel_share_b1": kernel / total if total else None,
    }
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n")
    print("| runtime | hidden | MACs | of original | latency b=1 | speed-up b=1 | speed-up b=256 |")
    print("| --- | --- | --- | --- | --- | --- | --- |")
    for row in result["rows"]:
        print(f"| {row['runtime']} | {row['hidden']} | {row['macs']:,} | {row['macs_ratio']:.1%} | "
              f"{row['latency_b1_ms']:.3f} ms | {row['speedup_b1']:.2f}x | "
              f"{row['speedup_b256']:.2f}x |")
    print(json.dumps({k: v for k, v in result.items() if k != "rows"}, indent=2))
    return result


if __name__ == "__main__":
    main(sys.argv[1:])
