"""Training material for the scope classifier, built from the common ``EditExample`` type.

An edit becomes an ``EditRecord``: its key (the edit input, which is what the editor indexes), the
in-scope queries that must retrieve it (rephrasings) and the out-of-scope queries that must not
(zsRE: an unrelated NQ question; CounterFact: the same relation about another subject, the hard
case). Hard negatives are mined once with the pretrained encoder, as the original SERAC did: for
each edit, the other edits and the out-of-scope queries it ranks closest. A batch then holds
records together with their neighbours, so every batch contains the confusions that matter:
edits sharing a subject (zsRE) and prompts sharing a relation (CounterFact).
"""

from __future__ import annotations

import hashlib
import logging
import random
from dataclasses import dataclass, replace
from typing import Callable, Sequence

import faiss
import numpy as np

from serac.data.examples import EditExample, fact_key, normalize_text

logger = logging.getLogger(__name__)

Embed = Callable[[Sequence[str]], np.ndarray]  # texts -> unit vectors (n, dim)


@dataclass(frozen=True)
class EditRecord:
    key: str  # the edit input: what the editor indexes
    target: str
    positives: tuple[str, ...]  # in-scope queries other than the key itself
    negatives: tuple[str, ...]  # out-of-scope queries
    group: tuple[str, str]  # fact_key: records sharing it edit the same fact
    subject: str
    source: str
    # Other relations asked of this record's own subject: out of scope of this key even though they
    # name its subject (issue 14's hijacking); see add_subject_negatives. Empty unless asked for.
    subject_negatives: tuple[str, ...] = ()

    @property
    def queries(self) -> tuple[str, ...]:
        """Every in-scope query, the key first."""
        return (self.key, *self.positives)


def records_from_examples(examples: Sequence[EditExample], source: str) -> list[EditRecord]:
    records = []
    for example in examples:
        key = example.edit_input
        positives = tuple(dict.fromkeys(p.input for p in example.in_scope if p.input != key))
        records.append(
            EditRecord(
                key=key,
                target=example.edit_target,
                positives=positives,
                negatives=tuple(dict.fromkeys(p.input for p in example.out_of_scope)),
                group=fact_key(example),
                subject=example.subject or "",
                source=source,
            )
        )
    return records


def split_records(records: Sequence[EditRecord], n_val: int, seed: int) -> tuple[list[EditRecord], list[EditRecord]]:
    """Hold out about ``n_val`` records, whole facts at a time, chosen by a seeded hash (stable
    under reordering of the file). Returns (train, validation), each in file order."""
    if n_val <= 0:
        return list(records), []
    groups: dict[tuple[str, str], list[int]] = {}
    for index, record in enumerate(records):
        groups.setdefault(record.group, []).append(index)

    def rank(group: tuple[str, str]) -> str:
        return hashlib.sha256(f"{seed}\x00{group[0]}\x00{group[1]}".encode()).hexdigest()

    held: set[int] = set()
    for group in sorted(groups, key=rank):
        if len(held) >= n_val:
            break
        held.update(groups[group])
    if len(held) >= len(records):
        raise ValueError(f"holding out {n_val} of {len(records)} records leaves nothing to train on")
    train = [r for i, r in enumerate(records) if i not in held]
    val = [r for i, r in enumerate(records) if i in held]
    return train, val


@dataclass
class Neighbours:
    """Hard negatives mined with the pretrained encoder, as indices (-1 pads a short row)."""

    keys: np.ndarray  # (n_records, k): other records whose keys are closest to this key
    negatives: np.ndarray  # (n_records, k): indices into ``negative_texts`` closest to this key
    negative_texts: list[str]

    def save(self, path: str) -> None:
        np.savez(path, keys=self.keys, negatives=self.negatives, negative_texts=np.array(self.negative_texts, dtype=object))

    @classmethod
    def load(cls, path: str) -> "Neighbours":
        data = np.load(path, allow_pickle=True)
        return cls(data["keys"], data["negatives"], [str(t) for t in data["negative_texts"]])


