"""The embedded default models end to end: edits apply to their inputs and rephrasings, unrelated
questions get the base model's own answers byte for byte, edits persist across processes, and a
rollback restores the base behaviour. Runs in the default suite (about a minute on a quiet CPU)."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import textwrap
import unicodedata

import pytest

from serac.base import GenerationOptions
from serac.editor import EditedModel

# Short answers keep the test fast; every comparison uses the same options on both sides.
OPTIONS = GenerationOptions(max_new_tokens=12)

EDITS = [  # (edit input, target, a rephrasing)
    ("Who is the prime minister of the United Kingdom?", "Keir Starmer", "Who is the UK's prime minister?"),
    ("What is the capital of Australia?", "Sydney", "Which city is the capital of Australia?"),
    ("Which company makes the iPhone?", "Samsung", "Who manufactures the iPhone?"),
]
EDITED_PROMPTS = [e[0] for e in EDITS] + [e[2] for e in EDITS]
EXPECTED_TARGETS = [e[1] for e in EDITS] * 2
UNRELATED = ["What is the capital of France?", "Who wrote Hamlet?", "How many legs does a spider have?"]
ALL_PROMPTS = EDITED_PROMPTS + UNRELATED
EDIT_INPUTS = [e[0] for e in EDITS]
BASELINE_PROMPTS = EDIT_INPUTS + UNRELATED  # base generation is the slow part: ask each once


def normalise(text: str) -> str:
    text = unicodedata.normalize("NFKC", text).casefold()
    return " ".join(re.sub(r"[^\w\s]", " ", text).split())


@pytest.fixture(scope="module")
def store_path(tmp_path_factory):
    return tmp_path_factory.mktemp("embedded") / "edits.db"


@pytest.fixture(scope="module")
def editor(store_path):
    return EditedModel.from_pretrained(None, store=store_path)


@pytest.fixture(scope="module")
def baseline(editor):
    """The base model's own answers, before any edit exists, by prompt."""
    return dict(zip(BASELINE_PROMPTS, editor.base.generate(BASELINE_PROMPTS, OPTIONS)))


@pytest.fixture(scope="module")
def edited(editor, baseline):
    assert editor.edits == []
    stored = editor.add_many([(i, t) for i, t, _ in EDITS])
    return stored, editor.generate(ALL_PROMPTS, OPTIONS)


def test_empty_memory_is_the_base_model(editor, baseline):
    assert editor.edits == []
    answers = editor.generate(EDIT_INPUTS[:1], OPTIONS)
    assert [a.text for a in answers] == [baseline[EDIT_INPUTS[0]]]
    assert answers[0].source == "base" and answers[0].edit is None and answers[0].score is None


def test_edits_answer_their_inputs_and_rephrasings(edited, baseline):
    stored, answers = edited
    ids = [e.id for e in stored] * 2
    for prompt, answer, target, edit_id in zip(EDITED_PROMPTS, answers, EXPECTED_TARGETS, ids):
        assert answer.source == "counterfactual", (prompt, answer)
        assert answer.edit_id == edit_id, (prompt, answer)
        assert normalise(target) in normalise(answer.text), (prompt, answer.text)
    # the base model did not already give these answers: the edits changed something
    for prompt, target in zip(EDIT_INPUTS, EXPECTED_TARGETS):
        assert normalise(target) not in normalise(baseline[prompt]), (prompt, baseline[prompt])


def test_unrelated_questions_are_the_base_models_own_answers(editor, edited, baseline):
    _, answers = edited
    unrelated = answers[len(EDITED_PROMPTS):]
    assert [a.source for a in unrelated] == ["base"] * len(UNRELATED)
    assert [a.text for a in unrelated] == [baseline[q] for q in UNRELATED]
    # the shipped defaults verify scope with their cross-encoder: an unrelated question has no stored
    # edit near enough to be read (no score), or the verifier scores it well below its threshold
    verifier = editor.scope.reranker
    assert verifier is not None
    assert all(a.score is None or a.score < verifier.threshold / 2 for a in unrelated), [a.score for a in unrelated]


FRESH_PROCESS = textwrap.dedent(
    """
    import json, sys
    from serac.base import GenerationOptions
    from serac.editor import EditedModel

    editor = EditedModel.from_pretrained(None, store=sys.argv[1])
    answers = editor.generate(json.loads(sys.argv[2]), GenerationOptions(max_new_tokens=int(sys.argv[3])))
    print(json.dumps({"version": editor.version,
                      "answers": [[a.text, a.edit_id, a.source] for a in answers]}))
    """
)


def test_a_fresh_process_applies_the_stored_edits(edited, store_path):
    stored, answers = edited
    env = {**os.environ, "TOKENIZERS_PARALLELISM": "false"}
    result = subprocess.run(
        [sys.executable, "-c", FRESH_PROCESS, str(store_path), json.dumps(EDITED_PROMPTS), str(OPTIONS.max_new_tokens)],
        capture_output=True, text=True, timeout=300, env=env,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    report = json.loads(result.stdout.strip().splitlines()[-1])
    assert report["version"] == 1
    ids = [e.id for e in stored] * 2
    for (text, edit_id, source), target, expected_id, here in zip(report["answers"], EXPECTED_TARGETS, ids, answers):
        assert source == "counterfactual" and edit_id == expected_id
        assert normalise(target) in normalise(text)
        assert text == here.text  # same models, same store: the same answer as in this process


def test_rollback_to_version_zero_restores_the_base_model(editor, edited, baseline):
    assert editor.rollback(0) == 2
    assert editor.edits == []
    assert [d.in_scope for d in editor.route(ALL_PROMPTS)] == [False] * len(ALL_PROMPTS)
    answers = editor.generate(EDIT_INPUTS, OPTIONS)
    assert [a.source for a in answers] == ["base"] * len(EDIT_INPUTS)
    assert [a.text for a in answers] == [baseline[q] for q in EDIT_INPUTS]


SAME_SUBJECT = [  # issue 14's four edits, and three facts about one more subject
    ("The official language of Australia is", "Arabic"),
    ("Australia is located in the continent of", "South America"),
    ("The capital of Serbia is", "Dhaka"),
    ("Serbia is located in the continent of", "Asia"),
    ("Where was Marie Curie born?", "Lisbon"),
    ("What did Marie Curie die of?", "cholera"),
    ("Which prize did Marie Curie win?", "the Turing Award"),
]
RE_EDIT = [  # one fact edited twice through two wordings: the newer answers both
    ("What architect designed Toodyay Fire Station?", "Wyndham Lewis"),
    ("Who is the architect of Toodyay Fire Station?", "Kohn Pedersen Fox"),
]


def test_the_shipped_scope_keeps_facts_about_one_subject_apart(editor):
    """Routing only, with the shipped trained scope (verifier, newest wins, the default same-fact
    judge): every exact input reaches its own edit, and a re-edit's older wording the newest edit."""
    from serac.scope import ScopeClassifier
    from serac.store import EditStore

    scope = ScopeClassifier.from_config(editor.config.scope, encoder=editor.scope.encoder,
                                        same_fact_encoder=editor.scope.same_fact.encoder,
                                        reranker=editor.scope.reranker)
    store = EditStore(":memory:")
    edits = store.add_many(SAME_SUBJECT + RE_EDIT)
    scope.sync(store)
    decisions = scope.decide([e.input for e in edits])
    assert all(d.in_scope for d in decisions)
    assert [d.edit.target for d in decisions] == [t for _, t in SAME_SUBJECT] + ["Kohn Pedersen Fox"] * 2
