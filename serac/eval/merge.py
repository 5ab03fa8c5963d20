"""Merging a bench run of some methods into the saved results of earlier runs.

A full ``serac bench`` takes over an hour here; adding or re-measuring one method (``serac bench
--methods grace``) should not re-run the others. The new run's rows replace the saved rows of the same
part and method (all of that method's rows in that part: its N, scorings and cost), every other row is
kept, and each part records which run produced each merged method's rows (``sources``: command, start
time, wall time, sample sizes), so the report says which rows come from which run.

The saved form is what :func:`serac.eval.bench.write_outputs` writes: ``run.json`` (a dict with
``parts``, one per :class:`RunResult` in ``details.json``, in the same order).
"""

from __future__ import annotations

import copy
from collections.abc import Sequence
from typing import Any

from serac.eval.results import RunResult

Saved = tuple[dict[str, Any], list[RunResult]]  # (run.json, the parts' results in the same order)


def _source(run: dict[str, Any], part: dict[str, Any], method: str) -> dict[str, Any]:
    """Where a part's rows of ``method`` come from: the run's command and start, and the part's sizes
    (and grace's deferral radius there)."""
    settings = part["settings"]
    return {"command": run["command"], "started": run["started"], "wall_s": part["wall_s"],
            "machine": run.get("machine", {}), "sample": settings.get("sample"), "dd_sample": part["dd_sample"],
            "checkpoints": settings.get("checkpoints"), "batch_sizes": settings.get("batch_sizes"),
            **({"grace_epsilon": part["grace_epsilon"]} if method == "grace" and "grace_epsilon" in part else {})}


def _keep_order(items: Sequence[Any], method_of: Any, order: Sequence[str]) -> list[Any]:
    """``items`` sorted by their method's place in ``order`` (stable: each method's own order kept)."""
    rank = {m: i for i, m in enumerate(order)}
    return sorted(items, key=lambda item: rank.get(method_of(item), len(rank)))


def _merge_part(old_part: dict[str, Any], old: RunResult, part: dict[str, Any], new: RunResult,
                sources: dict[str, dict[str, Any]]) -> tuple[dict[str, Any], RunResult]:
    replaced = set(part["methods"])
    methods = list(old_part["methods"]) + [m for m in part["methods"] if m not in old_part["methods"]]

    def note_method(note: str) -> str:
        return note.split(":", 1)[0]

    merged = RunResult(
        old.task, old.mode, old.settings,
        scores=_keep_order([s for s in old.scores if s.method not in replaced] + new.scores, lambda s: s.method, methods),
        notes=[n for n in old.notes if note_method(n) not in replaced] + list(new.notes),
        details=_keep_order([d for d in old.details if d.get("method") not in replaced] + new.details,
                            lambda d: d.get("method"), methods),
        dd_source=old.dd_source, wall_s=old.wall_s, cache_stats=old.cache_stats,
    )
    caps = {**old_part["settings"].get("method_caps", {}),
            **{m: c for m, c in part["settings"].get("method_caps", {}).items() if m in replaced}}
    merged_part = {**old_part, "methods": methods, "settings": {**old_part["settings"], "method_caps": caps},
                   "sources": {**old_part.get("sources", {}), **{m: sources[m] for m in part["methods"]}}}
    if "grace" in replaced:  # the part's grace radius is the new run's
        merged_part.pop("grace_epsilon", None)
        if "grace_epsilon" in part:
            merged_part["grace_epsilon"] = part["grace_epsilon"]
    return merged_part, merged


def merge_runs(saved: Saved, new: Saved) -> Saved:
    """``saved`` with ``new``'s rows merged in (neither argument is changed). Merging the same run
    twice gives the same result as once."""
    run, results = copy.deepcopy(saved[0]), list(saved[1])
    new_run, new_results = new
    index = {p["name"]: i for i, p in enumerate(run["parts"])}
    for part, result in zip(new_run["parts"], new_results):
        sources = {m: part.get("sources", {}).get(m) or _source(new_run, part, m) for m in part["methods"]}
        if part["name"] in index:
            i = index[part["name"]]
            run["parts"][i], results[i] = _merge_part(run["parts"][i], results[i], part, result, sources)
        else:  # a part the saved run did not have: all of its rows come from the new run
            index[part["name"]] = len(run["parts"])
            run["parts"].append({**copy.deepcopy(part), "sources": sources})
            results.append(result)
    entry = {"command": new_run["command"], "started": new_run["started"], "wall_s": new_run["wall_s"],
             "finished": new_run.get("finished", True), "parts": {p["name"]: list(p["methods"]) for p in new_run["parts"]}}
    run["merged"] = [m for m in run.get("merged", [])
                     if (m["command"], m["started"]) != (entry["command"], entry["started"])] + [entry]
    return run, results
