"""Labelled (evidence, claim) corpora for the FC task's pair classifier, and the larger FC editing
evaluations built from them.

``../shared/data/fact_checking`` (see its PROVENANCE.md) holds e-SNLI dev/test, Climate-FEVER, Fool
Me Twice (FM2) dev/test and Symmetric FEVER (v0.1 generated, v0.2 dev/test). Every loader returns
:class:`LabelledPair` records with the FC task's labels (``supports`` / ``refutes`` /
``not enough info``, as in :mod:`serac.data.vitaminc`).

Which files may train a classifier is decided here, once (:func:`classifier_training_pairs`): the
VitaminC sample's test split, FM2 test and Symmetric FEVER dev/test are the tests; Symmetric FEVER
v0.1 *generated* is the pool v0.2 dev/test were drawn from (all 475 of its claims are in
them), so it is left out too. Any training pair whose claim or evidence also occurs in a test file is
dropped, so an overlap between sources can never leak a test claim into training.
"""

from __future__ import annotations

import random
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from serac.data.examples import FactCheckExample, Probe, normalize_text
from serac.data.io import PathArg, iter_jsonl, require_id, require_record, require_str
from serac.data.vitaminc import LABELS, load_vitaminc
from serac.errors import DataError
from serac.tasks.fc.data import DECIDED, FactEdit, build_fc_edits

SUPPORTS, REFUTES, NOT_ENOUGH_INFO = LABELS

# Every spelling of a label the corpora use, case- and separator-folded -> the FC task's label.
_LABEL_MAP = {
    "supports": SUPPORTS,
    "entailment": SUPPORTS,
    "refutes": REFUTES,
    "contradiction": REFUTES,
    "not enough info": NOT_ENOUGH_INFO,
    "neutral": NOT_ENOUGH_INFO,
}

_SENTENCE_SEP = "\u2029"  # joins FM2's gold sentences for fm2_edits; never in the data
TEST_SPLITS = ("vitaminc:test", "fm2:test", "symmetric_fever:dev", "symmetric_fever:test")


@dataclass(frozen=True)
class LabelledPair:
    """One (evidence, claim) pair with its FC label, where it came from (``source``, e.g.
    ``fm2:test``) and the Wikipedia page of the evidence when the corpus names one."""

    evidence: str
    claim: str
    label: str
    source: str
    page: str | None = None
    record_id: str = ""

    def as_example(self) -> FactCheckExample:
        return FactCheckExample(claim=self.claim, evidence=self.evidence, label=self.label,
                                record_id=self.record_id)


def fc_label(raw: object, where: str) -> str:
    """The FC label for a corpus label (SUPPORTS, entailment, NOT_ENOUGH_INFO, neutral, ...)."""
    if not isinstance(raw, str):
        raise DataError(f"{where}: label is {raw!r}; expected a string")
    key = " ".join(raw.replace("_", " ").casefold().split())
    if key not in _LABEL_MAP:
        raise DataError(f"{where}: label {raw!r} is not one of SUPPORTS/REFUTES/NOT_ENOUGH_INFO or "
                        "entailment/contradiction/neutral (any case)")
    return _LABEL_MAP[key]


def _split(split: str, valid: Sequence[str], corpus: str) -> str:
    if split not in valid:
        raise DataError(f"{corpus} split {split!r} does not exist; valid: {', '.join(valid)}")
    return split


def _lines(path: Path) -> list[str]:
    try:
        return path.read_text(encoding="utf-8").splitlines()
    except FileNotFoundError:
        raise DataError(f"{path}: file not found; expected it under the fact_checking data folder") from None


# -- loaders -------------------------------------------------------------------------------------
def load_esnli(root: PathArg, split: str = "dev") -> list[LabelledPair]:
    """e-SNLI ``esnli/{s1,s2,labels}.<split>`` (line-aligned premise, hypothesis, label)."""
    _split(split, ("dev", "test"), "e-SNLI")
    folder = Path(root) / "esnli"
    premises, hypotheses, labels = (_lines(folder / f"{name}.{split}") for name in ("s1", "s2", "labels"))
    if not len(premises) == len(hypotheses) == len(labels):
        raise DataError(f"{folder}: s1/s2/labels.{split} have {len(premises)}/{len(hypotheses)}/{len(labels)} "
                        "lines; expected the same number (one pair per line)")
    pairs = []
    for i, (premise, hypothesis, label) in enumerate(zip(premises, hypotheses, labels), start=1):
        if not premise.strip() or not hypothesis.strip():
            continue
        pairs.append(LabelledPair(premise.strip(), hypothesis.strip(),
                                  fc_label(label.strip(), f"{folder}/labels.{split} line {i}"),
                                  f"esnli:{split}", record_id=f"esnli:{split}:{i}"))
    return pairs


