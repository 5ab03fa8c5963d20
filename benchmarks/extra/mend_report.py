"""Write the MEND comparison fragment: mend's rows from `serac eval` runs (benchmarks/extra/mend/*)
beside every other method's rows in benchmarks/results.json, per part, N and metric.

Usage: python benchmarks/extra/mend_report.py RUNS_DIR RESULTS_JSON OUT_MD
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

PARTS = {"zsre-batch": ("zsre", "batch"), "zsre-sequential": ("zsre", "sequential"),
         "counterfact-sequential": ("counterfact", "sequential")}
METRICS = [("generation", "es"), ("generation", "reliability"), ("generation", "generalization"),
           ("generation", "locality"), ("generation", "dd"), ("teacher_forced", "es"),
           ("teacher_forced", "locality"), ("cost", "edits_per_s"), ("cost", "latency_ratio_vs_base")]
METHODS = ("mend", "serac", "serac-untrained", "ft", "lu", "icl")


def main(runs: Path, results: Path, out: Path) -> None:
    rows = [r for r in json.loads(results.read_text()) if r["method"] != "mend"]
    lines = ["## MEND beside serac (zsRE and CounterFact, the bench parts)", ""]
    for part, (task, mode) in PARTS.items():
        path = runs / part / "results.json"
        if not path.exists():
            lines += [f"### {part}", "", "Not run.", ""]
            continue
        run = json.loads(path.read_text())
        mine = run["rows"]
        table = {(r["method"], r["n_edits"], r["scoring"], r["metric"]): r["value"]
                 for r in rows + mine if r["task"] == task and r["mode"] == mode}
        ns = sorted({r["n_edits"] for r in mine})
        methods = [m for m in METHODS if any(k[0] == m for k in table)]
        skipped = [d["skipped"] for d in run["details"] if "skipped" in d]
        lines += [f"### {part} (mend: {run['wall_s'] / 60:.0f} min)", "",
                  "| N | metric | " + " | ".join(methods) + " |", "|---|---|" + "---:|" * len(methods)]
        for n in ns:
            for scoring, metric in METRICS:
                values = [table.get((m, n, scoring, metric)) for m in methods]
                if values[0] is None:
                    continue
                cells = ["" if v is None else (f"{v:.2f}" if scoring == "cost" else f"{v:.1%}") for v in values]
                label = metric if scoring == "generation" else f"{metric} ({'tf' if scoring == 'teacher_forced' else 'cost'})"
                lines.append(f"| {n:,} | {label} | " + " | ".join(cells) + " |")
        lines += [""] + ([f"Skipped: {'; '.join(skipped)}.", ""] if skipped else [])
    out.write_text("\n".join(lines).rstrip() + "\n")


if __name__ == "__main__":
    main(Path(sys.argv[1]), Path(sys.argv[2]), Path(sys.argv[3]))
