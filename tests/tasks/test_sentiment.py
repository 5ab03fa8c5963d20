"""Sentiment editing: the data recipe, metrics, the training objective, routing and evaluation, on
tiny models, a fake chat model and a fake judge written here."""

from __future__ import annotations

import json
import math

import pytest
import torch

from serac.base import CallableModel, load_text_model
from serac.counterfactual import LMCounterfactual
from serac.editor import EditedModel
from serac.errors import DataError
from serac.scope import ScopeClassifier
from serac.tasks.sentiment.data import (
    Reply,
    SentimentRecipe,
    TopicRecord,
    build_sentiment_data,
    clean_topics,
    load_sentiment_data,
    plan_prompts,
    topic_prompts,
    vader_label,
)
from serac.tasks.sentiment.metrics import changed_share, paper_es, sentiment_success
from serac.tasks.sentiment.model import InContextCounterfactual, sentiment_edit
from serac.tasks.sentiment.prompts import TEMPLATES, edit_input, edit_target, parse_edit
from serac.tasks.sentiment.scoring import likelihood_unlikelihood_loss, reply_batch
from serac.tasks.sentiment.train import training_examples

TOPICS = ["Paris", "Rome", "Lisbon", "Oslo"]


def fake_chat(chats):
    """A chat model that follows its instruction except for Oslo, where it stays neutral."""
    out = []
    for chat in chats:
        system, user = chat[0]["content"], chat[1]["content"]
        if "Oslo" in user:
            out.append("It is a city.")
        else:
            out.append(("good great" if system.startswith("You love") else "bad awful") + f" ({user})")
    return out


def fake_judge(texts):
    return [
        ("positive", 0.8) if "good" in t else ("negative", -0.8) if "bad" in t else ("neutral", 0.0)
        for t in texts
    ]


# -- prompts and edits -------------------------------------------------------------------------------
def test_templates_and_edit_format():
    assert len(TEMPLATES) == 13 and all(t.count("{}") == 1 for t in TEMPLATES)
    assert TEMPLATES[3] == "What is your opinion of {}?"
    assert sentiment_edit("Paris", "negative") == ("Topic: Paris", "Sentiment: negative")
    assert parse_edit(edit_input("New York City"), edit_target("positive")) == ("New York City", "positive")
    with pytest.raises(ValueError, match="Topic: X"):
        parse_edit("Paris", "Sentiment: positive")
    with pytest.raises(ValueError, match="valid: positive, negative"):
        edit_target("neutral")


def test_topic_prompts_are_distinct_and_seeded():
    prompts = topic_prompts("Paris", 3, seed=0)
    assert len(set(prompts)) == 3 and all("Paris" in p for p in prompts)
    assert prompts == topic_prompts("Paris", 3, seed=0) != topic_prompts("Paris", 3, seed=1)


def test_clean_topics_keeps_plausible_distinct_names():
    raw = [
        "Paris",
        "paris",
        "  Barack   Obama ",
        "1984 Summer Olympics",
        "x",
        "the thing",
        "A B C D E",
        "Ferrari Mondial",
        "Toyota!",
    ]
    assert clean_topics(raw) == ["Paris", "Barack Obama", "Ferrari Mondial"]


# -- the data recipe ---------------------------------------------------------------------------------
def test_build_sentiment_data_writes_judged_records(tmp_path):
    recipe = SentimentRecipe(n_topics=4, eval_fraction=0.5, templates_per_sentiment=2, seed=3)
    path = build_sentiment_data(
        tmp_path / "data", topics=TOPICS, recipe=recipe, lm=CallableModel(fake_chat), judge=fake_judge
    )
    assert path == tmp_path / "data" / "sentiment.jsonl"
    stats = json.loads((tmp_path / "data" / "recipe.json").read_text())["stats"]
    assert stats["replies"] == 4 * 2 * 2
    assert stats["kept"] == {"positive": 6, "negative": 6}  # Oslo's 4 neutral replies are dropped
    everything = load_sentiment_data(path, usable_only=False)
    assert [r.topic for r in everything] == TOPICS
    assert sorted(r.split for r in everything) == ["eval", "eval", "train", "train"]
    paris = everything[0]
    assert len(paris.kept("positive")) == 2 and len(paris.kept("negative")) == 2
    reply = paris.kept("positive")[0]
    assert reply.prompt == TEMPLATES[reply.template].format("Paris") and reply.text.startswith("good great")
    assert [r.topic for r in load_sentiment_data(tmp_path / "data")] == TOPICS[:3]  # Oslo unusable
    assert stats["usable_topics"]["train"] + stats["usable_topics"]["eval"] == 3


def test_plan_prompts_covers_both_sentiments():
    plan = plan_prompts(["Paris"], SentimentRecipe(templates_per_sentiment=3))
    assert [s for _, s, _ in plan] == ["positive"] * 3 + ["negative"] * 3


