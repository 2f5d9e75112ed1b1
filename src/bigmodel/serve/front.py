"""The ASGI front of ``bigmodel serve``, in front of the FastAPI app: request bodies read up to
a limit (413 past it), every answered request reported to the metrics, a fast path that may answer
a request before FastAPI's middleware and routing, and the JSON error answer every refusal uses."""

from __future__ import annotations

import asyncio
import logging
import time

from fastapi.responses import JSONResponse

from bigmodel.errors import BigModelError
from bigmodel.serve.batcher import QueueFullError
from bigmodel.serve.models import UnsupportedMediaError
from bigmodel.serve.protocol import RequestError


class Front:
    """The ASGI layer in front of the app: a request body longer than ``max_bytes`` is answered
    413 before any handler reads it (declared ``Content-Length`` or counted while streaming), and
    every answered request is reported to ``observe(path, status, seconds)`` (plain ASGI: no
    per-request task or stream, unlike ``@app.middleware``). ``fast(scope, body)`` may answer a
    request itself (a response) before the app's routing and middleware (``None``: the app
    answers)."""

    def __init__(self, app, max_bytes: int, observe=None, fast=None) -> None:
        self.app, self.max_bytes, self.observe, self.fast = app, max_bytes, observe, fast

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        started, status = time.perf_counter(), None

        async def send_and_note(message):
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self._limited(scope, receive, send_and_note)
        except Exception as exc:  # noqa: BLE001 - Starlette re-raises after answering a bug
            # with the app's JSON 500 (already logged there): swallowing it here keeps the
            # client's keep-alive connection open instead of uvicorn resetting it.
            if status is None:
                await error_response(exc)(scope, None, send_and_note)
        finally:
            if self.observe is not None and status is not None:
                self.observe(scope["path"], status, time.perf_counter() - started)

    async def _limited(self, scope, receive, send):
        headers = dict(scope.get("headers") or [])
        declared = headers.get(b"content-length", b"0")
        if not declared.isdigit():
            return await JSONResponse({"error": "the Content-Length header is not a number"},
                                      400)(scope, None, send)
        if int(declared) > self.max_bytes:
            return await self._refuse(scope, send, declared.decode("latin-1")[:32])
        chunks, size, more = [], 0, True
        while more:
            message = await receive()
            if message["type"] == "http.disconnect":
                return None
            chunks.append(message.get("body", b""))
            size += len(chunks[-1])
            more = message.get("more_body", False)
            if size > self.max_bytes:
                return await self._refuse(scope, send, f"more than {size}")
        body, sent = b"".join(chunks), False
        if self.fast is not None:
            response = await self.fast(scope, body)
            if response is not None:
                return await response(scope, None, send)

        async def replay():
            nonlocal sent
            if sent:
                return await receive()
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}

        return await self.app(scope, replay, send)

    async def _refuse(self, scope, send, size: str):
        response = JSONResponse({"error": f"request body of {size} bytes is over the limit of "
                                          f"{self.max_bytes} bytes (serve --max-body-mb)"}, 413)
        await response(scope, None, send)


def error_response(exc: Exception) -> JSONResponse:
    """The JSON answer ``{"error": ...}`` of a refused request: the status its error names (a
    :class:`RequestError`'s own, 415 for an upload of the wrong kind, 503 busy / cancelled, 400 any
    other library error); anything else is a bug, logged, answered 500 without details."""
    if isinstance(exc, RequestError):
        status = exc.status
    elif isinstance(exc, UnsupportedMediaError):
        status = 415
    elif isinstance(exc, QueueFullError):
        status = 503
    elif isinstance(exc, BigModelError):
        status = 400
    elif isinstance(exc, asyncio.CancelledError):
        status = 503
    else:
        logging.getLogger("bigmodel.serve").error("internal error", exc_info=exc)
        return JSONResponse({"error": f"internal error ({type(exc).__name__}); see the server "
                                      "log"}, 500)
    return JSONResponse({"error": str(exc)}, status)


__all__ = ["Front", "error_response"]
