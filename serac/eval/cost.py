"""Cost figures measured in the same run as the scores, at the largest number of edits reached.

- ``edits_per_s`` (measured by the runner): edits applied per second of ``apply`` time, per segment.
- ``latency_ratio_vs_base``: per-query wall time of the method answering one out-of-scope query at a
  time, divided by the base model's alone on the same queries, measured interleaved (base, method,
  method, base, ...) with every memo off, so load from other processes hits both sides alike.
- ``speedup_vs_reencode`` (methods with an index-backed ``scope``): the scope decision's per-query
  time if every stored edit were re-encoded for every query, as the original SERAC code and EasyEdit
  do, divided by the time of our decision (one query encoding plus an index search). Beyond 2,000
  stored edits the re-encoding is timed on 2,000 and scaled linearly (encoding cost is per row).
"""

from __future__ import annotations

import random
import time
from collections.abc import Sequence
from typing import Any

import numpy as np

from serac.data import EditExample
from serac.eval.methods import EditingMethod, EvalModels
from serac.scope import Encoder, ScopeClassifier

REENCODE_BUDGET = 2000  # edit texts re-encoded per timed query (2 queries at ~1,000 edits)


def reencode_decide(encoder: Encoder, edit_inputs: Sequence[str], query: str) -> tuple[int, float]:
    """The O(N) scope: encode every stored edit input and the query, take the best cosine."""
    vectors = encoder.encode(list(edit_inputs) + [query])
    scores = vectors[:-1] @ vectors[-1]
    best = int(np.argmax(scores))
    return best, float(scores[best])


def _timed(fn: Any, *args: Any) -> float:
    began = time.perf_counter()
    fn(*args)
    return time.perf_counter() - began


def latency_pair(method: EditingMethod, models: EvalModels, queries: Sequence[str]) -> tuple[list[float], list[float]]:
    """(method seconds, base seconds) per query, one query per call, interleaved, memos off."""
    method_s, base_s = [], []
    with models.uncached():
        models.base.generate([queries[0]], models.options)  # warm-up (allocations, first-call paths)
        method.predict([queries[0]])
        for i, query in enumerate(queries):
            order = (0, 1) if i % 2 == 0 else (1, 0)
            for which in order:
                if which == 0:
                    base_s.append(_timed(models.base.generate, [query], models.options))
                else:
                    method_s.append(_timed(method.predict, [query]))
    return method_s, base_s


def scope_speedup(scope: ScopeClassifier, queries: Sequence[str]) -> dict[str, Any]:
    """Per-query scope time, index vs re-encoding. Re-encoding N edits costs N encoder rows, so past
    ``REENCODE_BUDGET`` edits it is timed on the first ``REENCODE_BUDGET`` and scaled by N / budget
    (stated in the result as ``reencode_extrapolated_from``)."""
    edit_inputs = [edit.input for edit in scope.store.list()] if scope.store is not None else []
    scope.decide([queries[0]])  # warm-up
    index_s = [_timed(scope.decide, [q]) for q in queries]
    timed_inputs = edit_inputs[:REENCODE_BUDGET]
    scale = len(edit_inputs) / len(timed_inputs)
    repeats = max(1, min(len(queries), REENCODE_BUDGET // len(timed_inputs)))
    reencode_s = [scale * _timed(reencode_decide, scope.encoder, timed_inputs, q) for q in queries[:repeats]]
    return {
        "stored_edits": len(edit_inputs),
        "index_ms_per_query": 1000 * float(np.mean(index_s)),
        "reencode_ms_per_query": 1000 * float(np.mean(reencode_s)),
        "reencode_queries": repeats,
        "reencode_extrapolated_from": len(timed_inputs) if scale > 1 else None,
        "speedup": float(np.mean(reencode_s) / np.mean(index_s)),
    }


def measure_cost(
    method: EditingMethod,
    models: EvalModels,
    task: Any,
    applied: Sequence[EditExample],
    settings: Any,
) -> tuple[list[Any], dict[str, Any]]:
    """Latency ratios (out-of-scope rows; in-scope in the details) and, for methods with a scope
    index, the speedup over re-encoding, with ``len(applied)`` edits in memory."""
    from serac.eval.results import Score

    n = len(applied)
    q = settings.latency_queries
    pool = [p.input for p in task.dd_probes] if task.dd_probes else [p.input for e in applied for p in e.out_of_scope]
    out_of_scope = list(dict.fromkeys(pool))[:q]
    rng = random.Random(settings.seed)
    in_scope = [e.edit_input for e in rng.sample(list(applied), min(q, n))]
    detail: dict[str, Any] = {"latency_queries": len(out_of_scope)}
    scores = []
    if out_of_scope:
        method_s, base_s = latency_pair(method, models, out_of_scope)
        ratio = sum(method_s) / sum(base_s)
        detail.update(base_ms_per_query=1000 * float(np.mean(base_s)),
                      method_ms_per_query_out_of_scope=1000 * float(np.mean(method_s)),
                      latency_ratio_out_of_scope=ratio)
        scores.append(Score(task.name, method.name, "sequential", n, "cost", "latency_ratio_vs_base", ratio, len(base_s)))
    if in_scope:
        method_s, base_s = latency_pair(method, models, in_scope)
        detail.update(method_ms_per_query_in_scope=1000 * float(np.mean(method_s)),
                      base_ms_per_query_in_scope=1000 * float(np.mean(base_s)),
                      latency_ratio_in_scope=sum(method_s) / sum(base_s))
    scope = getattr(method, "scope", None)
    if isinstance(scope, ScopeClassifier) and len(scope.index) and out_of_scope:
        speed = scope_speedup(scope, out_of_scope)
        detail["scope"] = speed
        scores.append(Score(task.name, method.name, "sequential", n, "cost", "speedup_vs_reencode", speed["speedup"],
                            speed["reencode_queries"]))
    return scores, {k: (round(v, 4) if isinstance(v, float) else v) for k, v in detail.items()}
