"""``python -m serac.tasks bench``: build, train and evaluate both tasks, then write
``benchmarks/extra/tasks.md`` and ``tasks.json`` (the report generator includes
``benchmarks/extra/*.md`` into BENCHMARKS.md). Models and generated data go to ``--work``
(default ``$SERAC_HOME/tasks``), never into the repository."""

from __future__ import annotations

import json
import logging
import math
import time
from pathlib import Path
from typing import Any, Sequence

from serac.models import serac_home
from serac.tasks.common import RunInfo, markdown_table

logger = logging.getLogger(__name__)


def bench(
    out: Path,
    shared: Path,
    work: Path | None,
    tasks: Sequence[str],
    retrain: bool,
    command: str,
    methods: Sequence[str] | None = None,
) -> None:
    from serac.tasks.api import eval_task, task_data, train_task

    work = Path(work or serac_home() / "tasks")
    info = RunInfo.now(command)
    json_path = out / "tasks.json"
    previous = json.loads(json_path.read_text()) if json_path.exists() else {}
    # a run of some methods replaces those methods' rows and keeps the others' (e.g. baselines run later)
    rows = [r for r in previous.get("rows", []) if r["task"] not in tasks or (methods and r["method"] not in methods)]
    notes: dict[str, Any] = {k: v for k, v in previous.get("notes", {}).items() if k not in tasks}
    started = time.perf_counter()
    for task in tasks:
        note: dict[str, Any] = {"date": info.date}
        model_dir = work / task
        t = time.perf_counter()
        data, built = task_data(task, shared, work / "sentiment-data", rebuild=retrain)
        if built:
            note["seconds_data"] = round(time.perf_counter() - t, 1)
        if task == "fc":
            from serac.data import load_vitaminc

            decided = [e.label for e in load_vitaminc(data / "test.jsonl") if e.label != "not enough info"]
            note["majority_label_accuracy"] = decided.count("supports") / max(len(decided), 1)
        else:
            recipe = json.loads((data / "recipe.json").read_text())
            note["data"] = recipe["stats"]
        config_file = "fc_config.json" if task == "fc" else "serac_config.json"
        if retrain or not (model_dir / config_file).exists():
            t = time.perf_counter()
            train_task(task, model_dir, data)
            note["seconds_train"] = round(time.perf_counter() - t, 1)
        summary = json.loads((model_dir / "train_summary.json").read_text())
        note["train"] = {
            k: v for k, v in summary.items() if not k.endswith(("losses", "history")) and k != "config"
        }
        t = time.perf_counter()
        rows += eval_task(task, model_dir, data, methods=methods)
        note["seconds_eval"] = round(time.perf_counter() - t, 1)
        notes[task] = note
    info.seconds = time.perf_counter() - started
    if methods and previous.get("info") and any(r["task"] in tasks for r in rows if r["method"] not in methods):
        info.command = f"{_dated(RunInfo(**previous['info']))}`; `{_dated(info)}"  # both runs' rows are shown
    out.mkdir(parents=True, exist_ok=True)
    json_path.write_text(json.dumps({"info": info.__dict__, "notes": notes, "rows": rows}, indent=1) + "\n")
    (out / "tasks.md").write_text(render(rows, info, notes))


def _half_width(n: float) -> str:
    """95% half-width of a proportion near 0.5 measured on n items (the worst case)."""
    return f"±{1.96 * math.sqrt(0.25 / n):.2f}" if n and not math.isnan(n) else "n/a"


def _train_seconds(note: dict[str, Any]) -> str:
    """Training wall time: measured by this run, else the artifact's own record."""
    seconds = note.get("seconds_train", note.get("train", {}).get("seconds"))
    return f"{seconds:.0f}" if isinstance(seconds, (int, float)) else "?"


def _count(
    rows: Sequence[dict], task: str, metric: str, method: str = "serac", mode: str = "sequential"
) -> float:
    values = [
        r["value"]
        for r in rows
        if r["task"] == task and r["metric"] == metric and r["method"] == method and r["mode"] == mode
    ]
    return max(values) if values else float("nan")


