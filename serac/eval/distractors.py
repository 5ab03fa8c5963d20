"""Real-text distractor edits for quality-at-scale measurements (issue 13): CounterFact subjects
crossed with CounterFact relation templates, so a memory of 100,000 edits reads like real edits
(same sentence shapes, many of them about the scored edits' own subjects) without any of them
editing a fact that is scored.

CounterFact records carry no relation id, only a prompt with its subject in it. A record's *template*
is its prompt with the subject replaced by ``{}``; its neighbourhood (locality) prompt asks the same
relation of another subject, usually through another template. Templates linked that way are one
*relation* (connected components; 24 on the public files, a few of ROME's 34 relations merged
where they share a template such as "{}, the"). Groups whose answer vocabularies nearly coincide
(Jaccard >= ``SAME_ANSWERS``) are merged too: the language relations (official language, native
language, languages spoken, language of a work) each link their own templates, yet crossed with any
subject "The official language of X", "X speaks" and "X, speaker of" ask one question, and a
distractor through one of them would re-edit a scored fact asked through another. Place relations
share only part of their answers (Jaccard <= 0.45 on the public files) and stay apart: "X died in"
and "X worked in" are different facts. A coarser relation only widens what is excluded.

A distractor is (subject, relation) -> one of that relation's templates filled with the subject, and
one of the relation's observed answers as its target (never the subject's own recorded answer for it).
Excluded: every (subject, relation) pair of the edits given as ``exclude`` and of the subjects their
neighbourhood prompts ask about, so no distractor edits a fact whose answer is scored.
"""

from __future__ import annotations

import random
import re
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from serac.data.examples import EditExample, normalize_text
from serac.errors import ConfigError

# Two template groups whose answer sets overlap at least this much (Jaccard) are one relation. On the
# public files the language groups pair at 0.66-0.85 and every other pair at 0.45 or less.
SAME_ANSWERS = 0.6


@dataclass(frozen=True)
class Distractor:
    input: str
    target: str
    subject: str
    relation: str  # the relation's most frequent template, as its name


def template_of(example: EditExample) -> str | None:
    """The edit input with its subject replaced by ``{}`` (None when the subject is not in it)."""
    subject = example.subject
    if not subject or subject not in example.edit_input:
        return None
    return example.edit_input.replace(subject, "{}", 1)


