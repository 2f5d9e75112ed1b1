"""The ASGI application of ``bigmodel serve``: Open Inference Protocol v2 REST endpoints, a
``classify`` endpoint that takes what a person has (an image file, a text, a WAV file), Prometheus
``/metrics`` and the web page at ``/``.

Every refused request is answered with a 4xx (503 while a model loads or its queue is full) and a
JSON body ``{"error": "..."}`` naming the problem; the server keeps serving. Request bodies are
read only up to ``max_body_bytes`` (413 past it). Requests name models, never files: nothing a
client sends becomes a path.
"""

from __future__ import annotations

import gc
import logging
import re
import threading
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import torch
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, JSONResponse, Response
from starlette.exceptions import HTTPException as StarletteHTTPException

from bigmodel import __version__
from bigmodel.errors import BigModelError, ConfigError
from bigmodel.serve.adapters import UnmergedModel, is_adapter_dir
from bigmodel.serve.batcher import DynamicBatcher, QueueFullError, check_batching
from bigmodel.serve.explaining import explain_row
from bigmodel.serve.forms import parse_multipart
from bigmodel.serve.front import Front, error_response
from bigmodel.serve.generation import (
    GENERATIVE_TASKS,
    GenerativeModel,
    classifier,
    decoder,
    infer_text_response,
    parse_generate,
    parse_generative_infer,
    parse_translate,
    run_task,
)
from bigmodel.serve.metrics import ServerMetrics
from bigmodel.serve.models import NAME_PATTERN, ServedModel, UnsupportedMediaError, model_name
from bigmodel.serve.page import PAGE
from bigmodel.serve.protocol import (
    RequestError,
    infer_response,
    json_bytes,
    parse_infer_request,
    parse_json,
    ranked,
)

DEFAULT_MAX_BODY_BYTES = 8 * 1024 * 1024
_ROUTES = [(re.compile(r"^/v2/models/([^/]+)/(infer|ready|classify|explain|generate|translate)$"),
            "/v2/models/{name}/"),
           (re.compile(r"^/v2/models/([^/]+)$"), "/v2/models/{name}")]
_INFER = re.compile(r"^/v2/models/([^/]+)/infer$")
_FIXED = {"/", "/metrics", "/v2", "/v2/health/live", "/v2/health/ready", "/v2/models"}


class ModelEntry:
    """A model name, its run directory, and (once loaded) the model and its batcher."""

    def __init__(self, name: str, run_dir: Path | None = None) -> None:
        self.name, self.run_dir = name, run_dir
        self.state, self.error = "loading", None
        self.served: ServedModel | None = None
        self.batcher: DynamicBatcher | None = None


