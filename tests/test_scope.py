"""Scope: the faiss index, threshold decisions, and staying in step with a (shared) store."""

from __future__ import annotations

import hashlib
import re

import numpy as np
import pytest

from conftest import HashingEncoder
from serac.facts import mask_shared_span
from serac.scope import CrossEncoderReranker, ScopeClassifier, ScopeIndex
from serac.store import EditStore


def unit(*rows):
    array = np.asarray(rows, dtype=np.float32)
    return array / np.linalg.norm(array, axis=1, keepdims=True)


def test_index_search_orders_best_first():
    index = ScopeIndex(3)
    index.add([10, 20, 30], unit([1, 0, 0], [0, 1, 0], [1, 1, 0]))
    assert len(index) == 3
    scores, ids = index.search(unit([1, 0.2, 0]), k=3)
    assert ids.tolist() == [[10, 30, 20]]
    assert np.all(np.diff(scores[0]) <= 0)
    np.testing.assert_allclose(scores[0, 0], unit([1, 0.2, 0])[0] @ [1, 0, 0], rtol=1e-6)
    # k larger than the index is clipped; several queries at once
    scores, ids = index.search(unit([0, 1, 0], [1, 0, 0]), k=10)
    assert ids.shape == (2, 3)
    assert ids[:, 0].tolist() == [20, 10]


def test_index_remove():
    index = ScopeIndex(2)
    index.add([1, 2, 3], unit([1, 0], [0, 1], [1, 1]))
    index.remove([1, 3])
    assert len(index) == 1
    _, ids = index.search(unit([1, 0]), k=5)
    assert ids.tolist() == [[2]]
    index.remove([])  # no-op
    index.remove([99])  # unknown id: no-op
    assert len(index) == 1


def test_empty_index():
    index = ScopeIndex(4)
    assert len(index) == 0
    scores, ids = index.search(unit([1, 0, 0, 0], [0, 1, 0, 0]), k=5)
    assert scores.shape == (2, 0) and ids.shape == (2, 0)
    assert ids.dtype == np.int64 and scores.dtype == np.float32


def make(store, threshold=0.7, top_k=3, encoder=None):
    scope = ScopeClassifier(encoder or HashingEncoder(), threshold=threshold, top_k=top_k)
    scope.sync(store)
    return scope


def test_decide_with_no_edits(hashing_encoder):
    scope = make(EditStore(), encoder=hashing_encoder)
    decisions = scope.decide(["anything", "else"])
    assert [d.in_scope for d in decisions] == [False, False]
    assert decisions[0].edit is None and decisions[0].score is None and decisions[0].candidates == ()
    assert hashing_encoder.calls == 0  # nothing to compare with: no encoder pass
    assert scope.decide([]) == []


def test_threshold_decisions():
    store = EditStore()
    pm = store.add("who is the prime minister of the united kingdom", "Keir Starmer")
    capital = store.add("what is the capital of australia", "Sydney")
    encoder = HashingEncoder()
    queries = [
        "Who is the prime minister of the United Kingdom?",  # same words: cosine 1
        "the united kingdom prime minister is who",  # reordered: bag of words, cosine 1
        "who is the prime minister of canada",  # partial overlap
        "quick brown fox",  # nothing shared
    ]
    expected = encoder.encode(queries) @ encoder.encode([pm.input, capital.input]).T
    best = expected.max(axis=1)
    assert best[0] == pytest.approx(1.0) and best[3] == pytest.approx(0.0)
    threshold = float(best[2]) + 0.01  # just above the partial match
    decisions = make(store, threshold=threshold).decide(queries)
    assert [d.in_scope for d in decisions] == [True, True, False, False]
    assert [d.score for d in decisions] == pytest.approx(best.tolist(), abs=1e-5)
    assert decisions[0].edit == pm and decisions[1].edit == pm
    assert decisions[2].edit is None  # out of scope: no edit even though candidates exist
    assert decisions[2].candidates[0].edit == pm
    # the threshold is inclusive
    decisions = make(store, threshold=float(best[2])).decide(queries[2:3])
    assert decisions[0].in_scope and decisions[0].edit == pm


