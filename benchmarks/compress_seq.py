"""Compression of the seed LSTM and a ViT on Fashion-MNIST: int8, structured and unstructured
pruning, distillation, each against the fp32 original measured in the same process.

    python benchmarks/compress_seq.py --model lstm     # seed-rnn: 2 x LSTM(128) over image rows
    python benchmarks/compress_seq.py --model vit      # ViT, 4x4 patches, d=64, 4 layers, 4 heads
    python benchmarks/compress_seq.py --model vit-128  # the same ViT at d=128, dff 256

Stages (targets from issue 9; the same as ``benchmarks/compress_cnn.py``):
* int8, dynamic (ONNX Runtime; the ViT's attention blocks fused into QAttention, its patch
  convolution computes in fp32 from int8-stored weights): file >= 3.5x smaller,
  batch-1 latency and batch-256 throughput >= 1.5x the fp32 PyTorch model, loss <= 0.5 points.
  A row for the fp32 model under ONNX Runtime separates the runtime's share from int8's.
* structured pruning to half the multiply-adds + fine-tuning (LSTM: hidden units; ViT: attention
  heads and feed-forward units): >= 1.4x faster, accuracy loss <= 1 point.
* unstructured 80% + fine-tuning: loss <= 1 point (size counted as sparse storage). Stage
  ``unstructured-gradual`` (not in the default list): the same budget with gradual pruning
  (``SparsitySchedule.for_steps`` over the first half of the fine-tuning, cosine learning rate).
* distillation: a student with about a quarter of the parameters (LSTM(64) x 2 / ViT d=32)
  trained with the teacher vs the same student alone (same epochs, data and seed), for every
  ``--distill T:alpha`` pair.
"""

from __future__ import annotations

import argparse
import copy
import json
import sys
import tempfile
import time
from pathlib import Path

import torch
from torch import nn

sys.path.insert(0, str(Path(__file__).resolve().parent))

from compress_cnn import dir_size, load_data  # noqa: E402

from bigmodel.compress import (  # noqa: E402
    Distiller,
    SparsitySchedule,
    compare_speed,
    count_macs,
    magnitude_prune,
    quantize_int8,
    sparse_size_bytes,
    structured_prune,
)
from bigmodel.compress.report import (  # noqa: E402
    StageResult,
    accuracy,
    files_size,
    markdown_table,
    write_report,
)
from bigmodel.engine.trainer import Trainer  # noqa: E402
from bigmodel.export.onnx import export_onnx, onnx_session, run_session  # noqa: E402
from bigmodel.models import create_model, save_model  # noqa: E402

OUT = Path(__file__).resolve().parent / "out"
MODELS = {
    "lstm": {"teacher": ("seed-rnn", {}), "student": ("seed-rnn", {"hidden_size": 64}),
             "batch": 32, "lr": 1e-3},
    "vit": {"teacher": ("vit", {"dropout": 0.0}),
            "student": ("vit", {"dropout": 0.0, "d_model": 32, "dff": 64}),
            "batch": 64, "lr": 1e-3},
    # twice as wide (d=128, dff 256): its matrix products, which int8 speeds up, are a larger
    # share of the time than the d=64 ViT's (whose fp32 attention core, untouched by int8 weights,
    # is 30-40% of a batch-256 forward); the student is the d=64 ViT (26% of the parameters)
    "vit-128": {"teacher": ("vit", {"dropout": 0.0, "d_model": 128, "dff": 256}),
                "student": ("vit", {"dropout": 0.0}),
                "batch": 64, "lr": 1e-3},
}


def int8_breakdown(directory: Path) -> dict:
    """Bytes of the saved int8 model by kind: graph JSON, int8 / fp32 / other tensors, header."""
    from safetensors.numpy import load_file

    weights = directory / "model.safetensors"
    tensors = load_file(str(weights))
    by_kind = {"graph_json": (directory / "model.json").stat().st_size, "int8": 0, "float32": 0,
               "other": 0}
    for array in tensors.values():
        kind = str(array.dtype) if str(array.dtype) in ("int8", "float32") else "other"
        by_kind[kind] += array.nbytes
    by_kind["safetensors_header"] = weights.stat().st_size - sum(a.nbytes for a in tensors.values())
    return by_kind


