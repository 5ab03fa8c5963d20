"""Results of an evaluation run: one ``Score`` per number, a ``RunResult`` per run.

Their own module so the runner, the cost measurement, the reports and the task evaluations share
them without importing one another.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from serac.eval.metrics import successes_of, wilson

QA_TASKS = ("zsre", "counterfact")  # the question-answering benchmarks the runner loads
TASKS = (*QA_TASKS, "fc", "sentiment")  # every task the runner loads (fc, sentiment: serac.tasks)
MODES = ("batch", "sequential")
SCORINGS = ("generation", "teacher_forced")
METRICS = ("es", "es_conflict_aware", "dd", "reliability", "generalization", "reliability_conflict_aware",
           "generalization_conflict_aware", "locality", "locality_uncovered")
COST_METRICS = ("edits_per_s", "latency_ratio_vs_base", "speedup_vs_reencode")
ROW_KEYS = ("task", "method", "mode", "n_edits", "scoring", "metric", "value")
# Appended to a row when its count is known: the inputs behind the value and, for a generation
# rate (a share of binary outcomes), its 95% Wilson interval. Older rows lack them.
COUNT_KEYS = ("count", "ci95")


@dataclass(frozen=True)
class Score:
    """One number, with how many inputs it averages (``count``)."""

    task: str
    method: str
    mode: str
    n_edits: int
    scoring: str  # generation | teacher_forced | cost
    metric: str
    value: float
    count: int = 0

    def row(self) -> dict[str, Any]:
        row = {key: getattr(self, key) for key in ROW_KEYS}
        if self.count:
            row["count"] = self.count
            interval = self.interval()
            if interval is not None:
                row["ci95"] = [round(interval[0], 4), round(interval[1], 4)]
        return row

    @property
    def is_rate(self) -> bool:
        """A share of binary outcomes (exact-match generation scores), so a Wilson interval applies;
        teacher-forced scores average token accuracies and cost rows are not shares."""
        return self.scoring == "generation" and self.metric in METRICS

    def interval(self) -> tuple[float, float] | None:
        """The 95% Wilson interval of a rate with a known count, else None."""
        if not (self.is_rate and self.count):
            return None
        return wilson(successes_of(self.value, self.count), self.count)


@dataclass
class RunResult:
    task: str
    mode: str
    settings: dict[str, Any]
    scores: list[Score] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    details: list[dict[str, Any]] = field(default_factory=list)
    dd_source: str = ""
    wall_s: float = 0.0
    cache_stats: dict[str, dict[str, int]] = field(default_factory=dict)  # cumulative over the models' life

    def rows(self) -> list[dict[str, Any]]:
        return [s.row() for s in self.scores]

    def to_json(self) -> dict[str, Any]:
        return {
            "task": self.task,
            "mode": self.mode,
            "settings": self.settings,
            "dd_source": self.dd_source,
            "wall_s": round(self.wall_s, 1),
            "notes": self.notes,
            "rows": self.rows(),
            "counts": [asdict(s) for s in self.scores],
            "details": self.details,
            "cache_stats": self.cache_stats,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> "RunResult":
        """The inverse of :meth:`to_json` (re-rendering reports without re-running)."""
        return cls(data["task"], data["mode"], data["settings"], [Score(**c) for c in data["counts"]],
                   list(data.get("notes", [])), list(data.get("details", [])), data.get("dd_source", ""),
                   float(data.get("wall_s", 0.0)), dict(data.get("cache_stats", {})))
