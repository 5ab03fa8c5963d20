"""Tiny fixtures for the task tests: a BERT-shaped encoder / classifier built here, stub models
whose answers the tests can predict, and small VitaminC / sentiment records written in the test."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from serac.data.examples import FactCheckExample
from tests.conftest import build_tokenizer

LABELS = ("supports", "refutes")


def save_tiny_bert(path: Path, labels: tuple[str, ...] | None = None, seed: int = 0) -> Path:
    """A tiny BERT: a plain encoder (``labels`` None; sentence-transformers wraps it with mean
    pooling) or a sequence classifier over ``labels``."""
    from transformers import BertConfig, BertForSequenceClassification, BertModel

    tokenizer = build_tokenizer(chat=False)
    torch.manual_seed(seed)
    config = BertConfig(
        vocab_size=len(tokenizer),
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=2,
        max_position_embeddings=512,
        pad_token_id=tokenizer.pad_token_id,
    )
    if labels is None:
        model = BertModel(config)
    else:
        config.id2label = dict(enumerate(labels))
        config.label2id = {label: i for i, label in enumerate(labels)}
        model = BertForSequenceClassification(config)
    model.save_pretrained(path)
    tokenizer.save_pretrained(path)
    return path


@pytest.fixture(scope="session")
def tiny_bert_dir(tmp_path_factory) -> Path:
    return save_tiny_bert(tmp_path_factory.mktemp("tiny-bert"))


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
