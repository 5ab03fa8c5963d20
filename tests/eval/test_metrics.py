"""Metric definitions on hand-computed cases, normalisation edge cases included."""

from __future__ import annotations

import pytest

from serac.data import EditExample, Probe
from serac.eval import metrics
from serac.eval.runner import Observations, newest_targets


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("Paris", "paris"),
        ("  Paris.  ", "paris"),
        ("The Beatles", "beatles"),
        ("an apple a day", "apple day"),
        ("Thea Theatre", "thea theatre"),  # articles only as whole words
        ("U.S.", "us"),
        ("1,000", "1000"),
        ("O'Brien", "obrien"),
        ("mezzo-soprano", "mezzo soprano"),  # dashes become spaces
        ("1939–1945", "1939 1945"),  # en dash (Pd)
        ("AC/DC", "ac dc"),
        ("“Quoted” (twice)!", "quoted twice"),  # Unicode punctuation, brackets
        ("Straße", "strasse"),  # case folding, not just lower()
        ("Café", "café"),  # accents kept
        ("ＡＢＣ １２", "abc 12"),  # NFKC folds full-width forms
        ("tab\tand\nnewline", "tab and newline"),
        ("", ""),
        ("...", ""),
        ("The", ""),
    ],
)
def test_normalize_answer(text, expected):
    assert metrics.normalize_answer(text) == expected


@pytest.mark.parametrize(
    ("text", "expected"),
    [("Paris\nParis is the capital.", "Paris"), ("\n\n  Paris  \nmore", "Paris"), ("", ""), ("\n \n", "")],
)
def test_first_line(text, expected):
    assert metrics.first_line(text) == expected


@pytest.mark.parametrize(
    ("prediction", "target", "expected"),
    [
        ("Paris.", "paris", True),
        ("the Rolling Stones", "Rolling Stones", True),
        ("Paris\nParis is the capital of France.", "Paris", True),  # first line only
        ("The capital is Paris.", "Paris", False),  # containing the target is not a match
        ("Pariss", "Paris", False),
        ("", "", True),  # SQuAD's convention: both empty
        ("the", "a", True),  # both normalise to empty
        ("", "Paris", False),
        ("mezzo soprano", "mezzo-soprano", True),
    ],
)
def test_exact_match(prediction, target, expected):
    assert metrics.exact_match(prediction, target) is expected


def test_edit_success_reliability_generalization_by_hand():
    predictions = ["Paris", "London", "the Rome", "Berlin."]
    targets = ["paris", "Paris", "Rome", "berlin"]
    assert metrics.edit_success(predictions, targets) == pytest.approx(3 / 4)
    assert metrics.reliability(predictions[:2], targets[:2]) == pytest.approx(1 / 2)
    assert metrics.generalization(predictions[2:], targets[2:]) == pytest.approx(1.0)


def test_drawdown_and_locality_by_hand():
    after = ["a", "b", "c", "d", "Yes\nmore"]
    before = ["a", "B.", "x", "d", "yes"]  # only "c" vs "x" changed after normalisation
    assert metrics.drawdown(after, before) == pytest.approx(1 / 5)
    assert metrics.locality(after, before) == pytest.approx(4 / 5)
    assert metrics.changed("Paris", "London") and not metrics.changed("Paris.", "paris")


def test_teacher_forced_aggregates_by_hand():
    assert metrics.tf_edit_success([1.0, 0.5, 0.0]) == pytest.approx(0.5)
    assert metrics.tf_locality([1.0, 0.5]) == pytest.approx(0.75)
    assert metrics.tf_drawdown([1.0, 0.5]) == pytest.approx(0.25)


def test_empty_inputs_give_none_not_zero():
    assert metrics.edit_success([], []) is None
    assert metrics.drawdown([], []) is None
    assert metrics.locality([], []) is None
    assert metrics.tf_drawdown([]) is None


def test_mismatched_lengths_raise():
    with pytest.raises(ValueError, match="got 2 and 1 items"):
        metrics.edit_success(["a", "b"], ["a"])


def _example(subject, question, target, original):
    return EditExample(question, target, (Probe(question, target),), (Probe("unrelated?", "x"),),
                       subject=subject, original_target=original)


def test_newest_target_per_fact():
    examples = [
        _example("Toodyay Fire Station", "What architect designed Toodyay Fire Station?", "Wyndham Lewis", "Ken Duncan"),
        _example("Lola Beeth", "What voice type is Lola Beeth?", "mezzo", "soprano"),
        _example("toodyay fire station", "Who is the architect of Toodyay Fire Station?", "Kohn Pedersen Fox", "Ken Duncan"),
    ]
    newest = newest_targets(examples, [0, 1, 2])
    assert newest[("toodyay fire station", "ken duncan")] == "Kohn Pedersen Fox"
    assert newest[("lola beeth", "soprano")] == "mezzo"
    # Only what is applied counts: before the second edit, the first is the newest.
    assert newest_targets(examples, [0, 1])[("toodyay fire station", "ken duncan")] == "Wyndham Lewis"


