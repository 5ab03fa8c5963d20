"""FC data (serac.tasks.fc.data): edit building from VitaminC records and the extra training pairs,
and routing of claims through a classifier editor, on tiny models and records written here. The
runner's fc task: tests/eval/test_tasks.py; training: tests/train/test_task_training.py."""

from __future__ import annotations

import pytest

from serac.base import CallableModel
from serac.data.examples import EditExample, FactCheckExample, Probe
from serac.editor import EditedModel
from serac.errors import ConfigError, DataError
from serac.scope import ScopeClassifier
from serac.base import load_text_model
from serac.counterfactual import PairClassifierCounterfactual
from serac.tasks.fc.data import (
    EVIDENCE_TARGET,
    build_fc_edits,
    counterfact_pairs,
    number_swaps,
    split_edits,
)
from tests.tasks.conftest import RuleClassifier, fc_records

PARIS = "paris capital france river seine"
JUPITER = "jupiter largest planet solar system"
VIOLIN = "violin four strings bow instrument"


# -- data ------------------------------------------------------------------------------------------
def test_build_fc_edits_groups_claims_by_evidence():
    records = fc_records() + [
        FactCheckExample("paris is in france", "  Paris capital  France river seine ", "supports", "x")
    ]
    edits = build_fc_edits(records)
    assert [e.evidence for e in edits] == [PARIS, JUPITER, VIOLIN]  # first spelling, first-appearance order
    paris = edits[0]
    assert paris.edit_input == PARIS and paris.edit_target == EVIDENCE_TARGET == "supports"
    assert paris.in_scope == (
        Probe("paris is the capital of france", "supports"),
        Probe("paris is not the capital of france", "refutes"),
        Probe("paris is in france", "supports"),
    )
    assert paris.hard_out_of_scope == (Probe("paris has many bakeries", None),)
    assert paris.record_ids == ("vitaminc:0", "vitaminc:1", "vitaminc:2", "x")
    # evidence with only a "not enough info" claim still makes an edit, with no in-scope claim
    assert edits[2].in_scope == () and edits[2].hard_out_of_scope == (Probe("violin has many fans", None),)


def test_build_fc_edits_filters_short_evidence_and_rejects_bad_labels():
    assert [e.evidence for e in build_fc_edits(fc_records(), min_evidence_words=6)] == []
    assert len(build_fc_edits(fc_records(), min_evidence_words=5)) == 3
    with pytest.raises(DataError, match="label 'maybe'"):
        build_fc_edits([FactCheckExample("c", "e", "maybe", "r")])


def test_split_edits_is_seeded_and_disjoint():
    edits = build_fc_edits(fc_records())
    kept, held = split_edits(edits, 0.34, seed=1)
    assert (
        len(held) == 1
        and len(kept) == 2
        and {e.evidence for e in kept} | {e.evidence for e in held} == {PARIS, JUPITER, VIOLIN}
    )
    assert split_edits(edits, 0.34, seed=1) == (kept, held)
    with pytest.raises(ConfigError, match="fraction"):
        split_edits(edits, 1.0)


def test_counterfact_pairs_state_the_edit_and_contrast_the_answers():
    example = EditExample(
        "Toko Yasuda, the", "piano", (Probe("Toko Yasuda, the", "piano"), Probe("Toko Yasuda is great at", "piano")),
        (Probe("John Lennon performs on the", "guitar"),), subject="Toko Yasuda", original_target="guitar",
    )
    no_original = EditExample("X is in", "Y", (Probe("X is in", "Y"),), ())
    pairs, labels = counterfact_pairs([example, no_original], n=5)
    assert pairs == [("Toko Yasuda, the piano.", "Toko Yasuda is great at piano."),
                     ("Toko Yasuda, the piano.", "Toko Yasuda is great at guitar.")]
    assert labels == ["supports", "refutes"]


def test_number_swaps_change_one_digit_of_supported_claims():
    pairs = [("e1", "It had 4,370 cases in 2019 ."), ("e2", "It had 12 cases ."), ("e3", "No numbers here .")]
    out, labels = number_swaps(pairs, ["supports", "refutes", "supports"], seed=1)
    assert labels == ["refutes"] and len(out) == 1
    evidence, claim = out[0]
    assert evidence == "e1" and claim != pairs[0][1]
    changed = [(a, b) for a, b in zip(claim, pairs[0][1]) if a != b]
    assert len(claim) == len(pairs[0][1]) and len(changed) == 1 and changed[0][0].isdigit()
    assert number_swaps(pairs, ["supports", "refutes", "supports"], seed=1) == (out, labels)  # seeded


# -- routing ---------------------------------------------------------------------------------------
def _editor(hashing_encoder, threshold: float = 0.4):
    base = CallableModel(lambda claims: ["refutes"] * len(claims))  # a base that always says refutes
    cf = RuleClassifier({(PARIS, "paris is the capital of france"): "supports"}, default="supports")
    editor = EditedModel(
        base, ScopeClassifier(hashing_encoder, threshold=threshold, top_k=2), PairClassifierCounterfactual(cf)
    )
    return editor, cf


def test_in_scope_claims_go_to_the_counterfactual_with_their_evidence(hashing_encoder):
    editor, cf = _editor(hashing_encoder)
    editor.add_many([(PARIS, EVIDENCE_TARGET), (JUPITER, EVIDENCE_TARGET)])
    answers = editor.generate(["paris is the capital of france", "jupiter is the largest planet"])
    assert [a.source for a in answers] == ["counterfactual", "counterfactual"]
    assert [a.edit.input for a in answers] == [PARIS, JUPITER]
    assert [a.text for a in answers] == ["supports", "supports"]
    assert cf.seen == [(PARIS, "paris is the capital of france"), (JUPITER, "jupiter is the largest planet")]


def test_out_of_scope_claims_go_to_the_base_and_keep_its_label(hashing_encoder):
    editor, cf = _editor(hashing_encoder)
    claims = ["paris has many bakeries", "violin has many fans", "the moon orbits the earth"]
    before = editor.base.generate(claims)
    editor.add_many([(PARIS, EVIDENCE_TARGET), (VIOLIN, EVIDENCE_TARGET)])
    answers = editor.generate(claims)
    assert [a.source for a in answers] == ["base"] * 3
    assert [a.text for a in answers] == before
    assert cf.seen == []


def test_real_classifiers_route_and_keep_base_labels_exactly(tiny_classifier_dir, hashing_encoder):
    base = load_text_model(str(tiny_classifier_dir), batch_size=32)
    editor = EditedModel(
        base,
        ScopeClassifier(hashing_encoder, threshold=0.4),
        PairClassifierCounterfactual(load_text_model(str(tiny_classifier_dir), batch_size=32)),
    )
    claims = [r.claim for r in fc_records()]
    before = base.generate(claims)
    editor.add_many([(PARIS, EVIDENCE_TARGET)])
    answers = editor.generate(claims)
    assert [a.source for a in answers] == ["counterfactual", "counterfactual", "base", "base", "base"]
    assert [a.text for i, a in enumerate(answers) if a.source == "base"] == [before[i] for i in (2, 3, 4)]
