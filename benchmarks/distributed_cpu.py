"""CPU data-parallel benchmark on the GPT model: 1 vs 2 processes (samples/s, scaling efficiency) and
peak memory per process for DDP / FSDP, with and without activation checkpointing, next to the
planner's estimates.

    .venv/bin/python benchmarks/distributed_cpu.py [--repeats 3] [--steps 6] [--out FILE.json]

Each configuration runs as its own torchrun job (gloo); throughput runs are interleaved (1, 2, 1,
2, ...) and the median of the repeats is reported, so the shared machine's noise is spread over
both. Memory: each process measures its resident-memory high-water mark above its level before the
measured steps (``planner.measure_peak``, ``MALLOC_MMAP_THRESHOLD_=65536``), and counts the bytes of
its local parameter shards, gradients and optimizer state exactly. Samples are GPT sequences of
``--tokens`` tokens; the global batch is the same for 1 and 2 processes.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
MODEL = {"vocab_size": 256, "max_length": 128, "d_model": 192, "num_heads": 4, "num_layers": 6}


def worker(args: argparse.Namespace) -> None:
    import torch
    import torch.nn.functional as F

    from bigmodel.engine import Trainer
    from bigmodel.engine.planner import measure_peak
    from bigmodel.models import create_model

    torch.set_num_threads(1)
    torch.manual_seed(0)
    model = create_model("gpt", **MODEL)
    vocab = MODEL["vocab_size"]
    generator = torch.Generator().manual_seed(0)
    samples = args.batch_size * args.steps
    tokens = torch.randint(0, vocab, (samples, args.tokens + 1), generator=generator)
    x, y = tokens[:, :-1].contiguous(), tokens[:, 1:].contiguous()

    def loss(logits, targets):  # (B, T, V), (B, T)
        return F.cross_entropy(logits.reshape(-1, vocab), targets.reshape(-1))

    trainer = Trainer(model, loss=loss, optimizer="adamw", lr=1e-3, device="cpu", seed=0, verbose=0,
                      strategy=args.strategy, activation_checkpointing=args.checkpointing)
    warm = args.batch_size * 2
    trainer.fit((x[:warm], y[:warm]), epochs=1, batch_size=args.batch_size, shuffle=False)
    seconds = []

    def measured():
        started = time.perf_counter()
        trainer.fit((x, y), epochs=1, batch_size=args.batch_size, shuffle=False)
        seconds.append(time.perf_counter() - started)

    peak = measure_peak(measured)

    def local_bytes(tensor) -> int:
        tensor = tensor.to_local() if hasattr(tensor, "to_local") else tensor
        return tensor.numel() * tensor.element_size()

    parameters = sum(local_bytes(p) for p in trainer.model.parameters())
    optimizer = sum(local_bytes(v) for state in trainer.optimizer.state.values()
                    for v in state.values() if isinstance(v, torch.Tensor))
    rank = int(os.environ.get("RANK", "0"))
    Path(args.report).with_suffix(f".rank{rank}.json").write_text(json.dumps({
        "seconds": seconds[0], "samples": samples, "peak_bytes": peak, "parameter_bytes": parameters,
        "optimizer_bytes": optimizer, "world_size": int(os.environ.get("WORLD_SIZE", "1"))}))
    trainer.close()


def launch(nproc: int, strategy: str, checkpointing: bool, options: argparse.Namespace) -> list[dict]:
    env = dict(os.environ, OMP_NUM_THREADS="1", MALLOC_MMAP_THRESHOLD_="65536",
               PYTHONPATH=str(ROOT / "src"))
    with tempfile.TemporaryDirectory() as directory:
        report = Path(directory) / "report.json"
        command = [sys.executable, "-m", "torch.distributed.run", "--standalone",
                   f"--nproc-per-node={nproc}", __file__, "--worker", "--strategy", strategy,
                   "--batch-size", str(options.batch_size), "--steps", str(options.steps),
                   "--tokens", str(options.tokens), "--report", str(report)]
        if checkpointing:
            command.append("--checkpointing")
        subprocess.run(command, env=env, check=True, capture_output=True, text=True)
        return [json.loads(report.with_suffix(f".rank{r}.json").read_text()) for r in range(nproc)]


def planner_estimates(options: argparse.Namespace) -> dict:
    import torch

    from bigmodel.engine.planner import estimate, profile_model
    from bigmodel.models import create_model

    torch.manual_seed(0)
    profile = profile_model(create_model("gpt", **MODEL),
                            lambda b: torch.randint(0, MODEL["vocab_size"], (b, options.tokens)))
    out = {}
    for strategy in ("ddp", "fsdp"):
        for checkpointing in (False, True):
            row = estimate(profile, strategy, 2, options.batch_size, checkpointing, optimizer="adamw")
            out[f"{strategy}{'+ckpt' if checkpointing else ''}"] = row.as_dict()
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--strategy", default="single", help=argparse.SUPPRESS)
    parser.add_argument("--checkpointing", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--report", default="", help=argparse.SUPPRESS)
    parser.add_argument("--batch-size", type=int, default=16, help="global batch (sequences)")
    parser.add_argument("--steps", type=int, default=6, help="measured optimizer steps per run")
    parser.add_argument("--tokens", type=int, default=128, help="tokens per sequence")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--out", default=None, help="write the results as JSON here")
    options = parser.parse_args()
    if options.worker:
        worker(options)
        return
    throughput = {1: [], 2: []}
    for _ in range(options.repeats):  # interleaved
        for nproc, strategy in ((1, "single"), (2, "ddp")):
            ranks = launch(nproc, strategy, False, options)
            throughput[nproc].append(ranks[0]["samples"] / max(r["seconds"] for r in ranks))
    one, two = (statistics.median(throughput[n]) for n in (1, 2))
    print(f"GPT {MODEL}, {options.tokens} tokens/sample, global batch {options.batch_size}, "
          f"{options.steps} steps, median of {options.repeats}")
    print(f"  1 process : {one:8.2f} samples/s  (runs: {[round(v, 2) for v in throughput[1]]})")
    print(f"  2 processes (DDP): {two:8.2f} samples/s  (runs: {[round(v, 2) for v in throughput[2]]})")
    print(f"  speed-up {two / one:.2f}x, scaling efficiency {two / one / 2:.0%}")
    plans = planner_estimates(options)
    memory = {}
    print("  per process (rank 0): local parameter and optimizer bytes (exact); peak resident memory "
          "the measured steps added (gradients, activations, gathered FSDP units) vs the planner's "
          "gradients + activations + FSDP working set")
    for strategy in ("ddp", "fsdp"):
        for checkpointing in (False, True):
            name = f"{strategy}{'+ckpt' if checkpointing else ''}"
            ranks = launch(2, strategy, checkpointing, options)
            plan = plans[name]
            memory[name] = {"ranks": ranks, "plan": plan}
            rank0 = ranks[0]
            # DDP's gradient buckets exist from the first step on: resident before the measured
            # steps, so they are not part of what those steps add.
            dynamic = plan["gradients"] + plan["activations"] + (
                plan["working_set"] if strategy == "fsdp" else 0.0)
            print(f"  {name:10s} params {rank0['parameter_bytes'] / 1e6:7.2f} MB, optimizer "
                  f"{rank0['optimizer_bytes'] / 1e6:7.2f} MB, step peak +{rank0['peak_bytes'] / 1e6:6.1f} MB, "
                  f"planned +{dynamic / 1e6:6.1f} MB ({dynamic / rank0['peak_bytes'] - 1:+.0%}); planned "
                  f"total {plan['total'] / 1e6:6.1f} MB")
    ratio = memory["ddp"]["ranks"][0]["parameter_bytes"] / memory["fsdp"]["ranks"][0]["parameter_bytes"]
    print(f"  FSDP lowers per-process parameter memory {ratio:.2f}x")
    if options.out:
        Path(options.out).write_text(json.dumps({"throughput": throughput, "memory": memory},
                                                indent=1))


if __name__ == "__main__":
    main()
