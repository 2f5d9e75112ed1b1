"""The seq2seq and language-model tasks through ``bigmodel train``: tiny runs that learn, complete
run dirs whose numbers a reloaded model reproduces, and bad recipes refused before any file."""

from __future__ import annotations

import csv
import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch

from bigmodel.cli.main import main
from bigmodel.data.tokenizers import load_tokenizer
from bigmodel.errors import ConfigError
from bigmodel.recipes.schema import load_recipe

CONFIGS = Path(__file__).resolve().parents[1] / "configs"
RUN_FILES = ("recipe.yaml", "model.json", "model.safetensors", "metrics.csv", "results.json",
             "report.md", "training_curves.png")
TINY_SEQ2SEQ = ["train.epochs=3", "train.lr=0.003", "train.scheduler=null", "train.batch_size=32",
                "data.train_subset=320", "data.test_subset=24", "model.overrides.num_layers=1",
                "model.overrides.d_model=32", "model.overrides.dff=64",
                "model.overrides.num_heads=2"]
BLOCK = 32
TINY_LM = ["train.epochs=3", "train.lr=0.005", "train.scheduler=null", "train.batch_size=16",
           "data.categories=[debian]", "data.train_subset=160",
           f"data.test_subset={20 * BLOCK + 1}",  # 20 full windows: every character once
           "model.overrides.num_layers=1", "model.overrides.d_model=32",
           "model.overrides.num_heads=2", f"model.overrides.max_length={BLOCK}",
           "model.overrides.dropout=0.0"]


@pytest.fixture(autouse=True)
def one_thread():
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def _train(config: str, run_dir: Path, sets: list[str]) -> int:
    argv = ["train", str(CONFIGS / config), "--run-dir", str(run_dir)]
    for item in sets:
        argv += ["--set", item]
    return main(argv)


def _losses(run_dir: Path) -> list[float]:
    with open(run_dir / "metrics.csv", newline="") as handle:
        return [float(row["loss"]) for row in csv.DictReader(handle)]


def _needs_fortunes() -> None:
    from bigmodel.data.fortunes import find_fortunes_dir
    from bigmodel.errors import DataFileError

    try:
        find_fortunes_dir(None, ("debian",))
    except DataFileError as exc:
        pytest.skip(f"fortunes not installed: {exc}")


@pytest.mark.parametrize("config,data_name,validation", [
    ("seq2seq_dates.yaml", "dates_to_iso", 0.0),
    ("seq2seq_numbers.yaml", "numbers_to_words", 0.25)])
def test_seq2seq_recipe_trains_and_its_exact_match_is_reproduced(tmp_path, capsys, config,
                                                                 data_name, validation):
    from bigmodel.data import seq2seq
    from bigmodel.keras.transformer import TransformerModel
    from bigmodel.models.transformer import TransformerModel as PlainTransformer

    run_dir = tmp_path / "run"
    assert _train(config, run_dir, [*TINY_SEQ2SEQ, f"data.validation_split={validation}"]) == 0
    assert "test exact match" in capsys.readouterr().out
    for name in (*RUN_FILES, "source_tokenizer.json", "target_tokenizer.json"):
        assert (run_dir / name).is_file(), name
    losses = _losses(run_dir)
    assert len(losses) == 3 and losses[-1] < 0.9 * losses[0]
    results = json.loads((run_dir / "results.json").read_text())
    assert results["task"] == "seq2seq" and results["data"] == data_name
    test = results["results"]["test"]
    assert set(test) == {"loss", "accuracy", "exact_match"} and 0 < test["accuracy"] < 1
    assert results["test exact match"] == test["exact_match"] == results["exact_match"]
    assert load_recipe(run_dir / "recipe.yaml").task == "seq2seq"
    assert results["num_train"] + results["num_validation"] == 320
    if validation:  # the last quarter of the training pairs, scored per epoch and at the end
        assert results["num_validation"] == 80
        assert set(results["results"]["validation"]) == {"loss", "accuracy"}
        with open(run_dir / "metrics.csv", newline="") as handle:
            assert all(float(row["val_loss"]) > 0 for row in csv.DictReader(handle))
    else:
        assert "validation" not in results["results"]

    # The saved model and tokenizers decode the regenerated held-out pairs to the same score.
    source, target = (load_tokenizer(run_dir / f"{side}_tokenizer.json")
                      for side in ("source", "target"))
    model = PlainTransformer.load(run_dir)
    assert type(model) is PlainTransformer and not model.training
    assert (model.input_vocab_size, model.target_vocab_size) == (source.vocab_size,
                                                                 target.vocab_size)
    assert type(TransformerModel.load(run_dir)) is TransformerModel  # the Keras class, same files
    pairs = getattr(seq2seq, data_name)(320, 24, seed=0)
    longest = max(len(target.encode(t)) for t in pairs.train_targets) + 4
    predictions = model.translate(pairs.test_sources, tokenizer=source, target_tokenizer=target,
                                  max_new_tokens=min(longest, model.max_length - 1))
    matches = np.mean([p.strip() == t.strip() for p, t in zip(predictions, pairs.test_targets)])
    assert test["exact_match"] == pytest.approx(matches)
    report = (run_dir / "report.md").read_text()
    assert "Exact match" in report and "Training curves" in report


