"""FC evaluation: edits applied in batches of k (a fresh memory per batch) or accumulated one at a
time (sequential), for SERAC and the baselines, scored as ES and DD (see ``metrics``).

Methods:
- ``serac``: the router: claims near a stored evidence (cosine >= the calibrated threshold) go to
  the (evidence, claim) classifier, the rest to the untouched base classifier.
- ``icl``: retrieval in context with no scope decision: every claim is read together with its
  nearest stored evidence by the (evidence, claim) classifier. (The base classifier reads claims
  only, so it cannot take the evidence in its input itself.)
- ``ft``: fine-tuning the base classifier on the edits (evidence -> "supports") until it labels
  them so (at most ``ft_steps`` steps per edit batch), then labelling the claims with it.

Rows of a batch size pool every batch's claims (micro-average), so every edit counts once. The
baselines answer every claim anew in every batch, so they run the first ``baseline_max_batches``
batches of each size (SERAC runs them all; its answers are cached exactly).
"""

from __future__ import annotations

import copy
import logging
import time
from dataclasses import dataclass
from typing import ClassVar
from typing import Sequence

from serac.base import SequenceClassifier
from serac.counterfactual import PairClassifierCounterfactual
from serac.train.classifier import train_classifier
from serac.config import POSITIVE_INT, POSITIVE_NUMBER, Config, each, one_of, option, optional
from serac.tasks import TASK_METHODS
from serac.tasks.common import (
    BATCH_SIZES,
    CachedCounterfactual,
    CachedEncoder,
    CachedTextModel,
    checkpoints,
    edit_batches,
    mean,
    result_row,
)
from serac.tasks.fc.data import EVIDENCE_TARGET, FactEdit
from serac.tasks.fc.metrics import drawdown, edit_success
from serac.tasks.fc.model import FCParts, editor_from_parts

logger = logging.getLogger(__name__)

TASK = "fc"
METHODS = TASK_METHODS


@dataclass
class FCEvalConfig(Config):
    """How the FC task is evaluated."""

    section: ClassVar[str] = "fc"

    methods: tuple[str, ...] = option(METHODS, "Methods to evaluate.", check=each(one_of(METHODS), "FC methods"))
    batch_sizes: tuple[int, ...] = option(BATCH_SIZES, "Batch sizes k.", check=each(POSITIVE_INT, "positive integers"))
    sequential: bool = option(True, "Also run the sequential setting.")
    baseline_max_batches: int | None = option(
        10, "The baselines answer every claim anew in every batch (k=1: 100 batches x ~110 claims): cap them.",
        check=optional(POSITIVE_INT))
    ft_steps: int = option(10, "Fine-tuning baseline steps.", check=POSITIVE_INT)
    ft_lr: float = option(5e-5, "Fine-tuning baseline learning rate.", check=POSITIVE_NUMBER)


class _RouterSession:
    """A fresh EditedModel over shared (cached) models."""

    def __init__(self, parts: FCParts, shared: dict, threshold: float | None) -> None:
        self.editor = editor_from_parts(
            parts,
            threshold=threshold,
            base=shared["base"],
            counterfactual=shared["cf"],
            encoder=shared["encoder"],
        )

    def add(self, edits: Sequence[FactEdit]) -> None:
        self.editor.add_many([(e.evidence, EVIDENCE_TARGET) for e in edits])

    def predict(self, claims: Sequence[str]) -> tuple[list[str], list[str | None]]:
        answers = self.editor.generate(list(claims))
        return [a.text for a in answers], [a.edit.input if a.edit else None for a in answers]


class _FineTuneSession:
    """A copy of the base classifier, fine-tuned on each batch of edits as it arrives."""

    def __init__(self, base: SequenceClassifier, steps: int, lr: float) -> None:
        self.classifier = copy.deepcopy(base)
        self.steps, self.lr = steps, lr

    def add(self, edits: Sequence[FactEdit]) -> None:
        evidence = [e.evidence for e in edits]
        for _ in range(self.steps):
            if all(label == EVIDENCE_TARGET for label in self.classifier.predict(evidence)):
                break
            train_classifier(
                self.classifier,
                evidence,
                [EVIDENCE_TARGET] * len(evidence),
                epochs=1,
                lr=self.lr,
                head_lr=self.lr,
                batch_size=len(evidence),
                max_steps=1,
            )

    def predict(self, claims: Sequence[str]) -> tuple[list[str], list[str | None]]:
        return self.classifier.predict(list(claims)), [None] * len(claims)


