"""Pieces both tasks share: result rows in the evaluation harness's schema, edit batching, and
memoising wrappers that let one evaluation reuse answers that cannot have changed.

Caching is exact, not an approximation: greedy decoding is deterministic, a base model's answer
depends only on the prompt, and a counterfactual model's answer only on the prompt and the edits it
reads. So a prompt answered once is never recomputed across batch sizes or checkpoints.
"""

from __future__ import annotations

import json
import platform
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Iterable, Sequence

import numpy as np

from serac.base import GREEDY, GenerationOptions, Prompt, TextModel
from serac.counterfactual import CounterfactualModel
from serac.edits import Edit
from serac.tasks import BATCH_SIZES

RESULT_FIELDS = ("task", "method", "mode", "n_edits", "scoring", "metric", "value")
MODES = ("batch", "sequential")


def result_row(
    task: str, method: str, mode: str, n_edits: int, scoring: str, metric: str, value: float
) -> dict:
    """One result in the harness schema: ``{"task", "method", "mode", "n_edits", "scoring",
    "metric", "value"}``. ``scoring`` says how answers were read: "generation" (the model's greedy
    answer: a label for a classifier, free text for a chat model) or "teacher_forced"."""
    if mode not in MODES:
        raise ValueError(f"mode is {mode!r}; valid: {', '.join(MODES)}")
    return {
        "task": task,
        "method": method,
        "mode": mode,
        "n_edits": int(n_edits),
        "scoring": scoring,
        "metric": metric,
        "value": float(value),
    }


def edit_batches(n: int, k: int, max_batches: int | None = None) -> list[range]:
    """Consecutive, disjoint batches of ``k`` of ``n`` edits (a remainder smaller than k is left
    out, so every batch has exactly k edits); at most ``max_batches`` of them."""
    if k < 1:
        raise ValueError(f"batch size must be >= 1, got {k}")
    batches = [range(start, start + k) for start in range(0, n - k + 1, k)]
    return batches[:max_batches] if max_batches is not None else batches


def checkpoints(n: int, sizes: Sequence[int] = BATCH_SIZES) -> list[int]:
    """Sequential-mode checkpoints: each size that fits, and ``n`` itself."""
    return sorted({s for s in sizes if s <= n} | ({n} if n else set()))


def prompt_key(prompt: Prompt) -> str:
    return prompt if isinstance(prompt, str) else json.dumps([dict(m) for m in prompt], sort_keys=True)


def _options_key(options: GenerationOptions) -> tuple:
    return (options.max_new_tokens, options.temperature, options.top_p, options.stop, options.seed)


class CachedTextModel:
    """Memoises a deterministic text model's answers per (prompt, options)."""

    def __init__(self, model: TextModel) -> None:
        self.model = model
        self.cache: dict[tuple, str] = {}
        self.calls = 0  # prompts actually sent to the wrapped model

    def generate(self, prompts: Sequence[Prompt], options: GenerationOptions = GREEDY) -> list[str]:
        keys = [(prompt_key(p), _options_key(options)) for p in prompts]
        unique: dict[tuple, int] = {}
        for i, key in enumerate(keys):
            if key not in self.cache:
                unique.setdefault(key, i)
        if unique:
            outputs = self.model.generate([prompts[i] for i in unique.values()], options)
            self.calls += len(unique)
            self.cache.update(zip(unique, outputs))
        return [self.cache[key] for key in keys]

    def teacher_forced(self, prompts: Sequence[Prompt], targets: Sequence[str]) -> list[float]:
        return self.model.teacher_forced(prompts, targets)  # type: ignore[attr-defined]


class CachedCounterfactual:
    """Memoises a counterfactual model per (prompt, the edits it reads, options). The edits it
    reads are the first ``num_edits`` retrieved, keyed by content, not id, so a re-added edit hits."""

    def __init__(self, model: CounterfactualModel) -> None:
        self.model = model
        self.num_edits = getattr(model, "num_edits", None)
        self.cache: dict[tuple, str] = {}
        self.calls = 0

    def _key(self, prompt: Prompt, edits: Sequence[Edit], options: GenerationOptions) -> tuple:
        read = list(edits)[: self.num_edits] if self.num_edits else list(edits)
        return prompt_key(prompt), tuple((e.input, e.target) for e in read), _options_key(options)

    def generate(
        self, queries: Sequence[Prompt], edits: Sequence[Sequence[Edit]], options: GenerationOptions = GREEDY
    ) -> list[str]:
        keys = [self._key(q, e, options) for q, e in zip(queries, edits)]
        unique: dict[tuple, int] = {}
        for i, key in enumerate(keys):
            if key not in self.cache:
                unique.setdefault(key, i)
        if unique:
            rows = list(unique.values())
            outputs = self.model.generate([queries[i] for i in rows], [edits[i] for i in rows], options)
            self.calls += len(rows)
            self.cache.update(zip(unique, outputs))
        return [self.cache[key] for key in keys]

    def teacher_forced(
        self, queries: Sequence[Prompt], edits: Sequence[Sequence[Edit]], targets: Sequence[str]
    ) -> list[float]:
        return self.model.teacher_forced(queries, edits, targets)


class CachedEncoder:
    """Memoises an encoder's vectors per text; keeps the wrapped encoder's ``id`` and ``dim``."""

    def __init__(self, encoder: Any) -> None:
        self.encoder = encoder
        self.id = encoder.id
        self.dim = encoder.dim
        self.cache: dict[str, np.ndarray] = {}

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        todo = list(dict.fromkeys(t for t in texts if t not in self.cache))
        if todo:
            self.cache.update(zip(todo, self.encoder.encode(todo)))
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        return np.stack([self.cache[t] for t in texts]).astype(np.float32)


def mean(values: Iterable[float]) -> float:
    """Mean of ``values``; NaN for none (a metric with nothing to measure is not zero)."""
    values = list(values)
    return float(np.mean(values)) if values else float("nan")


@dataclass
class RunInfo:
    """Where and when a benchmark ran, for the report header."""

    command: str
    date: str
    machine: str
    seconds: float = 0.0

    @classmethod
    def now(cls, command: str) -> "RunInfo":
        import os

        cpu = platform.processor() or platform.machine()
        return cls(
            command=command,
            date=datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
            machine=f"{platform.system()} {platform.machine()} {cpu}, {os.cpu_count()} CPU cores, no GPU",
        )


def write_rows(rows: Sequence[dict], path: str | Path) -> None:
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    Path(path).write_text(json.dumps(list(rows), indent=1) + "\n")


def markdown_table(
    rows: Sequence[dict], metric: str, *, task: str, scoring: str | None = None, digits: int = 3
) -> str:
    """A (method, mode) x n_edits table of one metric."""
    chosen = [
        r
        for r in rows
        if r["task"] == task and r["metric"] == metric and (scoring is None or r["scoring"] == scoring)
    ]
    if not chosen:
        return f"_no {metric} results for {task}_\n"
    sizes = sorted({r["n_edits"] for r in chosen})
    lines = ["| method | mode | " + " | ".join(f"n={s}" for s in sizes) + " |"]
    lines.append("|---|---|" + "---:|" * len(sizes))
    seen: dict[tuple[str, str], dict[int, float]] = {}
    for r in chosen:
        seen.setdefault((r["method"], r["mode"]), {})[r["n_edits"]] = r["value"]
    for (method, mode), values in seen.items():
        cells = [f"{values[s]:.{digits}f}" if s in values and values[s] == values[s] else "–" for s in sizes]
        lines.append(f"| {method} | {mode} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"
