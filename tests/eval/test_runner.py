"""End-to-end: the runner, every built-in method, reports and the commands, on tiny models and
fixture data written here."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from serac.base import load_text_model
from serac.errors import ConfigError
from serac.eval.cache import CachedLM, batched_token_accuracy
from serac.eval.methods import (
    EditingMethod,
    EvalModels,
    FTMethod,
    ICLMethod,
    LookupCacheMethod,
    MethodOptions,
    MethodUnavailableError,
    build_method,
)
from serac.eval.report import write_run
from serac.eval.results import COST_METRICS, COUNT_KEYS, METRICS, ROW_KEYS
from serac.eval.runner import EvalSettings, Runner, Task, load_task
from tests.conftest import HashingEncoder

ZSRE = [
    # (subject, question, rephrase, new answer, original answer, loc question)
    ("Toodyay Fire Station", "What architect designed Toodyay Fire Station?", "Who designed Toodyay Fire Station?",
     "Wyndham Lewis", "Ken Duncan", "who sang the theme song for friends"),
    ("Toodyay Fire Station", "Who is the architect of Toodyay Fire Station?", "Toodyay Fire Station architect?",
     "Kohn Pedersen Fox", "Ken Duncan", "when was the last time anyone was on the moon"),
    ("Lola Beeth", "What voice type is Lola Beeth?", "What is the vocal range of Lola Beeth?",
     "mezzo-soprano", "soprano", "who wrote the iliad"),
    ("Chlorophyll Kid", "Which fictional universe is Chlorophyll Kid part of?", "Chlorophyll Kid universe?",
     "Image Universe", "DC Universe", "what is the capital of australia"),
    ("Platypatrobus", "Which family does Platypatrobus belong to?", "Platypatrobus is in which family?",
     "Carabidae", "Trechinae", "who makes the iphone"),
    ("IAAF Combined Events Challenge", "When was the inception of IAAF Combined Events Challenge?",
     "When was the IAAF Combined Events Challenge launched?", "2006", "1998", "how many legs does a spider have"),
]
NQ = ["who is the prime minister of the united kingdom", "what is the tallest mountain", "who wrote hamlet",
      "which river flows through london"]


@pytest.fixture
def data_dir(tmp_path: Path) -> Path:
    records = [{"subject": s, "src": q, "pred": o, "rephrase": r, "alt": a, "answers": [o], "loc": f"nq question: {loc}",
                "loc_ans": "x", "cond": ""} for s, q, r, a, o, loc in ZSRE]
    (tmp_path / "zsre").mkdir()
    (tmp_path / "zsre" / "zsre_mend_eval_portability_gpt4.json").write_text(json.dumps(records))
    cf = [{"case_id": i, "prompt": f"The mother tongue of {s} is", "target_new": a, "subject": s, "ground_truth": o,
           "rephrase_prompt": f"{s} speaks the language of", "locality_prompt": f"{loc} is a native speaker of",
           "locality_ground_truth": "French"} for i, (s, _, _, a, o, loc) in enumerate(ZSRE)]
    (tmp_path / "counterfact").mkdir()
    (tmp_path / "counterfact" / "counterfact-edit.json").write_text(json.dumps(cf))
    (tmp_path / "nq_open").mkdir()
    (tmp_path / "nq_open" / "NQ-open.dev.jsonl").write_text("".join(json.dumps({"question": q, "answer": ["a"]}) + "\n" for q in NQ))
    return tmp_path


@pytest.fixture
def models(tiny_causal_dir) -> EvalModels:
    return EvalModels(load_text_model(str(tiny_causal_dir), max_new_tokens=4, batch_size=4), encoder=HashingEncoder(),
                      max_new_tokens=4)


def task_of(data_dir: Path, dd: bool = True) -> Task:
    return load_task("zsre", data_dir / "zsre" / "zsre_mend_eval_portability_gpt4.json",
                     dd_path=data_dir / "nq_open" / "NQ-open.dev.jsonl" if dd else None, dd_sample=3)


class Oracle:
    """A method written in the test: answers an edit input with its own edit's target, by exact input
    match (the first edit stored for that input), else echoes nothing. Proves the plug-in interface."""

    name = "oracle"

    def __init__(self) -> None:
        self.reset()

    def reset(self) -> None:
        self.memory: dict[str, str] = {}

    def apply(self, edits):
        for prompt, target in edits:
            self.memory.setdefault(prompt, target)

    def predict(self, prompts):
        return [self.memory.get(p, "") for p in prompts]

    def teacher_forced(self, prompts, targets):
        return [1.0 if self.memory.get(p) == t else 0.0 for p, t in zip(prompts, targets)]


def _scores(result):
    return {(s.method, s.n_edits, s.scoring, s.metric): s.value for s in result.scores}


def test_custom_method_and_conflict_aware_scores_by_hand(data_dir, models):
    assert isinstance(Oracle(), EditingMethod)
    settings = EvalSettings(mode="sequential", checkpoints=(1, 6), cost=False)
    result = Runner(task_of(data_dir), models, settings).run([Oracle()])
    got = _scores(result)
    # N=6: 6 edit inputs answered, 6 rephrasings not: ES 6/12, reliability 1, generalization 0.
    assert got[("oracle", 6, "generation", "es")] == pytest.approx(0.5)
    assert got[("oracle", 6, "generation", "reliability")] == 1.0
    assert got[("oracle", 6, "generation", "generalization")] == 0.0
    # Edits 0 and 1 are one fact (Toodyay Fire Station, Ken Duncan); the newest target is edit 1's,
    # so edit 0's input loses its conflict-aware point: 5/12.
    assert got[("oracle", 6, "generation", "es_conflict_aware")] == pytest.approx(5 / 12)
    # ...while the rephrasings score 0 either way (the oracle answers edit inputs only)
    assert got[("oracle", 6, "generation", "generalization_conflict_aware")] == 0.0
    # on the edit inputs alone: edit 0's input expects edit 1's target, the other 5 their own: 5/6
    assert got[("oracle", 6, "generation", "reliability_conflict_aware")] == pytest.approx(5 / 6)
    # N=1: no conflict yet.
    assert got[("oracle", 1, "generation", "es_conflict_aware")] == got[("oracle", 1, "generation", "es")] == 0.5
    # Empty answers for every out-of-scope input: everything the base model said non-empty changed.
    assert got[("oracle", 6, "teacher_forced", "reliability")] == 1.0
    assert got[("oracle", 6, "teacher_forced", "es_conflict_aware")] == pytest.approx(5 / 12)


class ExactMatchOverBase(Oracle):
    """The oracle's exact-input memory in front of the unedited base model."""

    def __init__(self, models: EvalModels) -> None:
        super().__init__()
        self.models = models

    def predict(self, prompts):
        rest = [p for p in prompts if p not in self.memory]
        base = dict(zip(rest, self.models.base.generate(rest, self.models.options))) if rest else {}
        return [self.memory.get(p, base.get(p)) for p in prompts]


