import json

import numpy as np
import pytest
import torch
from safetensors.torch import load_file
from typer.testing import CliRunner

from serac.editor import EditedModel
from serac.errors import ConfigError
from serac.scope import CrossEncoderReranker
from serac.train import counterfactual as cf_module
from serac.train.config import CrossEncoderTrainConfig, TrainConfig
from serac.train.pipeline import add_verifier, run_training
from serac.train.scope import encode, load_sentence_encoder


class Interrupted(Exception):
    pass


def test_artifact_loads_with_from_pretrained(tiny_train_config, tmp_path):
    out = tmp_path / "trained"
    messages = []
    report = run_training(tiny_train_config, out, progress=False, log=messages.append)
    for name in ("serac_config.json", "train_config.json", "training_report.json", "loss_scope.png",
                 "loss_counterfactual.png", "scope_encoder/modules.json", "counterfactual_adapter/adapter_config.json"):
        assert (out / name).exists(), name
    assert not (out / "checkpoints").exists()
    saved = json.loads((out / "serac_config.json").read_text())
    assert saved["scope"]["encoder"] == "scope_encoder"  # relative: the directory can move
    chosen = report["phases"]["counterfactual"]["num_edits"]
    assert saved["counterfactual"] == {**saved["counterfactual"], "adapter": "counterfactual_adapter",
                                       "prompt": "trained", "num_edits": chosen}
    by_k = report["phases"]["counterfactual"]["exact_match_by_num_edits"]
    assert set(by_k) == {"1", "2", "3"} and by_k[str(chosen)] == max(by_k.values())
    assert saved["scope"]["threshold"] == report["threshold"]
    assert set(report["phases"]) == {"mine", "scope", "calibrate", "counterfactual"}
    for phase in report["phases"].values():
        assert phase["wall_s"] >= 0 and phase["peak_rss_mb"] > 0
    assert len(report["losses"]["scope"]["loss"]) == 6 and len(report["losses"]["counterfactual"]["loss"]) == 6
    assert "validation" in report["phases"]["calibrate"]
    assert report["phases"]["counterfactual"]["validation_generation"]["examples"] == 4
    assert TrainConfig.load(out / "train_config.json") == tiny_train_config
    assert any("scope: done" in m for m in messages)

    editor = EditedModel.from_pretrained(out)
    assert editor.scope.threshold == pytest.approx(report["threshold"])
    assert editor.counterfactual.prompt == "trained" and editor.counterfactual.num_edits == chosen
    # the editor's encoder is the trained one: identical vectors to the saved model's
    texts = ["what is the capital of alpha ?", "the mother tongue of bravo is"]
    np.testing.assert_array_equal(editor.scope.encoder.encode(texts), encode(load_sentence_encoder(str(out / "scope_encoder")), texts))
    editor.add("what is the capital of alpha ?", "rome")
    answers = editor.generate(["what is the capital of alpha ?", "who wrote the famous song about rain"])
    assert answers[0].source == "counterfactual" and answers[0].edit.target == "rome"
    assert len(answers) == 2


def test_resume_after_an_interruption_gives_the_same_artifact(tiny_train_config, tmp_path, monkeypatch):
    straight = tmp_path / "straight"
    run_training(tiny_train_config, straight, progress=False)

    original = cf_module.save_checkpoint

    def save_then_stop(*args, **kwargs):
        original(*args, **kwargs)
        raise Interrupted

    out = tmp_path / "interrupted"
    monkeypatch.setattr(cf_module, "save_checkpoint", save_then_stop)
    with pytest.raises(Interrupted):
        run_training(tiny_train_config, out, progress=False)
    assert not (out / "serac_config.json").exists()  # not mistaken for a finished artifact
    state = json.loads((out / "checkpoints" / "state.json").read_text())
    assert set(state["done"]) == {"mine", "scope", "calibrate"}
    with pytest.raises(ConfigError, match="unfinished run"):
        run_training(tiny_train_config, out, progress=False)

    monkeypatch.setattr(cf_module, "save_checkpoint", original)
    messages = []
    run_training(None, out, resume=True, progress=False, log=messages.append)
    assert any("scope: already done" in m for m in messages)
    a = load_file(straight / "counterfactual_adapter" / "adapter_model.safetensors")
    b = load_file(out / "counterfactual_adapter" / "adapter_model.safetensors")
    assert a.keys() == b.keys()
    for name in a:
        torch.testing.assert_close(a[name], b[name], rtol=1e-5, atol=1e-6)
    assert json.loads((out / "serac_config.json").read_text()) == json.loads((straight / "serac_config.json").read_text())


