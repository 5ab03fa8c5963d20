"""Editing metrics: answer normalisation, exact match, and the SERAC / EasyEdit scores.

Two families of names for overlapping ideas, both reported:

- SERAC (Mitchell et al. 2022): **edit success** (ES) over every in-scope input, and **drawdown**
  (DD) over out-of-scope inputs, measured against the unedited base model.
- EasyEdit: **reliability** (the edit input itself), **generalization** (its rephrasings) and
  **locality** (out-of-scope inputs whose prediction did not change).

Each is computed two ways. *Generation* (the headline): greedy decoding, then exact match after
:func:`normalize_answer`. *Teacher forcing*: the share of the reference answer's tokens that the model
predicts as its argmax given the prompt and the gold tokens before them (``teacher_forced`` of the
adapters); for out-of-scope inputs the reference is the unedited base model's own greedy answer, so the
score says how much of that answer the edited model would still produce.

Every aggregate returns ``None`` for an empty input (nothing measured), never 0.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable, Sequence

_ARTICLES = re.compile(r"\b(a|an|the)\b")


def first_line(text: str) -> str:
    """The prediction up to its first non-empty line: a QA answer is one line, and a model that keeps
    talking after it (a new paragraph, an invented follow-up question) is not penalised for that."""
    for line in text.splitlines():
        if line.strip():
            return line.strip()
    return ""


def normalize_answer(text: str) -> str:
    """SQuAD-style answer normalisation, stated exactly:

    1. Unicode NFKC, then case folding (``"Straße"`` -> ``"strasse"``; accents are kept);
    2. dashes (Unicode category Pd) and ``/`` become spaces (``"mezzo-soprano"`` == ``"mezzo soprano"``);
    3. every other punctuation character (Unicode categories P*) is deleted (``"U.S."`` -> ``"us"``,
       ``"1,000"`` -> ``"1000"``, ``"O'Brien"`` -> ``"obrien"``);
    4. the articles ``a``, ``an``, ``the`` are dropped as whole words;
    5. whitespace runs collapse to one space, ends stripped.
    """
    text = unicodedata.normalize("NFKC", text).casefold()
    chars = []
    for ch in text:
        category = unicodedata.category(ch)
        if category == "Pd" or ch == "/":
            chars.append(" ")
        elif not category.startswith("P"):
            chars.append(ch)
    text = _ARTICLES.sub(" ", "".join(chars))
    return " ".join(text.split())


def normalize_prediction(text: str) -> str:
    """What a model's answer is compared as: :func:`normalize_answer` of its :func:`first_line`."""
    return normalize_answer(first_line(text))


def exact_match(prediction: str, target: str) -> bool:
    """True when the normalised first line of ``prediction`` equals the normalised ``target``.

    Two answers that both normalise to ``""`` match (SQuAD's convention); a sentence that merely
    contains the target does not ("The capital is Paris." != "Paris")."""
    return normalize_prediction(prediction) == normalize_answer(target)


def changed(after: str, before: str) -> bool:
    """True when two predictions differ after :func:`normalize_prediction` (so "Paris." and "paris"
    are the same prediction)."""
    return normalize_prediction(after) != normalize_prediction(before)


def mean(values: Iterable[float]) -> float | None:
    """Arithmetic mean, or ``None`` when there is nothing to average."""
    values = list(values)
    return float(sum(values) / len(values)) if values else None


def _check_lengths(a: Sequence[object], b: Sequence[object], names: str) -> None:
    if len(a) != len(b):
        raise ValueError(f"{names}: got {len(a)} and {len(b)} items; they must pair up one to one")


# -- generation (exact match) ----------------------------------------------------------------------
def edit_success(predictions: Sequence[str], targets: Sequence[str]) -> float | None:
    """ES (SERAC): the share of in-scope inputs (edit inputs and their rephrasings together) whose
    prediction exact-matches the answer the edit asks for."""
    _check_lengths(predictions, targets, "edit_success(predictions, targets)")
    return mean(float(exact_match(p, t)) for p, t in zip(predictions, targets))


def reliability(predictions: Sequence[str], targets: Sequence[str]) -> float | None:
    """Reliability (EasyEdit): ES restricted to the edit inputs themselves."""
    return edit_success(predictions, targets)