def test_locality_uncovered_leaves_out_prompts_another_stored_edit_asks(tmp_path, models):
    """CounterFact: a record's neighbourhood prompt can ask a (subject, relation) another stored
    edit changes; answering it from that edit is right, so ``locality_uncovered`` leaves it out."""
    first, second = "The mother tongue of {} is", "{} is a native speaker of"
    rows = [("Ana Lima", first, second.format("Bo Chen")), ("Bo Chen", second, first.format("Cy Park")),
            ("Cy Park", first, second.format("Di Sato"))]
    cf = [{"case_id": i, "prompt": template.format(s), "target_new": new, "subject": s, "ground_truth": "French",
           "rephrase_prompt": f"{s} speaks", "locality_prompt": loc, "locality_ground_truth": "French"}
          for i, ((s, template, loc), new) in enumerate(zip(rows, ("Dutch", "English", "Welsh")))]
    (tmp_path / "cf.json").write_text(json.dumps(cf))
    task = load_task("counterfact", tmp_path / "cf.json")
    assert task.edit_fact(task.examples[1]) == task.prompt_fact(second.format("Bo Chen")) is not None
    result = Runner(task, models, EvalSettings(mode="sequential", checkpoints=(1, 3), cost=False,
                                               scorings=("generation",))).run([ExactMatchOverBase(models)])
    got = _scores(result)
    # N=1: only Ana Lima's edit is stored; her neighbourhood prompt (Bo Chen) is nobody's edit yet
    assert got[("oracle", 1, "generation", "locality")] == got[("oracle", 1, "generation", "locality_uncovered")] == 1.0
    # N=3: the first two neighbourhood prompts are the next records' edit inputs, answered from them
    assert got[("oracle", 3, "generation", "locality")] == pytest.approx(1 / 3)
    assert got[("oracle", 3, "generation", "locality_uncovered")] == 1.0
    counts = {(s.n_edits, s.metric): s.count for s in result.scores}
    assert counts[(3, "locality")] == 3 and counts[(3, "locality_uncovered")] == 1


