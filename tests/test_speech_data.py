"""Speech folders (sub-folders, CSV manifest, Speech Commands lists) and the espeak-ng corpus."""

from __future__ import annotations

import hashlib
import os
import shutil
from pathlib import Path

import numpy as np
import pytest

from bigmodel.data.audio import write_wav
from bigmodel.data.speech import load_speech_digits, load_speech_folder, synthesize_digits
from bigmodel.data.speech_synth import espeak_available
from bigmodel.errors import ConfigError, DataError, DataFileError

RATE = 16000


def tone(freq: float, seconds: float = 0.3, rate: int = RATE) -> np.ndarray:
    t = np.arange(int(seconds * rate)) / rate
    return 0.4 * np.sin(2 * np.pi * freq * t)


def make_folder(root: Path) -> Path:
    """Speech Commands layout: <word>/<speaker>_nohash_<n>.wav, list files, a noise folder."""
    for word, freq in (("up", 300.0), ("down", 900.0)):
        for speaker in ("aa11", "bb22", "cc33"):
            for n in range(2):
                write_wav(root / word / f"{speaker}_nohash_{n}.wav", tone(freq + 10 * n), RATE)
    write_wav(root / "_background_noise_" / "noise.wav", np.full(RATE, 0.1), RATE)
    (root / "up" / "README.txt").write_text("not a clip")
    (root / "testing_list.txt").write_text("up/cc33_nohash_0.wav\ndown/cc33_nohash_0.wav\n")
    (root / "validation_list.txt").write_text("up/bb22_nohash_1.wav\n")
    return root


def test_folder_layout(tmp_path):
    data = load_speech_folder(make_folder(tmp_path))
    assert data.class_names == ("down", "up") and len(data) == 12
    assert data.waveforms.shape == (12, RATE) and data.waveforms.dtype == np.float32
    assert set(data.speakers.tolist()) == {"aa11", "bb22", "cc33"}
    assert (data.splits == "test").sum() == 2 and (data.splits == "validation").sum() == 1
    test = data.split("test")
    assert sorted(Path(p).name for p in test.paths) == ["cc33_nohash_0.wav"] * 2
    assert data.sample_rate == RATE and data.num_classes == 2
    # the label is the folder: tone frequency tells the classes apart
    freqs = [np.argmax(np.abs(np.fft.rfft(w))) for w in data.waveforms]
    assert all((f > 600 * len(w) / RATE) == (data.class_names[y] == "down")
               for f, y, w in zip(freqs, data.labels, data.waveforms))
    with pytest.raises(ConfigError, match="split"):
        data.split("dev")


def test_csv_manifest_class_names_and_rates(tmp_path):
    write_wav(tmp_path / "clips" / "a.wav", tone(440, 0.5, 8000), 8000)  # resampled to 16 kHz
    write_wav(tmp_path / "clips" / "b.wav", np.stack([tone(660), tone(660)], axis=1), RATE)
    (tmp_path / "labels.csv").write_text("path,label,speaker,split,extra\n"
                                         "clips/a.wav,yes,s1,train,x\nclips/b.wav,no,s2,test,y\n")
    data = load_speech_folder(tmp_path, manifest=tmp_path / "labels.csv",
                              class_names=["yes", "no", "maybe"], clip_seconds=0.75)
    assert data.waveforms.shape == (2, 12000) and data.labels.tolist() == [0, 1]
    assert data.speakers.tolist() == ["s1", "s2"] and data.splits.tolist() == ["train", "test"]
    assert abs(float(np.abs(data.waveforms[0]).max()) - 0.4) < 0.02
    with pytest.raises(DataError, match=r"labels \['no'\] are not among"):
        load_speech_folder(tmp_path, manifest=tmp_path / "labels.csv", class_names=["yes"])
    (tmp_path / "bad.csv").write_text("file,word\nclips/a.wav,yes\n")
    with pytest.raises(DataFileError, match="columns 'path' and 'label'"):
        load_speech_folder(tmp_path, manifest=tmp_path / "bad.csv")
    (tmp_path / "split.csv").write_text("path,label,split\nclips/a.wav,yes,dev\n")
    with pytest.raises(DataFileError, match="line 2: split 'dev'"):
        load_speech_folder(tmp_path, manifest=tmp_path / "split.csv")