def load_climate_fever(root: PathArg) -> list[LabelledPair]:
    """Climate-FEVER: one pair per (claim, evidence sentence), labelled by ``evidence_label``;
    ``page`` is the evidence's article."""
    pairs = []
    for where, _, raw in iter_jsonl(Path(root) / "climate_fever" / "climate-fever.jsonl"):
        record = require_record(raw, where)
        claim = require_str(record, "claim", where)
        claim_id = require_id(record, "claim_id", where)
        evidences = record.get("evidences")
        if not isinstance(evidences, list):
            raise DataError(f"{where}: field 'evidences' is missing or not a list")
        for j, evidence in enumerate(evidences):
            item = require_record(evidence, f"{where} evidence {j}")
            pairs.append(LabelledPair(
                require_str(item, "evidence", f"{where} evidence {j}"), claim,
                fc_label(item.get("evidence_label"), f"{where} evidence {j}"), "climate_fever",
                page=item.get("article") or None, record_id=f"climate_fever:{claim_id}:{j}"))
    return pairs


def load_fm2(root: PathArg, split: str = "test", *, keep_sentences: bool = False) -> list[LabelledPair]:
    """Fool Me Twice: one pair per claim; the evidence is its gold evidence sentences joined in
    order (the label is given for all of them together); ``page`` is ``wikipedia_page``.
    ``keep_sentences`` joins them with an internal separator instead of a space (for :func:`fm2_edits`)."""
    _split(split, ("dev", "test"), "Fool Me Twice")
    pairs = []
    for where, _, raw in iter_jsonl(Path(root) / "fm2" / f"{split}.jsonl"):
        record = require_record(raw, where)
        gold = record.get("gold_evidence")
        if not isinstance(gold, list) or not gold:
            raise DataError(f"{where}: field 'gold_evidence' is missing or empty; expected a list of "
                            "{'text': ...} sentences")
        sentences = [require_str(require_record(s, where), "text", where).strip() for s in gold]
        pairs.append(LabelledPair(
            (_SENTENCE_SEP if keep_sentences else " ").join(sentences), require_str(record, "text", where),
            fc_label(record.get("label"), where), f"fm2:{split}", page=require_str(record, "wikipedia_page", where),
            record_id=f"fm2:{require_id(record, 'id', where)}"))
    return pairs


def load_symmetric_fever(root: PathArg, split: str = "dev") -> list[LabelledPair]:
    """Symmetric FEVER: v0.2 ``dev`` / ``test`` (field ``evidence``) or v0.1 ``generated``
    (field ``evidence_sentence``). No page is given."""
    _split(split, ("dev", "test", "generated"), "Symmetric FEVER")
    field = "evidence_sentence" if split == "generated" else "evidence"
    pairs = []
    for where, lineno, raw in iter_jsonl(Path(root) / "fever_symmetric" / f"{split}.jsonl"):
        record = require_record(raw, where)
        pairs.append(LabelledPair(
            require_str(record, field, where).strip(), require_str(record, "claim", where).strip(),
            fc_label(record.get("label"), where), f"symmetric_fever:{split}",
            record_id=f"symmetric_fever:{split}:{lineno}"))
    return pairs


def load_vitaminc_pairs(directory: PathArg, split: str = "test") -> list[LabelledPair]:
    """The VitaminC sample (``test.jsonl`` or every ``train_*.jsonl``) as pairs; no page."""
    _split(split, ("train", "test"), "VitaminC sample")
    folder = Path(directory)
    files = sorted(folder.glob("train_*.jsonl")) if split == "train" else [folder / "test.jsonl"]
    if not files:
        raise DataError(f"{folder} has no train_*.jsonl; expected the vitaminc_sample folder")
    return [LabelledPair(e.evidence, e.claim, e.label, f"vitaminc:{split}", record_id=e.record_id)
            for e in load_vitaminc(files)]