class Relations:
    """Templates grouped into relations, with each relation's answers, from CounterFact records."""

    def __init__(self, examples: Sequence[EditExample]) -> None:
        counts: Counter[str] = Counter()
        for example in examples:
            template = template_of(example)
            if template is not None:
                counts[template] += 1
        if not counts:
            raise ConfigError("no CounterFact record has its subject in its prompt; pass CounterFact records")
        self.counts = counts
        # longest first, so the most specific template wins when several match a prompt
        self._patterns = [(t, re.compile("^" + re.escape(t).replace(r"\{\}", "(.+)") + "$"))
                          for t in sorted(counts, key=lambda t: (-len(t), t))]
        parent = {t: t for t in counts}

        def find(t: str) -> str:
            while parent[t] != t:
                parent[t] = parent[parent[t]]
                t = parent[t]
            return t

        for example in examples:
            template = template_of(example)
            for probe in example.out_of_scope:
                match = self.match(probe.input)
                if template is not None and match is not None:
                    a, b = sorted((find(template), find(match[0])))
                    parent[b] = a
        vocab: dict[str, set[str]] = {}
        for example in examples:
            template = template_of(example)
            if template is not None:
                vocab.setdefault(find(template), set()).update(
                    normalize_text(a) for a in (example.edit_target, example.original_target) if a)
        roots = sorted(vocab)
        for i, a in enumerate(roots):
            for b in roots[i + 1 :]:
                union = vocab[a] | vocab[b]
                if union and len(vocab[a] & vocab[b]) / len(union) >= SAME_ANSWERS:
                    x, y = sorted((find(a), find(b)))
                    parent[y] = x
        members: dict[str, list[str]] = {}
        for t in counts:
            members.setdefault(find(t), []).append(t)
        # a relation is named by its most frequent template (ties: alphabetical)
        self.relation_of: dict[str, str] = {}
        self.templates: dict[str, list[str]] = {}  # relation -> templates, one entry per record using it
        for group in members.values():
            name = min(group, key=lambda t: (-counts[t], t))
            for t in group:
                self.relation_of[t] = name
            self.templates[name] = sorted(t for t in group for _ in range(counts[t]))
        self.answers: dict[str, list[str]] = {}
        known: dict[tuple[str, str], set[str]] = {}
        for example in examples:
            template = template_of(example)
            if template is None:
                continue
            relation = self.relation_of[template]
            pool = self.answers.setdefault(relation, [])
            for answer in (example.edit_target, example.original_target):
                if answer:
                    pool.append(answer)
            if example.original_target:
                key = (normalize_text(example.subject or ""), relation)
                known.setdefault(key, set()).add(normalize_text(example.original_target))
        self.answers = {r: sorted(set(a)) for r, a in self.answers.items()}
        self.known = known  # (subject, relation) -> its recorded true answers

    def match(self, prompt: str) -> tuple[str, str] | None:
        """(template, subject) of a prompt written with one of the known templates, else None."""
        for template, pattern in self._patterns:
            found = pattern.match(prompt)
            if found and found.group(1).strip():
                return template, found.group(1)
        return None

    def fact_of_edit(self, example: EditExample) -> tuple[str, str] | None:
        """The (normalised subject, relation) pair an edit changes (None: its template is unknown)."""
        template = template_of(example)
        if template is None or template not in self.relation_of:
            return None
        return normalize_text(example.subject or ""), self.relation_of[template]

    def fact_of_prompt(self, prompt: str) -> tuple[str, str] | None:
        """The (normalised subject, relation) pair a prompt asks (None: no known template)."""
        match = self.match(prompt)
        return None if match is None else (normalize_text(match[1]), self.relation_of[match[0]])

    def pairs_of(self, examples: Iterable[EditExample]) -> set[tuple[str, str]]:
        """The (normalised subject, relation) pairs the edits change and their neighbourhood
        prompts ask about."""
        facts = [f for e in examples for f in (self.fact_of_edit(e), *(self.fact_of_prompt(p.input)
                                                                     for p in e.out_of_scope))]
        return {f for f in facts if f is not None}


def build_distractors(
    source: Sequence[EditExample], exclude: Sequence[EditExample], n: int, seed: int = 0
) -> list[Distractor]:
    """``n`` distractor edits over the subjects and relations of ``source`` (CounterFact records),
    none about a (subject, relation) pair of ``exclude`` (see the module docstring). Each
    (subject, relation) pair is used at most once. Deterministic for a seed and input order."""
    if n < 0:
        raise ConfigError(f"the number of distractors must be >= 0, got {n}")
    relations = Relations(source)
    excluded = relations.pairs_of(exclude)
    subjects: dict[str, str] = {}
    for example in source:
        if example.subject:
            subjects.setdefault(normalize_text(example.subject), example.subject)
    names = sorted(subjects)
    rels = sorted(r for r in relations.templates if relations.answers.get(r))
    total = len(names) * len(rels)
    rng = random.Random(seed)
    # a seeded permutation of every (subject, relation) cell, taken in order until n are kept
    order = rng.sample(range(total), total)
    out: list[Distractor] = []
    for cell in order:
        if len(out) == n:
            break
        key, relation = names[cell // len(rels)], rels[cell % len(rels)]
        if (key, relation) in excluded:
            continue
        true = relations.known.get((key, relation), set())
        targets = [a for a in relations.answers[relation] if normalize_text(a) not in true]
        if not targets:
            continue
        template = rng.choice(relations.templates[relation])
        out.append(Distractor(template.replace("{}", subjects[key], 1), rng.choice(targets), subjects[key], relation))
    if len(out) < n:
        raise ConfigError(f"asked for {n:,} distractors but the records allow only {len(out):,} "
                          f"({len(names):,} subjects x {len(rels)} relations, {len(excluded):,} pairs excluded); "
                          "pass more records or a smaller n")
    return out
