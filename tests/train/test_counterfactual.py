import numpy as np
import pytest
import torch

from serac.base import load_text_model
from serac.config import CounterfactualConfig
from serac.counterfactual import LMCounterfactual, format_edit_prompt
from serac.data import load_counterfact, load_zsre
from serac.edits import Edit
from serac.train import counterfactual as cf_module
from serac.train.checkpoint import step_rng
from serac.train.config import CounterfactualTrainConfig
from serac.train.counterfactual import (
    CounterfactualExample,
    ExampleEncoder,
    GenerationCase,
    evaluate_generation,
    load_trainable_lm,
    normalize_answer,
    sample_example,
    save_counterfactual,
    train_counterfactual,
)
from serac.train.pairs import mine_neighbours, records_from_examples
from tests.conftest import HashingEncoder


class Interrupted(Exception):
    pass


@pytest.fixture
def material(data_files):
    records = records_from_examples(load_zsre(data_files["zsre"], skip_malformed=True), "zsre")
    records += records_from_examples(load_counterfact(data_files["counterfact"]), "counterfact")
    return records, mine_neighbours(records, HashingEncoder().encode, k=4)


def _config(model, **changes):
    values = dict(model=str(model), steps=25, batch_size=4, lr=1e-2, num_edits=3, checkpoint_every=5, warmup=0.0)
    values.update(changes)
    return CounterfactualTrainConfig(**values)


def test_examples_hold_the_right_edit_and_other_facts(material):
    records, neighbours = material
    config = CounterfactualTrainConfig(num_edits=3, single_edit_share=0.0, conflict_share=0.0)
    sizes = set()
    for step in range(20):
        example = sample_example(records, neighbours, 0, config, step_rng(0, step))
        assert (records[0].key, records[0].target) in example.edits
        assert example.target == records[0].target
        assert example.query in records[0].queries
        others = [e for e in example.edits if e != (records[0].key, records[0].target)]
        assert all(records[[r.key for r in records].index(k)].group != records[0].group for k, _ in others)
        sizes.add(len(example.edits))
    assert sizes == {2, 3}
    positions = {sample_example(records, neighbours, 0, config, step_rng(1, s)).edits.index(
        (records[0].key, records[0].target)) for s in range(30)}
    assert len(positions) > 1  # the right edit is not always in the same place


def test_conflicting_older_edits_come_first_and_lose(material):
    records, neighbours = material
    config = CounterfactualTrainConfig(num_edits=3, single_edit_share=0.0, conflict_share=1.0)
    record = records[0]
    for step in range(20):
        example = sample_example(records, neighbours, 0, config, step_rng(0, step))
        same_fact = [i for i, (text, _) in enumerate(example.edits) if text in record.queries]
        assert len(same_fact) == 2 and 2 <= len(example.edits) <= 3
        older, newest = (example.edits[i] for i in same_fact)
        assert newest[1] == example.target == record.target and older[1] != record.target
        assert older[0] != newest[0]  # another phrasing: an identical input would replace the edit in the store


def test_training_prompt_is_the_inference_prompt(tiny_causal_dir):
    lm = load_text_model(str(tiny_causal_dir))
    example = CounterfactualExample("who coaches the bulls ?", (("a ?", "x"), ("b ?", "y")), "y")
    encoder = ExampleEncoder(lm)
    # the editor hands candidates best first; build_prompt lists them oldest (lowest id) first
    edits = [Edit(7, "b ?", "y", 0.0), Edit(3, "a ?", "x", 0.0)]
    inference = LMCounterfactual(lm, prompt="trained", num_edits=3).build_prompt(example.query, edits)
    assert inference == format_edit_prompt([("a ?", "x"), ("b ?", "y")], example.query)
    assert encoder.prompt_text(example) == lm.format(inference)
    ids, labels = encoder.encode(example)
    prompt_ids = lm.tokenizer(lm.format(inference), add_special_tokens=False)["input_ids"]
    assert ids[: len(prompt_ids)] == prompt_ids
    assert labels[: len(prompt_ids)] == [-100] * len(prompt_ids)
    assert labels[len(prompt_ids):] == ids[len(prompt_ids):]
    assert ids[-1] == lm.tokenizer.eos_token_id  # the model learns to stop


