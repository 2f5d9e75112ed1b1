"""Every recipe in configs/ runs through ``bigmodel train`` (or ``bigmodel finetune``) at tiny sizes
(``--set`` overrides: tiny synthetic data, small models, a few epochs): the loss falls from the
first epoch to the last and the run directory is complete."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest

from bigmodel.cli.main import main
from tiny_recipes import CONFIGS, FINETUNE, RUN_FILES, TINY, data_sets, needs, write_tiny_data


@pytest.fixture(autouse=True)
def _one_thread(one_torch_thread):
    yield


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> dict[str, Path]:
    return write_tiny_data(tmp_path_factory.mktemp("data"))


def _run(command: list[str], sets: list[str]) -> int:
    return main([*command, *[part for item in sets for part in ("--set", item)]])


def _check_run(run_dir: Path) -> None:
    for name in RUN_FILES:
        assert (run_dir / name).is_file(), f"{run_dir.name}: {name} is missing"
    with open(run_dir / "metrics.csv", newline="") as handle:
        losses = [float(row["loss"]) for row in csv.DictReader(handle)]
    assert len(losses) >= 2 and losses[-1] < losses[0], f"the loss did not fall: {losses}"


def test_every_config_has_tiny_settings():
    names = {path.name for path in CONFIGS.glob("*.yaml")}
    assert names == set(TINY) | set(FINETUNE), "give each recipe of configs/ its tiny settings"


@pytest.mark.parametrize("config", sorted(TINY))
def test_config_trains_at_tiny_size(config, data, tmp_path):
    needs(config)
    run_dir = tmp_path / "run"
    sets = [*data_sets(config, data), *TINY[config]]
    assert _run(["train", str(CONFIGS / config), "--run-dir", str(run_dir)], sets) == 0
    _check_run(run_dir)


@pytest.mark.parametrize("config", sorted(FINETUNE))
def test_finetune_config_trains_at_tiny_size(config, data, tmp_path):
    needs(config)
    source, sets = FINETUNE[config]
    if source == "fashion run":  # a tiny trained run of the seed CNN to start from
        source = str(tmp_path / "source")
        assert _run(["train", str(CONFIGS / "fashion_cnn.yaml"), "--run-dir", source],
                    [f"data.path={data['fashion']}", "train.epochs=1"]) == 0
    run_dir = tmp_path / "run"
    sets = [*data_sets(config, data), *sets]
    assert _run(["finetune", source, str(CONFIGS / config), "--run-dir", str(run_dir)], sets) == 0
    _check_run(run_dir)
