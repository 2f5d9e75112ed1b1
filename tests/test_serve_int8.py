"""``bigmodel serve --int8``: a run's int8 stage (written by ``bigmodel compress --quantize int8``)
served by ONNX Runtime, selected with ``--int8`` or passed as the run directory; answers equal
``bigmodel predict`` on the same stage folder; explanations refused naming why; a run without an
int8 stage refused naming the command that writes one."""

from __future__ import annotations

import contextlib
import io
import os
import re
import time
from pathlib import Path

import numpy as np
import pytest
import torch

pytest.importorskip("fastapi", reason="bigmodel serve needs the extra 'serve' (fastapi missing)")
pytest.importorskip("onnxruntime", reason="int8 models need the extra 'compress'")
httpx = pytest.importorskip("httpx", reason="the serve tests need httpx (extra 'serve')")

from bigmodel.cli.main import main  # noqa: E402
from bigmodel.compress import load_int8, quantize_int8  # noqa: E402
from bigmodel.data.idx import write_idx  # noqa: E402
from bigmodel.errors import ConfigError  # noqa: E402
from bigmodel.models import create_model, load_model, save_model  # noqa: E402
from bigmodel.serve import BackgroundServer, ServedModel  # noqa: E402
from bigmodel.serve.models import int8_stage, model_name  # noqa: E402
from synthetic_images import synthetic_images  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.usefixtures("one_torch_thread")


def _cli(*args: str) -> str:
    out = io.StringIO()
    with pytest.MonkeyPatch.context() as patch, contextlib.redirect_stdout(out):
        patch.setenv("BIGMODEL_OFFLINE", "1")
        assert main(list(args)) == 0, out.getvalue()
    return out.getvalue()


FULL = os.environ.get("BIGMODEL_FULL_SERVE") == "1"


@pytest.fixture(scope="module")
def int8_run(tmp_path_factory) -> Path:
    """A Fashion-style CNN run with its int8 stage ``RUN/compressed/int8``. With
    ``BIGMODEL_FULL_SERVE=1`` (CI) both are written by the CLI (``bigmodel train`` on tiny
    synthetic data, then ``bigmodel compress --quantize int8``, ~30 s); otherwise by the calls
    ``compress`` makes (``save_model``, ``quantize_int8(...).save(stage, metadata)``) on random
    weights, in a second."""
    run_dir = tmp_path_factory.mktemp("runs") / "fashion"
    rng = np.random.default_rng(0)
    if not FULL:
        torch.manual_seed(0)
        metadata = {"class_names": [f"class {i}" for i in range(10)],
                    "input": {"channels": 1, "height": 28, "width": 28}}
        save_model(create_model("seed-cnn"), run_dir, metadata=metadata)
        calibration = torch.from_numpy(synthetic_images(64, rng)[0][:, None] / np.float32(255))
        quantize_int8(load_model(run_dir).eval(), calibration[:1], calibration).save(
            run_dir / "compressed" / "int8", metadata=metadata)
        return run_dir
    data = tmp_path_factory.mktemp("tiny-fashion")
    for split, count in (("train", 192), ("t10k", 64)):
        images, labels = synthetic_images(count, rng)
        write_idx(data / f"{split}-images-idx3-ubyte.gz", images)
        write_idx(data / f"{split}-labels-idx1-ubyte.gz", labels)
    _cli("train", str(ROOT / "configs" / "fashion_cnn.yaml"), "--run-dir", str(run_dir),
         "--set", f"data.path={data}", "--set", "train.epochs=1", "--set", "train.batch_size=32")
    _cli("compress", str(run_dir), "--quantize", "int8", "--speed-rounds", "1",
         "--calibration-size", "64")
    assert (run_dir / "compressed" / "int8").is_dir()
    return run_dir


def _images(count: int) -> np.ndarray:
    return synthetic_images(count, np.random.default_rng(5))[0]  # uint8 (N, 28, 28)


def _predict(run_dir: Path, source: Path) -> list[list[tuple[str, float]]]:
    """``bigmodel predict --top-k 3`` rows as ``[(class, probability), ...]``."""
    rows = []
    for line in _cli("predict", str(run_dir), str(source), "--top-k", "3").splitlines():
        ranked = line.split(": ", 1)[1].split(" | ")
        rows.append([(re.sub(r" \(class \d+\)", "", item).rsplit(" ", 1)[0],
                      float(item.rsplit(" ", 1)[1])) for item in ranked])
    return rows


def _ready(client) -> None:
    for _ in range(600):  # models load in a thread after start-up
        if client.get("/v2/health/ready").status_code == 200:
            return
        time.sleep(0.05)
    raise AssertionError(client.get("/v2/models").json())


