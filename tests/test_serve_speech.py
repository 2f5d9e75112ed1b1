"""``bigmodel serve`` with a speech run: a WAV upload answered as ``bigmodel predict clip.wav``
answers it; a WAV of another rate, a too-long clip and a non-WAV upload are 4xx."""

from __future__ import annotations

import contextlib
import io
import re
import time
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("fastapi", reason="bigmodel serve needs the extra 'serve' (fastapi missing)")
httpx = pytest.importorskip("httpx", reason="the serve tests need httpx (extra 'serve')")

from bigmodel.cli.main import main  # noqa: E402
from bigmodel.data.audio import write_wav  # noqa: E402
from bigmodel.serve import BackgroundServer  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
RATE = 16000
WORDS = ("low", "high")
pytestmark = pytest.mark.usefixtures("one_torch_thread")


def tone(word: str, rng: np.random.Generator, seconds: float = 0.3) -> np.ndarray:
    t = np.arange(int(seconds * RATE)) / RATE
    return rng.uniform(0.3, 0.7) * np.sin(2 * np.pi * (400.0 if word == "low" else 2400.0) * t)


@pytest.fixture(scope="module")
def speech_run(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("speech-corpus")
    rng = np.random.default_rng(0)
    lines = ["path,label,speaker,split"]
    for index in range(32):
        write_wav(root / "wav" / f"{index:03d}.wav", tone(WORDS[index % 2], rng), RATE)
        lines.append(f"wav/{index:03d}.wav,{WORDS[index % 2]},spk{index % 4},"
                     f"{'test' if index >= 24 else 'train'}")
    (root / "manifest.csv").write_text("\n".join(lines) + "\n")
    run_dir = tmp_path_factory.mktemp("runs") / "words"
    sets = [f"data.path={root}", "data.name=speech_folder", "data.speech.clip_seconds=0.5",
            "data.speech.words=[low, high]", "data.speech.renditions=5", "train.epochs=2",
            "train.batch_size=8", "model.overrides.channels=[8, 8, 8]", "train.scheduler=null",
            "data.validation_split=0.25"]
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        assert main(["train", str(ROOT / "configs" / "speech_cnn.yaml"), "--run-dir",
                     str(run_dir), *[a for s in sets for a in ("--set", s)]]) == 0, out.getvalue()
    return run_dir


def _wav(samples: np.ndarray, rate: int = RATE) -> bytes:
    from scipy.io import wavfile

    buffer = io.BytesIO()
    wavfile.write(buffer, rate, (samples * 32767).astype(np.int16))
    return buffer.getvalue()


def test_speech_run_served_like_predict(speech_run, tmp_path, capsys):
    rng = np.random.default_rng(5)
    clips = {word: _wav(tone(word, rng)) for word in WORDS}
    with BackgroundServer([speech_run], max_delay_ms=1) as server, \
            httpx.Client(base_url=server.url, timeout=30) as client:
        for _ in range(600):
            if client.get("/v2/models/words/ready").status_code == 200:
                break
            time.sleep(0.05)
        meta = client.get("/v2/models/words").json()
        assert meta["inputs"][0]["shape"] == [-1, 8000]
        assert meta["parameters"]["sample_rate"] == RATE
        for word, data in clips.items():
            path = tmp_path / f"{word}.wav"
            path.write_bytes(data)
            capsys.readouterr()
            assert main(["predict", str(speech_run), str(path), "--top-k", "2"]) == 0
            line = capsys.readouterr().out.strip().split(": ", 1)[1]
            expected = [(m[0], float(m[1])) for m in re.findall(r"(\w+) ([0-9.]+)", line)]
            answer = client.post("/v2/models/words/classify?top_k=2",
                                 files={"file": (f"{word}.wav", data, "audio/wav")})
            assert answer.status_code == 200, answer.text
            served = [(p["class"], round(p["probability"], 4))
                      for p in answer.json()["predictions"][0]]
            assert served == expected
        # The same clip as a v2 FP32 tensor of samples (what the WAV decodes to) answers alike,
        # and an explanation attributes to every sample.
        from scipy.io import wavfile

        from bigmodel.data.audio import fit_length

        samples = wavfile.read(io.BytesIO(clips["high"]))[1] / np.float32(32768)
        clip = fit_length(samples.astype(np.float32), 8000)  # padded as in training
        v2 = client.post("/v2/models/words/infer", json={"inputs": [{
            "name": "input", "shape": [1, 8000], "datatype": "FP32", "data": clip.tolist()}]})
        assert v2.status_code == 200, v2.text
        probabilities = v2.json()["outputs"][1]["data"]
        assert round(max(probabilities), 4) == served[0][1]
        explained = client.post("/v2/models/words/explain?method=saliency",
                                files={"file": ("high.wav", clips["high"])}).json()
        assert explained["shape"] == [8000] and explained["target_class"] == served[0][0]
        bad = [(_wav(tone("high", rng), 8000), 400, "8000 Hz"),
               (_wav(tone("high", rng, seconds=0.8)), 400, "longer"),
               (b"RIFF\x00\x00\x00\x00WAVEjunk", 415, "cannot decode"),
               (b"not audio at all", 415, "not a WAV file")]
        for data, status, words in bad:
            response = client.post("/v2/models/words/classify", files={"file": ("x.wav", data)})
            assert response.status_code == status, response.text
            assert words in response.json()["error"], response.json()
        text = client.post("/v2/models/words/classify", json={"text": "high"})
        assert text.status_code == 415 and "audio files" in text.json()["error"]