def mine_neighbours(records: Sequence[EditRecord], embed: Embed, k: int) -> Neighbours:
    """For each record, the ``k`` nearest other keys (other facts only) and the ``k`` nearest
    out-of-scope queries of other records that do not mention its subject."""
    keys = embed([r.key for r in records])
    negative_texts = list(dict.fromkeys(n for r in records for n in r.negatives))
    owner_subjects = [normalize_text(r.subject) for r in records]

    index = faiss.IndexFlatIP(keys.shape[1])
    index.add(np.ascontiguousarray(keys, dtype=np.float32))
    _, near = index.search(np.ascontiguousarray(keys, dtype=np.float32), min(len(records), k * 3 + 1))
    key_rows = np.full((len(records), k), -1, dtype=np.int64)
    for i, row in enumerate(near):
        picked = [j for j in row if j >= 0 and j != i and records[j].group != records[i].group][:k]
        key_rows[i, : len(picked)] = picked

    negative_rows = np.full((len(records), k), -1, dtype=np.int64)
    if negative_texts:
        neg_vectors = embed(negative_texts)
        neg_index = faiss.IndexFlatIP(neg_vectors.shape[1])
        neg_index.add(np.ascontiguousarray(neg_vectors, dtype=np.float32))
        _, near = neg_index.search(np.ascontiguousarray(keys, dtype=np.float32), min(len(negative_texts), k * 3))
        for i, row in enumerate(near):
            own = set(records[i].negatives)
            subject = owner_subjects[i]
            picked = [
                j for j in row
                if j >= 0 and negative_texts[j] not in own
                and not (subject and subject in normalize_text(negative_texts[j]))
            ][:k]
            negative_rows[i, : len(picked)] = picked
    return Neighbours(key_rows, negative_rows, negative_texts)


@dataclass
class ScopeBatch:
    """One step's texts. ``queries`` = ``n_positive`` in-scope queries (row i belongs to key i)
    followed by out-of-scope queries; ``ignore`` marks (key, query) pairs left out of the loss."""

    keys: list[str]
    queries: list[str]
    n_positive: int
    ignore: np.ndarray  # (len(keys), len(queries)) bool


def sample_batch(
    records: Sequence[EditRecord],
    neighbours: Neighbours,
    size: int,
    neighbour_share: float,
    rng: np.random.Generator,
) -> ScopeBatch:
    """Seed records at random, then fill the batch with their mined neighbours (one fact per
    batch at most once), each record adding its key, one in-scope query, its own out-of-scope
    query and a mined hard negative."""
    size = min(size, len(records))
    n_seed = max(1, size - int(round(size * neighbour_share)))
    chosen: list[int] = []
    groups: set[tuple[str, str]] = set()

    def take(i: int) -> bool:
        if records[i].group in groups:
            return False
        chosen.append(i)
        groups.add(records[i].group)
        return True

    for i in rng.permutation(len(records)):
        if len(chosen) >= n_seed:
            break
        take(int(i))
    cursor = 0
    while len(chosen) < size and cursor < len(chosen):
        row = [int(j) for j in neighbours.keys[chosen[cursor]] if j >= 0]
        for j in rng.permutation(row) if row else []:
            if take(int(j)):
                break
        cursor += 1
    for i in rng.permutation(len(records)):  # top up when neighbours ran out
        if len(chosen) >= size:
            break
        take(int(i))

    batch = [records[i] for i in chosen]
    keys = [r.key for r in batch]
    positives = [r.positives[rng.integers(len(r.positives))] if r.positives else r.key for r in batch]
    negatives: list[str] = []
    for i, record in zip(chosen, batch):
        if record.negatives:
            negatives.append(record.negatives[rng.integers(len(record.negatives))])
        mined = [int(j) for j in neighbours.negatives[i] if j >= 0]
        if mined:
            negatives.append(neighbours.negative_texts[mined[rng.integers(len(mined))]])
    # drawn after the rest, so records without subject negatives sample exactly as before
    own = [(row, r.subject_negatives[rng.integers(len(r.subject_negatives))])
           for row, r in enumerate(batch) if r.subject_negatives]
    first_own = len(positives) + len(negatives)
    negatives += [text for _, text in own]
    queries = positives + negatives

    # A negative query that names a batch record's subject may really be in its scope (CounterFact's
    # same-relation prompts sometimes hit another edit's subject): leave such pairs out.
    ignore = np.zeros((len(keys), len(queries)), dtype=bool)
    subjects = [normalize_text(r.subject) for r in batch]
    normalized = [normalize_text(q) for q in negatives]
    for i, subject in enumerate(subjects):
        if not subject:
            continue
        for j, text in enumerate(normalized):
            if subject in text:
                ignore[i, len(positives) + j] = True
    for column, (row, _) in enumerate(own, start=first_own):
        ignore[row, column] = False  # another relation of its own subject: out of scope of that key, for sure
    return ScopeBatch(keys=keys, queries=queries, n_positive=len(positives), ignore=ignore)


