"""SeracConfig: JSON round trip and validation messages that say what is valid."""

from __future__ import annotations

import json
import logging

import pytest

from serac.config import (
    FORMAT_VERSION,
    BaseModelConfig,
    CounterfactualConfig,
    ScopeConfig,
    SeracConfig,
)
from serac.errors import ConfigError


def test_defaults():
    config = SeracConfig()
    assert config.base.model == config.counterfactual.model == "embedded:smollm2-135m-instruct"
    assert config.scope.encoder == "embedded:all-minilm-l6-v2"
    assert config.base.batch_size is None  # 1 on a CPU (exact parity), larger on a GPU: see load_base_model
    assert config.format_version == FORMAT_VERSION


def test_json_round_trip(tmp_path):
    config = SeracConfig(
        base=BaseModelConfig(model="/models/base", kind="causal", chat_template=False, system_prompt="brief",
                             max_new_tokens=64, batch_size=4),
        scope=ScopeConfig(encoder="/models/enc", threshold=0.65, top_k=3, cross_encoder="/models/ce",
                          cross_encoder_threshold=0.2, conflicts="best"),
        counterfactual=CounterfactualConfig(model="/models/cf", adapter="adapter", kind="seq2seq",
                                            prompt="trained", num_edits=2, max_new_tokens=16, batch_size=2),
    )
    path = tmp_path / "serac_config.json"
    config.save(path)
    assert json.loads(path.read_text())["scope"]["threshold"] == 0.65
    loaded = SeracConfig.load(path)
    assert loaded == config
    assert SeracConfig.from_dict(config.to_dict()) == config


def test_missing_sections_take_defaults():
    config = SeracConfig.from_dict({"scope": {"threshold": 0.5}})
    assert config.scope.threshold == 0.5
    assert config.base == BaseModelConfig() and config.counterfactual == CounterfactualConfig()


@pytest.mark.parametrize(
    "data, message",
    [
        ({"base": {"kind": "decoder"}}, r"base.kind is 'decoder'; valid values: auto, causal, seq2seq"),
        ({"counterfactual": {"kind": "x"}}, r"counterfactual.kind is 'x'; valid values: auto, causal, seq2seq"),
        ({"counterfactual": {"prompt": "zero-shot"}}, r"counterfactual.prompt is 'zero-shot'; valid values: 'few-shot'"),
        ({"scope": {"threshold": 1.5}}, r"scope.threshold is a cosine similarity in \[-1, 1\], got 1.5"),
        ({"scope": {"threshold": "high"}}, r"scope.threshold is a cosine similarity in \[-1, 1\], got 'high'"),
        ({"scope": {"threshold": float("nan")}}, r"scope.threshold"),
        ({"scope": {"conflicts": "oldest"}}, r"scope.conflicts is .oldest.; valid values: newest, best"),
        ({"base": {"device": "gpu"}}, r"base.device is .gpu.; valid values: auto"),
        ({"counterfactual": {"device": "cuda:x"}}, r"counterfactual.device is"),
        ({"scope": {"device": 0}}, r"scope.device is 0"),
        ({"scope": {"top_k": 0}}, r"scope.top_k must be a positive integer, got 0"),
        ({"base": {"batch_size": True}}, r"base.batch_size must be a positive integer \(or None\), got True"),
        ({"base": {"max_new_tokens": 2.5}}, r"base.max_new_tokens must be a positive integer, got 2.5"),
        ({"counterfactual": {"num_edits": -1}}, r"counterfactual.num_edits must be a positive integer"),
        ({"base": "causal"}, r"config section 'base' must be an object"),
        (["not", "an", "object"], r"a serac config is a JSON object, got list"),
    ],
)
def test_validation_errors(data, message):
    with pytest.raises(ConfigError, match=message):
        SeracConfig.from_dict(data)


def test_validation_in_constructors():
    with pytest.raises(ConfigError, match="valid values: auto, causal, seq2seq"):
        BaseModelConfig(kind="gpt")
    with pytest.raises(ValueError):  # ConfigError is a ValueError
        ScopeConfig(top_k=-3)