def test_int8_stage_is_found_or_refused(int8_run, tmp_path):
    stage = int8_run / "compressed" / "int8"
    assert int8_stage(int8_run) == stage and int8_stage(stage) == stage
    assert model_name(int8_run) == "fashion" and model_name(stage) == "fashion-int8"
    bare = tmp_path / "bare"
    bare.mkdir()
    for folder in (bare, int8_run / "compressed"):
        with pytest.raises(ConfigError, match=r"no int8 model.*bigmodel compress .* --quantize int8"):
            int8_stage(folder)


def test_served_int8_model_equals_predict_on_the_stage(int8_run, tmp_path):
    stage = int8_run / "compressed" / "int8"
    images = _images(6)
    np.save(tmp_path / "images.npy", images)
    expected = _predict(stage, tmp_path / "images.npy")
    reference = load_int8(stage, threads=1)(torch.from_numpy(images[:, None] / np.float32(255)))
    # Selected with --int8 (the run's name) and passed as a folder (RUN-int8): the same model.
    with BackgroundServer([("fashion", int8_stage(int8_run)), stage], max_delay_ms=1) as server, \
            httpx.Client(base_url=server.url, timeout=30) as client:
        _ready(client)
        for name in ("fashion", "fashion-int8"):
            metadata = client.get(f"/v2/models/{name}").json()
            assert metadata["platform"] == "onnxruntime"
            assert metadata["parameters"]["precision"] == "int8"
            served = []
            for image in images:  # one request each: answers as they come out of batches
                answer = client.post(f"/v2/models/{name}/classify?top_k=3",
                                     files={"file": ("x.npy", _npy(image))})
                assert answer.status_code == 200, answer.text
                served.append([(p["class"], round(p["probability"], 4))
                               for p in answer.json()["predictions"][0]])
            assert served == expected
            body = {"inputs": [{"name": "input", "shape": [6, 1, 28, 28], "datatype": "FP32",
                                "data": (images / np.float32(255)).ravel().tolist()}],
                    "outputs": [{"name": "logits"}]}
            logits = client.post(f"/v2/models/{name}/infer", json=body).json()["outputs"][0]
            torch.testing.assert_close(torch.tensor(logits["data"]).reshape(6, -1), reference,
                                       rtol=0, atol=1e-5)
        refused = client.post("/v2/models/fashion/explain",
                              files={"file": ("x.npy", _npy(images[0]))})
        assert refused.status_code == 400
        assert "int8 ONNX Runtime graph" in refused.json()["error"]
        # ONNX Runtime's int8 kernels give a row the same bits alone as in a batch (probed at
        # load), so its batches are not padded to 4 rows as PyTorch's are.
        repository = server.app.app.state.repository
        assert repository.entries["fashion"].batcher.min_rows == 1
    served = ServedModel(stage)
    rows = torch.from_numpy(images[:, None] / np.float32(255))
    assert served.int8 and served.rows_independent
    together = served.forward(rows)
    assert all(torch.equal(served.forward(rows[i:i + 1]), together[i:i + 1]) for i in range(6))
    float_run = ServedModel(int8_run)
    assert float_run.int8 is False
    with BackgroundServer([int8_run], load_in_background=False) as server:
        expected = 1 if float_run.rows_independent else 4
        assert server.app.app.state.repository.entries["fashion"].batcher.min_rows == expected


def _npy(array: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    np.save(buffer, array)
    return buffer.getvalue()


def test_cli_serve_int8(int8_run, tmp_path, capsys, monkeypatch):
    import uvicorn

    empty = tmp_path / "untrained"
    empty.mkdir()
    assert main(["serve", str(empty), "--int8"]) == 2
    assert "no int8 model" in capsys.readouterr().err
    seen = {}

    def capture(app, host, port, **options):  # uvicorn.run as the command calls it
        seen["names"] = sorted(app.app.state.repository.entries)
        seen["dirs"] = [e.run_dir for e in app.app.state.repository.entries.values()]

    monkeypatch.setattr(uvicorn, "run", capture)
    assert main(["serve", str(int8_run), "--int8", "--port", "0"]) == 0
    assert seen == {"names": ["fashion"], "dirs": [int8_run / "compressed" / "int8"]}

    def capture_workers(app, **options):  # with --workers: what each worker process builds
        from bigmodel.serve.server import app_from_environment

        capture(app_from_environment(), None, None)

    seen.clear()
    monkeypatch.setattr(uvicorn, "run", capture_workers)
    assert main(["serve", str(int8_run), "--int8", "--workers", "2", "--port", "0"]) == 0
    assert seen == {"names": ["fashion"], "dirs": [int8_run / "compressed" / "int8"]}