def load_split(name: str, root: PathArg, vitaminc_dir: PathArg) -> list[LabelledPair]:
    """A split by its ``source`` name (``fm2:test``, ``esnli:dev``, ``climate_fever``, ...)."""
    corpus, _, split = name.partition(":")
    if corpus == "vitaminc":
        return load_vitaminc_pairs(vitaminc_dir, split or "test")
    loaders = {"esnli": load_esnli, "fm2": load_fm2, "symmetric_fever": load_symmetric_fever}
    if corpus == "climate_fever" and not split:
        return load_climate_fever(root)
    if corpus not in loaders or not split:
        raise DataError(f"unknown corpus split {name!r}; expected one of esnli:dev, esnli:test, climate_fever, "
                        "fm2:dev, fm2:test, symmetric_fever:{generated,dev,test}, vitaminc:{train,test}")
    return loaders[corpus](root, split)


# -- what may train a classifier -------------------------------------------------------------------
PRETRAIN_SPLITS = ("esnli:dev", "esnli:test", "vitaminc:train")
FINETUNE_SPLITS = ("climate_fever", "fm2:dev")


def test_texts(root: PathArg, vitaminc_dir: PathArg) -> set[str]:
    """Normalised claims and evidence of every test split (and of Symmetric FEVER v0.1, their pool)."""
    texts: set[str] = set()
    for name in (*TEST_SPLITS, "symmetric_fever:generated"):
        for pair in load_split(name, root, vitaminc_dir):
            texts.update((normalize_text(pair.claim), normalize_text(pair.evidence)))
    return texts


def classifier_training_pairs(
    root: PathArg,
    vitaminc_dir: PathArg,
    splits: Sequence[str],
    *,
    max_nei_fraction: float | None = None,
    seed: int = 0,
) -> list[LabelledPair]:
    """Training pairs from ``splits``, never a test split, minus any pair that shares a claim or an
    evidence text with a test file. ``max_nei_fraction`` caps the share of "not enough info" pairs
    (Climate-FEVER is 64% NEI) by dropping a seeded sample of them."""
    refused = sorted(set(splits) & {*TEST_SPLITS, "symmetric_fever:generated"})
    if refused:
        raise DataError(f"{', '.join(refused)} cannot train the classifier: the test splits are "
                        f"{', '.join(TEST_SPLITS)} (and symmetric_fever:generated is their source)")
    held_out = test_texts(root, vitaminc_dir)
    pairs = [p for name in splits for p in load_split(name, root, vitaminc_dir)
             if normalize_text(p.claim) not in held_out and normalize_text(p.evidence) not in held_out]
    if max_nei_fraction is not None:
        pairs = cap_label_fraction(pairs, NOT_ENOUGH_INFO, max_nei_fraction, seed)
    return pairs


def cap_label_fraction(pairs: Sequence[LabelledPair], label: str, fraction: float, seed: int = 0) -> list[LabelledPair]:
    """Keep at most ``fraction`` of the result labelled ``label`` (seeded sample), order kept."""
    if not 0.0 <= fraction < 1.0:
        raise DataError(f"max fraction of {label!r} pairs must be in [0, 1), got {fraction}")
    marked = [i for i, p in enumerate(pairs) if p.label == label]
    others = len(pairs) - len(marked)
    keep_n = min(len(marked), int(fraction * others / (1.0 - fraction)))
    keep = set(random.Random(seed).sample(marked, keep_n))
    return [p for i, p in enumerate(pairs) if p.label != label or i in keep]


# -- editing evaluations -----------------------------------------------------------------------------
@dataclass(frozen=True)
class PagedEdits:
    """Edits for an FC editing evaluation, and the page each edit's evidence comes from (None
    when the corpus names none). Out of scope for an edit: every claim of the other edits, those of
    the same page (``same_page``) being the hard cases."""

    edits: list[FactEdit]
    pages: list[str | None]

    def same_page(self, index: int) -> list[Probe]:
        page = self.pages[index]
        if page is None:
            return []
        return [c for j, e in enumerate(self.edits) if j != index and self.pages[j] == page for c in e.claims]


