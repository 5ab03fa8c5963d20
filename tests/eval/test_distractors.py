"""The real-text distractor builder (serac/eval/distractors.py) on a tiny CounterFact-shaped fixture."""

from __future__ import annotations

import pytest

from serac.data.examples import EditExample, Probe, normalize_text
from serac.errors import ConfigError
from serac.eval.distractors import Relations, build_distractors

# (template, neighbourhood template, answers): the first two relations have two templates each,
# linked only through the records' neighbourhood prompts
LANGUAGE = ("The mother tongue of {} is", "{} is a native speaker of", ("French", "English", "Dutch"))
CAPITAL = ("The capital of {} is", "{}'s capital city is", ("Paris", "Rome", "Oslo"))
SPORT = ("{} professionally plays the sport", "{} professionally plays the sport", ("soccer", "tennis", "golf"))
SUBJECTS = ("Ana Lima", "Bo Chen", "Cy Park", "Di Sato", "Ed Moss", "Fay Ito", "Gus Roy", "Hal Ng")


def record(subject: str, relation: tuple[str, str, tuple[str, ...]], neighbour: str, n: int) -> EditExample:
    first, other, answers = relation
    template = first if n // 3 % 2 == 0 else other  # records use both templates of a relation
    prompt = template.replace("{}", subject)
    truth, new = answers[n % 3], answers[(n + 1) % 3]
    return EditExample(prompt, new, (Probe(prompt, new), Probe(f"Some prefix. {prompt}", new)),
                       (Probe(other.replace("{}", neighbour), truth),), subject=subject, original_target=truth,
                       record_id=f"counterfact:{n}")


@pytest.fixture
def source() -> list[EditExample]:
    relations = (LANGUAGE, CAPITAL, SPORT)
    return [record(s, relations[i % 3], SUBJECTS[(i + 3) % len(SUBJECTS)], i) for i, s in enumerate(SUBJECTS)]


def test_templates_linked_by_neighbourhood_prompts_form_one_relation(source):
    relations = Relations(source)
    assert len(relations.templates) == 3
    assert relations.relation_of["{} is a native speaker of"] == relations.relation_of["The mother tongue of {} is"]
    assert relations.relation_of["{}'s capital city is"] == relations.relation_of["The capital of {} is"]
    assert relations.relation_of["The capital of {} is"] != relations.relation_of["The mother tongue of {} is"]
    assert relations.match("Hal Ng's capital city is") == ("{}'s capital city is", "Hal Ng")
    assert relations.match("Nothing like any template") is None


def test_groups_with_one_answer_vocabulary_are_one_relation(source):
    """A language relation linked to no other template through neighbourhood prompts still joins
    the other language relation (same answers); a place relation sharing one answer stays apart."""
    speaks = ("{} speaks", "{} speaks", ("French", "English", "Dutch"))
    died = ("{} died in", "{} died in", ("Paris", "Lyon", "Nice"))
    extra = [record(s, rel, SUBJECTS[(i + 1) % len(SUBJECTS)], i)
             for i, s in enumerate(SUBJECTS[:6]) for rel in (speaks, died)]
    relations = Relations(source + extra)
    assert relations.relation_of["{} speaks"] == relations.relation_of["The mother tongue of {} is"]
    assert relations.relation_of["{} died in"] != relations.relation_of["The capital of {} is"]
    assert len(relations.templates) == 4
    scored = [r for r in extra if r.edit_input.endswith("speaks")][:1]
    subject = normalize_text(scored[0].subject)
    language = relations.relation_of["{} speaks"]
    assert (subject, language) in relations.pairs_of(scored)
    # no distractor asks the scored subject's language through the other template
    for d in build_distractors(source + extra, scored, 25, seed=1):
        assert not (normalize_text(d.subject) == subject and d.relation == language)


def test_scored_subject_relation_pairs_are_excluded_and_others_kept(source):
    relations = Relations(source)
    scored = source[:2]  # Ana Lima: language; Bo Chen: capital; neighbours Di Sato, Ed Moss
    every = len(SUBJECTS) * 3
    distractors = build_distractors(source, scored, every - 4)  # all cells but the 4 excluded
    pairs = {(normalize_text(d.subject), d.relation) for d in distractors}
    language, capital = relations.relation_of[LANGUAGE[0]], relations.relation_of[CAPITAL[0]]
    for subject, relation in (("Ana Lima", language), ("Bo Chen", capital),  # the edits' own facts
                              ("Di Sato", language), ("Ed Moss", capital)):  # their neighbourhood prompts' facts
        assert (normalize_text(subject), relation) not in pairs
    # the scored subjects still appear, with their other relations: exclusion is per pair, not per subject
    assert (normalize_text("Ana Lima"), capital) in pairs
    assert len(pairs) == len(distractors)  # each (subject, relation) once
    with pytest.raises(ConfigError, match="only 20"):
        build_distractors(source, scored, every - 3)


def test_distractors_are_the_relation_s_templates_with_a_false_answer(source):
    relations = Relations(source)
    for d in build_distractors(source, source[:1], 12, seed=3):
        assert d.input.replace(d.subject, "{}", 1) in relations.templates[d.relation]
        assert d.target in relations.answers[d.relation]
        assert normalize_text(d.target) not in relations.known.get((normalize_text(d.subject), d.relation), set())


def test_deterministic_for_a_seed(source):
    first = build_distractors(source, source[:2], 15, seed=7)
    assert build_distractors(source, source[:2], 15, seed=7) == first
    assert build_distractors(source, source[:2], 15, seed=8) != first
