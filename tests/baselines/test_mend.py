"""MEND on the tiny random Llama of tests/conftest.py: where it edits, the split forward pass, the
editor's identity start, one training step, the artifact round trip, and the evaluation method's
batch / sequential / reset behaviour."""

from __future__ import annotations

import pytest
import torch

from serac.base import load_text_model
from serac.baselines.mend.config import MendConfig
from serac.baselines.mend.edit import edit_factors, encode, gradient_pieces, target_nll, weight_updates
from serac.baselines.mend.editor import MendEditor, load_editor, save_editor
from serac.baselines.mend.method import MendMethod
from serac.baselines.mend.model import SplitLM, find_targets
from serac.baselines.mend.train import MendObjective, Record, build, make_optimizer, train_mend
from serac.errors import ConfigError, ModelNotAvailableError
from serac.eval.methods import EvalModels, MethodOptions, MethodUnavailableError, build_method

EDITS = [("who is the prime minister of the united kingdom", "keir starmer"),
         ("what is the capital of australia", "canberra"),
         ("which company makes the iphone", "apple")]
RECORDS = [
    Record("who is the prime minister of the united kingdom", "keir starmer", "who is the uk prime minister",
           "what is the capital of australia", "canberra"),
    Record("which company makes the iphone", "samsung", "the iphone is made by which company",
           "who is the prime minister", "keir"),
]


@pytest.fixture
def lm(tiny_causal_dir):
    return load_text_model(str(tiny_causal_dir), max_new_tokens=4)


@pytest.fixture
def models(lm, hashing_encoder):
    return EvalModels(lm, encoder=hashing_encoder, max_new_tokens=4)


def editor_for(lm, num_layers: int = 1, **changes) -> tuple[MendConfig, SplitLM, MendEditor]:
    torch.manual_seed(0)
    return build(MendConfig(num_layers=num_layers, **changes), lm)


def base_logits(model, batch) -> torch.Tensor:
    with torch.no_grad():
        return model(input_ids=batch.ids, attention_mask=batch.mask).logits


# -- where it edits ------------------------------------------------------------------------------
def test_targets_are_the_mlp_matrices_of_the_last_blocks(lm):
    assert find_targets(lm.model, 1) == ["model.layers.1.mlp.gate_proj", "model.layers.1.mlp.up_proj",
                                         "model.layers.1.mlp.down_proj"]
    assert len(find_targets(lm.model, 2)) == 6
    with pytest.raises(ModelNotAvailableError, match="num_layers is 3 but the model has 2 blocks"):
        find_targets(lm.model, 3)


def test_an_editor_for_another_model_is_refused(lm):
    with pytest.raises(ModelNotAvailableError, match="trained for another base model"):
        SplitLM(lm.model, ["model.layers.7.mlp.up_proj"])


@pytest.mark.parametrize("num_layers", [1, 2])
def test_split_forward_matches_the_whole_model(lm, num_layers):
    _, split, _ = editor_for(lm, num_layers)
    batch = encode(lm, EDITS)
    final = split.top(split.bottom(batch.ids, batch.mask), batch.mask)
    rows, cols = torch.nonzero(batch.mask, as_tuple=True)
    torch.testing.assert_close(split.logits(final, rows, cols), base_logits(lm.model, batch)[rows, cols],
                               rtol=1e-5, atol=1e-5)
    assert split.blocks is split.owner.layers  # the full block list is back in place


# -- the editor -----------------------------------------------------------------------------------
def test_zero_editor_leaves_the_model_unchanged(models, lm):
    _, split, editor = editor_for(lm)
    with torch.no_grad():
        for p in editor.parameters():
            p.zero_()
    method = MendMethod(models, editor, list(split.modules))
    before = {k: v.clone() for k, v in method.model.state_dict().items()}
    method.apply(EDITS)
    after = method.model.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)
    batch = encode(lm, EDITS)
    assert torch.equal(base_logits(method.model, batch), base_logits(lm.model, batch))


