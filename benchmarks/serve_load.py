"""Load test of ``bigmodel serve`` (dynamic batching) against a per-request FastAPI endpoint over
the same model, on loopback only.

    python benchmarks/serve_load.py [--requests 2000] [--concurrency 1 8 32] [--max-seconds 120]

The seed CNN (``seed-cnn``, or ``--model``; random weights: speed does not depend on training) is
saved as a run directory. Two servers run in their own processes on 127.0.0.1 with ``--threads`` torch threads
each: ``bigmodel serve RUN`` (v2 ``/infer``, batched) and the baseline written here (FastAPI +
uvicorn, one forward pass per request in FastAPI's thread pool, the same JSON body). The load
generator (httpx, asyncio) sends ``--requests`` one-image requests per concurrency level to each,
interleaved, bounded by ``--max-seconds`` per level, and records requests/s, p50/p99 latency and
failed requests (non-200 or a wrong answer: every reply is checked against the model run
locally). Results: ``benchmarks/out/serve_load.json`` and a Markdown table on stdout.

``--in-process`` runs both servers in threads of this process (the smoke test's setting: faster to
start, but the client shares the GIL with them: not for reporting).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from starlette.requests import Request  # resolved by FastAPI from this module (baseline_app)

BENCH_DIR = Path(__file__).resolve().parent
ROOT = BENCH_DIR.parent


def make_run(directory: Path, model: str = "seed-cnn") -> Path:
    """A run directory of a registered 28x28 gray image classifier with random weights."""
    from bigmodel.models import create_model, save_model

    torch.manual_seed(0)
    save_model(create_model(model), directory, metadata={
        "class_names": [str(i) for i in range(10)],
        "input": {"channels": 1, "height": 28, "width": 28}})
    return directory


def make_int8_stage(run_dir: Path, images: np.ndarray) -> Path:
    """``run_dir/compressed/int8``: the run's model quantized as ``bigmodel compress --quantize
    int8`` does (static int8 for a CNN, calibrated on ``images``), read by ``serve --int8``."""
    from bigmodel.compress import quantize_int8
    from bigmodel.models import load_model, read_model_spec

    calibration = torch.from_numpy(images[:, None])
    int8 = quantize_int8(load_model(run_dir).eval(), calibration[:1], calibration)
    stage = run_dir / "compressed" / "int8"
    int8.save(stage, metadata=read_model_spec(run_dir)["metadata"])
    return stage


def baseline_app(run_dir: Path):
    """The per-request endpoint: the same v2 JSON body parsed and the reply written by the same
    functions as ``bigmodel serve`` (``parse_json`` / ``json_bytes``: orjson where installed), one
    forward pass per request in FastAPI's thread pool."""
    from fastapi import FastAPI, Response
    from starlette.concurrency import run_in_threadpool

    from bigmodel.compress.saving import load_any
    from bigmodel.serve.protocol import json_bytes, parse_json

    # An int8 stage too: the same model as the batched server's, with the same ONNX Runtime
    # threads (the server's torch thread count; ONNX Runtime's default would spin on every core).
    model = load_any(run_dir, threads=torch.get_num_threads())
    app = FastAPI()

    def forward(tensor: dict) -> torch.Tensor:
        x = torch.tensor(tensor["data"], dtype=torch.float32).reshape(tensor["shape"])
        with torch.inference_mode():
            return model(x).float()

    @app.post("/v2/models/{name}/infer")
    async def infer(name: str, request: Request):
        tensor = parse_json(await request.body())["inputs"][0]
        logits = await run_in_threadpool(forward, tensor)
        return Response(json_bytes({"model_name": name, "outputs": [
            {"name": "logits", "datatype": "FP32", "shape": list(logits.shape),
             "data": logits.flatten().tolist()}]}), media_type="application/json")

    return app


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def start_servers(run_dir: Path, threads: int, max_batch: int, max_delay_ms: float,
                  in_process: bool, int8: bool = False, workers: int = 1):
    """``({"batched": url, "per-request": url}, stop(), {server: pid or None})``; with ``int8``
    both serve the run's int8 stage (``serve --int8``; the baseline loads the same folder)."""
    served = run_dir / "compressed" / "int8" if int8 else run_dir
    if in_process:
        import threading

        import uvicorn

        from bigmodel.serve import BackgroundServer

        batched = BackgroundServer([("run", served)], max_batch=max_batch,
                                   max_delay_ms=max_delay_ms)
        batched.__enter__()
        port = free_port()
        server = uvicorn.Server(uvicorn.Config(baseline_app(served), host="127.0.0.1",
                                               port=port, log_level="warning"))
        thread = threading.Thread(target=server.run, daemon=True)
        thread.start()

        def stop():
            batched.__exit__(None, None, None)
            server.should_exit = True
            thread.join(timeout=10)

        return ({"batched": batched.url, "per-request": f"http://127.0.0.1:{port}"}, stop,
                {"batched": None, "per-request": None})
    env = {**os.environ, "OMP_NUM_THREADS": str(threads)}
    ports = free_port(), free_port()
    processes = [
        subprocess.Popen([sys.executable, "-m", "bigmodel", "serve", str(run_dir), "--port",
                          str(ports[0]), "--device", "cpu", "--max-batch", str(max_batch),
                          "--max-delay-ms", str(max_delay_ms), "--workers", str(workers),
                          *(["--int8"] if int8 else [])], env=env,
                         stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL),
        subprocess.Popen([sys.executable, __file__, "--baseline-server", str(served), "--port",
                          str(ports[1]), "--threads", str(threads)], env=env,
                         stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)]

    def stop():
        for process in processes:
            process.terminate()
        for process in processes:
            process.wait(timeout=30)

    return ({"batched": f"http://127.0.0.1:{ports[0]}",
             "per-request": f"http://127.0.0.1:{ports[1]}"}, stop,
            {"batched": processes[0].pid, "per-request": processes[1].pid})


