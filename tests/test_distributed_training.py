"""Data-parallel training agrees with one process: DDP 2x16 == 1x32, FSDP == DDP, accumulation ==
big batch, bf16 and activation checkpointing within stated tolerances (CPU, gloo, 2 processes)."""

from __future__ import annotations

import pytest
import torch

from bigmodel.engine.activation_checkpoint import apply_activation_checkpointing, is_checkpointed
from bigmodel.engine.blocks import find_blocks
from bigmodel.engine.distributed import RankSlices, check_global_batch
from bigmodel.errors import ConfigError
from distributed_helpers import max_difference, result, run_worker
from distributed_worker import TinyTransformer, main

STEPS_ARGS = ("--samples", "160", "--batch-size", "32")  # 5 optimizer steps of 32 samples


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """Final weights and losses of the same 5-step run under several set-ups."""
    root = tmp_path_factory.mktemp("dist")
    out = {}
    main(["--out", str(root / "single.safetensors"), *STEPS_ARGS])
    out["single"] = result(root / "single.safetensors")
    main(["--out", str(root / "accum.safetensors"), "--samples", "160", "--batch-size", "16",
          "--accum", "2"])
    out["accum"] = result(root / "accum.safetensors")
    main(["--out", str(root / "ckpt.safetensors"), *STEPS_ARGS, "--activation-checkpointing"])
    out["ckpt"] = result(root / "ckpt.safetensors")
    main(["--out", str(root / "bf16.safetensors"), *STEPS_ARGS, "--precision", "bf16"])
    out["bf16"] = result(root / "bf16.safetensors")
    main(["--out", str(root / "compiled.safetensors"), *STEPS_ARGS, "--compile", "eager"])
    out["compiled"] = result(root / "compiled.safetensors")
    # One torchrun launch, three runs: DDP 2x16; FSDP with 2 processes x 2 micro-batches of 8 (the
    # same 32 samples per optimizer step); FSDP with bf16 and activation checkpointing.
    run_worker(None, "--out", str(root / "ddp.safetensors"), *STEPS_ARGS, "--strategy", "ddp", "::",
               "--out", str(root / "fsdp.safetensors"), "--samples", "160", "--batch-size", "16",
               "--accum", "2", "--strategy", "fsdp", "::",
               "--out", str(root / "fsdp_bf16.safetensors"), *STEPS_ARGS, "--strategy", "fsdp",
               "--precision", "bf16", "--activation-checkpointing", "::",
               "--out", str(root / "bad.safetensors"), "--batch-size", "33", "--strategy", "ddp",
               "--run-dir", str(root / "bad-run"), "--expect-error", "::",
               "--out", str(root / "hybrid.safetensors"), *STEPS_ARGS, "--strategy", "hybrid",
               nproc=2)
    out["hybrid"] = result(root / "hybrid.safetensors")
    out["bad"] = (root / "bad.error").read_text(), root / "bad-run"
    out["ddp"] = result(root / "ddp.safetensors")
    out["fsdp_accum"] = result(root / "fsdp.safetensors")
    out["fsdp_bf16_ckpt"] = result(root / "fsdp_bf16.safetensors")
    return out


@pytest.mark.slow  # uses the torchrun launches of the `runs` fixture
def test_ddp_two_by_sixteen_equals_one_by_thirty_two(runs):
    weights, info = runs["ddp"]
    assert info["world_size"] == 2 and info["global_step"] == 5
    assert max_difference(weights, runs["single"][0]) < 1e-5
    assert info["loss"] == pytest.approx(runs["single"][1]["loss"], abs=1e-6)
    initial = TinyTransformer().state_dict()
    assert max_difference(weights, initial) > 1e-3  # it trained


@pytest.mark.slow  # uses the torchrun launches of the `runs` fixture
def test_fsdp_agrees_with_ddp(runs):
    weights, info = runs["fsdp_accum"]
    assert info["world_size"] == 2 and info["global_step"] == 5
    assert max_difference(weights, runs["ddp"][0]) < 1e-5
    assert info["loss"] == pytest.approx(runs["ddp"][1]["loss"], abs=1e-6)


@pytest.mark.slow  # uses the torchrun launches of the `runs` fixture
def test_hybrid_sharding_agrees_with_ddp(runs):
    # One "node" of 2 processes: replicate over 1 node, shard over 2 (HSDP on a 2-D mesh).
    assert max_difference(runs["hybrid"][0], runs["ddp"][0]) < 1e-5


@pytest.mark.slow  # uses the torchrun launches of the `runs` fixture
def test_compiled_blocks_agree(runs):
    assert max_difference(runs["compiled"][0], runs["single"][0]) < 1e-5


@pytest.mark.slow  # uses the torchrun launches of the `runs` fixture
def test_gradient_accumulation_equals_big_batch(runs):
    assert runs["accum"][1]["global_step"] == 5
    assert max_difference(runs["accum"][0], runs["single"][0]) < 1e-5


