"""``bigmodel serve`` with a language-model and a seq2seq run: ``/generate``, ``/translate`` and
Open Inference Protocol ``/infer`` (BYTES in, BYTES out) answer exactly what ``bigmodel generate``
/ ``bigmodel translate`` print for the same inputs and seed; bounds and bad requests are 4xx naming
the problem while the server keeps serving."""

from __future__ import annotations

import contextlib
import io
import time
from pathlib import Path

import pytest

pytest.importorskip("fastapi", reason="bigmodel serve needs the extra 'serve' (fastapi missing)")
httpx = pytest.importorskip("httpx", reason="the serve tests need httpx (extra 'serve')")

from bigmodel.cli.main import main  # noqa: E402
from bigmodel.errors import ConfigError  # noqa: E402
from bigmodel.serve import BackgroundServer  # noqa: E402
from bigmodel.serve.generation import LIMITS, GenerativeModel  # noqa: E402
from test_generate_translate import TINY_LM, TINY_SEQ2SEQ, _train  # noqa: E402

DATES = ["5 apr 23", "20230405", "4/5/2023", "12 dec 99"]
pytestmark = pytest.mark.usefixtures("one_torch_thread")


# Trained once per session: the browser test imports these fixtures and shares the runs (the
# servers only read them).
_RUNS: dict[str, Path] = {}


@pytest.fixture(scope="module")
def chars_run(tmp_path_factory) -> Path:
    from bigmodel.data.fortunes import find_fortunes_dir
    from bigmodel.errors import DataFileError

    try:
        find_fortunes_dir(None, ("debian",))
    except DataFileError as exc:
        pytest.skip(f"fortunes not installed: {exc}")
    if "chars" not in _RUNS:
        run_dir = tmp_path_factory.mktemp("lm") / "chars"
        _train("fortunes_char_gpt.yaml", run_dir, TINY_LM)
        _RUNS["chars"] = run_dir
    return _RUNS["chars"]


@pytest.fixture(scope="module")
def dates_run(tmp_path_factory) -> Path:
    if "dates" not in _RUNS:
        run_dir = tmp_path_factory.mktemp("s2s") / "dates"
        _train("seq2seq_dates.yaml", run_dir, TINY_SEQ2SEQ)
        _RUNS["dates"] = run_dir
    return _RUNS["dates"]


@pytest.fixture(scope="module")
def client(chars_run, dates_run):
    with BackgroundServer([chars_run, dates_run], max_delay_ms=1) as server, \
            httpx.Client(base_url=server.url, timeout=60) as http:
        for _ in range(600):
            if http.get("/v2/health/ready").status_code == 200:
                break
            time.sleep(0.05)
        assert http.get("/v2/health/ready").json() == {"ready": True}
        yield http


def _cli(*argv) -> str:
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        assert main([str(a) for a in argv]) == 0
    return out.getvalue()


def _samples(printed: str) -> list[str]:
    """The samples ``bigmodel generate`` printed (``--- sample i ---`` lines between them)."""
    lines = printed.rstrip("\n").split("\n")
    if not lines[0].startswith("--- sample 1 ---"):
        return ["\n".join(lines)]
    samples, current = [], None
    for line in lines:
        if line.startswith("--- sample "):
            current = []
            samples.append(current)
        else:
            current.append(line)
    return ["\n".join(sample) for sample in samples]


def test_metadata_names_the_kind_and_the_limits(client):
    kinds = {m["name"]: m["kind"] for m in client.get("/v2/models").json()["models"]}
    assert kinds == {"chars": "language_model", "dates": "seq2seq"}
    lm = client.get("/v2/models/chars").json()
    assert lm["inputs"] == [{"name": "prompt", "datatype": "BYTES", "shape": [-1]}]
    assert lm["outputs"] == [{"name": "text", "datatype": "BYTES", "shape": [-1]}]
    assert lm["parameters"]["kind"] == "language_model"
    assert lm["parameters"]["endpoint"] == "generate"
    assert lm["parameters"]["max_length"] == 16 and lm["parameters"]["limits"] == LIMITS
    s2s = client.get("/v2/models/dates").json()
    assert s2s["parameters"]["endpoint"] == "translate" and s2s["inputs"][0]["name"] == "text"


@pytest.mark.parametrize("options", [
    {"max_tokens": 40, "temperature": 0},  # greedy, sliding past the 16-character context
    {"max_tokens": 20, "temperature": 0.8, "top_k": 5, "seed": 7, "num_samples": 3}])
