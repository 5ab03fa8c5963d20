import numpy as np
import pytest

from serac.edits import Edit
from serac.facts import SameFactJudge, mask_shared_span


@pytest.mark.parametrize(
    "a, b, expected",
    [
        (   # the subject is the longest shared span with a content word
            "The official language of Australia is",
            "Australia is located in the continent of",
            ("The official language of it", "it located in the continent of"),
        ),
        (
            "What architect designed Toodyay Fire Station?",
            "Who is the architect of Toodyay Fire Station?",
            ("What architect designed it", "Who is the architect of it"),
        ),
        # function words alone are no subject: nothing masked
        ("Who leads the UK?", "Who is the British prime minister?", ("Who leads the UK?", "Who is the British prime minister?")),
        # case-insensitive match, original casing kept elsewhere
        ("Where was ALAN TURING born?", "alan turing died in", ("Where was it born ?", "it died in")),
    ],
)
def test_mask_shared_span(a, b, expected):
    assert mask_shared_span(a, b) == expected


class CountingEncoder:
    id = "counting"
    dim = 2

    def __init__(self):
        self.texts = []

    def encode(self, texts):
        self.texts.extend(texts)
        return np.tile(np.array([[1.0, 0.0]], dtype=np.float32), (len(texts), 1))


def edit(id, text):
    return Edit(id=id, input=text, target="t", created_at=0.0, metadata={})


def test_similarities_are_computed_once_per_pair():
    encoder = CountingEncoder()
    judge = SameFactJudge(encoder, threshold=0.5)
    anchor, a, b = edit(1, "x of Paris"), edit(2, "y of Paris"), edit(3, "z of Paris")
    assert judge.same_fact(anchor, [a, b]) == [True, True]
    assert len(encoder.texts) == 4  # two masked pairs in one call
    assert judge.similarities(anchor, [b, a]) == pytest.approx([1.0, 1.0])
    assert len(encoder.texts) == 4  # cached


def test_cache_is_bounded():
    judge = SameFactJudge(CountingEncoder(), threshold=0.5, cache_size=2)
    anchor = edit(1, "a b")
    for i in range(2, 6):
        judge.similarities(anchor, [edit(i, f"c{i} d")])
    assert len(judge._cosines) == 2


class RelationEncoder:
    """Unit vectors by the masked text's first word: "born", "birth" and "founded" read alike (the
    cosine's false merge of two short templates), "died" does not."""
    id = "relation"
    dim = 2

    def encode(self, texts):
        return np.array([[0.0, 1.0] if t.split()[0] == "died" else [1.0, 0.0] for t in texts], dtype=np.float32)


class TableScorer:
    """The verifier's mutual scores from a table; "died" is its false merge."""
    scores = {"birth Paris": 0.9, "founded Paris": 0.1, "died Paris": 0.9}

    def __init__(self):
        self.asked = []

    def __call__(self, anchor, others):
        self.asked.extend(others)
        return [self.scores[o] for o in others]


@pytest.mark.parametrize("by, expected", [("encoder", [True, True, False]), ("verifier", [True, False, True]),
                                          ("both", [True, False, False])])
def test_each_judge_and_both_together(by, expected):
    anchor = edit(1, "born Paris")
    others = [edit(2, "birth Paris"), edit(3, "founded Paris"), edit(4, "died Paris")]
    scorer = TableScorer()
    judge = SameFactJudge(RelationEncoder(), threshold=0.5, pair_scorer=scorer, pair_threshold=0.5, by=by)
    assert judge.same_fact(anchor, others) == expected
    if by == "both":  # the verifier reads only the pairs the cosine let by
        assert scorer.asked == ["birth Paris", "founded Paris"]
    judge.same_fact(anchor, others)
    assert len(scorer.asked) == {"encoder": 0, "verifier": 3, "both": 2}[by]  # cached


def test_without_a_verifier_the_cosine_judges_alone():
    judge = SameFactJudge(RelationEncoder(), threshold=0.5, by="both")
    assert judge.by == "encoder"
    assert judge.same_fact(edit(1, "born Paris"), [edit(2, "founded Paris")]) == [True]


def test_an_unknown_judge_is_a_config_error():
    from serac.errors import ConfigError

    with pytest.raises(ConfigError, match="'encoder', 'verifier' or 'both'"):
        SameFactJudge(RelationEncoder(), threshold=0.5, by="vote")
