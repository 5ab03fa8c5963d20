"""The training benchmark fragment: ``training.md`` + ``training.json`` + loss PNGs, written into
``benchmarks/extra`` (``serac bench`` folds every ``benchmarks/extra/*.md`` into BENCHMARKS.md).

It reads an artifact's ``training_report.json`` and, optionally, ``serac eval`` result JSONs of the
trained editor, so the fragment shows cost (time, memory, loss curves) and quality side by side.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any, Sequence

from serac.errors import ConfigError
from serac.train.artifacts import REPORT_FILE, write_json

EVAL_METRICS = ("es", "es_conflict_aware", "reliability", "generalization", "reliability_conflict_aware",
                "generalization_conflict_aware", "locality", "locality_uncovered", "dd")


def _pct(value: Any) -> str:
    return "–" if value is None else f"{100 * float(value):.1f}%"


def load_eval(path: str | Path) -> dict[str, Any]:
    """The generation scores of a ``serac eval`` JSON at its largest N, per method."""
    data = json.loads(Path(path).read_text())
    rows = [r for r in data.get("rows", []) if r.get("scoring") == "generation"]
    if not rows:
        raise ConfigError(f"{path} has no generation rows; pass a results JSON written by `serac eval`")
    n = max(r["n_edits"] for r in rows)
    methods: dict[str, dict[str, Any]] = {}
    for row in rows:
        if row["n_edits"] == n and row["metric"] in EVAL_METRICS:
            methods.setdefault(row["method"], {})[row["metric"]] = {"value": row["value"], "count": row.get("count")}
    return {"file": str(path), "task": data.get("task"), "mode": data.get("mode"), "n_edits": n,
            "dd_source": data.get("dd_source", ""), "settings": data.get("settings", {}),
            "wall_s": data.get("wall_s"), "methods": methods}


def write_benchmark(
    artifact: str | Path, out: str | Path, evals: Sequence[str | Path] = (), notes: Sequence[str] = ()
) -> Path:
    """Write ``out/training.md``, ``out/training.json`` and ``out/training_loss_*.png``."""
    artifact, out = Path(artifact), Path(out)
    try:
        report = json.loads((artifact / REPORT_FILE).read_text())
    except FileNotFoundError:
        raise ConfigError(f"{artifact} has no {REPORT_FILE}; pass a directory written by `serac train`") from None
    out.mkdir(parents=True, exist_ok=True)
    plots = {}
    for name, file in report.get("plots", {}).items():
        if (artifact / file).exists():
            target = out / f"training_loss_{name}.png"
            shutil.copyfile(artifact / file, target)
            plots[name] = target.name
    evaluations = _merge([load_eval(p) for p in evals])
    summary = {k: v for k, v in report.items() if k != "losses"}
    summary["evaluations"] = evaluations
    summary["loss_plots"] = plots
    summary["notes"] = list(notes)
    write_json(out / "training.json", summary)
    text = _markdown(report, evaluations, plots)
    if notes:
        text += "\nNotes:\n\n" + "".join(f"- {note}\n" for note in notes)
    (out / "training.md").write_text(text)
    return out / "training.md"


def _merge(evaluations: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """One table per (task, N): methods evaluated in separate runs are put side by side."""
    merged: dict[tuple[Any, Any], dict[str, Any]] = {}
    for evaluation in evaluations:
        key = (evaluation["task"], evaluation["n_edits"])
        if key not in merged:
            merged[key] = {**evaluation, "files": [evaluation["file"]], "methods": dict(evaluation["methods"])}
        else:
            merged[key]["files"].append(evaluation["file"])
            merged[key]["methods"].update(evaluation["methods"])
    return list(merged.values())


def _markdown(report: dict[str, Any], evaluations: list[dict[str, Any]], plots: dict[str, str]) -> str:
    phases = report["phases"]
    config = report["train_config"]
    lines = [
        "## Training (`serac train`)",
        "",
        f"Command: `{report.get('command') or 'serac train'}`, finished {report['finished']}. Machine: "
        f"{report['machine']['cpus']} CPUs ({report['machine']['platform']}), torch threads "
        f"{report['machine']['torch_threads']}, shared with other jobs (load averages below).",
        "",
        f"**Total {report['total_wall_s'] / 60:.1f} min, peak RSS {report['peak_rss_mb'] / 1024:.2f} GiB** "
        f"(target: at most 45 min on this 2-core CPU). Scope encoder: {config['scope']['steps']} steps of "
        f"{config['scope']['batch_records']} edits from {config['scope']['encoder']}; counterfactual: "
        f"{config['counterfactual']['method']} on {config['counterfactual']['model']}, "
        f"{config['counterfactual']['steps']} steps of {config['counterfactual']['batch_size']}, up to "
        f"{config['counterfactual']['num_edits']} edits in the prompt. Training data: the training files only "
        f"({_counts(phases)}); evaluation files are refused.",
        "",
        "| phase | wall time | peak RSS | load average (1/5/15 min) at its end |",
        "|---|---:|---:|---|",
    ]
    for name, phase in phases.items():
        load = "/".join(f"{x:.1f}" for x in phase.get("load_average", []))
        lines.append(f"| {name} | {phase['wall_s'] / 60:.1f} min | {phase['peak_rss_mb'] / 1024:.2f} GiB | {load} |")
    lines += ["", "### Scope classifier on the held-out split", ""]
    before = phases.get("mine", {}).get("pretrained_validation")
    after = phases.get("calibrate", {}).get("validation")
    if before and after:
        lines += [
            f"All {after['index_size']:,} held-out edits in one index; each encoder at its own calibrated threshold "
            "(maximising the mean over datasets of in-scope rate minus false-positive rate).",
            "",
            "| dataset | encoder | threshold | right fact top-1 | top-5 | in-scope rate (rephrasings) | false positives (out of scope) |",
            "|---|---|---:|---:|---:|---:|---:|",
        ]
        for source in after["sources"]:
            for label, part in (("pretrained", before), ("**trained**", after)):
                s = part["sources"].get(source, {})
                lines.append(f"| {source} | {label} | {part['threshold']:.3f} | {_pct(s.get('top1'))} | "
                             f"{_pct(s.get('top5'))} | {_pct(s.get('in_scope_rate'))} | {_pct(s.get('false_positive_rate'))} |")
        lines += ["", "Out-of-scope queries: zsRE's NQ questions; CounterFact's same-relation prompts about another subject.", ""]
    cf = phases.get("counterfactual", {})
    generation = cf.get("validation_generation")
    if generation and generation.get("examples"):
        by_k = cf.get("exact_match_by_num_edits", {})
        choice = (f" It reads the best {cf['num_edits']} retrieved edit(s), chosen on the same held-out queries "
                  "(exact match by number of edits read: " + ", ".join(f"{k}: {_pct(v)}" for k, v in by_k.items())
                  + ").") if by_k else ""
        lines += [f"Counterfactual model on {generation['examples']} held-out rephrasings, reading the edits the trained "
                  f"scope encoder retrieves: exact match {_pct(generation['exact_match'])}.{choice}", ""]
        if cf.get("num_edits_chosen_after_run"):
            lines += [f"Note: {cf['num_edits_chosen_after_run']}.", ""]
    for evaluation in evaluations:
        lines += _eval_table(evaluation)
    for name, file in plots.items():
        lines += [f"![{name} loss]({file})", ""]
    return "\n".join(lines).rstrip() + "\n"


def _counts(phases: dict[str, Any]) -> str:
    counts = phases.get("mine", {}).get("data", {})
    return ", ".join(f"{source}: {c['train']:,} train / {c['validation']:,} held out" for source, c in counts.items())


def _eval_table(evaluation: dict[str, Any]) -> list[str]:
    settings = evaluation.get("settings", {})
    lines = [
        f"### `serac eval`: {evaluation['task']}, {evaluation['n_edits']:,} edits in memory at once",
        "",
        f"Free generation, exact match after normalisation; {settings.get('sample', 'all')} edits scored; "
        f"DD on {evaluation.get('dd_source') or 'the dataset out-of-scope inputs'}. "
        "Source: " + ", ".join(f"`{Path(f).parent.name}/{Path(f).name}`" for f in evaluation.get("files", [evaluation["file"]]))
        + ".",
        "",
        "| method | ES | ES conflict-aware | reliability | generalization (rephrasings) "
        "| inputs conflict-aware | rephrasings conflict-aware | locality | DD |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for method, metrics in evaluation["methods"].items():
        cells = [_pct(metrics.get(m, {}).get("value")) for m in EVAL_METRICS]
        lines.append(f"| {method} | " + " | ".join(cells) + " |")
    return lines + [""]