def test_generate_answers_what_the_command_prints(client, chars_run, options):
    flags = [part for key, value in options.items()
             for part in (f"--{key.replace('_', '-')}", value)]
    printed = _samples(_cli("generate", chars_run, "--prompt", "The ", *flags))
    answer = client.post("/v2/models/chars/generate", json={"prompt": "The ", **options})
    assert answer.status_code == 200, answer.text
    assert answer.json() == {"model_name": "chars", "kind": "language_model",
                             "samples": printed}
    assert all(len(sample) == 4 + options["max_tokens"] for sample in printed)
    # a list of prompts: each answered as alone (same seed per prompt); OIP BYTES in and out
    both = client.post("/v2/models/chars/generate", json={"prompt": ["The ", "The "], **options})
    assert both.json()["samples"] == [printed, printed]
    infer = client.post("/v2/models/chars/infer", json={
        "id": "g1", "inputs": [{"name": "prompt", "datatype": "BYTES", "shape": [1],
                                "data": ["The "]}], "parameters": options})
    assert infer.status_code == 200, infer.text
    assert infer.json() == {"model_name": "chars", "model_version": "1", "id": "g1", "outputs": [
        {"name": "text", "datatype": "BYTES", "shape": [1, len(printed)], "data": printed}]}


def test_python_client_generates_and_translates(chars_run, dates_run, client):
    from bigmodel.serve import Client
    from bigmodel.serve.protocol import RequestError

    with Client(str(client.base_url)) as python:
        samples = python.generate("chars", "The ", max_tokens=12, temperature=0.9, seed=5,
                                  num_samples=2)
        assert samples == client.post("/v2/models/chars/generate", json={
            "prompt": "The ", "max_tokens": 12, "temperature": 0.9, "seed": 5,
            "num_samples": 2}).json()["samples"]
        assert python.translate("dates", DATES[:2], beam=2) == client.post(
            "/v2/models/dates/translate", json={"texts": DATES[:2], "beam": 2}).json()[
            "translations"]
        assert python.translate("dates", DATES[0]) == python.translate("dates", DATES[:1])
        with pytest.raises(RequestError, match="at most 16") as refused:
            python.translate("dates", DATES[0], beam=17)
        assert refused.value.status == 400


def test_metrics_label_the_decoding_routes(client):
    from test_serve import _metric

    for route, name, body in (("generate", "chars", {"prompt": "The ", "max_tokens": 2}),
                              ("translate", "dates", {"text": DATES[0]})):
        label = {"route": "/v2/models/{name}/" + route, "model": name}
        before = _metric(client, "bigmodel_requests_total", **label)
        assert client.post(f"/v2/models/{name}/{route}", json=body).status_code == 200
        assert _metric(client, "bigmodel_requests_total", **label) == before + 1


def test_seeded_sampling_repeats_and_seeds_differ(client):
    body = {"prompt": "The ", "max_tokens": 24, "temperature": 1.0, "seed": 3, "num_samples": 2}
    first = client.post("/v2/models/chars/generate", json=body).json()["samples"]
    assert client.post("/v2/models/chars/generate", json=body).json()["samples"] == first
    other = client.post("/v2/models/chars/generate", json={**body, "seed": 4}).json()["samples"]
    assert other != first


@pytest.mark.parametrize("beam", [1, 3])
def test_translate_answers_what_the_command_prints(client, dates_run, beam):
    printed = _cli("translate", dates_run, *DATES, "--beam", beam).rstrip("\n").split("\n")
    assert len(printed) == len(DATES)
    answer = client.post("/v2/models/dates/translate", json={"texts": DATES, "beam": beam})
    assert answer.status_code == 200, answer.text
    assert answer.json() == {"model_name": "dates", "kind": "seq2seq", "translations": printed}
    one = client.post("/v2/models/dates/translate", json={"text": DATES[0], "beam": beam})
    assert one.json()["translations"] == printed[:1]
    if beam == 1:  # a text/plain body: one text per line (blank ones skipped), greedy
        lines = client.post("/v2/models/dates/translate", content="\n\n".join(DATES).encode(),
                            headers={"content-type": "text/plain"})
        assert lines.json()["translations"] == printed
    infer = client.post("/v2/models/dates/infer", json={
        "inputs": [{"name": "text", "datatype": "BYTES", "shape": [len(DATES)], "data": DATES}],
        "parameters": {"beam": beam}})
    assert infer.status_code == 200, infer.text
    assert infer.json()["outputs"] == [{"name": "text", "datatype": "BYTES",
                                        "shape": [len(DATES)], "data": printed}]


