"""Measure the scope classifier on held-out edits and choose its in-scope threshold.

All validation edits sit in one index at once (as at inference, where every stored edit competes).
For each in-scope query (a rephrasing) we record the best cosine and the rank of its own edit (the
right *fact*: edits of the same fact are interchangeable); for each out-of-scope query (an NQ
question, a CounterFact same-relation prompt) the best cosine. The threshold maximises, averaged
over the datasets, (share of in-scope queries routed to an edit) - (share of out-of-scope queries
routed to an edit): the retrieval-side proxy for ES - DD. Among equally good thresholds it takes
the middle one, the most robust to a shift between validation and deployment.

``held_out`` adds the other side of deployment that a task with few out-of-scope queries lacks
(fc's claims, sentiment's prompts): each in-scope query scored against the index *without* its
own fact, i.e. the query of an edit that was never made.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, Sequence

import faiss
import numpy as np

from serac.facts import mask_shared_span
from serac.train.pairs import EditRecord, SameFactPairs

Embed = Callable[[Sequence[str]], np.ndarray]


@dataclass
class SourceScores:
    """Per dataset: best scores of in-scope and out-of-scope queries, and in-scope ranks."""

    positive: list[float] = field(default_factory=list)
    positive_rank: list[int] = field(default_factory=list)  # 0 = right fact first; large = missed
    negative: list[float] = field(default_factory=list)


MISSED = 10**6


def score_validation(embed: Embed, records: Sequence[EditRecord], depth: int = 10,
                     held_out: bool = False) -> dict[str, SourceScores]:
    """Index every record's key; score each in-scope and out-of-scope query against all of them
    (and, with ``held_out``, each in-scope query against the keys of the other facts: a negative)."""
    if not records:
        return {}
    keys = embed([r.key for r in records])
    index = faiss.IndexFlatIP(keys.shape[1])
    index.add(np.ascontiguousarray(keys, dtype=np.float32))
    groups = [r.group for r in records]

    positive_rows = [(i, q) for i, r in enumerate(records) for q in r.positives]
    negative_rows = [(i, q) for i, r in enumerate(records) for q in r.negatives]
    out: dict[str, SourceScores] = {}
    if positive_rows:
        scores, ids = index.search(embed([q for _, q in positive_rows]), min(depth, len(records)))
        for (i, _), row_scores, row_ids in zip(positive_rows, scores, ids):
            part = out.setdefault(records[i].source, SourceScores())
            part.positive.append(float(row_scores[0]))
            hits = [rank for rank, j in enumerate(row_ids) if j >= 0 and groups[j] == groups[i]]
            part.positive_rank.append(hits[0] if hits else MISSED)
            if held_out:  # the best key of another fact: this query when its own edit is not stored
                others = [float(v) for v, j in zip(row_scores, row_ids) if j >= 0 and groups[j] != groups[i]]
                if others:
                    part.negative.append(others[0])
    if negative_rows:
        scores, _ = index.search(embed([q for _, q in negative_rows]), 1)
        for (i, _), row_scores in zip(negative_rows, scores):
            out.setdefault(records[i].source, SourceScores()).negative.append(float(row_scores[0]))
    return out


def choose_threshold(scores: dict[str, SourceScores]) -> tuple[float, float]:
    """(threshold, objective): maximise the mean over datasets of in-scope rate - false-positive rate."""
    parts = [s for s in scores.values() if s.positive or s.negative]
    if not parts:
        raise ValueError("no validation scores to calibrate the threshold on")
    every = np.unique(np.concatenate([np.asarray(s.positive + s.negative, dtype=np.float64) for s in parts]))
    candidates = np.concatenate([[every[0] - 1e-3], (every[:-1] + every[1:]) / 2, [every[-1] + 1e-3]])
    objective = np.zeros_like(candidates)
    for part in parts:
        if part.positive:
            pos = np.sort(np.asarray(part.positive))
            objective += 1.0 - np.searchsorted(pos, candidates, side="left") / len(pos)
        if part.negative:
            neg = np.sort(np.asarray(part.negative))
            objective -= 1.0 - np.searchsorted(neg, candidates, side="left") / len(neg)
    objective /= len(parts)
    best = objective.max()
    tied = candidates[np.isclose(objective, best, atol=1e-12)]
    threshold = float(tied[len(tied) // 2])
    return float(np.clip(threshold, -1.0, 1.0)), float(best)


def summarize(scores: dict[str, SourceScores], threshold: float, n_edits: int) -> dict[str, object]:
    """Metrics at ``threshold``, per dataset, for the training report."""
    report: dict[str, object] = {"threshold": threshold, "index_size": n_edits, "sources": {}}
    for source, part in scores.items():
        ranks = np.asarray(part.positive_rank)
        pos = np.asarray(part.positive)
        neg = np.asarray(part.negative)
        entry: dict[str, object] = {"in_scope_queries": int(len(pos)), "out_of_scope_queries": int(len(neg))}
        if len(pos):
            for k in (1, 3, 5, 10):
                entry[f"top{k}"] = round(float((ranks < k).mean()), 4)
            entry["in_scope_rate"] = round(float((pos >= threshold).mean()), 4)
            # routed to an edit and the right fact is the best candidate
            entry["routed_top1"] = round(float(((pos >= threshold) & (ranks == 0)).mean()), 4)
        if len(neg):
            entry["false_positive_rate"] = round(float((neg >= threshold).mean()), 4)
        report["sources"][source] = entry  # type: ignore[index]
    return report


def choose_same_fact_threshold(
    same: np.ndarray, other: np.ndarray, max_false_merge: float = 0.01
) -> tuple[float, dict[str, float]]:
    """The lowest threshold that merges at most ``max_false_merge`` of the other-relation pairs
    (a false merge answers an edit's own input from another fact: the costly error), with the
    share of same-fact pairs it still merges (a miss only lets an older wording of a re-edited
    fact answer from its own edit)."""
    if not len(other):
        raise ValueError("no other-relation pairs to calibrate the same-fact threshold on")
    ranked = np.sort(np.asarray(other, dtype=np.float64))
    allowed = int(np.floor(max_false_merge * len(ranked)))  # pairs that may clear it
    threshold = float(np.nextafter(ranked[len(ranked) - 1 - allowed], np.inf))
    same = np.asarray(same, dtype=np.float64)
    report = {
        "threshold": threshold,
        "same_fact_pairs": int(len(same)),
        "other_relation_pairs": int(len(ranked)),
        "same_fact_merged": round(float((same >= threshold).mean()), 4) if len(same) else float("nan"),
        "other_relation_merged": round(float((ranked >= threshold).mean()), 4),
    }
    return float(np.clip(threshold, -1.0, 1.0)), report


def score_same_fact(embed: Embed, pairs: SameFactPairs) -> tuple[np.ndarray, np.ndarray]:
    """The same-fact similarity (subject-masked cosine) of every same-fact and other-relation pair."""

    def cosines(rows: Sequence[tuple[str, str]]) -> np.ndarray:
        if not rows:
            return np.zeros(0, dtype=np.float32)
        masked = [mask_shared_span(a, b) for a, b in rows]
        vectors = embed([text for pair in masked for text in pair])
        return np.sum(vectors[0::2] * vectors[1::2], axis=1)

    return cosines(pairs.same), cosines(pairs.other)
