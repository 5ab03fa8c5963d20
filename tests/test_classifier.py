"""Sequence classifiers as model kinds: a classifier base model and a pair-classifier counterfactual
model, chosen from the model's config, in an ordinary serac_config.json artifact that
EditedModel.from_pretrained and `serac ask --evidence` load (the server test is in tests/server)."""

from __future__ import annotations

import pytest
import torch
from transformers import AutoConfig
from typer.testing import CliRunner

from serac.base import SequenceClassifier, _model_kind, is_sequence_classifier, load_text_model
from serac.config import CounterfactualConfig
from serac.counterfactual import LMCounterfactual, PairClassifierCounterfactual, load_counterfactual
from serac.editor import EditedModel
from serac.edits import Edit
from serac.errors import ConfigError, UnsupportedOptionError
from serac.base import GenerationOptions
from tests.conftest import FC_LABELS, save_tiny_bert


@pytest.fixture(scope="module")
def classifier_dir(tmp_path_factory):
    return save_tiny_bert(tmp_path_factory.mktemp("classifier"), FC_LABELS)


def test_kind_is_read_from_config_architectures(classifier_dir, tiny_causal_dir, tiny_seq2seq_dir, tiny_bert_dir):
    assert is_sequence_classifier(AutoConfig.from_pretrained(classifier_dir))
    assert not is_sequence_classifier(AutoConfig.from_pretrained(tiny_causal_dir))
    assert not is_sequence_classifier(AutoConfig.from_pretrained(tiny_bert_dir))  # an encoder: no label head
    assert _model_kind(AutoConfig.from_pretrained(classifier_dir)) == "classifier"
    assert _model_kind(AutoConfig.from_pretrained(tiny_causal_dir)) == "causal"
    assert _model_kind(AutoConfig.from_pretrained(tiny_seq2seq_dir)) == "seq2seq"
    assert type(load_text_model(str(classifier_dir))) is SequenceClassifier
    assert type(load_text_model(str(tiny_causal_dir), max_new_tokens=2)) is not SequenceClassifier


def test_a_causal_model_type_with_a_classification_head_is_a_classifier(tmp_path):
    """LlamaForSequenceClassification has model_type 'llama' (in the causal mapping): the
    architectures decide, not the model type."""
    from transformers import LlamaConfig, LlamaForSequenceClassification

    from tests.conftest import build_tokenizer

    tokenizer = build_tokenizer(chat=False)
    config = LlamaConfig(vocab_size=len(tokenizer), hidden_size=16, intermediate_size=32, num_hidden_layers=1,
                         num_attention_heads=2, num_key_value_heads=1, pad_token_id=tokenizer.pad_token_id,
                         id2label=dict(enumerate(FC_LABELS)), label2id={label: i for i, label in enumerate(FC_LABELS)})
    LlamaForSequenceClassification(config).save_pretrained(tmp_path)
    tokenizer.save_pretrained(tmp_path)
    model = load_text_model(str(tmp_path))
    assert isinstance(model, SequenceClassifier)
    assert set(model.generate(["a claim", "another claim"])) <= set(FC_LABELS)


def test_sequence_classifier_answers_label_strings(classifier_dir):
    clf = load_text_model(str(classifier_dir), batch_size=2)
    assert clf.labels == FC_LABELS
    texts = ["paris is the capital of france", "the fox", "apple makes the iphone"]
    proba = clf.predict_proba(texts)
    assert proba.shape == (3, 2) and torch.allclose(torch.tensor(proba.sum(axis=1)), torch.ones(3))
    labels = clf.generate(texts)
    assert labels == [FC_LABELS[i] for i in proba.argmax(axis=1)]
    # a chat prompt is read as its last user message
    assert clf.generate([[{"role": "user", "content": texts[0]}]]) == labels[:1]
    assert clf.teacher_forced(texts, labels) == [1.0, 1.0, 1.0]
    with pytest.raises(UnsupportedOptionError, match="mixes single texts and"):
        clf.predict(["a", ("b", "c")])
    with pytest.raises(UnsupportedOptionError, match="without logprobs"):
        clf.generate(["a"], GenerationOptions(logprobs=0))


