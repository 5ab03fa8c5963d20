"""Chaos run against a live `serac serve` on the tiny test model (issue #11's scenarios, bounded).

    python scripts/chaos.py [--out benchmarks/extra/chaos.md]

Starts `serac serve` twice on 127.0.0.1 (free ports; once with API keys, once without) over a tiny
random causal LM (tests/conftest.py) and the embedded MiniLM scope encoder, then repeats each
scenario a bounded number of times and prints a table: attempts, unexpected 5xx (500/502; the
designed 503/504 answers are counted apart), reads or health checks over 2 s while a write waits,
lost edits (acknowledged but not live), secrets found in the server's log, /healthz p99 while a
write waits on a locked store, and the time an abandoned generation takes to stop. Every loop is
bounded in count and time; both servers are stopped at the end.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import signal
import socket
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

import httpx

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

READ_KEY = "chaos-read-key-0123456789"
WRITE_KEY = "chaos-write-key-0123456789"
HANG_S = 2.0
LONG_TOKENS = 1500  # an abandoned generation would run for seconds (the control row says how long)


@dataclass
class Row:
    scenario: str
    attempts: int = 0
    unexpected_5xx: int = 0
    designed: str = ""  # designed refusals seen (503 busy, 504 timeout, ...)
    hangs: int | str = "-"
    lost_edits: int | str = "-"
    leaked: int | str = "-"
    health_p99_ms: float | str = "-"
    stop_s: float | str = "-"
    notes: list[str] = field(default_factory=list)


# -- the server -----------------------------------------------------------------------------------
def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def tiny_artifact(directory: Path) -> Path:
    """An artifact directory `serac serve --model` loads: the tiny LM as base and counterfactual."""
    from serac.config import SeracConfig
    from tests.conftest import save_tiny_causal

    save_tiny_causal(directory / "tiny")
    # No end-of-text token: every generation runs to max_tokens unless stopped, so a stop is visible.
    for name in ("config.json", "generation_config.json"):
        path = directory / "tiny" / name
        if path.exists():
            data = json.loads(path.read_text())
            data["eos_token_id"] = None
            path.write_text(json.dumps(data, indent=2))
    config = SeracConfig()
    for part in (config.base, config.counterfactual):
        part.model, part.device, part.max_new_tokens = "tiny", "cpu", 8
    config.scope.device = "cpu"
    config.save(directory / "serac_config.json")
    return directory


class Server:
    def __init__(self, model: Path, store: Path, log: Path, keys: bool) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.store, self.log_path = store, log
        env = {
            **os.environ,
            "PYTHONPATH": str(REPO),
            "OMP_NUM_THREADS": "1",
            "TOKENIZERS_PARALLELISM": "false",
        }
        env.pop("SERAC_API_KEYS", None)
        if keys:
            env["SERAC_API_KEYS"] = f"read:{READ_KEY},write:{WRITE_KEY}"
        serve = "from serac.cli import app; app()"  # `serac serve` from this checkout
        command = [sys.executable, "-c", serve, "serve", "--model", str(model), "--store", str(store)]
        command += ["--port", str(self.port), "--max-tokens-limit", str(LONG_TOKENS), "--log-level", "info"]
        self.log = open(log, "w")
        self.process = subprocess.Popen(command, env=env, cwd=REPO, stdout=self.log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 180
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"serac serve exited:\n{log.read_text()[-3000:]}")
            try:
                if httpx.get(self.url + "/healthz", timeout=1).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.2)
        self.stop()
        raise RuntimeError("serac serve did not become healthy within 180 s")

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGINT)
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=10)
        self.log.close()


def client(server: Server, key: str | None = WRITE_KEY, timeout: float = 30) -> httpx.Client:
    headers = {"Authorization": f"Bearer {key}"} if key else {}
    return httpx.Client(base_url=server.url, headers=headers, timeout=timeout)


def count(row: Row, response: httpx.Response, designed: dict[int, int]) -> None:
    row.attempts += 1
    if response.status_code in (500, 502):
        row.unexpected_5xx += 1
    elif response.status_code >= 500:
        designed[response.status_code] = designed.get(response.status_code, 0) + 1


def designed_text(designed: dict[int, int]) -> str:
    return ", ".join(f"{n}x{status}" for status, n in sorted(designed.items())) or "none"


def p99(values: list[float]) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(0.99 * len(ordered)))] if ordered else float("nan")


def active_generations(http: httpx.Client) -> float:
    for line in http.get("/metrics").text.splitlines():
        if line.startswith("serac_active_generations "):
            return float(line.split()[1])
    return float("nan")


def time_to_idle(http: httpx.Client, limit_s: float = 30) -> float:
    started = time.monotonic()
    while time.monotonic() - started < limit_s:
        if active_generations(http) == 0:
            return time.monotonic() - started
        time.sleep(0.05)
    return float("inf")


# -- scenarios ------------------------------------------------------------------------------------
def locked_store(server: Server, acknowledged: list[int], hold_s: float, label: str) -> Row:
    """Another process holds the store's write lock while one edit write waits; health, reads and
    inference keep answering."""
    row, designed = Row(label), {}
    write_result: dict[str, httpx.Response] = {}
    other = sqlite3.connect(server.store, isolation_level=None, timeout=0)
    other.execute("BEGIN IMMEDIATE")

    def write() -> None:
        with client(server) as http:
            write_result["r"] = http.post("/v1/edits", json={"input": f"{label} q", "target": f"{label} a"})

    writer = threading.Thread(target=write)
    health_ms: list[float] = []
    hangs = 0
    try:
        writer.start()
        time.sleep(0.3)
        deadline = time.monotonic() + hold_s
        with client(server, READ_KEY) as http:
            i = 0
            while time.monotonic() < deadline and i < 2000:
                i += 1
                method, path, body = [
                    ("GET", "/healthz", None),
                    ("GET", "/v1/edits?limit=5", None),
                    ("GET", "/v1/edits/version", None),
                    (
                        "POST",
                        "/v1/chat/completions",
                        {"messages": [{"role": "user", "content": "hi"}], "max_tokens": 2},
                    ),
                ][i % 4]
                started = time.monotonic()
                response = http.request(method, path, json=body)
                took = time.monotonic() - started
                count(row, response, designed)
                hangs += took > HANG_S
                if path == "/healthz":
                    health_ms.append(took * 1000)
    finally:
        other.rollback()
        other.close()
    writer.join(timeout=60)
    response = write_result.get("r")
    if response is not None:
        count(row, response, designed)
        if response.status_code == 201:
            acknowledged.extend(e["id"] for e in response.json()["data"])
        row.notes.append(f"the waiting write: {response.status_code}")
    row.hangs, row.health_p99_ms, row.designed = hangs, round(p99(health_ms), 1), designed_text(designed)
    row.notes.append(f"{len(health_ms)} health checks")
    return row


def abandoned_streams(server: Server, streams: int = 4) -> Row:
    row, designed = Row(f"{streams} streams closed after the first event"), {}
    with client(server, READ_KEY, timeout=300) as http:
        started = time.monotonic()  # control: one generation of the same length, not abandoned
        count(
            row, http.post("/v1/completions", json={"prompt": "control", "max_tokens": LONG_TOKENS}), designed
        )
        row.notes.append(
            f"one uninterrupted {LONG_TOKENS}-token generation: {time.monotonic() - started:.1f} s"
        )
        for i in range(streams):
            body = {"prompt": f"tell me a story {i}", "max_tokens": LONG_TOKENS, "stream": True}
            with http.stream("POST", "/v1/completions", json=body) as response:
                count(row, response, designed)
                next(response.iter_lines())
        row.stop_s = round(time_to_idle(http), 2)
        started = time.monotonic()
        response = http.post("/v1/completions", json={"prompt": "after", "max_tokens": 2})
        count(row, response, designed)
        row.notes.append(f"a 2-token request after them: {time.monotonic() - started:.2f} s")
    row.designed = designed_text(designed)
    return row


def abandoned_requests(server: Server, requests: int = 2) -> Row:
    row, designed = Row(f"{requests} non-streamed requests abandoned after 1 s"), {}
    for i in range(requests):
        row.attempts += 1
        try:
            with client(server, READ_KEY, timeout=1.0) as http:
                http.post("/v1/completions", json={"prompt": f"long answer {i}", "max_tokens": LONG_TOKENS})
        except httpx.TimeoutException:
            pass
    with client(server, READ_KEY) as http:
        row.stop_s = round(time_to_idle(http), 2)
    row.designed = designed_text(designed)
    return row


def stream_flood(server: Server, streams: int = 8) -> Row:
    """More simultaneous streams than --max-streams (4): the rest get 503 + Retry-After at once."""
    row, designed = Row(f"{streams} simultaneous streams (cap 4)"), {}
    results: list[httpx.Response] = []
    lock = threading.Lock()

    def one(i: int) -> None:
        with client(server, READ_KEY) as http:
            body = {"prompt": f"flood {i}", "max_tokens": 64, "stream": True}
            response = http.post("/v1/completions", json=body)
            with lock:
                results.append(response)

    threads = [threading.Thread(target=one, args=(i,)) for i in range(streams)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    for response in results:
        count(row, response, designed)
    missing_retry = sum(1 for r in results if r.status_code == 503 and "retry-after" not in r.headers)
    row.notes.append(f"503 without Retry-After: {missing_retry}")
    row.designed = designed_text(designed)
    return row


def concurrent_writes(server: Server, acknowledged: list[int], writers: int = 4, each: int = 25) -> Row:
    row, designed = Row(f"{writers} writers x {each} edits, with a 1 s store lock midway"), {}
    lock = threading.Lock()

    def writer(w: int) -> None:
        with client(server) as http:
            for i in range(each):
                response = http.post(
                    "/v1/edits", json={"input": f"writer {w} question {i}", "target": f"a{w}.{i}"}
                )
                with lock:
                    count(row, response, designed)
                    if response.status_code == 201:
                        acknowledged.extend(e["id"] for e in response.json()["data"])

    threads = [threading.Thread(target=writer, args=(w,)) for w in range(writers)]
    for thread in threads:
        thread.start()
    time.sleep(0.5)
    other = sqlite3.connect(server.store, isolation_level=None, timeout=5)
    other.execute("BEGIN IMMEDIATE")
    time.sleep(1.0)
    other.rollback()
    other.close()
    for thread in threads:
        thread.join(timeout=300)
    row.designed = designed_text(designed)
    return row


def lost_edits(server: Server, acknowledged: list[int]) -> int:
    live: set[int] = set()
    with client(server, READ_KEY) as http:
        offset = 0
        while offset < 100_000:
            page = http.get("/v1/edits", params={"offset": offset, "limit": 1000}).json()
            live.update(e["id"] for e in page["data"])
            offset += len(page["data"])
            if not page["has_more"]:
                break
    return sum(1 for i in acknowledged if i not in live)


def metrics_flood(server: Server, requests: int = 2000) -> Row:
    row, designed = Row(f"{requests} requests with made-up methods and paths"), {}
    with client(server, READ_KEY) as http:
        before = len(http.get("/metrics").content)
        for i in range(requests):
            count(row, http.request(f"X{i}METHOD", f"/scan/{i}/{'x' * (i % 50)}"), designed)
        after = len(http.get("/metrics").content)
    row.notes.append(f"/metrics {before / 1024:.1f} KB -> {after / 1024:.1f} KB")
    row.designed = designed_text(designed)
    return row


def secret_probes(server: Server, requests: int = 60) -> Row:
    row, designed = Row(f"{requests} requests carrying keys (query, header, wrong keys)"), {}
    probes = [READ_KEY, WRITE_KEY, "chaos-wrong-key-0123456789"]
    with httpx.Client(base_url=server.url, timeout=30) as http:
        for i in range(requests):
            key = probes[i % 3]
            kind = i % 3
            if kind == 0:
                response = http.get("/v1/models", params={"api_key": key})
            elif kind == 1:
                response = http.post(
                    "/v1/edits/rollback", content=b"{bad json", headers={"Authorization": f"Bearer {key}"}
                )
            else:
                response = http.get(f"/v1/edits?token={key}", headers={"Authorization": f"Bearer {key}"})
            count(row, response, designed)
    row.designed = designed_text(designed)
    return row


def rebinding(server: Server, requests: int = 40) -> Row:
    row, designed = Row(f"{requests} DNS-rebinding / cross-origin writes (no keys)"), {}
    accepted = 0
    with httpx.Client(base_url=server.url, timeout=30) as http:
        for i in range(requests):
            headers = [
                {"Host": "attacker.example", "Origin": "http://attacker.example"},
                {"Origin": "http://attacker.example"},
            ][i % 2]
            response = http.post("/v1/edits", json={"input": f"rebind {i}", "target": "x"}, headers=headers)
            count(row, response, designed)
            accepted += response.status_code < 400
    row.notes.append(f"accepted: {accepted}")
    row.designed = designed_text(designed)
    return row


# -- the run ----------------------------------------------------------------------------------------
def render(rows: list[Row], command: str, took_s: float) -> str:
    header = (
        "| scenario | attempts | unexpected 5xx | designed 5xx | hangs > 2 s | lost edits | leaked secrets "
        "| /healthz p99 (ms) | stop after disconnect (s) | notes |"
    )
    lines = [header, "|" + "---|" * 10]
    for r in rows:
        lines.append(
            f"| {r.scenario} | {r.attempts} | {r.unexpected_5xx} | {r.designed} | {r.hangs} | {r.lost_edits} "
            f"| {r.leaked} | {r.health_p99_ms} | {r.stop_s} | {'; '.join(r.notes)} |"
        )
    machine = f"{os.cpu_count()}-core CPU ({platform.machine()}), shared with other jobs"
    return "\n".join(
        [
            "## Chaos run: serac serve under faults (issue #11)",
            "",
            f"Command: `{command}`  ",
            f"Date: {datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC; machine: {machine}; "
            f"Python {platform.python_version()}; run time {took_s:.0f} s.  ",
            "Server: `serac serve` on 127.0.0.1 over a tiny random causal LM (tests/conftest.py) with the "
            "embedded MiniLM scope encoder; `--max-tokens-limit 1500`, other limits at their defaults "
            "(4 streams, 64 queued prompts, 120 s per request, store busy timeout 10 s).",
            "",
            "Targets: /healthz p99 < 100 ms while a write waits on a locked store; abandoned generations "
            "stop within 1 s of disconnect; 0 lost edits; 0 secrets in logs. `designed 5xx` are the "
            "server's intended answers (503 busy/locked with Retry-After); `unexpected 5xx` are 500/502. "
            "`stop after disconnect`: seconds from the last client's disconnect until `/metrics` shows no "
            "generation running (`serac_active_generations`, polled every 50 ms). `hangs`: health checks, "
            "reads and 2-token chats that took over 2 s while the write waited.",
            "",
            *lines,
            "",
        ]
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", type=Path, default=REPO / "benchmarks" / "extra" / "chaos.md")
    args = parser.parse_args()
    command = "python scripts/chaos.py" + (
        f" --out {args.out}" if args.out != parser.get_default("out") else ""
    )
    started = time.monotonic()
    rows: list[Row] = []
    with tempfile.TemporaryDirectory(prefix="serac-chaos-") as tmp:
        tmp_path = Path(tmp)
        print("building the tiny model artifact ...", flush=True)
        model = tiny_artifact(tmp_path / "model")
        print("starting serac serve (with keys) ...", flush=True)
        server = Server(model, tmp_path / "edits.db", tmp_path / "serve.log", keys=True)
        acknowledged: list[int] = []
        try:
            for step in (
                lambda: locked_store(server, acknowledged, 3.0, "write waits 3 s on a locked store"),
                lambda: locked_store(server, acknowledged, 12.0, "write waits 12 s (past the busy timeout)"),
                lambda: abandoned_streams(server),
                lambda: abandoned_requests(server),
                lambda: stream_flood(server),
                lambda: concurrent_writes(server, acknowledged),
                lambda: metrics_flood(server),
                lambda: secret_probes(server),
            ):
                row = step()
                print(f"  {row.scenario}: done", flush=True)
                rows.append(row)
            lost = lost_edits(server, acknowledged)
            for row in rows:
                if "writ" in row.scenario:  # the scenarios that write
                    row.lost_edits = lost
                    row.notes.append(f"all {len(acknowledged)} acknowledged edits of the run checked")
        finally:
            server.stop()
        log_text = server.log_path.read_text(errors="replace")
        leaked = sum(log_text.count(k) for k in (READ_KEY, WRITE_KEY, "chaos-wrong-key-0123456789"))
        rows[-1].leaked = leaked
        rows[-1].notes.append(f"{len(log_text.splitlines())} log lines searched")
        print("starting serac serve (no keys) ...", flush=True)
        open_server = Server(model, tmp_path / "open.db", tmp_path / "open.log", keys=False)
        try:
            rows.append(rebinding(open_server))
            with httpx.Client(base_url=open_server.url) as http:
                rows[-1].notes.append(f"edits stored: {http.get('/v1/edits/version').json()['count']}")
        finally:
            open_server.stop()
    text = render(rows, command, time.monotonic() - started)
    print(text)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(text)
    (args.out.with_suffix(".json")).write_text(json.dumps([r.__dict__ for r in rows], indent=2, default=str))


if __name__ == "__main__":
    main()
