"""GPU benchmark (not yet run: written for a session with the H200 machine): GPT-2 small and a ~1 B
parameter GPT trained with FSDP + bf16 + torch.compile + activation checkpointing; tokens/s, MFU,
peak memory, and the planner's estimate next to it.

    .venv/bin/python benchmarks/distributed_gpu.py [--models gpt2-small,gpt-1b] [--steps 10]
    .venv/bin/python benchmarks/distributed_gpu.py --tiny      # CPU smoke run of the same code

One torchrun job per model, ``--nproc-per-node`` = the number of visible GPUs. MFU counts
``6 * N + 12 * layers * T * d_model`` FLOPs per token (forward + backward, attention included;
PaLM's formula) against ``--peak-tflops`` per GPU (H200 dense bf16: 989). Peak memory is
``torch.cuda.max_memory_allocated`` over the measured steps; the planner's figure is its total for
the same configuration (profiled on the GPU with 1 and 3 sequences).
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

ROOT = Path(__file__).resolve().parents[1]
MODELS = {
    "gpt2-small": {"vocab_size": 50257, "max_length": 1024, "d_model": 768, "num_heads": 12,
                   "num_layers": 12},
    "gpt-1b": {"vocab_size": 50257, "max_length": 1024, "d_model": 2048, "num_heads": 16,
               "num_layers": 18},
    "tiny": {"vocab_size": 256, "max_length": 64, "d_model": 64, "num_heads": 4, "num_layers": 2},
}
BATCH = {"gpt2-small": 32, "gpt-1b": 16, "tiny": 4}


def worker(args: argparse.Namespace) -> None:
    import torch
    import torch.nn.functional as F

    from bigmodel.engine import Trainer
    from bigmodel.engine.planner import estimate, profile_model
    from bigmodel.models import create_model

    config = MODELS[args.model]
    cuda = torch.cuda.is_available() and not args.tiny
    torch.manual_seed(0)
    vocab, length = config["vocab_size"], config["max_length"]
    world = int(os.environ.get("WORLD_SIZE", "1"))
    batch = BATCH[args.model] * world
    rank = int(os.environ.get("RANK", "0"))
    plan = None
    if rank == 0:  # the planner's estimate, profiled on this device
        probe = create_model("gpt", **config).to("cuda" if cuda else "cpu")
        profile = profile_model(probe, lambda b: torch.randint(0, vocab, (b, length)),
                                precision="bf16", device="cuda" if cuda else "cpu")
        plan = estimate(profile, "fsdp", world, batch, True, optimizer="adamw",
                        precision="bf16").as_dict()
        del probe
        if cuda:
            torch.cuda.empty_cache()
    model = create_model("gpt", **config)
    parameters = sum(p.numel() for p in model.parameters())
    steps = args.steps + args.warmup
    tokens = torch.randint(0, vocab, (batch * steps, length + 1))
    x, y = tokens[:, :-1].contiguous(), tokens[:, 1:].contiguous()

    def loss(logits, targets):  # (B, T, V), (B, T)
        return F.cross_entropy(logits.reshape(-1, vocab).float(), targets.reshape(-1))

    trainer = Trainer(model, loss=loss, optimizer="adamw", lr=3e-4, device="auto", verbose=0, seed=0,
                      precision="bf16", strategy="fsdp", activation_checkpointing=True,
                      compile=not args.tiny)
    warm = batch * args.warmup
    trainer.fit((x[:warm], y[:warm]), epochs=1, batch_size=batch, shuffle=False)  # compiles
    if cuda:
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
    started = time.perf_counter()
    trainer.fit((x[warm:], y[warm:]), epochs=1, batch_size=batch, shuffle=False)
    if cuda:
        torch.cuda.synchronize()
    seconds = time.perf_counter() - started
    tokens_per_second = batch * args.steps * length / seconds
    flops_per_token = 6 * parameters + 12 * config["num_layers"] * length * config["d_model"]
    mfu = tokens_per_second * flops_per_token / (world * args.peak_tflops * 1e12)
    peak = torch.cuda.max_memory_allocated() if cuda else None
    if rank == 0:
        Path(args.report).write_text(json.dumps({
            "model": args.model, "parameters": parameters, "world_size": world, "global_batch": batch,
            "sequence_length": length, "tokens_per_second": tokens_per_second, "mfu": mfu,
            "peak_memory_bytes": peak, "planner": plan, "seconds": seconds,
            "device": torch.cuda.get_device_name() if cuda else "cpu"}))
    trainer.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--model", default="gpt2-small", help=argparse.SUPPRESS)
    parser.add_argument("--report", default="", help=argparse.SUPPRESS)
    parser.add_argument("--models", default="gpt2-small,gpt-1b")
    parser.add_argument("--steps", type=int, default=10, help="measured optimizer steps")
    parser.add_argument("--warmup", type=int, default=3, help="steps before measuring (compilation)")
    parser.add_argument("--peak-tflops", type=float, default=989.0, help="per-GPU dense bf16 peak")
    parser.add_argument("--tiny", action="store_true", help="CPU smoke run with a tiny GPT, no compile")
    parser.add_argument("--out", default=None)
    options = parser.parse_args()
    if options.worker:
        worker(options)
        return
    import torch

    nproc = 1 if options.tiny else max(torch.cuda.device_count(), 1)
    models = ["tiny"] if options.tiny else options.models.split(",")
    results = []
    for name in models:
        with tempfile.TemporaryDirectory() as directory:
            report = Path(directory) / "report.json"
            command = [sys.executable, "-m", "torch.distributed.run", "--standalone",
                       f"--nproc-per-node={nproc}", __file__, "--worker", "--model", name,
                       "--steps", str(options.steps), "--warmup", str(options.warmup),
                       "--peak-tflops", str(options.peak_tflops), "--report", str(report)]
            if options.tiny:
                command.append("--tiny")
            env = dict(os.environ, PYTHONPATH=str(ROOT / "src"))
            subprocess.run(command, env=env, check=True)
            result = json.loads(report.read_text())
        results.append(result)
        peak = result["peak_memory_bytes"]
        planned = result["planner"]["total"]
        print(f"{name}: {result['parameters'] / 1e6:.0f} M parameters on {result['world_size']} x "
              f"{result['device']}: {result['tokens_per_second']:,.0f} tokens/s, MFU "
              f"{result['mfu']:.1%}, peak memory "
              + (f"{peak / 2**30:.2f} GiB" if peak is not None else "n/a (CPU)")
              + f", planner {planned / 2**30:.2f} GiB")
    if options.out:
        Path(options.out).write_text(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
