"""Compression of the seed CNN on Fashion-MNIST: int8, structured and unstructured pruning,
distillation, each against the fp32 original measured in the same process.

    python benchmarks/compress_cnn.py                       # trains the seed CNN first (5 epochs)
    python benchmarks/compress_cnn.py --run-dir runs/fashion_cnn-...   # a 'bigmodel train' run

Stages (targets from issue 9):
* int8 (static, ONNX Runtime, 512 calibration images): file >= 3.5x smaller, batch-1 latency and
  batch-256 throughput >= 1.5x the fp32 PyTorch model, accuracy loss <= 0.5 points. A row for the
  fp32 model under ONNX Runtime shows how much of the gain is the runtime and how much is int8.
* structured pruning to half the multiply-adds + fine-tuning: >= 1.4x faster, loss <= 1 point.
* unstructured 80% + fine-tuning: loss <= 1 point (size counted as sparse storage).
* distillation: a student with a quarter of the parameters trained with the teacher vs the same
  student trained alone (same epochs, data and seed).

Speeds: ``bigmodel.compress.report.compare_speed`` (interleaved rounds, medians), one thread for
PyTorch and ONNX Runtime alike unless ``--threads`` says otherwise.
"""

from __future__ import annotations

import argparse
import copy
import json
import platform
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from torch import nn

from bigmodel.compress import (
    Distiller,
    apply_structure,
    compare_speed,
    count_macs,
    magnitude_prune,
    quantize_int8,
    sparse_size_bytes,
    structured_prune,
)
from bigmodel.compress.report import StageResult, accuracy, files_size, markdown_table, write_report
from bigmodel.engine.trainer import Trainer
from bigmodel.export.onnx import export_onnx, onnx_session, run_session
from bigmodel.models import create_model, load_model, save_model

OUT = Path(__file__).resolve().parent / "out" / "compress_cnn"


def load_data(path: str | None, train_subset: int | None, test_subset: int | None):
    from bigmodel.keras.datasets import fashion_mnist

    (x, y), (xt, yt) = fashion_mnist.load_data(path) if path else fashion_mnist.load_data()
    x = (x[:train_subset] if train_subset else x).astype(np.float32)[:, None] / 255.0
    xt = (xt[:test_subset] if test_subset else xt).astype(np.float32)[:, None] / 255.0
    y = (y[:train_subset] if train_subset else y).astype(np.int64)
    yt = (yt[:test_subset] if test_subset else yt).astype(np.int64)
    return x, y, xt, yt


def train(model: nn.Module, x, y, epochs: int, lr: float = 1e-3, teacher: nn.Module | None = None,
          seed: int = 0, temperature: float = 4.0, alpha: float = 0.9) -> float:
    """Adam, batch 32 (the seed program's settings); with ``teacher``: Hinton distillation."""
    start = time.perf_counter()
    print(f"[{time.strftime('%H:%M:%S')}] training {epochs} epoch(s)"
          + (" with a teacher" if teacher is not None else ""), flush=True)
    if epochs <= 0:
        return 0.0
    module, loss = model, nn.CrossEntropyLoss()
    if teacher is not None:
        module = Distiller(model, teacher, temperature=temperature, alpha=alpha)
        loss = module.loss
    Trainer(module, loss=loss, optimizer="adam", lr=lr, verbose=0, seed=seed,
            device="cpu").fit((x, y), epochs=epochs, batch_size=32)
    model.eval()
    return time.perf_counter() - start


def quarter_student(seed: int = 0) -> nn.Module:
    """The seed CNN at half width everywhere (16/32/32 filters, 32 units): ~25% of the parameters."""
    torch.manual_seed(seed)
    student = apply_structure(create_model("seed-cnn"), {
        "conv1": {"out": 16}, "conv2": {"in": 16, "out": 32}, "conv3": {"in": 32, "out": 32},
        "fc": {"in": 32 * 9, "out": 32}, "classifier": {"in": 32}})
    for module in student.modules():  # fresh Glorot init for the new fan-in/fan-out
        if isinstance(module, (nn.Conv2d, nn.Linear)):
            nn.init.xavier_uniform_(module.weight)
            nn.init.zeros_(module.bias)
    return student