@dataclass(frozen=True)
class SameFactPairs:
    """Pairs of edit inputs for calibrating the same-fact decision (serac.facts).

    ``same``: two wordings of one fact (a record's input and its rephrasings; inputs of records
    that edit the same fact). ``other``: one subject, another relation: a record's input against
    another relation's template filled with the same subject, the relations told apart by their
    answers (two templates whose answer sets are disjoint ask different things: languages vs
    continents), so a paraphrase of the same relation is never counted as another fact.
    """

    same: tuple[tuple[str, str], ...]
    other: tuple[tuple[str, str], ...]


def same_fact_pairs(
    records: Sequence[EditRecord], reference: Sequence[EditRecord] = (), seed: int = 0, per_record: int = 2,
    min_answers: int = 8,
) -> SameFactPairs:
    """Pairs from ``records``; relation templates and their answers from ``records`` plus
    ``reference`` (e.g. the training split: more answers per template, surer relation labels).
    Templates seen with fewer than ``min_answers`` answers are not used."""
    same = [(r.key, p) for r in records for p in r.positives if r.source == "zsre"]
    by_group: dict[tuple[str, str], list[str]] = {}
    for record in records:
        by_group.setdefault(record.group, []).append(record.key)
    same += [(a, b) for keys in by_group.values() for i, a in enumerate(keys) for b in keys[i + 1:] if a != b]

    answers = template_answers((*records, *reference))
    templates = sorted(t for t, seen in answers.items() if len(seen) >= min_answers)
    rng = random.Random(seed)
    other = []
    for record in records:
        template = relation_template(record)
        if template is None or len(answers[template]) < min_answers:
            continue
        unrelated = [t for t in templates if not answers[t] & answers[template]]
        for chosen in rng.sample(unrelated, min(per_record, len(unrelated))):
            other.append((record.key, chosen.replace("{}", record.subject, 1)))
    return SameFactPairs(tuple(same), tuple(other))


def add_subject_negatives(
    records: Sequence[EditRecord], reference: Sequence[EditRecord] = (), per_record: int = 2, seed: int = 0,
    min_answers: int = 8,
) -> list[EditRecord]:
    """``records`` with ``subject_negatives``: ``per_record`` other relations' templates filled with
    each record's subject (:func:`same_fact_pairs`' ``other`` pairs), so scope training learns that
    a question naming an edited subject but asking another relation is out of that edit's scope."""
    other: dict[str, list[str]] = {}
    for key, text in same_fact_pairs(records, reference, seed, per_record, min_answers).other:
        other.setdefault(key, []).append(text)
    return [replace(r, subject_negatives=tuple(dict.fromkeys(other.get(r.key, ())))) for r in records]


def template_answers(records: Sequence[EditRecord]) -> dict[str, set[str]]:
    """Relation templates (an input with its subject taken out, ``{}`` in its place) and the
    normalised answers each one was seen with: two templates whose answer sets are disjoint ask
    different relations (languages vs continents)."""
    answers: dict[str, set[str]] = {}
    for record in records:
        template = relation_template(record)
        if template is not None:
            answers.setdefault(template, set()).update({normalize_text(record.target), record.group[1]})
    return answers


def relation_template(record: EditRecord) -> str | None:
    """The record's input with its subject replaced by ``{}``, or None without a subject in it."""
    if not record.subject or record.subject not in record.key:
        return None
    return record.key.replace(record.subject, "{}", 1)