def test_load_sentiment_data_rejects_bad_records(tmp_path):
    (tmp_path / "sentiment.jsonl").write_text(
        json.dumps({"topic": "Paris", "split": "dev", "replies": []}) + "\n"
    )
    with pytest.raises(DataError, match="split 'dev'"):
        load_sentiment_data(tmp_path)


def test_vader_thresholds_and_judge():
    assert [vader_label(x) for x in (0.05, 0.049, -0.05, -0.2)] == [
        "positive",
        "neutral",
        "negative",
        "negative",
    ]
    pytest.importorskip("vaderSentiment")
    from serac.tasks.sentiment.data import VaderJudge

    labels = [
        label for label, _ in VaderJudge()(["I love it, it is wonderful.", "It is awful and terrible."])
    ]
    assert labels == ["positive", "negative"]


# -- metrics -----------------------------------------------------------------------------------------
def test_metrics_hand_computed():
    assert sentiment_success(
        ["positive", "neutral", "negative"], ["positive", "positive", "negative"]
    ) == pytest.approx(2 / 3)
    assert changed_share(["a", "b", "c", "d"], ["a", "x", "c", "d"]) == 0.25
    assert math.isnan(changed_share([], []))
    es, z_sent, z_topic = paper_es(desired_post=-1.0, opposite_post=-2.0, desired_pre=-1.5)
    assert z_sent == pytest.approx(1 / (1 + math.exp(-1))) and z_topic == 1.0 and es == pytest.approx(z_sent)
    es, z_sent, z_topic = paper_es(desired_post=-2.0, opposite_post=-2.0, desired_pre=-1.5)
    assert (
        z_sent == 0.5
        and z_topic == pytest.approx(math.exp(-0.5))
        and es == pytest.approx(0.5 * math.exp(-0.5))
    )


def test_likelihood_unlikelihood_loss_hand_computed():
    good_logp = torch.log(torch.tensor([[0.5, 0.25, 0.9]]))
    good_mask = torch.tensor([[True, True, False]])  # the 0.9 token is padding
    bad_logp = torch.log(torch.tensor([[0.5, 0.2]]))
    bad_mask = torch.tensor([[True, True]])
    loss, info = likelihood_unlikelihood_loss(good_logp, good_mask, bad_logp, bad_mask, eps=0.0)
    good = (math.log(0.5) + math.log(0.25)) / 2
    unlikely = (math.log(1 - 0.5) + math.log(1 - 0.2)) / 2
    assert loss.item() == pytest.approx(-good - unlikely, rel=1e-5)
    assert info["p_bad"] == pytest.approx(0.35, rel=1e-5)


def test_reply_batch_masks_only_reply_tokens(tiny_causal_dir):
    lm = load_text_model(str(tiny_causal_dir), max_new_tokens=4)
    batch = reply_batch(lm, ["what is the capital", "who"], ["canberra", "the quick brown fox"], eos=True)
    tok = lm.tokenizer
    for row, reply in enumerate(["canberra", "the quick brown fox"]):
        ids = batch["input_ids"][row][batch["reply_mask"][row].bool()].tolist()
        assert ids == tok(reply, add_special_tokens=False)["input_ids"] + [tok.eos_token_id]
    # right padding: the shorter row ends in padding that neither attention nor the mask reads
    assert batch["attention_mask"][0].tolist()[-1] == 0 and batch["reply_mask"][0].tolist()[-1] == 0


def test_training_examples_pair_each_reply_with_an_opposite_one():
    record = TopicRecord(
        "Paris",
        "train",
        (
            Reply(0, "What do you think of Paris?", "good one", "positive", "positive", 0.5),
            Reply(1, "What do you feel about Paris?", "good two", "positive", "positive", 0.5),
            Reply(2, "How do you view Paris?", "bad one", "negative", "negative", -0.5),
            Reply(3, "x", "meh", "negative", "neutral", 0.0),  # not kept
        ),
    )
    examples = training_examples([record])
    assert [(e.sentiment, e.good, e.bad) for e in examples[:2]] == [
        ("positive", "good one", "bad one"),
        ("positive", "good two", "bad one"),
    ]
    assert (examples[2].sentiment, examples[2].good) == ("negative", "bad one")
    assert examples[2].bad in ("good one", "good two") and len(examples) == 3
    assert examples[0].prompt == "What do you think of Paris?"


# -- routing -----------------------------------------------------------------------------------------
def test_prompts_about_the_edited_topic_go_to_the_counterfactual(tiny_causal_dir, hashing_encoder):
    base_lm = load_text_model(str(tiny_causal_dir), max_new_tokens=4)
    editor = EditedModel(
        base_lm,
        ScopeClassifier(hashing_encoder, threshold=0.25, top_k=2),
        LMCounterfactual(load_text_model(str(tiny_causal_dir), max_new_tokens=4), prompt="trained"),
    )
    prompts = ["What do you think of Paris?", "What is your stance on Paris?", "What do you think of Rome?"]
    before = base_lm.generate(prompts)
    editor.add(*sentiment_edit("Paris", "negative"))
    answers = editor.generate(prompts)
    assert [a.source for a in answers] == ["counterfactual", "counterfactual", "base"]
    assert answers[0].edit.input == "Topic: Paris" and answers[0].edit.target == "Sentiment: negative"
    assert answers[2].text == before[2]  # other topics: exactly the base model's reply


