"""`serac train --task fc|sentiment` on the one stack (serac.train.fc, serac.train.sentiment): the
artifacts are ordinary serac_config.json artifacts that EditedModel.from_pretrained loads, the scope
is trained and calibrated by serac.train's own code; tiny models and records written here."""

from __future__ import annotations

import json

import pytest
import torch

from serac.base import CallableModel, SequenceClassifier
from serac.counterfactual import PairClassifierCounterfactual
from serac.edits import EVIDENCE_TARGET
from serac.editor import EditedModel
from serac.errors import ConfigError, ModelNotAvailableError
from serac.tasks.sentiment.data import SentimentRecipe, build_sentiment_data
from serac.tasks.sentiment.prompts import edit_input, edit_target
from serac.train.calibrate import score_validation
from serac.train.pairs import EditRecord
from tests.conftest import FC_LABELS, HashingEncoder, save_tiny_bert
from tests.tasks.conftest import fc_records
from tests.tasks.test_sentiment import fake_chat, fake_judge


@pytest.fixture
def vitaminc(tmp_path):
    path = tmp_path / "train.jsonl"
    rows = [{"claim": r.claim, "evidence": f"{r.evidence} {i // 5}", "label": r.label, "id": i}
            for i, r in enumerate(fc_records() * 3)]  # distinct evidence per copy: some is held out
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def test_train_fc_writes_a_serac_artifact(tmp_path, vitaminc, tiny_bert_dir):
    from serac.train.fc import FCTrainConfig, train_fc

    config = FCTrainConfig(encoder=str(tiny_bert_dir), epochs=1, scope_steps=2, val_fraction=0.34, batch_size=4,
                           device="cpu")
    summary = train_fc(vitaminc, tmp_path / "fc", config)
    assert summary["n_train_edits"] + summary["n_val_edits"] == 9
    assert -1.0 <= summary["threshold"] <= 1.0 and len(summary["scope_losses"]) == 2
    saved = json.loads((tmp_path / "fc" / "serac_config.json").read_text())
    assert (saved["base"]["model"], saved["counterfactual"]["model"], saved["scope"]["encoder"]) == (
        "base", "counterfactual", "scope_encoder")
    assert saved["scope"]["threshold"] == summary["threshold"]
    editor = EditedModel.from_pretrained(tmp_path / "fc")
    assert isinstance(editor.base, SequenceClassifier) and isinstance(editor.counterfactual, PairClassifierCounterfactual)
    editor.add("paris capital france river seine 0", EVIDENCE_TARGET)
    assert editor.generate(["paris is the capital of france"])[0].text in FC_LABELS


def test_train_fc_uses_a_given_counterfactual_classifier(tmp_path, vitaminc, tiny_bert_dir):
    from serac.train.fc import FCTrainConfig, train_fc

    given = save_tiny_bert(tmp_path / "trained-elsewhere", FC_LABELS, always="refutes")
    config = FCTrainConfig(encoder=str(tiny_bert_dir), epochs=1, scope_steps=0, val_fraction=0.34, batch_size=4,
                           device="cpu", counterfactual=str(given))
    summary = train_fc(vitaminc, tmp_path / "fc", config)
    assert "counterfactual_losses" not in summary and not (tmp_path / "fc" / "counterfactual").exists()
    saved = json.loads((tmp_path / "fc" / "serac_config.json").read_text())
    assert saved["counterfactual"]["model"] == str(given.resolve())
    assert saved["scope"]["encoder"] == str(tiny_bert_dir)  # no scope steps: the pretrained encoder
    editor = EditedModel.from_pretrained(tmp_path / "fc")
    edit = editor.add("paris capital france river seine 0", EVIDENCE_TARGET)
    assert editor.counterfactual.generate(["paris is the capital of france"], [[edit]]) == ["refutes"]  # the given one
    wrong = save_tiny_bert(tmp_path / "nli", ("entailment", "neutral", "contradiction"))
    with pytest.raises(ConfigError, match="without \\['refutes', 'supports'\\]"):
        train_fc(vitaminc, tmp_path / "fc2", config.replace(counterfactual=str(wrong)))


