"""`serac train --method mend`: options reach the MEND config; options of the serac training are refused."""

from __future__ import annotations

import pytest
from typer.testing import CliRunner

import serac.baselines.mend.train
from serac.cli import app
from tests.train.conftest import write_counterfact, write_zsre


@pytest.fixture
def calls(monkeypatch):
    seen = {}

    def fake_train_mend(config, output, **options):
        seen.update(config=config, output=output, **options)
        return {"wall_s_this_run": 60.0}

    monkeypatch.setattr(serac.baselines.mend.train, "train_mend", fake_train_mend)
    return seen


@pytest.fixture
def data_dir(tmp_path):
    (tmp_path / "data" / "zsre").mkdir(parents=True)
    (tmp_path / "data" / "counterfact").mkdir()
    write_zsre(tmp_path / "data" / "zsre" / "zsre_mend_train-1k.json")
    write_counterfact(tmp_path / "data" / "counterfact" / "counterfact-train.json")
    return tmp_path / "data"


def test_train_method_mend_builds_its_config(calls, data_dir, tmp_path):
    result = CliRunner().invoke(app, ["train", "--method", "mend", "--data-dir", str(data_dir), "--seed", "3",
                                      "--mend-steps", "7", "-o", str(tmp_path / "out")])
    assert result.exit_code == 0, result.output
    config = calls["config"]
    assert (config.seed, config.steps) == (3, 7)
    assert config.zsre_train.endswith("zsre_mend_train-1k.json")
    assert config.counterfact_train.endswith("counterfact-train.json")
    assert calls["output"] == tmp_path / "out" and calls["resume"] is False


@pytest.mark.parametrize(
    "args, message",
    [
        (["--method", "mend", "--scope-steps", "5"], "--scope-steps do not apply to --method mend"),
        (["--method", "mend", "--task", "fc"], "--task do not apply to --method mend"),
        (["--mend-steps", "5"], "--mend-steps applies to --method mend only"),
        (["--method", "mend", "--resume", "--seed", "1"], "--resume continues with the run's saved config"),
        (["--method", "grace"], "'grace' is not one of"),
    ],
)
def test_train_method_mend_errors(calls, data_dir, args, message):
    result = CliRunner().invoke(app, ["train", *args, "--data-dir", str(data_dir)], env={"COLUMNS": "300"})
    assert result.exit_code != 0 and message in " ".join(result.output.split())
    assert calls == {}


def test_train_method_mend_needs_data(calls, tmp_path):
    result = CliRunner().invoke(app, ["train", "--method", "mend", "--data-dir", str(tmp_path)],
                                env={"COLUMNS": "300"})
    assert result.exit_code != 0 and "no training data found" in " ".join(result.output.split())
