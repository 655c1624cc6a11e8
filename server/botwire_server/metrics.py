"""Prometheus metrics of one worker: requests, latency, errors by code, limit rejections.

Each worker keeps its own registry (``/metrics`` answers for the worker that
serves it); ``process_resident_memory_bytes`` shows that a worker's memory does
not grow with the data stored.
"""

from __future__ import annotations

from typing import Any

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Histogram,
    generate_latest,
)
from prometheus_client.process_collector import ProcessCollector

LIMIT_CODES = {"write_limit_exceeded", "quota_exceeded", "value_too_large", "request_too_large"}


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        ProcessCollector(registry=self.registry)
        self.requests = Counter(
            "botwire_requests",
            "HTTP requests answered",
            ["method", "route", "status"],
            registry=self.registry,
        )
        self.latency = Histogram(
            "botwire_request_seconds",
            "Time to answer a request",
            ["route"],
            buckets=(0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0, 5.0),
            registry=self.registry,
        )
        self.errors = Counter(
            "botwire_errors", "Error answers by error code", ["code"], registry=self.registry
        )
        self.limit_rejections = Counter(
            "botwire_limit_rejections",
            "Requests refused by a limit",
            ["code"],
            registry=self.registry,
        )
        self._requests: dict[tuple[str, str, int], Any] = {}
        self._latency: dict[str, Any] = {}

    def observe(
        self, method: str, route: str, status: int, seconds: float, code: str | None
    ) -> None:
        self.requests.labels(method, route, str(status)).inc()
        self.latency.labels(route).observe(seconds)
        if code is not None:
            self.errors.labels(code).inc()
            if code in LIMIT_CODES:
                self.limit_rejections.labels(code).inc()

    def render(self) -> tuple[bytes, str]:
        return generate_latest(self.registry), CONTENT_TYPE_LATEST
