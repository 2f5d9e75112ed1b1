"""``bigmodel serve``: tiny image and text runs trained with ``bigmodel train``, served on a free
loopback port; answers compared with ``bigmodel predict``; every bad input answered 4xx while the
server keeps serving; dynamic batching bit-equal to requests answered alone; metrics move."""

from __future__ import annotations

import asyncio
import contextlib
import io
import re
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest
import torch

pytest.importorskip("fastapi", reason="bigmodel serve needs the extra 'serve' (fastapi missing)")
httpx = pytest.importorskip("httpx", reason="the serve tests need httpx (extra 'serve')")

from bigmodel.cli.main import main  # noqa: E402
from bigmodel.data.idx import write_idx  # noqa: E402
from bigmodel.errors import ConfigError  # noqa: E402
from bigmodel.serve import BackgroundServer, DynamicBatcher, ServedModel  # noqa: E402
from bigmodel.serve.app import ModelRepository  # noqa: E402
from bigmodel.serve.protocol import RequestError  # noqa: E402
from synthetic_fortunes import write_topic_fortunes  # noqa: E402
from synthetic_images import synthetic_images  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.usefixtures("one_torch_thread")


def _train(args: list[str]) -> None:
    out = io.StringIO()
    with pytest.MonkeyPatch.context() as patch, contextlib.redirect_stdout(out):
        patch.setenv("BIGMODEL_OFFLINE", "1")
        assert main(["train", *args]) == 0, out.getvalue()


@pytest.fixture(scope="module")
def image_run(tmp_path_factory) -> Path:
    data = tmp_path_factory.mktemp("tiny-fashion")
    rng = np.random.default_rng(0)
    for split, count in (("train", 192), ("t10k", 64)):
        images, labels = synthetic_images(count, rng)
        write_idx(data / f"{split}-images-idx3-ubyte.gz", images)
        write_idx(data / f"{split}-labels-idx1-ubyte.gz", labels)
    run_dir = tmp_path_factory.mktemp("runs") / "fashion"
    _train([str(ROOT / "configs" / "fashion_cnn.yaml"), "--run-dir", str(run_dir),
            "--set", f"data.path={data}", "--set", "train.epochs=1",
            "--set", "train.batch_size=32"])
    return run_dir


@pytest.fixture(scope="module")
def text_run(tmp_path_factory) -> Path:
    fortunes = write_topic_fortunes(tmp_path_factory.mktemp("fortunes"), 60, seed=0)
    recipe = tmp_path_factory.mktemp("recipes") / "text.yaml"
    recipe.write_text(f"""
model: {{name: text-rcnn, overrides: {{embedding_dim: 16, context_size: 16, hidden_size: 16}}}}
data: {{name: fortunes, path: {fortunes}, categories: [kittens, rockets, recipes], max_length: 16}}
train: {{epochs: 3, batch_size: 16, optimizer: adam, lr: 0.01, seed: 0}}
""")
    run_dir = tmp_path_factory.mktemp("runs") / "topics"
    _train([str(recipe), "--run-dir", str(run_dir)])
    return run_dir


@pytest.fixture(scope="module")
def server(image_run, text_run):
    with BackgroundServer([image_run, text_run], max_batch=16, max_delay_ms=20,
                          max_body_bytes=1_000_000) as running:
        with httpx.Client(base_url=running.url, timeout=30) as client:
            for _ in range(600):  # models load in a thread after start-up
                if client.get("/v2/health/ready").status_code == 200:
                    break
                time.sleep(0.05)
            assert client.get("/v2/health/ready").json() == {"ready": True}
            running.client = client
            yield running


