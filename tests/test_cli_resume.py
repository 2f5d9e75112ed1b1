"""``bigmodel train ... --resume RUN_DIR`` and SIGTERM during ``bigmodel train`` (issue 18)."""

from __future__ import annotations

import csv
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from bigmodel.cli.main import main
from bigmodel.errors import ConfigError
from bigmodel.recipes.rundir import check_resumable
from bigmodel.recipes.schema import load_recipe
from synthetic_images import write_fashion_like

ROOT = Path(__file__).resolve().parents[1]
RECIPE = ROOT / "configs" / "fashion_cnn.yaml"


@pytest.fixture(scope="module")
def tiny_data(tmp_path_factory) -> Path:
    return write_fashion_like(tmp_path_factory.mktemp("tiny-fashion"), train=128, test=32)


def overrides(data: Path, epochs: int) -> list[str]:
    return ["--set", f"data.path={data}", "--set", f"train.epochs={epochs}", "--set", "train.batch_size=32",
            "--set", "train.checkpoint_every=2"]


def test_sigterm_stops_with_143_and_resume_finishes_the_run(tiny_data, tmp_path, capsys):
    run_dir = tmp_path / "run"
    command = [sys.executable, "-m", "bigmodel", "train", str(RECIPE), "--run-dir", str(run_dir),
               *overrides(tiny_data, epochs=1000)]  # far more than it will run
    process = subprocess.Popen(command, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                               text=True, env={**os.environ, "OMP_NUM_THREADS": "1", "BIGMODEL_OFFLINE": "1"})
    try:
        deadline = time.monotonic() + 300
        first = run_dir / "checkpoints" / "epoch-0000-step-00000002"
        while not first.is_dir() and process.poll() is None and time.monotonic() < deadline:
            time.sleep(0.01)
        process.send_signal(signal.SIGTERM)
        out, err = process.communicate(timeout=300)
    finally:
        process.kill()
    assert process.returncode == 143, out + err
    assert "resume with: bigmodel train" in err and f"--resume {run_dir}" in err, err
    assert "--set train.checkpoint_every=2" in err
    assert "Traceback" not in err
    checkpoints = sorted(p.name for p in (run_dir / "checkpoints").iterdir())
    assert checkpoints and all(name.startswith("epoch-") for name in checkpoints)

    # Same recipe (fewer epochs is a change a resume may make): it ends the run.
    assert main(["train", str(RECIPE), *overrides(tiny_data, epochs=1), "--resume", str(run_dir)]) == 0
    rows = list(csv.DictReader((run_dir / "metrics.csv").open()))
    assert [row["epoch"] for row in rows] == ["0"]
    assert (run_dir / "results.json").is_file() and (run_dir / "model.safetensors").is_file()

    # A recipe that differs in what matters is refused, naming the key and both values.
    code = main(["train", str(RECIPE), *overrides(tiny_data, epochs=1), "--set", "train.lr=0.5",
                 "--resume", str(run_dir)])
    err = capsys.readouterr().err
    assert code == 2 and "train.lr" in err and "0.001" in err and "0.5" in err, err


def test_resume_refuses_what_is_not_a_run(tiny_data, tmp_path):
    recipe = load_recipe(RECIPE, [f"data.path={tiny_data}"])
    with pytest.raises(ConfigError, match="not a run directory"):
        check_resumable(recipe, str(tmp_path / "missing"))
    (tmp_path / "empty").mkdir()
    with pytest.raises(ConfigError, match="nothing to resume"):
        check_resumable(recipe, str(tmp_path / "empty"))


def test_resume_and_run_dir_together_are_refused(tmp_path, capsys):
    code = main(["train", str(RECIPE), "--run-dir", str(tmp_path / "a"), "--resume", str(tmp_path / "b")])
    assert code == 2 and "--resume" in capsys.readouterr().err


@pytest.mark.parametrize("value", ["0", "ten", "-5s"])
def test_recipe_checkpoint_every_is_checked(value):
    with pytest.raises(ConfigError, match="train.checkpoint_every"):
        load_recipe(RECIPE, [f"train.checkpoint_every={value}"])


def test_recipe_checkpoint_keys():
    recipe = load_recipe(RECIPE, ["train.checkpoint_every=10min", "train.keep_checkpoints=3"])
    assert (recipe.train.checkpoint_every, recipe.train.keep_checkpoints) == ("10min", 3)
    assert load_recipe(RECIPE).train.checkpoint_every is None
