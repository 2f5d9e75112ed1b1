"""``bigmodel export`` on runs of the recipes whose models read token ids: the example input that
the ONNX export traces comes from the run itself (its tokenizer and length, or its model config),
not from the registry's defaults, so text-classification, seq2seq and language-model runs export
with ONNX Runtime parity; ``--format safetensors`` carries the tokenizer files the run needs."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from bigmodel.cli.main import main
from bigmodel.models import load_model
from bigmodel.recipes.exports import example_input_for, export_run
from tiny_recipes import CONFIGS, TINY, data_sets, write_tiny_data

pytestmark = pytest.mark.usefixtures("one_torch_thread")
ort = pytest.importorskip("onnxruntime")


@pytest.fixture(scope="module")
def runs(tmp_path_factory) -> dict[str, Path]:
    """Tiny trained runs of a text classifier, a seq2seq and a language-model recipe (made
    smaller than TINY's epochs: export only needs a model and the run's files)."""
    root = tmp_path_factory.mktemp("export_chain")
    data = write_tiny_data(root / "data")
    made = {}
    for config in ("fortunes_text_rcnn.yaml", "seq2seq_dates.yaml", "fortunes_char_gpt.yaml"):
        run_dir = root / config.removesuffix(".yaml")
        sets = [*data_sets(config, data), *TINY[config], "train.epochs=1"]
        if config == "fortunes_text_rcnn.yaml":  # fewer recurrent steps for the exporter to unroll
            sets.append("data.max_length=8")
        argv = ["train", str(CONFIGS / config), "--run-dir", str(run_dir)]
        assert main([*argv, *[part for s in sets for part in ("--set", s)]]) == 0
        made[config.removesuffix(".yaml")] = run_dir
    return made


def _ort_logits(path: Path, *inputs: torch.Tensor) -> np.ndarray:
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    names = [meta.name for meta in session.get_inputs()]
    return session.run(None, {n: x.numpy() for n, x in zip(names, inputs)})[0]


def test_text_run_example_uses_the_runs_vocabulary_and_length(runs):
    run_dir = runs["fortunes_text_rcnn"]
    spec = json.loads((run_dir / "model.json").read_text())
    vocab_size = spec["config"]["vocab_size"]
    max_length = spec["metadata"]["input"]["max_length"]
    ids = example_input_for(run_dir)
    assert ids.dtype == torch.int64 and ids.shape == (1, max_length)
    assert 0 <= int(ids.min()) and int(ids.max()) < vocab_size  # the registry's 10000 would not
    assert int(ids[0, 0]) != 0 and int(ids[0, -1]) == 0  # words, then right padding


def test_text_rcnn_run_exports_to_onnx_with_parity(runs, tmp_path):
    run_dir = runs["fortunes_text_rcnn"]
    out = tmp_path / "text.onnx"
    result = export_run(run_dir, "onnx", str(out))
    assert result["max_abs_diff"] <= 1e-4
    model = load_model(run_dir).eval()
    vocab_size = json.loads((run_dir / "model.json").read_text())["config"]["vocab_size"]
    ids = torch.randint(1, vocab_size, (3, 8), generator=torch.Generator().manual_seed(1))
    ids[1, 5:] = 0  # a padded text
    with torch.no_grad():
        expected = model(ids).numpy()
    np.testing.assert_allclose(_ort_logits(out, ids), expected, atol=1e-4)


def test_seq2seq_run_exports_source_and_decoder_inputs(runs, tmp_path):
    run_dir = runs["seq2seq_dates"]
    out = tmp_path / "seq2seq.onnx"
    assert main(["export", str(run_dir), "--format", "onnx", "--out", str(out)]) == 0
    session = ort.InferenceSession(str(out), providers=["CPUExecutionProvider"])
    assert [meta.name for meta in session.get_inputs()] == ["source", "target_input"]
    config = json.loads((run_dir / "model.json").read_text())["config"]
    generator = torch.Generator().manual_seed(2)
    source = torch.randint(3, config["input_vocab_size"], (2, 10), generator=generator)
    target = torch.randint(3, config["target_vocab_size"], (2, 6), generator=generator)
    target[:, 0] = config["bos_id"]
    model = load_model(run_dir).eval()
    with torch.no_grad():
        expected = model(source, target).numpy()
    got = _ort_logits(out, source, target)
    assert got.shape == (2, 6, config["target_vocab_size"])
    np.testing.assert_allclose(got, expected, atol=1e-4)


def test_language_model_run_exports_next_token_logits(runs, tmp_path):
    run_dir = runs["fortunes_char_gpt"]
    out = tmp_path / "gpt.onnx"
    result = export_run(run_dir, "onnx", str(out))
    assert result["max_abs_diff"] <= 1e-4
    config = json.loads((run_dir / "model.json").read_text())["config"]
    ids = torch.randint(0, config["vocab_size"], (2, 12), generator=torch.Generator().manual_seed(3))
    model = load_model(run_dir).eval()
    with torch.no_grad():
        expected = model(ids).numpy()
    np.testing.assert_allclose(_ort_logits(out, ids), expected, atol=1e-4)


@pytest.mark.parametrize("name, files", [
    ("fortunes_text_rcnn", ["vocabulary.json"]),
    ("seq2seq_dates", ["source_tokenizer.json", "target_tokenizer.json"]),
    ("fortunes_char_gpt", ["tokenizer.json"]),
])
def test_safetensors_export_carries_the_tokenizer_files(runs, tmp_path, name, files):
    run_dir = runs[name]
    out = tmp_path / "export"
    assert export_run(run_dir, "safetensors", str(out))["path"] == out
    for file in files:
        assert (out / file).read_bytes() == (run_dir / file).read_bytes()
    model, original = load_model(out).eval(), load_model(run_dir).eval()
    for (key, value), (_, reference) in zip(model.state_dict().items(),
                                            original.state_dict().items()):
        assert torch.equal(value, reference), key
