"""The FC corpora loaders, the classifier's training set (never a test claim) and the editing
evaluations built from FM2 and Symmetric FEVER."""

from __future__ import annotations

import pytest

from serac.data.examples import normalize_text
from serac.errors import DataError
from serac.tasks.fc import corpora
from serac.tasks.fc.deferring import DeferringPairClassifier, decided_predictions
from tests.tasks.fc.fixtures import FM2_TEST, write_tree


@pytest.fixture
def tree(tmp_path):
    return write_tree(tmp_path)


def test_labels_map_to_the_fc_task_labels(tree):
    data, vitaminc = tree
    esnli = corpora.load_esnli(data, "dev")
    assert [p.label for p in esnli] == ["supports", "refutes", "not enough info", "not enough info"]
    assert esnli[0].evidence == "A man plays a guitar." and esnli[0].claim == "A man plays music."
    climate = corpora.load_climate_fever(data)
    assert [(p.label, p.page) for p in climate[:3]] == [
        ("supports", "Sea level rise"), ("not enough info", "Glacier"), ("refutes", "Sea level")]
    fm2 = corpora.load_fm2(data, "test")
    assert [p.label for p in fm2] == ["refutes", "supports", "supports", "supports"]
    assert fm2[1].evidence == "The Natural is a 1952 novel about baseball. Roy Hobbs is its hero."
    assert fm2[1].page == "The Natural" and fm2[1].source == "fm2:test"
    generated = corpora.load_symmetric_fever(data, "generated")
    assert generated[0].evidence == "The Cretaceous ended with an extinction ." and generated[0].label == "supports"
    assert {p.label for p in corpora.load_vitaminc_pairs(vitaminc, "test")} == {"supports", "not enough info"}
    # the labels are the ones the existing FC task (serac.tasks.fc.data) uses
    from serac.tasks.fc.data import DECIDED, UNDECIDED

    assert {p.label for p in esnli} == {*DECIDED, UNDECIDED}


def test_bad_labels_and_splits_are_data_errors(tree):
    data, _ = tree
    assert corpora.fc_label("NOT_ENOUGH_INFO", "x") == "not enough info"
    with pytest.raises(DataError, match="'DISPUTED'"):
        corpora.fc_label("DISPUTED", "x")
    with pytest.raises(DataError, match="valid: dev, test"):
        corpora.load_fm2(data, "train")
    (data / "esnli" / "labels.test").write_text("entailment\nneutral\n")  # s1/s2 have one line
    with pytest.raises(DataError, match="same number"):
        corpora.load_esnli(data, "test")


def test_training_pairs_never_hold_a_test_claim_or_evidence(tree):
    data, vitaminc = tree
    pairs = corpora.classifier_training_pairs(
        data, vitaminc, (*corpora.PRETRAIN_SPLITS, *corpora.FINETUNE_SPLITS))
    test_claims = {normalize_text(p.claim) for name in corpora.TEST_SPLITS
                   for p in corpora.load_split(name, data, vitaminc)}
    assert test_claims  # the check below is not vacuous
    assert not {normalize_text(p.claim) for p in pairs} & test_claims
    claims = {p.claim for p in pairs}
    # the overlaps planted in the fixtures were dropped, the rest kept
    assert "Puyi was the last emperor of China." not in claims  # Climate-FEVER claim = an FM2 test claim
    assert "The Cretaceous ended ." not in claims  # e-SNLI hypothesis = a Symmetric FEVER test claim
    assert {"A man plays music.", "Sea level is rising.", "Mars has two moons.", "The film was popular."} <= claims
    assert {p.source for p in pairs} == {"esnli:dev", "esnli:test", "vitaminc:train", "climate_fever", "fm2:dev"}


@pytest.mark.parametrize("split", [*corpora.TEST_SPLITS, "symmetric_fever:generated"])
def test_test_splits_are_refused_for_training(tree, split):
    data, vitaminc = tree
    with pytest.raises(DataError, match="cannot train"):
        corpora.classifier_training_pairs(data, vitaminc, ("esnli:dev", split))