def cpu_seconds(pid: int | None) -> float | None:
    """CPU seconds (user + system) used so far by a server process and its workers."""
    if pid is None:
        return None
    import psutil

    process = psutil.Process(pid)
    total = 0.0
    for member in [process, *process.children(recursive=True)]:
        with contextlib.suppress(psutil.NoSuchProcess):
            times = member.cpu_times()
            total += times.user + times.system
    return total


def wait_ready(urls: dict, timeout: float = 120.0) -> None:
    import httpx

    deadline = time.monotonic() + timeout
    for url in urls.values():
        while True:
            try:
                if httpx.post(url + "/v2/models/run/infer", json=_body(np.zeros((28, 28))),
                              timeout=5).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(f"server at {url} did not answer within {timeout:.0f} s")
            time.sleep(0.2)


def batches(url: str) -> tuple[float, float]:
    """``(forward passes, rows)`` so far, from the batched server's ``/metrics``."""
    import httpx

    values = {}
    for line in httpx.get(url + "/metrics", timeout=10).text.splitlines():
        if line.startswith(("bigmodel_batch_size_count{", "bigmodel_batch_size_sum{")):
            values[line.split("{")[0]] = float(line.rsplit(" ", 1)[1])
    return values.get("bigmodel_batch_size_count", 0.0), values.get("bigmodel_batch_size_sum", 0.0)


def _body(image: np.ndarray) -> dict:
    return {"inputs": [{"name": "input", "shape": [1, 1, 28, 28], "datatype": "FP32",
                        "data": image.astype(np.float32).ravel().tolist()}]}


class _Connection:
    """One keep-alive HTTP/1.1 connection: the request bytes are built once, the reply is read by
    its Content-Length. A lean client (no httpx) so that the load generator, which shares the
    machine's cores with the servers, spends far less CPU per request than the servers do."""

    def __init__(self, reader, writer) -> None:
        self.reader, self.writer = reader, writer

    @classmethod
    async def open(cls, host: str, port: int) -> _Connection:
        import socket as socket_module

        reader, writer = await asyncio.open_connection(host, port)
        writer.get_extra_info("socket").setsockopt(socket_module.IPPROTO_TCP,
                                                   socket_module.TCP_NODELAY, 1)
        return cls(reader, writer)

    async def post(self, request: bytes) -> tuple[int, bytes]:
        self.writer.write(request)
        head = await self.reader.readuntil(b"\r\n\r\n")
        status = int(head[9:12])
        length = 0
        for line in head.split(b"\r\n")[1:]:
            if line[:15].lower() == b"content-length:":
                length = int(line[15:])
        return status, await self.reader.readexactly(length)

    def close(self) -> None:
        self.writer.close()