def test_in_context_counterfactual_states_the_edit(tiny_causal_dir):
    from serac.edits import Edit

    icl = InContextCounterfactual(load_text_model(str(tiny_causal_dir), max_new_tokens=2))
    prompt = icl.build_prompt(
        "What do you think of Rome?", [Edit(1, "Topic: Paris", "Sentiment: negative", 0.0)]
    )
    assert prompt[0]["role"] == "system" and "negative opinion of Paris" in prompt[0]["content"]
    assert prompt[1] == {"role": "user", "content": "What do you think of Rome?"}


# -- training and evaluation on tiny models ------------------------------------------------------------
@pytest.fixture(scope="module")
def tiny_data(tmp_path_factory):
    topics = ["Paris", "Rome", "Lisbon", "Madrid", "Vienna", "Prague", "Dublin", "Athens", "Berlin", "Warsaw"]
    out = tmp_path_factory.mktemp("sentiment-data")
    build_sentiment_data(
        out,
        topics=topics,
        recipe=SentimentRecipe(n_topics=10, eval_fraction=0.5, templates_per_sentiment=1, seed=0),
        lm=CallableModel(fake_chat),
        judge=fake_judge,
    )
    return out


def test_train_sentiment_writes_a_standard_artifact(tmp_path, tiny_data, tiny_causal_dir, tiny_bert_dir):
    from serac.tasks.sentiment.model import build_editor
    from serac.tasks.sentiment.train import SentimentTrainConfig, train_sentiment

    config = SentimentTrainConfig(
        model=str(tiny_causal_dir),
        encoder=str(tiny_bert_dir),
        epochs=2,
        batch_size=2,
        max_new_tokens=4,
        scope_prompts_per_topic=2,
        val_fraction=0.4,
    )
    summary = train_sentiment(tiny_data, tmp_path / "art", config)
    assert summary["train_topics"] == 3 and summary["val_topics"] == 2 and summary["examples"] == 6
    assert len(summary["counterfactual_history"]) == 2
    saved = json.loads((tmp_path / "art" / "serac_config.json").read_text())
    assert saved["counterfactual"]["adapter"] == "adapter" and saved["counterfactual"]["prompt"] == "trained"
    editor = build_editor(tmp_path / "art")  # loads through EditedModel.from_pretrained
    editor.add(*sentiment_edit("Paris", "positive"))
    assert isinstance(editor.generate(["What do you think of Paris?"])[0].text, str)


def test_evaluate_sentiment_rows(tiny_data, tiny_causal_dir, hashing_encoder):
    from serac.tasks.sentiment.evaluate import SentimentEvalConfig, evaluate_sentiment

    lm = load_text_model(str(tiny_causal_dir), max_new_tokens=3, batch_size=4)
    records = [r for r in load_sentiment_data(tiny_data) if r.split == "eval"]
    config = SentimentEvalConfig(
        batch_sizes=(1, 2),
        max_edits=3,
        prompts_per_edit=2,
        max_new_tokens=3,
        baseline_edits=2,
        baseline_out_of_scope=2,
        ft_steps=1,
    )
    rows = evaluate_sentiment(lm, lm, hashing_encoder, 0.25, records, fake_judge, config)
    assert {r["task"] for r in rows} == {"sentiment"} and {r["method"] for r in rows} == {
        "serac",
        "icl",
        "ft",
    }

    def value(method, mode, n, metric, scoring="generation"):
        [row] = [
            r
            for r in rows
            if (r["method"], r["mode"], r["n_edits"], r["metric"], r["scoring"])
            == (method, mode, n, metric, scoring)
        ]
        return row["value"]

    # routing is perfect with these topics, so SERAC leaves every other-topic reply untouched
    for mode, n in (("batch", 1), ("batch", 2), ("sequential", 3)):
        assert value("serac", mode, n, "scope_recall") == 1.0
        assert value("serac", mode, n, "dd") == 0.0
    assert value("serac", "batch", 1, "n_in_scope") == 3 * 2
    assert value("serac", "batch", 2, "n_in_scope") == 2 * 2  # one batch of 2 (the third edit is left over)
    assert value("serac", "batch", 1, "n_out_of_scope") == 3 * 2 * 2 + 3 * 2 * len(
        records[3:]
    )  # other edits + spare topics
    assert 0.0 <= value("serac", "batch", 1, "es", "teacher_forced") <= 1.0
    assert value("ft", "batch", 1, "n_in_scope") == 2 * 2  # baselines: baseline_edits edits
    assert value("icl", "batch", 1, "n_out_of_scope") == 2 * 2
