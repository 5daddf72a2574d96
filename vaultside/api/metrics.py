"""Prometheus metrics of the HTTP API: counts and latency by route template and status.

Labels are route *templates* (``/v1/secrets/{path}``), never concrete paths, so no secret
name and no value ever becomes a label. With several worker processes the parent sets
``PROMETHEUS_MULTIPROC_DIR`` and every worker exposes the aggregate of all of them.
"""

from __future__ import annotations

import os
from collections.abc import Iterator

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    REGISTRY,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
    openmetrics,
)
from prometheus_client.exposition import choose_encoder
from prometheus_client.metrics_core import Metric
from prometheus_client.multiprocess import MultiProcessCollector

_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)
MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"
_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})


class ApiMetrics:
    """The API's metrics in their own registry (one per app, so tests can build many)."""

    content_type = CONTENT_TYPE_LATEST  # the default (Prometheus text 0.0.4)

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self._requests = Counter(
            "vaultside_http_requests_total",
            "HTTP requests by route template, method and status.",
            ["route", "method", "status"],
            registry=self.registry,
        )
        self._latency = Histogram(
            "vaultside_http_request_duration_seconds",
            "HTTP request latency by route template and method.",
            ["route", "method"],
            buckets=_BUCKETS,
            registry=self.registry,
        )
        self.sealed = Gauge(
            "vaultside_sealed",
            "1 while the server has no root key.",
            registry=self.registry,
            multiprocess_mode="max",
        )
        self.audit_failures = Counter(
            "vaultside_audit_failures_total",
            "Requests refused because no audit sink accepted their record.",
            registry=self.registry,
        )
        # Label children are cached: ``labels()`` is the costly part of an observation.
        self._children: dict[tuple[str, str, int], tuple[Counter, Histogram]] = {}

    def observe(self, route: str, method: str, status: int, seconds: float) -> None:
        """Count one finished request."""
        # SECURITY: clients choose the method token; unknown ones share one label so they
        # cannot grow the label set (and memory) without bound.
        if method not in _METHODS:
            method = "other"
        key = (route, method, status)
        children = self._children.get(key)
        if children is None:
            children = (
                self._requests.labels(route, method, str(status)),
                self._latency.labels(route, method),
            )
            self._children[key] = children
        children[0].inc()
        children[1].observe(seconds)

    def render(self, accept: str | None = None) -> tuple[bytes, str]:
        """(body, content type): OpenMetrics when ``accept`` asks for
        ``application/openmetrics-text``, else the Prometheus text format (aggregated across
        workers when multiprocess)."""
        encoder, content_type = choose_encoder(accept or "")
        if os.environ.get(MULTIPROC_ENV):
            registry = CollectorRegistry()
            MultiProcessCollector(registry)  # type: ignore[no-untyped-call]
            return bytes(encoder(registry)), content_type
        # Service packages (e.g. the broker) count on the process-wide default registry.
        if content_type.startswith("application/openmetrics-text"):
            # One exposition: OpenMetrics allows a single "# EOF", at the very end.
            merged = CollectorRegistry(auto_describe=True)
            merged.register(_Both(self.registry, REGISTRY))
            body = openmetrics.exposition.generate_latest(merged)  # type: ignore[no-untyped-call]
            return bytes(body), content_type
        return generate_latest(self.registry) + generate_latest(REGISTRY), content_type


class _Both:
    """A collector yielding the metrics of two registries (for one OpenMetrics exposition)."""

    def __init__(self, *registries: CollectorRegistry) -> None:
        self.registries = registries

    def collect(self) -> Iterator[Metric]:
        for registry in self.registries:
            yield from registry.collect()
