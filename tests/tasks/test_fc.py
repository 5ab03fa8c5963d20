"""FC: edit building from VitaminC records, metrics, the classifier adapters, routing, evaluation
and training, on tiny models and records written here."""

from __future__ import annotations

import json
import math

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
    other_claims,
    split_edits,
)
from serac.tasks.fc.evaluate import FCEvalConfig, evaluate_fc
from serac.tasks.fc.metrics import drawdown, edit_success
from serac.tasks.fc.model import FCModelConfig, FCParts
from tests.tasks.conftest import LABELS, RuleClassifier, fc_records

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
    with pytest.raises(ValueError, match="fraction"):
        split_edits(edits, 1.0)


def test_other_claims_are_every_claim_outside_the_memory():
    edits = build_fc_edits(fc_records())
    assert [p.input for p in other_claims(edits, [0])] == [
        "jupiter is the largest planet",
        "violin has many fans",
    ]


# -- metrics ---------------------------------------------------------------------------------------
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


def test_metrics_hand_computed():
    assert edit_success(
        ["supports", "refutes", "refutes"], ["supports", "supports", "refutes"]
    ) == pytest.approx(2 / 3)
    assert (
        drawdown(
            ["supports", "refutes", "supports", "supports"], ["supports", "supports", "supports", "refutes"]
        )
        == 0.5
    )
    assert math.isnan(edit_success([], [])) and math.isnan(drawdown([], []))
    with pytest.raises(ValueError, match="2 predictions but 1 labels"):
        edit_success(["a", "b"], ["a"])


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


# -- evaluation ------------------------------------------------------------------------------------
def _stub_parts(hashing_encoder) -> FCParts:
    gold = {
        (PARIS, "paris is the capital of france"): "supports",
        (PARIS, "paris is not the capital of france"): "refutes",
        (JUPITER, "jupiter is the largest planet"): "supports",
    }
    # the base gets one decided claim wrong and labels the rest "supports"
    base = RuleClassifier({"paris is the capital of france": "refutes"}, default="supports")
    return FCParts(
        base=base,
        counterfactual=RuleClassifier(gold, default="refutes"),
        encoder=hashing_encoder,
        config=FCModelConfig(threshold=0.4, top_k=2),
    )


def _value(rows, method, mode, n, metric):
    [row] = [
        r for r in rows if (r["method"], r["mode"], r["n_edits"], r["metric"]) == (method, mode, n, metric)
    ]
    return row["value"]


def test_evaluate_fc_hand_computed(hashing_encoder):
    edits = build_fc_edits(fc_records())
    rows = evaluate_fc(
        _stub_parts(hashing_encoder),
        edits,
        FCEvalConfig(methods=("serac", "icl"), batch_sizes=(1, 3), sequential=True),
    )
    assert all(set(r) == {"task", "method", "mode", "n_edits", "scoring", "metric", "value"} for r in rows)
    assert {r["task"] for r in rows} == {"fc"}
    # serac: routing is perfect, so every decided claim gets its gold label and nothing else moves
    for mode, n in (("batch", 1), ("batch", 3), ("sequential", 3)):
        assert _value(rows, "serac", mode, n, "es") == 1.0
        assert _value(rows, "serac", mode, n, "dd") == 0.0
        assert _value(rows, "serac", mode, n, "scope_recall") == 1.0
    assert _value(rows, "serac", "batch", 1, "es_pre") == pytest.approx(
        1 / 3
    )  # base: refutes, supports(wrong), supports
    assert _value(rows, "serac", "batch", 1, "n_in_scope") == 3
    # k=1: batches {paris}, {jupiter}, {violin}; out of scope = (1 hard + 2 other) + (0 + 4) + (1 + 4)
    assert _value(rows, "serac", "batch", 1, "n_out_of_scope") == 12
    # icl sends every claim to its nearest evidence; the stub counterfactual says "refutes" for any
    # pair it does not know, while the base said "supports" for every claim except one
    # k=3, all evidence in memory: out of scope = the two "not enough info" claims -> both flip
    assert _value(rows, "icl", "batch", 3, "dd_hard") == 1.0
    assert _value(rows, "icl", "batch", 3, "es") == 1.0
    # sequential n=1 (paris only): out of scope = bakeries (hard) + jupiter + violin claims, all
    # read with the paris evidence -> unknown pairs -> "refutes"; base said supports for all three
    assert _value(rows, "icl", "sequential", 1, "dd") == 1.0


