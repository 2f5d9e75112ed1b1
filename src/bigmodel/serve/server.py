"""Run the server: :func:`serve` blocks serving run directories with uvicorn;
:class:`BackgroundServer` runs one in a thread on a loopback port (tests, benchmarks, notebooks)."""

from __future__ import annotations

import socket
import threading
import time

from bigmodel.errors import ConfigError
from bigmodel.serve.app import DEFAULT_MAX_BODY_BYTES, create_app


def serve(run_dirs, host: str = "127.0.0.1", port: int = 8080, max_batch: int = 64,
          max_delay_ms: float = 5.0, max_body_bytes: int = DEFAULT_MAX_BODY_BYTES,
          device: str = "cpu", log_level: str = "info") -> None:
    """Serve ``run_dirs`` over HTTP until interrupted (Ctrl-C).

    Raises:
        ConfigError: a port outside 0..65535, no run directory, duplicate names, bad bounds.
    """
    import uvicorn

    if not isinstance(port, int) or not 0 <= port <= 65535:
        raise ConfigError(f"serve: --port must be in 0..65535; received {port!r}")
    app = create_app(run_dirs, max_batch=max_batch, max_delay_ms=max_delay_ms,
                     max_body_bytes=max_body_bytes, device=device)
    uvicorn.run(app, host=host, port=port, log_level=log_level, access_log=False)


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


__all__ = ["BackgroundServer", "serve"]
