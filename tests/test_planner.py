"""The memory planner: activation bytes against hand-counted tensors, estimates against the peak
memory of real CPU training steps (within 25%), strategy arithmetic, the largest depth, the CLI."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from torch import nn

from bigmodel.cli.main import main
from bigmodel.engine.planner import (
    estimate,
    largest_depth,
    parse_bytes,
    profile_model,
    scale_depth,
)
from bigmodel.errors import ConfigError
from distributed_worker import TinyTransformer

ROOT = Path(__file__).resolve().parents[1]

MEASURE = r"""
import json, sys, torch
sys.path.insert(0, {tests!r})
from distributed_worker import TinyTransformer
from bigmodel.engine.activation_checkpoint import apply_activation_checkpointing
from bigmodel.engine.planner import measure_peak
torch.set_num_threads(1)
torch.manual_seed(0)
model = TinyTransformer(width=128, tokens=32, depth=8)
if {checkpointing}:
    apply_activation_checkpointing(model)
optimizer = torch.optim.Adam(model.parameters())
x, y = torch.randn(128, 32, 6), torch.randint(0, 3, (128,))
def step():
    torch.nn.functional.cross_entropy(model(x), y).backward()
    optimizer.step()
    optimizer.zero_grad(set_to_none=True)
step()  # optimizer state now exists: it is resident before the measured step
static = sum(t.numel() * t.element_size() for t in model.parameters())
static += sum(v.numel() * v.element_size() for s in optimizer.state.values() for v in s.values())
print(json.dumps({{"static": static, "peak": measure_peak(step)}}))
"""


class TwoLinear(nn.Module):
    """A model whose saved activations can be counted by hand."""

    def __init__(self):
        super().__init__()
        self.blocks = nn.ModuleList([nn.Linear(8, 16), nn.Linear(16, 4)])

    def forward(self, x):
        return self.blocks[1](torch.relu(self.blocks[0](x)))


def test_activation_bytes_counted_by_hand():
    profile = profile_model(TwoLinear(), lambda b: torch.randn(b, 8))
    # Block 0 (Linear 8->16) saves its input (8 floats); relu (outside) saves its output (16);
    # block 1 saves its input -- the relu output, already counted outside -- so nothing new.
    assert profile.activation_blocks == [32.0, 0.0]
    assert profile.activation_outside == 64.0
    assert profile.block_inputs == [32.0, 64.0]
    assert profile.parameters == 8 * 16 + 16 + 16 * 4 + 4
    assert profile.block_parameters == [8 * 16 + 16, 16 * 4 + 4]
    assert profile.activations(True) == 64.0 + 96.0 + 32.0


@pytest.fixture(scope="module")
def measured_peaks() -> dict[bool, dict]:
    """``{checkpointing: {"static", "peak"}}`` of real training steps, each in a fresh process (a
    clean heap); the two processes run at once (each has one thread; the suite waits for them)."""
    env = dict(os.environ, MALLOC_MMAP_THRESHOLD_="65536", OMP_NUM_THREADS="1",
               PYTHONPATH=str(ROOT / "src"))
    processes = {
        checkpointing: subprocess.Popen(
            [sys.executable, "-c", MEASURE.format(tests=str(ROOT / "tests"),
                                                  checkpointing=checkpointing)],
            env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        for checkpointing in (False, True)}
    try:
        peaks = {}
        for checkpointing, process in processes.items():
            out, err = process.communicate(timeout=300)
            assert process.returncode == 0, err[-3000:]
            peaks[checkpointing] = json.loads(out.strip().splitlines()[-1])
        return peaks
    finally:
        for process in processes.values():
            if process.poll() is None:
                process.kill()
                process.wait()


@pytest.mark.slow
@pytest.mark.parametrize("checkpointing", [False, True])
def test_estimate_matches_measured_peak_within_25_percent(checkpointing, measured_peaks):
    measured = measured_peaks[checkpointing]
    profile = profile_model(TinyTransformer(width=128, tokens=32, depth=8), lambda b: torch.randn(b, 32, 6))
    planned = estimate(profile, "single", 1, 128, checkpointing, optimizer="adam")
    total = measured["static"] + measured["peak"]
    assert planned.total == pytest.approx(total, rel=0.25)
    dynamic = planned.gradients + planned.activations  # the part that the step allocates
    assert dynamic == pytest.approx(measured["peak"], rel=0.25)


def test_strategy_arithmetic():
    profile = profile_model(TinyTransformer(depth=4), lambda b: torch.randn(b, 4, 6))
    weights = profile.parameter_bytes
    single = estimate(profile, "single", 1, 32)
    assert single.parameters == single.gradients == weights and single.optimizer == 2 * weights
    assert single.micro_batch == 32
    ddp = estimate(profile, "ddp", 4, 32)
    assert ddp.micro_batch == 8 and ddp.working_set == weights
    assert ddp.activations == pytest.approx(single.activations / 4)
    fsdp = estimate(profile, "fsdp", 4, 32)
    assert fsdp.parameters == pytest.approx(weights / 4) and fsdp.optimizer == pytest.approx(weights / 2)
    hybrid = estimate(profile, "hybrid", 4, 32, devices_per_node=2)
    assert hybrid.parameters == pytest.approx(weights / 2)
    sgd = estimate(profile, "single", 1, 32, optimizer="sgd")
    assert sgd.optimizer == 0
    checkpointed = estimate(profile, "single", 1, 32, activation_checkpointing=True)
    assert checkpointed.activations < single.activations


def test_largest_depth_is_the_boundary():
    profile = profile_model(TinyTransformer(depth=2), lambda b: torch.randn(b, 4, 6))
    memory = 5e6
    depth = largest_depth(profile, memory, "single", 1, 32)
    assert depth > 2
    assert estimate(scale_depth(profile, depth), "single", 1, 32).total <= memory
    assert estimate(scale_depth(profile, depth + 1), "single", 1, 32).total > memory
    deeper = largest_depth(profile, memory, "single", 1, 32, activation_checkpointing=True)
    assert deeper > depth
    assert largest_depth(profile, 10.0, "single", 1, 32) == 0


def test_bad_planner_input():
    profile = profile_model(TinyTransformer(depth=2), lambda b: torch.randn(b, 4, 6))
    with pytest.raises(ConfigError, match="does not split over 3 devices"):
        estimate(profile, "ddp", 3, 32)
    with pytest.raises(ConfigError, match="strategy must be one of"):
        estimate(profile, "zero", 2, 32)
    with pytest.raises(ConfigError, match="runs on 1 device"):
        estimate(profile, "single", 2, 32)
    with pytest.raises(ConfigError, match="80XB"):
        parse_bytes("80XB")
    assert parse_bytes("80GB") == 80 * 10**9 and parse_bytes("1.5GiB") == int(1.5 * 2**30)


def test_plan_cli(capsys):
    code = main(["plan", str(ROOT / "configs" / "fashion_cnn.yaml"), "--devices", "8",
                 "--device-memory", "80GB", "--json"])
    out = capsys.readouterr().out
    assert code == 0, out
    report = json.loads(out)
    rows = report["estimates"]
    assert {row["strategy"] for row in rows} == {"ddp", "fsdp"}
    ddp = next(row for row in rows if row["strategy"] == "ddp")
    fsdp = next(row for row in rows if row["strategy"] == "fsdp")
    assert fsdp["parameters"] == pytest.approx(ddp["parameters"] / 8)
    assert report["parameters"] == 93322  # the seed CNN
    assert all(row["fits"] for row in rows)


def test_plan_cli_text_and_errors(capsys, tmp_path):
    assert main(["plan", str(ROOT / "configs" / "fashion_cnn.yaml"), "--devices", "1",
                 "--device-memory", "1MB"]) == 0
    out = capsys.readouterr().out
    assert "single" in out and "does not fit" in out
    assert main(["plan", str(ROOT / "configs" / "fashion_cnn.yaml"), "--devices", "3",
                 "--device-memory", "80GB"]) == 2
    assert "does not split over 3 devices" in capsys.readouterr().err
    assert main(["plan", str(ROOT / "configs" / "fashion_cnn.yaml"), "--device-memory", "lots"]) == 2
    assert "80GB" in capsys.readouterr().err
