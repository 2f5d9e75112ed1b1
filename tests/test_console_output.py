"""What a user sees on the console and in the small text outputs: the start-of-run summary, progress
lines with an ETA on piped output (within epochs and for long phases), no warnings from dependencies
unless --debug, ``predict --output`` files, ``bigmodel info`` and the wording of counts and units."""

from __future__ import annotations

import csv
import io
import json
import logging
import re
import shutil
import sys
import types
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch

from bigmodel.cli.main import main
from bigmodel.engine import progress
from synthetic_images import write_fashion_like

CONFIGS = Path(__file__).resolve().parents[1] / "configs"
SEED_CNN_PARAMETERS = 93_322  # Keras's count for the seed program's CNN (model.summary())

pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def fashion(tmp_path_factory) -> Path:
    return write_fashion_like(tmp_path_factory.mktemp("fashion"), 256, 64)


@pytest.fixture(scope="module")
def trained(fashion, tmp_path_factory) -> tuple[Path, str]:
    """A tiny seed-CNN run trained with piped output (16 steps, a progress line at every step);
    returns the run dir and what the command printed."""
    run_dir = tmp_path_factory.mktemp("runs") / "run"
    stream = io.StringIO()  # not a terminal, as when piped
    with pytest.MonkeyPatch.context() as patch:
        # a line at every step: a fixed interval made the count depend on the machine's speed
        # (16 warm steps can take less than 10 ms in all, and then no line was due)
        patch.setenv(progress.INTERVAL_VARIABLE, "1e-9")
        patch.setattr("bigmodel.engine.trainer.REFRESH_SECONDS", 0.0)  # the loop reads every step
        patch.setattr(sys, "stdout", stream)
        threads = torch.get_num_threads()
        torch.set_num_threads(1)
        try:
            code = main(["train", str(CONFIGS / "fashion_cnn.yaml"), "--run-dir", str(run_dir),
                         "--set", f"data.path={fashion}", "--set", "train.epochs=1",
                         "--set", "train.batch_size=8", "--set", "data.train_subset=128"])
        finally:
            torch.set_num_threads(threads)
    assert code == 0
    return run_dir, stream.getvalue()


def test_train_prints_a_summary_then_progress_with_eta_before_the_first_epoch_ends(trained):
    run_dir, out = trained
    lines = out.splitlines()
    summary = dict(line.split(":", 1) for line in lines[:7])
    summary = {key: value.strip() for key, value in summary.items()}
    assert summary == {
        "model": f"seed-cnn ({SEED_CNN_PARAMETERS:,} parameters, all trainable)",
        "task": "image_classification",
        "data": "fashion_mnist: 128 train / 0 validation / 64 test images",
        "device": "cpu, precision fp32, 1 CPU thread",
        "batch size": "8", "epochs": "1", "run dir": str(run_dir)}
    epoch_end = next(i for i, line in enumerate(lines) if line.startswith("Epoch 1/1 - 16/16 - "))
    ticks = [line for line in lines[7:epoch_end]
             if re.fullmatch(r"Epoch 1/1 - ([1-9]|1[0-5])/16 - ETA \d+:\d\d - \d+m?s/step"
                             r" - accuracy: [\d.]+ - loss: [\d.]+", line)]
    assert ticks and len(ticks) == epoch_end - 7, lines[7:epoch_end]
    steps = [int(re.search(r"(\d+)/16", line).group(1)) for line in ticks]
    assert steps == sorted(steps)
    assert lines[-2:] == [f"run directory: {run_dir}",
                          lines[-1]] and lines[-1].startswith("test accuracy: ")


def test_progress_interval_comes_from_the_environment_and_bad_values_are_refused(monkeypatch):
    monkeypatch.delenv(progress.INTERVAL_VARIABLE, raising=False)
    assert progress.progress_interval() == progress.DEFAULT_INTERVAL == 10.0
    monkeypatch.setenv(progress.INTERVAL_VARIABLE, "2.5")
    assert progress.progress_interval() == 2.5
    for bad in ("0", "-1", "soon", "nan", "inf"):
        monkeypatch.setenv(progress.INTERVAL_VARIABLE, bad)
        with pytest.raises(progress.ConfigError, match=rf"{progress.INTERVAL_VARIABLE}.*{bad!r}"):
            progress.progress_interval()