def test_untrained_editor_makes_a_plain_gradient_step(lm):
    """U starts at zero, so the first edit is -alpha times the true gradient of the edit loss."""
    _, split, editor = editor_for(lm)
    batch = encode(lm, EDITS)
    pieces, _ = gradient_pieces(split, split.bottom(batch.ids, batch.mask), batch)
    updates = weight_updates(edit_factors(editor, pieces))
    weights = [m.weight for m in split.modules.values()]
    for w in weights:
        w.requires_grad_(True)
    loss = target_nll(split, split.top(split.bottom(batch.ids, batch.mask), batch.mask), batch).sum()
    grads = torch.autograd.grad(loss, weights)
    for (name, update), grad in zip(updates.items(), grads):
        assert update.shape == grad.shape
        assert float(grad.abs().max()) > 0
        torch.testing.assert_close(update, -editor.step_size(name).detach() * grad, rtol=1e-4, atol=1e-7)


def test_one_training_step_reduces_the_edit_loss(lm):
    config, split, editor = editor_for(lm, alpha_init=0.5, lr=1e-2, alpha_lr=1e-2)
    objective = MendObjective(lm, split, editor, c_loc=1.0)
    optimizer = make_optimizer(editor, config)
    first = objective(RECORDS, learn_stats=True)
    optimizer.zero_grad()
    first["loss"].backward()
    optimizer.step()
    with torch.no_grad():
        second = objective(RECORDS)
    assert torch.equal(first["before"], second["before"])  # the same unedited model and batch
    assert float(second["edit_loss"]) < float(first["edit_loss"].detach()) - 1e-3
    assert float(second["edit_loss"]) < float(second["before"])  # the edit still helps