def test_candidates_best_first_and_top_k():
    store = EditStore()
    store.add_many([("capital of australia", "a"), ("capital of france", "b"), ("capital city", "c")])
    decision = make(store, top_k=2).decide(["what is the capital of australia"])[0]
    assert len(decision.candidates) == 2
    assert decision.candidates[0].edit.input == "capital of australia"
    assert decision.candidates[0].score >= decision.candidates[1].score
    assert decision.score == decision.candidates[0].score


def test_decide_uses_given_query_vectors(hashing_encoder):
    store = EditStore()
    edit = store.add("alpha beta", "x")
    scope = make(store, encoder=hashing_encoder)
    calls = hashing_encoder.calls
    vectors = hashing_encoder.encode(["alpha beta"])
    decision = scope.decide(["text that is ignored"], query_vectors=vectors)[0]
    assert decision.edit == edit
    assert hashing_encoder.calls == calls + 1  # only our own encode above


def test_one_encoder_pass_per_batch(hashing_encoder):
    store = EditStore()
    store.add_many([("alpha", "1"), ("beta", "2")])
    scope = make(store, encoder=hashing_encoder)
    calls = hashing_encoder.calls
    scope.decide(["alpha", "beta", "gamma", "delta"])
    assert hashing_encoder.calls == calls + 1


def test_sync_follows_another_store_object_on_the_same_file(tmp_path):
    path = tmp_path / "edits.db"
    mine, theirs = EditStore(path), EditStore(path)  # "theirs" stands for another process
    scope = make(mine, threshold=0.99)

    def answer(query):
        scope.sync(mine)
        decision = scope.decide([query])[0]
        return decision.edit.target if decision.in_scope else None

    a = theirs.add("alpha question", "A")
    assert answer("alpha question") == "A"
    b = theirs.add("beta question", "B")
    assert answer("beta question") == "B"
    theirs.add("ALPHA   question", "A2")  # supersedes a
    assert answer("alpha question") == "A2"
    assert len(scope.index) == 2
    theirs.remove(b.id)
    assert answer("beta question") is None
    assert len(scope.index) == 1
    theirs.rollback(2)  # a and b, before the supersession and the removal
    assert answer("alpha question") == "A"
    assert answer("beta question") == "B"
    assert a.id in scope.index and b.id in scope.index and len(scope.index) == 2
    theirs.rollback(0)
    assert answer("alpha question") is None and len(scope.index) == 0
    theirs.rollback(5)  # undo the rollback to 0
    assert answer("beta question") == "B"
    assert scope.synced_version == theirs.version


def test_sync_is_a_no_op_when_the_version_is_unchanged(hashing_encoder):
    store = EditStore()
    store.add("alpha", "1")
    scope = make(store, encoder=hashing_encoder)
    calls = hashing_encoder.calls
    before = scope.index
    scope.sync(store)
    scope.sync(store)
    assert hashing_encoder.calls == calls and scope.index is before and len(scope.index) == 1


def test_embeddings_are_computed_once_at_insert(tmp_path):
    path = tmp_path / "edits.db"
    encoder = HashingEncoder()
    scope = ScopeClassifier(encoder, threshold=0.7)
    store = EditStore(path)
    inputs = ["alpha one", "beta two", "gamma three"]
    vectors = scope.embed_keys(inputs)
    store.add_many([(i, "x") for i in inputs], embeddings=(encoder.id, vectors))
    assert (encoder.calls, encoder.encoded) == (1, 3)
    scope.sync(store)
    assert (encoder.calls, encoder.encoded) == (1, 3)  # cached vectors, no re-encode
    for _ in range(3):
        scope.decide(["alpha one", "beta two"])
    assert (encoder.calls, encoder.encoded) == (4, 9)  # only the queries were encoded

    # Reopen (a new process would do exactly this): the cached vectors are used.
    fresh_encoder = HashingEncoder()
    fresh = make(EditStore(path), encoder=fresh_encoder)
    assert fresh_encoder.calls == 0 and len(fresh.index) == 3
    assert fresh.decide(["beta two"])[0].edit.input == "beta two"


