"""Shared task helpers: batching, exact caches, result rows, threshold calibration, the report."""

from __future__ import annotations

import pytest

from serac.base import CallableModel
from serac.edits import Edit
from serac.tasks.common import (
    CachedCounterfactual,
    CachedEncoder,
    CachedTextModel,
    RunInfo,
    checkpoints,
    edit_batches,
    markdown_table,
    result_row,
)
from serac.tasks.scope_training import _distinct_key_batches, calibrate_threshold


def test_edit_batches_are_disjoint_and_full():
    assert edit_batches(7, 3) == [range(0, 3), range(3, 6)]  # the remainder of 1 is left out
    assert edit_batches(7, 1, max_batches=2) == [range(0, 1), range(1, 2)]
    assert edit_batches(2, 5) == []
    with pytest.raises(ValueError, match="batch size"):
        edit_batches(3, 0)


def test_checkpoints_include_the_end():
    assert checkpoints(100) == [1, 5, 25, 75, 100]
    assert checkpoints(3) == [1, 3]
    assert checkpoints(0) == []


def test_cached_text_model_calls_each_prompt_once():
    seen = []
    model = CachedTextModel(CallableModel(lambda ps: (seen.extend(ps), [p.upper() for p in ps])[1]))
    assert model.generate(["a", "b", "a"]) == ["A", "B", "A"]
    assert model.generate(["b", "c"]) == ["B", "C"]
    assert seen == ["a", "b", "c"] and model.calls == 3


class _EchoCounterfactual:
    num_edits = 1

    def __init__(self):
        self.calls = []

    def generate(self, queries, edits, options=None):
        self.calls.append(list(queries))
        return [f"{q}|{e[0].target}" for q, e in zip(queries, edits)]


def test_cached_counterfactual_keys_on_prompt_and_the_edits_it_reads():
    inner = _EchoCounterfactual()
    cached = CachedCounterfactual(inner)
    a, b = Edit(1, "x", "A", 0.0), Edit(2, "y", "B", 0.0)
    assert cached.generate(["q", "q"], [[a, b], [a]]) == ["q|A", "q|A"]  # only the best edit is read
    assert cached.generate(["q"], [[Edit(9, "x", "A", 1.0)]]) == ["q|A"]  # same content, new id: a hit
    assert cached.generate(["q"], [[b]]) == ["q|B"]
    assert inner.calls == [["q"], ["q"]]


def test_cached_encoder_reuses_vectors(hashing_encoder):
    cached = CachedEncoder(hashing_encoder)
    first = cached.encode(["a b", "c"])
    again = cached.encode(["c", "a b"])
    assert (again[1] == first[0]).all() and hashing_encoder.encoded == 2 and cached.id == hashing_encoder.id


def test_result_rows_and_markdown_table():
    rows = [
        result_row("fc", "serac", "batch", 1, "generation", "es", 0.5),
        result_row("fc", "serac", "batch", 5, "generation", "es", 0.75),
        result_row("fc", "ft", "sequential", 5, "generation", "es", float("nan")),
    ]
    assert rows[0] == {
        "task": "fc",
        "method": "serac",
        "mode": "batch",
        "n_edits": 1,
        "scoring": "generation",
        "metric": "es",
        "value": 0.5,
    }
    table = markdown_table(rows, "es", task="fc")
    assert "| serac | batch | 0.500 | 0.750 |" in table and "| ft | sequential | – | – |" in table
    assert markdown_table(rows, "dd", task="fc") == "_no dd results for fc_\n"
    with pytest.raises(ValueError, match="mode"):
        result_row("fc", "serac", "online", 1, "generation", "es", 0.0)
    assert "CPU cores" in RunInfo.now("cmd").machine


def test_calibrate_threshold_separates_scores():
    threshold, j = calibrate_threshold([0.9, 0.8, 0.7], [0.2, 0.5, 0.6])
    assert j == 1.0 and 0.6 < threshold <= 0.7
    threshold, j = calibrate_threshold([0.9, 0.4], [0.5, 0.1])
    assert j == pytest.approx(0.5)
    with pytest.raises(ValueError, match="positives and negatives"):
        calibrate_threshold([], [0.1])


