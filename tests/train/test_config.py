import json

import pytest

from serac.errors import ConfigError
from serac.train.config import CounterfactualTrainConfig, DataConfig, ScopeTrainConfig, TrainConfig


def test_json_round_trip(tmp_path):
    config = TrainConfig.quick(zsre_train="a.json")
    config.counterfactual.method = "full"
    config.seed = 7
    config.save(tmp_path / "c.json")
    loaded = TrainConfig.load(tmp_path / "c.json")
    assert loaded == config
    assert loaded.to_dict()["format_version"] == 1


def test_unknown_keys_are_dropped_with_a_warning(caplog):
    data = TrainConfig().to_dict()
    data["scope"]["no_such_option"] = 1
    data["extra_section"] = {}
    with caplog.at_level("WARNING"):
        loaded = TrainConfig.from_dict(data)
    assert loaded == TrainConfig()
    assert "no_such_option" in caplog.text and "extra_section" in caplog.text


@pytest.mark.parametrize(
    "build, match",
    [
        (lambda: CounterfactualTrainConfig(method="qlora"), "method is 'qlora'; valid values: lora, full"),
        (lambda: CounterfactualTrainConfig(kind="encoder"), "kind is 'encoder'"),
        (lambda: CounterfactualTrainConfig(steps=0), "counterfactual.steps must be a positive integer"),
        (lambda: ScopeTrainConfig(batch_records=1), "batch_records must be an integer >= 2"),
        (lambda: ScopeTrainConfig(neighbour_share=1.5), r"neighbour_share must be a number in \[0, 1\]"),
        (lambda: DataConfig(counterfact_train="/x/counterfact-edit.json"), "an evaluation file"),
        (lambda: DataConfig(zsre_train="zsre_mend_eval_portability_gpt4.json"), "an evaluation file"),
        (lambda: TrainConfig.from_dict({"format_version": 9}), "format_version 9 is not supported"),
        (lambda: TrainConfig.from_dict({"scope": [1]}), "section 'scope' must be an object"),
    ],
)
def test_invalid_values_raise_with_the_valid_choices(build, match):
    with pytest.raises(ConfigError, match=match):
        build()


def test_no_data_is_reported():
    with pytest.raises(ConfigError, match="no training data"):
        DataConfig().check_has_data()


def test_lr_defaults_depend_on_method():
    assert CounterfactualTrainConfig().learning_rate == 2e-4
    assert CounterfactualTrainConfig(method="full").learning_rate == 2e-5
    assert CounterfactualTrainConfig(lr=1e-3).learning_rate == 1e-3


def test_bad_json_file(tmp_path):
    path = tmp_path / "c.json"
    path.write_text("{nope")
    with pytest.raises(ConfigError, match="not valid JSON"):
        TrainConfig.load(path)
    assert json.loads(json.dumps(TrainConfig().to_dict()))  # plain JSON types only