def test_bad_clips_error_or_skip(tmp_path):
    root = make_folder(tmp_path / "corpus")
    (root / "down" / "broken.wav").write_bytes(b"ID3\x03mp3 data, not a wav")
    write_wav(root / "down" / "quiet.wav", np.zeros(4000), RATE)
    with pytest.raises(DataFileError, match=r"broken\.wav is not a WAV file"):
        load_speech_folder(root)
    with pytest.warns(UserWarning, match="skipped 2 of 14 clips"):
        data = load_speech_folder(root, bad_clips="skip")
    assert len(data) == 12
    write_wav(root / "down" / "long.wav", tone(500, 1.4), RATE)
    (root / "down" / "broken.wav").unlink()
    (root / "down" / "quiet.wav").unlink()
    with pytest.raises(DataError, match="long.wav: 22400 samples is longer"):
        load_speech_folder(root)
    assert len(load_speech_folder(root, long_clips="trim")) == 13
    with pytest.raises(DataFileError, match="not found"):
        load_speech_folder(tmp_path / "nowhere")
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataFileError, match="no WAV clips"):
        load_speech_folder(tmp_path / "empty")
    with pytest.raises(ConfigError, match="bad_clips"):
        load_speech_folder(root, bad_clips="ignore")


def test_synthesize_rejects_bad_settings(tmp_path):
    with pytest.raises(ConfigError, match="test_voices"):
        synthesize_digits(tmp_path, voices=["f1", "m1"], test_voices=2)
    with pytest.raises(ConfigError, match="'words'"):
        synthesize_digits(tmp_path, words=[])
    with pytest.raises(ConfigError, match="rate_range"):
        synthesize_digits(tmp_path, rate_range=(300, 100))
    with pytest.raises(ConfigError, match="voice"):
        synthesize_digits(tmp_path, voices=["f1", "../etc"], test_voices=1)


def test_synthesize_without_espeak_says_what_to_install(tmp_path):
    with pytest.raises(DataFileError, match="apt-get install espeak-ng"):
        synthesize_digits(tmp_path, voices=["f1", "m1"], test_voices=1, renditions=1,
                          espeak=str(tmp_path / "no-espeak-here"))


needs_espeak = pytest.mark.skipif(not espeak_available(),
                                  reason="espeak-ng is not installed (Debian package espeak-ng)")
SMALL = {"words": ["one", "two", "seven"], "voices": ["f1", "m3", "klatt"], "test_voices": 1,
         "renditions": 2}


def _digest(folder: Path) -> str:
    hasher = hashlib.sha256()
    for file in sorted(folder.rglob("*.wav")):
        hasher.update(file.relative_to(folder).as_posix().encode())
        hasher.update(file.read_bytes())
    hasher.update((folder / "manifest.csv").read_bytes())
    return hasher.hexdigest()


@needs_espeak
def test_synthesized_corpus_is_seeded_cached_and_held_out(tmp_path):
    one = synthesize_digits(tmp_path / "a", workers=1, **SMALL)
    two = synthesize_digits(tmp_path / "b", workers=3, **SMALL)
    assert one.name == two.name and _digest(one) == _digest(two)  # same whatever the workers
    assert not [p for p in (tmp_path / "a").iterdir() if p.name.startswith(".")]  # no staging left
    # cached: found again without running espeak-ng at all
    assert synthesize_digits(tmp_path / "a", espeak="/nonexistent/espeak-ng", **SMALL) == one
    other = synthesize_digits(tmp_path / "a", seed=1, **SMALL)
    assert other != one and _digest(other) != _digest(one)

    data = load_speech_digits(tmp_path / "a", **SMALL)
    assert data.class_names == ("one", "two", "seven") and len(data) == 3 * 3 * 2
    train, test = data.split("train"), data.split("test")
    assert len(set(test.speakers.tolist())) == 1 and len(test) == 6
    assert not set(train.speakers.tolist()) & set(test.speakers.tolist())  # held-out voices
    assert np.bincount(train.labels).tolist() == [4, 4, 4]
    peaks = np.abs(data.waveforms).max(axis=1)
    assert (peaks > 0.2).all() and (peaks <= 1.0).all()
    manifest = (one / "manifest.csv").read_text().splitlines()
    assert manifest[0] == "path,label,speaker,split,accent,rate,pitch,gain,snr_db,offset"
    with pytest.raises(ConfigError, match="no voice variant"):
        synthesize_digits(tmp_path / "c", voices=["f1", "no-such-voice"], test_voices=1,
                          renditions=1, words=["one"])