def test_counterfact_conflicts_are_one_subject_and_relation_whatever_the_true_answer(tmp_path, models):
    """Two CounterFact records can edit one multi-valued relation ("The twin city of X is") from two
    true answers, with the same input: the newest answers it, and the conflict-aware scores expect
    that (fact_key, subject and true answer, would call them two facts)."""
    cf = [{"case_id": i, "prompt": "The twin city of Oslo is", "target_new": new, "subject": "Oslo",
           "ground_truth": truth, "rephrase_prompt": "Oslo is twinned with", "locality_prompt": "The twin city of Rome is",
           "locality_ground_truth": "Paris"} for i, (new, truth) in enumerate((("Lima", "Kiev"), ("Quito", "Riga")))]
    (tmp_path / "cf.json").write_text(json.dumps(cf))
    task = load_task("counterfact", tmp_path / "cf.json")
    result = Runner(task, models, EvalSettings(mode="sequential", checkpoints=(2,), cost=False,
                                               scorings=("generation",))).run([ExactMatchOverBase(models)])
    got = _scores(result)
    # the exact-match memory keeps the first edit of an input (Lima): per record right once, and wrong
    # against the newest (Quito) both times
    assert got[("oracle", 2, "generation", "reliability")] == pytest.approx(0.5)
    assert got[("oracle", 2, "generation", "reliability_conflict_aware")] == 0.0


def test_settings_cap_a_method_and_the_table_says_so(data_dir, models, tmp_path):
    settings = EvalSettings(mode="sequential", checkpoints=(2, 6), cost=False, method_caps={"oracle": 2})
    result = Runner(task_of(data_dir), models, settings).run([Oracle()])
    assert {s.n_edits for s in result.scores} == {2}
    assert "| oracle | 6 | not run: cost cap of 2 edits on this machine |" in write_run(result, tmp_path)["markdown"].read_text()