def test_observations_scores_by_hand():
    obs = Observations(
        reliability=[("Paris", "Paris"), ("no", "Rome")],
        generalization=[("Paris", "Paris"), ("Rome", "Rome")],
        conflict_aware=[("Paris", "Lyon"), ("no", "Rome"), ("Paris", "Lyon"), ("Rome", "Rome")],
        reliability_conflict_aware=[("Paris", "Lyon"), ("no", "Rome")],
        generalization_conflict_aware=[("Paris", "Lyon"), ("Rome", "Rome")],
        locality=[("a", "a"), ("b", "c")],
        dd=[("a", "a"), ("a", "a"), ("a", "a"), ("x", "y")],
        tf={"reliability": [1.0, 0.0], "generalization": [1.0, 0.5], "es_conflict_aware": [0.0, 0.0, 0.0, 0.5],
            "reliability_conflict_aware": [0.0, 0.0], "generalization_conflict_aware": [0.0, 0.5], "locality": [1.0, 0.5], "dd": [1.0, 1.0, 1.0, 0.0]},
    )
    got = {(s.scoring, s.metric): (s.value, s.count) for s in obs.scores("zsre", "m", "sequential", 2)}
    assert got[("generation", "es")] == (pytest.approx(3 / 4), 4)
    assert got[("generation", "es_conflict_aware")] == (pytest.approx(1 / 4), 4)
    assert got[("generation", "reliability")] == (pytest.approx(1 / 2), 2)
    assert got[("generation", "generalization")] == (pytest.approx(1.0), 2)
    assert got[("generation", "generalization_conflict_aware")] == (pytest.approx(1 / 2), 2)
    assert got[("generation", "reliability_conflict_aware")] == (0.0, 2)
    assert got[("teacher_forced", "reliability_conflict_aware")] == (0.0, 2)
    assert got[("teacher_forced", "generalization_conflict_aware")] == (pytest.approx(0.25), 2)
    assert got[("generation", "locality")] == (pytest.approx(1 / 2), 2)
    assert got[("generation", "dd")] == (pytest.approx(1 / 4), 4)
    assert got[("teacher_forced", "es")] == (pytest.approx(2.5 / 4), 4)
    assert got[("teacher_forced", "es_conflict_aware")] == (pytest.approx(0.125), 4)
    assert got[("teacher_forced", "locality")] == (pytest.approx(0.75), 2)
    assert got[("teacher_forced", "dd")] == (pytest.approx(0.25), 4)


def _wilson_by_quadratic(k: int, n: int, z: float = 1.959963984540054) -> tuple[float, float]:
    """The Wilson bounds as the roots of (k/n - p)^2 = z^2 p (1 - p) / n, solved for p directly."""
    ph = k / n
    a, b, c = 1 + z * z / n, -(2 * ph + z * z / n), ph * ph
    disc = max(b * b - 4 * a * c, 0.0) ** 0.5
    return (-b - disc) / (2 * a), (-b + disc) / (2 * a)


@pytest.mark.parametrize(("k", "n"), [(0, 10), (10, 10), (96, 100), (1, 2), (3, 50), (500, 1037)])
def test_wilson_matches_the_quadratic_roots(k, n):
    low, high = metrics.wilson(k, n)
    want_low, want_high = _wilson_by_quadratic(k, n)
    assert low == pytest.approx(want_low, abs=1e-12) and high == pytest.approx(want_high, abs=1e-12)
    assert 0.0 <= low <= k / n <= high <= 1.0


def test_wilson_known_values():
    # 0/10 and 10/10: one bound is exact, the other z^2 / (n + z^2) from the end
    assert metrics.wilson(0, 10) == (0.0, pytest.approx(0.27753, abs=1e-5))
    assert metrics.wilson(10, 10) == (pytest.approx(0.72247, abs=1e-5), 1.0)
    assert metrics.wilson(96, 100) == (pytest.approx(0.90163, abs=1e-5), pytest.approx(0.98434, abs=1e-5))
    # more trials, tighter interval around the same rate
    assert metrics.wilson(960, 1000)[1] - metrics.wilson(960, 1000)[0] < metrics.wilson(96, 100)[1] - metrics.wilson(96, 100)[0]


@pytest.mark.parametrize(("k", "n"), [(0, 0), (-1, 10), (11, 10)])
def test_wilson_rejects_impossible_counts(k, n):
    with pytest.raises(ValueError):
        metrics.wilson(k, n)


def test_rate_cell_shows_interval_and_count_or_just_the_value():
    from serac.eval.report import rate_cell
    from serac.eval.results import Score

    assert rate_cell(0.96, 100) == "0.960 [0.90, 0.98] (96/100)"
    assert rate_cell(0.96, 0) == "0.960"  # a row saved before counts were kept
    assert rate_cell(None, 10) == "–"
    old = Score("zsre", "serac", "sequential", 10, "generation", "es", 0.5)  # no count
    assert old.interval() is None and "ci95" not in old.row() and "count" not in old.row()
    tf = Score("zsre", "serac", "sequential", 10, "teacher_forced", "es", 0.5, 20)
    assert tf.interval() is None and tf.row()["count"] == 20


def test_rate_entry_and_cell_carry_the_count_and_the_wilson_interval():
    entry = metrics.rate_entry(3, 10)
    low, high = metrics.wilson(3, 10)
    assert entry == {"k": 3, "n": 10, "rate": 0.3, "ci95": [round(low, 4), round(high, 4)]}
    assert metrics.rate_cell(entry) == f"0.300 [{low:.2f}, {high:.2f}] (3/10)"
    assert metrics.rate_entry(0, 0) == {"k": 0, "n": 0, "rate": None, "ci95": None}
    assert metrics.rate_cell(metrics.rate_entry(0, 0)) == metrics.rate_cell(None) == "\u2013"
