"""``bigmodel train`` on a text-classification recipe (fortunes layout written by the test), then
``evaluate`` with the run's vocabulary and ``predict`` on a text and on a .txt file."""

from __future__ import annotations

import html
import json
import re
from pathlib import Path

import pytest

from bigmodel.cli.main import main
from bigmodel.data.text import WordVocabulary
from bigmodel.recipes.schema import load_recipe
from synthetic_fortunes import write_topic_fortunes

ROOT = Path(__file__).resolve().parents[1]


pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def fortunes_dir(tmp_path_factory) -> Path:
    return write_topic_fortunes(tmp_path_factory.mktemp("fortunes"), 70, seed=0, words=(4, 12))


def recipe_file(tmp_path: Path, fortunes: Path, model: str, extra: str = "") -> Path:
    overrides = ("embedding_dim: 16, context_size: 16, hidden_size: 16" if model == "text-rcnn"
                 else "d_model: 16, num_heads: 2, num_layers: 1, dff: 32, dropout: 0.0")
    path = tmp_path / f"{model}.yaml"
    path.write_text(f"""
model: {{name: {model}, overrides: {{{overrides}}}}}
data:
  name: fortunes
  path: {fortunes}
  categories: [kittens, rockets, recipes]
  max_length: 16
  min_count: 1
{extra}
train: {{epochs: 8, batch_size: 16, optimizer: adam, lr: 0.01, seed: 0}}
""")
    return path


