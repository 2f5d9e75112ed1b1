"""``bigmodel train`` on a speech folder recipe, then ``evaluate`` and ``predict clip.wav``."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pytest

from bigmodel.cli.main import main
from bigmodel.data.audio import write_wav
from bigmodel.errors import ConfigError
from bigmodel.recipes.schema import load_recipe, recipe_from_dict

ROOT = Path(__file__).resolve().parents[1]
RATE = 16000
WORDS = ("low", "high")


pytestmark = pytest.mark.usefixtures("one_torch_thread")


def clip(word: str, rng: np.random.Generator, seconds: float = 0.3, rate: int = RATE) -> np.ndarray:
    t = np.arange(int(seconds * rate)) / rate
    freq = 400.0 if word == "low" else 2400.0
    return rng.uniform(0.3, 0.7) * np.sin(2 * np.pi * freq * t) + rng.normal(0, 0.01, len(t))


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> Path:
    """A manifest corpus of two tone 'words': 48 train, 16 test clips, 0.5 s each."""
    root = tmp_path_factory.mktemp("speech-corpus")
    rng = np.random.default_rng(0)
    lines = ["path,label,speaker,split"]
    for index in range(64):
        word = WORDS[index % 2]
        split = "test" if index >= 48 else "train"
        write_wav(root / "wav" / f"{index:03d}.wav", clip(word, rng), RATE)
        lines.append(f"wav/{index:03d}.wav,{word},spk{index % 4},{split}")
    (root / "manifest.csv").write_text("\n".join(lines) + "\n")
    write_wav(root / "probe_high.wav", clip("high", rng, rate=44100), 44100)  # another rate: resampled
    write_wav(root / "probe_long.wav", clip("high", rng, seconds=0.8), RATE)
    (root / "notes.wav").write_text("not audio")
    return root


def recipe_args(corpus: Path) -> list[str]:
    sets = [f"data.path={corpus}", "data.speech.clip_seconds=0.5", "data.speech.words=[low, high]",
            "train.epochs=8", "train.batch_size=8", "model.overrides.channels=[8, 8, 8]",
            "train.scheduler=null", "data.validation_split=0.25"]
    return [arg for item in sets for arg in ("--set", item)]


@pytest.fixture(scope="module")
def run_dir(corpus, tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("runs") / "speech"
    recipe = ROOT / "configs" / "speech_cnn.yaml"
    code = main(["train", str(recipe), "--set", "data.name=speech_folder", "--set",
                 "data.speech.renditions=5", *recipe_args(corpus), "--run-dir", str(path)])
    assert code == 0
    return path


def test_train_writes_a_speech_run(run_dir):
    spec = json.loads((run_dir / "model.json").read_text())
    assert spec["name"] == "speech-cnn" and spec["config"]["clip_seconds"] == 0.5
    assert spec["config"]["num_classes"] == 2
    assert spec["metadata"]["class_names"] == list(WORDS)
    assert spec["metadata"]["input"] == {"kind": "audio", "sample_rate": RATE,
                                         "num_samples": 8000, "clip_seconds": 0.5,
                                         "long_clips": "error"}
    results = json.loads((run_dir / "results.json").read_text())
    assert results["results"]["test"]["accuracy"] >= 0.9
    assert "validation" in results["results"]
    report = (run_dir / "report.md").read_text()
    assert "36 train / 12 validation / 16 test clips" in report


def test_evaluate_and_predict(run_dir, corpus, capsys):
    assert main(["evaluate", str(run_dir)]) == 0
    out = capsys.readouterr().out
    assert re.search(r"test accuracy: (0\.9|1\.0)", out), out
    assert main(["predict", str(run_dir), str(corpus / "probe_high.wav"), "--top-k", "2"]) == 0
    line = capsys.readouterr().out.strip()
    match = re.fullmatch(r".*probe_high\.wav: high (\d\.\d{4}) \| low (\d\.\d{4})", line)
    assert match and float(match.group(1)) > 0.5, line
    # too long for the 0.5 s model: an error naming the file, or trimmed on request
    assert main(["predict", str(run_dir), str(corpus / "probe_long.wav")]) == 2
    assert "probe_long.wav: 12800 samples is longer" in capsys.readouterr().err
    assert main(["predict", str(run_dir), str(corpus / "probe_long.wav"),
                 "--long-clips", "trim"]) == 0
    assert "probe_long.wav: high" in capsys.readouterr().out
    assert main(["predict", str(run_dir), str(corpus / "notes.wav")]) == 2
    assert "not a WAV file" in capsys.readouterr().err
    assert main(["predict", str(run_dir), str(corpus / "wav")]) == 0  # a folder: a line per clip
    assert len(capsys.readouterr().out.strip().splitlines()) == 64


def test_speech_recipe_errors(corpus):
    with pytest.raises(ConfigError, match="data.speech.renditions does not apply"):
        recipe_from_dict({"data": {"name": "speech_folder", "speech": {"renditions": 3}}})
    with pytest.raises(ConfigError, match="data.speech applies to the speech data sources"):
        recipe_from_dict({"data": {"name": "fashion_mnist", "speech": {}}})
    with pytest.raises(ConfigError, match="data.speech.long_clips"):
        recipe_from_dict({"data": {"name": "speech_folder", "speech": {"long_clips": "cut"}}})
    recipe = load_recipe(ROOT / "configs" / "speech_lstm.yaml")
    assert recipe.data.name == "speech_digits" and recipe.data.speech.test_voices == 8


def test_speech_folder_needs_a_path(tmp_path):
    code = main(["train", str(ROOT / "configs" / "speech_cnn.yaml"), "--set",
                 "data.name=speech_folder", "--set", "data.speech.renditions=5",
                 "--run-dir", str(tmp_path / "r")])
    assert code == 2 and not (tmp_path / "r").exists()


def test_predict_refuses_audio_for_an_image_model(tmp_path, corpus, capsys):
    from bigmodel.models import create_model, save_model

    save_model(create_model("seed-cnn"), tmp_path / "images", metadata={
        "class_names": [str(i) for i in range(10)],
        "input": {"channels": 1, "height": 28, "width": 28, "scale": 1 / 255}})
    assert main(["predict", str(tmp_path / "images"), str(corpus / "probe_high.wav")]) == 2
    assert "was not trained on audio" in capsys.readouterr().err


def test_explain_a_speech_run_over_its_spectrogram(run_dir, corpus, tmp_path, capsys):
    out = tmp_path / "explained"
    assert main(["explain", str(run_dir), "--method", "saliency", "--index", "0", "15",
                 "--curve-steps", "4", "--output-dir", str(out)]) == 0, capsys.readouterr().err
    numbers = json.loads((out / "saliency.json").read_text())
    assert numbers["input_type"] == "image" and len(numbers["examples"]) == 2
    attributions = np.asarray(numbers["examples"][0]["attributions"])
    assert attributions.squeeze().shape == (40, 51)  # one value per log-mel cell (bands x frames)
    assert (out / "example_15.png").read_bytes().startswith(b"\x89PNG")
    assert main(["explain", str(run_dir), "--method", "saliency", "--input",
                 str(corpus / "probe_high.wav"), "--curve-steps", "0", "--output-dir",
                 str(tmp_path / "probe")]) == 0
    probe = json.loads((tmp_path / "probe" / "saliency.json").read_text())
    assert WORDS[probe["examples"][0]["predicted"]] == "high"


def test_export_a_speech_run_to_onnx(run_dir, tmp_path, capsys):
    pytest.importorskip("onnxruntime")
    pytest.importorskip("onnxscript")
    # the run's clips are 0.5 s: the export traces a waveform of the run's own length
    assert main(["export", str(run_dir), "--out", str(tmp_path / "m.onnx")]) == 0
    out = capsys.readouterr().out
    assert "max abs difference" in out and (tmp_path / "m.onnx").stat().st_size > 10_000
