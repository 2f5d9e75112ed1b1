"""Two "nodes" on one machine: two torchrun launches joined by c10d rendezvous train like one process."""

from __future__ import annotations

import subprocess
import sys

import pytest

from distributed_helpers import WORKER, environment, free_port, max_difference, result
from distributed_worker import main

ARGS = ("--samples", "160", "--batch-size", "32")


@pytest.mark.slow
@pytest.mark.full
def test_two_torchrun_launches_with_c10d_rendezvous(tmp_path):
    main(["--out", str(tmp_path / "single.safetensors"), *ARGS])
    port = free_port()
    launches = []
    for _ in range(2):
        command = [sys.executable, "-m", "torch.distributed.run", "--nnodes=2", "--nproc-per-node=1",
                   "--rdzv-backend=c10d", f"--rdzv-endpoint=127.0.0.1:{port}", "--rdzv-id=bigmodel-test",
                   str(WORKER), "--out", str(tmp_path / "nodes.safetensors"), *ARGS, "--strategy", "ddp"]
        launches.append(subprocess.Popen(command, env=environment(), stdout=subprocess.PIPE,
                                         stderr=subprocess.PIPE, text=True))
    outputs = [launch.communicate(timeout=300) for launch in launches]
    for launch, (_, stderr) in zip(launches, outputs):
        assert launch.returncode == 0, stderr[-4000:]
    weights, info = result(tmp_path / "nodes.safetensors")
    assert info["world_size"] == 2 and info["global_step"] == 5
    assert max_difference(weights, result(tmp_path / "single.safetensors")[0]) < 1e-5