@pytest.mark.parametrize("model", ["text-rcnn", "transformer-classifier"])
def test_train_evaluate_predict_text_run(tmp_path, fortunes_dir, capsys, model):
    run_dir = tmp_path / "run"
    assert main(["train", str(recipe_file(tmp_path, fortunes_dir, model)),
                 "--run-dir", str(run_dir)]) == 0
    out = capsys.readouterr().out
    accuracy = float(re.search(r"test accuracy: ([0-9.]+)", out).group(1))
    assert accuracy >= 0.9, out  # the topic words separate the classes: the model must learn
    assert "42 texts" in out  # 20% of each 70-entry category is held out
    spec = json.loads((run_dir / "model.json").read_text())
    assert spec["metadata"]["input"]["kind"] == "text"
    assert spec["metadata"]["class_names"] == ["kittens", "rockets", "recipes"]
    vocabulary = WordVocabulary.load(run_dir / "vocabulary.json")
    assert "whiskers" in vocabulary and "launch" in vocabulary

    assert main(["evaluate", str(run_dir)]) == 0
    evaluated = float(re.search(r"test accuracy: ([0-9.]+)", capsys.readouterr().out).group(1))
    assert evaluated == pytest.approx(accuracy, abs=1e-4)  # same vocabulary, same encoding

    assert main(["predict", str(run_dir), "the oven and the butter and garlic then whisk"]) == 0
    assert capsys.readouterr().out.startswith("text: recipes ")
    texts = tmp_path / "texts.txt"
    texts.write_text("launch the booster into orbit\n\nmeow purr whiskers and yarn\n")
    assert main(["predict", str(run_dir), str(texts), "--top-k", "2"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert [line.split(":")[1] for line in lines] == ["1", "3"]  # blank line skipped, numbered
    assert lines[0].split(": ")[1].startswith("rockets") and " | " in lines[0]
    assert lines[1].split(": ")[1].startswith("kittens")


def test_text_recipe_bad_inputs(tmp_path, fortunes_dir, capsys):
    # A language model is not a classifier: refused before any run directory is made.
    lm = tmp_path / "lm.yaml"
    lm.write_text(recipe_file(tmp_path, fortunes_dir, "text-rcnn").read_text()
                  .replace("name: text-rcnn", "name: gpt").replace(
                      "embedding_dim: 16, context_size: 16, hidden_size: 16", "d_model: 16"))
    assert main(["train", str(lm), "--set", "task=text_classification",  # else: language_model
                 "--run-dir", str(tmp_path / "lm-run")]) == 2
    assert "not a text classifier" in capsys.readouterr().err
    assert not (tmp_path / "lm-run").exists()
    # A category file that is not there: the error names it and the place.
    missing = tmp_path / "missing.yaml"
    missing.write_text(recipe_file(tmp_path, fortunes_dir, "text-rcnn").read_text()
                       .replace("recipes]", "poems]"))
    assert main(["train", str(missing), "--run-dir", str(tmp_path / "m-run")]) == 2
    err = capsys.readouterr().err
    assert "poems" in err and str(fortunes_dir) in err
    # Predict: an empty text, a missing .txt file, a run whose vocabulary was deleted.
    run_dir = tmp_path / "run"
    recipe = recipe_file(tmp_path, fortunes_dir, "text-rcnn")
    assert main(["train", str(recipe), "--run-dir", str(run_dir), "--set", "train.epochs=1"]) == 0
    capsys.readouterr()
    assert main(["predict", str(run_dir), "  "]) == 2
    assert "empty" in capsys.readouterr().err
    assert main(["predict", str(run_dir), str(tmp_path / "nothing.txt")]) == 2
    assert "not found" in capsys.readouterr().err
    (run_dir / "vocabulary.json").unlink()
    assert main(["predict", str(run_dir), "some words"]) == 2
    assert "vocabulary.json" in capsys.readouterr().err


def test_shipped_text_recipes_are_valid():
    for name in ("fortunes_text_rcnn.yaml", "fortunes_transformer_classifier.yaml",
                 "fortunes_text_rcnn_skipgram.yaml"):
        recipe = load_recipe(ROOT / "configs" / name)
        assert recipe.data.name == "fortunes" and recipe.data.max_length == 128
    skipgram = load_recipe(ROOT / "configs" / "fortunes_text_rcnn_skipgram.yaml")
    assert skipgram.data.skipgram.dim == skipgram.model.overrides["embedding_dim"] == 128


def test_explain_a_text_run_on_its_own_words(tmp_path, fortunes_dir, capsys):
    run_dir = tmp_path / "run"
    assert main(["train", str(recipe_file(tmp_path, fortunes_dir, "text-rcnn")),
                 "--run-dir", str(run_dir)]) == 0
    capsys.readouterr()
    # test-set examples: the tokens shown are the run's vocabulary words, not ids
    assert main(["explain", str(run_dir), "--index", "0", "--steps", "4", "--curve-steps", "0"]) == 0
    capsys.readouterr()
    folder = run_dir / "explain" / "integrated_gradients"
    numbers = json.loads((folder / "integrated_gradients.json").read_text())
    vocabulary = WordVocabulary.load(run_dir / "vocabulary.json")
    words = [html.unescape(w) for w in
             re.findall(r'class="token"[^>]*>([^<]*)<', (folder / "tokens.html").read_text())]
    assert words and all(w in vocabulary.stoi for w in words), [w for w in words if w not in vocabulary.stoi]
    assert numbers["input_type"] == "tokens"
    # texts given on the command line, encoded with the run's vocabulary
    texts = tmp_path / "texts.txt"
    texts.write_text("launch the booster into orbit\nmeow purr whiskers\n")
    assert main(["explain", str(run_dir), "--input", str(texts), "--index", "1", "--steps", "4",
                 "--curve-steps", "0", "--output-dir", str(tmp_path / "ex")]) == 0
    capsys.readouterr()
    page = (tmp_path / "ex" / "tokens.html").read_text()
    shown = re.findall(r'class="token"[^>]*>([^<]*)<', page)
    assert shown[:3] == ["meow", "purr", "whiskers"], shown
    assert main(["explain", str(run_dir), "--input", str(texts), "--index", "2"]) == 2
    assert "--index 2 is out of range" in capsys.readouterr().err


def test_recipe_with_skipgram_vectors(tmp_path, capsys):
    pytest.importorskip("gensim")
    import numpy as np
    import torch

    from bigmodel.data.fortunes import load_fortunes, unlabelled_fortunes
    from bigmodel.models import load_model
    from bigmodel.transfer.skipgram import train_skipgram

    (tmp_path / "fortunes").mkdir()
    fortunes = write_topic_fortunes(tmp_path / "fortunes", 70, seed=0, words=(4, 12))
    # an unlabelled file outside the recipe's categories: its words join the vocabulary
    (fortunes / "pets").write_text("\n%\n".join(f"the tabby cat purr {i} whiskers" for i in
                                                range(30)))
    skipgram = "  skipgram: {dim: 16, epochs: 5, window: 3, seed: 4}"
    recipe = recipe_file(tmp_path, fortunes, "text-rcnn", extra=skipgram)
    run_dir = tmp_path / "run"
    assert main(["train", str(recipe), "--run-dir", str(run_dir)]) == 0
    out = capsys.readouterr().out
    accuracy = float(re.search(r"test accuracy: ([0-9.]+)", out).group(1))
    assert accuracy >= 0.9, out
    vocabulary = WordVocabulary.load(run_dir / "vocabulary.json")
    assert "tabby" in vocabulary  # built on the unlabelled corpus, not the training texts only
    split = load_fortunes(["kittens", "rockets", "recipes"], path=fortunes)
    corpus = unlabelled_fortunes(split, path=fortunes)
    expected = train_skipgram(corpus, vocabulary, dim=16, window=3, epochs=5, seed=4)
    table = load_model(run_dir).embedding.weight.detach()
    # the table started from the vectors: a word no training text holds got no gradient (Adam,
    # no weight decay), so its row is still the skip-gram vector; trained words moved on
    tabby, purr = vocabulary.stoi["tabby"], vocabulary.stoi["purr"]
    assert torch.equal(table[tabby], expected[tabby])
    assert np.abs(expected[tabby].numpy()).max() > 0.5 / 16  # trained, not its initialization
    assert not torch.equal(table[purr], expected[purr])
    assert main(["evaluate", str(run_dir)]) == 0
    evaluated = float(re.search(r"test accuracy: ([0-9.]+)", capsys.readouterr().out).group(1))
    assert evaluated == pytest.approx(accuracy, abs=1e-4)
    # bad combinations are named
    for text, message in ((recipe.read_text().replace("embedding_dim: 16,", "embedding_dim: 8,"),
                           "data.skipgram.dim (16) differs from model.overrides.embedding_dim (8)"),
                          (recipe.read_text().replace("max_length: 16", "max_length: 16\n"
                                                      "  tokenizer: minilm-wordpiece"),
                           "data.skipgram needs data.name 'fortunes' with data.tokenizer 'word'")):
        bad = tmp_path / "bad.yaml"
        bad.write_text(text)
        assert main(["train", str(bad), "--run-dir", str(tmp_path / "bad")]) == 2
        assert message in capsys.readouterr().err
        assert not (tmp_path / "bad").exists()
