"""fc and sentiment inside the evaluation runner: their edits and probes (serac.tasks), the judge
and per-probe targets, the methods on a classifier base, `serac eval --task fc` and its result rows;
tiny models and records written here, numbers computed by hand."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from serac.base import load_text_model
from serac.errors import ConfigError
from serac.eval.methods import EvalModels, MethodOptions, build_method
from serac.eval.results import ROW_KEYS
from serac.eval.runner import EvalSettings, Runner, load_task
from tests.conftest import HashingEncoder
from tests.eval.test_runner import data_dir  # noqa: F401  (fixture)

# (evidence, claim, label): E1 decides two claims and not a third, E2 one claim, E3 is never edited
VITAMINC = [
    ("e1 the seine flows through paris", "the seine flows through paris", "SUPPORTS"),
    ("e1 the seine flows through paris", "the seine avoids paris", "REFUTES"),
    ("e1 the seine flows through paris", "paris has many bakeries", "NOT ENOUGH INFO"),
    ("e2 jupiter is the largest planet", "saturn is the largest planet", "REFUTES"),
    ("e3 the violin has four strings", "the violin has four strings", "SUPPORTS"),
    ("e3 the violin has four strings", "the violin is loud", "NOT ENOUGH INFO"),
]


@pytest.fixture
def vitaminc(tmp_path: Path) -> Path:
    path = tmp_path / "test.jsonl"
    path.write_text("".join(json.dumps({"evidence": e, "claim": c, "label": label, "id": i}) + "\n"
                            for i, (e, c, label) in enumerate(VITAMINC)))
    return path


def _scores(result):
    return {(s.method, s.n_edits, s.metric): (s.value, s.count) for s in result.scores if s.scoring == "generation"}


def test_fc_task_edits_are_evidence_and_claims_keep_their_labels(vitaminc):
    task = load_task("fc", vitaminc, limit=2)
    assert [e.edit_input for e in task.examples] == ["e1 the seine flows through paris", "e2 jupiter is the largest planet"]
    assert {e.edit_target for e in task.examples} == {"supports"}
    assert [(p.input, p.target) for p in task.examples[0].generalization_probes] == [
        ("the seine flows through paris", "supports"), ("the seine avoids paris", "refutes")]
    assert [p.input for p in task.examples[0].out_of_scope] == ["paris has many bakeries"]
    assert [p.input for p in task.dd_probes] == ["the violin has four strings", "the violin is loud"]
    assert not task.ask_edit_input and task.probe_targets and task.scorings == ("generation",)
    with pytest.raises(ConfigError, match="brings its own drawdown set"):
        load_task("fc", vitaminc, dd_path=vitaminc)


def test_fc_runner_scores_es_on_claims_and_dd_against_the_base_classifier(vitaminc, fc_artifact):
    """The artifact's base always says supports, its pair classifier always refutes, and its scope
    (threshold -1) sends every claim to the pair classifier once any evidence is stored."""
    task = load_task("fc", vitaminc, limit=2)
    models = EvalModels(load_text_model(str(fc_artifact / "base"), batch_size=4), max_new_tokens=1)
    options = MethodOptions(artifact=str(fc_artifact))
    methods = [build_method(name, models, options) for name in ("serac", "base", "ft", "icl")]
    result = Runner(task, models, EvalSettings(mode="batch", batch_sizes=(1, 2))).run(methods)
    scores = _scores(result)
    for k in (1, 2):
        # in scope: 3 decided claims, 2 of them refutes; locality: e1's NEI claim; DD: e3's 2 claims
        assert scores[("serac", k, "es")] == (pytest.approx(2 / 3), 3)
        assert scores[("serac", k, "locality")] == (0.0, 1)
        assert scores[("serac", k, "dd")] == (1.0, 2)
        assert scores[("base", k, "es")] == (pytest.approx(1 / 3), 3)
        assert scores[("base", k, "dd")] == (0.0, 2)
        assert ("serac", k, "reliability") not in scores  # the evidence is not a claim: never asked
        assert scores[("icl", k, "es")] == scores[("serac", k, "es")]  # no scope decision, same pair classifier
    assert {s.task for s in result.scores} == {"fc"}
    assert ("ft", 1, "es") in scores  # fine-tuning a copy of the base classifier ran
    # the base classifier was restored after fine-tuning: the base method still answers supports
    assert models.base.generate(["the violin is loud"]) == ["supports"]


def test_counterfactual_option_replaces_the_artifacts_pair_classifier(vitaminc, fc_artifact, tmp_path):
    from tests.conftest import FC_LABELS, save_tiny_bert

    agrees = save_tiny_bert(tmp_path / "agrees", FC_LABELS, always="supports")
    task = load_task("fc", vitaminc, limit=2)
    models = EvalModels(load_text_model(str(fc_artifact / "base"), batch_size=4), max_new_tokens=1)
    method = build_method("serac", models, MethodOptions(artifact=str(fc_artifact), counterfactual=str(agrees)))
    scores = _scores(Runner(task, models, EvalSettings(mode="batch", batch_sizes=(2,))).run([method]))
    assert scores[("serac", 2, "es")] == (pytest.approx(1 / 3), 3)  # now it says supports, as the base does
    assert scores[("serac", 2, "dd")] == (0.0, 2)


def test_serac_eval_task_fc_writes_the_usual_rows(vitaminc, fc_artifact, tmp_path, monkeypatch):
    from serac.cli import app

    monkeypatch.setenv("SERAC_HOME", str(tmp_path / "home"))
    out = tmp_path / "run"
    result = CliRunner().invoke(app, ["eval", "--task", "fc", "--data", str(vitaminc), "--artifact", str(fc_artifact),
                                      "--mode", "sequential", "--checkpoints", "1,2", "--limit", "2",
                                      "--methods", "serac,base", "--no-cost", "--out", str(out)])
    assert result.exit_code == 0, result.output
    saved = json.loads((out / "results.json").read_text())
    assert saved["task"] == "fc" and saved["mode"] == "sequential"
    rows = saved["rows"]
    assert all(tuple(r)[:len(ROW_KEYS)] == ROW_KEYS and r["task"] == "fc" for r in rows)
    es = {(r["method"], r["n_edits"]): r["value"] for r in rows if r["metric"] == "es" and r["scoring"] == "generation"}
    assert es == {("serac", 1): 0.5, ("serac", 2): pytest.approx(2 / 3), ("base", 1): 0.5, ("base", 2): pytest.approx(1 / 3)}
    assert not any(r["scoring"] == "teacher_forced" for r in rows)
    default = ["eval", "--task", "fc", "--data", str(vitaminc), "--methods", "serac", "--mode", "batch",
               "--batch-sizes", "2", "--limit", "2", "--out", str(tmp_path / "default")]
    missing = CliRunner().invoke(app, default)
    assert missing.exit_code == 1 and "serac train --task fc" in missing.output
    import shutil

    shutil.copytree(fc_artifact, tmp_path / "home" / "tasks" / "fc")  # where `serac train --task fc` writes
    found = CliRunner().invoke(app, default)
    assert found.exit_code == 0, found.output
    saved = json.loads((tmp_path / "default" / "results.json").read_text())
    assert {r["task"] for r in saved["rows"]} == {"fc"}


# -- sentiment ------------------------------------------------------------------------------------
def _sentiment_data(path: Path) -> Path:
    from serac.tasks.sentiment.data import Reply

    rows = []
    for i, (topic, split) in enumerate((("Paris", "eval"), ("Rome", "eval"), ("Lisbon", "eval"), ("Oslo", "train"))):
        replies = [Reply(0, f"What do you think of {topic}?", "good", "positive", "positive", 0.5).__dict__,
                   Reply(1, f"What do you feel about {topic}?", "bad", "negative", "negative", -0.5).__dict__]
        rows.append({"topic": topic, "split": split, "replies": replies})
    path.mkdir(parents=True, exist_ok=True)
    (path / "sentiment.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


class TopicOpinion:
    """An editing method written here: a prompt naming an edited topic gets a reply in the edit's
    sentiment (or the opposite one, ``contrary``); every other prompt gets the base model's answer."""

    name = "opinion"

    def __init__(self, models: EvalModels, contrary: bool = False) -> None:
        self.models, self.contrary = models, contrary
        self.reset()

    def reset(self) -> None:
        self.memory: dict[str, str] = {}

    def apply(self, edits):
        for topic, sentiment in edits:
            self.memory[topic.removeprefix("Topic: ")] = sentiment.removeprefix("Sentiment: ")

    def predict(self, prompts):
        out = []
        for prompt in prompts:
            topic = next((t for t in self.memory if t in prompt), None)
            if topic is None:
                out += self.models.base.generate([prompt], self.models.options)
            else:
                positive = (self.memory[topic] == "positive") != self.contrary
                out.append("I love it, it is wonderful and great." if positive else "I hate it, it is awful and sad.")
        return out

    def teacher_forced(self, prompts, targets):
        return [0.0] * len(prompts)


