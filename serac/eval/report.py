"""Results as JSON rows, markdown tables and PNG plots (matplotlib, Agg backend: no display needed)."""

from __future__ import annotations

import json
import os
import platform
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from serac.eval.metrics import successes_of, wilson
from serac.eval.results import METRICS, RunResult, Score

METRIC_TITLES = {
    "es": "ES", "es_conflict_aware": "ES conflict-aware", "dd": "DD", "reliability": "reliability",
    "generalization": "generalization", "reliability_conflict_aware": "reliability conflict-aware",
    "generalization_conflict_aware": "generalization conflict-aware",
    "locality": "locality",
    "locality_uncovered": "locality, uncovered",
}


def _fmt(value: float | None, digits: int = 3) -> str:
    return "–" if value is None else f"{value:.{digits}f}"


def rate_cell(value: float | None, count: int | None, digits: int = 3) -> str:
    """A rate with its 95% Wilson interval and the count behind it: ``0.960 [0.90, 0.98] (96/100)``.
    Without a known count (rows saved before counts were kept) only the value."""
    if value is None:
        return "–"
    if not count:
        return _fmt(value, digits)
    successes = successes_of(value, count)
    low, high = wilson(successes, count)
    return f"{value:.{digits}f} [{low:.2f}, {high:.2f}] ({successes}/{count})"


def _cell(score: Score) -> str:
    return rate_cell(score.value, score.count) if score.is_rate else _fmt(score.value)


def _index(scores: Sequence[Score]) -> dict[tuple[str, int, str, str], Score]:
    return {(s.method, s.n_edits, s.scoring, s.metric): s for s in scores}


def _methods(scores: Sequence[Score]) -> list[str]:
    return list(dict.fromkeys(s.method for s in scores))


def markdown_run(result: RunResult, heading: str = "###") -> str:
    """Tables for one run: generation (headline), teacher-forced, cost; then sample sizes and notes."""
    by = _index(result.scores)
    size_label = "k (edits per batch)" if result.mode == "batch" else "N (edits in memory)"
    details = {(d["method"], d["n_edits"]): d for d in result.details if "cost" not in d}
    skipped = {(d["method"], d["n_edits"]): d["skipped"] for d in result.details if "skipped" in d}
    order = _methods(result.scores) + [m for m, _ in skipped if m not in _methods(result.scores)]
    lines = [f"{heading} {result.task}, {result.mode}", ""]
    for scoring, title in (("generation", "free generation, exact match"), ("teacher_forced", "teacher-forced token accuracy")):
        scored = {(m, n) for (m, n, sc, _) in by if sc == scoring}
        if not scored:
            continue
        keys = sorted(scored | set(skipped), key=lambda mn: (order.index(mn[0]), mn[1]))
        # a metric no row of this table has (e.g. one added after these rows were measured) gets no column
        shown = [m for m in METRICS if any(sc == scoring and metric == m for (_, _, sc, metric) in by)]
        lines += [f"*{title}*", "",
                  "| method | " + size_label + " | " + " | ".join(METRIC_TITLES[m] for m in shown) + " | scored inputs (in-scope / locality / DD) |",
                  "|---|---:|" + "---:|" * len(shown) + "---|"]
        for method, n in keys:
            if (method, n) in skipped:
                lines.append(f"| {method} | {n:,} | {skipped[(method, n)]} |" + " |" * len(shown))
                continue
            cells = [_cell(by[(method, n, scoring, m)]) if (method, n, scoring, m) in by else "–" for m in shown]
            d = details.get((method, n), {})
            sizes = f"{d.get('in_scope_inputs', '?')} / {d.get('locality_inputs', '?')} / {d.get('dd_inputs', '?')}"
            lines.append(f"| {method} | {n:,} | " + " | ".join(cells) + f" | {sizes} |")
        lines.append("")
    cost_rows = [d for d in result.details if "cost" in d]
    speeds = [s for s in result.scores if s.metric == "edits_per_s"]
    if speeds or cost_rows:
        lines += ["*cost*", "",
                  "| method | N | edits/s at insert | latency ratio vs base, out-of-scope | latency ratio vs base, in-scope "
                  "| base ms/query | speedup vs re-encoding scope | scope ms/query: index / re-encode |",
                  "|---|---:|---:|---:|---:|---:|---:|---|"]
        cost_of = {(d["method"], d["n_edits"]): d["cost"] for d in cost_rows}
        for method in _methods(result.scores):
            points = sorted({s.n_edits for s in speeds if s.method == method} | {n for (m, n) in cost_of if m == method})
            for n in points:
                eps = by.get((method, n, "cost", "edits_per_s"))
                c = cost_of.get((method, n), {})
                scope = c.get("scope", {})
                timing = (f"{scope['index_ms_per_query']:.1f} / {scope['reencode_ms_per_query']:.0f}" if scope else "–")
                lines.append(
                    f"| {method} | {n:,} | {_fmt(eps.value if eps else None, 1)} | {_fmt(c.get('latency_ratio_out_of_scope'), 2)} "
                    f"| {_fmt(c.get('latency_ratio_in_scope'), 2)} | {_fmt(c.get('base_ms_per_query'), 0)} "
                    f"| {_fmt(scope.get('speedup'), 1)} | {timing} |")
        lines.append("")
    routing = [d for d in result.details if any(k.startswith("routed_to_edit_") for k in d)]
    if routing:
        lines += ["*routing: share of inputs answered from an edit (scope decisions)*", "",
                  f"| method | {size_label} | in-scope inputs | locality inputs | DD inputs |", "|---|---:|---:|---:|---:|"]
        for d in routing:
            cells = [rate_cell(d.get(f"routed_to_edit_{kind}"), d.get(f"{kind}_inputs")) for kind in ("in_scope", "locality", "dd")]
            lines.append(f"| {d['method']} | {d['n_edits']:,} | " + " | ".join(cells) + " |")
        lines.append("")
    lines.append("Rates from free generation and routing shares: value [95% Wilson interval] (count behind it); "
                 "teacher-forced scores average token accuracies, so no interval.")
    lines.append(f"Drawdown set: {result.dd_source}. Wall time {result.wall_s / 60:.1f} min.")
    for note in result.notes:
        lines.append(f"- {note}")
    lines.append("")
    return "\n".join(lines)