def test_a_long_phase_prints_progress_lines_with_an_eta_and_a_short_one_nothing():
    stream = io.StringIO()
    with progress.Phase("synthesizing", unit="clips", stream=stream, interval=1e-9) as phase:
        for done in range(1, 5):
            phase.update(done, 4)
    lines = stream.getvalue().splitlines()
    assert [re.sub(r"\d+m?s elapsed - ETA \d+:\d\d", "T", line) for line in lines[:4]] == [
        "synthesizing: 1/4 clips (25%) - T", "synthesizing: 2/4 clips (50%) - T",
        "synthesizing: 3/4 clips (75%) - T", "synthesizing: 4/4 clips (100%) - T"]
    assert re.fullmatch(r"synthesizing: 4 clips in \d+m?s", lines[4])
    quiet = io.StringIO()
    with progress.Phase("evaluating", total=4, stream=quiet, interval=3600) as phase:
        phase.advance(4)
    assert quiet.getvalue() == ""
    with progress.verbosity(0):
        silenced = progress.Phase("evaluating", total=4, stream=quiet, interval=1e-9)
        silenced.advance(2)
        silenced.finish()
    assert quiet.getvalue() == ""


def test_speech_corpus_synthesis_reports_progress(tmp_path, monkeypatch, capsys):
    if shutil.which("espeak-ng") is None:
        pytest.skip("espeak-ng is not installed")
    from bigmodel.data.speech_synth import synthesize_digits
    from bigmodel.recipes.schema import load_recipe
    from bigmodel.recipes.speech_data import speech_splits

    calls = []
    synthesize_digits(tmp_path / "direct", words=["one"], voices=["f1", "m3"], test_voices=1,
                      renditions=1, progress=lambda done, total: calls.append((done, total)))
    assert calls == [(1, 2), (2, 2)]
    monkeypatch.setenv(progress.INTERVAL_VARIABLE, "1e-9")
    recipe = load_recipe(CONFIGS / "speech_cnn.yaml", [
        f"data.path={tmp_path / 'recipe'}", "data.speech.voices=[f1, m3]",
        "data.speech.words=[one]", "data.speech.renditions=1", "data.speech.test_voices=1"])
    splits = speech_splits(recipe.data)
    assert len(splits["x_train"]) == len(splits["x_test"]) == 1
    out = capsys.readouterr().out.splitlines()
    assert re.fullmatch(r"synthesizing the speech corpus with espeak-ng: 2/2 clips \(100%\) - "
                        r"\d+m?s elapsed - ETA 0:00", out[-2]), out
    assert out[-1].startswith("synthesizing the speech corpus with espeak-ng: 2 clips in ")
    speech_splits(recipe.data)  # cached now: nothing to report
    assert capsys.readouterr().out == ""


def test_long_evaluations_run_in_chunks_with_the_same_logits(monkeypatch):
    from bigmodel.recipes.tasks import classification

    model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(12, 3)).eval()
    inputs = np.random.default_rng(0).random((10, 1, 3, 4), dtype=np.float32)
    monkeypatch.setattr(classification, "EVALUATION_CHUNK", 3)
    stream = io.StringIO()
    monkeypatch.setattr(sys, "stdout", stream)
    monkeypatch.setenv(progress.INTERVAL_VARIABLE, "1e-9")
    chunked = classification.predict_in_chunks(
        lambda m, x: m(torch.as_tensor(x)).detach(), model, inputs, "test", "images")
    with torch.no_grad():
        whole = model(torch.as_tensor(inputs))
    torch.testing.assert_close(chunked, whole)
    assert "evaluating on the test set: 10/10 images (100%)" in stream.getvalue()


# --- warnings and log messages of dependencies ---------------------------------------------------

