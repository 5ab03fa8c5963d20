"""Fact-checking edits from VitaminC: one edit per piece of evidence.

SERAC's FC setup: the edit is the evidence itself, stated as true (input = evidence, target =
``supports``). Claims that share the evidence and are labelled supports/refutes are in scope: after
the edit their label should be the one the evidence gives. "Not enough info" claims that share the
evidence are out of scope (the evidence does not decide them, so the base model's label must stay),
and so is every claim about other evidence.
"""

from __future__ import annotations

import random
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Sequence

from serac.data.examples import EditExample, FactCheckExample, Probe, normalize_text
from serac.data.io import PathArg
from serac.edits import EVIDENCE_TARGET
from serac.errors import ConfigError, DataError

DECIDED = ("supports", "refutes")  # the base and counterfactual models' labels
UNDECIDED = "not enough info"


@dataclass(frozen=True)
class FactEdit:
    """One piece of evidence and the claims about it."""

    evidence: str
    in_scope: tuple[Probe, ...]  # claims the evidence decides; target = their label
    hard_out_of_scope: tuple[Probe, ...]  # "not enough info" claims on the same evidence
    record_ids: tuple[str, ...] = ()

    @property
    def edit_input(self) -> str:
        return self.evidence

    @property
    def edit_target(self) -> str:
        return EVIDENCE_TARGET

    @property
    def claims(self) -> tuple[Probe, ...]:
        return self.in_scope + self.hard_out_of_scope


def build_fc_edits(examples: Iterable[FactCheckExample], *, min_evidence_words: int = 0) -> list[FactEdit]:
    """Group claims by their (normalised) evidence, in order of first appearance.

    ``min_evidence_words`` drops short evidence (SERAC's VitaminC loader keeps evidence of more
    than 10 words); 0 keeps everything. Evidence whose claims are all "not enough info" still
    makes an edit: its claims are the hard out-of-scope cases.
    """
    groups: dict[str, list[FactCheckExample]] = {}
    for example in examples:
        if example.label not in (*DECIDED, UNDECIDED):
            raise DataError(
                f"{example.record_id or 'a VitaminC record'}: label {example.label!r}; expected one of "
                f"{', '.join((*DECIDED, UNDECIDED))}"
            )
        if len(example.evidence.split()) < min_evidence_words:
            continue
        groups.setdefault(normalize_text(example.evidence), []).append(example)
    edits = []
    for members in groups.values():
        edits.append(
            FactEdit(
                evidence=members[0].evidence.strip(),
                in_scope=tuple(Probe(m.claim, m.label) for m in members if m.label in DECIDED),
                hard_out_of_scope=tuple(Probe(m.claim, None) for m in members if m.label == UNDECIDED),
                record_ids=tuple(m.record_id for m in members),
            )
        )
    return edits


def vitaminc_files(data: PathArg | Sequence[PathArg], split: str) -> list[Path]:
    """A VitaminC sample directory -> its ``train_*.jsonl`` (split "train") or ``test.jsonl`` ("eval");
    explicit files are used as given."""
    if isinstance(data, (str, Path)) and Path(data).is_dir():
        pattern = "train_*.jsonl" if split == "train" else "test.jsonl"
        files = sorted(Path(data).glob(pattern))
        if not files:
            raise DataError(f"{data} has no {pattern}; pass the vitaminc_sample directory or the files")
        return files
    return [Path(p) for p in ([data] if isinstance(data, (str, Path)) else data)]  # type: ignore[union-attr]


def edit_example(edit: FactEdit) -> EditExample:
    """A piece of evidence as the evaluation runner's edit: input = the evidence, target = supports;
    in scope: the evidence itself (not asked: it is no claim), then the claims it decides, each with
    its own label; out of scope (locality): its "not enough info" claims, whose base label must stay."""
    return EditExample(
        edit_input=edit.evidence,
        edit_target=EVIDENCE_TARGET,
        in_scope=(Probe(edit.evidence, EVIDENCE_TARGET), *edit.in_scope),
        out_of_scope=edit.hard_out_of_scope,
        record_id=",".join(edit.record_ids),
    )


def load_fc_task(data: PathArg | Sequence[PathArg], limit: int | None = None
                 ) -> tuple[list[EditExample], list[Probe] | None, str]:
    """The fc evaluation: (edits, drawdown claims, where they come from). The first ``limit``
    pieces of evidence of the test file(s) are the edits; every claim of the remaining evidence,
    which is never edited, is the drawdown set (none when every piece of evidence is an edit: then
    drawdown falls back to the edits' "not enough info" claims)."""
    from serac.data import load_vitaminc

    edits = build_fc_edits(load_vitaminc(vitaminc_files(data, "eval")))
    if not edits:
        raise DataError(f"{data} holds no VitaminC evidence")
    return fc_task(edits, limit)


