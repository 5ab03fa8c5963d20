"""Quality through the gateway's remote base: `serac eval` on zsRE (sequential) with the base model in
process, and with the same embedded SmolLM2 behind `serac serve` reached over HTTP (`--upstream`).
Same ES/DD expected, within sampling noise (greedy decoding; the in-process run pads batches of 8).

    nice -n 5 python scripts/gateway_eval.py [--limit 10] [--out benchmarks/extra/gateway.md]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from gateway_common import MACHINE, REPO, serac, serac_upstream, write_section

DATA = REPO.parent / "shared" / "data" / "zsre" / "zsre_mend_eval_portability_gpt4.json"


def evaluate(out: Path, limit: int, *extra: str) -> tuple[list[dict], float]:
    started = time.perf_counter()
    command = serac("eval", "--task", "zsre", "--data", str(DATA), "--mode", "sequential", "--methods",
                    "serac-untrained,base", "--limit", str(limit), "--scoring", "generation", "--no-cost",
                    "--out", str(out), *extra)
    subprocess.run(command, cwd=REPO, check=True, env={**os.environ, "PYTHONPATH": str(REPO)})
    return json.loads((out / "results.json").read_text())["counts"], time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--limit", type=int, default=10)
    parser.add_argument("--out", type=Path, default=REPO / "benchmarks" / "extra" / "gateway.md")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="serac-gateway-eval-") as tmp:
        work = Path(tmp)
        local, local_s = evaluate(work / "in-process", args.limit)
        with serac_upstream(work) as upstream:
            remote, remote_s = evaluate(work / "upstream", args.limit, "--upstream", upstream.url + "/v1")
    keys = ("method", "n_edits", "metric")
    remote_by = {tuple(r[k] for k in keys): r for r in remote}
    lines = [
        "### zsRE through the remote base: in-process vs `--upstream`",
        "",
        f"Command: `python scripts/gateway_eval.py --limit {args.limit}` (two `serac eval --task zsre --mode "
        f"sequential --methods serac-untrained,base --limit {args.limit} --scoring generation --no-cost` runs, the "
        "second with `--upstream` pointing at `serac serve` on the same embedded SmolLM2)  ",
        f"Date: {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}  ",
        f"Machine: {MACHINE}; wall {local_s / 60:.1f} min in process, {remote_s / 60:.1f} min through HTTP",
        "",
        "| method | N edits | metric | in process | through the upstream | scored |",
        "|---|---:|---|---:|---:|---:|",
    ]
    for row in local:
        if row["metric"] not in ("es", "dd", "reliability", "generalization", "locality"):
            continue
        other = remote_by.get(tuple(row[k] for k in keys))
        value = f"{other['value']:.3f}" if other else "-"
        lines.append(f"| {row['method']} | {row['n_edits']} | {row['metric'].upper() if len(row['metric']) == 2 else row['metric']} "
                     f"| {row['value']:.3f} | {value} | {row.get('count', '')} |")
    lines.append("")
    write_section(args.out, "\n".join(lines))
    print("\n".join(lines))


if __name__ == "__main__":
    main()