@pytest.mark.parametrize("mode", ["sequential", "batch"])
def test_every_builtin_method_end_to_end(data_dir, models, tmp_path, mode):
    options = MethodOptions(ft_steps=2, ft_max_edits=3, lu_threshold=0.999)
    methods = [build_method(name, models, options) for name in ("serac-untrained", "ft", "lu", "icl", "base")]
    settings = EvalSettings(mode=mode, checkpoints=(2, 6), batch_sizes=(1, 3, 6), sample=4, latency_queries=2)
    result = Runner(task_of(data_dir), models, settings).run(methods)

    rows = result.rows()
    assert rows and all(tuple(row)[:len(ROW_KEYS)] == ROW_KEYS and set(row) <= {*ROW_KEYS, *COUNT_KEYS} for row in rows)
    rates = [r for r in rows if r["scoring"] == "generation"]
    assert rates and all(r["count"] > 0 for r in rates)
    assert all(r["ci95"][0] <= r["value"] <= r["ci95"][1] for r in rates)  # Wilson interval holds its rate
    assert not any("ci95" in r for r in rows if r["scoring"] != "generation")  # token accuracies: no interval
    assert {r["metric"] for r in rows} <= set(METRICS) | set(COST_METRICS)
    assert {r["scoring"] for r in rows} == {"generation", "teacher_forced", "cost"}
    assert all(isinstance(r["value"], float) for r in rows)
    assert all(0.0 <= r["value"] <= 1.0 for r in rows if r["scoring"] != "cost")
    sizes = {(r["method"], r["n_edits"]) for r in rows if r["scoring"] == "generation"}
    expected_sizes = (2, 6) if mode == "sequential" else (1, 3, 6)
    for method in ("serac-untrained", "lu", "icl", "base"):
        assert {n for m, n in sizes if m == method} == set(expected_sizes)
    # ft is capped at 3 edits: sequential stops before N=6, batch skips k=6; both say so.
    assert {n for m, n in sizes if m == "ft"} == ({2} if mode == "sequential" else {1, 3})
    assert [d["n_edits"] for d in result.details if d.get("skipped")] == [6]  # and it says so

    got = _scores(result)
    # The base model changes nothing; serac with a perfect-recall hashing scope finds each edit input.
    assert got[("base", expected_sizes[-1], "generation", "dd")] == 0.0
    assert got[("base", expected_sizes[-1], "generation", "locality")] == 1.0
    assert got[("base", expected_sizes[-1], "teacher_forced", "locality")] == pytest.approx(1.0)
    routing = [d for d in result.details if d["method"] == "serac-untrained" and "routed_to_edit_in_scope" in d]
    assert routing and all(d["routed_to_edit_in_scope"] >= 0.5 for d in routing)
    if mode == "sequential":
        cost = {r["metric"]: r for r in rows if r["scoring"] == "cost" and r["method"] == "serac-untrained"}
        assert set(cost) == set(COST_METRICS)
        assert cost["speedup_vs_reencode"]["n_edits"] == 6 and cost["edits_per_s"]["value"] > 0

    paths = write_run(result, tmp_path / "out")
    for path in paths.values():
        assert path.stat().st_size > 0
    assert paths["plot"].read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    saved = json.loads(paths["json"].read_text())
    assert saved["rows"] == rows and saved["mode"] == mode
    assert "| serac-untrained |" in paths["markdown"].read_text()
    assert "| ft | 6 | not run: cost cap of 3 edits on this machine |" in paths["markdown"].read_text()


def test_one_scoring_only(data_dir, models):
    result = Runner(task_of(data_dir), models, EvalSettings(checkpoints=(6,), cost=False, scorings=("teacher_forced",))).run(
        [Oracle()])
    assert {s.scoring for s in result.scores} == {"teacher_forced", "cost"}  # cost: edits_per_s
    # (out-of-scope rows count only where the tiny base model re-tokenises its own answer exactly)
    assert {"es", "es_conflict_aware", "reliability", "generalization"} <= {s.metric for s in result.scores}


def test_without_dd_set_drawdown_uses_dataset_out_of_scope(data_dir, models):
    result = Runner(task_of(data_dir, dd=False), models, EvalSettings(checkpoints=(6,), cost=False)).run(
        [build_method("icl", models)])
    got = _scores(result)
    assert got[("icl", 6, "generation", "dd")] == pytest.approx(1 - got[("icl", 6, "generation", "locality")])


def test_serac_without_artifact_is_skipped_with_a_clear_message(models, tmp_path):
    with pytest.raises(MethodUnavailableError, match="needs a trained artifact.*serac train"):
        build_method("serac", models, MethodOptions(artifact=str(tmp_path / "nothing")))


def test_unknown_method_lists_valid_ones(models):
    with pytest.raises(ValueError, match="unknown method 'rome'; valid methods: serac, serac-untrained"):
        build_method("rome", models)


