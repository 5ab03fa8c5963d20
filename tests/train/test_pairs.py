from dataclasses import replace

import numpy as np
import pytest

from serac.data import load_counterfact, load_zsre
from serac.train.calibrate import (
    SourceScores,
    choose_same_fact_threshold,
    choose_threshold,
    score_validation,
    summarize,
)
from serac.train.checkpoint import step_rng
from serac.train.pairs import (
    EditRecord,
    add_subject_negatives,
    mine_neighbours,
    records_from_examples,
    same_fact_pairs,
    sample_batch,
    split_records,
)
from tests.conftest import HashingEncoder


@pytest.fixture
def records(data_files):
    zsre = records_from_examples(load_zsre(data_files["zsre"], skip_malformed=True), "zsre")
    cf = records_from_examples(load_counterfact(data_files["counterfact"]), "counterfact")
    return zsre + cf


def test_records_keep_key_positives_and_negatives(records):
    first = records[0]
    assert first.key == "what is the capital of alpha ?"
    assert first.positives == ("which city is the capital of alpha ?",)
    assert first.negatives == ("who wrote the famous song about rain",)  # "nq question: " prefix removed
    assert first.queries[0] == first.key
    cf = next(r for r in records if r.source == "counterfact")
    assert cf.negatives[0].startswith(cf.key.rsplit(" of ", 1)[0])  # same relation, other subject


def test_split_holds_out_whole_facts_deterministically(records):
    train, val = split_records(records, 10, seed=0)
    assert len(val) >= 10 and len(train) + len(val) == len(records)
    assert not {r.group for r in train} & {r.group for r in val}
    assert split_records(records, 10, seed=0) == (train, val)
    assert split_records(records, 10, seed=1)[1] != val
    assert split_records(records, 0, seed=0) == (list(records), [])
    with pytest.raises(ValueError, match="leaves nothing to train on"):
        split_records(records, len(records), seed=0)


def test_mined_neighbours_are_other_facts(records):
    encoder = HashingEncoder()
    neighbours = mine_neighbours(records, encoder.encode, k=3)
    assert neighbours.keys.shape == (len(records), 3)
    for i, row in enumerate(neighbours.keys):
        for j in row[row >= 0]:
            assert j != i and records[j].group != records[i].group
    # the nearest keys share words with the key: the same relation or the same subject
    first = records[0]
    nearest = records[neighbours.keys[0, 0]]
    assert set(first.key.split()) & set(nearest.key.split()) - {"?", "the", "of", "is", "what"}
    for i, row in enumerate(neighbours.negatives):
        for j in row[row >= 0]:
            assert neighbours.negative_texts[j] not in records[i].negatives


def test_batches_are_a_function_of_seed_and_step(records):
    neighbours = mine_neighbours(records, HashingEncoder().encode, k=3)
    a = sample_batch(records, neighbours, 8, 0.5, step_rng(0, 3))
    b = sample_batch(records, neighbours, 8, 0.5, step_rng(0, 3))
    c = sample_batch(records, neighbours, 8, 0.5, step_rng(0, 4))
    assert (a.keys, a.queries) == (b.keys, b.queries)
    assert a.keys != c.keys
    assert len(a.keys) == 8 and a.n_positive == 8
    assert len(a.queries) > a.n_positive  # out-of-scope queries follow the in-scope ones
    assert a.ignore.shape == (8, len(a.queries))
    assert len({records[[r.key for r in records].index(k)].group for k in a.keys}) == 8  # one record per fact


def test_threshold_maximises_in_scope_minus_false_positives():
    scores = {
        "a": SourceScores(positive=[0.9, 0.8, 0.85], positive_rank=[0, 0, 1], negative=[0.3, 0.5, 0.82]),
        "b": SourceScores(positive=[0.95, 0.7], positive_rank=[0, 0], negative=[0.2, 0.4]),
    }
    threshold, objective = choose_threshold(scores)
    # Every threshold in (0.5, 0.7) keeps all of "b" and 2/3 of "a" in scope... but 0.82 is a false positive
    # for "a"; (0.5, 0.7] gives a: 1 - 1/3, b: 1 - 0 -> mean 0.8333; the middle of the tied range is chosen.
    assert 0.5 < threshold < 0.7
    assert objective == pytest.approx((1 - 1 / 3 + 1) / 2)
    report = summarize(scores, threshold, 10)
    assert report["sources"]["a"]["top1"] == pytest.approx(2 / 3, abs=1e-3)
    assert report["sources"]["a"]["false_positive_rate"] == pytest.approx(1 / 3, abs=1e-3)
    with pytest.raises(ValueError, match="no validation scores"):
        choose_threshold({})


def test_score_validation_finds_the_right_fact(records):
    scores = score_validation(HashingEncoder().encode, records)
    assert set(scores) == {"zsre", "counterfact"}
    zsre = scores["zsre"]
    assert len(zsre.positive) == len(zsre.positive_rank) == sum(len(r.positives) for r in records if r.source == "zsre")
    assert np.mean(np.asarray(zsre.positive_rank) == 0) > 0.5


