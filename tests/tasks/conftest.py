"""Tiny fixtures for the task tests: a BERT-shaped encoder / classifier built here, stub models
whose answers the tests can predict, and small VitaminC / sentiment records written in the test."""

from __future__ import annotations

from pathlib import Path

import pytest

from serac.data.examples import FactCheckExample
from tests.conftest import save_tiny_bert

LABELS = ("supports", "refutes")


@pytest.fixture(scope="session")
def tiny_classifier_dir(tmp_path_factory) -> Path:
    return save_tiny_bert(tmp_path_factory.mktemp("tiny-classifier"), LABELS)


class RuleClassifier:
    """A stand-in for SequenceClassifier whose answers are a lookup: texts (or (evidence, claim)
    pairs) in ``table`` get their label, anything else ``default``."""

    labels = LABELS

    def __init__(self, table: dict, default: str) -> None:
        self.table, self.default = table, default
        self.seen: list = []

    def predict(self, items):
        self.seen.extend(items)
        return [self.table.get(item, self.default) for item in items]

    def generate(self, prompts, options=None):
        return self.predict(list(prompts))


def fc_records() -> list[FactCheckExample]:
    """Three pieces of evidence on unrelated subjects; one has only a "not enough info" claim."""
    rows = [
        ("paris capital france river seine", "paris is the capital of france", "supports"),
        ("paris capital france river seine", "paris is not the capital of france", "refutes"),
        ("paris capital france river seine", "paris has many bakeries", "not enough info"),
        ("jupiter largest planet solar system", "jupiter is the largest planet", "supports"),
        ("violin four strings bow instrument", "violin has many fans", "not enough info"),
    ]
    return [FactCheckExample(c, e, label, f"vitaminc:{i}") for i, (e, c, label) in enumerate(rows)]
