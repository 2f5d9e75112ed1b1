"""The ASGI front answers ``POST /v2/models/NAME/infer`` of a ready classifier itself (before
FastAPI's routing): every answer, good or refused, equals the one the FastAPI route gives, and the
request is counted in ``/metrics`` the same way."""

from __future__ import annotations

import asyncio

import numpy as np
import pytest
import torch

pytest.importorskip("fastapi", reason="bigmodel serve needs the extra 'serve' (fastapi missing)")
httpx = pytest.importorskip("httpx", reason="the serve tests need httpx (extra 'serve')")

from bigmodel.models import create_model, save_model  # noqa: E402
from bigmodel.serve.app import create_app  # noqa: E402

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def _requests() -> list[tuple[str, bytes | dict]]:
    image = np.random.default_rng(0).random((2, 1, 28, 28), dtype=np.float32)
    good = {"id": "7", "inputs": [{"name": "input", "shape": [2, 1, 28, 28], "datatype": "FP32",
                                   "data": image.ravel().tolist()}]}
    return [
        ("/v2/models/tiny/infer", good),
        ("/v2/models/tiny/infer", {**good, "outputs": [{"name": "probabilities"}]}),
        ("/v2/models/tiny/infer", b"{not json"),
        ("/v2/models/tiny/infer", {"inputs": [{**good["inputs"][0], "shape": [2, 1, 28, 27]}]}),
        ("/v2/models/tiny/infer", {"inputs": [{**good["inputs"][0], "datatype": "INT64"}]}),
        ("/v2/models/tiny/infer", {**good, "outputs": [{"name": "nope"}]}),
        ("/v2/models/unknown/infer", good),
    ]


async def _answers(app) -> tuple[list[tuple[int, dict]], str]:
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
        answers = []
        for path, body in _requests():
            options = {"content": body} if isinstance(body, bytes) else {"json": body}
            response = await client.post(path, **options)
            answers.append((response.status_code, response.json()))
        metrics = (await client.get("/metrics")).text
    return answers, metrics


def test_fast_infer_answers_as_the_fastapi_route(tmp_path):
    torch.manual_seed(0)
    save_model(create_model("seed-cnn"), tmp_path / "tiny")
    fast = create_app([tmp_path / "tiny"], max_delay_ms=0, load_in_background=False)
    routed = create_app([tmp_path / "tiny"], max_delay_ms=0, load_in_background=False)
    routed.fast = None  # every request through FastAPI
    answered_fast, front = [], fast.fast

    async def counted(scope, body):
        response = await front(scope, body)
        answered_fast.append(response is not None)
        return response

    fast.fast = counted
    fast_answers, fast_metrics = asyncio.run(_answers(fast))
    # The front answered every infer of the served model; the unknown model (404) and /metrics
    # went to FastAPI.
    assert answered_fast == [True] * 6 + [False, False]
    routed_answers, routed_metrics = asyncio.run(_answers(routed))
    assert fast_answers == routed_answers
    assert [status for status, _ in fast_answers] == [200, 200, 400, 400, 400, 400, 404]
    assert fast_answers[0][1]["id"] == "7" and len(fast_answers[1][1]["outputs"]) == 1
    for metrics in (fast_metrics, routed_metrics):  # counted alike, by route and model
        assert 'bigmodel_requests_total{model="tiny",route="/v2/models/{name}/infer"} 6.0' \
            in metrics
        assert 'bigmodel_request_errors_total{model="tiny",route="/v2/models/{name}/infer",' \
            'status="400"} 4.0' in metrics
