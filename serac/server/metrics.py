"""Prometheus metrics in the text exposition format (version 0.0.4), written by hand.

State lives on a ``Metrics`` object owned by one app (no process-wide registry), so two apps in one
process, as in tests, never mix their counts. Route labels are route templates
(``/v1/edits/{edit_id}``), never raw paths, so a scanner cannot blow up the label set.
"""

from __future__ import annotations

import bisect
import threading
from collections import defaultdict

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)
BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64)


class Histogram:
    def __init__(self, buckets: tuple[float, ...]) -> None:
        self.buckets = buckets
        self.counts = [0] * (len(buckets) + 1)  # last slot: +Inf
        self.sum = 0.0
        self.count = 0

    def observe(self, value: float) -> None:
        self.counts[bisect.bisect_left(self.buckets, value)] += 1
        self.sum += value
        self.count += 1

    def lines(self, name: str, labels: str) -> list[str]:
        out, cumulative = [], 0
        sep = "," if labels else ""
        for bound, count in zip((*self.buckets, float("inf")), self.counts):
            cumulative += count
            le = "+Inf" if bound == float("inf") else _number(bound)
            out.append(f'{name}_bucket{{{labels}{sep}le="{le}"}} {cumulative}')
        braces = f"{{{labels}}}" if labels else ""
        out.append(f"{name}_sum{braces} {_number(self.sum)}")
        out.append(f"{name}_count{braces} {self.count}")
        return out


def _number(value: float) -> str:
    return repr(float(value)) if not float(value).is_integer() else str(int(value))


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


class Metrics:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.requests: dict[tuple[str, str, int], int] = defaultdict(int)
        self.latency: dict[str, Histogram] = {}
        self.answers: dict[str, int] = defaultdict(int)  # by source: base / counterfactual
        self.batch_sizes = Histogram(BATCH_BUCKETS)

    def observe_request(self, method: str, route: str, status: int, seconds: float) -> None:
        with self._lock:
            self.requests[(method, route, status)] += 1
            self.latency.setdefault(route, Histogram(LATENCY_BUCKETS)).observe(seconds)

    def observe_answer(self, source: str) -> None:
        with self._lock:
            self.answers[source] += 1

    def observe_batch(self, size: int) -> None:
        with self._lock:
            self.batch_sizes.observe(size)

    def render(self, edit_count: int, store_version: int) -> str:
        with self._lock:
            lines = [
                "# HELP serac_http_requests_total HTTP requests by method, route template and status.",
                "# TYPE serac_http_requests_total counter",
            ]
            for (method, route, status), count in sorted(self.requests.items()):
                labels = f'method="{method}",route="{_escape(route)}",status="{status}"'
                lines.append(f"serac_http_requests_total{{{labels}}} {count}")
            lines += [
                "# HELP serac_http_request_duration_seconds Seconds from request start to last byte sent.",
                "# TYPE serac_http_request_duration_seconds histogram",
            ]
            for route, histogram in sorted(self.latency.items()):
                lines += histogram.lines("serac_http_request_duration_seconds", f'route="{_escape(route)}"')
            total = sum(self.answers.values())
            lines += [
                "# HELP serac_answers_total Answers generated, by the model that answered.",
                "# TYPE serac_answers_total counter",
            ]
            for source in ("base", "counterfactual"):
                lines.append(f'serac_answers_total{{source="{source}"}} {self.answers.get(source, 0)}')
            share = self.answers.get("counterfactual", 0) / total if total else 0.0
            lines += [
                "# HELP serac_in_scope_ratio Share of answers routed to an edit (counterfactual model).",
                "# TYPE serac_in_scope_ratio gauge",
                f"serac_in_scope_ratio {_number(share)}",
                "# HELP serac_batch_size Prompts per router call made by the micro-batcher.",
                "# TYPE serac_batch_size histogram",
                *self.batch_sizes.lines("serac_batch_size", ""),
            ]
        lines += [
            "# HELP serac_edits Live edits in the store.",
            "# TYPE serac_edits gauge",
            f"serac_edits {edit_count}",
            "# HELP serac_store_version Newest edit-store version.",
            "# TYPE serac_store_version gauge",
            f"serac_store_version {store_version}",
        ]
        return "\n".join(lines) + "\n"