@pytest.mark.parametrize("kind, method", [("causal", "lora"), ("causal", "full"), ("seq2seq", "lora")])
def test_loss_goes_down(material, tiny_causal_dir, tiny_seq2seq_dir, kind, method):
    records, neighbours = material
    model_dir = tiny_causal_dir if kind == "causal" else tiny_seq2seq_dir
    config = _config(model_dir, method=method, steps=30, lr=1e-2 if method == "lora" else 3e-3)
    lm = load_trainable_lm(config)
    history = train_counterfactual(lm, records, neighbours, config, seed=0, progress=False)
    assert len(history["loss"]) == 30
    # (LoRA on the tiny random Llama can only move a little: its frozen output head is near zero)
    assert np.mean(history["loss"][-5:]) < np.mean(history["loss"][:5]) - 0.15


def test_resume_continues_exactly_from_the_checkpoint(material, tiny_causal_dir, tmp_path, monkeypatch):
    records, neighbours = material
    config = _config(tiny_causal_dir, steps=6, checkpoint_every=3)
    straight = load_trainable_lm(config)
    full = train_counterfactual(straight, records, neighbours, config, seed=0, progress=False)

    original = cf_module.save_checkpoint

    def save_then_stop(*args, **kwargs):
        original(*args, **kwargs)
        raise Interrupted

    monkeypatch.setattr(cf_module, "save_checkpoint", save_then_stop)
    checkpoint = tmp_path / "cf.pt"
    with pytest.raises(Interrupted):
        train_counterfactual(load_trainable_lm(config), records, neighbours, config, 0, checkpoint=checkpoint,
                             progress=False)
    monkeypatch.setattr(cf_module, "save_checkpoint", original)
    resumed = load_trainable_lm(config)
    history = train_counterfactual(resumed, records, neighbours, config, 0, checkpoint=checkpoint, progress=False)
    assert history["loss"] == pytest.approx(full["loss"], rel=1e-5)
    for (name, a), b in zip(straight.model.state_dict().items(), resumed.model.state_dict().values()):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6, msg=name)


@pytest.mark.parametrize("method", ["lora", "full"])
def test_saved_model_loads_with_identical_scores(material, tiny_causal_dir, tmp_path, method):
    records, neighbours = material
    config = _config(tiny_causal_dir, steps=4, method=method)
    lm = load_trainable_lm(config)
    train_counterfactual(lm, records, neighbours, config, seed=0, progress=False)
    save_counterfactual(lm, tmp_path / "cf")
    if method == "lora":
        assert (tmp_path / "cf" / "adapter_config.json").exists()
        loaded = LMCounterfactual.from_config(CounterfactualConfig(model=str(tiny_causal_dir), adapter=str(tmp_path / "cf"),
                                                                   prompt="trained", num_edits=3))
    else:
        assert (tmp_path / "cf" / "config.json").exists()
        loaded = LMCounterfactual.from_config(CounterfactualConfig(model=str(tmp_path / "cf"), prompt="trained",
                                                                   num_edits=3))
    trained = LMCounterfactual(lm, prompt="trained", num_edits=3)
    edits = [[Edit(1, r.key, r.target, 0.0)] for r in records[:4]]
    queries = [r.positives[0] for r in records[:4]]
    targets = [r.target for r in records[:4]]
    assert loaded.teacher_forced(queries, edits, targets) == trained.teacher_forced(queries, edits, targets)
    assert loaded.generate(queries, edits) == trained.generate(queries, edits)


def test_evaluate_generation_counts_normalised_exact_matches(tiny_causal_dir):
    lm = load_text_model(str(tiny_causal_dir), max_new_tokens=3)
    cases = [GenerationCase("q ?", (Edit(1, "q ?", "x", 0.0),), ("x",)),
             GenerationCase("r ?", (Edit(2, "r ?", "y", 0.0), Edit(1, "r", "z", 0.0)), ("y",))]
    result = evaluate_generation(lm, cases, num_edits=2)
    assert result["examples"] == 2 and 0.0 <= result["exact_match"] <= 1.0
    assert evaluate_generation(lm, [], 2) == {"examples": 0}
    assert normalize_answer("The  Eiffel-Tower.") == "eiffeltower"
    assert normalize_answer("An Apple") == "apple"
