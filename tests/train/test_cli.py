"""`serac train --task`: qa runs the pipeline; fc and sentiment run serac.train.fc / serac.train.sentiment
(stubbed here: the options and paths they receive are what is tested)."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

import serac.tasks.sentiment.data
import serac.train.fc
import serac.train.sentiment
from serac.cli import app


@pytest.fixture
def shared(tmp_path):
    (tmp_path / "shared" / "vitaminc_sample").mkdir(parents=True)
    return tmp_path / "shared"


@pytest.fixture
def calls(monkeypatch):
    seen = {}

    def fake(task):
        def train(data, out_dir, config):
            seen.update(task=task, out_dir=out_dir, data=data, config=config)
            out_dir.mkdir(parents=True, exist_ok=True)
            (out_dir / "train_summary.json").write_text(json.dumps({"seconds": 90}))
            return {"seconds": 90}
        return train

    monkeypatch.setattr(serac.train.fc, "train_fc", fake("fc"))
    monkeypatch.setattr(serac.train.sentiment, "train_sentiment", fake("sentiment"))
    return seen


def test_train_task_fc_passes_its_data_output_and_options(shared, calls, tmp_path, monkeypatch):
    monkeypatch.setenv("SERAC_HOME", str(tmp_path / "home"))
    classifier = tmp_path / "pair-classifier"
    result = CliRunner().invoke(app, ["train", "--task", "fc", "--data-dir", str(shared), "--seed", "3",
                                      "--device", "cpu", "--counterfactual", str(classifier)])
    assert result.exit_code == 0, result.output
    assert calls["task"] == "fc" and calls["out_dir"] == tmp_path / "home" / "tasks" / "fc"
    assert calls["data"] == shared / "vitaminc_sample"
    assert (calls["config"].seed, calls["config"].device, calls["config"].counterfactual) == (3, "cpu", str(classifier))
    assert "serac eval --task fc" in result.output
    # a second run refuses to overwrite the artifact unless asked
    again = CliRunner().invoke(app, ["train", "--task", "fc", "--data-dir", str(shared)])
    assert again.exit_code != 0 and "--overwrite" in again.output
    again = CliRunner().invoke(app, ["train", "--task", "fc", "--data-dir", str(shared), "--overwrite"])
    assert again.exit_code == 0, again.output


def test_train_task_fc_reads_its_config_file_and_options_override_it(shared, calls, tmp_path, monkeypatch):
    monkeypatch.setenv("SERAC_HOME", str(tmp_path / "home"))
    config = tmp_path / "fc.json"
    config.write_text(json.dumps({"scope_fm2": str(shared / "fact_checking"), "scope_steps": 150, "seed": 1}))
    result = CliRunner().invoke(app, ["train", "--task", "fc", "--data-dir", str(shared), "--config", str(config),
                                      "--seed", "3"])
    assert result.exit_code == 0, result.output
    assert (calls["config"].scope_fm2, calls["config"].scope_steps, calls["config"].seed) == (
        str(shared / "fact_checking"), 150, 3)
    config.write_text(json.dumps({"scope_steps": 0.5}))
    bad = CliRunner().invoke(app, ["train", "--task", "fc", "--data-dir", str(shared), "--config", str(config),
                                   "--overwrite"])
    assert bad.exit_code != 0 and "scope_steps" in bad.output


def test_train_task_sentiment_reuses_built_data(shared, calls, tmp_path, monkeypatch):
    monkeypatch.setenv("SERAC_HOME", str(tmp_path / "home"))
    data = tmp_path / "home" / "tasks" / "sentiment-data"
    data.mkdir(parents=True)
    (data / "sentiment.jsonl").write_text("")
    monkeypatch.setattr(serac.tasks.sentiment.data, "build_sentiment_data",
                        lambda *a, **k: pytest.fail("data exists: no rebuild"))
    out = tmp_path / "sent"
    result = CliRunner().invoke(app, ["train", "--task", "sentiment", "--data-dir", str(shared), "-o", str(out)])
    assert result.exit_code == 0, result.output
    assert calls["task"] == "sentiment" and calls["out_dir"] == out and calls["data"] == data


def test_train_task_sentiment_builds_missing_data_from_the_train_files(shared, calls, tmp_path, monkeypatch):
    monkeypatch.setenv("SERAC_HOME", str(tmp_path / "home"))
    built = {}
    monkeypatch.setattr(serac.tasks.sentiment.data, "build_sentiment_data",
                        lambda out, **k: built.update(out=out, **k))
    result = CliRunner().invoke(app, ["train", "--task", "sentiment", "--data-dir", str(shared)])
    assert result.exit_code == 0, result.output
    assert built["out"] == tmp_path / "home" / "tasks" / "sentiment-data"
    assert built["counterfact"].name == "counterfact-train.json" and built["zsre"].name == "zsre_mend_train-1k.json"


@pytest.mark.parametrize(
    "args, message",
    [
        (["--task", "ner"], "'ner' is not one of 'qa', 'fc', 'sentiment'"),
        (["--task", "fc", "--scope-steps", "5"], "--scope-steps apply to --task qa only"),
        (["--task", "fc", "--quick"], "--quick apply to --task qa only"),
        (["--task", "sentiment", "--counterfactual", "x"], "--counterfactual applies to --task fc only"),
        (["--add-cross-encoder", "x", "--seed", "1"], "--seed do not apply to --add-cross-encoder"),
    ],
)
def test_train_task_errors(shared, calls, args, message):
    result = CliRunner().invoke(app, ["train", *args, "--data-dir", str(shared)], env={"COLUMNS": "300"})
    assert result.exit_code != 0 and message in " ".join(result.output.split())
    assert calls == {}


def test_train_task_fc_needs_the_vitaminc_folder(tmp_path, calls):
    result = CliRunner().invoke(app, ["train", "--task", "fc", "--data-dir", str(tmp_path)], env={"COLUMNS": "300"})
    assert result.exit_code != 0 and "vitaminc_sample" in result.output
    assert calls == {}