def test_refuses_to_overwrite_or_resume_wrongly(tiny_train_config, tmp_path):
    out = tmp_path / "trained"
    with pytest.raises(ConfigError, match="nothing to resume"):
        run_training(None, out, resume=True)
    tiny_train_config.counterfactual.eval_examples = 0
    run_training(tiny_train_config, out, progress=False)
    with pytest.raises(ConfigError, match="already holds a trained artifact; pass --overwrite"):
        run_training(tiny_train_config, out, progress=False)
    other = TrainConfig.from_dict({**tiny_train_config.to_dict(), "seed": 5})
    (out / "checkpoints").mkdir()
    (out / "checkpoints" / "state.json").write_text(json.dumps({"config": tiny_train_config.to_dict(), "done": {}}))
    with pytest.raises(ConfigError, match="differs from the one given"):
        run_training(other, out, resume=True)
    with pytest.raises(ConfigError, match="no training data"):
        run_training(TrainConfig(), tmp_path / "empty", progress=False)


def test_cross_encoder_is_trained_calibrated_and_loaded(tiny_train_config, tiny_bert_dir, tmp_path):
    tiny_train_config.cross_encoder.enabled = True
    tiny_train_config.cross_encoder.model = str(tiny_bert_dir)
    tiny_train_config.counterfactual.eval_examples = 0
    out = tmp_path / "trained"
    report = run_training(tiny_train_config, out, progress=False)
    assert "cross_encoder" in report["phases"] and (out / "loss_cross_encoder.png").exists()
    saved = json.loads((out / "serac_config.json").read_text())
    assert saved["scope"]["cross_encoder"] == "cross_encoder"
    assert saved["scope"]["cross_encoder_threshold"] == report["phases"]["cross_encoder"]["threshold"]
    assert saved["scope"]["cross_encoder_floor"] == tiny_train_config.cross_encoder.floor
    editor = EditedModel.from_pretrained(out)
    assert isinstance(editor.scope.reranker, CrossEncoderReranker)
    editor.add("what is the capital of alpha ?", "rome")
    decision = editor.route(["what is the capital of alpha ?"])[0]
    assert decision.candidates and 0.0 <= decision.score <= 1.0


def test_a_verifier_is_added_to_a_finished_artifact(tiny_train_config, tiny_bert_dir, tmp_path):
    tiny_train_config.counterfactual.eval_examples = 0
    out = tmp_path / "trained"
    run_training(tiny_train_config, out, progress=False)
    before = {name: (out / name).read_bytes() for name in ("scope_encoder/model.safetensors",
                                                          "counterfactual_adapter/adapter_model.safetensors")}
    options = CrossEncoderTrainConfig(model=str(tiny_bert_dir), steps=4, batch_pairs=8, lr=1e-3, floor=0.1)
    result = add_verifier(out, options, progress=False)
    saved = json.loads((out / "serac_config.json").read_text())
    assert saved["scope"]["cross_encoder"] == "cross_encoder"
    assert saved["scope"]["cross_encoder_threshold"] == result["threshold"]
    assert saved["scope"]["cross_encoder_floor"] == 0.1
    assert json.loads((out / "train_config.json").read_text())["cross_encoder"]["enabled"] is True
    report = json.loads((out / "training_report.json").read_text())
    assert report["phases"]["cross_encoder"]["pairs"]["negative"] > 0 and "cross_encoder" in report["losses"]
    assert not (out / "checkpoints").exists() and not (out / "cross_encoder.tmp").exists()
    assert all((out / name).read_bytes() == data for name, data in before.items())  # nothing else retrained
    tuned = load_file(str(out / "cross_encoder" / "model.safetensors"))
    base = load_file(str(tiny_bert_dir / "model.safetensors"))
    table = next(name for name in tuned if name.endswith("word_embeddings.weight"))
    assert torch.equal(tuned[table], base[table.split(".", 1)[1] if table not in base else table])  # frozen
    editor = EditedModel.from_pretrained(out)
    assert isinstance(editor.scope.reranker, CrossEncoderReranker) and editor.scope.reranker.floor == 0.1
    with pytest.raises(ConfigError, match="not a finished `serac train` artifact"):
        add_verifier(tmp_path / "nothing", options, progress=False)


