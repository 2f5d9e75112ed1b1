"""Sharded checkpoints: resharding 2 -> 1 and 1 -> 2 processes, elastic restart after a SIGKILL,
atomic commit, and clear errors for another model's checkpoint, a missing shard, fp16 on CPU."""

from __future__ import annotations

import shutil

import pytest
import torch
import torch.distributed as dist

from bigmodel.engine import Trainer
from bigmodel.engine import dist_checkpoint as dcp
from bigmodel.errors import CheckpointError, ConfigError
from distributed_helpers import max_difference, result, run_worker
from distributed_worker import TinyTransformer, main

ARGS = ("--samples", "64", "--batch-size", "32")  # 2 optimizer steps per epoch


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    root = tmp_path_factory.mktemp("dcp")
    out = {"root": root}
    for epochs in (4, 6):  # uninterrupted single-process references
        main(["--out", str(root / f"ref{epochs}.safetensors"), *ARGS, "--epochs", str(epochs)])
        out[f"ref{epochs}"] = result(root / f"ref{epochs}.safetensors")
    # 2 processes (DDP), rank 1 SIGKILLed at the start of epoch 2; torchrun restarts both once,
    # and they resume from the newest committed checkpoint (end of epoch 2).
    killed = run_worker(root / "killed.safetensors", *ARGS, "--strategy", "ddp", "--epochs", "4",
                        "--run-dir", str(root / "run2"), "--resume", "--kill-at-epoch", "2",
                        nproc=2, max_restarts=1)
    out["killed"] = result(root / "killed.safetensors")
    out["killed_log"] = killed.stderr
    # Saved by 2 processes -> resumed by 1 (FSDP with a one-process group) for 2 more epochs.
    main(["--out", str(root / "two_to_one.safetensors"), *ARGS, "--strategy", "fsdp", "--epochs", "6",
          "--run-dir", str(root / "run2"), "--resume"])
    out["two_to_one"] = result(root / "two_to_one.safetensors")
    # Saved by 1 process (DDP, one-process group) -> resumed by 2 (FSDP: reshards every tensor).
    main(["--out", str(root / "one.safetensors"), *ARGS, "--strategy", "ddp", "--epochs", "2",
          "--run-dir", str(root / "run1")])
    run_worker(root / "one_to_two.safetensors", *ARGS, "--strategy", "fsdp", "--epochs", "4",
               "--run-dir", str(root / "run1"), "--resume", nproc=2)
    out["one_to_two"] = result(root / "one_to_two.safetensors")
    return out


@pytest.mark.slow  # uses the torchrun launches of the `runs` fixture
@pytest.mark.full
def test_killed_worker_restarts_and_matches_uninterrupted_run(runs):
    assert (runs["root"] / "killed.killed").exists()  # rank 1 really was killed
    assert "exitcode: -9" in runs["killed_log"]
    weights, info = runs["killed"]
    assert info["global_step"] == 8 and info["epoch"] == 4
    assert max_difference(weights, runs["ref4"][0]) < 1e-5
    assert info["loss"] == pytest.approx(runs["ref4"][1]["loss"], abs=1e-5)


@pytest.mark.slow  # uses the torchrun launches of the `runs` fixture
@pytest.mark.full
def test_two_processes_resume_on_one(runs):
    weights, info = runs["two_to_one"]
    assert info["world_size"] == 1 and info["global_step"] == 12
    assert max_difference(weights, runs["ref6"][0]) < 1e-5
    assert info["loss"] == pytest.approx(runs["ref6"][1]["loss"], abs=1e-5)  # history restored


@pytest.mark.slow  # uses the torchrun launches of the `runs` fixture
@pytest.mark.full
def test_one_process_resumes_on_two(runs):
    weights, info = runs["one_to_two"]
    assert info["world_size"] == 2 and info["global_step"] == 8
    assert max_difference(weights, runs["ref4"][0]) < 1e-5