def test_missing_vectors_are_computed_once_and_cached(tmp_path):
    path = tmp_path / "edits.db"
    store = EditStore(path)
    store.add_many([("alpha", "1"), ("beta", "2")])  # no embeddings given
    encoder = HashingEncoder()
    make(store, encoder=encoder)
    assert (encoder.calls, encoder.encoded) == (1, 2)
    ids = [e.id for e in store.list()]
    assert set(store.get_embeddings(ids, encoder.id)) == set(ids)
    again = HashingEncoder()
    make(EditStore(path), encoder=again)
    assert again.calls == 0


def test_stale_encoder_id_does_not_reuse_vectors(tmp_path):
    path = tmp_path / "edits.db"
    store = EditStore(path)
    # Vectors cached by another encoder: deliberately wrong (all on one axis).
    wrong = np.zeros((2, 256), dtype=np.float32)
    wrong[:, 0] = 1.0
    store.add_many([("alpha", "1"), ("beta", "2")], embeddings=("retired-encoder:0123", wrong))
    encoder = HashingEncoder()
    scope = make(store, encoder=encoder, threshold=0.99)
    assert encoder.encoded == 2  # re-encoded under its own id
    decisions = scope.decide(["alpha", "beta"])
    assert [d.edit.target for d in decisions] == ["1", "2"]  # with the stale vectors both would tie
    ids = [e.id for e in store.list()]
    np.testing.assert_array_equal(store.get_embeddings(ids, "retired-encoder:0123")[ids[0]], wrong[0])
    assert set(store.get_embeddings(ids, encoder.id)) == set(ids)


class TableEncoder:
    """Looks vectors up by text, so a test can place edits and queries exactly."""

    id = "table-test-encoder"
    dim = 3

    def __init__(self, table):
        self.table = {text: unit(vector)[0] for text, vector in table.items()}

    def encode(self, texts):
        return np.stack([self.table[t] for t in texts])


# Cosines at threshold 0.8: the query is in scope of all three edits and nearest the oldest;
# "made by" and "built by" are the same fact (keys 0.91 apart), "born in" is another (0.74).
CONFLICT_TABLE = {
    "made by": [1, 0, 0],
    "built by": [1, 0, 0.45],
    "born in": [1, 0.9, 0],
    "query": [1, 0.3, 0.1],
}


def conflicted_store():
    store = EditStore()
    old, new, other = store.add_many([("made by", "A"), ("built by", "B"), ("born in", "C")])
    return store, old, new, other


@pytest.mark.parametrize("policy", ["newest", "best"])
def test_conflicting_edits_of_one_fact(policy):
    store, old, new, other = conflicted_store()
    scope = ScopeClassifier(TableEncoder(CONFLICT_TABLE), threshold=0.8, top_k=3, conflicts=policy)
    scope.sync(store)
    decision = scope.decide(["query"])[0]
    scores = {c.edit.id: c.score for c in decision.candidates}
    assert min(scores.values()) >= 0.8 and max(scores, key=scores.get) == old.id
    assert decision.score == pytest.approx(scores[old.id])  # the threshold still sees the best score
    # newest: the newer edit of the same fact answers; the newer edit of another fact does not
    assert decision.edit == (new if policy == "newest" else old)
    assert {c.edit.id for c in decision.candidates} == {old.id, new.id, other.id}


def test_newest_edit_of_a_fact_needs_to_be_retrieved_and_in_scope():
    store, old, new, _ = conflicted_store()
    table = dict(CONFLICT_TABLE, query=[1, -0.2, -0.6])  # far from "built by": 0.69 < 0.8
    scope = ScopeClassifier(TableEncoder(table), threshold=0.8, top_k=3)
    scope.sync(store)
    assert scope.decide(["query"])[0].edit == old
    # removing the newer edit hands the fact back to the older one
    table = CONFLICT_TABLE
    scope = ScopeClassifier(TableEncoder(table), threshold=0.8, top_k=3)
    store.remove(new.id)
    scope.sync(store)
    assert scope.decide(["query"])[0].edit == old


