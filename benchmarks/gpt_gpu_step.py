"""GPT-2 small (124 M) training steps on one GPU: bf16 autocast + ``torch.compile``, tokens/s, MFU.

For a session that has the GPU machine (e.g. one H200). It builds ``bigmodel.models.gpt.GPT`` with
GPT-2 small's sizes, compiles it, trains on random tokens with fused AdamW under bf16 autocast, and
reports tokens/s and model-FLOPs utilization against (a) the GPU's nominal dense bf16 peak
(``--peak-tflops``, 989 for an H200 / H100 SXM) and (b) a bf16 matmul peak measured in the same
process. Target from the issue: MFU >= 40 %.

    python benchmarks/gpt_gpu_step.py [--batch 16] [--length 1024] [--steps 30] [--warmup 10]
        [--peak-tflops 989] [--no-compile] [--out gpt_gpu.json]

The script prints one Markdown table row ready for BENCHMARKS.md (with the date and device name).
Run it as one short job: building and compiling takes about a minute, 30 steps a few seconds.
"""

from __future__ import annotations

import argparse
import datetime
import json
import statistics
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def measured_bf16_peak(device: torch.device, size: int = 8192, repeats: int = 10) -> float:
    a = torch.randn(size, size, device=device, dtype=torch.bfloat16)
    b = torch.randn(size, size, device=device, dtype=torch.bfloat16)
    for _ in range(3):
        a @ b
    _sync(device)
    best = 0.0
    for _ in range(repeats):
        start = time.perf_counter()
        for _ in range(10):
            a @ b
        _sync(device)
        best = max(best, 10 * 2 * size**3 / (time.perf_counter() - start))
    return best


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--length", type=int, default=1024)
    parser.add_argument("--steps", type=int, default=30)
    parser.add_argument("--warmup", type=int, default=10)
    parser.add_argument("--peak-tflops", type=float, default=989.0,
                        help="nominal dense bf16 peak of the GPU (H200/H100 SXM: 989)")
    parser.add_argument("--no-compile", action="store_true")
    parser.add_argument("--device", default="cuda", help="cuda (the benchmark) or cpu (a smoke run)")
    parser.add_argument("--layers", type=int, default=None, help="override (smoke runs only)")
    parser.add_argument("--out", default=None)
    args = parser.parse_args(argv)
    device = torch.device(args.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise SystemExit("gpt_gpu_step.py needs a CUDA GPU; none is visible (--device cpu for a "
                         "smoke run)")

    from bigmodel.models.gpt import GPT, GPT2_SMALL, language_model_loss

    torch.manual_seed(0)
    torch.backends.cuda.matmul.allow_tf32 = True
    torch.backends.cudnn.allow_tf32 = True
    # Vocabulary padded to a multiple of 64 (50304), as nanoGPT does: faster matmuls.
    config = {**GPT2_SMALL, "vocab_size": 50304, "max_length": args.length}
    if args.layers:
        config["num_layers"] = args.layers
    model = GPT(**config).to(device)
    optimizer = torch.optim.AdamW(model.parameters(), lr=6e-4, betas=(0.9, 0.95),
                                  weight_decay=0.1, fused=device.type == "cuda")
    step_model = model if args.no_compile else torch.compile(model)
    data = torch.randint(0, 50257, (args.batch, args.length + 1), device=device)
    x, y = data[:, :-1], data[:, 1:]

    def step() -> None:
        optimizer.zero_grad(set_to_none=True)
        with torch.autocast(device.type, dtype=torch.bfloat16):
            loss = language_model_loss(step_model(x), y)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()

    compile_started = time.perf_counter()
    for _ in range(args.warmup):
        step()
    _sync(device)
    warmup_seconds = time.perf_counter() - compile_started
    times = []
    for _ in range(args.steps):
        start = time.perf_counter()
        step()
        _sync(device)
        times.append(time.perf_counter() - start)
    step_time = statistics.median(times)
    tokens_per_s = args.batch * args.length / step_time
    flops = model.flops_per_token(args.length)
    measured = measured_bf16_peak(device, 8192 if device.type == "cuda" else 512)
    result = {
        "date": datetime.date.today().isoformat(),
        "device": torch.cuda.get_device_name(0) if device.type == "cuda" else "cpu",
        "torch": torch.__version__, "compiled": not args.no_compile, "batch": args.batch,
        "length": args.length, "parameters": model.num_parameters(),
        "step_seconds_median": step_time, "tokens_per_s": tokens_per_s,
        "flops_per_token": flops, "warmup_seconds": warmup_seconds,
        "mfu_nominal": tokens_per_s * flops / (args.peak_tflops * 1e12),
        "measured_bf16_matmul_flops": measured, "mfu_measured": tokens_per_s * flops / measured,
        "peak_memory_gib": (torch.cuda.max_memory_allocated() / 2**30
                            if device.type == "cuda" else None),
    }
    print(json.dumps(result, indent=2))
    print(f"| {result['date']} | {result['device']} | GPT-2 small {result['parameters'] / 1e6:.0f} M, "
          f"B={args.batch}, T={args.length}, bf16, compile={not args.no_compile} | "
          f"{tokens_per_s:,.0f} tokens/s | MFU {100 * result['mfu_nominal']:.1f}% of "
          f"{args.peak_tflops:.0f} TFLOP/s ({100 * result['mfu_measured']:.1f}% of measured "
          f"{measured / 1e12:.0f}) | target >= 40% |")
    if args.out:
        Path(args.out).write_text(json.dumps(result, indent=2))
    return result


if __name__ == "__main__":
    main()
