"""The scope verifier's training material and calibration (serac/train/cross_encoder.py)."""

from __future__ import annotations

import numpy as np

from serac.train.cross_encoder import hijack_questions, score_validation_reranked, verifier_pairs
from serac.train.pairs import EditRecord


def record(key, subject, group, positives=(), negatives=(), subject_negatives=(), source="counterfact"):
    return EditRecord(key=key, target="x", positives=tuple(positives), negatives=tuple(negatives),
                      group=group, subject=subject, source=source, subject_negatives=tuple(subject_negatives))


BORN = record("Ann Lee was born in", "Ann Lee", ("ann", "born"), positives=["Ann Lee's birthplace is"],
              subject_negatives=["The mother tongue of Ann Lee is"])
CAPITAL = record("The capital of Zembla is", "Zembla", ("zembla", "capital"), positives=["Zembla's capital is"],
                 negatives=["The capital of Ruritania is"])


def test_hijack_questions_are_other_relations_and_questions_through_the_fact():
    questions = hijack_questions(BORN)
    assert questions[0] == "The mother tongue of Ann Lee is"
    chains = questions[1:]
    assert len(chains) == 4 and all("place where Ann Lee was born" in q for q in chains)
    assert hijack_questions(BORN, chains=False) == ["The mother tongue of Ann Lee is"]
    assert hijack_questions(CAPITAL) == []  # not a place-valued relation, no subject negatives


class KeyEmbed:
    """Texts to fixed unit vectors: each record's key and queries near its own key."""

    def __init__(self, table):
        self.table = table

    def __call__(self, texts):
        rows = np.asarray([self.table[t] for t in texts], dtype=np.float32)
        return rows / np.linalg.norm(rows, axis=1, keepdims=True)


def test_verifier_pairs_add_own_inputs_and_hijack_questions():
    records = [BORN, CAPITAL]
    embed = lambda texts: np.ones((len(texts), 2), dtype=np.float32) / np.sqrt(2)  # noqa: E731
    positives, negatives = verifier_pairs(embed, records, candidates=2)
    assert (BORN.key, BORN.key) in positives  # records[::4]: the first one's own input
    assert (BORN.key, "Ann Lee's birthplace is") in positives
    assert (BORN.key, "The mother tongue of Ann Lee is") in negatives
    assert any(key == BORN.key and "was born" in q and q != BORN.key for key, q in negatives)
    assert (CAPITAL.key, "Ann Lee's birthplace is") in negatives  # another fact retrieved for it


def test_verifier_pairs_keep_rephrasings_off_sibling_facts_of_their_subject():
    records = [BORN, CAPITAL]
    embed = lambda texts: np.ones((len(texts), 2), dtype=np.float32) / np.sqrt(2)  # noqa: E731
    sibling = ("The mother tongue of Ann Lee is", "Ann Lee's birthplace is")  # another fact's edit, a rephrasing
    _, without = verifier_pairs(embed, records, candidates=2)
    _, with_them = verifier_pairs(embed, records, candidates=2, rephrasings=1)
    assert sibling not in without and sibling in with_them
    assert set(with_them) - set(without) == {sibling}


class PairScores:
    def __init__(self, scores):
        self.scores, self.seen = scores, []

    def predict(self, pairs, **_):
        self.seen += list(pairs)
        return np.asarray([self.scores.get(p, 0.2) for p in pairs], dtype=np.float32)


def test_calibration_scores_hijack_questions_as_their_own_part_and_respects_the_floor():
    near, far = [1.0, 0.0], [0.0, 1.0]
    chain_questions = hijack_questions(BORN)[1:]
    embed = KeyEmbed({BORN.key: near, CAPITAL.key: far, "Ann Lee's birthplace is": near,
                      "Zembla's capital is": far, "The capital of Ruritania is": [0.2, 1.0],
                      "The mother tongue of Ann Lee is": near, **{q: near for q in chain_questions}})
    model = PairScores({(BORN.key, "Ann Lee's birthplace is"): 0.95, (BORN.key, "The mother tongue of Ann Lee is"): 0.7})
    scores = score_validation_reranked(embed, model, [BORN, CAPITAL], top_k=2, floor=0.5)
    assert set(scores) == {"counterfact", "same_subject"}
    assert scores["counterfact"].positive == [np.float32(0.95), np.float32(0.2)]
    assert scores["counterfact"].positive_rank == [0, 0]
    assert scores["same_subject"].negative == [np.float32(0.7)] + [np.float32(0.2)] * len(chain_questions)
    # below the floor nothing is read: each query reads only the key on its side of the plane
    assert all((a == BORN.key) == (b in (BORN.key, "Ann Lee's birthplace is", "The mother tongue of Ann Lee is",
                                         *chain_questions)) for a, b in model.seen)