def test_cli_train_and_its_errors(tiny_train_config, data_files, tmp_path):
    from serac.cli import app

    data_dir = tmp_path / "data"
    (data_dir / "zsre").mkdir(parents=True)
    (data_dir / "counterfact").mkdir()
    (data_dir / "zsre" / "zsre_mend_train-1k.json").write_text(data_files["zsre"].read_text())
    (data_dir / "counterfact" / "counterfact-train.json").write_text(data_files["counterfact"].read_text())
    tiny_train_config.data.zsre_train = None
    tiny_train_config.data.counterfact_train = None
    tiny_train_config.counterfactual.eval_examples = 0
    config_file = tmp_path / "config.json"
    tiny_train_config.save(config_file)
    out = tmp_path / "trained"
    runner = CliRunner()
    result = runner.invoke(app, ["train", "--config", str(config_file), "--data-dir", str(data_dir), "--output", str(out),
                                 "--seed", "3", "--cf-steps", "2", "--no-progress"])
    assert result.exit_code == 0, result.output
    assert "trained artifact written" in result.output
    used = TrainConfig.load(out / "train_config.json")
    assert used.seed == 3 and used.counterfactual.steps == 2
    assert used.data.zsre_train.endswith("zsre_mend_train-1k.json")

    result = runner.invoke(app, ["train", "--resume", "--seed", "1", "--output", str(out)])
    assert result.exit_code != 0 and "--resume continues with the run's saved config" in result.output
    result = runner.invoke(app, ["train", "--config", str(config_file), "--data-dir", str(data_dir), "--output", str(out)])
    assert result.exit_code == 1 and "--overwrite" in result.output
    result = runner.invoke(app, ["train", "--config", str(config_file), "--output", str(tmp_path / "x"),
                                 "--counterfact-train", "/data/counterfact-edit.json"])
    assert result.exit_code == 1 and "an evaluation file" in result.output


def test_benchmark_fragment(tiny_train_config, tmp_path):
    from serac.cli import app

    tiny_train_config.counterfactual.eval_examples = 2
    out = tmp_path / "trained"
    run_training(tiny_train_config, out, progress=False, command="serac train --quick")
    rows = [{"task": "zsre", "method": m, "mode": "sequential", "n_edits": n, "scoring": "generation",
             "metric": metric, "value": v, "count": 10}
            for m, v in (("serac", 0.9), ("serac-untrained", 0.5)) for n in (10, 1037)
            for metric in ("es", "es_conflict_aware", "dd")]
    eval_file = tmp_path / "zsre.json"
    eval_file.write_text(json.dumps({"task": "zsre", "mode": "sequential", "rows": rows, "settings": {"sample": 10},
                                     "dd_source": "10 NQ questions"}))
    bench = tmp_path / "bench"
    result = CliRunner().invoke(app, ["train-report", str(out), "--out", str(bench), "--eval", str(eval_file)])
    assert result.exit_code == 0, result.output
    text = (bench / "training.md").read_text()
    assert text.startswith("## Training (`serac train`)")
    assert "serac train --quick" in text and "1,037 edits in memory" in text and "| serac | 90.0% |" in text
    assert "![scope loss](training_loss_scope.png)" in text and (bench / "training_loss_scope.png").exists()
    summary = json.loads((bench / "training.json").read_text())
    assert summary["evaluations"][0]["methods"]["serac"]["dd"]["value"] == 0.9
    result = CliRunner().invoke(app, ["train-report", str(tmp_path / "nothing"), "--out", str(bench)])
    assert result.exit_code == 1 and "training_report.json" in result.output