def _predict(capsys, run_dir: Path, source: str, top_k: int = 3) -> list[list[tuple[str, float]]]:
    """``bigmodel predict`` rows as ``[(class, probability), ...]``."""
    capsys.readouterr()
    assert main(["predict", str(run_dir), source, "--top-k", str(top_k)]) == 0
    rows = []
    for line in capsys.readouterr().out.splitlines():
        ranked = line.split(": ", 1)[1].split(" | ")
        rows.append([(re.sub(r" \(class \d+\)", "", item).rsplit(" ", 1)[0],
                      float(item.rsplit(" ", 1)[1])) for item in ranked])
    return rows


def _served(rows: list[list[dict]]) -> list[list[tuple[str, float]]]:
    return [[(item["class"], round(item["probability"], 4)) for item in row] for row in rows]


def _images(count: int, seed: int = 1) -> np.ndarray:
    return synthetic_images(count, np.random.default_rng(seed))[0]  # uint8 (N, 28, 28)


def _png(image: np.ndarray) -> bytes:
    from PIL import Image

    buffer = io.BytesIO()
    Image.fromarray(image).save(buffer, format="PNG")
    return buffer.getvalue()


def _npy(array: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    np.save(buffer, array)
    return buffer.getvalue()


def _infer(client, name: str, tensor: dict, **extra) -> httpx.Response:
    return client.post(f"/v2/models/{name}/infer", json={"inputs": [tensor], **extra})


def test_health_and_model_metadata(server):
    client = server.client
    assert client.get("/v2/health/live").json() == {"live": True}
    models = {m["name"]: m for m in client.get("/v2/models").json()["models"]}
    assert {name: m["kind"] for name, m in models.items()} == {"fashion": "image",
                                                               "topics": "text"}
    image = client.get("/v2/models/fashion").json()
    assert image["inputs"][0] == {"name": "input", "datatype": "FP32", "shape": [-1, 1, 28, 28]}
    assert image["outputs"][1] == {"name": "probabilities", "datatype": "FP32",
                                   "shape": [-1, 10]}
    assert image["parameters"]["class_names"][9] == "Ankle boot"
    text = client.get("/v2/models/topics").json()
    assert [t["datatype"] for t in text["inputs"]] == ["INT64", "BYTES"]
    assert text["parameters"]["class_names"] == ["kittens", "rockets", "recipes"]
    assert client.get("/v2/models/topics/ready").json() == {"name": "topics", "ready": True}
    page = client.get("/")
    assert page.status_code == 200 and "/v2/models" in page.text and "<canvas" in page.text


def test_image_answers_match_predict(server, image_run, tmp_path, capsys):
    images = _images(3)
    path = tmp_path / "images.npy"
    np.save(path, images)
    expected = _predict(capsys, image_run, str(path))

    client = server.client
    pixels = (images.astype(np.float32) / np.float32(255.0))[:, None]
    response = _infer(client, "fashion", {"name": "input", "shape": [3, 1, 28, 28],
                                          "datatype": "FP32", "data": pixels.ravel().tolist()},
                      id="abc")
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["model_name"] == "fashion" and body["id"] == "abc"
    outputs = {o["name"]: o for o in body["outputs"]}
    assert outputs["logits"]["shape"] == [3, 10]
    probabilities = np.asarray(outputs["probabilities"]["data"]).reshape(3, 10)
    names = client.get("/v2/models/fashion").json()["parameters"]["class_names"]
    for row, ranked in zip(probabilities, expected):
        top = np.argsort(-row)[:3]
        assert [(names[i], round(float(row[i]), 4)) for i in top] == ranked

    upload = client.post("/v2/models/fashion/classify?top_k=3",
                         files={"file": ("images.npy", _npy(images))})
    assert upload.status_code == 200, upload.text
    assert _served(upload.json()["predictions"]) == expected
    # A PNG of the same pixels gives the same answer as the .npy row.
    png = client.post("/v2/models/fashion/classify?top_k=3",
                      files={"file": ("one.png", _png(images[1]), "image/png")})
    assert _served(png.json()["predictions"]) == expected[1:2]


def test_text_answers_match_predict(server, text_run, capsys):
    client = server.client
    for text in ("launch the booster into orbit", "meow purr whiskers and yarn",
                 "the oven and the butter and garlic then whisk"):
        expected = _predict(capsys, text_run, text)
        as_json = client.post("/v2/models/topics/classify?top_k=3", json={"text": text})
        as_form = client.post("/v2/models/topics/classify?top_k=3", data={"text": text})
        assert _served(as_json.json()["predictions"]) == expected
        assert _served(as_form.json()["predictions"]) == expected
        v2 = _infer(client, "topics", {"name": "text", "shape": [1], "datatype": "BYTES",
                                       "data": [text]}, outputs=[{"name": "probabilities"}])
        assert [o["name"] for o in v2.json()["outputs"]] == ["probabilities"]
        row = np.asarray(v2.json()["outputs"][0]["data"])
        assert [("kittens", "rockets", "recipes")[int(np.argmax(row))]] == [expected[0][0][0]]
    assert expected[0][0][0] == "recipes"  # the model learnt the topics
    # Token ids (INT64) of the run's own vocabulary answer as the text does (BYTES).
    from bigmodel.data.text import WordVocabulary

    ids = WordVocabulary.load(text_run / "vocabulary.json").encode_batch([text])
    as_ids = _infer(client, "topics", {"name": "input", "shape": list(ids.shape),
                                       "datatype": "INT64", "data": ids.ravel().tolist()})
    as_text = _infer(client, "topics", {"name": "text", "shape": [1], "datatype": "BYTES",
                                        "data": [text]})
    assert as_ids.json()["outputs"] == as_text.json()["outputs"]


def _bad_requests(image: np.ndarray):
    """``(description, method, path, kwargs, status, words in the error)``."""
    pixels = (image.astype(np.float32) / 255.0).ravel().tolist()
    good = {"name": "input", "shape": [1, 1, 28, 28], "datatype": "FP32", "data": pixels}
    wav = io.BytesIO()
    from scipy.io import wavfile

    wavfile.write(wav, 8000, (np.sin(np.arange(800) / 5) * 8000).astype(np.int16))
    return [
        ("malformed JSON", "post", "/v2/models/fashion/infer",
         {"content": b'{"inputs": [', "headers": {"content-type": "application/json"}},
         400, "malformed JSON"),
        ("wrong shape", "post", "/v2/models/fashion/infer",
         {"json": {"inputs": [{**good, "shape": [1, 28, 28]}]}}, 400, "[N, 1, 28, 28]"),
        ("data not filling the shape", "post", "/v2/models/fashion/infer",
         {"json": {"inputs": [{**good, "shape": [2, 1, 28, 28]}]}}, 400, "needs 1568 values"),
        ("wrong datatype for the model", "post", "/v2/models/fashion/infer",
         {"json": {"inputs": [{**good, "datatype": "INT64"}]}}, 400, "takes FP32"),
        ("unknown datatype name", "post", "/v2/models/fashion/infer",
         {"json": {"inputs": [{**good, "datatype": "FLOAT"}]}}, 400, "unknown datatype"),
        ("strings as FP32 data", "post", "/v2/models/fashion/infer",
         {"json": {"inputs": [{**good, "data": ["x"] * 784}]}}, 400, "must be numbers"),
        ("pixels outside [0, 1]", "post", "/v2/models/fashion/infer",
         {"json": {"inputs": [{**good, "data": [300.0] * 784}]}}, 400, "[0, 1]"),
        ("token id outside the vocabulary", "post", "/v2/models/topics/infer",
         {"json": {"inputs": [{"name": "input", "shape": [1, 2], "datatype": "INT64",
                               "data": [1, 10 ** 6]}]}}, 400, "token ids"),
        ("unknown output", "post", "/v2/models/fashion/infer",
         {"json": {"inputs": [good], "outputs": [{"name": "embedding"}]}}, 400, "unknown output"),
        ("payload over the limit", "post", "/v2/models/fashion/infer",
         {"content": b"[" + b"0.5, " * 300_000 + b"0]",
          "headers": {"content-type": "application/json"}}, 413, "over the limit"),
        ("non-image upload", "post", "/v2/models/fashion/classify",
         {"files": {"file": ("notes.txt", b"hello, not a picture")}}, 415, "not an image"),
        ("corrupt PNG", "post", "/v2/models/fashion/classify",
         {"files": {"file": ("x.png", b"\x89PNG\r\n\x1a\nbroken")}}, 415, "cannot decode"),
        ("pickled .npy", "post", "/v2/models/fashion/classify",
         {"files": {"file": ("x.npy", _npy(np.array([{"a": 1}], dtype=object)))}}, 400,
         "pickle"),
        ("malformed multipart form", "post", "/v2/models/fashion/classify",
         {"content": b"--xyz\r\nnot a header line\r\n",
          "headers": {"content-type": "multipart/form-data; boundary=xyz"}}, 400, "multipart"),
        ("multipart form without boundary", "post", "/v2/models/fashion/classify",
         {"content": b"x", "headers": {"content-type": "multipart/form-data"}}, 400,
         "boundary"),
        ("form without text", "post", "/v2/models/topics/classify", {"data": {"txt": "a"}},
         400, "no 'text' field"),
        ("empty form text", "post", "/v2/models/topics/classify", {"data": {"text": ""}}, 400,
         "empty"),
        ("text for an image model", "post", "/v2/models/fashion/classify",
         {"json": {"text": "hello"}}, 415, "not texts"),
        ("empty text", "post", "/v2/models/topics/classify", {"json": {"text": "   "}}, 400,
         "empty"),
        ("empty BYTES text", "post", "/v2/models/topics/infer",
         {"json": {"inputs": [{"name": "text", "shape": [1], "datatype": "BYTES",
                               "data": [""]}]}}, 400, "empty"),
        ("WAV to a text model", "post", "/v2/models/topics/classify",
         {"files": {"file": ("a.wav", wav.getvalue())}}, 415, "classifies texts"),
        ("unknown model", "post", "/v2/models/nope/infer", {"json": {"inputs": [good]}}, 404,
         "unknown model 'nope'"),
        ("unknown model metadata", "get", "/v2/models/nope", {}, 404, "fashion, topics"),
        ("unknown path", "get", "/v3/anything", {}, 404, "Not Found: GET /v3/anything"),
        ("wrong method", "get", "/v2/models/fashion/infer", {}, 405, "Method Not Allowed"),
        ("bad top_k", "post", "/v2/models/topics/classify?top_k=0", {"json": {"text": "a"}},
         400, "top_k"),
        ("top_k not a number", "post", "/v2/models/topics/classify?top_k=x",
         {"json": {"text": "a"}}, 400, "top_k"),
    ]


def test_bad_inputs_are_4xx_and_the_server_keeps_serving(server):
    client = server.client
    image = _images(1)[0]
    good = {"name": "input", "shape": [1, 1, 28, 28], "datatype": "FP32",
            "data": (image.astype(np.float32) / 255.0).ravel().tolist()}
    reference = _infer(client, "fashion", good).json()
    for description, method, path, kwargs, status, words in _bad_requests(image):
        response = getattr(client, method)(path, **kwargs)
        assert response.status_code == status, (description, response.text)
        assert words in response.json()["error"], (description, response.json())
        assert _infer(client, "fashion", good).json() == reference, description


def test_wav_of_the_wrong_rate_is_refused(tmp_path):
    from scipy.io import wavfile

    from bigmodel.data.audio import load_clip
    from bigmodel.errors import DataError

    served = ServedModel.__new__(ServedModel)  # only the WAV conversion is under test
    served.name, served.sample_rate, served.num_samples = "words", 16000, 16000
    served.input_spec = {"long_clips": "error"}
    clip = (np.sin(np.arange(8000) / 3) * 8000).astype(np.int16)
    for rate, ok in ((8000, False), (16000, True)):
        buffer = io.BytesIO()
        wavfile.write(buffer, rate, clip)
        if ok:
            row = served.audio_from_wav(buffer.getvalue())
            assert row.shape == (16000,) and row.dtype == torch.float32
            path = tmp_path / "clip.wav"  # the training path reads files: same samples
            path.write_bytes(buffer.getvalue())
            np.testing.assert_array_equal(row.numpy(), load_clip(path, 16000, 16000))
        else:
            with pytest.raises(DataError, match="8000 Hz.*16000 Hz"):
                served.audio_from_wav(buffer.getvalue())


async def _answers(served, rows, sizes: list, concurrent: bool) -> list[torch.Tensor]:
    """Rows through a batcher one after the other, or all submitted at once."""
    batcher = DynamicBatcher(served.forward, max_batch=8, max_delay=0.05,
                             observe=lambda size, waits: sizes.append(size))
    try:
        if concurrent:
            return await batcher.submit_many(rows)
        return [await batcher.submit(row) for row in rows]
    finally:
        await batcher.close()


def test_batched_answers_are_bit_equal_to_answers_alone(image_run, text_run):
    """Rows answered alone and the same rows gathered into batches give identical bits (rows of
    a group are padded to ``min_rows``, see bigmodel.serve.batcher)."""
    for run, rows in ((image_run, [torch.from_numpy(_images(24)[i, None] / np.float32(255))
                                   for i in range(24)]), (text_run, None)):
        served = ServedModel(run)
        if rows is None:  # texts of several lengths: grouped by shape inside one cycle
            rows = [served.encode_text(" ".join(["purr meow launch the oven"] * (1 + i % 3)))
                    for i in range(24)]
        sizes = []
        alone = asyncio.run(_answers(served, rows, sizes, concurrent=False))
        assert set(sizes) == {1}
        sizes.clear()
        batched = asyncio.run(_answers(served, rows, sizes, concurrent=True))
        assert sum(sizes) == 24 and max(sizes) == (8 if run == image_run else 3)  # batched
        for one, many in zip(alone, batched):
            assert torch.equal(one, many)
        # Against the model called directly: the same bits at 4+ rows, within rounding alone.
        direct = served.forward(torch.stack(rows[:8])) if rows[0].shape == rows[7].shape \
            else None
        if direct is not None:
            assert torch.equal(direct, torch.stack(batched[:8]))
        single = served.forward(rows[0][None])[0]
        torch.testing.assert_close(single, alone[0], rtol=1e-5, atol=1e-6)


def test_concurrent_http_requests_batch_and_match(server):
    client = server.client
    images = _images(12, seed=3)
    bodies = [{"inputs": [{"name": "input", "shape": [1, 1, 28, 28], "datatype": "FP32",
                           "data": (image / np.float32(255)).ravel().tolist()}]}
              for image in images]
    alone = [client.post("/v2/models/fashion/infer", json=body).json() for body in bodies]
    before = _metric(client, "bigmodel_batch_size_count", model="fashion")
    bad = [(kwargs, status) for _, method, path, kwargs, status, _ in _bad_requests(images[0])
           if method == "post" and path == "/v2/models/fashion/infer"]

    def send(item):
        kwargs, _ = item if isinstance(item, tuple) else ({"json": item}, 200)
        return httpx.post(server.url + "/v2/models/fashion/infer", timeout=30, **kwargs)

    mixed = [item for pair in zip(bodies, bad + bad[:12 - len(bad)]) for item in pair]
    with ThreadPoolExecutor(16) as pool:  # good and bad requests in flight together
        answers = list(pool.map(send, mixed))
    together = [a.json() for item, a in zip(mixed, answers) if not isinstance(item, tuple)]
    assert together == alone  # exact floats: bit-equal logits and probabilities
    for (_, status), answer in zip(mixed[1::2], answers[1::2]):
        assert answer.status_code == status, answer.text
    passes = _metric(client, "bigmodel_batch_size_count", model="fashion") - before
    assert passes < 12  # some rows shared a forward pass


def _metric(client, name: str, **labels) -> float:
    text = client.get("/metrics").text
    total = 0.0
    for line in text.splitlines():
        if line.startswith(name + "{") and all(f'{k}="{v}"' in line for k, v in labels.items()):
            total += float(line.rsplit(" ", 1)[1])
    return total


def test_metrics_count_requests_errors_batches(server):
    client = server.client
    route = "/v2/models/{name}/classify"
    counts = [_metric(client, "bigmodel_requests_total", route=route, model="topics"),
              _metric(client, "bigmodel_request_errors_total", route=route, model="topics"),
              _metric(client, "bigmodel_inference_rows_total", model="topics"),
              _metric(client, "bigmodel_request_latency_seconds_count", route=route,
                      model="topics"),
              _metric(client, "bigmodel_queue_seconds_count", model="topics")]
    assert client.post("/v2/models/topics/classify", json={"text": "orbit"}).status_code == 200
    assert client.post("/v2/models/topics/classify", json={"text": ""}).status_code == 400
    after = [_metric(client, "bigmodel_requests_total", route=route, model="topics"),
             _metric(client, "bigmodel_request_errors_total", route=route, model="topics"),
             _metric(client, "bigmodel_inference_rows_total", model="topics"),
             _metric(client, "bigmodel_request_latency_seconds_count", route=route,
                     model="topics"),
             _metric(client, "bigmodel_queue_seconds_count", model="topics")]
    assert [b - a for a, b in zip(counts, after)] == [2, 1, 1, 2, 1]
    client.get("/v2/models/made-up-name")  # unknown names never become label values
    assert "made-up-name" not in client.get("/metrics").text


def test_repository_loading_states(image_run, tmp_path):
    (tmp_path / "broken").mkdir()
    repository = ModelRepository([image_run, tmp_path / "broken"])
    with pytest.raises(RequestError) as loading:
        repository.get("fashion")
    assert loading.value.status == 503 and "loading" in str(loading.value)
    repository.load_all()
    assert repository.get("fashion").served.kind == "image"
    with pytest.raises(RequestError) as failed:
        repository.get("broken")
    assert failed.value.status == 503 and "model.json" in str(failed.value)
    assert not repository.ready
    with pytest.raises(RequestError) as unknown:
        repository.get("other")
    assert unknown.value.status == 404
    with pytest.raises(ConfigError, match="two models are named 'fashion'"):
        ModelRepository([image_run, image_run])
    with pytest.raises(ConfigError, match="is not a directory"):
        ModelRepository([tmp_path / "missing"])
    (tmp_path / "bad name").mkdir()
    with pytest.raises(ConfigError, match="model name 'bad name'"):
        ModelRepository([tmp_path / "bad name"])


def test_cli_serve_runs_and_refuses_bad_arguments(image_run, capsys, monkeypatch):
    import socket
    import threading

    import uvicorn

    assert main(["serve", str(image_run), "--max-batch", "0"]) == 2
    assert "max_batch must be an int >= 1" in capsys.readouterr().err
    assert main(["serve", str(image_run), "--port", "70000"]) == 2
    assert "--port must be in 0..65535" in capsys.readouterr().err

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    answers = {}

    def run_briefly(app, host, port, **options):
        """uvicorn.run as the command calls it, stopped after one request per endpoint."""
        server = uvicorn.Server(uvicorn.Config(app, host=host, port=port, log_level="warning"))
        thread = threading.Thread(target=server.run, daemon=True)
        thread.start()
        url = f"http://{host}:{port}"
        try:
            for _ in range(600):
                with contextlib.suppress(httpx.TransportError):
                    if httpx.get(url + "/v2/health/ready", timeout=2).status_code == 200:
                        break
                time.sleep(0.05)
            answers["classify"] = httpx.post(url + "/v2/models/fashion/classify?top_k=2",
                                             files={"file": ("a.png", _png(_images(1)[0]))},
                                             timeout=10)
            answers["oversize"] = httpx.post(url + "/v2/models/fashion/infer",
                                             content=b"x" * 2_000_000, timeout=10)
        finally:
            server.should_exit = True
            thread.join(timeout=10)

    monkeypatch.setattr(uvicorn, "run", run_briefly)
    assert main(["serve", str(image_run), "--port", str(port), "--device", "cpu",
                 "--max-body-mb", "1"]) == 0
    assert answers["classify"].status_code == 200
    assert len(answers["classify"].json()["predictions"][0]) == 2
    assert answers["oversize"].status_code == 413  # --max-body-mb reached the server


def test_client_and_explanations(server, image_run, tmp_path):
    from PIL import Image

    from bigmodel.serve import Client

    images = _images(2, seed=7)
    path = tmp_path / "shoe.png"
    path.write_bytes(_png(images[0]))
    with Client(server.url) as client:
        assert client.live() and client.ready() and client.ready("topics")
        assert [m["name"] for m in client.models()] == ["fashion", "topics"]
        outputs = client.infer("fashion", images[:, None] / np.float32(255))
        assert outputs["probabilities"].shape == (2, 10)
        ranked = client.classify("fashion", image=path, top_k=3)[0]
        top = int(np.argmax(outputs["probabilities"][0]))
        assert ranked[0]["index"] == top
        assert ranked[0]["probability"] == pytest.approx(outputs["probabilities"][0, top])
        texts = client.infer("topics", ["launch the booster", "purr meow"])["logits"]
        assert texts.shape == (2, 3) and client.classify("topics", text="orbit")[0][0]["class"]
        with pytest.raises(RequestError) as unknown:
            client.classify("nope", text="x")
        assert unknown.value.status == 404

        explained = client.explain("fashion", image=path)
        assert explained["method"] == "integrated_gradients" and explained["target"] == top
        # Integrated gradients' completeness: the attributions add up to the target logit's
        # change from the black baseline (the model called directly, not through the server),
        # up to the 50-step quadrature's error.
        model = ServedModel(image_run).model
        x = torch.from_numpy(images[:1, None] / np.float32(255))
        with torch.no_grad():
            change = (model(x) - model(torch.zeros_like(x)))[0, top].item()
        assert explained["attributions"].shape == (1, 28, 28)
        assert float(explained["attributions"].sum()) == pytest.approx(change, rel=1e-2,
                                                                       abs=1e-3)
        picture = Image.open(io.BytesIO(explained["png"]))
        assert picture.format == "PNG" and picture.size == (224, 224)
        saliency = client.explain("fashion", image=path, method="saliency", target=3)
        assert saliency["target"] == 3 and (saliency["attributions"] >= 0).all()

        words = client.explain("topics", text="launch the booster")
        assert words["tokens"] == ["launch", "the", "booster"]
        assert words["attributions"].shape == (3,)
        for params, message in (({"method": "magic"}, "unknown method 'magic'"),
                                ({"target": 3}, "0..2"), ({"method": "gradcam"}, "gradcam")):
            with pytest.raises(RequestError, match=message) as refused:
                client.explain("topics", text="orbit", **params)
            assert refused.value.status == 400


def test_a_failing_forward_pass_is_a_json_500_and_the_server_recovers(server):
    entry = server.app.app.state.repository.get("topics")
    forward = entry.batcher.run

    def broken(batch):
        raise RuntimeError("simulated kernel failure")

    entry.batcher.run = broken
    try:
        failed = server.client.post("/v2/models/topics/classify", json={"text": "orbit"})
    finally:
        entry.batcher.run = forward
    assert failed.status_code == 500
    assert failed.json() == {"error": "internal error (RuntimeError); see the server log"}
    assert server.client.post("/v2/models/topics/classify",
                              json={"text": "orbit"}).status_code == 200