def test_train_fc_scope_also_learns_fool_me_twice_dev(tmp_path, vitaminc, tiny_bert_dir):
    from serac.train.fc import FCTrainConfig, train_fc
    from tests.tasks.fc.fixtures import write_tree

    data, _ = write_tree(tmp_path / "data")
    config = FCTrainConfig(encoder=str(tiny_bert_dir), epochs=1, scope_steps=2, val_fraction=0.34, batch_size=4,
                           device="cpu", scope_fm2=str(data))
    summary = train_fc(vitaminc, tmp_path / "fc", config)
    assert (summary["n_scope_fm2_train_edits"], summary["n_scope_fm2_val_edits"]) == (1, 0)  # the fixture's one claim
    assert summary["n_train_edits"] + summary["n_val_edits"] == 9  # the classifiers still see VitaminC only
    assert EditedModel.from_pretrained(tmp_path / "fc").scope is not None


def test_held_out_negatives_score_each_query_against_the_other_facts():
    encoder = HashingEncoder()
    records = [EditRecord(key, "t", (query,), (), (key, ""), "", "fc") for key, query in
               (("paris france capital", "paris capital"), ("violin strings bow", "violin bow"))]
    plain = score_validation(encoder.encode, records)["fc"]
    held = score_validation(encoder.encode, records, held_out=True)["fc"]
    assert plain.negative == [] and held.positive == plain.positive
    vectors = encoder.encode(["paris capital", "violin bow", "paris france capital", "violin strings bow"])
    assert held.negative == pytest.approx([float(vectors[0] @ vectors[3]), float(vectors[1] @ vectors[2])])


def test_train_sentiment_writes_a_standard_artifact(tmp_path, tiny_causal_dir, tiny_bert_dir):
    from serac.train.sentiment import SentimentTrainConfig, train_sentiment

    topics = ["Paris", "Rome", "Lisbon", "Madrid", "Vienna", "Prague", "Dublin", "Athens", "Berlin", "Warsaw"]
    data = tmp_path / "data"
    build_sentiment_data(data, topics=topics, lm=CallableModel(fake_chat), judge=fake_judge,
                         recipe=SentimentRecipe(n_topics=10, eval_fraction=0.5, templates_per_sentiment=1, seed=0))
    config = SentimentTrainConfig(model=str(tiny_causal_dir), encoder=str(tiny_bert_dir), epochs=2, batch_size=2,
                                  max_new_tokens=4, scope_prompts_per_topic=2, val_fraction=0.4, scope_steps=2,
                                  device="cpu")
    summary = train_sentiment(data, tmp_path / "art", config)
    assert summary["train_topics"] == 3 and summary["val_topics"] == 2 and summary["examples"] == 6
    assert len(summary["counterfactual_history"]) == 2 and len(summary["scope_losses"]) == 2
    saved = json.loads((tmp_path / "art" / "serac_config.json").read_text())
    assert saved["counterfactual"]["adapter"] == "adapter" and saved["counterfactual"]["prompt"] == "trained"
    assert saved["scope"]["encoder"] == "scope_encoder"
    editor = EditedModel.from_pretrained(tmp_path / "art")
    editor.add(edit_input("Paris"), edit_target("positive"))
    assert isinstance(editor.generate(["What do you think of Paris?"])[0].text, str)


def test_the_trainable_head_is_found_from_the_model_class(tmp_path):
    """BERT calls its head `classifier`, Llama `score`, DistilBERT adds `pre_classifier`: the head is
    whatever lies outside the class's base_model_prefix backbone, whatever its name."""
    from transformers import (
        BertConfig,
        BertForSequenceClassification,
        DistilBertConfig,
        DistilBertForSequenceClassification,
        LlamaConfig,
        LlamaForSequenceClassification,
    )

    from serac.train.classifier import head_parameters

    def names(model):
        ids = {id(p) for p in head_parameters(model)}
        return sorted(n for n, p in model.named_parameters() if id(p) in ids)

    bert = BertForSequenceClassification(BertConfig(vocab_size=50, hidden_size=8, num_hidden_layers=1,
                                                    num_attention_heads=2, intermediate_size=16))
    assert names(bert) == ["classifier.bias", "classifier.weight"]
    llama = LlamaForSequenceClassification(LlamaConfig(vocab_size=50, hidden_size=8, intermediate_size=16,
                                                       num_hidden_layers=1, num_attention_heads=2,
                                                       num_key_value_heads=1))
    assert names(llama) == ["score.weight"]
    distil = DistilBertForSequenceClassification(DistilBertConfig(vocab_size=50, dim=8, n_layers=1, n_heads=2,
                                                                  hidden_dim=16))
    assert names(distil) == ["classifier.bias", "classifier.weight", "pre_classifier.bias", "pre_classifier.weight"]
    with pytest.raises(ModelNotAvailableError, match="names no backbone module"):
        head_parameters(torch.nn.Linear(2, 2))