def test_language_model_recipe_trains_and_its_bits_per_char_are_reproduced(tmp_path, capsys):
    from bigmodel.data.char_lm import load_fortunes_corpus
    from bigmodel.models import load_model

    _needs_fortunes()
    run_dir = tmp_path / "run"
    assert _train("fortunes_char_gpt.yaml", run_dir, TINY_LM) == 0
    assert "validation bits per character" in capsys.readouterr().out
    for name in (*RUN_FILES, "tokenizer.json"):
        assert (run_dir / name).is_file(), name
    losses = _losses(run_dir)
    assert len(losses) == 3 and losses[-1] < 0.9 * losses[0]
    results = json.loads((run_dir / "results.json").read_text())
    assert results["task"] == "language_model"
    validation = results["results"]["validation"]
    bits = validation["bits_per_char"]
    assert results["validation bits per character"] == bits
    assert validation["loss"] == pytest.approx(bits * math.log(2))
    assert 0 < results["bigram_bits_per_char"] < 8 and results["sample"].startswith("The ")
    assert results["validation_chars"] == 20 * BLOCK + 1

    # Independently: -log2 p(next char) over the same validation characters, from the saved files.
    tokenizer = load_tokenizer(run_dir / "tokenizer.json")
    corpus = load_fortunes_corpus(["debian"], validation_fraction=0.1, seed=0)
    ids = torch.tensor(tokenizer.encode(corpus.validation_text)[: 20 * BLOCK + 1])
    model = load_model(run_dir).eval()
    assert model.token_embedding.num_embeddings == tokenizer.vocab_size
    with torch.no_grad():
        logits = model(ids[:-1].reshape(20, BLOCK))
    log_probs = torch.log_softmax(logits.double(), -1).reshape(-1, logits.shape[-1])
    expected = -log_probs[torch.arange(20 * BLOCK), ids[1:]].mean().item() / math.log(2)
    assert bits == pytest.approx(expected, rel=1e-5)


@pytest.mark.parametrize("config,sets,message", [
    ("seq2seq_dates.yaml", ["data.name=fortunes"], "task 'seq2seq' reads data.name"),
    ("fortunes_char_gpt.yaml", ["data.name=reversal", "data.categories=null"],
     "task 'language_model' reads data.name"),
    ("seq2seq_numbers.yaml", ["model.name=gpt", "model.overrides={}"], "encoder-decoder"),
    ("fortunes_char_gpt.yaml", ["model.name=transformer-classifier", "model.overrides={}"],
     "not one"),
    ("fortunes_char_gpt.yaml", ["data.min_count=2"], "data.min_count applies to text"),
    ("seq2seq_dates.yaml", ["data.path=/tmp"], "generated"),
    ("seq2seq_dates.yaml", ["data.train_subset=50", "data.test_subset=5",
                            "model.overrides.max_length=8"], "model.overrides.max_length"),
])
def test_bad_recipes_are_refused_before_any_file_is_written(tmp_path, capsys, config, sets,
                                                            message):
    run_dir = tmp_path / "run"
    assert _train(config, run_dir, sets) == 2
    assert message in capsys.readouterr().err
    assert not run_dir.exists()


def test_unknown_task_data_is_a_config_error():
    with pytest.raises(ConfigError, match="task 'seq2seq' reads data.name"):
        load_recipe(CONFIGS / "seq2seq_dates.yaml", ["data.name=fashion_mnist"])
    with pytest.raises(ConfigError, match="beam_size"):
        from bigmodel.recipes.tasks import get_task

        get_task("seq2seq", beam_size=0)