def _module(name: str, source: str) -> types.ModuleType:
    """A module called ``name`` (e.g. like a dependency) whose code is ``source``."""
    module = types.ModuleType(name)
    exec(compile(source, f"/site-packages/{name.replace('.', '/')}.py", "exec"), module.__dict__)
    return module


DEPENDENCY = _module("torchao._fake_ext", """
import logging, warnings
def load(tag):
    logging.getLogger("torchao").warning("Failed to load _C_fake.so " + tag)
    logging.getLogger("torch.utils._pytree").warning("register_constant is deprecated " + tag)
    warnings.warn("torch.fake_api is deprecated " + tag, DeprecationWarning, stacklevel=2)
""")
OWN = _module("bigmodel._fake_own", """
import warnings
def note(tag):
    warnings.warn("bigmodel's own note " + tag, UserWarning, stacklevel=2)
""")


def _info_that_warns(tag: str):
    def collect_info():
        DEPENDENCY.load(tag)
        OWN.note(tag)
        return {"bigmodel": "test"}
    return collect_info


def test_dependency_warnings_stay_off_the_console_unless_debug(monkeypatch, capsys, caplog):
    from bigmodel.cli import info

    caplog.set_level(logging.NOTSET)
    shown = warnings.showwarning
    levels = {name: logging.getLogger(name).level for name in ("", "torch", "torchao")}
    monkeypatch.setattr(info, "collect_info", _info_that_warns("quiet"))
    with warnings.catch_warnings():
        warnings.simplefilter("always")
        assert main(["info"]) == 0
    err = capsys.readouterr().err
    assert err == "warning: bigmodel's own note quiet\n"
    assert not [r for r in caplog.records if "quiet" in r.getMessage()]
    assert warnings.showwarning is shown  # the command restores what it changed
    assert {name: logging.getLogger(name).level for name in levels} == levels

    monkeypatch.setattr(info, "collect_info", _info_that_warns("debug"))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        assert main(["--debug", "info"]) == 0
    assert sorted(str(w.message) for w in caught) == ["bigmodel's own note debug",
                                                      "torch.fake_api is deprecated debug"]
    logged = sorted(r.getMessage() for r in caplog.records if "debug" in r.getMessage())
    assert logged == ["Failed to load _C_fake.so debug", "register_constant is deprecated debug"]


def test_library_users_still_get_dependency_warnings():
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        DEPENDENCY.load("library")
    assert [str(w.message) for w in caught] == ["torch.fake_api is deprecated library"]


# --- predict --output ----------------------------------------------------------------------------