class ModelRepository:
    """The models one server answers for, by name.

    Args:
        run_dirs: run directories (names: :func:`~bigmodel.serve.models.model_name`), ``(name,
            directory)`` pairs, or already loaded :class:`ServedModel` objects.
        max_batch / max_delay / min_rows: the dynamic batcher's bounds (:class:`DynamicBatcher`).
        device: where models run.

    Raises:
        ConfigError: no model, or two with the same name.
    """

    def __init__(self, run_dirs, max_batch: int = 64, max_delay: float = 0.0,
                 min_rows: int = 4, device: str = "cpu", metrics: ServerMetrics | None = None):
        self.entries: dict[str, ModelEntry] = {}
        self.batching = {"max_batch": max_batch, "max_delay": max_delay, "min_rows": min_rows}
        check_batching(**self.batching)  # before loading anything
        self.device, self.metrics = device, metrics or ServerMetrics()
        if not run_dirs:
            raise ConfigError("serve: give at least one run directory")
        for item in run_dirs:
            name, item = item if isinstance(item, tuple) else (None, item)
            if not isinstance(item, ServedModel) and not Path(item).is_dir():
                raise ConfigError(f"serve: {item} is not a directory (expected a run directory "
                                  "written by 'bigmodel train')")
            name = name or (item.name if isinstance(item, ServedModel) else model_name(item))
            if not NAME_PATTERN.match(name):
                raise ConfigError(f"serve: model name {name!r} (the folder name of {item}) must "
                                  "be letters, digits, '.', '_' or '-' (at most 128): rename it")
            if name in self.entries:
                raise ConfigError(f"serve: two models are named {name!r} ({item}); serve run "
                                  "directories with different folder names")
            entry = ModelEntry(name, None if isinstance(item, ServedModel) else Path(item))
            if isinstance(item, ServedModel):
                self._ready(entry, item)
            self.entries[name] = entry

    def load_all(self) -> None:
        """Load every model not loaded yet (in the calling thread); a model that fails is marked
        ``failed`` with its error, the others still serve."""
        for entry in self.entries.values():
            if entry.state == "loading":
                try:
                    kind = (UnmergedModel if is_adapter_dir(entry.run_dir)
                            else GenerativeModel if run_task(entry.run_dir) in GENERATIVE_TASKS
                            else ServedModel)
                    self._ready(entry, kind(entry.run_dir, entry.name, device=self.device))
                except BigModelError as exc:
                    entry.state, entry.error = "failed", str(exc)
                except Exception as exc:  # noqa: BLE001 - a loading thread must not die silently
                    logging.getLogger("bigmodel.serve").error("loading %s failed", entry.run_dir,
                                                              exc_info=exc)
                    entry.state, entry.error = "failed", f"{type(exc).__name__}: {exc}"

    def _ready(self, entry: ModelEntry, served: ServedModel) -> None:
        entry.served = served
        batching = dict(self.batching)
        if getattr(served, "rows_independent", False):  # same bits alone: padding buys nothing
            batching["min_rows"] = 1
        entry.batcher = DynamicBatcher(served.forward, **batching,
                                       observe=self.metrics.batch_observer(entry.name))
        entry.state = "ready"

    def get(self, name: str) -> ModelEntry:
        """The ready entry named ``name``.

        Raises:
            RequestError: unknown (404), still loading or failed to load (503).
        """
        entry = self.entries.get(name)
        if entry is None:
            known = ", ".join(sorted(self.entries))
            raise RequestError(f"unknown model {name[:128]!r}; this server serves {known}", 404)
        if entry.state != "ready":
            detail = f": {entry.error}" if entry.error else "; try again shortly"
            raise RequestError(f"model {name!r} is {entry.state}{detail}", 503)
        return entry

    @property
    def ready(self) -> bool:
        return all(entry.state == "ready" for entry in self.entries.values())

    async def close(self) -> None:
        for entry in self.entries.values():
            if entry.batcher is not None:
                await entry.batcher.close()