class WeightedBagEncoder:
    """Bag of words with per-word weights: a heavy subject word dominates the vector, as a
    subject does in a trained encoder's keys, so two facts about one subject score high."""

    id = "weighted-bag-test-encoder"
    dim = 512

    def __init__(self, weights, default=1.0, light=0.2):
        self.weights, self.default, self.light = weights, default, light

    def encode(self, texts):
        out = np.zeros((len(texts), self.dim), dtype=np.float32)
        for row, text in enumerate(texts):
            for word in re.findall(r"\w+", text.lower()):
                weight = self.weights.get(word, self.light if word in FUNCTION_WORDS else self.default)
                out[row, int(hashlib.md5(word.encode()).hexdigest(), 16) % self.dim] += weight
            out[row] /= np.linalg.norm(out[row]) or 1.0
        return out


FUNCTION_WORDS = set("the of is in it who what which a an was".split())
SUBJECTS = {"australia": 3.0, "serbia": 3.0, "toodyay": 3.0}
FOUR_EDITS = [  # issue 14's reproduction: two facts about each of two subjects
    ("The official language of Australia is", "Arabic"),
    ("Australia is located in the continent of", "South America"),
    ("The capital of Serbia is", "Dhaka"),
    ("Serbia is located in the continent of", "Asia"),
]


def four_edit_scope(**kwargs):
    store = EditStore()
    edits = store.add_many(FOUR_EDITS)
    scope = ScopeClassifier(WeightedBagEncoder(SUBJECTS), threshold=0.8, top_k=10, **kwargs)
    scope.sync(store)
    return scope, edits


def test_facts_about_one_subject_are_not_merged():
    scope, edits = four_edit_scope()
    keys = scope.encoder.encode([e.input for e in edits])
    # the precondition of the bug: each subject's two keys clear the scope threshold
    assert keys[0] @ keys[1] >= 0.8 and keys[2] @ keys[3] >= 0.8
    decisions = scope.decide([e.input for e in edits])
    assert [d.edit for d in decisions] == edits  # every exact input answered from its own edit


def test_without_the_relation_test_the_newer_fact_hijacks_the_older():
    # same_fact_threshold -1 accepts any pair: the old key-cosine-only behaviour, which this fixes
    scope, edits = four_edit_scope(same_fact_threshold=-1.0)
    decisions = scope.decide([edits[0].input, edits[2].input])
    assert [d.edit for d in decisions] == [edits[1], edits[3]]


def test_a_re_edit_of_the_same_fact_still_answers_for_the_older_wording():
    store = EditStore()
    old, new = store.add_many([
        ("What architect designed Toodyay Fire Station?", "Wyndham Lewis"),
        ("Who is the architect of Toodyay Fire Station?", "Kohn Pedersen Fox"),
    ])
    scope = ScopeClassifier(WeightedBagEncoder(SUBJECTS), threshold=0.8, top_k=10, same_fact_threshold=0.6)
    scope.sync(store)
    queries = [old.input, "Which architect designed the Toodyay Fire Station?", new.input]
    assert [d.edit for d in scope.decide(queries)] == [new, new, new]


def test_exact_input_goes_first_even_when_another_edit_scores_as_high():
    store = EditStore()
    a, b = store.add_many([("alpha beta", "1"), ("beta alpha", "2")])  # same bag of words: cosine 1
    scope = ScopeClassifier(HashingEncoder(), threshold=0.5, top_k=3, conflicts="best")
    scope.sync(store)
    for edit in (a, b):
        decision = scope.decide([edit.input.upper()])[0]  # case-folded exact match
        assert decision.edit == edit


@pytest.mark.parametrize("relation_first", [False, True])
def test_relation_first_answers_from_the_edit_asking_the_querys_relation(relation_first):
    """Two facts about one subject, both in scope of a rephrasing that sits nearer the wrong one (the
    subject dominates the keys); with relation_first the subject-masked comparison picks the right one."""
    language, continent = "The official language of Australia is", "Australia is located in the continent of"
    query = "Australia is in which continent?"
    q_lang, lang_masked = mask_shared_span(query, language)
    q_cont, cont_masked = mask_shared_span(query, continent)
    assert "Australia" not in q_lang + lang_masked + q_cont + cont_masked
    table = {language: [1, 0.2, 0], continent: [1, 0, 0.3], query: [1, 0.25, 0.05],
             lang_masked: [0, 1, 0], cont_masked: [0, 0, 1], q_lang: [0, 0.1, 1], "it": [0, 1, 1]}
    store = EditStore()
    lang_edit, cont_edit = store.add_many([(language, "Arabic"), (continent, "South America")])
    scope = ScopeClassifier(TableEncoder(table), threshold=0.8, top_k=5, conflicts="best", relation_first=relation_first)
    scope.sync(store)
    decision = scope.decide([query])[0]
    assert decision.in_scope and [c.edit for c in decision.candidates][0] == (cont_edit if relation_first else lang_edit)
    assert scope.decide([language])[0].edit == lang_edit  # an exact input still answers from its own edit


