"""Step checkpoints under torchrun (issue 18): a 2-process DDP job that dies mid-epoch resumes
bit-identically on 2 processes (each its own RNG stream, running loss and metrics), and on 1."""

from __future__ import annotations

import pytest
import torch

from bigmodel.engine import Trainer
from bigmodel.errors import ConfigError
from distributed_helpers import max_difference, result, run_worker
from distributed_worker import TinyTransformer, main

# 96 samples, global batch 32: 3 steps per epoch, 3 epochs; a checkpoint every 2 steps.
ARGS = ("--samples", "96", "--batch-size", "32", "--epochs", "3", "--strategy", "ddp",
        "--checkpoint-every", "2")


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    root = tmp_path_factory.mktemp("dist-steps")
    groups = []
    for name, dropout in (("drop", "0.1"), ("plain", "0.0")):
        common = (*ARGS, "--dropout", dropout)
        groups += [
            ["--out", str(root / f"{name}_ref.safetensors"), *common, "--run-dir", str(root / f"{name}_ref")],
            # Dies after step 5: the newest checkpoint is step 4, one batch into epoch 2.
            ["--out", str(root / f"{name}_crashed.safetensors"), *common, "--run-dir", str(root / name),
             "--crash-at-batch", "5"],
        ]
    groups.append(["--out", str(root / "drop_resumed.safetensors"), *ARGS, "--dropout", "0.1",
                   "--run-dir", str(root / "drop"), "--resume"])
    args = [item for group in groups for item in [*group, "::"]][:-1]
    run_worker(None, *args, nproc=2)
    # Saved by 2 processes, resumed by 1 (a one-process group in this process).
    main(["--out", str(root / "plain_one.safetensors"), *ARGS, "--dropout", "0.0",
          "--run-dir", str(root / "plain"), "--resume"])
    return root


@pytest.mark.full
def test_two_processes_resume_mid_epoch_bit_identically(runs):
    names = sorted(p.name for p in (runs / "drop" / "checkpoints" / "sharded").iterdir()
                   if not p.name.startswith("."))
    assert names[-1] == "epoch-0003"
    reference, ref_record = result(runs / "drop_ref.safetensors")
    resumed, record = result(runs / "drop_resumed.safetensors")
    assert max_difference(reference, resumed) == 0.0
    assert record == ref_record  # every logged loss, the step and epoch counts
    assert record["global_step"] == 9 and record["world_size"] == 2


@pytest.mark.full
def test_two_processes_resume_on_one(runs):
    reference, ref_record = result(runs / "plain_ref.safetensors")
    one, record = result(runs / "plain_one.safetensors")
    assert record["world_size"] == 1 and record["global_step"] == 9
    assert max_difference(reference, one) < 1e-5  # the same sums, in another order
    assert record["loss"][0] == ref_record["loss"][0]  # the epoch done before the crash
    # Epoch 2's loss adds both processes' running sums from the checkpoint to this one's.
    assert record["loss"][1:] == pytest.approx(ref_record["loss"][1:], rel=1e-5)


def test_a_duration_is_refused_under_a_process_group(tmp_path):
    with pytest.raises(ConfigError, match="duration is not supported with strategy='ddp'"):
        Trainer(TinyTransformer(), "cross_entropy", device="cpu", strategy="ddp",
                run_dir=tmp_path, checkpoint_every="10s")
    assert torch.distributed.is_initialized() is False