def create_app(run_dirs, max_batch: int = 64, max_delay_ms: float = 0.0,
               max_body_bytes: int = DEFAULT_MAX_BODY_BYTES, min_rows: int = 4,
               device: str = "cpu", load_in_background: bool = True, freeze_gc: bool = False):
    """The server's ASGI app.

    Args:
        run_dirs: run directories or loaded :class:`ServedModel` objects.
        max_batch / max_delay_ms: dynamic batching bounds.
        max_body_bytes: the largest request body read.
        min_rows: pad each forward pass to this many rows (see :mod:`bigmodel.serve.batcher`).
        device: where the models run.
        load_in_background: load run directories in a thread after start-up (the server answers
            health and 503 meanwhile) rather than before.
        freeze_gc: once the models are loaded, move every object alive then (libraries, models:
            ~200k) out of the cyclic garbage collector's reach (``gc.freeze``): a full collection
            of them took ~0.3 s, a pause every request in flight waited for. For a server
            process (``bigmodel serve``), not for a process that goes on doing other work.

    Raises:
        ConfigError: no model, duplicate names, or bounds below 1.
    """
    if not isinstance(max_body_bytes, int) or max_body_bytes < 1:
        raise ConfigError(f"serve: max_body_bytes must be a positive int; received "
                          f"{max_body_bytes!r}")
    metrics = ServerMetrics()
    repository = ModelRepository(run_dirs, max_batch, max_delay_ms / 1000.0, min_rows, device,
                                 metrics)
    if not load_in_background:
        repository.load_all()

    @asynccontextmanager
    async def lifespan(app):
        def load() -> None:
            repository.load_all()
            if freeze_gc:
                gc.collect()
                gc.freeze()

        thread = threading.Thread(target=load, name="bigmodel-load", daemon=True)
        thread.start()
        yield
        await repository.close()

    app = FastAPI(title="bigmodel serve", version=__version__, lifespan=lifespan,
                  docs_url=None, redoc_url=None, openapi_url=None)
    app.state.repository, app.state.metrics = repository, metrics

    @app.exception_handler(Exception)
    async def bug(request: Request, exc: Exception):  # a bug must not take the server down
        return error_response(exc)

    @app.exception_handler(BigModelError)
    async def refused(request: Request, exc: BigModelError):
        return error_response(exc)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException):  # 404 path, 405 method
        return JSONResponse({"error": f"{exc.detail}: {request.method} {request.url.path[:200]}"},
                            exc.status_code, headers=getattr(exc, "headers", None))

    @app.exception_handler(RequestValidationError)
    async def invalid(request: Request, exc: RequestValidationError):
        problems = "; ".join(f"{'.'.join(str(p) for p in e.get('loc', ()))}: {e.get('msg')}"
                             for e in exc.errors())
        return JSONResponse({"error": f"invalid request: {problems}"}, 400)

    @app.exception_handler(QueueFullError)
    async def busy(request: Request, exc: QueueFullError):
        return error_response(exc)

    @app.get("/", response_class=HTMLResponse)
    async def page():
        return HTMLResponse(PAGE)

    @app.get("/metrics")
    async def prometheus():
        return Response(metrics.exposition(), media_type=metrics.content_type)

    @app.get("/v2")
    async def server_metadata():
        return {"name": "bigmodel", "version": __version__,
                "extensions": ["classify", "explain", "generate", "translate"]}

    @app.get("/v2/health/live")
    async def live():
        return {"live": True}

    @app.get("/v2/health/ready")
    async def ready():
        return JSONResponse({"ready": repository.ready}, 200 if repository.ready else 503)

    @app.get("/v2/models")
    async def models():
        return {"models": [{"name": e.name, "state": e.state,
                            "kind": e.served.kind if e.served else None,
                            **({"error": e.error} if e.error else {})}
                           for e in repository.entries.values()]}

    @app.get("/v2/models/{name}")
    async def model_metadata(name: str):
        return repository.get(name).served.describe()

    @app.get("/v2/models/{name}/ready")
    async def model_ready(name: str):
        if name not in repository.entries:
            repository.get(name)  # 404 naming the served models
        state = repository.entries[name].state
        return JSONResponse({"name": name, "ready": state == "ready"},
                            200 if state == "ready" else 503)

    @app.post("/v2/models/{name}/infer")
    async def infer(name: str, request: Request):
        entry = repository.get(name)
        if isinstance(entry.served, GenerativeModel):
            return await _decode_infer(entry, parse_json(await request.body()))
        return await _classify_infer(entry, await request.body())

    async def _classify_infer(entry: ModelEntry, body: bytes) -> Response:
        rows, outputs, request_id = parse_infer_request(parse_json(body), entry.served)
        logits = torch.stack(await entry.batcher.submit_many(rows))
        # Serialized here: FastAPI's encoder of a returned dict visits every float (1 ms a reply)
        return Response(json_bytes(infer_response(entry.served, logits, outputs, request_id)),
                        media_type="application/json")

    async def fast_infer(scope, body: bytes) -> Response | None:
        """``POST /v2/models/NAME/infer`` of a ready classifier without FastAPI's middleware,
        routing and parameter parsing (~0.2 ms of a ~1 ms request on the benchmark's CPU); any
        other request, and every error of a model not ready, goes the FastAPI way."""
        match = _INFER.match(scope["path"]) if scope["method"] == "POST" else None
        entry = repository.entries.get(match.group(1)) if match else None
        if entry is None or entry.state != "ready" or isinstance(entry.served, GenerativeModel):
            return None
        try:
            return await _classify_infer(entry, body)
        except Exception as exc:  # noqa: BLE001 - answered as the app's handlers answer it
            return error_response(exc)

    @app.post("/v2/models/{name}/classify")
    async def classify(name: str, request: Request, top_k: int = 5):
        entry = repository.get(name)
        served = classifier(entry.served)
        if not 1 <= top_k <= 1000:
            raise RequestError(f"top_k must be in 1..1000; received {top_k}")
        rows = await _person_input(request, served)
        logits = torch.stack(await entry.batcher.submit_many(rows))
        return {"model_name": served.name, "kind": served.kind,
                "predictions": ranked(served, logits, top_k)}

    @app.post("/v2/models/{name}/explain")
    async def explain(name: str, request: Request, method: str | None = None,
                      target: int | None = None):
        entry = repository.get(name)
        rows = await _person_input(request, classifier(entry.served))
        if len(rows) != 1:
            raise RequestError(f"explain takes one input; received {len(rows)} (send one image)")
        try:
            return await entry.batcher.run_exclusive(
                lambda: explain_row(entry.served, rows[0], method, target))
        except ModuleNotFoundError as exc:
            raise RequestError(f"explanations need the extra 'explain' ({exc.name} is missing "
                               "on the server)", 501) from None

    @app.post("/v2/models/{name}/generate")
    async def generate(name: str, request: Request):
        entry = repository.get(name)
        served = decoder(entry.served, "language_model")
        prompts, options, one = parse_generate(await request.body())
        samples = await entry.batcher.run_exclusive(lambda: served.generate(prompts, options))
        return {"model_name": name, "kind": served.kind, "samples": samples[0] if one else samples}

    @app.post("/v2/models/{name}/translate")
    async def translate(name: str, request: Request):
        entry = repository.get(name)
        served = decoder(entry.served, "seq2seq")
        texts, options = parse_translate(await request.body(),
                                         request.headers.get("content-type", ""))
        outputs = await entry.batcher.run_exclusive(lambda: served.translate(texts, options))
        return {"model_name": name, "kind": served.kind, "translations": outputs}

    async def _decode_infer(entry: ModelEntry, document) -> dict:
        served = entry.served
        texts, options, request_id = parse_generative_infer(document, served)
        decode = served.generate if served.kind == "language_model" else served.translate
        outputs = await entry.batcher.run_exclusive(lambda: decode(texts, options))
        return infer_text_response(served, outputs, request_id)

    def observe(path: str, status: int, seconds: float) -> None:
        metrics.observe_request(*_labels(path, repository), status, seconds)

    return Front(app, max_body_bytes, observe, fast_infer)


