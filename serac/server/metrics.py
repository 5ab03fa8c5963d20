"""Prometheus metrics through prometheus_client, one registry per app.

A registry per ``Metrics`` object (no process-wide default registry), so two apps in one process,
as in tests, never mix their counts. Labels come from fixed sets only: route templates
(``/v1/edits/{edit_id}``, or ``unmatched``) and known HTTP methods (else ``OTHER``), so a scanner or
made-up methods cannot grow the label set.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"  # what generate_latest writes
LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)
BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64)
METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
SOURCES = ("base", "counterfactual")


def method_label(method: str) -> str:
    return method if method in METHODS else "OTHER"


class Metrics:
    def __init__(self) -> None:
        self.registry = registry = CollectorRegistry()
        self.requests = Counter(
            "serac_http_requests",
            "HTTP requests by method, route template and status.",
            ["method", "route", "status"],
            registry=registry,
        )
        self.latency = Histogram(
            "serac_http_request_duration_seconds",
            "Seconds from request start to last byte sent.",
            ["route"],
            buckets=LATENCY_BUCKETS,
            registry=registry,
        )
        self.answers = Counter(
            "serac_answers", "Answers generated, by the model that answered.", ["source"], registry=registry
        )
        for source in SOURCES:
            self.answers.labels(source)
        self.in_scope = Gauge(
            "serac_in_scope_ratio",
            "Share of answers routed to an edit (counterfactual model).",
            registry=registry,
        )
        self.batch_sizes = Histogram(
            "serac_batch_size",
            "Prompts per router call made by the micro-batcher.",
            buckets=BATCH_BUCKETS,
            registry=registry,
        )
        self.rejected = Counter(
            "serac_rejected_requests",
            "Requests refused before running: busy (queue or stream cap) or timed out.",
            ["reason"],
            registry=registry,
        )
        self.generations = Gauge(
            "serac_active_generations", "Generations running now (batches and streams).", registry=registry
        )
        self.edits = Gauge("serac_edits", "Live edits in the store.", registry=registry)
        self.store_version = Gauge("serac_store_version", "Newest edit-store version.", registry=registry)

    def observe_request(self, method: str, route: str, status: int, seconds: float) -> None:
        self.requests.labels(method_label(method), route, str(status)).inc()
        self.latency.labels(route).observe(seconds)

    def observe_answer(self, source: str) -> None:
        self.answers.labels(source if source in SOURCES else "base").inc()

    def observe_batch(self, size: int) -> None:
        self.batch_sizes.observe(size)

    def value(self, name: str, **labels: str) -> float:
        """One sample's current value (0 if absent), e.g. ``value("serac_batch_size_count")``."""
        return self.registry.get_sample_value(name, labels or None) or 0.0

    def render(self, edit_count: int, store_version: int) -> str:
        answered = {s: self.value("serac_answers_total", source=s) for s in SOURCES}
        total = sum(answered.values())
        self.in_scope.set(answered["counterfactual"] / total if total else 0.0)
        self.edits.set(edit_count)
        self.store_version.set(store_version)
        return generate_latest(self.registry).decode("utf-8")
