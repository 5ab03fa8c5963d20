"""Turn the `serac eval --methods mend` runs of benchmarks/extra/mend_bench.sh (benchmarks/extra/mend/*)
into the saved form of a `serac bench --methods mend` run (run.json, details.json), so that
`serac bench --merge-from DIR` puts mend's rows into benchmarks/results.json and BENCHMARKS.md with
the sizes they were measured at (each part's own scored sample and DD set, stated in the report).

Usage: python benchmarks/extra/mend_to_bench.py [RUNS_DIR] OUT_DIR
       serac bench --merge-from OUT_DIR

A part run in pieces (zsre-batch-k75-25 and zsre-batch-k5-1: two k lists) becomes one part (their
rows and details together; wall time: the pieces' sum, though they ran side by side).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from serac.eval.bench import STANDARD_PARTS
from serac.eval.report import machine
from serac.eval.results import RunResult

# How each piece was started (mend.md) and when: its log's last write minus its wall time (the logs
# were in the session's scratch folder, 2026-12-01; minutes are approximate). Only zsre-batch is left:
# the sequential parts' mend rows now come from `serac bench --methods mend` itself.
PIECES = {
    "zsre-batch-k75-25": ("BATCH_SIZES=75,25 PART=zsre-batch", "2026-12-01T01:10:00+00:00"),
    "zsre-batch-k5-1": ("BATCH_SIZES=5,1 PART=zsre-batch", "2026-12-01T01:15:00+00:00"),
}
SCRIPT = "benchmarks/extra/mend_bench.sh"


def dd_questions(result: dict) -> int:
    """The DD set's size, from the run's own description ("50 questions sampled from ...")."""
    return int(result["dd_source"].split()[0])


def part_of(pieces: list[tuple[str, dict]], name: str) -> tuple[dict, RunResult]:
    results = [RunResult.from_json(r) for _, r in pieces]
    first = results[0]
    settings = dict(first.settings)
    standard = next(p for p in STANDARD_PARTS if p.name == name)
    # the bench's cap for mend on this part (the eval run stopped there: --n-edits 1000 on CounterFact)
    settings["method_caps"] = {m: c for m, c in standard.settings.method_caps.items() if m == "mend"}
    if first.mode == "batch":
        settings["batch_sizes"] = sorted({k for r in results for k in r.settings["batch_sizes"]})
    merged = RunResult(first.task, first.mode, settings,
                       sorted((s for r in results for s in r.scores), key=lambda s: (s.n_edits, s.scoring)),
                       [n for r in results for n in r.notes],
                       sorted((d for r in results for d in r.details), key=lambda d: d["n_edits"]),
                       first.dd_source, sum(r.wall_s for r in results), {})
    dd = {dd_questions(r) for _, r in pieces}
    if len(dd) != 1:
        raise SystemExit(f"{name}: its pieces used different DD set sizes {sorted(dd)}")
    commands = " ; ".join(f"{PIECES[piece][0]} {SCRIPT}" for piece, _ in pieces)
    part = {"name": name, "task": standard.task, "file": standard.file, "methods": ["mend"], "dd_sample": dd.pop(),
            "settings": {k: v for k, v in settings.items() if k != "n_edits_used"}, "wall_s": round(merged.wall_s, 1),
            "sources": {"mend": {"command": commands, "started": min(PIECES[p][1] for p, _ in pieces),
                                 "wall_s": round(merged.wall_s, 1), "machine": machine(),
                                 "sample": settings.get("sample") if first.mode == "sequential" else None,
                                 "dd_sample": None, "checkpoints": settings.get("checkpoints"),
                                 "batch_sizes": settings["batch_sizes"]}}}
    part["sources"]["mend"]["dd_sample"] = part["dd_sample"]
    return part, merged


def main(runs: Path, out: Path) -> None:
    by_part: dict[str, list[tuple[str, dict]]] = {}
    for piece in PIECES:
        found = runs / piece / "results.json"
        if found.exists():
            name = "zsre-batch" if piece.startswith("zsre-batch") else piece
            by_part.setdefault(name, []).append((piece, json.loads(found.read_text())))
    if not by_part:
        raise SystemExit(f"no mend runs under {runs} (expected {', '.join(PIECES)})")
    parts, results = zip(*(part_of(pieces, name) for name, pieces in by_part.items()))
    started = min(p["sources"]["mend"]["started"] for p in parts)
    run = {"started": started, "command": f"{SCRIPT} (serac eval --methods mend), converted by mend_to_bench.py",
           "wall_s": round(sum(p["wall_s"] for p in parts), 1), "load_s": 0.0, "skipped": [], "finished": True,
           "quick": False, "machine": machine(), "parts": list(parts)}
    out.mkdir(parents=True, exist_ok=True)
    (out / "run.json").write_text(json.dumps(run, indent=1) + "\n")
    (out / "details.json").write_text(json.dumps([r.to_json() for r in results], indent=1) + "\n")
    (out / "results.json").write_text(json.dumps([row for r in results for row in r.rows()], indent=1) + "\n")
    print(f"wrote {out}: " + "; ".join(f"{p['name']} ({len(r.scores)} rows)" for p, r in zip(parts, results)))


if __name__ == "__main__":
    args = [Path(a) for a in sys.argv[1:]]
    if len(args) not in (1, 2):
        raise SystemExit(__doc__)
    main(*(args if len(args) == 2 else [Path("benchmarks/extra/mend"), args[0]]))