class _Tally:
    """Pooled counts for one (method, mode, n) cell."""

    def __init__(self) -> None:
        self.gold: list[str] = []
        self.pred: list[str] = []
        self.pre_in: list[str] = []
        self.routed_right: list[bool] = []
        self.before: dict[str, list[str]] = {"hard": [], "other": []}
        self.after: dict[str, list[str]] = {"hard": [], "other": []}

    def rows(self, method: str, mode: str, n: int, routed: bool) -> list[dict]:
        before = self.before["hard"] + self.before["other"]
        after = self.after["hard"] + self.after["other"]
        values = {
            "es": edit_success(self.pred, self.gold),
            "dd": drawdown(before, after),
            "dd_hard": drawdown(self.before["hard"], self.after["hard"]),
            "dd_other": drawdown(self.before["other"], self.after["other"]),
            "es_pre": edit_success(self.pre_in, self.gold),  # the base model before any edit
            "n_in_scope": len(self.gold),
            "n_out_of_scope": len(before),
        }
        if routed:
            values["scope_recall"] = mean(self.routed_right)  # NaN when no claim is in scope
        return [
            result_row(TASK, method, mode, n, "generation", metric, value) for metric, value in values.items()
        ]


def _score(
    session,
    edits: Sequence[FactEdit],
    chosen: Sequence[int],
    pool: Sequence[FactEdit],
    pre: dict[str, str],
    tally: _Tally,
) -> None:
    """Score a session holding ``chosen`` edits: their decided claims in scope, their "not enough
    info" claims (hard) and every claim of the other ``pool`` edits (other) out of scope."""
    chosen_set = set(chosen)
    in_scope = [(edits[i].evidence, p) for i in chosen for p in edits[i].in_scope]
    hard = [p.input for i in chosen for p in edits[i].hard_out_of_scope]
    other = [p.input for j, e in enumerate(pool) if j not in chosen_set for p in e.claims]
    claims = [p.input for _, p in in_scope] + hard + other
    predicted, routed_to = session.predict(claims)
    n_in, n_hard = len(in_scope), len(hard)
    for (evidence, probe), label, edit_input in zip(in_scope, predicted[:n_in], routed_to[:n_in]):
        tally.gold.append(probe.target)
        tally.pred.append(label)
        tally.pre_in.append(pre[probe.input])
        tally.routed_right.append(edit_input == evidence)
    for name, texts, labels in (
        ("hard", hard, predicted[n_in : n_in + n_hard]),
        ("other", other, predicted[n_in + n_hard :]),
    ):
        tally.before[name].extend(pre[t] for t in texts)
        tally.after[name].extend(labels)


def evaluate_fc(parts: FCParts, edits: Sequence[FactEdit], config: FCEvalConfig | None = None) -> list[dict]:
    """ES/DD rows for every method, batch size and sequential checkpoint. Edits are used in the
    given order (shuffle before calling for a random order)."""
    config = config or FCEvalConfig()
    edits = list(edits)
    shared = {
        "base": CachedTextModel(parts.base),
        "cf": CachedCounterfactual(PairClassifierCounterfactual(parts.counterfactual)),
        "encoder": CachedEncoder(parts.encoder),
    }
    all_claims = [p.input for e in edits for p in e.claims]
    pre = dict(zip(all_claims, shared["base"].generate(all_claims)))
    rows: list[dict] = []

    def session(method: str):
        if method == "serac":
            return _RouterSession(parts, shared, None)
        if method == "icl":
            return _RouterSession(parts, shared, -1.0)  # every claim takes its nearest evidence
        return _FineTuneSession(parts.base, config.ft_steps, config.ft_lr)

    for method in config.methods:
        routed = method != "ft"
        max_batches = config.baseline_max_batches if method != "serac" else None
        for k in config.batch_sizes:
            started = time.perf_counter()
            batches = edit_batches(len(edits), k, max_batches)
            if not batches:
                logger.warning("fc: %d edits are fewer than a batch of %d; skipped", len(edits), k)
                continue
            tally = _Tally()
            for batch in batches:
                current = session(method)
                current.add([edits[i] for i in batch])
                _score(current, edits, list(batch), edits, pre, tally)
            rows += tally.rows(method, "batch", k, routed)
            rows.append(result_row(TASK, method, "batch", k, "generation", "n_batches", len(batches)))
            logger.info(
                "fc %s batch k=%d: %d batches in %.1fs",
                method,
                k,
                len(batches),
                time.perf_counter() - started,
            )
        if config.sequential:
            started = time.perf_counter()
            current = session(method)
            added = 0
            for n in checkpoints(len(edits), config.batch_sizes):
                for edit in edits[added:n]:  # one edit at a time, never a batch
                    current.add([edit])
                added = n
                tally = _Tally()
                _score(current, edits, list(range(n)), edits, pre, tally)
                rows += tally.rows(method, "sequential", n, routed)
            logger.info("fc %s sequential: %.1fs", method, time.perf_counter() - started)
    return rows
