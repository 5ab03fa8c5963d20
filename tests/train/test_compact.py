"""Compacting a trained artifact (serac/train/compact.py) and rebuilding it (serac/deltas.py): the
low-rank forms reproduce the trained weights when the rank suffices, the rebuilt models load through
the ordinary loaders, and a compact artifact loads as an EditedModel."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
import torch
from safetensors.torch import load_file, save_file

from serac.deltas import materialize as _materialize
from serac.editor import EditedModel
from serac.errors import ConfigError
from serac.models import resolve_model
from serac.editor import load_artifact_config
from serac.scope import CrossEncoderReranker, ScopeClassifier, SentenceEncoder
from serac.train.compact import (
    _encode_deltas,
    compact_adapter,
    compact_artifact,
    compact_cross_encoder,
    compact_scope,
)


def materialize(directory):
    from serac.models import serac_home

    return _materialize(directory, serac_home() / "models", resolve_model)


@pytest.fixture()
def home(tmp_path, monkeypatch):
    monkeypatch.setenv("SERAC_HOME", str(tmp_path / "home"))
    return tmp_path / "home"


def _tuned_encoder(base, target, rank: int, seed: int = 1):
    """A copy of ``base`` whose matrices moved by a rank-``rank`` change and whose biases moved."""
    shutil.copytree(base, target)
    weights = load_file(str(target / "model.safetensors"))
    g = torch.Generator().manual_seed(seed)
    for name, value in weights.items():
        if name.endswith("attention.self.query.weight"):
            up = torch.randn(value.shape[0], rank, generator=g) * 0.3
            weights[name] = value + up @ torch.randn(rank, value.shape[1], generator=g)
        elif name.endswith("output.dense.bias"):
            weights[name] = value + 0.1
    save_file(weights, str(target / "model.safetensors"))
    return target


def test_scope_delta_rebuilds_the_trained_encoder(tiny_encoder_dir, tmp_path, home):
    tuned = _tuned_encoder(tiny_encoder_dir, tmp_path / "tuned", rank=2)
    size, kept = compact_scope(tuned, str(tiny_encoder_dir), tmp_path / "delta", rank=2)
    assert kept == pytest.approx(1.0, abs=1e-6) and size > 0
    rebuilt = materialize(tmp_path / "delta")
    assert rebuilt.parent == home / "models"
    want, got = load_file(str(tuned / "model.safetensors")), load_file(str(rebuilt / "model.safetensors"))
    for name in want:
        assert torch.allclose(want[name], got[name], atol=2e-3), name
    # the ordinary loaders see the delta directory as the model it describes
    queries = ["alpha lives in rome", "what is the capital of bravo ?"]
    a = SentenceEncoder(str(tuned), device="cpu").encode(queries)
    b = SentenceEncoder(str(tmp_path / "delta"), device="cpu").encode(queries)
    assert np.allclose(a, b, atol=1e-2)
    assert resolve_model(str(tmp_path / "delta")) == str(rebuilt)


def test_a_low_rank_too_small_loses_energy_and_the_change_is_rebuilt_once(tiny_encoder_dir, tmp_path, home):
    tuned = _tuned_encoder(tiny_encoder_dir, tmp_path / "tuned", rank=6)
    _, kept = compact_scope(tuned, str(tiny_encoder_dir), tmp_path / "delta", rank=1)
    assert kept < 0.9
    first = materialize(tmp_path / "delta")
    stamp = (first / "model.safetensors").stat().st_mtime_ns
    assert materialize(tmp_path / "delta") == first
    assert (first / "model.safetensors").stat().st_mtime_ns == stamp  # cached, not rebuilt
    compact_scope(tuned, str(tiny_encoder_dir), tmp_path / "delta", rank=4)  # a changed delta: a new build
    assert materialize(tmp_path / "delta") != first


def _lora_adapter(tiny_causal_dir, target, r: int = 4):
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(tiny_causal_dir)
    peft = get_peft_model(model, LoraConfig(r=r, lora_alpha=2 * r, target_modules=["q_proj", "down_proj"]))
    torch.manual_seed(0)
    with torch.no_grad():
        for name, p in peft.named_parameters():
            if "lora_" in name:
                p.copy_(torch.randn_like(p) * 0.2)
    peft.save_pretrained(target)
    return target


def _merged(base_dir, adapter_dir):
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    model = PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(base_dir), adapter_dir)
    return {k: v.float() for k, v in model.merge_and_unload().state_dict().items()}


def test_adapter_refactored_at_full_rank_is_the_same_update(tiny_causal_dir, tmp_path):
    adapter = _lora_adapter(tiny_causal_dir, tmp_path / "adapter", r=4)
    _, kept = compact_adapter(adapter, tmp_path / "small", rank=4)
    assert kept == pytest.approx(1.0, abs=1e-6)
    config = json.loads((tmp_path / "small" / "adapter_config.json").read_text())
    assert config["r"] == config["lora_alpha"] == 4
    want, got = _merged(tiny_causal_dir, adapter), _merged(tiny_causal_dir, tmp_path / "small")
    for name in want:
        assert torch.allclose(want[name], got[name], atol=5e-3), name
    _, kept_small = compact_adapter(adapter, tmp_path / "smaller", rank=1)
    assert kept_small < 1.0
    assert (tmp_path / "smaller" / "adapter_model.safetensors").stat().st_size < (
        tmp_path / "small" / "adapter_model.safetensors").stat().st_size


def test_compact_artifact_loads_as_an_edited_model(tiny_encoder_dir, tiny_causal_dir, tmp_path, home):
    source = tmp_path / "trained"
    source.mkdir()
    _tuned_encoder(tiny_encoder_dir, source / "scope_encoder", rank=2)
    _lora_adapter(tiny_causal_dir, source / "counterfactual_adapter")
    (source / "train_config.json").write_text(json.dumps({"scope": {"encoder": str(tiny_encoder_dir)}}))
    config = {"base": {"model": str(tiny_causal_dir), "max_new_tokens": 4},
              "scope": {"encoder": "scope_encoder", "threshold": 0.5},
              "counterfactual": {"model": str(tiny_causal_dir), "adapter": "counterfactual_adapter",
                                 "prompt": "trained", "max_new_tokens": 4}, "format_version": 1}
    (source / "serac_config.json").write_text(json.dumps(config))
    with pytest.raises(ConfigError, match="local path"):
        compact_artifact(source, tmp_path / "compact")
    report = compact_artifact(source, tmp_path / "compact", scope_rank=2, adapter_rank=2, portable=False)
    assert report.scope_energy_kept == pytest.approx(1.0, abs=1e-6)
    assert not (tmp_path / "compact.tmp").exists()
    full = EditedModel.from_pretrained(source)
    small = EditedModel.from_pretrained(tmp_path / "compact")
    for editor in (full, small):
        editor.add("what is the capital of alpha ?", "rome")
    queries = ["what is the capital of alpha ?", "bravo speaks which language ?"]
    assert [d.in_scope for d in small.route(queries)] == [d.in_scope for d in full.route(queries)]
    assert small.route(queries)[0].score == pytest.approx(full.route(queries)[0].score, abs=1e-2)

    # the command line: a clear error for a non-portable artifact, then the same compaction with --local
    from typer.testing import CliRunner

    from serac.cli import app

    refused = CliRunner().invoke(app, ["compact", str(source), str(tmp_path / "cli")])
    assert refused.exit_code != 0 and "local path" in refused.output and not (tmp_path / "cli").exists()
    done = CliRunner().invoke(app, ["compact", str(source), str(tmp_path / "cli"), "--local", "--scope-rank", "2"])
    assert done.exit_code == 0, done.output
    assert json.loads((tmp_path / "cli" / "compact_report.json").read_text())["scope_rank"] == 2


PAIRS = [("what is the capital of alpha ?", "alpha has which capital ?"),
         ("what is the capital of alpha ?", "bravo speaks which language ?"),
         ("bravo lives in rome", "where does bravo live ?")]


def _tuned_cross_encoder(base, target, rank: int = 2, seed: int = 1):
    """A CrossEncoder built from the bi-encoder ``base`` as `serac train --cross-encoder` builds one
    (a new 1-logit head), whose backbone then moved by rank-``rank`` changes and shifted biases."""
    from sentence_transformers import CrossEncoder

    torch.manual_seed(seed)
    model = CrossEncoder(str(base), num_labels=1, device="cpu")
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in model.model.named_parameters():
            if name.endswith("attention.self.query.weight") or name.endswith("word_embeddings.weight"):
                p += (torch.randn(p.shape[0], rank, generator=g) * 0.3) @ torch.randn(rank, p.shape[1], generator=g)
            elif name.endswith("output.dense.bias") or name == "classifier.bias":
                p += 0.1
    model.save(str(target))
    return target


def test_cross_encoder_delta_rebuilds_the_trained_cross_encoder(tiny_encoder_dir, tmp_path, home):
    from sentence_transformers import CrossEncoder

    tuned = _tuned_cross_encoder(tiny_encoder_dir, tmp_path / "ce")
    size, kept = compact_cross_encoder(tuned, str(tiny_encoder_dir), tmp_path / "delta", rank=2)
    assert kept == pytest.approx(1.0, abs=1e-6) and size > 0
    spec = json.loads((tmp_path / "delta" / "serac_delta.json").read_text())
    assert spec["prefix"] == "bert." and "classifier.weight::new" in load_file(str(tmp_path / "delta" / "delta.safetensors"))
    rebuilt = materialize(tmp_path / "delta")
    # only the cross-encoder's own files: the bi-encoder's pooling and normalisation must not survive
    assert not (rebuilt / "1_Pooling").exists() and not (rebuilt / "2_Normalize").exists()
    want, got = load_file(str(tuned / "model.safetensors")), load_file(str(rebuilt / "model.safetensors"))
    assert set(got) == set(want)
    for name in want:
        assert torch.allclose(want[name].float(), got[name].float(), atol=2e-3), name
    full = CrossEncoder(str(tuned), device="cpu").predict(PAIRS, convert_to_numpy=True)
    small = CrossEncoder(resolve_model(str(tmp_path / "delta")), device="cpu").predict(PAIRS, convert_to_numpy=True)
    assert np.abs(full - small).max() < 1e-3
    assert CrossEncoderReranker(str(tmp_path / "delta")).model.predict(PAIRS, convert_to_numpy=True) == pytest.approx(
        small, abs=1e-6)


def test_an_old_style_delta_builds_the_base_directory_plus_the_change(tiny_encoder_dir, tmp_path, home):
    tuned = _tuned_encoder(tiny_encoder_dir, tmp_path / "tuned", rank=2)
    compact_scope(tuned, str(tiny_encoder_dir), tmp_path / "delta", rank=2)
    assert set(json.loads((tmp_path / "delta" / "serac_delta.json").read_text())) == {"base", "rank"}
    rebuilt = materialize(tmp_path / "delta")
    files = {str(p.relative_to(rebuilt)) for p in rebuilt.rglob("*")}
    assert {str(p.relative_to(tiny_encoder_dir)) for p in tiny_encoder_dir.rglob("*")} <= files
    base, delta = load_file(str(tiny_encoder_dir / "model.safetensors")), load_file(str(tmp_path / "delta" / "delta.safetensors"))
    got = load_file(str(rebuilt / "model.safetensors"))
    assert set(got) == set(base)
    for name, value in base.items():
        change = (delta[f"{name}::up"].float() @ delta[f"{name}::down"].float() if f"{name}::up" in delta
                  else delta[f"{name}::full"].float() if f"{name}::full" in delta else 0)
        assert torch.equal(got[name], (value.float() + change).to(value.dtype)), name


def _artifact_with_cross_encoder(tiny_encoder_dir, tiny_causal_dir, source):
    source.mkdir()
    _tuned_encoder(tiny_encoder_dir, source / "scope_encoder", rank=2)
    _lora_adapter(tiny_causal_dir, source / "counterfactual_adapter")
    _tuned_cross_encoder(tiny_encoder_dir, source / "cross_encoder")
    (source / "train_config.json").write_text(json.dumps({"scope": {"encoder": str(tiny_encoder_dir)},
                                                          "cross_encoder": {"model": str(tiny_encoder_dir)}}))
    config = {"base": {"model": str(tiny_causal_dir), "max_new_tokens": 4},
              "scope": {"encoder": "scope_encoder", "threshold": 0.5, "cross_encoder": "cross_encoder",
                        "cross_encoder_threshold": 0.42},
              "counterfactual": {"model": str(tiny_causal_dir), "adapter": "counterfactual_adapter",
                                 "prompt": "trained", "max_new_tokens": 4}, "format_version": 1}
    (source / "serac_config.json").write_text(json.dumps(config))
    return source


def test_compact_artifact_compacts_its_cross_encoder(tiny_encoder_dir, tiny_causal_dir, tmp_path, home):
    source = _artifact_with_cross_encoder(tiny_encoder_dir, tiny_causal_dir, tmp_path / "trained")
    report = compact_artifact(source, tmp_path / "compact", scope_rank=2, adapter_rank=2, portable=False,
                              cross_encoder_rank=2)
    assert report.cross_encoder_rank == 2 and report.cross_encoder_bytes > 0
    assert report.cross_encoder_energy_kept == pytest.approx(1.0, abs=1e-6)
    saved = json.loads((tmp_path / "compact" / "serac_config.json").read_text())["scope"]
    assert saved["cross_encoder"] == "cross_encoder_delta" and saved["cross_encoder_threshold"] == 0.42
    assert (tmp_path / "compact" / "cross_encoder_delta" / "serac_delta.json").is_file()
    full = ScopeClassifier.from_config(load_artifact_config(source).scope).reranker
    small = ScopeClassifier.from_config(load_artifact_config(tmp_path / "compact").scope).reranker
    assert small is not None and small.threshold == 0.42
    assert small.model.predict(PAIRS, convert_to_numpy=True) == pytest.approx(
        full.model.predict(PAIRS, convert_to_numpy=True), abs=1e-3)

    from typer.testing import CliRunner

    from serac.cli import app

    done = CliRunner().invoke(app, ["compact", str(source), str(tmp_path / "cli"), "--local", "--cross-encoder-rank", "1"])
    assert done.exit_code == 0, done.output
    assert "cross-encoder" in done.output
    assert json.loads((tmp_path / "cli" / "compact_report.json").read_text())["cross_encoder_rank"] == 1


def test_compact_artifact_refuses_a_cross_encoder_outside_it(tiny_encoder_dir, tiny_causal_dir, tmp_path, home):
    source = _artifact_with_cross_encoder(tiny_encoder_dir, tiny_causal_dir, tmp_path / "trained")
    (source / "cross_encoder").rename(tmp_path / "elsewhere")
    config = json.loads((source / "serac_config.json").read_text())
    config["scope"]["cross_encoder"] = str(tmp_path / "elsewhere")
    (source / "serac_config.json").write_text(json.dumps(config))
    with pytest.raises(ConfigError, match="not a directory inside it"):
        compact_artifact(source, tmp_path / "compact", portable=False)
    assert not (tmp_path / "compact").exists()


def test_spread_ranks_give_the_bytes_to_the_matrix_whose_change_needs_them():
    g = torch.Generator().manual_seed(0)
    wide = torch.randn(64, 4, generator=g) @ torch.randn(4, 64, generator=g)  # rank 4, large
    small = 0.01 * torch.randn(64, 1, generator=g) @ torch.randn(1, 64, generator=g)  # rank 1, tiny
    changes = [("a", wide), ("b", small)]
    uniform, kept_uniform = _encode_deltas(changes, rank=2)
    spread, kept_spread = _encode_deltas(changes, rank=2, spread=True)
    # the tiny change's bytes buy the large change's missing ranks
    assert uniform["a::up"].shape[1] == uniform["b::up"].shape[1] == 2
    assert spread["a::up"].shape[1] == 4 and "b::up" not in spread
    assert sum(t.numel() for t in spread.values()) <= sum(t.numel() for t in uniform.values())
    assert kept_spread > 0.999 > kept_uniform