@pytest.mark.slow  # uses the torchrun launches of the `runs` fixture
@pytest.mark.full
def test_commit_marker_and_layout(runs):
    root = runs["root"] / "run2" / "checkpoints" / "sharded"
    committed = [path.name for _, path in dcp.find_checkpoints(root)]
    assert committed == ["epoch-0005", "epoch-0006"]  # keep_last=2
    commit = dcp.read_commit(root / "epoch-0006")
    assert commit["world_size"] == 1 and commit["global_step"] == 12
    saved_by_two = dcp.read_commit(runs["root"] / "run1" / "checkpoints" / "sharded" / "epoch-0004")
    assert saved_by_two["world_size"] == 2 and len(saved_by_two["files"]) == 2
    # An uncommitted directory (a save interrupted before its marker) is invisible.
    shutil.copytree(root / "epoch-0006", root / "epoch-0009")
    (root / "epoch-0009" / dcp.COMMIT).unlink()
    assert dcp.latest(root).name == "epoch-0006"
    shutil.rmtree(root / "epoch-0009")


def _fsdp_trainer(width: int = 16) -> Trainer:
    torch.manual_seed(0)
    return Trainer(TinyTransformer(width=width), loss="cross_entropy", device="cpu", verbose=0,
                   strategy="fsdp")


@pytest.mark.slow  # uses the torchrun launches of the `runs` fixture
@pytest.mark.full
def test_checkpoint_of_another_model_is_refused(runs):
    trainer = _fsdp_trainer(width=8)
    try:
        with pytest.raises(CheckpointError, match="saved from another model.*blocks.0.down.weight"):
            trainer.load_checkpoint(runs["root"] / "run1" / "checkpoints" / "sharded")
        assert trainer.global_step == 0
    finally:
        trainer.close()
    assert not dist.is_initialized()


@pytest.mark.slow  # uses the torchrun launches of the `runs` fixture
@pytest.mark.full
def test_missing_shard_is_named(runs, tmp_path):
    copy = tmp_path / "epoch-0004"
    shutil.copytree(runs["root"] / "run1" / "checkpoints" / "sharded" / "epoch-0004", copy)
    shard = sorted((copy / "tensors").iterdir())[1]
    shard.unlink()
    trainer = _fsdp_trainer()
    try:
        before = {k: v.full_tensor().clone() for k, v in trainer.model.state_dict().items()}
        with pytest.raises(CheckpointError, match=f"missing shard file .*{shard.name}"):
            trainer.load_checkpoint(copy)
        after = {k: v.full_tensor() for k, v in trainer.model.state_dict().items()}
        assert max_difference(before, after) == 0.0  # nothing was loaded
    finally:
        trainer.close()


@pytest.mark.slow  # uses the torchrun launches of the `runs` fixture
@pytest.mark.full
def test_truncated_shard_and_empty_directory(runs, tmp_path):
    copy = tmp_path / "epoch-0004"
    shutil.copytree(runs["root"] / "run1" / "checkpoints" / "sharded" / "epoch-0004", copy)
    shard = sorted((copy / "tensors").iterdir())[0]
    shard.write_bytes(shard.read_bytes()[:-10])
    trainer = _fsdp_trainer()
    try:
        with pytest.raises(CheckpointError, match="truncated or altered"):
            trainer.load_checkpoint(copy)
        with pytest.raises(CheckpointError, match="No committed sharded checkpoint"):
            trainer.load_checkpoint(tmp_path / "nothing-here")
    finally:
        trainer.close()


def test_fp16_on_cpu_and_unknown_strategy_fail_before_anything():
    model = TinyTransformer()
    with pytest.raises(ConfigError, match="precision='fp16' with strategy='fsdp' needs CUDA"):
        Trainer(model, loss="cross_entropy", device="cpu", precision="fp16", strategy="fsdp")
    with pytest.raises(ConfigError, match="strategy must be one of single, ddp, fsdp, hybrid"):
        Trainer(model, loss="cross_entropy", device="cpu", strategy="zero3")
    assert not dist.is_initialized()