@pytest.mark.slow  # uses the torchrun launches of the `runs` fixture
def test_activation_checkpointing_is_exact(runs):
    # Recomputation replays the same operations: tolerance 1e-6 on weights, 1e-6 on losses.
    assert max_difference(runs["ckpt"][0], runs["single"][0]) < 1e-6
    assert runs["ckpt"][1]["loss"] == pytest.approx(runs["single"][1]["loss"], abs=1e-6)


@pytest.mark.slow  # uses the torchrun launches of the `runs` fixture
def test_bf16_changes_losses_within_tolerance(runs):
    # Stated tolerance: bf16 autocast (and FSDP's bf16 parameter policy) moves each epoch's mean
    # loss by less than 1% relative after 5 Adam steps on this model.
    single = runs["single"][1]["loss"]
    for name in ("bf16", "fsdp_bf16_ckpt"):
        assert runs[name][1]["loss"] == pytest.approx(single, rel=1e-2), name
        assert runs[name][1]["loss"] != single  # it really ran in bf16


def test_find_blocks_policy():
    model = TinyTransformer(depth=4)
    assert find_blocks(model) == list(model.blocks)

    class Wrapped(torch.nn.Module):
        _no_split_modules = ["LayerNorm"]

        def __init__(self):
            super().__init__()
            self.inner = TinyTransformer(depth=2)

    wrapped = Wrapped()
    norms = find_blocks(wrapped)
    assert norms and all(isinstance(m, torch.nn.LayerNorm) for m in norms)
    assert len(norms) == 3  # two block norms + the final norm
    assert find_blocks(torch.nn.Linear(2, 2)) == []


def test_activation_checkpointing_keeps_names_and_gradients():
    torch.manual_seed(0)
    plain, wrapped = TinyTransformer(), TinyTransformer()
    wrapped.load_state_dict(plain.state_dict())
    assert apply_activation_checkpointing(wrapped) == 3
    assert apply_activation_checkpointing(wrapped) == 0  # idempotent
    assert all(is_checkpointed(block) for block in wrapped.blocks)
    assert list(wrapped.state_dict()) == list(plain.state_dict())
    x = torch.randn(5, 4, 6)
    for model in (plain, wrapped):
        model(x).square().sum().backward()
    for (name, a), (_, b) in zip(plain.named_parameters(), wrapped.named_parameters()):
        assert b.grad is not None, name
        torch.testing.assert_close(a.grad, b.grad, rtol=0, atol=1e-6)


def test_activation_checkpointing_needs_blocks():
    with pytest.raises(ConfigError, match="has no blocks"):
        apply_activation_checkpointing(torch.nn.Sequential(torch.nn.Linear(2, 2)))


def test_rank_slices_partition_every_batch():
    batches = [(torch.arange(n), torch.arange(n)) for n in (8, 7, 1)]
    parts = [list(RankSlices(batches, rank, 2)) for rank in range(2)]
    assert len(parts[0]) == 2  # the 1-sample remainder is smaller than the world: skipped
    for index in range(2):
        joined = torch.cat([parts[0][index][0], parts[1][index][0]])
        assert torch.equal(joined, batches[index][0])
    slices = RankSlices(batches, 1, 2)
    fractions = [(len(part[0]), slices.fraction) for part in slices]
    assert fractions == [(4, 0.5), (4, 4 / 7)]


def test_world_size_must_divide_global_batch():
    assert check_global_batch(32, 2) == 16
    with pytest.raises(ConfigError, match="33 is not divisible by the world size 2"):
        check_global_batch(33, 2)


@pytest.mark.slow  # uses the torchrun launches of the `runs` fixture
def test_indivisible_batch_fails_before_any_step(runs):
    message, run_dir = runs["bad"]
    assert message.startswith("ConfigError: The global batch size 33 is not divisible by the world size 2")
    assert "steps taken: 0" in message
    assert not (run_dir / "checkpoints").exists()


def test_each_rank_draws_its_own_dropout_masks_reproducibly():
    from bigmodel.engine.distributed import DistributedContext, seed_rank_stream

    def masks(rank: int, epoch: int, world: int = 2) -> torch.Tensor:
        torch.manual_seed(99)  # every rank starts from the same global state
        seed_rank_stream(1234, epoch, DistributedContext("ddp", rank=rank, world_size=world))
        return torch.nn.functional.dropout(torch.ones(256), 0.5)

    assert not torch.equal(masks(0, 0), masks(1, 0))  # ranks differ
    assert not torch.equal(masks(0, 0), masks(0, 1))  # epochs differ
    assert torch.equal(masks(1, 3), masks(1, 3))  # a resumed epoch draws the same masks
    # One process keeps the user's global stream untouched.
    torch.manual_seed(99)
    expected = torch.nn.functional.dropout(torch.ones(256), 0.5)
    assert torch.equal(masks(0, 0, world=1), expected)
