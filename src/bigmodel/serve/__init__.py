"""``bigmodel serve``: trained runs behind HTTP (Open Inference Protocol v2, a ``classify``
endpoint for files and texts, Prometheus metrics, a web page), with dynamic batching.

Needs the optional extra ``bigmodel[serve]`` (FastAPI, uvicorn, python-multipart, httpx,
prometheus-client)."""

from bigmodel.serve.app import create_app
from bigmodel.serve.batcher import DynamicBatcher
from bigmodel.serve.client import Client
from bigmodel.serve.models import ServedModel
from bigmodel.serve.server import BackgroundServer, serve

__all__ = ["BackgroundServer", "Client", "DynamicBatcher", "ServedModel", "create_app", "serve"]
