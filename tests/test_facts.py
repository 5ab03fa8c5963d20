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
    assert len(judge._cache) == 2
