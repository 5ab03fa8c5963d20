"""Write the MEND comparison fragment: mend's rows from `serac eval` runs (benchmarks/extra/mend/*)
beside every other method's rows in benchmarks/results.json, per part, N and metric. The hand-written
reading of the numbers (benchmarks/extra/mend_notes.txt, when present) goes first.

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
METHODS = ("mend", "serac", "serac-untrained", "ft", "lu", "icl", "grace")


def main(runs: Path, results: Path, out: Path) -> None:
    rows = [r for r in json.loads(results.read_text()) if r["method"] != "mend"]
    notes = out.parent / "mend_notes.txt"
    lines = ["## MEND beside serac (zsRE and CounterFact, the bench parts)", ""]
    if notes.exists():
        lines += [notes.read_text().rstrip(), ""]
    lines += ["Generation scores are exact match (%); `(tf)`: teacher-forced token accuracy; cost rows as in "
              "BENCHMARKS.md. Other methods' columns: `benchmarks/results.json` (the last `serac bench`).", ""]
    for part, (task, mode) in PARTS.items():
        found = sorted(runs.glob(f"{part}*/results.json"))  # a part may be run in pieces (zsre-batch-k75-25)
        if not found:
            lines += [f"### {part}", "", "Not run.", ""]
            continue
        pieces = [json.loads(p.read_text()) for p in found]
        run = {"wall_s": sum(p["wall_s"] for p in pieces), "details": [d for p in pieces for d in p["details"]],
               "sizes": [(p["settings"].get("sample"), p["dd_source"].split(" sampled")[0]) for p in pieces]}
        mine = [r for p in pieces for r in p["rows"]]
        table = {(r["method"], r["n_edits"], r["scoring"], r["metric"]): r["value"]
                 for r in rows + mine if r["task"] == task and r["mode"] == mode}
        ns = sorted({r["n_edits"] for r in mine})
        methods = [m for m in METHODS if any(k[0] == m for k in table)]
        skipped = [d["skipped"] for d in run["details"] if "skipped" in d]
        sizes = "; ".join(f"{'all' if n is None else n} edits scored per N, DD: {dd}" for n, dd in run["sizes"])
        lines += [f"### {part} (mend: {run['wall_s'] / 60:.0f} min; {sizes})", "",
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