def test_batched_teacher_forcing_matches_the_adapter(models):
    lm = models.base.lm
    prompts = ["what is the capital of australia", "who is the prime minister", "a"]
    targets = ["canberra", "keir starmer of the united kingdom", "the quick brown fox"]
    expected = lm.teacher_forced(prompts, targets)
    assert batched_token_accuracy(lm, [lm.format(p) for p in prompts], targets, batch_size=2) == pytest.approx(expected)


def test_cached_lm_computes_once_and_matches(models):
    cache = CachedLM(models.base.lm)
    prompts = ["who wrote hamlet", "what is the tallest mountain", "who wrote hamlet"]
    first = cache.generate(prompts, models.options)
    assert first == models.base.lm.generate(prompts, models.options)
    assert cache.misses == 2 and cache.hits == 1
    with cache.disabled():
        cache.generate(prompts[:1], models.options)
    assert cache.misses == 2 and cache.generate(prompts, models.options) == first


def test_prefix_reuse_matches_full_prompts(models):
    from serac.counterfactual import few_shot_messages

    lm = models.base.lm
    prompts = [few_shot_messages([("who makes the iphone", "Samsung")], "which company makes the iphone"),
               few_shot_messages([("what is the capital of australia", "Sydney")], "capital of australia?"),
               few_shot_messages([("who wrote hamlet", "Keir Starmer")], "hamlet was written by")]
    cache = CachedLM(lm, reuse_prefix=True)
    assert cache.generate(prompts, models.options) == lm.generate(prompts, models.options)
    assert cache.prefix is not None and len(cache.prefix._prefix) >= cache.prefix.MIN_PREFIX
    targets = ["Samsung", "Sydney Opera", "Keir"]
    assert cache.teacher_forced(prompts, targets) == pytest.approx(lm.teacher_forced(prompts, targets))
    # A later single prompt with the same prefix reuses the stored cache.
    more = [few_shot_messages([("who makes the iphone", "Apple")], "iphone maker?")]
    assert cache.generate(more, models.options) == lm.generate(more, models.options)


def test_ft_learns_and_resets(models):
    ft = FTMethod(models, steps=30, lr=3e-3, max_edits=None)
    prompt, target = "who wrote hamlet", "the quick brown fox"
    before = ft.teacher_forced([prompt], [target])[0]
    ft.apply([(prompt, target)])
    assert ft.teacher_forced([prompt], [target])[0] > before
    ft.reset()
    assert ft.teacher_forced([prompt], [target])[0] == pytest.approx(before)


def test_lu_and_icl_use_the_nearest_edit(models):
    lu = LookupCacheMethod(models, threshold=0.999)
    lu.apply([("what is the capital of australia", "Sydney"), ("who makes the iphone", "Samsung")])
    assert lu.predict(["who makes the iphone"]) == ["Samsung"] and lu.last_routes == [True]
    assert lu.teacher_forced(["who makes the iphone"], ["Samsung"]) == [1.0]
    icl = ICLMethod(models, models.encoder())
    icl.apply([("what is the capital of australia", "Sydney"), ("who makes the iphone", "Samsung")])
    assert icl.prompts_for(["which company makes the iphone"]) == [
        "New fact: who makes the iphone Samsung\nwhich company makes the iphone"]


def test_eval_command_writes_json_markdown_and_png(data_dir, models, tmp_path, monkeypatch):
    from typer.testing import CliRunner

    from serac.cli import app

    monkeypatch.setattr(EvalModels, "load", classmethod(lambda cls, **kwargs: models))
    out = tmp_path / "run"
    result = CliRunner().invoke(app, [
        "eval", "--task", "zsre", "--data", str(data_dir / "zsre" / "zsre_mend_eval_portability_gpt4.json"),
        "--mode", "sequential", "--n-edits", "4", "--methods", "serac,serac-untrained,icl", "--limit", "3",
        "--dd-data", str(data_dir / "nq_open" / "NQ-open.dev.jsonl"), "--out", str(out), "--no-cost",
        "--artifact", str(tmp_path / "missing"),
    ])
    assert result.exit_code == 0, result.output
    assert "skipping serac" in result.output
    rows = json.loads((out / "results.json").read_text())["rows"]
    assert {r["method"] for r in rows} == {"serac-untrained", "icl"} and {r["n_edits"] for r in rows} == {3}
    assert (out / "results.md").stat().st_size > 0 and (out / "zsre_sequential.png").stat().st_size > 0


