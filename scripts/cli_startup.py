"""Wall time of store-only CLI commands (`serac edit list` by default) on a store with N edits.

Runs the CLI in fresh interpreters REPEAT times each and prints the median and min wall time, and
whether torch/transformers/fastapi were imported. Used for benchmarks/extra/cli_startup.md:

    python scripts/cli_startup.py --edits 1000 --repeat 10
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HEAVY = ("torch", "transformers", "fastapi", "matplotlib")
# Runs the CLI in-process, then reports which heavy modules it imported (on stderr, as JSON).
_WRAPPER = (
    "import sys, json, atexit\n"
    "atexit.register(lambda: sys.stderr.write('\\nIMPORTED ' + json.dumps("
    "[m for m in %r if m in sys.modules]) + '\\n'))\n"
    "from serac.cli import app\n"
    "app(prog_name='serac')\n" % (HEAVY,)
)


def make_store(path: Path, n: int) -> None:
    from serac.store import EditStore

    with EditStore(path) as store:
        store.add_many([(f"Question number {i}?", f"answer {i}") for i in range(n)])


def run_once(args: list[str]) -> tuple[float, list[str]]:
    start = time.perf_counter()
    proc = subprocess.run([sys.executable, "-c", _WRAPPER, *args], capture_output=True, text=True,
                          env={**os.environ, "OMP_NUM_THREADS": "1"}, check=True)
    wall = time.perf_counter() - start
    line = [x for x in proc.stderr.splitlines() if x.startswith("IMPORTED ")][-1]
    return wall, json.loads(line.removeprefix("IMPORTED "))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--edits", type=int, default=1000)
    parser.add_argument("--repeat", type=int, default=10)
    parser.add_argument("--command", default="edit list", help="CLI sub-command to time (store-only).")
    options = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        store = Path(tmp) / "edits.db"
        make_store(store, options.edits)
        args = [*options.command.split(), "--store", str(store)]
        run_once(args)  # warm the file cache
        times, imported = [], []
        for _ in range(options.repeat):
            wall, imported = run_once(args)
            times.append(wall)
    print(json.dumps({"command": f"serac {options.command}", "edits": options.edits, "repeat": options.repeat,
                      "median_s": round(statistics.median(times), 3), "min_s": round(min(times), 3),
                      "heavy_modules_imported": imported}))


if __name__ == "__main__":
    main()
