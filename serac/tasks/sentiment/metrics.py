"""Sentiment-editing metrics.

- Headline ES: the share of generated in-scope replies that the sentiment judge labels with the
  edit's sentiment.
- Paper ES (teacher-forced, Mitchell et al. 2022): ``z_sent * z_topic`` with
  ``z_sent = sigmoid(lp_post(desired) - lp_post(opposite))`` (the sentiment margin) and
  ``z_topic = min(1, exp(lp_post(desired) - lp_pre(desired)))`` (topic retention: the edit must
  not make on-topic replies of the desired sentiment less likely), where ``lp`` is the mean
  per-token log-probability of reference replies for the topic, after / before the edit.
- DD: the share of out-of-scope (other-topic) replies that changed at all from the unedited
  model's, and the share whose judged sentiment changed.
"""

from __future__ import annotations

import math
from typing import Sequence


def sentiment_success(labels: Sequence[str], desired: Sequence[str]) -> float:
    if len(labels) != len(desired):
        raise ValueError(f"{len(labels)} labels but {len(desired)} desired sentiments")
    return sum(a == b for a, b in zip(labels, desired)) / len(labels) if labels else float("nan")


def changed_share(before: Sequence[str], after: Sequence[str]) -> float:
    """The share of rows whose value differs before and after (replies or their labels)."""
    if len(before) != len(after):
        raise ValueError(f"{len(before)} values before but {len(after)} after")
    return sum(a != b for a, b in zip(before, after)) / len(before) if before else float("nan")


def paper_es(desired_post: float, opposite_post: float, desired_pre: float) -> tuple[float, float, float]:
    """(ES, z_sent, z_topic) from mean per-token log-probabilities of the reference replies."""
    z_sent = 1.0 / (1.0 + math.exp(-(desired_post - opposite_post)))
    z_topic = min(1.0, math.exp(desired_post - desired_pre))
    return z_sent * z_topic, z_sent, z_topic