def test_contrastive_batches_never_repeat_a_key():
    pairs = [("q1", "k1"), ("q2", "k1"), ("q3", "k2"), ("q4", "k1"), ("q5", "k3")]
    batches = _distinct_key_batches(pairs, 2)
    assert sorted(p for b in batches for p in b) == sorted(pairs)
    assert all(len({k for _, k in b}) == len(b) for b in batches)


def test_report_renders_both_tasks_and_merges(tmp_path):
    import json

    from serac.tasks.report import merge, render

    rows = []
    for task in ("fc", "sentiment"):
        for n in (1, 5):
            for metric in ("es", "dd", "n_in_scope", "scope_recall"):
                rows.append(
                    result_row(
                        task, "serac", "batch", n, "generation", metric, 0.5 if metric != "n_in_scope" else 88
                    )
                )
                rows.append(result_row(task, "serac", "sequential", n, "generation", metric, 0.25))
    info = RunInfo(
        command="python -m serac.tasks bench", date="2026-01-01 00:00 UTC", machine="test", seconds=60.0
    )
    text = render(rows, info, {"fc": {"majority_label_accuracy": 0.61}})
    assert "### FC (VitaminC sample)" in text and "### Sentiment editing" in text
    assert "| serac | batch | 0.500 | 0.500 |" in text and "not run at this size" in text
    first, second = tmp_path / "a.json", tmp_path / "b.json"
    first.write_text(json.dumps({"info": info.__dict__, "notes": {}, "rows": rows}))
    newer = [dict(r, value=0.75) for r in rows if r["task"] == "fc"]
    second.write_text(json.dumps({"info": info.__dict__, "notes": {"fc": {}}, "rows": newer}))
    merge([first, second], tmp_path / "out")
    merged = json.loads((tmp_path / "out" / "tasks.json").read_text())["rows"]
    assert {r["value"] for r in merged if r["task"] == "fc"} == {0.75}
    assert len([r for r in merged if r["task"] == "sentiment"]) == len(rows) // 2
    assert (tmp_path / "out" / "tasks.md").exists()


def test_bench_of_some_methods_keeps_the_other_methods_rows(tmp_path, monkeypatch):
    import json

    import serac.tasks.api
    from serac.tasks.report import bench

    work, shared, out = tmp_path / "work", tmp_path / "shared", tmp_path / "out"
    (work / "fc").mkdir(parents=True)
    (work / "fc" / "fc_config.json").write_text("{}")
    (work / "fc" / "train_summary.json").write_text(json.dumps({"seconds": 10}))
    (shared / "vitaminc_sample").mkdir(parents=True)
    (shared / "vitaminc_sample" / "test.jsonl").write_text(
        json.dumps({"claim": "c", "evidence": "e", "label": "supports", "id": "1"}) + "\n")
    rows = [result_row("fc", m, "batch", 1, "generation", "es", 0.5) for m in ("serac", "icl", "ft")]
    info = RunInfo(command="python -m serac.tasks bench", date="2026-01-01 00:00 UTC", machine="test", seconds=60.0)
    out.mkdir()
    (out / "tasks.json").write_text(json.dumps({"info": info.__dict__, "notes": {}, "rows": rows}))
    monkeypatch.setattr(serac.tasks.api, "eval_task", lambda task, model_dir, data, methods=None: [
        result_row(task, m, "batch", 1, "generation", "es", 0.9) for m in methods])
    bench(out, shared, work, ("fc",), False, "python -m serac.tasks bench --method icl", methods=("icl",))
    saved = json.loads((out / "tasks.json").read_text())
    assert {(r["method"], r["value"]) for r in saved["rows"]} == {("serac", 0.5), ("ft", 0.5), ("icl", 0.9)}
    command = saved["info"]["command"]
    assert command.startswith("python -m serac.tasks bench (2026-01-01 00:00 UTC, 1.0 min)`; `")
    assert "--method icl (" in command
