"""Why structured pruning of the seed CNN to half the multiply-adds is not 2x faster in eager
PyTorch, and what is: a profile, memory formats, ONNX Runtime, and layer sizes chosen by measured
latency instead of FLOPs.

    python benchmarks/structured_speed.py [--repeats 3] [--rounds 7]

Speed does not depend on the weights' values, only on the layer sizes, and ``structured_prune``
with ``flops_ratio=0.5`` gives the seed CNN the same sizes whatever the weights (every family loses
the same fraction), so random weights measure exactly the architecture ``compress_cnn.py`` trains
and fine-tunes. All ratios: interleaved rounds in one process, one thread, medians.
"""

from __future__ import annotations

import argparse
import copy
import itertools
import json
import statistics
import sys
import tempfile
from pathlib import Path

import torch
from torch.profiler import ProfilerActivity, profile

from bigmodel.compress import apply_structure, compare_speed, count_macs, structured_prune
from bigmodel.export.onnx import export_onnx, onnx_session, run_session
from bigmodel.models import create_model

OUT = Path(__file__).resolve().parent / "out" / "structured_speed.json"
WIDTHS = {"conv1": 32, "conv2": 64, "conv3": 64, "fc": 64}


def sized(widths: dict[str, int]) -> torch.nn.Module:
    torch.manual_seed(0)
    c1, c2, c3, fc = (widths[k] for k in ("conv1", "conv2", "conv3", "fc"))
    return apply_structure(create_model("seed-cnn"), {
        "conv1": {"out": c1}, "conv2": {"in": c1, "out": c2}, "conv3": {"in": c2, "out": c3},
        "fc": {"in": c3 * 9, "out": fc}, "classifier": {"in": fc}}).eval()


def op_shares(model, x, calls: int) -> dict[str, float]:
    """Share of CPU time per op kind (convolution, pooling, copies, the rest)."""
    with torch.inference_mode():
        for _ in range(5):
            model(x)
        with profile(activities=[ProfilerActivity.CPU]) as prof:
            for _ in range(calls):
                model(x)
    kinds = {"conv": 0.0, "max_pool": 0.0, "copy": 0.0, "other": 0.0}
    for event in prof.key_averages():
        name = event.key
        if name in ("aten::mkldnn_convolution", "aten::_slow_conv2d_forward"):
            kinds["conv"] += event.self_cpu_time_total
        elif name.startswith("aten::max_pool2d"):
            kinds["max_pool"] += event.self_cpu_time_total
        elif name == "aten::copy_":
            kinds["copy"] += event.self_cpu_time_total
        else:
            kinds["other"] += event.self_cpu_time_total
    total = sum(kinds.values())
    return {k: v / total for k, v in kinds.items()}


def channels_last(model):
    model = copy.deepcopy(model).to(memory_format=torch.channels_last)
    return lambda x: model(x.contiguous(memory_format=torch.channels_last))


def ort(model, tmp: Path, name: str):
    export_onnx(model, tmp / f"{name}.onnx", torch.rand(1, 1, 28, 28))
    session = onnx_session(tmp / f"{name}.onnx", threads=1)
    return lambda x: torch.from_numpy(run_session(session, x)[0])


def ratios(predictors, pairs, repeats: int, rounds: int) -> dict[str, dict[str, float]]:
    """Median over ``repeats`` of (baseline / candidate) batch-1 latency and batch-256 speed."""
    one, batch = torch.rand(1, 1, 28, 28), torch.rand(256, 1, 28, 28)
    runs = [compare_speed(predictors, one, batch, rounds=rounds) for _ in range(repeats)]
    out = {}
    for label, (base, cand) in pairs.items():
        out[label] = {
            "latency_speedup": statistics.median(r[base][0] / r[cand][0] for r in runs),
            "throughput_speedup": statistics.median(r[cand][1] / r[base][1] for r in runs)}
    out["absolute"] = {name: [statistics.median(r[name][i] for r in runs) for i in (0, 1)]
                       for name in predictors}
    return out


def search(base_macs: int, rounds: int) -> list[dict]:
    """Every width combination at <= 50% of the MACs, ranked by measured eager speed."""
    grid = {"conv1": (8, 12, 16, 22, 32), "conv2": (24, 32, 44, 64), "conv3": (32, 44, 64),
            "fc": (32, 44, 64)}
    x1 = torch.rand(1, 1, 28, 28)
    candidates = []
    for values in itertools.product(*grid.values()):
        widths = dict(zip(grid, values))
        macs = count_macs(sized(widths), x1)
        if 0.45 * base_macs <= macs <= 0.5 * base_macs:
            candidates.append((widths, macs))
    reference = sized(WIDTHS)
    results = []
    for widths, macs in candidates:
        speeds = compare_speed({"base": reference, "cand": sized(widths)}, x1,
                               torch.rand(256, 1, 28, 28), rounds=rounds, min_seconds=0.1)
        lat = speeds["base"][0] / speeds["cand"][0]
        thr = speeds["cand"][1] / speeds["base"][1]
        results.append({"widths": widths, "macs_ratio": macs / base_macs, "latency_speedup": lat,
                        "throughput_speedup": thr, "score": (lat * thr) ** 0.5})
    return sorted(results, key=lambda r: -r["score"])