def render(rows: Sequence[dict], info: RunInfo, notes: dict[str, Any]) -> str:
    lines = [
        "## Fact-checking (FC) and sentiment editing (ConvSent-style)",
        "",
        f"Command: `{info.command}` · date: {info.date} · machine: {info.machine} · "
        f"wall time: {info.seconds / 60:.1f} min (this run; steps with an existing artifact were reused).",
        "",
        "Columns are edits per batch (mode `batch`: a fresh memory per batch, every batch scored, "
        "claims/prompts pooled) or edits accumulated one at a time (mode `sequential`: scored after "
        "n edits, on all n). ES: edit success; DD: drawdown. Methods: `serac` (scope + counterfactual "
        "+ untouched base), `icl` (retrieval in context: nearest edit always used, no scope decision), "
        "`ft` (fine-tuning the base model on the edits).",
        "",
    ]
    if any(r["task"] == "fc" for r in rows):
        n_in = _count(rows, "fc", "n_in_scope")
        fc = notes.get("fc", {})
        lines += [
            "### FC (VitaminC sample)",
            "",
            "Base: MiniLM-L6 + classification head trained on claims alone (supports/refutes). "
            "Counterfactual: the same architecture trained on (evidence, claim) pairs. Scope: MiniLM dual "
            "encoder fine-tuned on (claim, evidence), threshold calibrated on held-out evidence. An edit is "
            "a piece of evidence (`input` = evidence, `target` = supports). In scope: that evidence's "
            "supports/refutes claims (ES = label matches the gold label). Out of scope: its "
            '"not enough info" claims (`dd_hard`) and every claim of evidence not in memory (`dd_other`).',
            "",
            f"Trained on `train_0..4.jsonl` (300 records: {fc.get('train', {}).get('n_train_edits', '?')} "
            f"evidence for training, {fc.get('train', {}).get('n_val_edits', '?')} held out for calibration), "
            f"evaluated on `test.jsonl` (100 records = 100 edits, {n_in:.0f} decided claims). "
            f"**The sample is small**: ES rests on {n_in:.0f} in-scope claims, so its 95% interval is about "
            f'{_half_width(n_in)}; `dd_hard` rests on 12 "not enough info" claims and says little; '
            "differences between batch sizes for SERAC are within that noise. The paper trained on ~370k "
            "VitaminC pairs; here the classifiers see under 200 decided claims (the training evidence's supports/refutes claims), so the counterfactual model's accuracy, not routing, bounds ES.",
            "",
            'A constant "supports" answer would score '
            f"{fc.get('majority_label_accuracy', float('nan')):.2f} ES on these claims: read ES against that. "
            "In `sequential` at n=100 every evidence is in memory, so the only out-of-scope claims left are the "
            '"not enough info" ones (DD there is `dd_hard`).',
            "",
            f"Held-out (calibration) accuracy: base {fc.get('train', {}).get('val_base_accuracy', float('nan')):.2f}, "
            f"counterfactual {fc.get('train', {}).get('val_counterfactual_accuracy', float('nan')):.2f}; "
            f"scope threshold {fc.get('train', {}).get('threshold', float('nan')):.3f}. "
            f"Wall times: training {_train_seconds(fc)} s, evaluation {fc.get('seconds_eval', '?')} s.",
            "",
        ]
        for metric, title in (
            ("es", "ES"),
            ("dd", "DD (all out-of-scope claims)"),
            ("dd_hard", 'DD, "not enough info" claims of edited evidence'),
            ("dd_other", "DD, claims of other evidence"),
            ("es_pre", "Base accuracy on the same in-scope claims before editing"),
            ("scope_recall", "Scope recall (in-scope claim routed to its own evidence)"),
        ):
            lines += [f"**{title}**", "", markdown_table(rows, metric, task="fc", scoring="generation")]
    if any(r["task"] == "sentiment" for r in rows):
        s = notes.get("sentiment", {})
        n_in = _count(rows, "sentiment", "n_in_scope")
        n_base = _count(rows, "sentiment", "n_in_scope", "ft", "batch")
        baseline_note = (
            "The baselines regenerate everything after every edit, so on this CPU they are scored on a sample "
            f"(at most {n_base:.0f} in-scope replies per cell, about {_half_width(n_base)}, and a few "
            "other-topic prompts per batch; see `n_in_scope` / `n_out_of_scope` in tasks.json): read them as "
            "indicative. "
            if not math.isnan(n_base)
            else "The baselines (`icl`, `ft`) are implemented and tested on tiny models but were not run at "
            "this size: on the shared 2-core CPU of this run (load average 4-10 from other jobs) the SERAC "
            "evaluation alone took the time available; run `python -m serac.tasks bench --task sentiment` "
            "for all three. "
        )
        lines += [
            "### Sentiment editing (ConvSent-style)",
            "",
            "Base: SmolLM2-135M-Instruct (chat). Edit: `Topic: X -> Sentiment: positive|negative`. "
            "In scope: opinion prompts about X from the 13 ConvSent templates (2 per topic, seeded); out of scope: "
            "the same prompts about topics not in memory. Data built here (`python -m serac.tasks build-data "
            "sentiment`): topics are CounterFact/zsRE subjects, replies written by SmolLM2 under positive "
            "and negative instructions, kept when VADER agrees. Counterfactual: SmolLM2 + LoRA trained with "
            "likelihood on desired-sentiment replies and unlikelihood on opposite-sentiment ones.",
            "",
            f"Data: {json.dumps(s.get('data', {}))}. Train: {json.dumps({k: (round(v, 3) if isinstance(v, float) else v) for k, v in s.get('train', {}).items()})}. "
            f"Wall times: data {s.get('data', {}).get('seconds', '?')} s, training {_train_seconds(s)} s, "
            f"evaluation {s.get('seconds_eval', '?')} s.",
            "",
            f"ES (headline) is the share of generated in-scope replies VADER labels with the edit's sentiment; "
            f"SERAC is scored on {n_in:.0f} replies at full memory (95% interval about {_half_width(n_in)}). "
            + baseline_note
            + "The paper's ES (teacher-forced `z_sent * z_topic` on the data set's reference replies) is "
            "reported too. DD: share of other-topic replies that changed at all; `dd_sentiment`: share whose "
            "VADER label changed. VADER is a lexicon judge: it misreads sarcasm and hedged replies.",
            "",
        ]
        for metric, scoring, title in (
            ("es", "generation", "ES (share of replies with the edit's sentiment)"),
            ("es", "teacher_forced", "ES, paper definition (z_sent × z_topic)"),
            ("dd", "generation", "DD (share of other-topic replies changed)"),
            ("dd_sentiment", "generation", "DD, sentiment label changed"),
            ("es_pre", "generation", "Unedited model: share already with the edit's sentiment"),
            ("scope_recall", "generation", "Scope recall (prompt routed to its topic's edit)"),
        ):
            lines += [f"**{title}**", "", markdown_table(rows, metric, task="sentiment", scoring=scoring)]
    return "\n".join(lines)


