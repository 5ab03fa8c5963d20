"""`serac bench --methods`: a run of some methods replaces those methods' rows part by part, keeps the
other rows, and records which run produced which rows (on small saved fixtures, no model)."""

from __future__ import annotations

import json
from dataclasses import asdict, replace
from datetime import UTC, datetime
from pathlib import Path

import pytest

from serac.baselines.grace import COUNTERFACT_EPSILON, GraceConfig
from serac.errors import ConfigError
from serac.eval.bench import STANDARD_PARTS, Part, load_saved, merge_saved, only_methods, write_outputs
from serac.eval.merge import merge_runs
from serac.eval.report import machine
from serac.eval.results import RunResult, Score
from serac.eval.runner import EvalSettings


def result(task: str, values: dict[str, float], n_edits: tuple[int, ...] = (10, 100)) -> RunResult:
    scores = [Score(task, method, "sequential", n, "generation", "es", value, 7)
              for method, value in values.items() for n in n_edits]
    details = [{"method": method, "n_edits": n, "in_scope_inputs": 7} for method in values for n in n_edits]
    notes = [f"{method}: a note" for method in values]
    return RunResult(task, "sequential", {"sample": 50}, scores, notes, details, "dd set", 60.0)


def part(name: str, methods: tuple[str, ...], sample: int = 50, caps: dict[str, int] | None = None) -> Part:
    return Part(name, "zsre", "zsre/file.json", EvalSettings(mode="sequential", checkpoints=(10, 100), sample=sample,
                                                             method_caps=caps or {}), methods, dd_sample=100)


def run(command: str, started: str, parts: list[Part]) -> dict:
    return {"started": started, "command": command, "wall_s": 120.0, "load_s": 3.0, "skipped": [], "finished": True,
            "quick": False, "machine": machine(),
            "parts": [{"name": p.name, "task": p.task, "file": p.file, "methods": list(p.methods), "dd_sample": p.dd_sample,
                       "settings": json.loads(json.dumps(asdict(p.settings))), "wall_s": 60.0} for p in parts]}


def values_of(results: list[RunResult]) -> dict[tuple[str, str, int], float]:
    return {(r.task, s.method, s.n_edits): s.value for r in results for s in r.scores}


FULL = (run("serac bench", "2026-11-26T11:00:00+00:00", [part("one", ("serac", "ft")), part("two", ("serac", "lu"))]),
        [result("one", {"serac": 0.9, "ft": 0.2}), result("two", {"serac": 0.8, "lu": 0.5})])
NEW = (run("serac bench --methods ft,grace", "2026-12-01T01:00:00+00:00",
           [part("two", ("ft", "grace"), sample=25, caps={"grace": 1000})]),
       [result("two", {"ft": 0.3, "grace": 0.7})])


def test_merge_replaces_the_runs_methods_and_keeps_every_other_row():
    merged_run, merged = merge_runs(FULL, NEW)
    assert values_of(merged) == {
        ("one", "serac", 10): 0.9, ("one", "serac", 100): 0.9, ("one", "ft", 10): 0.2, ("one", "ft", 100): 0.2,
        ("two", "serac", 10): 0.8, ("two", "serac", 100): 0.8, ("two", "lu", 10): 0.5, ("two", "lu", 100): 0.5,
        ("two", "ft", 10): 0.3, ("two", "ft", 100): 0.3, ("two", "grace", 10): 0.7, ("two", "grace", 100): 0.7,
    }
    two = merged_run["parts"][1]
    assert two["methods"] == ["serac", "lu", "ft", "grace"]
    assert two["settings"]["method_caps"] == {"grace": 1000}
    assert set(two["sources"]) == {"ft", "grace"}
    assert two["sources"]["grace"]["command"] == "serac bench --methods ft,grace"
    assert two["sources"]["grace"]["started"] == "2026-12-01T01:00:00+00:00"
    assert two["sources"]["grace"]["sample"] == 25
    assert "sources" not in merged_run["parts"][0]  # untouched part: all rows from the full run
    assert merged_run["command"] == "serac bench" and merged_run["merged"][0]["parts"] == {"two": ["ft", "grace"]}
    assert [d["method"] for d in merged[1].details] == ["serac", "serac", "lu", "lu", "ft", "ft", "grace", "grace"]
    assert merged[1].notes == ["serac: a note", "lu: a note", "ft: a note", "grace: a note"]
    assert FULL[0]["parts"][1]["methods"] == ["serac", "lu"]  # the inputs are not changed


