"""How often a 2-process CPU training run loses a rank at teardown (issue 18).

    .venv/bin/python benchmarks/teardown_aborts.py [--runs 100] [--strategy ddp] [--out DIR]

Each run is the real command a user types, ``bigmodel train configs/fashion_cnn.yaml --nproc 2``,
on tiny Fashion-MNIST-shaped IDX files this script writes (class k is a bright square at one of 10
places), one epoch, gloo on CPU, one thread per process. A run counts as an *abort* when its output
shows a rank killed by a signal or the C++ runtime's "terminate called ..." message, and as a
*failure* when the command exits non-zero or leaves no ``results.json`` (an abort usually does
both). Run it on a loaded machine: the aborts this counts were seen when ranks finish at
different times.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
from _common import log, machine_info, today, write_json

ROOT = Path(__file__).resolve().parents[1]
RECIPE = ROOT / "configs" / "fashion_cnn.yaml"
# torchrun's summary of a worker ended by a signal, and the C++ runtime's abort message.
ABORT_PATTERNS = (re.compile(r"terminate called"), re.compile(r"Signal \d+ \(SIG\w+\)"),
                  re.compile(r"exitcode\s*:\s*-\d+"), re.compile(r"SIGABRT|Aborted"))


def write_tiny_fashion(directory: Path, train: int, test: int, seed: int = 0) -> Path:
    """Fashion-MNIST-shaped gzip IDX files (``train``/``t10k``) that a CNN learns in one epoch."""
    from bigmodel.data.idx import write_idx

    rng = np.random.default_rng(seed)
    for split, count in (("train", train), ("t10k", test)):
        labels = rng.integers(0, 10, count).astype(np.uint8)
        images = rng.integers(0, 60, (count, 28, 28)).astype(np.uint8)
        for index, label in enumerate(labels):
            row, col = 3 + 13 * (label // 5), 2 + 5 * (label % 5)
            images[index, row: row + 6, col: col + 6] = 230
        write_idx(directory / f"{split}-images-idx3-ubyte.gz", images)
        write_idx(directory / f"{split}-labels-idx1-ubyte.gz", labels)
    return directory


def one_run(data: Path, run_dir: Path, strategy: str, timeout: float) -> dict[str, Any]:
    """Run the CLI once; return its exit code, seconds, and whether its output shows an abort."""
    command = [sys.executable, "-m", "bigmodel", "train", str(RECIPE), "--nproc", "2",
               "--run-dir", str(run_dir)]
    for pair in (f"data.path={data}", "train.epochs=1", "train.batch_size=32", "train.device=cpu",
                 f"train.strategy={strategy}"):
        command += ["--set", pair]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "BIGMODEL_OFFLINE": "1"}
    started = time.perf_counter()
    try:
        done = subprocess.run(command, capture_output=True, text=True, env=env, timeout=timeout,
                              check=False)
        code, output = done.returncode, done.stdout + done.stderr
    except subprocess.TimeoutExpired as exc:
        code = None
        output = "".join(part.decode(errors="replace") if isinstance(part, bytes) else (part or "")
                         for part in (exc.stdout, exc.stderr))
    seconds = time.perf_counter() - started
    aborted = any(pattern.search(output) for pattern in ABORT_PATTERNS)
    complete = (run_dir / "results.json").is_file()
    return {"exit_code": code, "seconds": round(seconds, 1), "aborted": aborted,
            "results_written": complete, "failed": code != 0 or not complete,
            "output_tail": output[-2000:] if (aborted or code != 0 or not complete) else ""}


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=100)
    parser.add_argument("--strategy", default="ddp", choices=("ddp", "fsdp"))
    parser.add_argument("--train-samples", type=int, default=256)
    parser.add_argument("--test-samples", type=int, default=64)
    parser.add_argument("--timeout", type=float, default=600.0, help="seconds per run")
    parser.add_argument("--out", default=str(Path(__file__).resolve().parent / "out"))
    args = parser.parse_args(argv)

    result: dict[str, Any] = {
        "benchmark": "teardown_aborts", "date": today(), "machine": machine_info(),
        "command": " ".join([Path(sys.argv[0]).name, *(argv if argv is not None else sys.argv[1:])]),
        "config": {"runs": args.runs, "strategy": args.strategy, "recipe": "configs/fashion_cnn.yaml",
                   "train_samples": args.train_samples, "test_samples": args.test_samples,
                   "epochs": 1, "nproc": 2}}
    runs = []
    with tempfile.TemporaryDirectory(prefix="teardown-") as tmp:
        data = write_tiny_fashion(Path(tmp) / "data", args.train_samples, args.test_samples)
        for index in range(args.runs):
            run_dir = Path(tmp) / f"run-{index:03d}"
            run = one_run(data, run_dir, args.strategy, args.timeout)
            runs.append(run)
            shutil.rmtree(run_dir, ignore_errors=True)
            log(f"run {index + 1}/{args.runs}: exit {run['exit_code']}, {run['seconds']} s"
                + (", ABORTED" if run["aborted"] else "") + (", FAILED" if run["failed"] else ""))
            if run["output_tail"]:
                log(run["output_tail"])
            result.update({
                "runs_done": len(runs), "aborts": sum(r["aborted"] for r in runs),
                "failures": sum(r["failed"] for r in runs),
                "median_seconds": float(np.median([r["seconds"] for r in runs])),
                "load_average_at_end": list(os.getloadavg()),
                "failed_runs": [dict(r, index=i) for i, r in enumerate(runs) if r["failed"] or r["aborted"]]})
            write_json(result, args.out, "teardown_aborts.json")  # partial results survive a kill
    log(f"{result['aborts']} aborts, {result['failures']} failures in {len(runs)} runs")
    return result


if __name__ == "__main__":
    main()