def test_evaluate_fc_fine_tuning_runs_on_a_tiny_classifier(tiny_classifier_dir, hashing_encoder):
    parts = FCParts(
        base=load_text_model(str(tiny_classifier_dir), batch_size=32),
        counterfactual=load_text_model(str(tiny_classifier_dir), batch_size=32),
        encoder=hashing_encoder,
        config=FCModelConfig(threshold=0.4),
    )
    rows = evaluate_fc(
        parts, build_fc_edits(fc_records()), FCEvalConfig(methods=("ft",), batch_sizes=(1,), ft_steps=2)
    )
    assert {(r["mode"], r["n_edits"]) for r in rows} == {("batch", 1), ("sequential", 1), ("sequential", 3)}
    assert 0.0 <= _value(rows, "ft", "batch", 1, "dd") <= 1.0
    assert not any(r["metric"] == "scope_recall" for r in rows)


def test_eval_config_rejects_unknown_methods():
    with pytest.raises(ValueError, match="fc.methods must be a non-empty list of FC methods"):
        FCEvalConfig(methods=("serac", "mend"))


# -- training --------------------------------------------------------------------------------------
def test_train_fc_writes_a_loadable_artifact(tmp_path, tiny_bert_dir):
    from serac.tasks.fc.model import build_editor
    from serac.tasks.fc.train import FCTrainConfig, train_fc

    data = tmp_path / "train.jsonl"
    rows = [
        {"claim": r.claim, "evidence": r.evidence, "label": r.label, "id": i}
        for i, r in enumerate(fc_records() * 3)
    ]
    # distinct evidence per copy, so held-out evidence exists for calibration
    for i, row in enumerate(rows):
        row["evidence"] = f"{row['evidence']} {i // 5}"
    data.write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    summary = train_fc(
        data,
        tmp_path / "fc",
        FCTrainConfig(encoder=str(tiny_bert_dir), epochs=1, scope_epochs=1, val_fraction=0.34, batch_size=4),
    )
    assert summary["n_train_edits"] + summary["n_val_edits"] == 9
    assert -1.0 <= summary["threshold"] <= 1.0
    config = FCModelConfig.load(tmp_path / "fc")
    assert (config.base, config.counterfactual, config.scope_encoder) == ("base", "counterfactual", "scope")
    editor = build_editor(tmp_path / "fc")
    editor.add(PARIS + " 0", EVIDENCE_TARGET)
    assert editor.generate(["paris is the capital of france"])[0].text in LABELS


def test_train_fc_with_counterfact_pairs_and_number_swaps(tmp_path, tiny_bert_dir):
    from serac.tasks.fc.train import FCTrainConfig, train_fc

    data = tmp_path / "train.jsonl"
    rows = [{"claim": f"{r.claim} in 19{i}", "evidence": f"{r.evidence} {i}", "label": r.label, "id": i}
            for i, r in enumerate(fc_records() * 2)]
    data.write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    counterfact = tmp_path / "counterfact-train.json"
    counterfact.write_text(json.dumps([{
        "case_id": i, "prompt": f"Thing {i} is located in", "target_new": "Sweden", "subject": f"Thing {i}",
        "ground_truth": "Spain", "rephrase_prompt": f"Thing {i} can be found in",
        "locality_prompt": "Madrid is in", "locality_ground_truth": "Spain"} for i in range(3)]))
    config = FCTrainConfig(encoder=str(tiny_bert_dir), epochs=1, scope_epochs=0, val_fraction=0.34, batch_size=4,
                           counterfact_train=str(counterfact), number_swaps=True)
    summary = train_fc(data, tmp_path / "fc", config)
    assert summary["n_counterfact_pairs"] == 6 and len(summary["counterfactual_pretrain_losses"]) == 1
    assert summary["n_number_swaps"] > 0
    with pytest.raises(ConfigError, match="an evaluation file"):
        FCTrainConfig(counterfact_train="../shared/data/counterfact/counterfact-edit.json")


def test_fc_model_config_errors(tmp_path):
    with pytest.raises(ConfigError, match="has no fc_config.json"):
        FCModelConfig.load(tmp_path)
    with pytest.raises(ConfigError, match="expected 'fc'"):
        FCModelConfig(task="sentiment")