def test_a_replaced_method_keeps_its_place_and_loses_its_old_rows():
    again = (run("serac bench --methods serac", "2026-12-01T02:00:00+00:00", [part("one", ("serac",))]),
             [result("one", {"serac": 0.95}, n_edits=(10,))])
    _, merged = merge_runs(FULL, again)
    one = merged[0]
    assert [(s.method, s.n_edits, s.value) for s in one.scores] == [("serac", 10, 0.95), ("ft", 10, 0.2), ("ft", 100, 0.2)]


def test_merging_the_same_run_twice_equals_merging_it_once():
    once = merge_runs(FULL, NEW)
    twice = merge_runs(once, NEW)
    assert twice[0] == once[0]
    assert [r.to_json() for r in twice[1]] == [r.to_json() for r in once[1]]


def test_a_part_new_to_the_saved_run_is_added():
    extra = (run("serac bench --methods grace", "2026-12-01T03:00:00+00:00", [part("three", ("grace",))]),
             [result("three", {"grace": 0.4})])
    merged_run, merged = merge_runs(FULL, extra)
    assert [p["name"] for p in merged_run["parts"]] == ["one", "two", "three"]
    assert merged[2].task == "three" and merged_run["parts"][2]["sources"]["grace"]["command"].endswith("grace")


def save(out: Path, saved) -> None:
    out.mkdir(parents=True)
    (out / "run.json").write_text(json.dumps(saved[0]))
    (out / "details.json").write_text(json.dumps([r.to_json() for r in saved[1]]))


def test_write_outputs_merges_into_the_saved_files_and_the_report_names_the_runs(tmp_path):
    out, doc = tmp_path / "benchmarks", tmp_path / "BENCHMARKS.md"
    save(out, FULL)
    new_run, new_results = NEW
    parts = [(part("two", ("ft", "grace"), sample=25, caps={"grace": 1000}), 60.0)]
    write_outputs(new_results, parts, out, doc, started=datetime(2026, 12, 1, 1, 0, tzinfo=UTC),
                  command=new_run["command"], wall_s=120.0, load_s=3.0, skipped=[], finished=True, quick=False, merge=True)
    rows = json.loads((out / "results.json").read_text())
    assert {(r["task"], r["method"]) for r in rows} == {("one", "serac"), ("one", "ft"), ("two", "serac"), ("two", "lu"),
                                                        ("two", "ft"), ("two", "grace")}
    saved_run, saved = load_saved(out)
    assert saved_run["command"] == "serac bench" and values_of(saved)[("two", "grace", 100)] == 0.7
    text = doc.read_text()
    assert "Generated by `make bench` (`serac bench`)" in text
    assert ("- two / `grace`: `serac bench --methods ft,grace`, started 2026-12-01 01:00 UTC, 1.0 min; "
            "N in {10, 100}, edits scored per N 25, DD questions 100") in text
    assert "grace at most 1,000 edits" in text


def test_without_merge_a_run_replaces_the_saved_files(tmp_path):
    out, doc = tmp_path / "benchmarks", tmp_path / "BENCHMARKS.md"
    save(out, FULL)
    new_run, new_results = NEW
    write_outputs(new_results, [(part("two", ("ft", "grace")), 60.0)], out, doc,
                  started=datetime(2026, 12, 1, 1, 0, tzinfo=UTC), command="serac bench", wall_s=1.0, load_s=1.0,
                  skipped=[], finished=True, quick=False)
    assert {r["method"] for r in json.loads((out / "results.json").read_text())} == {"ft", "grace"}