def test_sentiment_task_judges_replies_and_measures_drawdown_on_unedited_topics(tmp_path, tiny_causal_dir):
    data = _sentiment_data(tmp_path / "sentiment")
    task = load_task("sentiment", data)
    assert len(task.examples) == 3 and task.max_new_tokens == 32
    assert {e.edit_target for e in task.examples} == {"Sentiment: positive", "Sentiment: negative"}
    edit = task.examples[0]
    assert all(edit.subject in p.input and p.target == edit.edit_target.removeprefix("Sentiment: ")
               for p in edit.generalization_probes)
    assert {p.input.split()[-1].rstrip("?.") for p in task.dd_probes} <= {"Oslo"}  # the train topic, never edited
    models = EvalModels(load_text_model(str(tiny_causal_dir), max_new_tokens=3, batch_size=4), encoder=HashingEncoder(),
                        max_new_tokens=3)
    settings = EvalSettings(mode="batch", batch_sizes=(1, 3))
    right = _scores(Runner(task, models, settings).run([TopicOpinion(models)]))
    wrong = _scores(Runner(task, models, settings).run([TopicOpinion(models, contrary=True)]))
    for k in (1, 3):
        assert right[("opinion", k, "es")][0] == 1.0 and wrong[("opinion", k, "es")][0] == 0.0
        assert right[("opinion", k, "dd")][0] == 0.0


def test_warming_the_caches_changes_no_score_and_saves_model_calls(data_dir, tiny_causal_dir, monkeypatch):  # noqa: F811
    """Batch mode pre-answers every input with all edits in memory, in full generation batches: the
    same scores, and the base model decodes no prompt it would not have decoded anyway."""
    from serac.eval.methods import SeracMethod
    from tests.eval.test_runner import task_of

    def run(warm: bool):
        monkeypatch.setattr(SeracMethod, "warm_cache", warm)
        models = EvalModels(load_text_model(str(tiny_causal_dir), max_new_tokens=4, batch_size=4),
                            encoder=HashingEncoder(), max_new_tokens=4)
        method = build_method("serac-untrained", models, MethodOptions(serac_threshold=0.5))
        settings = EvalSettings(mode="batch", n_edits=6, batch_sizes=(1, 3), scorings=("generation",))
        result = Runner(task_of(data_dir), models, settings).run([method])
        return _scores(result), models.cache_stats()

    cold, cold_stats = run(False)
    warm, warm_stats = run(True)
    assert warm == cold
    assert warm_stats["base"]["misses"] == cold_stats["base"]["misses"]