def test_nei_cap_keeps_the_stated_share():
    pairs = [corpora.LabelledPair("e", f"c{i}", "not enough info" if i < 8 else "supports", "x") for i in range(12)]
    capped = corpora.cap_label_fraction(pairs, "not enough info", 0.5, seed=1)
    assert sum(p.label == "not enough info" for p in capped) == 4
    assert [p for p in capped if p.label == "supports"] == pairs[8:]
    assert capped == corpora.cap_label_fraction(pairs, "not enough info", 0.5, seed=1)  # seeded


def test_fm2_edits_merge_shared_evidence_and_scope_claims(tree):
    data, _ = tree
    paged = corpora.fm2_edits(corpora.load_fm2(data, "test", keep_sentences=True), seed=None)
    by_claims = {tuple(p.input for p in e.in_scope): (e, page) for e, page in zip(paged.edits, paged.pages)}
    assert set(by_claims) == {
        ("The Natural is a boxing novel.", "The Natural is about baseball."),  # share a sentence: one edit
        ("A film of The Natural came out in 1984.",),
        ("Puyi was the last emperor of China.",),
    }
    merged, page = by_claims[("The Natural is a boxing novel.", "The Natural is about baseball.")]
    assert merged.evidence == "The Natural is a 1952 novel about baseball. Roy Hobbs is its hero."
    assert [p.target for p in merged.in_scope] == ["refutes", "supports"] and page == "The Natural"
    index = paged.edits.index(merged)
    # out of scope on the same page: the other The Natural claim only (not Puyi, not its own claims)
    assert [p.input for p in paged.same_page(index)] == ["A film of The Natural came out in 1984."]
    assert paged.same_page(paged.pages.index("Puyi")) == []
    assert sum(len(e.in_scope) for e in paged.edits) == len(FM2_TEST)
    shuffled = corpora.fm2_edits(corpora.load_fm2(data, "test", keep_sentences=True), seed=3)
    assert sorted(e.evidence for e in shuffled.edits) == sorted(e.evidence for e in paged.edits)


def test_symmetric_fever_views_store_one_evidence_per_contrast_set(tree):
    data, _ = tree
    pairs = corpora.load_symmetric_fever(data, "dev")
    views = [corpora.symmetric_fever_edits(pairs, view, seed=None).edits for view in (0, 1)]
    for edits in views:
        assert len(edits) == 1  # one contrast set -> one edit, so no claim is both in and out of scope
    french, american = views[0][0], views[1][0]
    assert french.evidence == "Colombiana is a 2011 French action film ."
    assert {p.input: p.target for p in french.in_scope} == {
        "Colombiana is a French film .": "supports", "Colombiana is an American film .": "refutes"}
    assert {p.input: p.target for p in american.in_scope} == {
        "Colombiana is a French film .": "refutes", "Colombiana is an American film .": "supports"}
    with pytest.raises(DataError, match="view"):
        corpora.symmetric_fever_edits(pairs, 2)


def test_vitaminc_edits_are_the_existing_evaluation(tree):
    _, vitaminc = tree
    (edit,) = corpora.vitaminc_edits(vitaminc).edits
    assert [p.input for p in edit.in_scope] == ["The town has 900 people."]
    assert [p.input for p in edit.hard_out_of_scope] == ["The town is old."]


class _Table:
    labels = ("supports", "refutes", "not enough info")

    def __init__(self, table):
        self.table = table

    def predict(self, items):
        return [self.table[item] for item in items]

    def predict_proba(self, items):
        return [{"supports": [0.2, 0.3, 0.5], "refutes": [0.4, 0.1, 0.5]}[self.table[item]] for item in items]

    def generate(self, prompts, options=None):
        return ["refutes" for _ in prompts]


def test_not_enough_info_defers_to_the_base_label():
    pair = _Table({("e", "decided"): "supports", ("e", "open"): "not enough info"})
    deferring = DeferringPairClassifier(pair, base=_Table({}))
    assert deferring.predict([("e", "decided"), ("e", "open")]) == ["supports", "refutes"]
    assert deferring.labels == ("supports", "refutes")
    # read as 2-way, the larger of the supports / refutes probabilities wins even when NEI is larger
    two_way = _Table({("e", "a"): "supports", ("e", "b"): "refutes"})
    assert decided_predictions(two_way, [("e", "a"), ("e", "b")]) == ["refutes", "supports"]

