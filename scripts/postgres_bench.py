"""Edit store operations on SQLite and PostgreSQL side by side, at a few store sizes.

Fills each store with N edits (random unit 384-d key vectors, batches of 1,000), then times, as the
median of --repeats runs: adding one edit with its vector, the per-request version read, reading
the changes of one version (a replica's catch-up), count, removing one edit, a rollback that undoes
one add, and (PostgreSQL only) how long a second store object takes to be woken by the NOTIFY of a
write. PostgreSQL runs on a throwaway local cluster (tests/pgcluster.py, Unix socket, fsync on)
unless --url names one. Writes benchmarks/extra/postgres_store.{json,md}.

    nice -n 5 python scripts/postgres_bench.py --sizes 1000 10000 100000
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import tempfile
import threading
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from serac.postgres_store import PostgresEditStore  # noqa: E402
from serac.store import EditStore  # noqa: E402

DIM = 384


def median_ms(fn: Callable[[int], Any], repeats: int) -> float:
    times = []
    for i in range(repeats):
        start = time.perf_counter()
        fn(i)
        times.append((time.perf_counter() - start) * 1000)
    return round(statistics.median(times), 3)


def fill(store: Any, n: int, rng: np.random.Generator) -> float:
    """Add n edits in batches of 1,000; returns ms per edit."""
    start = time.perf_counter()
    for first in range(0, n, 1000):
        size = min(1000, n - first)
        vectors = rng.standard_normal((size, DIM)).astype(np.float32)
        vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
        store.add_many(
            [(f"filler question {first + j}", "answer") for j in range(size)], embeddings=("bench", vectors)
        )
    return (time.perf_counter() - start) * 1000 / max(n, 1)


def measure(store: Any, n: int, repeats: int, rng: np.random.Generator) -> dict[str, float]:
    row: dict[str, float] = {"edits": n, "fill_ms_per_edit": round(fill(store, n, rng), 3)}
    vector = rng.standard_normal((1, DIM)).astype(np.float32)
    added: list[int] = []

    def add(i: int) -> None:
        added.append(store.add_many([(f"new question {i}", "new")], embeddings=("bench", vector))[0].id)

    row["add_one_ms"] = median_ms(add, repeats)
    row["version_read_ms"] = median_ms(lambda i: store.version, repeats)
    row["count_ms"] = median_ms(lambda i: store.count(), repeats)
    row["changes_of_one_version_ms"] = median_ms(lambda i: store.changes_since(store.version - 1), repeats)
    row["remove_one_ms"] = median_ms(lambda i: store.remove(added[i]), repeats)

    timings: list[float] = []
    for i in range(repeats):
        before = store.version
        store.add(f"to undo {i}", "x")
        start = time.perf_counter()
        store.rollback(before)
        timings.append((time.perf_counter() - start) * 1000)
    row["rollback_one_add_ms"] = round(statistics.median(timings), 3)
    return row


def notify_latency(url: str, repeats: int) -> float:
    """ms from a write's commit (as its writer sees it) to another store's wait_for_change waking."""
    with PostgresEditStore(url) as writer, PostgresEditStore(url) as reader:
        reader.listen()
        deadline = time.monotonic() + 10
        while not reader.listening and time.monotonic() < deadline:
            time.sleep(0.01)
        latencies = []
        for i in range(repeats):
            seen = reader.version
            woke: list[float] = []
            thread = threading.Thread(
                target=lambda: (reader.wait_for_change(seen, 10), woke.append(time.perf_counter()))
            )
            thread.start()
            time.sleep(0.02)
            writer.add(f"notify {i}", "x")
            committed = time.perf_counter()
            thread.join(timeout=15)
            latencies.append(max(0.0, woke[0] - committed) * 1000)
        return round(statistics.median(latencies), 3)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--sizes", type=int, nargs="+", default=[1000, 10000, 100000])
    parser.add_argument("--repeats", type=int, default=30)
    parser.add_argument("--url", help="an existing PostgreSQL database (tables go to a new schema)")
    parser.add_argument("--out", type=Path, default=REPO / "benchmarks" / "extra" / "postgres_store")
    args = parser.parse_args()

    cluster = None
    if args.url is None:
        from tests.pgcluster import PostgresCluster, find_bindir

        bindir = find_bindir()
        if bindir is None:
            sys.exit("no PostgreSQL binaries found; pass --url postgresql://... or install postgresql")
        cluster = PostgresCluster(bindir, fsync=True).start()
    rows: list[dict[str, Any]] = []
    try:
        with tempfile.TemporaryDirectory() as tmp:
            for n in args.sizes:
                for backend in ("sqlite", "postgres"):
                    rng = np.random.default_rng(n)
                    if backend == "sqlite":
                        store: Any = EditStore(Path(tmp) / f"edits-{n}.db")
                    else:
                        url = cluster.new_schema_url() if cluster else args.url
                        store = PostgresEditStore(url)
                    with store:
                        row = {"backend": backend, **measure(store, n, args.repeats, rng)}
                    if backend == "postgres":
                        row["notify_wake_ms"] = notify_latency(url, args.repeats)
                    rows.append(row)
                    print(json.dumps(row), flush=True)
    finally:
        if cluster is not None:
            cluster.stop()

    command = "nice -n 5 python scripts/postgres_bench.py " + " ".join(
        ["--sizes", *map(str, args.sizes), "--repeats", str(args.repeats)]
    )
    meta = {
        "command": command,
        "date": datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "machine": f"{os.cpu_count()}-core CPU ({platform.machine()}), shared with other jobs; PostgreSQL "
        "on a local Unix socket, fsync on; SQLite WAL, synchronous=FULL",
        "repeats": args.repeats,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.with_suffix(".json").write_text(json.dumps({**meta, "rows": rows}, indent=2) + "\n")
    columns = [
        ("edits", "stored edits"),
        ("backend", "backend"),
        ("fill_ms_per_edit", "insert, ms/edit (batches of 1,000)"),
        ("add_one_ms", "add one, ms"),
        ("version_read_ms", "version read, ms"),
        ("count_ms", "count, ms"),
        ("changes_of_one_version_ms", "changes of one version, ms"),
        ("remove_one_ms", "remove one, ms"),
        ("rollback_one_add_ms", "rollback of one add, ms"),
        ("notify_wake_ms", "NOTIFY wake, ms"),
    ]
    lines = [
        "## Edit store: SQLite and PostgreSQL",
        "",
        f"`{command}` ({meta['date']}; {meta['machine']}). Medians of {args.repeats} runs; each store "
        "first filled with N edits and random 384-d vectors. 'Version read' is what every request pays "
        "to see other replicas' edits; 'NOTIFY wake' is the time from a write's commit to another "
        "process's store waking (PostgreSQL only).",
        "",
        "| " + " | ".join(title for _, title in columns) + " |",
        "|" + "---|" * len(columns),
    ]
    for row in rows:
        lines.append("| " + " | ".join(f"{row.get(key, '')}" for key, _ in columns) + " |")
    args.out.with_suffix(".md").write_text("\n".join(lines) + "\n")
    print(args.out.with_suffix(".md").read_text())


if __name__ == "__main__":
    main()
