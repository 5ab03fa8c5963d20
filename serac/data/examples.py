"""The dataset-independent example types every loader returns.

Training and evaluation code should only ever see these types, so a new benchmark needs a loader
and nothing else.
"""

from __future__ import annotations

import unicodedata
from collections.abc import Iterable
from dataclasses import dataclass


@dataclass(frozen=True)
class Probe:
    """One input the edited model is asked about, with the answer we expect back.

    For in-scope probes ``target`` is the new (edited) answer. For out-of-scope probes it is the
    known original answer, or ``None`` when no reference answer exists.
    """

    input: str
    target: str | None


@dataclass(frozen=True)
class EditExample:
    """One edit request plus the probes that measure whether it took, generalised and stayed local.

    ``in_scope[0]`` is always the edit input itself (reliability); the rest are rephrasings
    (generalization). ``out_of_scope`` holds unrelated inputs whose answers must not change.
    """

    edit_input: str
    edit_target: str
    in_scope: tuple[Probe, ...]
    out_of_scope: tuple[Probe, ...]
    subject: str | None = None
    original_target: str | None = None
    record_id: str = ""

    def __post_init__(self) -> None:
        if not self.in_scope:
            raise ValueError(
                "EditExample.in_scope is empty; expected at least the edit input itself as "
                "in_scope[0] (the reliability probe)"
            )

    @property
    def reliability_probe(self) -> Probe:
        """The edit input itself: does the model now give the new answer?"""
        return self.in_scope[0]

    @property
    def generalization_probes(self) -> tuple[Probe, ...]:
        """Rephrasings of the edit input: does the new answer carry over?"""
        return self.in_scope[1:]


@dataclass(frozen=True)
class FactCheckExample:
    """One VitaminC item: does ``evidence`` support or refute ``claim``?

    ``label`` is one of ``"supports"``, ``"refutes"``, ``"not enough info"``.
    """

    claim: str
    evidence: str
    label: str
    record_id: str = ""


def normalize_text(text: str) -> str:
    """Case- and whitespace-insensitive form of ``text``, for comparing facts across records."""
    return " ".join(unicodedata.normalize("NFKC", text).casefold().split())


def fact_key(example: EditExample) -> tuple[str, str]:
    """Identify the fact an edit changes: (normalised subject, normalised original answer).

    Several benchmark records can edit the same fact to different answers (zsRE's 1,037 eval
    edits hold 743 distinct facts); applying them together would conflict. Without a subject the
    edit input stands in for it, and a missing original answer becomes ``""``.
    """
    subject = example.subject if example.subject is not None else example.edit_input
    original = example.original_target if example.original_target is not None else ""
    return normalize_text(subject), normalize_text(original)


def conflict_groups(examples: Iterable[EditExample]) -> dict[tuple[str, str], list[int]]:
    """Group example indices by :func:`fact_key`, in order of first appearance.

    Every fact gets a group, so ``len(result)`` is the number of distinct facts; groups with more
    than one index are the conflicting edits.
    """
    groups: dict[tuple[str, str], list[int]] = {}
    for index, example in enumerate(examples):
        groups.setdefault(fact_key(example), []).append(index)
    return groups
