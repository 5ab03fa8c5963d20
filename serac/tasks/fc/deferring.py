"""A three-way (evidence, claim) classifier as the FC counterfactual model.

The base classifier labels claims supports / refutes; the pair classifier also knows "not enough
info": the stored evidence does not decide the claim. Such a claim is not about that edit, so the
base model's own label must stand (answering "not enough info" would count as drawdown on exactly
the claims the paper's DD measures). :class:`DeferringPairClassifier` does that: it has the
``predict`` of a :class:`~serac.base.SequenceClassifier`, so
``PairClassifierCounterfactual`` takes it unchanged.
"""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np

from serac.tasks.fc.data import DECIDED, UNDECIDED


class DeferringPairClassifier:
    """``pair``'s label for each (evidence, claim), except that "not enough info" becomes ``base``'s
    label for the claim (``base``: any text model, e.g. the FC base classifier)."""

    def __init__(self, pair: Any, base: Any) -> None:
        self.pair = pair
        self.base = base
        self.labels = tuple(label for label in pair.labels if label != UNDECIDED)

    def predict(self, items: Sequence[tuple[str, str]]) -> list[str]:
        labels = list(self.pair.predict(items))
        undecided = [i for i, label in enumerate(labels) if label == UNDECIDED]
        if undecided:
            for i, label in zip(undecided, self.base.generate([items[i][1] for i in undecided])):
                labels[i] = label
        return labels


def decided_predictions(classifier: Any, items: Sequence[tuple[str, str]]) -> list[str]:
    """The more probable of supports / refutes for each pair (a 3-way classifier read as 2-way)."""
    columns = [classifier.labels.index(label) for label in DECIDED]
    probabilities = np.asarray(classifier.predict_proba(items))[:, columns]
    return [DECIDED[int(i)] for i in probabilities.argmax(axis=1)] if len(items) else []
