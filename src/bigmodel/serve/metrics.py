"""Prometheus metrics of one server (its own registry, so two servers in one process, e.g. tests,
count apart). Labels hold only served model names and route templates, never raw request paths:
a client cannot create new time series by sending made-up URLs."""

from __future__ import annotations

import os

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Histogram,
    generate_latest,
)
from prometheus_client.multiprocess import MultiProcessCollector

LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256)


class ServerMetrics:
    """Request counts, errors, batch sizes, queue time and latency of one server."""

    content_type = CONTENT_TYPE_LATEST

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.requests = Counter("bigmodel_requests", "HTTP requests answered",
                                ["route", "model"], registry=self.registry)
        self.errors = Counter("bigmodel_request_errors", "HTTP requests answered with 4xx/5xx",
                              ["route", "model", "status"], registry=self.registry)
        self.latency = Histogram("bigmodel_request_latency_seconds",
                                 "Time from receiving a request to answering it",
                                 ["route", "model"], buckets=LATENCY_BUCKETS,
                                 registry=self.registry)
        self.batch_size = Histogram("bigmodel_batch_size", "Rows per forward pass (padding "
                                    "excluded)", ["model"], buckets=BATCH_BUCKETS,
                                    registry=self.registry)
        self.queue_time = Histogram("bigmodel_queue_seconds", "Time a row waited for its batch",
                                    ["model"], buckets=LATENCY_BUCKETS, registry=self.registry)
        self.rows = Counter("bigmodel_inference_rows", "Rows run through a model", ["model"],
                            registry=self.registry)

    def observe_request(self, route: str, model: str, status: int, seconds: float) -> None:
        self.requests.labels(route, model).inc()
        self.latency.labels(route, model).observe(seconds)
        if status >= 400:
            self.errors.labels(route, model, str(status)).inc()

    def batch_observer(self, model: str):
        """``observe(batch_size, queue_seconds)`` for a model's batcher."""
        batch_size, queue_time, rows = (self.batch_size.labels(model),
                                        self.queue_time.labels(model), self.rows.labels(model))

        def observe(size: int, waits: list[float]) -> None:
            batch_size.observe(size)
            rows.inc(size)
            for wait in waits:
                queue_time.observe(wait)

        return observe

    def exposition(self) -> bytes:
        """The Prometheus text exposition format: this server's metrics, or with ``serve
        --workers N`` (``PROMETHEUS_MULTIPROC_DIR`` set) the sums over every worker process."""
        directory = os.environ.get("PROMETHEUS_MULTIPROC_DIR")
        if directory:
            registry = CollectorRegistry()
            MultiProcessCollector(registry, directory)
            return generate_latest(registry)
        return generate_latest(self.registry)


__all__ = ["ServerMetrics"]