@needs_espeak
def test_two_processes_rendering_at_once_keep_one_copy(tmp_path):
    import subprocess
    import sys

    code = ("import sys; from bigmodel.data.speech import synthesize_digits; "
            "print(synthesize_digits(sys.argv[1], words=['four'], voices=['f2', 'm2'], "
            "test_voices=1, renditions=1, workers=1))")
    procs = [subprocess.Popen([sys.executable, "-c", code, str(tmp_path)], stdout=subprocess.PIPE,
                              text=True) for _ in range(2)]
    outputs = [p.communicate(timeout=120)[0].strip() for p in procs]
    assert all(p.returncode == 0 for p in procs) and outputs[0] == outputs[1]
    entries = [p for p in tmp_path.iterdir()]
    assert len(entries) == 1 and (entries[0] / "manifest.csv").is_file()
    assert len(list(entries[0].rglob("*.wav"))) == 2
    shutil.rmtree(entries[0])
    assert not os.listdir(tmp_path)


@needs_espeak
def test_benchmark_script_runs_on_a_tiny_corpus(tmp_path):
    """benchmarks/speech_digits.py end to end on 3 voices x 10 digits (no figures asserted)."""
    import importlib.util
    import json
    import sys

    import torch

    path = Path(__file__).resolve().parents[1] / "benchmarks" / "speech_digits.py"
    spec = importlib.util.spec_from_file_location("_bench_speech_digits", path)
    module = importlib.util.module_from_spec(spec)
    threads = torch.get_num_threads()
    try:
        spec.loader.exec_module(module)
        result = module.main(["--cache", str(tmp_path / "cache"), "--voices", "f1,m3,klatt",
                              "--test-voices", "1", "--renditions", "1", "--epochs", "1",
                              "--latency-clips", "2", "--latency-rounds", "1", "--threads", "1",
                              "--saliency-image", str(tmp_path / "saliency.png"),
                              "--out", str(tmp_path / "out")])
    finally:
        torch.set_num_threads(threads)
        sys.path[:] = [p for p in sys.path if p != str(path.parent)]
    saved = json.loads((tmp_path / "out" / "speech_digits.json").read_text())
    assert [row["model"] for row in saved["models"]] == list(module.MODELS)
    assert saved["test_clips"] == 10 and saved["train_clips"] == 20
    assert set(saved["models"][0]["test_accuracy_per_voice"]) == set(saved["test_voices"])
    assert result["best"] in module.MODELS
    assert (tmp_path / "saliency.png").read_bytes().startswith(b"\x89PNG")


@needs_espeak
def test_recipe_splits_of_the_synthesized_corpus(tmp_path):
    from bigmodel.recipes.schema import recipe_from_dict
    from bigmodel.recipes.speech_data import speech_splits

    recipe = recipe_from_dict({
        "model": {"name": "speech-cnn"},
        "data": {"name": "speech_digits", "path": str(tmp_path), "validation_split": 0.5,
                 "test_subset": 4, "speech": {**SMALL, "clip_seconds": 0.8}}})
    parts = speech_splits(recipe.data, seed=0)
    assert parts["class_names"] == ("one", "two", "seven")
    assert parts["x_train"].shape == (6, 12800) and parts["x_val"].shape == (6, 12800)
    assert parts["x_test"].shape == (4, 12800) and parts["unit"] == "clips"
    assert parts["model_overrides"] == {"num_classes": 3, "sample_rate": 16000,
                                        "clip_seconds": 0.8}
    assert parts["input_spec"]["kind"] == "audio" and parts["input_spec"]["num_samples"] == 12800
    test_only = speech_splits(recipe.data, seed=0, with_train=False)
    assert test_only["x_train"] is None
    np.testing.assert_array_equal(test_only["x_test"], parts["x_test"])
