"""``bigmodel train RECIPE --nproc 2``: torchrun workers share one run directory, rank 0 writes the
report; bad launches fail before any process starts."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest

from bigmodel.cli.main import main
from bigmodel.recipes.launch import torchrun_command
from synthetic_images import write_fashion_like

CONFIGS = Path(__file__).resolve().parents[1] / "configs"


@pytest.fixture(scope="module")
def tiny_data(tmp_path_factory) -> Path:
    """Fashion-MNIST-shaped IDX files: class k is a bright square at one of 10 places, plus noise."""
    return write_fashion_like(tmp_path_factory.mktemp("tiny-fashion"), 256, 64)


def overrides(data: Path, *extra: str) -> list[str]:
    pairs = [f"data.path={data}", "train.epochs=3", "train.batch_size=32", "train.device=cpu", *extra]
    return [item for pair in pairs for item in ("--set", pair)]


@pytest.mark.slow
@pytest.mark.full
def test_train_with_two_processes_fsdp(tiny_data, tmp_path, monkeypatch, capfd):
    monkeypatch.setenv("BIGMODEL_OFFLINE", "1")
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    run_dir = tmp_path / "run"
    code = main(["train", str(CONFIGS / "fashion_cnn.yaml"), "--nproc", "2", "--run-dir", str(run_dir),
                 *overrides(tiny_data, "train.strategy=fsdp", "train.grad_accum_steps=2")])
    output = capfd.readouterr()  # the workers write to the inherited file descriptors
    assert code == 0, output.err[-4000:]
    assert output.out.count("test accuracy:") == 1  # rank 0 reports, rank 1 is silent
    results = json.loads((run_dir / "results.json").read_text())
    assert results["epochs_run"] == 3
    assert results["results"]["test"]["accuracy"] > 0.3  # 10 classes: chance is 0.1
    with open(run_dir / "metrics.csv") as handle:
        rows = list(csv.DictReader(handle))
    assert [row["epoch"] for row in rows] == ["0", "1", "2"]
    losses = [float(row["loss"]) for row in rows]
    assert losses[-1] < losses[0]
    sharded = sorted(p.name for p in (run_dir / "checkpoints" / "sharded").iterdir())
    assert sharded == ["epoch-0002", "epoch-0003"]
    for name in ("model.safetensors", "model.json", "report.md", "recipe.yaml", "confusion_matrix.png"):
        assert (run_dir / name).is_file(), name


@pytest.mark.parametrize(("extra", "nproc", "message"), [
    (("train.strategy=ddp",), "3", "global batch size 32 is not divisible by the world size 3"),
    ((), "2", "needs train.strategy ddp, fsdp or hybrid"),
    (("train.strategy=gpu",), "2", "train.strategy"),
])
def test_bad_launch_fails_before_starting(tiny_data, tmp_path, capsys, extra, nproc, message):
    run_dir = tmp_path / "run"
    code = main(["train", str(CONFIGS / "fashion_cnn.yaml"), "--nproc", nproc, "--run-dir", str(run_dir),
                 *overrides(tiny_data, *extra)])
    assert code == 2
    assert message in capsys.readouterr().err
    assert not run_dir.exists()


def test_torchrun_command_line():
    command = torchrun_command("r.yaml", Path("runs/x"), 4, 1, ["train.epochs=2"])
    assert command[1:] == ["-m", "torch.distributed.run", "--standalone", "--nproc-per-node=4",
                           "--max-restarts=1", "-m", "bigmodel", "train", "r.yaml", "--run-dir",
                           "runs/x", "--set", "train.epochs=2"]
