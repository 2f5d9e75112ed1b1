"""Run the server: :func:`serve` blocks serving run directories with uvicorn;
:class:`BackgroundServer` runs one in a thread on a loopback port (tests, benchmarks, notebooks)."""

from __future__ import annotations

import json
import os
import socket
import tempfile
import threading
import time

from bigmodel.errors import ConfigError
from bigmodel.serve.app import DEFAULT_MAX_BODY_BYTES, create_app
from bigmodel.serve.models import int8_stage, model_name

OPTIONS_VARIABLE = "BIGMODEL_SERVE_OPTIONS"  # create_app's arguments, for --workers processes
METRICS_VARIABLE = "PROMETHEUS_MULTIPROC_DIR"  # prometheus_client's multiprocess mode


def serve(run_dirs, host: str = "127.0.0.1", port: int = 8080, max_batch: int = 64,
          max_delay_ms: float = 0.0, max_body_bytes: int = DEFAULT_MAX_BODY_BYTES,
          device: str = "cpu", log_level: str = "info", int8: bool = False,
          workers: int = 1) -> None:
    """Serve ``run_dirs`` over HTTP until interrupted (Ctrl-C).

    Args:
        int8: serve each run's int8 stage (:func:`~bigmodel.serve.models.int8_stage`) under the
            run's name, run by ONNX Runtime.
        workers: server processes sharing the port (uvicorn's supervisor: one listening socket,
            the kernel hands each connection to one process); each loads every model and
            batches its own requests. ``/metrics`` then sums every worker's counters
            (prometheus_client's multiprocess mode, files in a temporary folder removed at exit).

    Raises:
        ConfigError: a port outside 0..65535, workers < 1, no run directory, duplicate names,
            bad bounds, ``int8`` for a run without an int8 stage.
    """
    import uvicorn

    if not isinstance(port, int) or not 0 <= port <= 65535:
        raise ConfigError(f"serve: --port must be in 0..65535; received {port!r}")
    if not isinstance(workers, int) or workers < 1:
        raise ConfigError(f"serve: --workers must be an int >= 1; received {workers!r}")
    if int8:
        run_dirs = [(model_name(run_dir), str(int8_stage(run_dir))) for run_dir in run_dirs]
    options = {"run_dirs": [list(d) if isinstance(d, tuple) else str(d) for d in run_dirs],
               "max_batch": max_batch, "max_delay_ms": max_delay_ms,
               "max_body_bytes": max_body_bytes, "device": device,
               "freeze_gc": True}  # a serving process: see create_app
    app = _app_from(options)  # checks every argument before a worker starts (loads nothing)
    if workers == 1:
        uvicorn.run(app, host=host, port=port, log_level=log_level, access_log=False)
        return
    with tempfile.TemporaryDirectory(prefix="bigmodel-metrics-") as metrics_dir:
        # Read by each worker process (spawned, so it inherits the environment, not objects).
        os.environ[OPTIONS_VARIABLE] = json.dumps(options)
        os.environ[METRICS_VARIABLE] = metrics_dir
        try:
            uvicorn.run(f"{__name__}:app_from_environment", factory=True, workers=workers,
                        host=host, port=port, log_level=log_level, access_log=False)
        finally:
            del os.environ[OPTIONS_VARIABLE], os.environ[METRICS_VARIABLE]


def app_from_environment():
    """The app of one ``--workers`` process, from the options :func:`serve` left in the
    environment (uvicorn's factory)."""
    return _app_from(json.loads(os.environ[OPTIONS_VARIABLE]))


def _app_from(options: dict):
    run_dirs = [tuple(d) if isinstance(d, list) else d for d in options["run_dirs"]]
    return create_app(run_dirs, **{k: v for k, v in options.items() if k != "run_dirs"})


class BackgroundServer:
    """A server on a free ``127.0.0.1`` port in a daemon thread; use as a context manager.

    Args:
        run_dirs / **options: as :func:`bigmodel.serve.app.create_app`.
        start_timeout: seconds to wait for the server to accept connections.

    Attributes:
        url: ``http://127.0.0.1:PORT``.
    """

    def __init__(self, run_dirs, start_timeout: float = 30.0, **options) -> None:
        import uvicorn

        self.app = create_app(run_dirs, **options)
        self._socket = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        # Accepted connections inherit this: without it, small replies wait ~40 ms for the
        # client's delayed ACK (Nagle), which uvicorn avoids only on sockets it makes itself.
        self._socket.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self._socket.bind(("127.0.0.1", 0))
        self.port = self._socket.getsockname()[1]
        self.url = f"http://127.0.0.1:{self.port}"
        config = uvicorn.Config(self.app, log_level="warning", access_log=False)
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(target=self._server.run,
                                        kwargs={"sockets": [self._socket]}, daemon=True)
        self.start_timeout = start_timeout

    def __enter__(self) -> BackgroundServer:
        self._thread.start()
        deadline = time.monotonic() + self.start_timeout
        while not self._server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                raise ConfigError(f"serve: the server did not start on {self.url}")
            time.sleep(0.01)
        return self

    def __exit__(self, *exc) -> None:
        self._server.should_exit = True
        self._thread.join(timeout=10)
        self._socket.close()


__all__ = ["BackgroundServer", "app_from_environment", "serve"]