async def _person_input(request: Request, served: ServedModel) -> list[torch.Tensor]:
    """Rows from what a person sends: a file upload (field ``file``: PNG / ``.npy`` image, WAV
    clip), a form field ``text``, a JSON body ``{"text": ...}`` or a plain-text body."""
    content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    body = await request.body()
    if content_type == "multipart/form-data":
        fields = parse_multipart(body, request.headers["content-type"])
        filename, data = fields.get("file", (None, None))
        if data is not None and filename is not None:
            return _file_rows(served, data, f"upload {filename[:64]!r}")
        text = fields.get("text", (None, None))[1]
        if text is None:
            raise RequestError("the form holds neither a 'file' upload nor a 'text' field")
        try:
            return [_text_row(served, text.decode("utf-8"))]
        except UnicodeDecodeError:
            raise RequestError("the form's 'text' field is not UTF-8") from None
    if content_type == "application/x-www-form-urlencoded":
        from urllib.parse import parse_qs

        try:
            text = parse_qs(body.decode("latin-1"), keep_blank_values=True,
                            max_num_fields=8).get("text")
        except ValueError as exc:  # more fields than max_num_fields
            raise RequestError(f"cannot read the form: {exc}") from None
        if text is None:
            raise RequestError("the form holds no 'text' field")
        return [_text_row(served, text[0])]
    if content_type == "application/json":
        document = parse_json(body)
        if not isinstance(document, dict) or "text" not in document:
            raise RequestError('classify: expected a JSON object {"text": "..."} (or upload a '
                               "file as multipart form field 'file')")
        return [_text_row(served, document["text"])]
    if content_type.startswith("text/"):
        try:
            return [_text_row(served, body.decode("utf-8"))]
        except UnicodeDecodeError:
            raise RequestError("classify: the text body is not UTF-8") from None
    return _file_rows(served, body, "request body")


def _file_rows(served: ServedModel, data: bytes, source: str) -> list[torch.Tensor]:
    if served.kind == "image":
        return list(served.image_from_file(data, source))
    if served.kind == "audio":
        return [served.audio_from_wav(data, source)]
    raise UnsupportedMediaError(f"{source}: model {served.name!r} classifies texts; send a 'text' "
                                "form field or a JSON body {\"text\": ...}")


def _text_row(served: ServedModel, text: Any) -> torch.Tensor:
    if served.kind != "text":
        raise UnsupportedMediaError(f"model {served.name!r} classifies {served.kind} files, not "
                                    "texts; upload a file as form field 'file'")
    return served.encode_text(text)


def _labels(path: str, repository: ModelRepository) -> tuple[str, str]:
    """Metric labels: the route template and the served model's name (never raw input)."""
    if path in _FIXED:
        return path, ""
    for pattern, template in _ROUTES:
        match = pattern.match(path)
        if match:
            name = match.group(1) if match.group(1) in repository.entries else ""
            suffix = match.group(2) if match.lastindex == 2 else ""
            return template + suffix, name
    return "other", ""


__all__ = ["DEFAULT_MAX_BODY_BYTES", "ModelRepository", "create_app"]