def test_running_statistics_match_the_data():
    editor = MendEditor({"m": (3, 2)}, rank=4, alpha_init=0.1)
    z = torch.randn(50, 5, generator=torch.Generator().manual_seed(0))
    editor.update_stats("m", z[:20])
    editor.update_stats("m", z[20:])
    mean, std = editor._stats("m")
    torch.testing.assert_close(mean, z.mean(0), rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(std, z.std(0), rtol=1e-5, atol=1e-6)


# -- the artifact ---------------------------------------------------------------------------------
def test_save_load_round_trip(tmp_path, lm, models):
    config, split, editor = editor_for(lm)
    with torch.no_grad():
        for p in editor.parameters():
            p.add_(0.01 * torch.randn_like(p))
    editor.update_stats(next(iter(editor.shapes)), torch.randn(7, sum(next(iter(editor.shapes.values())))))
    save_editor(tmp_path, editor, config)
    loaded, loaded_config = load_editor(tmp_path)
    assert loaded_config == config and loaded_config.targets == list(split.modules)
    assert editor.state_dict().keys() == loaded.state_dict().keys()
    assert all(torch.equal(v, loaded.state_dict()[k]) for k, v in editor.state_dict().items())
    a, b = MendMethod(models, editor, config.targets), MendMethod(models, loaded, loaded_config.targets)
    a.apply(EDITS[:1])
    b.apply(EDITS[:1])
    assert all(torch.equal(x, y) for x, y in zip(a.model.state_dict().values(), b.model.state_dict().values()))


def test_load_refuses_a_directory_without_an_editor(tmp_path):
    with pytest.raises(ModelNotAvailableError, match="serac train --method mend"):
        load_editor(tmp_path)


def test_training_writes_a_loadable_artifact_and_refuses_to_overwrite(tmp_path, lm):
    from tests.train.conftest import write_counterfact, write_zsre

    config = MendConfig(num_layers=1, steps=3, checkpoint_every=2, edits_per_step=2,
                        zsre_train=str(write_zsre(tmp_path / "z.json")),
                        counterfact_train=str(write_counterfact(tmp_path / "c.json")))
    report = train_mend(config, tmp_path / "out", progress=False, lm=lm)
    assert [c["step"] for c in report["curve"]] == [1, 2, 3]
    assert report["held_out_records"] == 20
    editor, saved = load_editor(tmp_path / "out")
    assert saved.steps == 3 and saved.targets == find_targets(lm.model, 1)
    assert not (tmp_path / "out" / "checkpoints").exists()
    with pytest.raises(ConfigError, match="--overwrite"):
        train_mend(config, tmp_path / "out", progress=False, lm=lm)


def test_config_refuses_an_evaluation_file():
    with pytest.raises(ConfigError, match="evaluation file"):
        MendConfig(zsre_train="/data/zsre_mend_eval_portability_gpt4.json")


# -- the evaluation method ------------------------------------------------------------------------
@pytest.fixture
def method(models, lm):
    _, split, editor = editor_for(lm, alpha_init=0.5)
    return MendMethod(models, editor, list(split.modules))


def test_reset_restores_the_weights_exactly(method, lm):
    original = {k: v.clone() for k, v in method.model.state_dict().items()}
    answers = method.predict([e[0] for e in EDITS])
    method.apply(EDITS)
    method.apply(EDITS[:1])
    assert any(not torch.equal(original[k], v) for k, v in method.model.state_dict().items())
    method.reset()
    assert all(torch.equal(original[k], v) for k, v in method.model.state_dict().items())
    assert method.predict([e[0] for e in EDITS]) == answers
    assert all(torch.equal(p, q) for p, q in zip(lm.model.parameters(), method.model.parameters()))


def test_batch_and_sequential_application(method):
    weights = {n: m.weight for n, m in method.split.modules.items()}
    original = {n: w.clone() for n, w in weights.items()}
    method.apply([])  # nothing to do
    assert all(torch.equal(original[n], w) for n, w in weights.items())
    method.apply(EDITS)  # one update from three edits of different lengths
    batched = {n: w.clone() for n, w in weights.items()}
    assert all(w.shape == original[n].shape and torch.isfinite(w).all() for n, w in weights.items())
    method.reset()
    for edit in EDITS:  # three updates, each computed on the weights the previous one left
        before = {n: w.clone() for n, w in weights.items()}
        method.apply([edit])
        assert any(not torch.equal(before[n], w) for n, w in weights.items())
    assert method.edits_applied == 3
    assert any(not torch.allclose(batched[n], w) for n, w in weights.items())


def test_registry_explains_a_missing_artifact(models, tmp_path):
    with pytest.raises(MethodUnavailableError, match="serac train --method mend"):
        build_method("mend", models, MethodOptions(mend_artifact=str(tmp_path / "none")))


def test_registry_loads_a_saved_editor(models, lm, tmp_path):
    config, _, editor = editor_for(lm)
    save_editor(tmp_path, editor, config)
    method = build_method("mend", models, MethodOptions(mend_artifact=str(tmp_path)))
    assert method.name == "mend"
    assert len(method.predict(["who is the prime minister"])) == 1


def test_an_interrupted_training_resumes_to_the_same_editor(tmp_path, lm, monkeypatch):
    from tests.train.conftest import write_counterfact, write_zsre

    config = MendConfig(num_layers=1, steps=4, checkpoint_every=2, edits_per_step=2,
                        zsre_train=str(write_zsre(tmp_path / "z.json")),
                        counterfact_train=str(write_counterfact(tmp_path / "c.json")))
    train_mend(config, tmp_path / "whole", progress=False, lm=lm)
    whole, _ = load_editor(tmp_path / "whole")

    real_call = MendObjective.__call__
    calls = {"n": 0}

    def crash_in_step_three(self, records, learn_stats=False):
        if learn_stats:
            calls["n"] += 1
            if calls["n"] == 3:
                raise KeyboardInterrupt
        return real_call(self, records, learn_stats)

    monkeypatch.setattr(MendObjective, "__call__", crash_in_step_three)
    with pytest.raises(KeyboardInterrupt):
        train_mend(config, tmp_path / "cut", progress=False, lm=lm)
    assert (tmp_path / "cut" / "checkpoints" / "mend.pt").exists()
    monkeypatch.setattr(MendObjective, "__call__", real_call)
    report = train_mend(None, tmp_path / "cut", resume=True, progress=False, lm=lm)
    assert report["resumed_at"] == 2 and [c["step"] for c in report["curve"]] == [1, 2, 3, 4]
    resumed, _ = load_editor(tmp_path / "cut")
    assert all(torch.equal(v, resumed.state_dict()[k]) for k, v in whole.state_dict().items())
