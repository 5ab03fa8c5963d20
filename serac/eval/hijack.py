"""Hijack evaluation set (issue 14, item 4): questions that mention an edited subject but ask
something else, which must not be answered with the edit's target.

Built from training files only, so it can also serve for training and calibration:

- **sibling**: another CounterFact record about the same subject whose relation differs (relation
  templates told apart by their answer sets, as in :func:`serac.train.pairs.same_fact_pairs`);
- **template**: another relation's template filled with the edited subject
  (:func:`serac.train.pairs.same_fact_pairs`' ``other`` pairs);
- **chain**: a second relation asked *through* the edited fact, "The official language of the
  country where <subject> was born is": the edited relation becomes a description of its object
  (:data:`CHAIN_DESCRIPTIONS`, place-valued relations only) and a place-taking relation is asked of it
  (:data:`SECOND_HOPS`).

Each query remembers which edit's subject it mentions, so a measurement can report both the share
routed to some edit and the share answered with that edit's target.
"""

from __future__ import annotations

import random
from collections.abc import Collection, Sequence
from dataclasses import dataclass

from serac.data.chains import CHAIN_DESCRIPTIONS, SECOND_HOPS, chain_question
from serac.data.examples import EditExample, normalize_text
from serac.train.pairs import EditRecord, records_from_examples, relation_template, same_fact_pairs, template_answers

KINDS = ("sibling", "template", "chain")


@dataclass(frozen=True)
class HijackQuery:
    text: str
    kind: str  # one of KINDS
    edit: int  # index into HijackSet.edits: the edit whose subject the query mentions


@dataclass(frozen=True)
class HijackSet:
    edits: tuple[EditExample, ...]
    queries: tuple[HijackQuery, ...]

    def of_kind(self, kind: str) -> list[HijackQuery]:
        return [q for q in self.queries if q.kind == kind]


def build_hijack_set(
    counterfact: Sequence[EditExample],
    zsre: Sequence[EditExample] = (),
    n_counterfact: int = 200,
    n_zsre: int = 50,
    seed: int = 0,
    per_edit: int = 2,
    min_answers: int = 8,
    edit_inputs: Collection[str] | None = None,
) -> HijackSet:
    """Pick ``n_counterfact`` CounterFact edits (one per subject; subjects with a record of another
    relation first) and ``n_zsre`` zsRE edits, and the hijack queries about their subjects:
    every sibling record, ``per_edit`` other-relation templates and ``per_edit`` chain questions
    per edit. Deterministic for a seed. ``edit_inputs``: only records with these inputs may be the
    edits (e.g. a trained artifact's validation split, which its scope never trained on); siblings
    and relation templates still come from every record."""
    rng = random.Random(seed)
    cf = records_from_examples(counterfact, "counterfact")
    zs = records_from_examples(zsre, "zsre")
    answers = template_answers((*cf, *zs))

    def known(record: EditRecord) -> str | None:
        template = relation_template(record)
        return template if template is not None and len(answers[template]) >= min_answers else None

    def other_relation(a: EditRecord, b: EditRecord) -> bool:
        ta, tb = known(a), known(b)
        return ta is not None and tb is not None and not answers[ta] & answers[tb]

    by_subject: dict[str, list[int]] = {}
    for i, record in enumerate(cf):
        if known(record) is not None:
            by_subject.setdefault(normalize_text(record.subject), []).append(i)
    subjects = sorted(by_subject)
    rng.shuffle(subjects)
    picks: list[tuple[int, list[int]]] = []  # (edit record, its other-relation siblings)
    for subject in subjects:
        members = by_subject[subject]
        eligible = members if edit_inputs is None else [j for j in members if cf[j].key in edit_inputs]
        if not eligible:
            continue
        edit = rng.choice(eligible)
        siblings = [j for j in members if other_relation(cf[edit], cf[j])]
        picks.append((edit, siblings))
    picks.sort(key=lambda pick: not pick[1])  # stable: subjects with siblings first, in shuffled order
    picks = picks[:n_counterfact]

    zsre_ids = [i for i, r in enumerate(zs) if known(r) is not None and (edit_inputs is None or r.key in edit_inputs)]
    zsre_ids = sorted(rng.sample(zsre_ids, min(n_zsre, len(zsre_ids))))

    edits = [counterfact[i] for i, _ in picks] + [zsre[i] for i in zsre_ids]
    records = [cf[i] for i, _ in picks] + [zs[i] for i in zsre_ids]
    queries: list[HijackQuery] = []
    for n, (_, siblings) in enumerate(picks):
        queries += [HijackQuery(cf[j].key, "sibling", n) for j in siblings]
    owner = {record.key: n for n, record in reversed(list(enumerate(records)))}
    other = same_fact_pairs(records, reference=(*cf, *zs), seed=seed, per_record=per_edit,
                            min_answers=min_answers).other
    queries += [HijackQuery(text, "template", owner[key]) for key, text in other]
    for n, record in enumerate(records):
        template = relation_template(record)
        if template in CHAIN_DESCRIPTIONS:
            for hop in rng.sample(SECOND_HOPS, min(per_edit, len(SECOND_HOPS))):
                text = chain_question(template, record.subject, hop)
                assert text is not None
                queries.append(HijackQuery(text, "chain", n))
    keys = {normalize_text(r.key) for r in records}
    queries = [q for q in dict.fromkeys(queries) if normalize_text(q.text) not in keys]  # never an edit's own input
    return HijackSet(tuple(edits), tuple(queries))