def _request_bytes(host: str, port: int, path: str, body: bytes) -> bytes:
    return (f"POST {path} HTTP/1.1\r\nhost: {host}:{port}\r\n"
            f"content-type: application/json\r\ncontent-length: {len(body)}\r\n\r\n"
            ).encode() + body


_BODIES: dict[int, list[bytes]] = {}


async def load(url: str, images: np.ndarray, expected: np.ndarray, requests: int,
               concurrency: int, max_seconds: float) -> dict:
    """Send ``requests`` requests with ``concurrency`` in flight (one keep-alive connection
    each); latencies and failures (non-200, a dropped connection or a wrong answer)."""
    from urllib.parse import urlsplit

    parts = urlsplit(url)
    host, port = parts.hostname, parts.port
    path = "/v2/models/run/infer"
    key = id(images)  # the client's JSON: once per image set, outside the timed part
    if key not in _BODIES:
        _BODIES[key] = [json.dumps(_body(image)).encode() for image in images]
    requests_bytes = [_request_bytes(host, port, path, body) for body in _BODIES[key]]
    latencies, failures, sent = [], 0, 0
    deadline = time.monotonic() + max_seconds

    async def worker():
        nonlocal failures, sent
        connection = None
        while sent < requests and time.monotonic() < deadline:
            index = sent % len(images)
            sent += 1
            started = time.perf_counter()
            try:
                if connection is None:
                    connection = await _Connection.open(host, port)
                status, body = await connection.post(requests_bytes[index])
                ok = status == 200 and np.allclose(
                    json.loads(body)["outputs"][0]["data"], expected[index], atol=1e-4)
            except (OSError, asyncio.IncompleteReadError, ValueError, KeyError):
                ok = False
                if connection is not None:
                    connection.close()
                connection = None
            latencies.append(time.perf_counter() - started)
            failures += not ok
        if connection is not None:
            connection.close()

    started = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return {"latencies": latencies, "failed": failures, "seconds": time.perf_counter() - started}


