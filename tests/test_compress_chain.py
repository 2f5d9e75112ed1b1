"""``bigmodel compress`` on tiny runs of the configs/ recipes, then ``evaluate`` / ``predict`` on what
it wrote: int8 of a padded Transformer text classifier (ONNX Runtime's attention-mask shape), the
up-front refusals (a GRU for int8, a model structured pruning cannot slice, a language-model run)
before any data, training or export, ``--keep-fp32``, and all-or-nothing output."""

from __future__ import annotations

import contextlib
import io
import re
from pathlib import Path

import numpy as np
import pytest
import torch

pytest.importorskip("onnxruntime")
pytest.importorskip("onnxscript")

from bigmodel.cli.main import main  # noqa: E402
from bigmodel.compress import load_any, quantize_int8  # noqa: E402
from bigmodel.compress.quantize import Int8Model  # noqa: E402
from bigmodel.data.idx import read_idx  # noqa: E402
from bigmodel.models import create_model, save_model  # noqa: E402
from tiny_recipes import CONFIGS, TINY, data_sets, write_tiny_data  # noqa: E402

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def run_cli(*argv) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main([str(a) for a in argv])
    return code, out.getvalue(), err.getvalue()


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> dict[str, Path]:
    return write_tiny_data(tmp_path_factory.mktemp("data"))


@pytest.fixture(scope="module")
def runs(tmp_path_factory, data):
    """``runs(config)``: a tiny trained run of ``configs/config`` (trained once per module)."""
    root, made = tmp_path_factory.mktemp("runs"), {}

    def get(config: str) -> Path:
        if config not in made:
            run_dir = root / config.removesuffix(".yaml")
            sets = [*data_sets(config, data), *TINY[config]]
            with pytest.MonkeyPatch.context() as patch:
                patch.setenv("BIGMODEL_OFFLINE", "1")
                code, _, err = run_cli("train", CONFIGS / config, "--run-dir", run_dir,
                                       *[p for s in sets for p in ("--set", s)])
            assert code == 0, err
            made[config] = run_dir
        return made[config]

    return get


def padded(lengths: list[int], vocab: int, width: int | None = None) -> torch.Tensor:
    """Right-padded token ids (0 = padding), one row per length."""
    generator = torch.Generator().manual_seed(len(lengths))
    ids = torch.zeros(len(lengths), width or max(lengths), dtype=torch.long)
    for row, length in enumerate(lengths):
        ids[row, :length] = torch.randint(1, vocab, (length,), generator=generator)
    return ids


def no_partial_folders(parent: Path) -> bool:
    return not any(".partial-" in p.name or ".old-" in p.name for p in parent.iterdir())


# -- int8 of a Transformer text classifier with padding (the attention mask) --------------------

def test_padding_mask_of_onnx_attention_runs_in_int8_at_any_length():
    """int8 exports attention at opset 23 as one op, with the padding mask as (B, 1, 1, T): ONNX
    Runtime refused it ("inconsistent q_sequence_length") before the mask was expanded to
    (B, 1, T, T). Lengths other than the example's run too (the sequence axis stays symbolic)."""
    torch.manual_seed(0)
    model = create_model("transformer-classifier", vocab_size=40, num_classes=3, d_model=16,
                         num_heads=2, num_layers=1, dff=32, max_length=32).eval()
    int8 = quantize_int8(model, padded([9], 40))
    for ids in (padded([9, 4, 1, 7, 6, 2], 40), padded([3, 12, 5], 40)):
        with torch.no_grad():
            expected = model(ids)
        got = int8(ids)
        assert got.shape == expected.shape
        assert (got - expected).abs().max().item() < 0.1 * expected.abs().max().item() + 0.02


# -- up-front refusals ----------------------------------------------------------------------------

@pytest.fixture
def spies(monkeypatch):
    """Counts calls of the expensive steps: data loading, fine-tuning, ONNX export, int8."""
    import bigmodel.compress as compress_package
    import bigmodel.compress.quantize as quantize_module
    import bigmodel.recipes.classification_data as data_module
    import bigmodel.recipes.compress as recipe_module

    calls: dict[str, int] = {}

    def spy(module, name):
        real = getattr(module, name)

        def wrapper(*args, **kwargs):
            calls[name] = calls.get(name, 0) + 1
            return real(*args, **kwargs)

        monkeypatch.setattr(module, name, wrapper)

    spy(data_module, "load_classification_data")
    spy(recipe_module, "fine_tune")
    spy(quantize_module, "export_onnx")
    spy(compress_package, "quantize_int8")
    return calls


