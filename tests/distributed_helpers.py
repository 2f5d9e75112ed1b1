"""Launching ``tests/distributed_worker.py`` alone or under torchrun, for the distributed tests."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import torch
from safetensors.torch import load_file

WORKER = Path(__file__).with_name("distributed_worker.py")
ROOT = Path(__file__).resolve().parents[1]


def environment() -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT / "src"), str(WORKER.parent), env.get("PYTHONPATH", "")])
    env["OMP_NUM_THREADS"] = "1"
    for name in ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT", "LOCAL_WORLD_SIZE"):
        env.pop(name, None)
    return env


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def torchrun_command(nproc: int, *, max_restarts: int = 0, extra: tuple[str, ...] = ()) -> list[str]:
    return [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc-per-node={nproc}",
            f"--max-restarts={max_restarts}", *extra]


def run_worker(out: Path | None, *args: str, nproc: int = 0, max_restarts: int = 0,
               check: bool = True) -> subprocess.CompletedProcess:
    """Run the worker (``nproc=0``: plain process, no torchrun) writing ``out``; return the process.

    ``args`` may hold several runs separated by ``"::"`` (each with its own ``--out``; ``out`` None).
    """
    prefix = torchrun_command(nproc, max_restarts=max_restarts) if nproc else [sys.executable]
    command = [*prefix, str(WORKER), *(("--out", str(out)) if out is not None else ()), *args]
    done = subprocess.run(command, env=environment(), capture_output=True, text=True, timeout=300)
    if check and done.returncode != 0:
        raise AssertionError(f"{' '.join(command)} failed ({done.returncode}):\n{done.stdout[-3000:]}\n"
                             f"{done.stderr[-6000:]}")
    return done


def result(out: Path) -> tuple[dict[str, torch.Tensor], dict]:
    return load_file(str(out)), json.loads(Path(out).with_suffix(".json").read_text())


def max_difference(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> float:
    assert a.keys() == b.keys()
    return max((a[key].double() - b[key].double()).abs().max().item() for key in a)
