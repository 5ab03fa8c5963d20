"""Same fact or not: may a newer edit answer for an older one?

The scope decides whether a *query* is covered by an edit; the "newest wins" policy also needs to
know whether two *edits* change the same fact (then the newer one answers for both). The two
questions need different tests. Two edits about one subject ("The official language of Australia
is" -> Arabic, "Australia is located in the continent of" -> South America) have keys whose cosine
clears a trained scope threshold (0.875 against 0.854), because the subject dominates both
embeddings; treating them as one fact answered an edit's own exact input from the other edit.

So the relation is compared with the subject taken out: the longest word span the two inputs share
(the subject, in practice) is replaced by "it" in both, and the cosine of those two texts must
clear ``same_fact_threshold``. "What architect designed Toodyay Fire Station?" and "Who is the
architect of Toodyay Fire Station?" keep "What architect designed it" / "Who is the architect of it"
(same relation, high cosine); the Australia pair keeps "The official language of it" / "it located
in the continent of" (low). Inputs that share no content word are compared whole.
"""

from __future__ import annotations

import re
from collections import OrderedDict
from collections.abc import Callable

import numpy as np

from serac.edits import Edit
from serac.errors import ConfigError

_TOKEN = re.compile(r"\w+|[^\w\s]")
# Words that alone never make a shared span a subject ("of the", "is", "?").
_FUNCTION_WORDS = frozenset(
    "a an and are as at by did do does for from how in is it its of on or that the this to was "
    "were what when where which who whom whose with".split()
)


def mask_shared_span(a: str, b: str) -> tuple[str, str]:
    """``a`` and ``b`` with their longest shared word span that holds a content word replaced by
    "it" (case-insensitive); unchanged when they share no content word."""
    words_a, words_b = _TOKEN.findall(a), _TOKEN.findall(b)
    lower_a, lower_b = [w.casefold() for w in words_a], [w.casefold() for w in words_b]
    # longest common substring over words, dynamic programming (inputs are short)
    best_len, end_a, end_b = 0, 0, 0
    previous = [0] * (len(lower_b) + 1)
    for i in range(1, len(lower_a) + 1):
        current = [0] * (len(lower_b) + 1)
        for j in range(1, len(lower_b) + 1):
            if lower_a[i - 1] == lower_b[j - 1]:
                current[j] = previous[j - 1] + 1
                span = lower_a[i - current[j]:i]
                if current[j] > best_len and any(w.isalnum() and w not in _FUNCTION_WORDS for w in span):
                    best_len, end_a, end_b = current[j], i, j
        previous = current
    if best_len == 0:
        return a, b
    masked_a = words_a[: end_a - best_len] + ["it"] + words_a[end_a:]
    masked_b = words_b[: end_b - best_len] + ["it"] + words_b[end_b:]
    return " ".join(masked_a), " ".join(masked_b)


class SameFactJudge:
    """Decides whether two edits change the same fact.

    ``by`` names the test: "encoder", the subject-masked cosine of the two inputs (``encoder``)
    against ``threshold``; "verifier", the scope verifier's mutual score (``pair_scorer``: each
    input read as a query of the other edit, the lower score) against ``pair_threshold``; "both",
    both tests. The verifier reads relation words the cosine misses ("What voice type is X?" /
    "What is the vocal range for X?"), the cosine vetoes the short templates of two relations that
    the verifier calls one ("X, founded in" / "X was born in").

    Edits never change (a new input is a new edit), so a pair's scores are computed once and kept
    in a bounded cache: the check costs one small model call the first time a query meets a pair
    of candidate edits, and nothing after.
    """

    def __init__(self, encoder, threshold: float, cache_size: int = 65_536,
                 pair_scorer: Callable[[str, list[str]], list[float]] | None = None,
                 pair_threshold: float = 0.5, by: str = "encoder") -> None:
        if by not in ("encoder", "verifier", "both"):
            raise ConfigError(f"same-fact judge {by!r}: use 'encoder', 'verifier' or 'both'")
        if by != "encoder" and pair_scorer is None:
            by = "encoder"  # no verifier to ask: the cosine alone (as ScopeConfig.same_fact_by documents)
        self.encoder = encoder
        self.threshold = threshold
        self.pair_scorer = pair_scorer
        self.pair_threshold = pair_threshold
        self.by = by
        self._cosines: OrderedDict[tuple[int, int], float] = OrderedDict()
        self._pair_scores: OrderedDict[tuple[int, int], float] = OrderedDict()
        self._cache_size = cache_size

    def similarities(self, anchor: Edit, others: list[Edit]) -> list[float]:
        """Subject-masked cosine between ``anchor``'s input and each of ``others``'."""
        def score(missing: list[Edit]) -> list[float]:
            pairs = [mask_shared_span(anchor.input, e.input) for e in missing]
            vectors = self.encoder.encode([text for pair in pairs for text in pair])
            return np.sum(vectors[0::2] * vectors[1::2], axis=1).tolist()
        return self._cached(self._cosines, anchor, others, score)

    def verifier_scores(self, anchor: Edit, others: list[Edit]) -> list[float]:
        """The verifier's mutual score of ``anchor`` and each of ``others`` (needs ``pair_scorer``)."""
        assert self.pair_scorer is not None
        return self._cached(self._pair_scores, anchor, others,
                            lambda missing: self.pair_scorer(anchor.input, [e.input for e in missing]))

    def query_similarities(self, query: str, edits: list[Edit]) -> list[float]:
        """Subject-masked cosine between a query and each edit's input: does it ask their relation?
        Not cached (queries vary): one encoder call for the pairs."""
        pairs = [mask_shared_span(query, e.input) for e in edits]
        vectors = self.encoder.encode([text for pair in pairs for text in pair])
        return np.sum(vectors[0::2] * vectors[1::2], axis=1).tolist()

    def same_fact(self, anchor: Edit, others: list[Edit]) -> list[bool]:
        same = [True] * len(others)
        if self.by in ("encoder", "both"):
            same = [s and value >= self.threshold for s, value in zip(same, self.similarities(anchor, others))]
        if self.by in ("verifier", "both"):
            asked = [e for e, s in zip(others, same) if s]  # "both": the verifier reads only what the cosine let by
            scores = dict(zip((e.id for e in asked), self.verifier_scores(anchor, asked) if asked else []))
            same = [s and scores[e.id] >= self.pair_threshold for e, s in zip(others, same)]
        return same

    def _cached(self, cache: OrderedDict, anchor: Edit, others: list[Edit],
                score: Callable[[list[Edit]], list[float]]) -> list[float]:
        known = {e.id: cache[(anchor.id, e.id)] for e in others if (anchor.id, e.id) in cache}
        missing = [e for e in others if e.id not in known]
        if missing:
            known.update(zip((e.id for e in missing), score(missing)))
        for edit in others:
            cache[(anchor.id, edit.id)] = known[edit.id]
            cache.move_to_end((anchor.id, edit.id))
            if len(cache) > self._cache_size:
                cache.popitem(last=False)
        return [known[e.id] for e in others]