def _int8_stages(original, example, x, xt, yt, tmp, args, stages, predictors, seconds) -> None:
    """fp32 under ONNX Runtime (the runtime's share of the speed-up), then static int8."""
    params = sum(p.numel() for p in original.parameters())
    export_onnx(original, tmp / "fp32.onnx", example)
    session = onnx_session(tmp / "fp32.onnx", threads=args.threads)
    ort_fp32 = lambda batch: torch.from_numpy(run_session(session, batch)[0])  # noqa: E731
    stages.append(StageResult("fp32 (ONNX Runtime)", accuracy(ort_fp32, xt, yt),
                              (tmp / "fp32.onnx").stat().st_size, params=params,
                              macs=stages[0].macs, note="reference: same weights, other runtime"))
    predictors["fp32 (ONNX Runtime)"] = ort_fp32
    started = time.perf_counter()
    int8 = quantize_int8(original, example, calibration=x[:512])
    int8.set_threads(args.threads)
    int8.save(tmp / "int8")
    seconds["int8 quantization"] = time.perf_counter() - started
    stages.append(StageResult("int8 (ONNX Runtime)", accuracy(int8, xt, yt), files_size(tmp / "int8"),
                              params=params, note="static, per-channel, 512 images"))
    predictors["int8 (ONNX Runtime)"] = int8