def _shuffled(edits: list[FactEdit], pages: list[str | None], seed: int | None) -> PagedEdits:
    order = list(range(len(edits)))
    if seed is not None:
        random.Random(seed).shuffle(order)
    return PagedEdits([edits[i] for i in order], [pages[i] for i in order])


def fm2_edits(pairs: Iterable[LabelledPair], *, seed: int | None = 0) -> PagedEdits:
    """FM2 claims (``load_fm2(..., keep_sentences=True)``) as edits: the edit is a claim's gold evidence; claims whose gold evidence shares
    a sentence are merged into one edit (their sentences joined in first-seen order), so no claim
    is out of scope for an edit holding its own evidence. In scope: the claims of the edit (FM2 has
    no "not enough info"); out of scope: every other claim (same page or another page).
    ``seed`` shuffles the edit order (pages otherwise come in file order); None keeps it."""
    pairs = list(pairs)
    parent = list(range(len(pairs)))

    def find(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    first_with: dict[str, int] = {}
    sentences_of = []
    for i, pair in enumerate(pairs):
        sentences = _sentences(pair.evidence)
        sentences_of.append(sentences)
        for sentence in sentences:
            key = normalize_text(sentence)
            if key in first_with:
                parent[find(i)] = find(first_with[key])
            else:
                first_with[key] = i
    groups: dict[int, list[int]] = {}
    for i in range(len(pairs)):
        groups.setdefault(find(i), []).append(i)
    edits, pages = [], []
    for members in groups.values():
        sentences = list(dict.fromkeys(s for i in members for s in sentences_of[i]))
        undecided = [pairs[i] for i in members if pairs[i].label not in DECIDED]
        edits.append(FactEdit(
            evidence=" ".join(sentences),
            in_scope=tuple(Probe(pairs[i].claim, pairs[i].label) for i in members if pairs[i].label in DECIDED),
            hard_out_of_scope=tuple(Probe(p.claim, None) for p in undecided),
            record_ids=tuple(pairs[i].record_id for i in members)))
        pages.append(pairs[members[0]].page)
    return _shuffled(edits, pages, seed)


def _sentences(evidence: str) -> list[str]:
    return [s for s in evidence.split(_SENTENCE_SEP) if s.strip()]


def symmetric_fever_edits(pairs: Iterable[LabelledPair], view: int = 0, *, seed: int | None = 0) -> PagedEdits:
    """Symmetric FEVER as edits. Its records come in contrast sets: a claim paired with two pieces
    of evidence that label it differently. Holding both in one memory would make the claim both in
    and out of scope, so each contrast set (claims and evidence connected through shared records)
    contributes one of its evidence texts: the ``view``-th in file order (0 or 1; a set with one
    evidence gives it to both views). Evaluating both views checks that the same claims follow
    whichever evidence is stored. In scope: the claims that evidence decides."""
    if view not in (0, 1):
        raise DataError(f"symmetric_fever view must be 0 or 1, got {view}")
    pairs = list(pairs)
    parent: dict[str, str] = {}

    def find(key: str) -> str:
        parent.setdefault(key, key)
        while parent[key] != key:
            parent[key] = parent[parent[key]]
            key = parent[key]
        return key

    for pair in pairs:
        parent[find("c:" + normalize_text(pair.claim))] = find("e:" + normalize_text(pair.evidence))
    evidence_by_set: dict[str, list[str]] = {}
    for pair in pairs:
        evidences = evidence_by_set.setdefault(find("e:" + normalize_text(pair.evidence)), [])
        if normalize_text(pair.evidence) not in map(normalize_text, evidences):
            evidences.append(pair.evidence)
    chosen = {normalize_text(ev[min(view, len(ev) - 1)]) for ev in evidence_by_set.values()}
    examples = [p.as_example() for p in pairs if normalize_text(p.evidence) in chosen]
    edits = build_fc_edits(examples)
    return _shuffled(edits, [None] * len(edits), seed)


def vitaminc_edits(directory: PathArg, split: str = "test", *, seed: int | None = None) -> PagedEdits:
    """The existing 88-claim VitaminC evaluation, as :class:`PagedEdits` (no pages)."""
    edits = build_fc_edits(p.as_example() for p in load_vitaminc_pairs(directory, split))
    return _shuffled(edits, [None] * len(edits), seed)