def test_bench_quick_rewrites_the_report(data_dir, models, tmp_path, fc_artifact, monkeypatch):
    import shutil

    from serac.eval.bench import run_bench

    # fc has its trained artifact where `serac train --task fc` writes it; sentiment has none (skipped)
    monkeypatch.setenv("SERAC_HOME", str(tmp_path / "home"))
    shutil.copytree(fc_artifact, tmp_path / "home" / "tasks" / "fc")
    (data_dir / "vitaminc_sample").mkdir()
    (data_dir / "vitaminc_sample" / "test.jsonl").write_text("".join(
        json.dumps({"evidence": f"evidence {i} {s}", "claim": f"claim {i} {s}", "label": label, "id": i}) + "\n"
        for i, (s, label) in enumerate([("a", "SUPPORTS"), ("b", "REFUTES"), ("c", "SUPPORTS"), ("d", "REFUTES"),
                                        ("e", "SUPPORTS"), ("f", "NOT ENOUGH INFO")])))
    out, doc = tmp_path / "benchmarks", tmp_path / "BENCHMARKS.md"
    (out / "extra").mkdir(parents=True)
    (out / "extra" / "server.md").write_text("## Server load test\n\n42 requests/s\n")
    run_bench(data_dir, out, doc, quick=True, models=models, artifact=str(tmp_path / "missing"))
    rows = json.loads((out / "results.json").read_text())
    assert rows and all(tuple(r)[:len(ROW_KEYS)] == ROW_KEYS for r in rows)
    assert {r["task"] for r in rows} == {"zsre", "counterfact", "fc"} and {r["mode"] for r in rows} == {"batch", "sequential"}
    assert {r["method"] for r in rows if r["task"] == "fc"} == {"serac", "icl", "ft", "base"}
    text = doc.read_text()
    for needle in ("# Benchmarks", "Machine:", "UTC", "## Parts", "zsre, sequential", "counterfact, sequential",
                   "fc, batch", "fc, sequential", "part sentiment-batch (no task artifact)",
                   "42 requests/s", "Not run: serac", "![zsre batch: ES and DD](benchmarks/zsre_batch.png)",
                   "95% Wilson interval"):
        assert needle in text
    for png in ("zsre_batch.png", "zsre_sequential.png", "counterfact_sequential.png"):
        assert (out / png).stat().st_size > 0
    # --render rebuilds the same report from the saved files, picking up a changed fragment
    from serac.eval.bench import render_saved

    (out / "extra" / "server.md").write_text("## Server load test\n\n43 requests/s\n")
    doc.unlink()
    render_saved(out, doc)
    assert doc.read_text() == text.replace("42 requests/s", "43 requests/s")
    with pytest.raises(ConfigError, match="run `serac bench` first"):
        render_saved(tmp_path / "nothing", doc)


def test_bench_records_each_parts_grace_radius_and_the_override(data_dir, models, tmp_path):
    from serac.baselines.grace import COUNTERFACT_EPSILON
    from serac.eval.bench import run_bench

    def radii(out: Path, **kwargs) -> dict:
        run_bench(data_dir, out, out / "B.md", quick=True, models=models, methods=["grace"],
                  parts=["zsre-sequential", "counterfact-sequential"], **kwargs)
        run = json.loads((out / "run.json").read_text())
        assert {r["method"] for r in json.loads((out / "results.json").read_text())} == {"grace"}
        return {p["name"]: p.get("grace_epsilon") for p in run["parts"]}

    assert radii(tmp_path / "own") == {"zsre-sequential": None, "counterfact-sequential": COUNTERFACT_EPSILON}
    assert radii(tmp_path / "one", grace_epsilon=80.0) == {"zsre-sequential": 80.0, "counterfact-sequential": 80.0}