def _reference_top2(run_dir: Path, images: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Top-2 ``(probabilities, class indices)`` computed here from the saved model."""
    from bigmodel.models import load_model

    model = load_model(run_dir).eval()
    with torch.no_grad():
        logits = model(torch.as_tensor(images[:, None].astype(np.float32) / 255.0))
    probabilities = torch.softmax(logits, dim=1).numpy()
    order = np.argsort(-probabilities, axis=1)[:, :2]
    return np.take_along_axis(probabilities, order, axis=1), order


def test_predict_writes_csv_and_json_with_one_row_per_input(trained, tmp_path, capsys):
    run_dir, _ = trained
    images = np.random.default_rng(1).integers(0, 256, (3, 28, 28)).astype(np.uint8)
    np.save(tmp_path / "x.npy", images)
    top_p, top_i = _reference_top2(run_dir, images)
    names = json.loads((run_dir / "model.json").read_text())["metadata"]["class_names"]

    assert main(["predict", str(run_dir), str(tmp_path / "x.npy"), "--top-k", "2",
                 "--output", str(tmp_path / "p.csv")]) == 0
    assert capsys.readouterr().out == f"wrote 3 predictions to {tmp_path / 'p.csv'}\n"
    with open(tmp_path / "p.csv", newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert list(rows[0]) == ["input", "class", "class_index", "probability", "class_2",
                             "class_index_2", "probability_2"]
    assert [row["input"] for row in rows] == ["0", "1", "2"]
    for row, ps, ids in zip(rows, top_p, top_i):
        assert [int(row["class_index"]), int(row["class_index_2"])] == ids.tolist()
        assert [row["class"], row["class_2"]] == [names[i] for i in ids]
        assert [float(row["probability"]), float(row["probability_2"])] == pytest.approx(
            ps.tolist(), abs=2e-6)

    assert main(["predict", str(run_dir), str(tmp_path / "x.npy"),
                 "--output", str(tmp_path / "p.json")]) == 0
    document = json.loads((tmp_path / "p.json").read_text())
    assert document["kind"] == "image" and document["top_k"] == 1
    assert document["run"] == str(run_dir)
    assert [(p["input"], p["class_index"], p["class"]) for p in document["predictions"]] == [
        (str(n), int(top_i[n, 0]), names[top_i[n, 0]]) for n in range(3)]
    assert [p["probability"] for p in document["predictions"]] == pytest.approx(
        top_p[:, 0].tolist(), abs=1e-6)
    assert all(len(p["top_k"]) == 1 for p in document["predictions"])


def test_predict_output_refuses_other_suffixes_and_missing_folders(trained, tmp_path, capsys):
    run_dir, _ = trained
    np.save(tmp_path / "x.npy", np.zeros((1, 28, 28), np.uint8))
    for target, message in ((tmp_path / "p.txt", r"allowed: \.csv, \.json; received '\.txt'"),
                            (tmp_path / "p", "allowed: .csv, .json; received 'no suffix'"),
                            (tmp_path / "nowhere" / "p.csv", "does not exist")):
        assert main(["predict", str(run_dir), str(tmp_path / "x.npy"), "--output",
                     str(target)]) == 2
        err = capsys.readouterr().err
        assert err.startswith("error: --output ") and re.search(message, err), err
        assert not target.exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["x.npy"]  # nothing half-written


def test_prediction_files_keep_texts_beside_their_labels(tmp_path):
    from bigmodel.errors import ConfigError
    from bigmodel.recipes.prediction_files import write_predictions
    from bigmodel.recipes.runs import Prediction

    predictions = [Prediction("t.txt:1", [("kittens", 0, 0.75), ("rockets", 1, 0.25)]),
                   Prediction("t.txt:3", [("rockets", 1, 0.5), ("kittens", 0, 0.5)])]
    texts = ['a kitten, "purring"', "to the moon"]
    write_predictions(tmp_path / "t.csv", predictions, "text", "run", texts)
    with open(tmp_path / "t.csv", newline="") as handle:
        rows = list(csv.reader(handle))
    assert rows == [["input", "text", "class", "class_index", "probability", "class_2",
                     "class_index_2", "probability_2"],
                    ["t.txt:1", 'a kitten, "purring"', "kittens", "0", "0.750000", "rockets", "1",
                     "0.250000"],
                    ["t.txt:3", "to the moon", "rockets", "1", "0.500000", "kittens", "0",
                     "0.500000"]]
    write_predictions(tmp_path / "t.json", predictions, "text", "run", texts)
    document = json.loads((tmp_path / "t.json").read_text())
    assert [p["text"] for p in document["predictions"]] == texts
    with pytest.raises(ConfigError, match="1 texts for 2 predictions"):
        write_predictions(tmp_path / "u.csv", predictions, "text", "run", texts[:1])
    assert not (tmp_path / "u.csv").exists()


# --- bigmodel info -------------------------------------------------------------------------------

def _info_lines(capsys) -> dict[str, str]:
    assert main(["info"]) == 0
    lines = capsys.readouterr().out.splitlines()
    column = re.match(r"bigmodel: +", lines[0]).end()  # the values start in one column
    return {line[:column].strip(): line[column:] for line in lines}


def test_info_lists_the_data_and_every_optional_extra(capsys, monkeypatch):
    import importlib.metadata as metadata

    from bigmodel.data.fortunes import find_fortunes_dir, list_categories
    from bigmodel.recipes import environment

    facts = _info_lines(capsys)
    try:
        folder = find_fortunes_dir(categories=())
        assert facts["data: fortunes:"] == f"{folder} ({len(list_categories(folder))} categories)"
    except Exception:  # noqa: BLE001 - a machine without fortunes: say how to get them
        assert facts["data: fortunes:"].startswith("not found (apt-get install fortunes")
    if shutil.which("espeak-ng"):
        assert facts["data: espeak-ng:"].startswith(f"{shutil.which('espeak-ng')} (")
    assert facts["data: fashion-mnist:"]
    requirements = metadata.requires("bigmodel")
    extras = {re.search(r'extra == "([^"]+)"', r).group(1) for r in requirements
              if 'extra == "' in r} - {"all", "dev"}
    assert {label[len("extra "):-1] for label in facts if label.startswith("extra ")} == extras
    assert "serve" in extras and "compress" in extras and "explain" in extras
    assert f"torch {torch.__version__}" not in facts["extra compress:"]
    for package in ("onnx", "torchao"):
        try:
            assert f"{package} {metadata.version(package)}" in facts["extra compress:"]
        except metadata.PackageNotFoundError:
            assert package in facts["extra compress:"].split("not installed: ")[1]

    real_version = metadata.version

    def without_captum(name):
        if name == "captum":
            raise metadata.PackageNotFoundError(name)
        return real_version(name)

    monkeypatch.setattr(environment.metadata, "version", without_captum)
    monkeypatch.setattr(environment.shutil, "which", lambda name: None)
    facts = _info_lines(capsys)
    assert facts["extra explain:"].endswith(
        "not installed: captum (pip install 'bigmodel[explain]')")
    assert facts["data: espeak-ng:"].startswith("not found (apt-get install espeak-ng")


# --- wording ------------------------------------------------------------------------------------

def test_counts_agree_with_their_number(trained):
    from bigmodel.recipes.summary import count_noun

    assert count_noun(1, "CPU thread") == "1 CPU thread"
    assert count_noun(2, "CPU thread") == "2 CPU threads"
    assert count_noun(12000, "parameter") == "12,000 parameters"
    assert count_noun(3, "category", "categories") == "3 categories"
    report = (trained[0] / "report.md").read_text()
    assert "| device | cpu, precision fp32, 1 CPU thread |" in report
    assert "1 CPU threads" not in report


def test_the_report_names_the_augmentation_that_runs():
    from bigmodel.models import create_model
    from bigmodel.recipes.schema import load_recipe
    from bigmodel.recipes.tasks.classification import augmentation_row

    recipe = load_recipe(CONFIGS / "speech_cnn.yaml", [])
    model = create_model("speech-cnn", num_classes=2, channels=[4, 8], freq_masks=2,
                         freq_mask_width=8, time_masks=2, time_mask_width=20)
    assert augmentation_row(recipe, model) == (
        "SpecAugment in the model (2 frequency masks up to 8 bands, 2 time masks up to 20 "
        "frames)")
    plain = create_model("speech-cnn", num_classes=2, channels=[4, 8], freq_masks=0,
                         time_masks=1, time_mask_width=5)
    assert augmentation_row(recipe, plain) == "SpecAugment in the model (1 time mask up to 5 frames)"
    off = create_model("speech-cnn", num_classes=2, channels=[4, 8], freq_masks=0, time_masks=0)
    assert augmentation_row(recipe, off) == "none"
    images = load_recipe(CONFIGS / "fashion_cnn_regularized.yaml", [])
    names = [spec.name for spec in images.data.augment]
    assert augmentation_row(images, create_model("seed-cnn")) == (", ".join(names) or "none")


def test_compression_throughput_uses_the_inputs_unit(tmp_path):
    from bigmodel.compress.report import StageResult, markdown_table, write_report

    stages = [StageResult("original", 0.9, 2048, latency_ms=1.0, throughput=500.0)]
    assert "| 500 clips/s |" in markdown_table(stages, "clips")
    assert "img/s" not in markdown_table(stages, "texts")
    report = write_report(stages, tmp_path, unit="clips").read_text()
    assert "median time of one clip; throughput: clips per second" in report
    assert "| 500 images/s |" in markdown_table(stages)


def test_skipgram_training_reports_each_epoch_and_learns_the_same_vectors():
    pytest.importorskip("gensim")
    from bigmodel.data.text import WordVocabulary
    from bigmodel.transfer.skipgram import train_skipgram

    texts = ["the cat sat on the mat", "the dog sat on the log", "a cat and a dog"] * 4
    vocabulary = WordVocabulary.build(texts, min_count=1)
    calls = []
    reported = train_skipgram(texts, vocabulary, dim=8, epochs=3,
                              progress=lambda done, total: calls.append((done, total)))
    assert calls == [(1, 3), (2, 3), (3, 3)]
    torch.testing.assert_close(reported, train_skipgram(texts, vocabulary, dim=8, epochs=3))


def test_a_phase_eta_follows_the_pace_since_its_first_update():
    phase = progress.Phase("training", total=10, unit="epochs", verbose=0)
    phase._first = (phase.started + 30.0, 1)  # 30 s of setup, then the first epoch done
    phase.done = 5
    # 4 epochs in the 8 s after the first: 2 s each, 5 left -> 10 s (not 38 s / 5 * 5 = 38 s)
    assert phase.seconds_per_unit(38.0) == pytest.approx(2.0)
    assert phase.line(38.0) == "training: 5/10 epochs (50%) - 38s elapsed - ETA 0:10"
    fresh = progress.Phase("training", total=10, unit="epochs", verbose=0)
    fresh.done = 2
    assert fresh.seconds_per_unit(8.0) == pytest.approx(4.0)  # no pace yet: the average


def test_the_summary_reads_the_sizes_of_every_kind_of_task_data(monkeypatch, tmp_path):
    from types import SimpleNamespace

    from bigmodel.recipes.schema import load_recipe
    from bigmodel.recipes.summary import data_sizes, run_summary

    classification = SimpleNamespace(x_train=np.zeros((5, 2)), x_val=None, x_test=np.zeros(3),
                                     unit="clips")
    assert data_sizes(classification).text() == "5 train / 0 validation / 3 test clips"
    assert data_sizes(SimpleNamespace(data=classification)).text() == (
        "5 train / 0 validation / 3 test clips")  # fine-tuning wraps the classification data
    pairs = SimpleNamespace(train=(torch.zeros(7, 4), torch.zeros(7, 5)),
                            validation=(torch.zeros(2, 4), torch.zeros(2, 5)),
                            pairs=SimpleNamespace(test_sources=["a", "b", "c"]))
    assert data_sizes(pairs).text() == "7 train / 2 validation / 3 test pairs"
    characters = SimpleNamespace(train_ids=np.zeros(1200), validation_ids=np.zeros(300))
    assert data_sizes(characters).text() == "1,200 train / 300 validation characters"
    assert data_sizes(object()) is None

    monkeypatch.setattr(torch.cuda, "get_device_name", lambda device: "NVIDIA H100 80GB HBM3")
    monkeypatch.setattr(torch, "get_num_threads", lambda: 16)
    recipe = load_recipe(CONFIGS / "seq2seq_dates.yaml", [])
    lines = run_summary(recipe, "seq2seq", pairs, 2_000_000, 1_500, torch.device("cuda", 0),
                        tmp_path, resume=True, model_name="pretrained thing")
    assert lines == [
        "model:      pretrained thing (2,000,000 parameters, 1,500 trainable, 0.07%)",
        "task:       seq2seq",
        f"data:       {recipe.data.name}: 7 train / 2 validation / 3 test pairs",
        f"device:     cuda:0 (NVIDIA H100 80GB HBM3), precision {recipe.train.precision}, "
        "16 CPU threads",
        f"batch size: {recipe.train.batch_size}",
        f"epochs:     {recipe.train.epochs} (resuming from the newest checkpoint)",
        f"run dir:    {tmp_path}"]
    two = run_summary(recipe, "seq2seq", pairs, 10, 10, torch.device("cpu"), tmp_path,
                      processes=2)
    assert two[4] == f"batch size: {recipe.train.batch_size} (global, over 2 processes, " \
                     f"{recipe.train.strategy})"