def dir_size(model: nn.Module, directory: Path, structure=None) -> int:
    from bigmodel.compress import save_compressed

    save_compressed(model, directory, structure)
    return files_size(directory)


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--run-dir", default=None, help="use this trained run instead of training")
    parser.add_argument("--data-path", default=None)
    parser.add_argument("--epochs", type=int, default=5, help="teacher / student epochs")
    parser.add_argument("--fine-tune-epochs", type=int, default=2)
    parser.add_argument("--train-subset", type=int, default=None)
    parser.add_argument("--test-subset", type=int, default=None)
    parser.add_argument("--threads", type=int, default=1, help="threads for the speed measurements")
    parser.add_argument("--train-threads", type=int, default=1,
                        help="threads for training (default 1: a shared 2-core machine)")
    parser.add_argument("--rounds", type=int, default=7, help="interleaved timing rounds")
    parser.add_argument("--stages", default="int8,structured,unstructured,distill",
                        help="comma-separated subset of int8,structured,unstructured,distill")
    parser.add_argument("--temperature", type=float, default=4.0, help="distillation T")
    parser.add_argument("--alpha", type=float, default=0.9, help="weight of the soft term")
    parser.add_argument("--distill", default=None,
                        help="T:alpha pairs, one distilled student each (default: --temperature "
                             "and --alpha)")
    parser.add_argument("--student-seed", type=int, default=1,
                        help="data order of the students (their initial weights: seed 0 when 1, "
                             "else this seed)")
    parser.add_argument("--extra-alone-seeds", type=int, nargs="*", default=[],
                        help="also train the student alone with these data-order seeds")
    parser.add_argument("--widths", default=None,
                        help="also prune to these layer widths (e.g. conv1:12,conv2:64,conv3:64,"
                             "fc:32, chosen by benchmarks/structured_speed.py) and fine-tune")
    parser.add_argument("--channels-last", action="store_true",
                        help="also time the original and pruned models in channels_last")
    parser.add_argument("--out", default=str(OUT))
    args = parser.parse_args(argv)
    wanted = set(args.stages.split(","))
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    torch.set_num_threads(args.train_threads)
    x, y, xt, yt = load_data(args.data_path, args.train_subset, args.test_subset)
    tmp = Path(tempfile.mkdtemp(prefix="compress-bench-"))
    seconds: dict[str, float] = {}

    if args.run_dir:
        original = load_model(args.run_dir)
        original_size = files_size(args.run_dir)
    else:
        torch.manual_seed(0)
        original = create_model("seed-cnn")
        seconds["train original"] = train(original, x, y, args.epochs)
        save_model(original, tmp / "original")
        original_size = files_size(tmp / "original")
    original.eval()
    example = torch.as_tensor(xt[:1])
    base_macs = count_macs(original, example)
    params = lambda m: sum(p.numel() for p in m.parameters())  # noqa: E731
    stages = [StageResult("fp32 (PyTorch)", accuracy(original, xt, yt), original_size,
                          params=params(original), macs=base_macs)]
    predictors = {"fp32 (PyTorch)": original}

    if "int8" in wanted:
        _int8_stages(original, example, x, xt, yt, tmp, args, stages, predictors, seconds)
    if "structured" in wanted:
        pruned = copy.deepcopy(original)
        result = structured_prune(pruned, example, flops_ratio=0.5)
        no_tune = accuracy(pruned, xt, yt)
        seconds["structured fine-tune"] = train(pruned, x, y, args.fine_tune_epochs, lr=5e-4)
        stages.append(StageResult("structured 50% FLOPs", accuracy(pruned, xt, yt),
                                  dir_size(pruned, tmp / "pruned", result.structure),
                                  params=params(pruned), macs=count_macs(pruned, example),
                                  note=f"{no_tune:.2%} before {args.fine_tune_epochs}-epoch "
                                       "fine-tune"))
        predictors["structured 50% FLOPs"] = pruned
    if "structured" in wanted and args.widths:
        from bigmodel.compress.structured import prune_to_widths

        widths = {k: int(v) for k, v in (item.split(":") for item in args.widths.split(","))}
        chosen = copy.deepcopy(original)
        result = prune_to_widths(chosen, example, widths)
        no_tune = accuracy(chosen, xt, yt)
        seconds["latency-chosen fine-tune"] = train(chosen, x, y, args.fine_tune_epochs, lr=5e-4)
        name = "structured, latency-chosen widths"
        stages.append(StageResult(name, accuracy(chosen, xt, yt),
                                  dir_size(chosen, tmp / "chosen", result.structure),
                                  params=params(chosen), macs=count_macs(chosen, example),
                                  note=f"{widths}; {no_tune:.2%} before fine-tune"))
        predictors[name] = chosen
        if args.channels_last:
            for label, model in (("fp32 (PyTorch)", original), ("structured 50% FLOPs", pruned),
                                 (name, chosen)):
                nhwc = copy.deepcopy(model).to(memory_format=torch.channels_last)
                predictors[label + ", channels_last"] = \
                    lambda b, m=nhwc: m(b.contiguous(memory_format=torch.channels_last))
    if "unstructured" in wanted:
        sparse = copy.deepcopy(original)
        pruner = magnitude_prune(sparse, 0.8)
        no_tune = accuracy(sparse, xt, yt)
        seconds["unstructured fine-tune"] = train(sparse, x, y, args.fine_tune_epochs, lr=5e-4)
        pruner.detach()
        stages.append(StageResult("unstructured 80%", accuracy(sparse, xt, yt),
                                  sparse_size_bytes(sparse), params=params(sparse), macs=base_macs,
                                  note=f"sparse storage; {no_tune:.2%} before fine-tune"))
    pairs = [(args.temperature, args.alpha)]
    if args.distill:
        pairs = [tuple(float(v) for v in pair.split(":")) for pair in args.distill.split(",")]
    if "distill" in wanted:
        init = 0 if args.student_seed == 1 else args.student_seed  # seed 1: the earlier runs
        alone = quarter_student(init)
        seconds["student alone"] = train(alone, x, y, args.epochs, seed=args.student_seed)
        students = [("student alone", alone, "")]
        for seed in args.extra_alone_seeds:  # run-to-run spread of the baseline (data order)
            other = quarter_student()
            seconds[f"student alone, seed {seed}"] = train(other, x, y, args.epochs, seed=seed)
            students.append((f"student alone, seed {seed}", other, f", data-order seed {seed}"))
        for index, (t, a) in enumerate(pairs):
            distilled = quarter_student(init)
            name = "student distilled" + (f" T={t:g} a={a:g}" if index else "")
            seconds[name] = train(distilled, x, y, args.epochs, teacher=original,
                                  seed=args.student_seed,
                                  temperature=t, alpha=a)
            students.append((name, distilled, f", T={t:g}, alpha={a:g}"))
        for name, model, note in students:
            stages.append(StageResult(
                name, accuracy(model, xt, yt), dir_size(model, tmp / name.replace(" ", "-")),
                params=params(model), macs=count_macs(model, example),
                note=f"{params(model) / params(original):.1%} of the parameters, {args.epochs} "
                     "epochs" + note))
            predictors[name] = model

    threads = torch.get_num_threads()
    torch.set_num_threads(args.threads)
    try:
        speeds = compare_speed(predictors, example, torch.as_tensor(xt[:256]), rounds=args.rounds)
    finally:
        torch.set_num_threads(threads)
    for stage in stages:
        if stage.name in speeds:
            stage.latency_ms, stage.throughput = speeds[stage.name]
    extra_speeds = {k: v for k, v in speeds.items() if k not in {st.name for st in stages}}
    write_report(stages, out, title="Seed CNN on Fashion-MNIST: compression stages",
                 notes=f"Speeds with {args.threads} thread(s); {len(xt)} test images.")
    base, by = stages[0], {stage.name: stage for stage in stages}
    summary = {"machine": f"{platform.processor() or platform.machine()}, torch {torch.__version__}",
               "stages": [stage.__dict__ for stage in stages], "seconds": seconds,
               "extra_speeds": extra_speeds}
    if "structured" in wanted and args.widths:
        c = by["structured, latency-chosen widths"]
        summary["latency_chosen"] = {"macs_ratio": c.macs / base.macs,
                                     "latency_speedup": base.latency_ms / c.latency_ms,
                                     "throughput_speedup": c.throughput / base.throughput,
                                     "accuracy_loss_points": (base.accuracy - c.accuracy) * 100}
        if args.channels_last:
            ref = speeds["fp32 (PyTorch), channels_last"]
            summary["channels_last"] = {
                label: {"latency_speedup": ref[0] / speeds[label + ", channels_last"][0],
                        "throughput_speedup": speeds[label + ", channels_last"][1] / ref[1]}
                for label in ("structured 50% FLOPs", "structured, latency-chosen widths")}
    if "int8" in wanted:
        q, ort = by["int8 (ONNX Runtime)"], by["fp32 (ONNX Runtime)"]
        summary["int8"] = {"size_ratio": base.size_bytes / q.size_bytes,
                           "latency_speedup": base.latency_ms / q.latency_ms,
                           "throughput_speedup": q.throughput / base.throughput,
                           "accuracy_loss_points": (base.accuracy - q.accuracy) * 100,
                           "vs_ort_fp32_latency": ort.latency_ms / q.latency_ms,
                           "vs_ort_fp32_throughput": q.throughput / ort.throughput}
    if "structured" in wanted:
        p = by["structured 50% FLOPs"]
        summary["structured"] = {"macs_ratio": p.macs / base.macs,
                                 "latency_speedup": base.latency_ms / p.latency_ms,
                                 "throughput_speedup": p.throughput / base.throughput,
                                 "accuracy_loss_points": (base.accuracy - p.accuracy) * 100}
    if "unstructured" in wanted:
        u = by["unstructured 80%"]
        summary["unstructured"] = {"accuracy_loss_points": (base.accuracy - u.accuracy) * 100,
                                   "sparse_size_ratio": base.size_bytes / u.size_bytes}
    if "distill" in wanted:
        a, d = by["student alone"], by["student distilled"]
        summary["distillation"] = {"student_params": a.params, "teacher_params": base.params,
                                   "alone": a.accuracy, "distilled": d.accuracy,
                                   "gap_points": (d.accuracy - a.accuracy) * 100,
                                   "temperature": pairs[0][0], "alpha": pairs[0][1],
                                   "more": {st.name: (st.accuracy - a.accuracy) * 100
                                            for st in stages if st.name.startswith(
                                                ("student distilled T=", "student alone,"))}}
    (out / "summary.json").write_text(json.dumps(summary, indent=2, default=float) + "\n")
    print(markdown_table(stages))
    print(json.dumps({k: v for k, v in summary.items() if k not in ("stages",)}, indent=2,
                     default=float))
    return summary


if __name__ == "__main__":
    main(sys.argv[1:])
