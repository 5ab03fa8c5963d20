"""FC metrics, as the paper defines them for a classifier.

- ES (edit success): the share of in-scope claims whose predicted label is the one the evidence
  gives them.
- DD (drawdown): the share of out-of-scope claims whose predicted label changed from the unedited
  base model's.
"""

from __future__ import annotations

from typing import Sequence


def edit_success(predictions: Sequence[str], labels: Sequence[str]) -> float:
    if len(predictions) != len(labels):
        raise ValueError(f"{len(predictions)} predictions but {len(labels)} labels")
    if not labels:
        return float("nan")
    return sum(p == g for p, g in zip(predictions, labels)) / len(labels)


def drawdown(before: Sequence[str], after: Sequence[str]) -> float:
    if len(before) != len(after):
        raise ValueError(f"{len(before)} predictions before the edits but {len(after)} after")
    if not before:
        return float("nan")
    return sum(b != a for b, a in zip(before, after)) / len(before)
