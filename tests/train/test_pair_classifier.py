"""The (evidence, claim) pair-classifier trainer on a tiny random BERT (no download)."""

from __future__ import annotations

import json

import pytest
import torch

from serac.errors import ConfigError
from serac.base import load_text_model
from serac.train import pair_classifier as pc
from tests.tasks.conftest import save_tiny_bert
from tests.tasks.fc.fixtures import write_tree

PAIRS = [("a man plays a guitar", "a man plays music"), ("a man plays a guitar", "a woman sleeps"),
         ("two dogs run", "the dogs are famous")]
LABELS = ["supports", "refutes", "not enough info"]


@pytest.fixture
def tiny(tmp_path):
    model, tokenizer = pc.new_pair_classifier(str(save_tiny_bert(tmp_path / "bert")), seed=0)
    return model, tokenizer


def _loss(model, tokenizer) -> float:
    with torch.no_grad():
        logits = model(**tokenizer([e for e, _ in PAIRS], [c for _, c in PAIRS], padding=True,
                                   return_tensors="pt")).logits
    return torch.nn.functional.cross_entropy(logits, torch.tensor([0, 1, 2])).item()


def test_new_classifier_has_the_three_fc_labels(tiny):
    model, _ = tiny
    assert model.config.id2label == {0: "supports", 1: "refutes", 2: "not enough info"}
    assert model.config.label2id["not enough info"] == 2


def test_one_training_step_reduces_the_loss(tiny):
    model, tokenizer = tiny
    model.eval()
    before = _loss(model, tokenizer)
    config = pc.PairClassifierConfig(lr=1e-3, head_lr=1e-2, warmup_fraction=0.0, batch_size=len(PAIRS))
    losses = pc.train_steps(model, tokenizer, PAIRS, LABELS, config, epochs=1)
    assert len(losses) == 1
    assert _loss(model, tokenizer) < before
    assert not model.training


def test_unknown_labels_and_empty_plans_are_config_errors(tiny):
    model, tokenizer = tiny
    with pytest.raises(ConfigError, match="'maybe'"):
        pc.train_steps(model, tokenizer, PAIRS[:1], ["maybe"], pc.PairClassifierConfig(), epochs=1)
    with pytest.raises(ConfigError, match="both 0"):
        pc.PairClassifierConfig(pretrain_epochs=0, finetune_epochs=0)
    with pytest.raises(ConfigError, match="batch_size"):
        pc.PairClassifierConfig(batch_size=0)


def test_length_batches_cover_every_pair_once_in_similar_lengths():
    import random

    lengths = [random.Random(0).randint(1, 100) for _ in range(103)]
    batches = pc._length_batches(lengths, 10, random.Random(1), pool=3)
    assert sorted(i for b in batches for i in b) == list(range(103))
    assert all(len(b) <= 10 for b in batches)
    spread = sum(max(lengths[i] for i in b) - min(lengths[i] for i in b) for b in batches) / len(batches)
    assert spread < 40  # random batches of 10 from 1..100 spread about 80


def test_train_save_load_round_trip_and_resume(tmp_path, monkeypatch):
    data, vitaminc = write_tree(tmp_path / "data")
    config = pc.PairClassifierConfig(model=str(save_tiny_bert(tmp_path / "bert")), batch_size=4,
                                     max_nei_fraction=0.5)
    out = tmp_path / "out"
    summary = pc.train_pair_classifier(data, vitaminc, out, config)
    assert set(summary["stages"]) == {"pretrain", "finetune"}
    pretrain = summary["stages"]["pretrain"]
    assert pretrain["n_pairs"] == 7  # e-SNLI 4 + 1 (one dropped: a test claim) + VitaminC train 3
    assert json.loads((out / "train_summary.json").read_text())["labels"] == LABELS

    model, tokenizer = pc.load_pair_classifier(out)
    reloaded = load_text_model(str(out), max_length=128)  # what the FC evaluation loads
    assert reloaded.labels == tuple(LABELS)
    assert pc.predict(model, tokenizer, PAIRS) == reloaded.predict(PAIRS)

    # a second run finds both stages done and trains nothing
    monkeypatch.setattr(pc, "train_steps", lambda *a, **k: pytest.fail("a finished stage was retrained"))
    again = pc.train_pair_classifier(data, vitaminc, out, config)
    assert again["stages"] == summary["stages"]
    assert pc.predict(*pc.load_pair_classifier(out), PAIRS) == reloaded.predict(PAIRS)


def test_held_out_claims_keep_all_their_pairs_out_of_training():
    pairs = [pc_pair(c, e) for c in "abcdefghij" for e in ("x", "y")]
    train, held = pc.hold_out_claims(pairs, 0.3, seed=0)
    assert len({p.claim for p in held}) == 3 and len(held) == 6
    assert not {p.claim for p in train} & {p.claim for p in held}
    assert pc.hold_out_claims(pairs, 0.3, seed=0) == (train, held)  # seeded
    assert pc.hold_out_claims(pairs, 0.0, seed=0) == (pairs, [])


def test_each_stage_is_measured_on_the_held_out_stage_two_claims(tmp_path):
    data, vitaminc = write_tree(tmp_path / "data")
    config = pc.PairClassifierConfig(model=str(save_tiny_bert(tmp_path / "bert")), batch_size=4,
                                     max_nei_fraction=0.5, validation_fraction=0.5)
    summary = pc.train_pair_classifier(data, vitaminc, tmp_path / "out", config)
    pretrain, finetune = summary["stages"]["pretrain"]["validation"], summary["stages"]["finetune"]["validation"]
    assert pretrain["n_pairs"] == finetune["n_pairs"] > 0
    assert 0.0 <= finetune["accuracy"] <= 1.0
    unheld = pc.train_pair_classifier(data, vitaminc, tmp_path / "all", config.replace(validation_fraction=0.0))
    assert "validation" not in unheld["stages"]["finetune"]
    assert unheld["stages"]["finetune"]["n_pairs"] > summary["stages"]["finetune"]["n_pairs"]


def pc_pair(claim: str, evidence: str):
    from serac.tasks.fc.corpora import LabelledPair

    return LabelledPair(evidence=evidence, claim=claim, label="supports", source="test")