def _dated(info: RunInfo) -> str:
    """A run's command with its date and wall time (already so for merged runs)."""
    return info.command if "`; `" in info.command else f"{info.command} ({info.date}, {info.seconds / 60:.1f} min)"


def merge(sources: Sequence[Path], out: Path) -> None:
    """Combine bench outputs task by task (a later source replaces a task's rows and notes)."""
    rows: dict[str, list[dict]] = {}
    notes: dict[str, Any] = {}
    info = None
    commands: list[str] = []
    for source in sources:
        data = json.loads(Path(source).read_text())
        for task in {r["task"] for r in data["rows"]}:
            rows[task] = [r for r in data["rows"] if r["task"] == task]
            if task in data.get("notes", {}):
                notes[task] = data["notes"][task]
        info = RunInfo(**data["info"])
        commands.append(_dated(info))
    if info is None:
        raise ValueError("no sources to merge")
    info = RunInfo(command="`; `".join(commands), date=info.date, machine=info.machine, seconds=info.seconds)
    merged = [r for task_rows in rows.values() for r in task_rows]
    out.mkdir(parents=True, exist_ok=True)
    (out / "tasks.json").write_text(
        json.dumps({"info": info.__dict__, "notes": notes, "rows": merged}, indent=1) + "\n"
    )
    (out / "tasks.md").write_text(render(merged, info, notes))