BAD = [
    ("chars", "generate", {"prompt": "The ", "max_tokens": LIMITS["max_tokens"] + 1}, 400,
     f"at most {LIMITS['max_tokens']}"),
    ("chars", "generate", {"prompt": "The ", "num_samples": LIMITS["num_samples"] + 1}, 400,
     f"at most {LIMITS['num_samples']}"),
    ("chars", "generate", {"prompt": ["The "] * (LIMITS["texts"] + 1)}, 400,
     f"at most {LIMITS['texts']}"),
    ("chars", "generate", {"prompt": "The ", "max_tokens": 0}, 400, "'max_tokens' must be"),
    ("chars", "generate", {"prompt": "The ", "max_tokens": "5"}, 400, "'max_tokens' must be"),
    ("chars", "generate", {"prompt": "The ", "temperature": -1}, 400, "'temperature'"),
    ("chars", "generate", {"prompt": "The ", "seed": -1}, 400, "'seed'"),
    ("chars", "generate", {"prompt": "The ", "beam": 2}, 400, "unknown field 'beam'"),
    ("chars", "generate", {"text": "The "}, 400, "unknown field 'text'"),
    ("chars", "generate", {"prompt": ""}, 400, "at least one character"),
    ("chars", "generate", {"prompt": "The \u20ac"}, 400, "not in the vocabulary"),
    ("chars", "generate", [1, 2], 400, "expected a JSON object"),
    ("chars", "translate", {"text": "5 apr 23"}, 400, "use POST /v2/models/chars/generate"),
    ("chars", "classify", {"text": "The cat"}, 400, "use POST /v2/models/chars/generate"),
    ("chars", "explain", {"text": "The cat"}, 400, "does not classify"),
    ("dates", "generate", {"prompt": "5"}, 400, "use POST /v2/models/dates/translate"),
    ("dates", "translate", {"text": "5 apr 23", "beam": LIMITS["beam"] + 1}, 400,
     f"at most {LIMITS['beam']}"),
    ("dates", "translate", {"text": "5 apr 23", "texts": ["x"]}, 400, 'one of "text"'),
    ("dates", "translate", {"texts": []}, 400, "no text given"),
    ("dates", "translate", {"texts": [1]}, 400, "expected a text or a list of texts"),
    ("dates", "translate", {"text": "  "}, 400, "text 1 is empty"),
    ("dates", "translate", {"text": "5 \u20ac"}, 400, "not in the source vocabulary"),
    ("dates", "translate", {"text": "5 apr 23", "max_length": 999}, 400, "at most 47"),
    ("dates", "infer", {"inputs": [{"name": "text", "datatype": "FP32", "shape": [1],
                                    "data": [1.0]}]}, 400, "takes BYTES texts"),
    ("dates", "infer", {"inputs": [{"name": "text", "datatype": "BYTES", "shape": [2],
                                    "data": ["5 apr 23"]}]}, 400, "needs 2 texts"),
    ("dates", "infer", {"inputs": [{"name": "text", "datatype": "BYTES", "shape": [1],
                                    "data": ["5 apr 23"]}], "parameters": {"beam": 99}}, 400,
     "at most 16"),
    ("dates", "infer", {"inputs": [{"name": "text", "datatype": "BYTES", "shape": [1],
                                    "data": ["5 apr 23"]}], "parameters": {"top_k": 2}}, 400,
     "unknown field 'top_k'"),
    ("dates", "infer", {"inputs": [{"name": "text", "datatype": "BYTES", "shape": [1],
                                    "data": ["5 apr 23"]}], "outputs": [{"name": "logits"}]},
     400, "one output, 'text'"),
    ("nope", "generate", {"prompt": "x"}, 404, "unknown model 'nope'"),
]


def test_bad_requests_are_refused_and_the_server_keeps_serving(client):
    good = client.post("/v2/models/dates/translate", json={"text": DATES[0]}).json()
    for name, route, body, status, words in BAD:
        response = client.post(f"/v2/models/{name}/{route}", json=body)
        assert response.status_code == status, (route, body, response.text)
        assert words in response.json()["error"], (route, body, response.json())
        assert client.get("/v2/models/dates/ready").status_code == 200
    assert client.post("/v2/models/dates/translate", json={"text": DATES[0]}).json() == good
    malformed = client.post("/v2/models/chars/generate", content=b"{not json",
                            headers={"content-type": "application/json"})
    assert malformed.status_code == 400 and "malformed JSON" in malformed.json()["error"]


def test_generative_model_refuses_a_classification_run(tmp_path):
    from bigmodel.models import create_model, save_model

    run_dir = tmp_path / "clf"
    save_model(create_model("seed-cnn"), run_dir,
               metadata={"task": "image_classification"})
    with pytest.raises(ConfigError, match="is an image_classification run, not a language-model"):
        GenerativeModel(run_dir)