def test_int8_of_a_gru_is_refused_before_any_work_naming_the_layer_and_option(runs, spies,
                                                                            tmp_path):
    run_dir = runs("fortunes_text_rcnn.yaml")
    spies.clear()  # (training the run loaded its data)
    out = tmp_path / "out"
    code, _, err = run_cli("compress", run_dir, "--prune", "0.5", "--quantize", "int8",
                           "--out", out)
    assert code == 2
    assert "rnn (GRU)" in err and "--keep-fp32 rnn" in err
    assert spies == {}  # no data loaded, nothing trained, exported or quantized
    assert not out.exists()
    code, _, err = run_cli("compress", run_dir, "--quantize", "int8", "--keep-fp32", "rnnx",
                           "--out", out)
    assert code == 2 and "'rnnx'" in err and "'rnn'" in err and spies == {}
    code, _, err = run_cli("compress", run_dir, "--quantize", "int8", "--keep-fp32", "rnn,",
                           "--out", out)
    assert code == 2 and "--keep-fp32" in err


def test_keep_fp32_reaches_int8_and_a_late_failure_leaves_nothing(runs, monkeypatch, tmp_path):
    """--keep-fp32 passes the GRU; int8 (the last step, after pruning and fine-tuning wrote the
    pruned stage) then fails: no output folder, no hidden partial folder."""
    import bigmodel.compress as compress_package

    seen = {}

    def failing_int8(model, example, **kwargs):
        seen.update(kwargs)
        raise RuntimeError("injected failure in the last step")

    monkeypatch.setattr(compress_package, "quantize_int8", failing_int8)
    run_dir = runs("fortunes_text_rcnn.yaml")
    out = tmp_path / "nested" / "out"
    code, _, err = run_cli("compress", run_dir, "--prune", "0.5", "--quantize", "int8",
                           "--keep-fp32", "rnn", "--fine-tune-epochs", "1", "--out", out)
    assert code == 1 and "injected failure" in err
    assert tuple(seen["keep_fp32"]) == ("rnn",)
    assert not out.exists() and no_partial_folders(out.parent)
    assert not (run_dir / "compressed").exists()
    # An earlier output stays as it was when the new one fails.
    out.mkdir()
    for name in ("report.md", "results.json", "earlier.txt"):
        (out / name).write_text("earlier")
    code, _, err = run_cli("compress", run_dir, "--quantize", "int8", "--keep-fp32", "rnn",
                           "--out", out)
    assert code == 1 and "injected failure" in err
    assert sorted(p.name for p in out.iterdir()) == ["earlier.txt", "report.md", "results.json"]
    assert no_partial_folders(out.parent)


def test_structured_pruning_refusal_names_unstructured_before_training(runs, spies, tmp_path):
    run_dir = runs("fashion_rcnn.yaml")
    spies.clear()
    out = tmp_path / "out"
    code, _, err = run_cli("compress", run_dir, "--prune", "0.5", "--out", out)
    assert code == 2 and "cannot be sliced" in err and "--prune-mode unstructured" in err
    assert "fine_tune" not in spies and not out.exists()


def test_language_model_and_seq2seq_runs_are_refused_naming_the_task(tmp_path, spies):
    for config, name, task in (("fortunes_char_gpt.yaml", "gpt", "language_model"),
                               ("seq2seq_dates.yaml", "transformer", "seq2seq")):
        run_dir = tmp_path / task
        model = (create_model("gpt", vocab_size=20, d_model=16, num_layers=1, num_heads=2,
                              max_length=16) if name == "gpt" else
                 create_model("transformer", d_model=16, dff=32, num_layers=1,
                              input_vocab_size=20, target_vocab_size=20, max_length=16))
        save_model(model, run_dir)
        (run_dir / "recipe.yaml").write_text((CONFIGS / config).read_text())
        code, _, err = run_cli("compress", run_dir, "--quantize", "int8")
        assert code == 2 and f"is a {task} run" in err and "classifiers" in err, err
        assert not (run_dir / "compressed").exists()
    assert spies == {}


def test_an_existing_folder_that_compress_did_not_write_is_refused(runs, tmp_path, spies):
    run_dir = runs("fashion_cnn.yaml")
    spies.clear()
    out = tmp_path / "mine"
    out.mkdir()
    (out / "notes.txt").write_text("keep me")
    code, _, err = run_cli("compress", run_dir, "--quantize", "int8", "--out", out)
    assert code == 2 and "not the output of an earlier 'bigmodel compress'" in err
    assert (out / "notes.txt").read_text() == "keep me" and spies == {}


# -- predict / evaluate on what compress wrote ----------------------------------------------------

def _predicted_classes(stdout: str) -> list[str]:
    return [line.split(": ", 1)[1].split(" ")[0] for line in stdout.strip().splitlines()]