def ort_grid(repeats: int) -> dict:
    """ONNX Runtime only: FLOPs-uniform pruning kept to multiples of 1 / 8 / 16 channels, and every
    width combination in multiples of 16 at 40-50% of the MACs, against the original."""
    tmp = Path(tempfile.mkdtemp(prefix="structured-ort-"))
    x1 = torch.rand(1, 1, 28, 28)
    original = sized(WIDTHS)
    base = count_macs(original, x1)
    models, info = {"original": original}, {}
    for multiple in (1, 8, 16):
        model = copy.deepcopy(original)
        result = structured_prune(model, x1, flops_ratio=0.5, channel_multiple=multiple)
        models[f"uniform, multiple {multiple}"] = model
        info[f"uniform, multiple {multiple}"] = {
            "widths": {k: v["out"] for k, v in result.structure.items() if "out" in v},
            "macs_ratio": result.macs_ratio}
    for values in itertools.product((16, 32), (32, 48, 64), (32, 48, 64), (32, 48, 64)):
        widths = dict(zip(("conv1", "conv2", "conv3", "fc"), values))
        ratio = count_macs(sized(widths), x1) / base
        if 0.4 <= ratio <= 0.5:
            name = "/".join(map(str, values))
            models[name], info[name] = sized(widths), {"widths": widths, "macs_ratio": ratio}
    predictors = {name: ort(model, tmp, f"m{i}") for i, (name, model) in enumerate(models.items())}
    runs = [compare_speed(predictors, x1, torch.rand(256, 1, 28, 28), rounds=5, min_seconds=0.1)
            for _ in range(repeats)]
    for name in info:
        info[name]["latency_speedup"] = statistics.median(
            r["original"][0] / r[name][0] for r in runs)
        info[name]["throughput_speedup"] = statistics.median(
            r[name][1] / r["original"][1] for r in runs)
    return info


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--search-rounds", type=int, default=3)
    parser.add_argument("--out", default=str(OUT))
    parser.add_argument("--ort-grid", action="store_true",
                        help="only the ONNX Runtime comparison of channel multiples (see ort_grid)")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    if args.ort_grid:
        found = ort_grid(args.repeats)
        out = Path(args.out).with_name("structured_speed_ort_grid.json")
        out.write_text(json.dumps(found, indent=2) + "\n")
        print(json.dumps(found, indent=2))
        return found
    tmp = Path(tempfile.mkdtemp(prefix="structured-speed-"))
    x1 = torch.rand(1, 1, 28, 28)
    original = sized(WIDTHS)
    pruned = copy.deepcopy(original)
    result = structured_prune(pruned, x1, flops_ratio=0.5)
    base_macs = count_macs(original, x1)
    rounded = copy.deepcopy(original)
    rounded_result = structured_prune(rounded, x1, flops_ratio=0.5, channel_multiple=8)
    summary: dict = {"uniform_structure": result.structure, "uniform_macs_ratio": result.macs_ratio,
                     "multiple8_structure": rounded_result.structure,
                     "multiple8_macs_ratio": rounded_result.macs_ratio}
    summary["profile"] = {f"{name} b={b}": op_shares(model, torch.rand(b, 1, 28, 28),
                                                     50 if b == 1 else 5)
                          for name, model in (("original", original), ("pruned", pruned))
                          for b in (1, 256)}
    print(json.dumps(summary, indent=2), flush=True)
    found = search(base_macs, args.search_rounds)
    summary["search_top5"] = found[:5]
    best = sized(found[0]["widths"])
    print(json.dumps(found[:5], indent=2), flush=True)
    predictors = {"original": original, "pruned": pruned, "latency-chosen": best,
                  "original NHWC": channels_last(original), "pruned NHWC": channels_last(pruned),
                  "latency-chosen NHWC": channels_last(best),
                  "original ORT": ort(original, tmp, "original"), "pruned ORT": ort(pruned, tmp, "p"),
                  "latency-chosen ORT": ort(best, tmp, "best"), "multiple-of-8": rounded,
                  "multiple-of-8 NHWC": channels_last(rounded),
                  "multiple-of-8 ORT": ort(rounded, tmp, "rounded")}
    pairs = {"uniform, eager NCHW": ("original", "pruned"),
             "latency-chosen, eager NCHW": ("original", "latency-chosen"),
             "uniform, eager channels_last": ("original NHWC", "pruned NHWC"),
             "latency-chosen, eager channels_last": ("original NHWC", "latency-chosen NHWC"),
             "uniform, ONNX Runtime": ("original ORT", "pruned ORT"),
             "latency-chosen, ONNX Runtime": ("original ORT", "latency-chosen ORT"),
             "multiple-of-8, eager NCHW": ("original", "multiple-of-8"),
             "multiple-of-8, eager channels_last": ("original NHWC", "multiple-of-8 NHWC"),
             "multiple-of-8, ONNX Runtime": ("original ORT", "multiple-of-8 ORT"),
             "channels_last original vs NCHW original": ("original", "original NHWC")}
    summary["speed"] = ratios(predictors, pairs, args.repeats, args.rounds)
    summary["latency_chosen"] = {"widths": found[0]["widths"],
                                 "macs_ratio": count_macs(best, x1) / base_macs}
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(summary, indent=2) + "\n")
    print(json.dumps(summary["speed"], indent=2))
    return summary


if __name__ == "__main__":
    main(sys.argv[1:])