def record(key, subject, target, original, source="counterfact", positives=()):
    return EditRecord(key=key, target=target, positives=tuple(positives), negatives=(),
                      group=(subject.lower(), original.lower()), subject=subject, source=source)


LANGUAGES = ["french", "english", "dutch", "german", "italian", "spanish", "polish", "czech"]
CONTINENTS = ["asia", "europe", "africa", "antarctica", "oceania", "north america", "south america", "arctic"]


def test_same_fact_pairs_fill_other_relations_with_the_same_subject():
    countries = [f"Country{i}" for i in range(8)]
    records = [record(f"The official language of {c} is", c, LANGUAGES[i], LANGUAGES[-1 - i]) for i, c in enumerate(countries)]
    records += [record(f"{c} is located in the continent of", c, CONTINENTS[i], CONTINENTS[-1 - i]) for i, c in enumerate(countries)]
    # a paraphrase template of the language relation: shares answers, so never an "other" pair
    records += [record(f"The mother tongue of {c} is", c, LANGUAGES[(i + 3) % 8], LANGUAGES[i]) for i, c in enumerate(countries)]
    records.append(record("Who designed Toodyay?", "Toodyay", "A", "X", "zsre", positives=["Which architect built Toodyay?"]))
    records.append(record("Who is the architect of Toodyay?", "Toodyay", "B", "X", "zsre"))
    pairs = same_fact_pairs(records, seed=0, per_record=2)
    assert ("Who designed Toodyay?", "Which architect built Toodyay?") in pairs.same
    assert ("Who designed Toodyay?", "Who is the architect of Toodyay?") in pairs.same  # same group
    assert pairs.other
    for a, b in pairs.other:
        subject = a.split()[-2] if a.startswith("The") else a.split()[0]
        assert subject in b  # same subject...
        language = lambda text: "language" in text or "tongue" in text  # noqa: E731
        assert language(a) != language(b)  # ...another relation, never a paraphrase of the same one


def test_same_fact_threshold_allows_at_most_the_given_share_of_false_merges():
    other = np.linspace(0.0, 0.99, 100)
    same = np.array([0.5, 0.97, 0.995, 0.999])
    threshold, report = choose_same_fact_threshold(same, other, max_false_merge=0.01)
    assert (other >= threshold).sum() == 1 and threshold > 0.98
    assert report["same_fact_merged"] == 0.5 and report["other_relation_merged"] == 0.01
    with pytest.raises(ValueError, match="other-relation"):
        choose_same_fact_threshold(same, np.array([]))


def _language_continent_records():
    countries = [f"Country{i}" for i in range(8)]
    records = [record(f"The official language of {c} is", c, LANGUAGES[i], LANGUAGES[-1 - i]) for i, c in enumerate(countries)]
    records += [record(f"{c} is located in the continent of", c, CONTINENTS[i], CONTINENTS[-1 - i]) for i, c in enumerate(countries)]
    return records


def test_subject_negatives_are_other_relations_of_the_records_own_subject():
    records = add_subject_negatives(_language_continent_records(), per_record=1, seed=0)
    assert all(len(r.subject_negatives) == 1 for r in records)
    for r in records:
        negative = r.subject_negatives[0]
        assert r.subject in negative and negative != r.key
        assert ("language" in r.key) != ("language" in negative)
    # off by default: plain records carry none
    assert all(not r.subject_negatives for r in _language_continent_records())


def test_a_subject_negative_is_a_negative_for_its_own_key_while_other_subject_mentions_stay_ignored():
    plain = [replace(r, negatives=(f"The capital of {r.subject} is",)) for r in _language_continent_records()]
    records = add_subject_negatives(plain, per_record=1, seed=0)
    neighbours = mine_neighbours(records, HashingEncoder().encode, k=2)
    batch = sample_batch(records, neighbours, 4, 0.0, step_rng(0, 1))
    keys = {key: row for row, key in enumerate(batch.keys)}
    own = 0
    for row, key in enumerate(batch.keys):
        record_ = next(r for r in records if r.key == key)
        column = batch.queries.index(record_.subject_negatives[0])
        assert not batch.ignore[row, column]  # learnt as out of scope of its own edit
        own += 1
        for other, other_row in keys.items():
            if other != key and record_.subject in other:  # the same subject's other edit: may be its relation
                assert batch.ignore[other_row, column]
    assert own == len(batch.keys)
    # the plain negative naming a batch record's subject is still left out of that record's loss
    for row, key in enumerate(batch.keys):
        subject = next(r for r in records if r.key == key).subject
        column = batch.queries.index(f"The capital of {subject} is")
        assert batch.ignore[row, column]
    # records without subject negatives sample exactly as before (no extra random draws)
    before = sample_batch(plain, neighbours, 4, 0.0, step_rng(0, 1))
    assert before.keys == batch.keys and before.queries == batch.queries[:len(before.queries)]
    assert len(batch.queries) == len(before.queries) + len(batch.keys)