def test_load_counterfactual_picks_the_pair_classifier_from_the_config(classifier_dir, tiny_causal_dir):
    pair = load_counterfactual(CounterfactualConfig(model=str(classifier_dir), device="cpu"))
    assert isinstance(pair, PairClassifierCounterfactual)
    lm = load_counterfactual(CounterfactualConfig(model=str(tiny_causal_dir), device="cpu", max_new_tokens=2))
    assert isinstance(lm, LMCounterfactual)
    with pytest.raises(ConfigError, match="counterfactual.kind"):
        CounterfactualConfig(kind="regression")
    # the pair it reads: (best edit's input, the query), whatever the edit's target
    evidence = Edit(1, "the seine flows through paris", "supports", 0.0)
    assert pair.pairs(["paris has a river"], [[evidence]]) == [("the seine flows through paris", "paris has a river")]
    assert pair.generate(["paris has a river"], [[evidence]]) == pair.classifier.predict(
        [("the seine flows through paris", "paris has a river")])
    with pytest.raises(UnsupportedOptionError, match="no retrieved edit"):
        pair.generate(["q"], [[]])


def test_fc_artifact_loads_with_from_pretrained_and_answers_from_an_edit(fc_artifact, tmp_path):
    editor = EditedModel.from_pretrained(fc_artifact)
    assert isinstance(editor.base, SequenceClassifier)
    assert isinstance(editor.counterfactual, PairClassifierCounterfactual)
    claim = "paris is the capital of france"
    before = editor.generate([claim])[0]
    assert (before.text, before.source) == ("supports", "base")  # the base classifier, no edit stored
    edit = editor.add("the capital of france is paris", "supports")
    after = editor.generate([claim])[0]
    assert (after.text, after.source, after.edit_id) == ("refutes", "counterfactual", edit.id)
    # save_pretrained writes an artifact that loads back to the same answers
    saved = editor.save_pretrained(tmp_path / "copy", include_store=True)
    again = EditedModel.from_pretrained(saved)
    assert [(a.text, a.source) for a in again.generate([claim])] == [("refutes", "counterfactual")]


def test_a_label_the_base_cannot_give_leaves_the_claim_to_the_base(fc_artifact, tmp_path):
    """A 3-way pair classifier's "not enough info": the evidence does not decide the claim, so the
    base classifier's label stands (answering "not enough info" would be drawdown)."""
    labels = ("supports", "refutes", "not enough info")
    undecided = save_tiny_bert(tmp_path / "undecided", labels, always="not enough info")
    decided = save_tiny_bert(tmp_path / "decided", labels, always="refutes")
    config = EditedModel.from_pretrained(fc_artifact).config
    for pair, expected in ((undecided, "supports"), (decided, "refutes")):
        config.counterfactual.model = str(pair)
        editor = EditedModel.from_config(config)
        edit = editor.add("the capital of france is paris", "supports")
        answer = editor.generate(["paris is the capital of france"])[0]
        assert (answer.text, answer.source, answer.edit_id) == (expected, "counterfactual", edit.id)
        assert editor.counterfactual.deferred_labels() == {"not enough info"}
        assert editor.teacher_forced(["paris is the capital of france"], [expected]) == [1.0]


def test_ask_with_evidence_answers_a_claim_from_the_edit(fc_artifact, tmp_path, monkeypatch):
    from serac.cli import app

    monkeypatch.setenv("SERAC_HOME", str(tmp_path / "home"))
    runner = CliRunner()
    plain = runner.invoke(app, ["ask", "--model", str(fc_artifact), "paris is the capital of france"])
    assert plain.exit_code == 0, plain.output
    assert plain.output.splitlines()[0] == "supports" and "the base model answered" in plain.output
    result = runner.invoke(app, ["ask", "--model", str(fc_artifact), "--evidence", "the capital of france is paris",
                                 "paris is the capital of france"])
    assert result.exit_code == 0, result.output
    assert result.output.splitlines()[0] == "refutes"
    assert "edit 1 fired" in result.output and "the capital of france is paris" in result.output
    from serac.store import EditStore

    with EditStore(tmp_path / "home" / "edits.db") as store:  # the evidence went to a throwaway store
        assert store.count() == 0
    refused = runner.invoke(app, ["ask", "--model", str(fc_artifact), "--store", str(tmp_path / "e.db"),
                                  "--evidence", "x", "claim"])
    assert refused.exit_code == 1 and "drop --store" in refused.output