def build(spec, seed: int) -> nn.Module:
    torch.manual_seed(seed)
    return create_model(spec[0], **spec[1])


def train(model: nn.Module, x, y, epochs: int, batch: int, lr: float, seed: int = 0,
          teacher: nn.Module | None = None, temperature: float = 4.0, alpha: float = 0.9) -> float:
    start = time.perf_counter()
    print(f"[{time.strftime('%H:%M:%S')}] training {epochs} epoch(s)"
          + (f" with the teacher, T={temperature:g}, alpha={alpha:g}" if teacher else ""),
          flush=True)
    module, loss = model, nn.CrossEntropyLoss()
    if teacher is not None:
        module = Distiller(model, teacher, temperature=temperature, alpha=alpha)
        loss = module.loss
    if epochs > 0:
        Trainer(module, loss=loss, optimizer="adam", lr=lr, verbose=0, seed=seed,
                device="cpu").fit((x, y), epochs=epochs, batch_size=batch)
    model.eval()
    return time.perf_counter() - start


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", choices=sorted(MODELS), required=True)
    parser.add_argument("--data-path", default=None)
    parser.add_argument("--epochs", type=int, default=5, help="teacher / student epochs")
    parser.add_argument("--fine-tune-epochs", type=int, default=1)
    parser.add_argument("--train-subset", type=int, default=None)
    parser.add_argument("--test-subset", type=int, default=None)
    parser.add_argument("--threads", type=int, default=1, help="threads for the speed measurements")
    parser.add_argument("--rounds", type=int, default=7, help="interleaved timing rounds")
    parser.add_argument("--stages", default="int8,structured,unstructured,distill")
    parser.add_argument("--distill", default="4:0.9,2:0.5",
                        help="comma-separated T:alpha pairs, one distilled student each")
    parser.add_argument("--student-seed", type=int, default=1,
                        help="initial weights and data order of every student")
    parser.add_argument("--out", default=None)
    args = parser.parse_args(argv)
    spec, wanted = MODELS[args.model], set(args.stages.split(","))
    out = Path(args.out or OUT / f"compress_{args.model}")
    out.mkdir(parents=True, exist_ok=True)
    torch.set_num_threads(1)
    x, y, xt, yt = load_data(args.data_path, args.train_subset, args.test_subset)
    tmp = Path(tempfile.mkdtemp(prefix=f"compress-{args.model}-"))
    seconds: dict[str, float] = {}
    batch, lr = spec["batch"], spec["lr"]
    params = lambda m: sum(p.numel() for p in m.parameters())  # noqa: E731

    original = build(spec["teacher"], 0)
    seconds["train original"] = train(original, x, y, args.epochs, batch, lr)
    save_model(original, tmp / "original")
    example = torch.as_tensor(xt[:1])
    base_macs = count_macs(original, example)
    stages = [StageResult("fp32 (PyTorch)", accuracy(original, xt, yt), files_size(tmp / "original"),
                          params=params(original), macs=base_macs)]
    predictors = {"fp32 (PyTorch)": original}

    if "int8" in wanted:
        export_onnx(original, tmp / "fp32.onnx", example)
        session = onnx_session(tmp / "fp32.onnx", threads=args.threads)
        ort_fp32 = lambda b: torch.from_numpy(run_session(session, b)[0])  # noqa: E731
        stages.append(StageResult("fp32 (ONNX Runtime)", accuracy(ort_fp32, xt, yt),
                                  (tmp / "fp32.onnx").stat().st_size, params=params(original),
                                  macs=base_macs, note="reference: same weights, other runtime"))
        predictors["fp32 (ONNX Runtime)"] = ort_fp32
        started = time.perf_counter()
        keep = ["patch_embedding"] if args.model.startswith("vit") else []
        int8 = quantize_int8(original, example, mode="dynamic", keep_fp32=keep)
        int8.set_threads(args.threads)
        int8.save(tmp / "int8")
        seconds["int8 quantization"] = time.perf_counter() - started
        stages.append(StageResult("int8 dynamic (ONNX Runtime)", accuracy(int8, xt, yt),
                                  files_size(tmp / "int8"), params=params(original),
                                  note="dynamic; " + ("patch conv fp32 compute, int8 storage"
                                                      if keep else "all layers")))
        int8_files = int8_breakdown(tmp / "int8")
        print("int8 file contents (bytes):", int8_files, flush=True)
        predictors["int8 dynamic (ONNX Runtime)"] = int8
    if "structured" in wanted:
        pruned = copy.deepcopy(original)
        result = structured_prune(pruned, example, flops_ratio=0.5, heads=True)
        no_tune = accuracy(pruned, xt, yt)
        seconds["structured fine-tune"] = train(pruned, x, y, args.fine_tune_epochs, batch,
                                                lr / 2)
        name = "structured 50% MACs"
        stages.append(StageResult(name, accuracy(pruned, xt, yt),
                                  dir_size(pruned, tmp / "pruned", result.structure),
                                  params=params(pruned), macs=count_macs(pruned, example),
                                  note=f"{no_tune:.2%} before fine-tune; {result.structure}"))
        predictors[name] = pruned
        export_onnx(pruned, tmp / "pruned.onnx", example)
        pruned_session = onnx_session(tmp / "pruned.onnx", threads=args.threads)
        predictors["structured (ONNX Runtime)"] = \
            lambda b: torch.from_numpy(run_session(pruned_session, b)[0])
    if "unstructured" in wanted:
        sparse = copy.deepcopy(original)
        pruner = magnitude_prune(sparse, 0.8)
        no_tune = accuracy(sparse, xt, yt)
        seconds["unstructured fine-tune"] = train(sparse, x, y, args.fine_tune_epochs, batch,
                                                  lr / 2)
        pruner.detach()
        stages.append(StageResult("unstructured 80%", accuracy(sparse, xt, yt),
                                  sparse_size_bytes(sparse), params=params(sparse), macs=base_macs,
                                  note=f"sparse storage; {no_tune:.2%} before fine-tune"))
    if "unstructured-gradual" in wanted:
        gradual = copy.deepcopy(original)
        steps = args.fine_tune_epochs * ((len(x) + batch - 1) // batch)
        schedule = SparsitySchedule.for_steps(gradual, 0.8, steps, pruning_fraction=0.5)
        started = time.perf_counter()
        Trainer(gradual, loss=nn.CrossEntropyLoss(), optimizer="adam", lr=lr / 2, verbose=0,
                seed=0, device="cpu", scheduler={"name": "cosine"}).fit(
            (x, y), epochs=args.fine_tune_epochs, batch_size=batch, callbacks=[schedule])
        gradual.eval()
        seconds["unstructured gradual fine-tune"] = time.perf_counter() - started
        stages.append(StageResult("unstructured 80% gradual", accuracy(gradual, xt, yt),
                                  sparse_size_bytes(gradual), params=params(gradual),
                                  macs=base_macs, note="sparse storage; cubic schedule over the "
                                  "first half of fine-tuning, cosine learning rate"))
    students = {}
    if "distill" in wanted:
        seed = args.student_seed
        alone = build(spec["student"], seed)
        seconds["student alone"] = train(alone, x, y, args.epochs, batch, lr, seed=seed)
        students["student alone"] = (alone, "")
        for pair in args.distill.split(","):
            t, a = (float(v) for v in pair.split(":"))
            student = build(spec["student"], seed)  # the same initial weights as the one alone
            name = f"student distilled T={t:g} a={a:g}"
            seconds[name] = train(student, x, y, args.epochs, batch, lr, seed=seed,
                                  teacher=original, temperature=t, alpha=a)
            students[name] = (student, f"T={t:g}, alpha={a:g}")
        for name, (model, note) in students.items():
            stages.append(StageResult(
                name, accuracy(model, xt, yt), dir_size(model, tmp / name.replace(" ", "_")),
                params=params(model), macs=count_macs(model, example),
                note=f"{params(model) / params(original):.1%} of the parameters; {note}"))
        predictors["student alone"] = students["student alone"][0]

    torch.set_num_threads(args.threads)
    speeds = compare_speed(predictors, example, torch.as_tensor(xt[:256]), rounds=args.rounds)
    for stage in stages:
        if stage.name in speeds:
            stage.latency_ms, stage.throughput = speeds[stage.name]
    base, by = stages[0], {stage.name: stage for stage in stages}
    summary: dict = {"model": args.model, "args": vars(args), "seconds": seconds,
                     "speeds": {k: list(v) for k, v in speeds.items()}}
    if "int8" in wanted:
        q, ort = by["int8 dynamic (ONNX Runtime)"], by["fp32 (ONNX Runtime)"]
        summary["int8"] = {"size_ratio": base.size_bytes / q.size_bytes,
                           "latency_speedup": base.latency_ms / q.latency_ms,
                           "throughput_speedup": q.throughput / base.throughput,
                           "accuracy_loss_points": (base.accuracy - q.accuracy) * 100,
                           "vs_ort_fp32_latency": ort.latency_ms / q.latency_ms,
                           "vs_ort_fp32_throughput": q.throughput / ort.throughput,
                           "file_bytes": int8_files, "layers": int8.info["layers"],
                           "fused_attention": int8.info.get("fused_attention", 0)}
    if "structured" in wanted:
        p = by["structured 50% MACs"]
        ort_pruned = speeds["structured (ONNX Runtime)"]
        summary["structured"] = {
            "macs_ratio": p.macs / base.macs, "accuracy_loss_points":
                (base.accuracy - p.accuracy) * 100,
            "eager_latency_speedup": base.latency_ms / p.latency_ms,
            "eager_throughput_speedup": p.throughput / base.throughput,
            "ort_latency_speedup": speeds["fp32 (ONNX Runtime)"][0] / ort_pruned[0]
            if "int8" in wanted else None,
            "ort_throughput_speedup": ort_pruned[1] / speeds["fp32 (ONNX Runtime)"][1]
            if "int8" in wanted else None}
    if "unstructured" in wanted:
        u = by["unstructured 80%"]
        summary["unstructured"] = {"accuracy_loss_points": (base.accuracy - u.accuracy) * 100,
                                   "sparse_size_ratio": base.size_bytes / u.size_bytes}
    if "unstructured-gradual" in wanted:
        g = by["unstructured 80% gradual"]
        summary["unstructured_gradual"] = {
            "accuracy_loss_points": (base.accuracy - g.accuracy) * 100,
            "sparse_size_ratio": base.size_bytes / g.size_bytes}
    if "distill" in wanted:
        a = by["student alone"]
        summary["distillation"] = {
            "student_params": a.params, "teacher_params": base.params, "alone": a.accuracy,
            **{name: {"accuracy": by[name].accuracy,
                      "gap_points": (by[name].accuracy - a.accuracy) * 100}
               for name in students if name != "student alone"}}
    summary["stages"] = [stage.__dict__ for stage in stages]
    write_report(stages, out, title=f"{args.model} on Fashion-MNIST: compression stages",
                 notes=f"Speeds with {args.threads} thread(s); {len(xt)} test images.")
    (out / "summary.json").write_text(json.dumps(summary, indent=2, default=float) + "\n")
    print(markdown_table(stages))
    print(json.dumps({k: v for k, v in summary.items() if k != "stages"}, indent=2, default=float))
    return summary


if __name__ == "__main__":
    main(sys.argv[1:])
