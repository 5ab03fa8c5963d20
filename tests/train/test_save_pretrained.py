"""EditedModel.save_pretrained -> from_pretrained round trips on the tiny models: same answers, same
routing (source, edit, score), with and without the edit-store snapshot, and from a Hub repo id
served by huggingface_hub's cache in offline mode."""

from __future__ import annotations

import shutil

import pytest

from serac.config import SeracConfig
from serac.editor import CONFIG_FILE, STORE_FILE, EditedModel

QUERIES = ["who is the prime minister of the united kingdom", "what is the capital of australia",
           "which company makes the iphone", "the quick brown fox"]


@pytest.fixture
def adapter_dir(tiny_causal_dir, tmp_path):
    """A LoRA adapter with random (not zero) weights, so it changes the counterfactual's answers."""
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    torch.manual_seed(3)
    model = AutoModelForCausalLM.from_pretrained(tiny_causal_dir)
    peft = get_peft_model(model, LoraConfig(r=4, lora_alpha=8, target_modules="all-linear", init_lora_weights=False))
    peft.save_pretrained(tmp_path / "adapter")
    return tmp_path / "adapter"


@pytest.fixture
def editor(tiny_causal_dir, tiny_encoder_dir, adapter_dir, tmp_path):
    config = SeracConfig()
    config.base.model = config.counterfactual.model = str(tiny_causal_dir)
    config.base.max_new_tokens = config.counterfactual.max_new_tokens = 4
    config.counterfactual.adapter = str(adapter_dir)
    config.scope.encoder = str(tiny_encoder_dir)
    config.scope.threshold = 0.999  # random tiny encoder: only an edit's own input is in scope
    config.base.device = config.counterfactual.device = config.scope.device = "cpu"
    editor = EditedModel.from_config(config, store=tmp_path / "live.db")
    editor.add_many([(QUERIES[0], "keir starmer"), (QUERIES[1], "canberra")])
    editor.remove(editor.edits[0].id)
    editor.add(QUERIES[0], "rishi sunak")  # ids 1..3, one removed: the snapshot must keep ids
    return editor


def routing(editor):
    return [(a.text, a.source, a.edit_id, None if a.score is None else round(a.score, 6))
            for a in editor.generate(QUERIES)]


def test_round_trip_with_the_store_gives_identical_answers_and_routing(editor, tmp_path):
    before = routing(editor)
    assert {source for _, source, _, _ in before} == {"base", "counterfactual"}
    out = editor.save_pretrained(tmp_path / "artifact", include_store=True)
    assert sorted(p.name for p in out.iterdir()) == sorted(["counterfactual_adapter", STORE_FILE, CONFIG_FILE,
                                                            "scope_encoder"])
    editor.add(QUERIES[3], "changed later")  # the artifact holds a snapshot, not the live store
    loaded = EditedModel.from_pretrained(out)
    assert routing(loaded) == before
    assert [e.id for e in loaded.edits] == [e.id for e in editor.edits][:2]
    assert loaded.store.version == 3 == editor.store.version - 1  # the version history came along
    assert len(loaded.store.versions()) == len(editor.store.versions()) - 1


def test_round_trip_without_the_store_loads_an_empty_memory(editor, tmp_path):
    out = editor.save_pretrained(tmp_path / "artifact")
    assert not (out / STORE_FILE).exists()
    config = SeracConfig.load(out / CONFIG_FILE)
    assert config.scope.encoder == "scope_encoder" and config.counterfactual.adapter == "counterfactual_adapter"
    loaded = EditedModel.from_pretrained(out)
    assert loaded.edits == []
    # out-of-scope rows: the base model, unchanged (their best score differs: there are no edits)
    assert [r[:3] for r in routing(loaded)[2:]] == [r[:3] for r in routing(editor)[2:]]
    loaded_with_store = EditedModel.from_pretrained(out, store=editor.store)
    assert routing(loaded_with_store) == routing(editor)


def test_from_pretrained_takes_a_hub_repo_id(editor, tmp_path, monkeypatch):
    """huggingface_hub resolves the id; offline, it serves the cached snapshot (no network here)."""
    from huggingface_hub import constants

    out = editor.save_pretrained(tmp_path / "artifact", include_store=True)
    cache = tmp_path / "hub"
    commit = "0123456789abcdef0123456789abcdef01234567"
    repo = cache / "models--someorg--serac-tiny"
    shutil.copytree(out, repo / "snapshots" / commit)
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text(commit)
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(cache))
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    loaded = EditedModel.from_pretrained("someorg/serac-tiny")
    assert routing(loaded) == routing(editor)

    from serac.errors import ModelNotAvailableError

    with pytest.raises(ModelNotAvailableError, match="'someorg/missing' is not a local directory .*HF_HUB_OFFLINE"):
        EditedModel.from_pretrained("someorg/missing")


def test_save_needs_a_config(tiny_editor, tmp_path):
    from serac.errors import ConfigError

    with pytest.raises(ConfigError, match="save_pretrained needs an EditedModel built by from_config"):
        tiny_editor.save_pretrained(tmp_path / "x")


def test_scope_trust_remote_code_reaches_sentence_transformers(tiny_encoder_dir, monkeypatch):
    import sentence_transformers

    from serac.config import ScopeConfig
    from serac.scope import ScopeClassifier

    seen = []
    real = sentence_transformers.SentenceTransformer.__init__

    def spy(self, *args, **kwargs):
        seen.append(kwargs.get("trust_remote_code"))
        real(self, *args, **kwargs)

    monkeypatch.setattr(sentence_transformers.SentenceTransformer, "__init__", spy)
    # same_fact_encoder None: the scope encoder is the only model loaded
    ScopeClassifier.from_config(ScopeConfig(encoder=str(tiny_encoder_dir), device="cpu", trust_remote_code=True,
                                            same_fact_encoder=None))
    assert seen == [True]