def test_merge_saved_merges_a_run_saved_elsewhere(tmp_path):
    out, elsewhere, doc = tmp_path / "benchmarks", tmp_path / "scratch", tmp_path / "BENCHMARKS.md"
    save(out, FULL)
    save(elsewhere, NEW)
    merge_saved(elsewhere, out, doc)
    assert values_of(load_saved(out)[1]) == values_of(merge_runs(FULL, NEW)[1])
    assert "serac bench --methods ft,grace" in doc.read_text()
    with pytest.raises(ConfigError, match="run.json not found: run `serac bench` first"):
        merge_saved(tmp_path / "missing", out, doc)


def test_only_methods_keeps_parts_settings_and_drops_parts_without_them():
    chosen = only_methods(STANDARD_PARTS, ["ft", "grace"])
    assert [p.name for p in chosen] == [p.name for p in STANDARD_PARTS]
    # the QA parts run both; fc and sentiment (their own base models) run ft, not grace
    assert all(p.methods == (("ft",) if p.task in ("fc", "sentiment") else ("ft", "grace")) for p in chosen)
    assert [p.settings for p in chosen] == [p.settings for p in STANDARD_PARTS]
    with pytest.raises(ConfigError, match="unknown method"):
        only_methods(STANDARD_PARTS, ["nope"])
    with pytest.raises(ConfigError, match="no chosen part runs lu"):
        only_methods([part("x", ("grace",))], ["lu"])


def test_the_standard_qa_parts_run_grace_everywhere_and_ft_on_counterfact():
    by_name = {p.name: p for p in STANDARD_PARTS}
    assert all("grace" in p.methods for p in STANDARD_PARTS if p.task not in ("fc", "sentiment"))
    assert "ft" in by_name["counterfact-sequential"].methods
    assert by_name["counterfact-sequential"].settings.method_caps["grace"] == 1000


def test_cli_merge_from(tmp_path):
    from typer.testing import CliRunner

    from serac.cli import app

    out, elsewhere, doc = tmp_path / "benchmarks", tmp_path / "scratch", tmp_path / "BENCHMARKS.md"
    save(out, FULL)
    save(elsewhere, NEW)
    outcome = CliRunner().invoke(app, ["bench", "--merge-from", str(elsewhere), "--out", str(out), "--doc", str(doc)])
    assert outcome.exit_code == 0, outcome.output
    assert values_of(load_saved(out)[1]) == values_of(merge_runs(FULL, NEW)[1])


def test_a_parts_grace_radius_is_saved_merged_and_reported(tmp_path):
    out, doc = tmp_path / "benchmarks", tmp_path / "BENCHMARKS.md"
    save(out, FULL)
    new_run, new_results = NEW
    two = replace(part("two", ("ft", "grace"), sample=25), grace_epsilon=70.0)
    write_outputs(new_results, [(two, 60.0)], out, doc, started=datetime(2026, 12, 1, 1, 0, tzinfo=UTC),
                  command=new_run["command"], wall_s=120.0, load_s=3.0, skipped=[], finished=True, quick=False, merge=True)
    saved_run, _ = load_saved(out)
    merged = saved_run["parts"][1]
    assert merged["grace_epsilon"] == 70.0 and "grace_epsilon" not in saved_run["parts"][0]
    assert merged["sources"]["grace"]["grace_epsilon"] == 70.0 and "grace_epsilon" not in merged["sources"]["ft"]
    text = doc.read_text()
    assert "edits scored per N 25, DD questions 100, grace deferral radius 70" in text
    assert "; grace deferral radius 70 |" in text
    # a later grace run without a radius of its own takes the part back to the default
    again = (run("serac bench --methods grace", "2026-12-01T04:00:00+00:00", [part("two", ("grace",))]),
             [result("two", {"grace": 0.6})])
    assert "grace_epsilon" not in merge_runs(load_saved(out), again)[0]["parts"][1]


def test_only_the_counterfact_part_sets_its_own_grace_radius():
    radii = {p.name: p.grace_epsilon for p in STANDARD_PARTS if "grace" in p.methods}
    assert radii == {"zsre-batch": None, "zsre-sequential": None, "counterfact-sequential": COUNTERFACT_EPSILON}
    assert COUNTERFACT_EPSILON != GraceConfig().epsilon