def plot_run(result: RunResult, path: str | Path, scoring: str = "generation") -> Path:
    """ES and DD against N (sequential) or k (batch), one line per method; conflict-aware ES dashed."""
    from serac.extras import require

    matplotlib = require("matplotlib", "eval", "the evaluation report's plots")
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import FixedLocator, NullLocator

    by = _index(result.scores)
    fig, axes = plt.subplots(1, 2, figsize=(10, 4))
    xlabel = "edits per batch k" if result.mode == "batch" else "edits in memory N"
    methods = _methods(result.scores)
    markers = "osD^vP*X"
    all_ns: set[int] = set()
    for rank, method in enumerate(methods):
        ns = sorted({n for (m, n, sc, _) in by if m == method and sc == scoring})
        all_ns.update(ns)
        # Earlier methods get bigger markers, so methods with equal scores stay visible (concentric).
        style = {"marker": markers[rank % len(markers)], "markersize": 11 - 1.5 * min(rank, 5), "linewidth": 1.6}
        for ax, metric in zip(axes, ("es", "dd")):
            points = [(n, by[(method, n, scoring, metric)].value) for n in ns if (method, n, scoring, metric) in by]
            if points:
                line, = ax.plot(*zip(*points), label=method, alpha=0.85, **style)
                bars = [(n, sc.value, sc.interval()) for n in ns if (sc := by.get((method, n, scoring, metric)))]
                bars = [(n, v, ci) for n, v, ci in bars if ci is not None]
                if bars:  # 95% Wilson intervals
                    ax.errorbar([n for n, _, _ in bars], [v for _, v, _ in bars],
                                yerr=[[v - ci[0] for _, v, ci in bars], [ci[1] - v for _, v, ci in bars]],
                                fmt="none", ecolor=line.get_color(), alpha=0.5, capsize=3)
                if metric == "es":
                    aware = [(n, by[(method, n, scoring, "es_conflict_aware")].value) for n in ns
                             if (method, n, scoring, "es_conflict_aware") in by]
                    if aware:
                        ax.plot(*zip(*aware), linestyle="--", color=line.get_color(), alpha=0.6)
    for ax, title in zip(axes, ("edit success (ES; dashed: conflict-aware; bars: 95% CI)", "drawdown (DD, lower is better; bars: 95% CI)")):
        ax.set_xscale("log")
        ax.xaxis.set_major_locator(FixedLocator(sorted(all_ns)))
        ax.xaxis.set_minor_locator(NullLocator())
        ax.set_xticklabels([f"{n:,}" for n in sorted(all_ns)])
        ax.set_ylim(-0.05, 1.05)
        ax.set_xlabel(xlabel)
        ax.set_title(title, fontsize=10)
        ax.grid(True, alpha=0.3)
    axes[0].legend(fontsize=8)
    fig.suptitle(f"{result.task}, {result.mode} ({'exact match' if scoring == 'generation' else 'teacher-forced'})")
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def write_run(result: RunResult, out_dir: str | Path) -> dict[str, Path]:
    """``results.json`` (rows and details), ``results.md`` and ``{task}_{mode}.png`` in ``out_dir``."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    paths = {"json": out / "results.json", "markdown": out / "results.md",
             "plot": out / f"{result.task}_{result.mode}.png"}
    paths["json"].write_text(json.dumps(result.to_json(), indent=1) + "\n")
    plot_run(result, paths["plot"])
    paths["markdown"].write_text(markdown_run(result, "##") + f"\n![ES and DD]({paths['plot'].name})\n")
    return paths


def machine() -> dict[str, Any]:
    """CPU model, cores, RAM, torch and Python versions: what the numbers were measured on."""
    import torch

    cpu = platform.processor() or "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    ram_gb = None
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal"):
                ram_gb = round(int(line.split()[1]) / 1024**2, 1)
    except OSError:
        pass
    return {"cpu": cpu, "cores": os.cpu_count(), "ram_gb": ram_gb, "torch": torch.__version__,
            "torch_threads": torch.get_num_threads(), "python": platform.python_version(),
            "platform": platform.platform()}

