"""``bigmodel serve --workers 2``: the options reach every worker through the environment and
build the same app; with ``BIGMODEL_FULL_SERVE=1`` (CI: three Python processes importing torch take
~10-40 s on 2 cores) two real server processes on one loopback port (uvicorn's supervisor), each
answering correctly, ``/metrics`` summing both workers (prometheus multiprocess mode) whichever
worker answers the scrape, and Ctrl-C stopping them all and removing the metrics folder."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch

pytest.importorskip("fastapi", reason="bigmodel serve needs the extra 'serve' (fastapi missing)")
httpx = pytest.importorskip("httpx", reason="the serve tests need httpx (extra 'serve')")

from bigmodel.errors import ConfigError  # noqa: E402
from bigmodel.models import create_model, load_model, save_model  # noqa: E402
from bigmodel.serve.server import serve  # noqa: E402

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _workers(pid: int) -> list[int]:
    """Worker processes of the supervisor ``pid`` (spawned by multiprocessing)."""
    children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
    return [int(child) for child in children
            if b"spawn_main" in Path(f"/proc/{child}/cmdline").read_bytes()]


def _requests_counted(url: str) -> float:
    """Infer requests in one ``/metrics`` scrape, on a connection of its own."""
    text = httpx.get(url + "/metrics", timeout=10, headers={"connection": "close"}).text
    return sum(float(line.rsplit(" ", 1)[1]) for line in text.splitlines()
               if line.startswith("bigmodel_requests_total{") and "/infer" in line)


@pytest.mark.skipif(os.environ.get("BIGMODEL_FULL_SERVE") != "1" or not Path("/proc/self/task")
                    .is_dir(), reason="starts three server processes (~10-40 s): set "
                    "BIGMODEL_FULL_SERVE=1 (CI does); reads worker pids in /proc")
def test_two_workers_answer_and_metrics_sum_them(tmp_path):
    torch.manual_seed(0)
    run_dir = tmp_path / "tiny"
    save_model(create_model("seed-cnn"), run_dir,
               metadata={"input": {"channels": 1, "height": 28, "width": 28}})
    model = load_model(run_dir)
    port = _free_port()
    url = f"http://127.0.0.1:{port}"
    process = subprocess.Popen(
        [sys.executable, "-m", "bigmodel", "serve", str(run_dir), "--workers", "2", "--port",
         str(port), "--device", "cpu"], env={**os.environ, "OMP_NUM_THREADS": "1"},
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 120
        workers = []
        while time.monotonic() < deadline:  # both workers up and their models loaded
            workers = _workers(process.pid)
            try:
                ready = [httpx.get(url + "/v2/health/ready", timeout=2,
                                   headers={"connection": "close"}).status_code
                         for _ in range(4)]
            except httpx.TransportError:
                ready = []
            if len(workers) == 2 and ready == [200] * 4:
                break
            assert process.poll() is None, process.stderr.read().decode()
            time.sleep(0.2)
        assert len(workers) == 2
        metrics_dir = Path(dict(
            item.split(b"=", 1) for item in Path(f"/proc/{workers[0]}/environ").read_bytes()
            .split(b"\0") if b"=" in item)[b"PROMETHEUS_MULTIPROC_DIR"].decode())
        assert metrics_dir.is_dir()

        images = np.random.default_rng(0).random((12, 1, 1, 28, 28), dtype=np.float32)
        for image in images:  # a connection each: the kernel spreads them over the workers
            body = {"inputs": [{"name": "input", "shape": [1, 1, 28, 28], "datatype": "FP32",
                                "data": image.ravel().tolist()}], "outputs": [{"name": "logits"}]}
            # The readiness probes may all have reached one worker (the kernel picks one per
            # connection): another can still answer 503 "loading; try again shortly", as
            # documented, so the client tries again while that lasts.
            for _ in range(300):
                answer = httpx.post(url + "/v2/models/tiny/infer", json=body, timeout=30)
                if answer.status_code != 503 or "loading" not in answer.text:
                    break
                time.sleep(0.2)
            assert answer.status_code == 200, answer.text
            with torch.inference_mode():
                expected = model(torch.from_numpy(image))
            torch.testing.assert_close(torch.tensor(answer.json()["outputs"][0]["data"]),
                                       expected[0], rtol=0, atol=1e-6)
        # Each scrape may reach either worker: every one reports the sum over both.
        assert [_requests_counted(url) for _ in range(6)] == [12.0] * 6
        # Both workers served: each wrote its own metric files (named after its pid).
        assert {int(f.stem.rsplit("_", 1)[1]) for f in metrics_dir.glob("*.db")} <= set(workers)

        process.send_signal(signal.SIGINT)
        assert process.wait(timeout=60) == 0
        assert not metrics_dir.exists()
        assert not any(Path(f"/proc/{pid}").exists() for pid in workers)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()


def test_workers_are_checked_before_any_starts(tmp_path):
    with pytest.raises(ConfigError, match="--workers must be an int >= 1; received 0"):
        serve([tmp_path], workers=0)
    with pytest.raises(ConfigError, match="is not a directory"):
        serve([tmp_path / "missing"], workers=2)


def test_workers_get_the_options_through_the_environment(tmp_path, monkeypatch):
    import uvicorn

    from bigmodel.serve import server as server_module

    for name in ("a", "b"):
        save_model(create_model("seed-cnn"), tmp_path / name)
    seen = {}

    def capture(app, **options):  # uvicorn.run as serve() calls it with workers
        seen.update(app=app, options=options,
                    environment=os.environ[server_module.OPTIONS_VARIABLE],
                    metrics=Path(os.environ[server_module.METRICS_VARIABLE]))
        assert seen["metrics"].is_dir()
        seen["worker_app"] = server_module.app_from_environment()  # what each worker builds

    monkeypatch.setattr(uvicorn, "run", capture)
    serve([tmp_path / "a", tmp_path / "b"], port=0, workers=3, max_batch=7, max_delay_ms=2.0)
    assert seen["app"] == "bigmodel.serve.server:app_from_environment"
    assert seen["options"]["factory"] is True and seen["options"]["workers"] == 3
    repository = seen["worker_app"].app.state.repository
    assert sorted(repository.entries) == ["a", "b"]
    assert repository.batching == {"max_batch": 7, "max_delay": 0.002, "min_rows": 4}
    assert json.loads(seen["environment"])["freeze_gc"] is True
    # The environment is restored and the metrics folder removed once the supervisor returns.
    assert server_module.OPTIONS_VARIABLE not in os.environ
    assert server_module.METRICS_VARIABLE not in os.environ
    assert not seen["metrics"].exists()