def _accuracy(stdout: str) -> float:
    return float(re.search(r"test accuracy: ([0-9.]+)", stdout).group(1))


def test_image_run_stages_evaluate_and_predict_like_the_original(runs, tmp_path, data):
    run_dir = runs("fashion_cnn.yaml")
    out = tmp_path / "out"
    code, _, err = run_cli("compress", run_dir, "--prune", "0.5", "--quantize", "int8",
                           "--calibration-size", "64", "--speed-rounds", "1", "--out", out)
    assert code == 0, err
    images = read_idx(Path(data["fashion"]) / "t10k-images-idx3-ubyte.gz")[:40]
    np.save(tmp_path / "x.npy", images)
    code, stdout, err = run_cli("evaluate", run_dir)
    assert code == 0, err
    original_accuracy = _accuracy(stdout)
    code, stdout, err = run_cli("predict", run_dir, tmp_path / "x.npy")
    original = _predicted_classes(stdout)
    for stage in ("pruned", "int8"):
        assert (out / stage / "recipe.yaml").is_file()
        code, stdout, err = run_cli("evaluate", out / stage)
        assert code == 0, err
        assert _accuracy(stdout) >= original_accuracy - 0.1
        code, stdout, err = run_cli("predict", out / stage, tmp_path / "x.npy")
        assert code == 0, err
        classes = _predicted_classes(stdout)
        assert len(classes) == 40
        assert np.mean([a == b for a, b in zip(classes, original)]) >= 0.8, stage
    assert isinstance(load_any(out / "int8"), Int8Model)


def test_transformer_text_run_int8_predicts_the_same_classes(runs, tmp_path):
    """The recipe of the issue: int8 of a fortunes_transformer_classifier run (it crashed in ONNX
    Runtime), then predict / evaluate on the int8 folder."""
    run_dir = runs("fortunes_transformer_classifier.yaml")
    out = tmp_path / "out"
    code, stdout, err = run_cli("compress", run_dir, "--quantize", "int8", "--speed-rounds", "1",
                                "--out", out)
    assert code == 0, err
    assert "| int8 |" in stdout and "texts/s" in stdout
    assert sorted(p.name for p in (out / "int8").iterdir()) == [
        "model.json", "model.safetensors", "recipe.yaml", "vocabulary.json"]
    texts = tmp_path / "texts.txt"
    texts.write_text("\n".join(["the kitten purrs on the warm rug", "rockets launch into orbit",
                                "stir the soup and add salt", "a cat", "fuel the engine now",
                                "bake the bread for an hour"]) + "\n")
    _, stdout, _ = run_cli("predict", run_dir, texts)
    original = _predicted_classes(stdout)
    code, stdout, err = run_cli("predict", out / "int8", texts)
    assert code == 0, err
    assert np.mean([a == b for a, b in zip(_predicted_classes(stdout), original)]) >= 0.8
    code, stdout, err = run_cli("evaluate", out / "int8")
    assert code == 0 and "texts" in stdout, err


def test_a_complete_output_replaces_an_earlier_one(tmp_path):
    from bigmodel.recipes.compress_output import staged_output

    out = tmp_path / "compressed"
    out.mkdir()
    (out / "report.md").write_text("earlier")
    with staged_output(out) as staging:
        assert not (staging / "report.md").exists() and staging.parent == tmp_path
        (staging / "report.md").write_text("new")
        assert (out / "report.md").read_text() == "earlier"  # until the block completes
    assert [p.name for p in out.iterdir()] == ["report.md"]
    assert (out / "report.md").read_text() == "new" and no_partial_folders(tmp_path)


def test_finetune_run_compresses_and_its_stage_evaluates(runs, data, tmp_path):
    """A run of ``bigmodel finetune`` (the seed CNN fine-tuned on a few images per class): its
    fine-tuning recipe's data, then evaluate on the pruned stage."""
    from tiny_recipes import FINETUNE

    source = runs("fashion_cnn.yaml")
    run_dir = tmp_path / "finetuned"
    sets = [*data_sets("finetune_fashion_cnn.yaml", data), *FINETUNE["finetune_fashion_cnn.yaml"][1]]
    code, _, err = run_cli("finetune", source, CONFIGS / "finetune_fashion_cnn.yaml", "--run-dir",
                           run_dir, *[p for s in sets for p in ("--set", s)])
    assert code == 0, err
    out = tmp_path / "out"
    code, stdout, err = run_cli("compress", run_dir, "--prune", "0.5", "--speed-rounds", "1",
                                "--out", out)
    assert code == 0, err
    assert "| pruned |" in stdout
    code, stdout, err = run_cli("evaluate", out / "pruned")
    assert code == 0, err
    assert 0.0 <= _accuracy(stdout) <= 1.0 and "images" in stdout