def fc_task(edits: Sequence[FactEdit], limit: int | None = None) -> tuple[list[EditExample], list[Probe] | None, str]:
    """:func:`load_fc_task` for edits built elsewhere (e.g. ``serac.tasks.fc.corpora``'s Fool Me Twice)."""
    used, rest = (list(edits), []) if limit is None else (list(edits[:limit]), list(edits[limit:]))
    claims = [Probe(p.input, None) for e in rest for p in e.claims]
    source = (f"{len(claims)} claims about the {len(rest)} pieces of evidence never edited" if claims
              else 'the edited evidence\'s "not enough info" claims')
    return [edit_example(e) for e in used], claims or None, source


def split_edits(
    edits: Sequence[FactEdit], fraction: float, seed: int = 0
) -> tuple[list[FactEdit], list[FactEdit]]:
    """(kept, held out): a seeded random ``fraction`` of the edits held out, both in input order.
    Splitting by evidence keeps every claim of one evidence on the same side."""
    if not 0.0 <= fraction < 1.0:
        raise ConfigError(f"the held-out fraction must be in [0, 1), got {fraction}")
    held = set(random.Random(seed).sample(range(len(edits)), round(len(edits) * fraction)))
    return [e for i, e in enumerate(edits) if i not in held], [e for i, e in enumerate(edits) if i in held]


def base_training_pairs(edits: Sequence[FactEdit]) -> tuple[list[str], list[str]]:
    """(claims, labels) for the claim-only base classifier: decided claims only."""
    claims = [p.input for e in edits for p in e.in_scope]
    return claims, [p.target for e in edits for p in e.in_scope]  # type: ignore[misc]


def counterfactual_training_pairs(edits: Sequence[FactEdit]) -> tuple[list[tuple[str, str]], list[str]]:
    """((evidence, claim) pairs, labels) for the counterfactual classifier: decided claims only."""
    pairs = [(e.evidence, p.input) for e in edits for p in e.in_scope]
    return pairs, [p.target for e in edits for p in e.in_scope]  # type: ignore[misc]


# -- extra training pairs for the (evidence, claim) classifier -------------------------------------
# A few hundred VitaminC claims are too few to teach a classifier to compare a claim with its
# evidence (trained on them alone it scored at chance on held-out claims). Two cheap sources of
# contrastive pairs teach the skill the task needs, "does the claim state what the evidence states?":
_NUMBER = re.compile(r"\d[\d,.]*")


def counterfact_pairs(
    examples: Sequence[EditExample], n: int, seed: int = 0
) -> tuple[list[tuple[str, str]], list[str]]:
    """CounterFact edits as evidence/claim pairs: the edit stated as evidence ("Toko Yasuda, the
    piano."), a rephrasing with the edit's answer (supports) and with the original answer (refutes).
    ``n`` seeded records, two pairs each. Only the *train* file should be passed."""
    rng = random.Random(seed)
    chosen = rng.sample(list(examples), min(n, len(examples)))
    pairs, labels = [], []
    for example in chosen:
        if not example.original_target:
            continue
        evidence = f"{example.edit_input} {example.edit_target}."
        claim = rng.choice([p.input for p in example.generalization_probes] or [example.edit_input])
        pairs += [(evidence, f"{claim} {example.edit_target}."), (evidence, f"{claim} {example.original_target}.")]
        labels += ["supports", "refutes"]
    return pairs, labels


def number_swaps(
    pairs: Sequence[tuple[str, str]], labels: Sequence[str], seed: int = 0
) -> tuple[list[tuple[str, str]], list[str]]:
    """For each supported claim holding a number, the same claim with one digit of one number
    changed, labelled refutes (VitaminC's revisions often turn on a number)."""
    rng = random.Random(seed)
    out_pairs, out_labels = [], []
    for (evidence, claim), label in zip(pairs, labels):
        numbers = _NUMBER.findall(claim)
        if label != "supports" or not numbers:
            continue
        number = rng.choice(numbers)
        digit = rng.choice([i for i, ch in enumerate(number) if ch.isdigit()])
        changed = number[:digit] + str((int(number[digit]) + rng.randint(1, 9)) % 10) + number[digit + 1 :]
        out_pairs.append((evidence, claim.replace(number, changed, 1)))
        out_labels.append("refutes")
    return out_pairs, out_labels