def generalization(predictions: Sequence[str], targets: Sequence[str]) -> float | None:
    """Generalization (EasyEdit): ES restricted to rephrasings of the edit inputs."""
    return edit_success(predictions, targets)


def drawdown(after: Sequence[str], before: Sequence[str]) -> float | None:
    """DD (SERAC): the share of out-of-scope inputs whose prediction changed (:func:`changed`) versus
    the unedited base model's prediction for the same input. 0 is perfect."""
    _check_lengths(after, before, "drawdown(after, before)")
    return mean(float(changed(a, b)) for a, b in zip(after, before))


def locality(after: Sequence[str], before: Sequence[str]) -> float | None:
    """Locality (EasyEdit): the share of out-of-scope inputs whose prediction is unchanged versus the
    unedited base model. 1 is perfect; on the same inputs it equals ``1 - drawdown``."""
    value = drawdown(after, before)
    return None if value is None else 1.0 - value


# -- teacher forcing (token accuracy) --------------------------------------------------------------
def tf_edit_success(token_accuracies: Sequence[float]) -> float | None:
    """Teacher-forced ES / reliability / generalization: the mean, over in-scope inputs, of the share
    of the edit target's tokens the model predicts (argmax, gold prefix given)."""
    return mean(token_accuracies)


def tf_locality(token_accuracies_on_base_answer: Sequence[float]) -> float | None:
    """Teacher-forced locality: the mean, over out-of-scope inputs, of the share of the unedited base
    model's own greedy answer tokens that the edited model still predicts. The runner keeps the rows
    where the base model itself scores 1 (its decoded answer re-tokenises to what it generated), so
    the unedited model scores exactly 1."""
    return mean(token_accuracies_on_base_answer)


def tf_drawdown(token_accuracies_on_base_answer: Sequence[float]) -> float | None:
    """Teacher-forced DD: ``1 - tf_locality``, the share of the base model's answer tokens lost."""
    value = tf_locality(token_accuracies_on_base_answer)
    return None if value is None else 1.0 - value


# -- intervals -------------------------------------------------------------------------------------
Z95 = 1.959963984540054  # the standard normal's 97.5% quantile: a two-sided 95% interval


def wilson(successes: int, n: int, z: float = Z95) -> tuple[float, float]:
    """The Wilson score interval (95% by default) for ``successes`` out of ``n`` Bernoulli trials.

    Unlike the normal approximation it stays inside [0, 1] and does not collapse to a point at 0 or
    n successes (0/100 still leaves room for a few percent), which is where editing rates live."""
    if n <= 0:
        raise ValueError(f"wilson(successes, n) needs n >= 1 trials, got n={n}")
    if not 0 <= successes <= n:
        raise ValueError(f"wilson(successes, n): successes must be in [0, n={n}], got {successes}")
    p = successes / n
    z2 = z * z
    centre = (p + z2 / (2 * n)) / (1 + z2 / n)
    half = z / (1 + z2 / n) * (p * (1 - p) / n + z2 / (4 * n * n)) ** 0.5
    # clamp rounding noise at the ends (0/n and n/n have an exact bound of 0 and 1)
    return (0.0 if successes == 0 else max(0.0, centre - half), 1.0 if successes == n else min(1.0, centre + half))


def rate_entry(successes: int, n: int) -> dict[str, object]:
    """A rate as the measurement scripts record it: count, total, rate and its Wilson interval
    (rate and interval None when nothing was measured)."""
    if n <= 0:
        return {"k": int(successes), "n": int(n), "rate": None, "ci95": None}
    low, high = wilson(successes, n)
    return {"k": int(successes), "n": int(n), "rate": round(successes / n, 4), "ci95": [round(low, 4), round(high, 4)]}


def rate_cell(entry: dict | None) -> str:
    """A :func:`rate_entry` as a table cell: ``rate [low, high] (k/n)``, or a dash when empty."""
    if not entry or not entry.get("n"):
        return "\u2013"
    return f"{entry['rate']:.3f} [{entry['ci95'][0]:.2f}, {entry['ci95'][1]:.2f}] ({entry['k']}/{entry['n']})"


def successes_of(rate: float, n: int) -> int:
    """The success count behind a rate measured on ``n`` binary outcomes (rates are stored as
    floats; their count is recovered exactly by rounding)."""
    return int(round(rate * n))