def test_sharded_save_and_load_need_a_process_group(tmp_path):
    trainer = Trainer(TinyTransformer(), loss="cross_entropy", device="cpu", verbose=0)
    with pytest.raises(ConfigError, match="need a process group"):
        dcp.save(trainer, tmp_path)


def test_gpt_with_tied_embeddings_round_trips(tmp_path):
    """The GPT workload: FSDP + activation checkpointing save, DDP load; the tied LM head stays tied."""
    import torch.nn.functional as F

    from bigmodel.models import create_model

    def loss(logits, targets):  # (B, T, V), (B, T)
        return F.cross_entropy(logits.reshape(-1, 256), targets.reshape(-1))

    tokens = torch.randint(0, 256, (16, 17), generator=torch.Generator().manual_seed(0))
    torch.manual_seed(0)
    trainer = Trainer(create_model("gpt", num_layers=2, d_model=32), loss=loss, device="cpu", verbose=0,
                      strategy="fsdp", activation_checkpointing=True, run_dir=tmp_path, seed=0)
    try:
        trainer.fit((tokens[:, :-1], tokens[:, 1:]), epochs=2, batch_size=8)
        saved = {k: v.full_tensor().clone() for k, v in trainer.model.state_dict().items()}
    finally:
        trainer.close()
    commit = dcp.read_commit(tmp_path / "checkpoints" / "sharded" / "epoch-0002")
    assert commit["aliases"] == {"lm_head.weight": "token_embedding.weight"}
    torch.manual_seed(1)  # different initial weights
    restored = Trainer(create_model("gpt", num_layers=2, d_model=32), loss=loss, device="cpu",
                       verbose=0, strategy="ddp", run_dir=tmp_path)
    try:
        restored.load_checkpoint(tmp_path / "checkpoints" / "sharded")
        assert restored.global_step == 4 and restored.epoch == 2
        assert max_difference(saved, restored.model.state_dict()) == 0.0
        assert restored.model.lm_head.weight is restored.model.token_embedding.weight
    finally:
        restored.close()


def test_crafted_training_state_of_a_sharded_checkpoint_is_named(tmp_path):
    """A sharded checkpoint whose trainer.json was replaced (and re-hashed into its manifest, so only
    its meaning is wrong) gives a CheckpointError naming the checkpoint, as a single-process one does,
    not a raw TypeError from the counters."""
    import json

    from torch import nn

    from bigmodel.utils.io import sha256_file

    tokens = torch.randint(0, 16, (8, 5), generator=torch.Generator().manual_seed(0))

    def trainer():
        torch.manual_seed(0)
        return Trainer(nn.Sequential(nn.Embedding(16, 8), nn.Flatten(), nn.Linear(40, 2)),
                       loss="cross_entropy", device="cpu", verbose=0, strategy="fsdp",
                       run_dir=tmp_path, seed=0)

    first = trainer()
    try:
        first.fit((tokens, torch.zeros(8, dtype=torch.long)), epochs=1, batch_size=8)
    finally:
        first.close()
    state = dcp.latest(tmp_path / "checkpoints" / "sharded") / "state"
    (state / "trainer.json").write_text(json.dumps({"epoch": "one", "global_step": [1]}))
    manifest = json.loads((state / "manifest.json").read_text())
    manifest["files"]["trainer.json"] = {"sha256": sha256_file(state / "trainer.json"),
                                         "bytes": (state / "trainer.json").stat().st_size}
    (state / "manifest.json").write_text(json.dumps(manifest))
    second = trainer()
    try:
        with pytest.raises(CheckpointError, match="epoch-0001 does not hold a valid training state"):
            second.load_checkpoint(tmp_path / "checkpoints" / "sharded")
    finally:
        second.close()
    assert not dist.is_initialized()
