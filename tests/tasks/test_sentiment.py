"""Sentiment editing (serac.tasks.sentiment): the data recipe, the prompts, the judge, the training
objective and routing, on tiny models, a fake chat model and a fake judge written here. The runner's
sentiment task: tests/eval/test_tasks.py; training: tests/train/test_task_training.py."""

from __future__ import annotations

import json
import math

import pytest
import torch

from serac.base import CallableModel, load_text_model
from serac.counterfactual import LMCounterfactual
from serac.editor import EditedModel
from serac.errors import DataError, EditValidationError
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
from serac.tasks.sentiment.prompts import TEMPLATES, edit_input, edit_target
from serac.tasks.sentiment.scoring import likelihood_unlikelihood_loss, reply_batch
from serac.train.sentiment import training_examples

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
    assert (edit_input("Paris"), edit_target("negative")) == ("Topic: Paris", "Sentiment: negative")
    with pytest.raises(EditValidationError, match="valid: positive, negative"):
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
    editor.add(edit_input("Paris"), edit_target("negative"))
    answers = editor.generate(prompts)
    assert [a.source for a in answers] == ["counterfactual", "counterfactual", "base"]
    assert answers[0].edit.input == "Topic: Paris" and answers[0].edit.target == "Sentiment: negative"
    assert answers[2].text == before[2]  # other topics: exactly the base model's reply
