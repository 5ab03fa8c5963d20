"""Write the MEND comparison fragment: mend's rows beside every other method's, per part, N and
metric, all read from the saved bench (benchmarks/results.json for the rows, benchmarks/run.json for
how and at what sizes each method's rows of a part were measured). The hand-written reading of the
numbers (benchmarks/extra/mend_notes.txt, when present) goes first.

Usage: python benchmarks/extra/mend_report.py [BENCH_DIR] [OUT_MD]
       (defaults: benchmarks, benchmarks/extra/mend.md)
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

METRICS = [("generation", "es"), ("generation", "reliability"), ("generation", "generalization"),
           ("generation", "locality"), ("generation", "dd"), ("teacher_forced", "es"),
           ("teacher_forced", "locality"), ("cost", "edits_per_s"), ("cost", "latency_ratio_vs_base")]
METHODS = ("mend", "serac", "serac-shipped", "serac-untrained", "ft", "lu", "icl", "grace")


def sizes(part: dict, method: str) -> str:
    """How ``method``'s rows of ``part`` were measured: its own source when merged in, else the part's."""
    source = part.get("sources", {}).get(method)
    sample = source.get("sample") if source else part["settings"].get("sample")
    dd = source.get("dd_sample") if source else part.get("dd_sample")
    return f"{'all' if sample is None else sample} edits scored per N, {dd} DD questions"


def main(bench: Path, out: Path) -> None:
    rows = json.loads((bench / "results.json").read_text())
    run = json.loads((bench / "run.json").read_text())
    notes = out.parent / "mend_notes.txt"
    lines = ["## MEND beside serac (zsRE and CounterFact, the bench parts)", ""]
    if notes.exists():
        lines += [notes.read_text().rstrip(), ""]
    lines += ["Generation scores are exact match (%); `(tf)`: teacher-forced token accuracy; cost rows as in "
              "BENCHMARKS.md. Every column is the saved bench (`benchmarks/results.json`); each part's heading "
              "says how mend's rows were measured and at what sizes, and where another method's sizes differ.", ""]
    for part in run["parts"]:
        task, mode = part["task"], part["settings"]["mode"]
        table = {(r["method"], r["n_edits"], r["scoring"], r["metric"]): r["value"]
                 for r in rows if r["task"] == task and r["mode"] == mode}
        ns = sorted({k[1] for k in table if k[0] == "mend"})
        if not ns:
            lines += [f"### {part['name']}", "", "mend not run.", ""]
            continue
        methods = [m for m in METHODS if any(k[0] == m for k in table)]
        source = part.get("sources", {}).get("mend")
        command = source["command"] if source else run["command"]
        wall = source["wall_s"] if source else part["wall_s"]
        sized = {m: sizes(part, m) for m in methods}
        own = sized["mend"]
        others = [f"{m}: {s}" for m, s in sized.items() if s != own]
        lines += [f"### {part['name']} (mend: {own}; {wall / 60:.0f} min)", "",
                  f"mend's rows: `{command}`." + (f" Other sizes: {'; '.join(others)}." if others else ""), "",
                  "| N | metric | " + " | ".join(methods) + " |", "|---|---|" + "---:|" * len(methods)]
        for n in ns:
            for scoring, metric in METRICS:
                values = [table.get((m, n, scoring, metric)) for m in methods]
                if values[0] is None:
                    continue
                cells = ["" if v is None else (f"{v:.2f}" if scoring == "cost" else f"{v:.1%}") for v in values]
                label = metric if scoring == "generation" else f"{metric} ({'tf' if scoring == 'teacher_forced' else 'cost'})"
                lines.append(f"| {n:,} | {label} | " + " | ".join(cells) + " |")
        lines.append("")
    out.write_text("\n".join(lines).rstrip() + "\n")


if __name__ == "__main__":
    args = sys.argv[1:]
    main(Path(args[0]) if args else Path("benchmarks"),
         Path(args[1]) if len(args) > 1 else Path("benchmarks/extra/mend.md"))