def summary(parts: list[dict]) -> dict:
    """Requests/s (all requests over the summed seconds) and p50/p99 of the parts of a level."""
    latencies = sorted(x for part in parts for x in part["latencies"])
    seconds = sum(part["seconds"] for part in parts)
    return {"requests": len(latencies), "failed": sum(part["failed"] for part in parts),
            "seconds": round(seconds, 3), "requests_per_s": round(len(latencies) / seconds, 1),
            "p50_ms": round(1000 * statistics.median(latencies), 2),
            "p99_ms": round(1000 * latencies[min(len(latencies) - 1,
                                                 int(0.99 * len(latencies)))], 2)}


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--requests", type=int, default=2000, help="requests per level and server")
    parser.add_argument("--concurrency", type=int, nargs="+", default=[1, 8, 32])
    parser.add_argument("--max-seconds", type=float, default=120.0,
                        help="time bound per level and server")
    parser.add_argument("--threads", type=int, default=1, help="torch threads per server")
    parser.add_argument("--rounds", type=int, default=4,
                        help="turns per level: the servers alternate, so both meet the same load")
    parser.add_argument("--max-batch", type=int, default=64)
    parser.add_argument("--max-delay-ms", type=float, default=0.0)
    parser.add_argument("--int8", action="store_true",
                        help="serve the model's int8 stage (ONNX Runtime), both servers")
    parser.add_argument("--workers", type=int, default=1,
                        help="processes of the batched server (serve --workers)")
    parser.add_argument("--model", default="seed-cnn",
                        help="a registered 28x28 gray image classifier (seed-cnn, vit, ...)")
    parser.add_argument("--in-process", action="store_true")
    parser.add_argument("--out", type=Path, default=BENCH_DIR / "out")
    parser.add_argument("--baseline-server", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--port", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.baseline_server is not None:  # the per-request server's own process
        import uvicorn

        torch.set_num_threads(args.threads)
        uvicorn.run(baseline_app(args.baseline_server), host="127.0.0.1", port=args.port,
                    log_level="warning", access_log=False)
        return {}

    with tempfile.TemporaryDirectory() as tmp:
        run_dir = make_run(Path(tmp) / "run", args.model)
        from bigmodel.compress.saving import load_any

        rng = np.random.default_rng(0)
        images = rng.random((64, 28, 28), dtype=np.float32)
        if args.int8:
            make_int8_stage(run_dir, images)
        model = load_any(run_dir / "compressed" / "int8" if args.int8 else run_dir, threads=1)
        with torch.inference_mode():
            expected = np.stack([model(torch.from_numpy(image)[None, None])[0].numpy()
                                 for image in images])
        urls, stop, pids = start_servers(run_dir, args.threads, args.max_batch,
                                         args.max_delay_ms, args.in_process, args.int8,
                                         args.workers)
        results = []
        try:
            wait_ready(urls)
            for concurrency in args.concurrency:
                # The servers take turns (rounds) so that both see the same load from the
                # machine's other jobs; each round's requests and seconds add up.
                parts = {server: [] for server in urls}
                cpu = {server: 0.0 for server in urls}
                client_cpu = dict(cpu)
                passes = {server: [0.0, 0.0] for server in urls}
                for round_index in range(args.rounds):
                    count = args.requests // args.rounds + (
                        round_index < args.requests % args.rounds)
                    for server, url in urls.items():
                        before = batches(url) if server == "batched" else (0.0, 0.0)
                        cpu_before, client_before = cpu_seconds(pids[server]), time.process_time()
                        parts[server].append(asyncio.run(load(
                            url, images, expected, count, concurrency,
                            args.max_seconds / args.rounds)))
                        if cpu_before is not None:
                            cpu[server] += cpu_seconds(pids[server]) - cpu_before
                        client_cpu[server] += time.process_time() - client_before
                        after = batches(url) if server == "batched" else (0.0, 0.0)
                        passes[server][0] += after[0] - before[0]
                        passes[server][1] += after[1] - before[1]
                for server in urls:
                    row = summary(parts[server])
                    if pids[server] is not None:  # CPU per request: what the cores pay
                        row["server_cpu_ms"] = round(1000 * cpu[server] / row["requests"], 3)
                        row["client_cpu_ms"] = round(
                            1000 * client_cpu[server] / row["requests"], 3)
                    if server == "batched":  # rows per forward pass, from the server's metrics
                        row["mean_batch"] = round(passes[server][1] / max(1, passes[server][0]),
                                                  1)
                    results.append({"server": server, "concurrency": concurrency, **row})
                    print(json.dumps(results[-1]), flush=True)
        finally:
            stop()
    report = {"script": "benchmarks/serve_load.py", "argv": sys.argv[1:] if argv is None
              else list(argv), "model": args.model, "int8": args.int8,
              "workers": args.workers, "load_average": [round(x, 2) for x in os.getloadavg()],
              "torch": torch.__version__, "cpu_count": os.cpu_count(),
              "results": results}
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "serve_load.json").write_text(json.dumps(report, indent=2) + "\n")
    print("\n| concurrency | server | requests/s | p50 ms | p99 ms | failed / sent | rows per pass "
          "| server CPU ms / request | client CPU ms / request |")
    print("| --- | --- | --- | --- | --- | --- | --- | --- | --- |")
    for row in results:
        print(f"| {row['concurrency']} | {row['server']} | {row['requests_per_s']} | "
              f"{row['p50_ms']} | {row['p99_ms']} | {row['failed']} / {row['requests']} | "
              f"{row.get('mean_batch', 1)} | {row.get('server_cpu_ms', '-')} | "
              f"{row.get('client_cpu_ms', '-')} |")
    return report


if __name__ == "__main__":
    main()