def test_unknown_keys_warned_and_dropped(caplog):
    data = SeracConfig().to_dict()
    data["base"]["temprature"] = 0.7
    data["scope"]["treshold"] = 0.1
    data["retriever"] = {"k": 3}
    with caplog.at_level(logging.WARNING, logger="serac.config"):
        config = SeracConfig.from_dict(data)
    assert config == SeracConfig()
    messages = " | ".join(r.getMessage() for r in caplog.records)
    assert "unknown base config keys: temprature" in messages
    assert "unknown scope config keys: treshold" in messages
    assert "retriever" in messages
    assert "temprature" not in config.to_dict()["base"]


@pytest.mark.parametrize("version", [0, 2, "1", None])
def test_bad_format_version(version):
    with pytest.raises(ConfigError, match=rf"config format_version {version} is not supported \(this serac reads 1\)"):
        SeracConfig.from_dict({"format_version": version})


def test_load_errors(tmp_path):
    with pytest.raises(ConfigError, match="does not exist"):
        SeracConfig.load(tmp_path / "missing.json")
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    with pytest.raises(ConfigError, match="is not valid JSON"):
        SeracConfig.load(bad)
    with pytest.raises(ConfigError, match="cannot be read"):
        SeracConfig.load(tmp_path)  # a directory


def test_non_ascii_round_trip(tmp_path):
    config = SeracConfig(base=BaseModelConfig(system_prompt="Réponds en français, s'il te plaît ✓"))
    config.save(tmp_path / "c.json")
    assert SeracConfig.load(tmp_path / "c.json") == config
    (tmp_path / "latin1.json").write_bytes(b'{"base": {"system_prompt": "caf\xe9"}}')
    with pytest.raises(ConfigError, match="is not valid JSON"):
        SeracConfig.load(tmp_path / "latin1.json")


# -- one pattern for every config class (issue 10) ----------------------------------------------------
def _all_config_classes():
    from serac.eval.runner import EvalSettings
    from serac.tasks.sentiment.data import SentimentRecipe
    from serac.train import config as train_config
    from serac.train.fc import FCTrainConfig
    from serac.train.sentiment import SentimentTrainConfig

    return [BaseModelConfig, ScopeConfig, CounterfactualConfig, SeracConfig, train_config.TrainConfig,
            train_config.DataConfig, train_config.ScopeTrainConfig, train_config.CrossEncoderTrainConfig,
            train_config.CounterfactualTrainConfig, EvalSettings, FCTrainConfig, SentimentTrainConfig,
            SentimentRecipe]


@pytest.mark.parametrize("cls", _all_config_classes(), ids=lambda c: c.__name__)
def test_every_config_follows_the_pattern(cls, caplog):
    from dataclasses import fields

    from serac.config import Config, help_text

    assert issubclass(cls, Config)
    missing_help = [name for name, text in help_text(cls).items() if not text.strip()]
    assert missing_help == []
    default = cls()
    data = json.loads(json.dumps(default.to_dict()))  # through real JSON
    data["no_such_option"] = 1
    with caplog.at_level(logging.WARNING):
        again = cls.from_dict(data)
    assert "no_such_option" in caplog.text
    for f in fields(cls):  # JSON turns tuples into lists; compare values, not containers
        a, b = getattr(again, f.name), getattr(default, f.name)
        assert (list(a) if isinstance(a, tuple) else a) == (list(b) if isinstance(b, tuple) else b), f.name


def test_replace_revalidates_and_rejects_unknown_names():
    from serac.train.config import ScopeTrainConfig

    assert ScopeTrainConfig().replace(steps=5).steps == 5
    with pytest.raises(ConfigError, match="scope.steps must be a positive integer, got 0"):
        ScopeTrainConfig().replace(steps=0)
    with pytest.raises(ConfigError, match="ScopeTrainConfig has no option 'stepz'; options: .*steps"):
        ScopeTrainConfig().replace(stepz=5)


@pytest.mark.parametrize("data, message", [
    ({"base": {"dtype": "float64"}}, r"base.dtype is 'float64'; valid values: auto, float32, float16, bfloat16"),
    ({"counterfactual": {"device_map": 3}}, r"counterfactual.device_map must be None, a string"),
    ({"base": {"trust_remote_code": "yes"}}, r"base.trust_remote_code must be true or false, got 'yes'"),
    ({"scope": {"trust_remote_code": 1}}, r"scope.trust_remote_code must be true or false"),
])
def test_gpu_options_are_validated(data, message):
    with pytest.raises(ConfigError, match=message):
        SeracConfig.from_dict(data)
