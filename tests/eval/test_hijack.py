"""The hijack evaluation set (issue 14, item 4) on a tiny hand-made CounterFact-like file."""

from __future__ import annotations

from serac.data import EditExample, Probe
from serac.eval.hijack import CHAIN_DESCRIPTIONS, build_hijack_set, chain_question

LANGUAGES = ["English", "French", "German", "Italian", "Spanish"]
CITIES = ["Paris", "Rome", "Berlin", "Madrid", "Vienna"]
PEOPLE = ["Ann Lee", "Bo Chan", "Cy Dunn", "Di Eng", "Ed Fox"]


def example(template: str, subject: str, new: str, old: str) -> EditExample:
    text = template.format(subject)
    return EditExample(text, new, (Probe(text, new), Probe(f"Say: {text}", new)), (Probe("unrelated?", None),),
                       subject=subject, original_target=old)


def corpus() -> list[EditExample]:
    out = []
    for i, person in enumerate(PEOPLE):
        out.append(example("The mother tongue of {} is", person, LANGUAGES[i], LANGUAGES[(i + 1) % 5]))
        out.append(example("{} was born in", person, CITIES[i], CITIES[(i + 2) % 5]))
        # a paraphrase of the language relation (answers overlap): never another relation
        out.append(example("{} speaks the language", person, LANGUAGES[(i + 2) % 5], LANGUAGES[(i + 3) % 5]))
    return out


def test_siblings_are_other_relations_of_the_edited_subject_only():
    data = corpus()
    hijack = build_hijack_set(data, n_counterfact=5, n_zsre=0, seed=3, per_edit=1, min_answers=3)
    assert len(hijack.edits) == 5 and len({e.subject for e in hijack.edits}) == 5  # one edit per subject
    siblings = hijack.of_kind("sibling")
    assert siblings
    for query in siblings:
        edit = hijack.edits[query.edit]
        assert edit.subject in query.text
        language = {"mother tongue", "speaks the language"}
        edit_is_language = any(w in edit.edit_input for w in language)
        query_is_language = any(w in query.text for w in language)
        assert edit_is_language != query_is_language  # another relation, never a paraphrase of the same one
    # every other-relation record of an edited subject is a query
    edited = {e.edit_input for e in hijack.edits}
    for edit_index, edit in enumerate(hijack.edits):
        want = {d.edit_input for d in data if d.subject == edit.subject and d.edit_input not in edited
                and ("born" in d.edit_input) != ("born" in edit.edit_input)}
        assert want == {q.text for q in siblings if q.edit == edit_index}


def test_templates_and_chains_mention_the_subject_and_never_repeat_an_edit_input():
    hijack = build_hijack_set(corpus(), n_counterfact=5, n_zsre=0, seed=0, per_edit=2, min_answers=3)
    inputs = {e.edit_input.casefold() for e in hijack.edits}
    assert hijack.of_kind("template")
    for query in hijack.queries:
        assert hijack.edits[query.edit].subject in query.text
        assert query.text.casefold() not in inputs
    for query in hijack.of_kind("chain"):
        edit = hijack.edits[query.edit]
        assert edit.edit_input == f"{edit.subject} was born in"  # only the place-valued relation chains
        assert f"the place where {edit.subject} was born" in query.text.replace("The place", "the place")
    born = [e for e in hijack.edits if "born" in e.edit_input]
    assert born and len(hijack.of_kind("chain")) == 2 * len(born)


def test_same_seed_same_set_other_seed_other_choice():
    a = build_hijack_set(corpus(), n_counterfact=3, n_zsre=0, seed=1, min_answers=3)
    b = build_hijack_set(corpus(), n_counterfact=3, n_zsre=0, seed=1, min_answers=3)
    assert a == b
    others = [build_hijack_set(corpus(), n_counterfact=3, n_zsre=0, seed=s, min_answers=3) for s in range(2, 8)]
    assert any(o.edits != a.edits for o in others)


def test_chain_question_needs_a_place_valued_relation():
    assert chain_question("{} was born in", "Ann Lee", "The official language of {} is") == \
        "The official language of the place where Ann Lee was born is"
    assert chain_question("{} is located in", "Oslo Fjord", "{} is located in the continent of") == \
        "The place where Oslo Fjord is located is located in the continent of"
    assert chain_question("The mother tongue of {} is", "Ann Lee", "The capital of {} is") is None
    assert all("{}" in template for template in CHAIN_DESCRIPTIONS)


def test_edits_can_be_limited_to_held_out_inputs_while_siblings_come_from_every_record():
    held_out = {f"{person} was born in" for person in PEOPLE[:3]}
    hijack = build_hijack_set(corpus(), n_counterfact=5, n_zsre=0, seed=0, per_edit=1, min_answers=3,
                              edit_inputs=held_out)
    assert {e.edit_input for e in hijack.edits} == held_out  # subjects without a held-out record are skipped
    siblings = {q.text for q in hijack.of_kind("sibling")}
    assert "The mother tongue of Ann Lee is" in siblings  # a record outside the held-out set, as a query