class WordVerifier:
    """A stand-in cross-encoder: in scope (0.9) when the query holds every word of the edit input
    but its first (the relation word in these tests), else 0.1. Records each predict call."""

    def __init__(self):
        self.calls: list[list[tuple[str, str]]] = []

    def predict(self, pairs, **_):
        self.calls.append(list(pairs))
        return np.array([0.9 if a.split()[0] in b.split() else 0.1 for a, b in pairs], dtype=np.float32)


def verifier(floor: float, threshold: float = 0.5) -> tuple[CrossEncoderReranker, WordVerifier]:
    model = WordVerifier()
    reranker = CrossEncoderReranker.__new__(CrossEncoderReranker)
    reranker.model, reranker.threshold, reranker.floor = model, threshold, floor
    return reranker, model


def test_the_verifier_decides_scope_and_rejects_another_relation_of_the_subject():
    """The dual encoder finds both facts about the subject near (cosine well above its threshold);
    the verifier keeps only the one whose relation the query asks."""
    store = EditStore()
    capital, language = store.add_many([("capital Zembla", "Oslo"), ("language Zembla", "Dutch")])
    reranker, model = verifier(floor=0.3)
    scope = ScopeClassifier(HashingEncoder(), threshold=0.3, top_k=3, reranker=reranker)
    scope.sync(store)
    decisions = scope.decide(["what is the capital of Zembla", "which anthem does Zembla have"])
    assert decisions[0].in_scope and decisions[0].edit == capital
    assert decisions[0].score == pytest.approx(0.9)
    assert not decisions[1].in_scope  # names the subject, asks neither relation
    assert len(model.calls) == 1  # one cross-encoder pass for the whole batch
    without = ScopeClassifier(HashingEncoder(), threshold=0.3, top_k=3)
    without.sync(store)
    assert without.decide(["which anthem does Zembla have"])[0].in_scope  # the dual encoder alone is hijacked


def test_the_verifier_judges_the_same_fact_both_ways():
    """same_fact_by "verifier": a newer edit answers for an older one only when each edit's input is
    in the other's scope as the verifier reads them (the stand-in: the edit's first word is in the
    query), whatever the subject-masked cosine says."""
    store = EditStore()
    old, reworded, wider = store.add_many([("capital Zembla", "Oslo"), ("capital of Zembla", "Bergen"),
                                           ("language capital Zembla", "Dutch")])
    reranker, _ = verifier(floor=-1.0)
    judged = ScopeClassifier(HashingEncoder(), threshold=0.3, top_k=3, reranker=reranker, same_fact_by="verifier",
                             same_fact_threshold=1.1)  # the cosine judge would merge nothing
    judged.sync(store)
    assert judged.decide(["capital Zembla"])[0].edit == reworded  # one fact: the newest rewording answers
    # the wider edit reads "capital Zembla" as out of its scope ("language" is not in it): another fact,
    # although "capital Zembla" is in the wider edit's scope one way round
    assert reranker.mutual_scores("capital Zembla", ["capital of Zembla", "language capital Zembla"]) == \
        pytest.approx([0.9, 0.1])
    assert judged.same_fact.same_fact(old, [reworded, wider]) == [True, False]
    by_cosine = ScopeClassifier(HashingEncoder(), threshold=0.3, top_k=3, reranker=reranker,
                                same_fact_by="encoder", same_fact_threshold=1.1)
    by_cosine.sync(store)
    assert by_cosine.decide(["capital Zembla"])[0].edit == old  # the cosine judge at 1.1 merges nothing
    assert by_cosine.same_fact.same_fact(old, [reworded, wider]) == [False, False]


