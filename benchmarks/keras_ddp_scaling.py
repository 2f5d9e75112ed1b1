"""The seed CNN Keras program under torchrun: samples/s of ``model.fit`` with 1 vs 2 processes (DDP
through ``keras`` ``fit`` itself, ``batch_size`` global), and the scaling efficiency.

    .venv/bin/python benchmarks/keras_ddp_scaling.py [--samples 4096] [--batch-size 64]
        [--repeats 3] [--threads 1] [--out benchmarks/out]

Each configuration is its own torchrun job (gloo on CPU, NCCL on GPUs; one process per GPU). Each
process loads the first ``--samples`` Fashion-MNIST training images, builds and compiles the seed
CNN (seed-examples/seed_cnn.py), fits one warm-up epoch on a tenth of the data, then times one
epoch over all of them (``shuffle=False``); the throughput of a job is samples / the slowest
process's seconds. Jobs are interleaved (1, 2, 1, 2, ...) and the median of ``--repeats`` reported,
so the noise of a shared machine falls on both.
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

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
if str(BENCH) not in sys.path:
    sys.path.insert(0, str(BENCH))

from _common import (  # noqa: E402
    DEFAULT_OUT,
    load_fashion,
    machine_info,
    median,
    seed_cnn_keras,
    today,
    write_json,
)


def worker(options: argparse.Namespace) -> None:
    """One process of a job: the Keras program, timed; writes ``--report``.rankR.json."""
    import torch

    torch.set_num_threads(options.threads)
    torch.manual_seed(0)
    (x, y), _ = load_fashion()
    x = (x[: options.samples, ..., None] / 255.0).astype("float32")
    y = y[: options.samples]
    model = seed_cnn_keras()
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    warm = max(options.batch_size * 2, options.samples // 10)
    model.fit(x[:warm], y[:warm], batch_size=options.batch_size, epochs=1, verbose=0, shuffle=False)
    started, cpu = time.perf_counter(), time.process_time()
    history = model.fit(x, y, batch_size=options.batch_size, epochs=1, verbose=0, shuffle=False)
    seconds, cpu = time.perf_counter() - started, time.process_time() - cpu
    rank = int(os.environ.get("RANK", "0"))
    Path(options.report).with_suffix(f".rank{rank}.json").write_text(json.dumps(
        {"seconds": seconds, "cpu_seconds": cpu, "samples": len(x),
         "loss": history.history["loss"][-1]}))


def launch(nproc: int, options: argparse.Namespace) -> list[dict]:
    threads = options.one_process_threads if nproc == 1 else options.threads
    env = dict(os.environ, OMP_NUM_THREADS=str(threads),
               PYTHONPATH=os.pathsep.join([str(ROOT / "src"), os.environ.get("PYTHONPATH", "")]))
    for name in ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT"):
        env.pop(name, None)
    with tempfile.TemporaryDirectory() as directory:
        report = Path(directory) / "report.json"
        command = [sys.executable, "-m", "torch.distributed.run", "--standalone",
                   f"--nproc-per-node={nproc}", __file__, "--worker", "--report", str(report),
                   "--samples", str(options.samples), "--batch-size", str(options.batch_size),
                   "--threads", str(threads)]
        done = subprocess.run(command, env=env, capture_output=True, text=True)
        if done.returncode:
            raise RuntimeError(f"{' '.join(command)} failed:\n{done.stderr[-4000:]}")
        return [json.loads(report.with_suffix(f".rank{r}.json").read_text()) for r in range(nproc)]


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--report", default="", help=argparse.SUPPRESS)
    parser.add_argument("--samples", type=int, default=4096, help="Fashion-MNIST images per epoch")
    parser.add_argument("--batch-size", type=int, default=64, help="global batch size")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=1, help="torch threads per process")
    parser.add_argument("--one-process-threads", type=int, default=None,
                        help="threads of the 1-process job (default --threads; 2 compares equal cores)")
    parser.add_argument("--out", default=str(DEFAULT_OUT))
    options = parser.parse_args(argv)
    if options.worker:
        worker(options)
        return {}
    options.one_process_threads = options.one_process_threads or options.threads
    runs: dict[int, list[float]] = {1: [], 2: []}
    cpu: dict[int, list[float]] = {1: [], 2: []}  # CPU seconds of the busiest process: load-robust
    losses: dict[int, float] = {}
    for _ in range(options.repeats):
        for nproc in (1, 2):
            ranks = launch(nproc, options)
            runs[nproc].append(ranks[0]["samples"] / max(r["seconds"] for r in ranks))
            cpu[nproc].append(max(r["cpu_seconds"] for r in ranks))
            losses[nproc] = ranks[0]["loss"]
    one, two = median(runs[1]), median(runs[2])
    result = {
        "benchmark": "keras_ddp_scaling", "date": today(), "machine": machine_info(),
        "command": " ".join([Path(sys.executable).name, "benchmarks/keras_ddp_scaling.py", *(argv or sys.argv[1:])]),
        "config": {"samples": options.samples, "batch_size": options.batch_size,
                   "repeats": options.repeats, "threads_per_process": options.threads,
                   "threads_of_one_process": options.one_process_threads},
        "samples_per_s": {"1": one, "2": two}, "runs": {str(k): v for k, v in runs.items()},
        "speedup": two / one, "scaling_efficiency": two / one / 2,
        "cpu_seconds_busiest_process": {str(k): median(v) for k, v in cpu.items()},
        "cpu_speedup": median(cpu[1]) / median(cpu[2]),
        "last_epoch_loss": {str(k): v for k, v in losses.items()},
    }
    write_json(result, options.out, "keras_ddp_scaling.json")
    print(f"seed CNN Keras fit, {options.samples} samples, global batch {options.batch_size}, "
          f"{options.threads} thread(s)/process ({options.one_process_threads} for 1 process), "
          f"median of {options.repeats}")
    print(f"  1 process  : {one:8.1f} samples/s  {[round(v, 1) for v in runs[1]]}")
    print(f"  2 processes: {two:8.1f} samples/s  {[round(v, 1) for v in runs[2]]}")
    print(f"  CPU seconds of the busiest process: 1 process {median(cpu[1]):.2f}, 2 processes "
          f"{median(cpu[2]):.2f} ({median(cpu[1]) / median(cpu[2]):.2f}x less)")
    print(f"  speed-up {two / one:.2f}x, scaling efficiency {two / one / 2:.0%}; last-epoch loss "
          f"1 process {losses[1]:.5f}, 2 processes {losses[2]:.5f}")
    return result


if __name__ == "__main__":
    main()