def test_both_judges_merge_only_what_each_accepts():
    """same_fact_by "both" (the default): the cosine can veto what the verifier merges, and the
    verifier what the cosine merges."""
    store = EditStore()
    old, reworded, wider = store.add_many([("capital Zembla", "Oslo"), ("capital of Zembla", "Bergen"),
                                           ("language capital Zembla", "Dutch")])
    reranker, _ = verifier(floor=-1.0)
    vetoed = ScopeClassifier(HashingEncoder(), threshold=0.3, top_k=3, reranker=reranker, same_fact_threshold=1.1)
    assert vetoed.same_fact.by == "both"
    vetoed.sync(store)
    assert vetoed.decide(["capital Zembla"])[0].edit == old  # the cosine at 1.1 vetoes every merge
    agreed = ScopeClassifier(HashingEncoder(), threshold=0.3, top_k=3, reranker=reranker, same_fact_threshold=-1.0)
    agreed.sync(store)
    assert agreed.decide(["capital Zembla"])[0].edit == reworded
    assert agreed.same_fact.same_fact(old, [reworded, wider]) == [True, False]  # the verifier's veto


def test_candidates_below_the_floor_cost_no_verifier_pass():
    store = EditStore()
    store.add_many([("capital Zembla", "Oslo"), ("language Zembla", "Dutch")])
    reranker, model = verifier(floor=0.99)
    scope = ScopeClassifier(HashingEncoder(), threshold=0.3, top_k=3, reranker=reranker)
    scope.sync(store)
    decision = scope.decide(["what is the capital of Zembla"])[0]
    assert not decision.in_scope and decision.candidates == ()
    assert model.calls == []  # nothing reached the floor: no cross-encoder call at all
    reranker.floor = -1.0
    decision = scope.decide(["what is the capital of Zembla"])[0]
    assert decision.in_scope and len(model.calls[0]) == 2  # both candidates read once the floor allows


def test_an_exact_input_reaches_its_own_edit_whatever_the_verifier_says():
    store = EditStore()
    first, second = store.add_many([("capital Zembla", "Oslo"), ("capital Zembla city", "Bergen")])
    reranker, model = verifier(floor=-1.0, threshold=0.95)  # the stand-in never reaches 0.95
    scope = ScopeClassifier(HashingEncoder(), threshold=0.3, top_k=3, reranker=reranker, conflicts="best")
    scope.sync(store)
    for edit, other in ((first, second), (second, first)):
        decision = scope.decide([edit.input.upper()])[0]
        assert decision.in_scope and decision.edit == edit and decision.score == 1.0
        assert model.calls[-1] == [(other.input, edit.input.upper())]  # only the other edit was read
    assert not scope.decide(["capital of Zembla please"])[0].in_scope


def test_from_config_uses_given_models_and_every_scope_option(monkeypatch):
    """The evaluation builds the artifact's scope on shared encoders through from_config, so what it
    measures is what the config describes (the verifier's floor, relation_first, the same-fact judge)."""
    import serac.scope as scope_module
    from serac.config import ScopeConfig

    made = []

    def record(self, spec, threshold, device, floor):  # instead of loading a model
        made.append((spec, threshold, floor))
        self.threshold, self.floor = threshold, floor

    monkeypatch.setattr(scope_module.CrossEncoderReranker, "__init__", record)
    config = ScopeConfig(encoder="not-loaded", threshold=0.7, top_k=4, cross_encoder="ce", cross_encoder_threshold=0.3,
                         cross_encoder_floor=0.75, relation_first=False, same_fact_threshold=0.6,
                         same_fact_encoder="judge-not-loaded")
    encoder, judge = HashingEncoder(), HashingEncoder()
    scope = ScopeClassifier.from_config(config, encoder, judge)
    assert made == [("ce", 0.3, 0.75)] and scope.reranker.floor == 0.75
    assert scope.encoder is encoder and scope.same_fact.encoder is judge
    assert (scope.threshold, scope.top_k, scope.relation_first) == (0.7, 4, False)
    given, _ = verifier(floor=0.1)
    assert ScopeClassifier.from_config(config, encoder, judge, given).reranker is given and len(made) == 1
