"""Replicas: several `serac serve` processes (tiny models) on one PostgreSQL edit store.

What a load balancer in front of them needs: an edit written through one replica is answered in
scope by the next request to another; a rollback on one is seen by the others; killing a replica
mid-burst loses no acknowledged edit; replicas writing at once get gap-free, unique versions.
"""

from __future__ import annotations

import hashlib
import os
import threading
import time
from typing import Iterator

import httpx
import pytest

if os.environ.get("SERAC_REQUIRE_POSTGRES") != "1":  # required: a missing psycopg fails below
    pytest.importorskip("psycopg", reason="psycopg 3 is not installed: pip install -e '.[postgres]'")
import psycopg  # noqa: E402

from .tiny import ProcessServer, ensure_tiny_model

PER_BATCH = 3


def _question(tag: str) -> str:
    """Four words of its own per edit: the bag-of-words test encoder must not read two of these
    as one fact (shared words like the tag's would put them over the threshold)."""
    digest = hashlib.md5(tag.encode()).hexdigest()
    return " ".join(digest[i : i + 8] for i in range(0, 32, 8))


def _ask(client: httpx.Client, question: str) -> dict:
    response = client.post("/v1/completions", json={"prompt": question, "max_tokens": 2})
    assert response.status_code == 200, response.text
    return response.json()["choices"][0]["serac"]


@pytest.fixture(scope="module")
def store_url(postgres_cluster) -> str:
    return postgres_cluster.new_schema_url()


@pytest.fixture(scope="module")
def replicas(store_url, tiny_causal_dir) -> Iterator[tuple[ProcessServer, ProcessServer, ProcessServer]]:
    """A and B serve the tests; C is the one a test SIGKILLs. All three load in parallel."""
    model = ensure_tiny_model(tiny_causal_dir)
    servers = [ProcessServer(model, store_url) for _ in range(3)]
    try:
        for server in servers:
            server.launch()
        for server in servers:
            server.wait_healthy(timeout=240)
        yield tuple(servers)
    finally:
        for server in servers:
            server.stop()


def test_an_edit_written_through_a_is_answered_in_scope_by_b(replicas):
    a, b, _ = replicas
    with httpx.Client(base_url=a.url, timeout=30) as to_a, httpx.Client(base_url=b.url, timeout=30) as to_b:
        for i in range(8):  # each check is B's very next request after A acknowledged
            question = _question(f"written through A {i}")
            created = to_a.post("/v1/edits", json={"input": question, "target": f"answer {i}"})
            assert created.status_code == 201, created.text
            edit = created.json()["data"][0]
            info = _ask(to_b, question)
            assert (info["source"], info["edit_id"]) == ("counterfactual", edit["id"])
            assert to_b.get(f"/v1/edits/{edit['id']}").json()["target"] == f"answer {i}"


def test_a_rollback_on_b_is_seen_by_a(replicas):
    a, b, _ = replicas
    with httpx.Client(base_url=a.url, timeout=30) as to_a, httpx.Client(base_url=b.url, timeout=30) as to_b:
        question = _question("rolled back on B")
        before = to_a.get("/v1/edits/version").json()["version"]
        edit = to_a.post("/v1/edits", json={"input": question, "target": "soon gone"}).json()["data"][0]
        assert _ask(to_a, question)["edit_id"] == edit["id"]  # A has it indexed
        rolled = to_b.post("/v1/edits/rollback", json={"version": before})
        assert rolled.status_code == 200, rolled.text
        info = _ask(to_a, question)
        assert (info["source"], info["edit_id"]) == ("base", None)
        assert to_a.get(f"/v1/edits/{edit['id']}").status_code == 404
        assert to_a.get("/v1/edits/version").json()["version"] == rolled.json()["version"]


def test_two_replicas_writing_at_once_get_gap_free_unique_versions(replicas, store_url):
    a, b, _ = replicas
    acknowledged: dict[str, list[int]] = {}
    errors: list[str] = []
    lock = threading.Lock()

    def writer(url: str, name: str) -> None:
        with httpx.Client(base_url=url, timeout=30) as client:
            for n in range(12):
                tag = f"{name}-b{n}"
                edits = [{"input": _question(f"{tag} part {j}"), "target": tag} for j in range(PER_BATCH)]
                response = client.post("/v1/edits", json={"edits": edits})
                with lock:
                    if response.status_code == 201:
                        acknowledged[tag] = [e["id"] for e in response.json()["data"]]
                    else:
                        errors.append(response.text)

    with psycopg.connect(store_url) as conn:
        start = conn.execute("SELECT version FROM serac_head").fetchone()[0]
    threads = [
        threading.Thread(target=writer, args=(server.url, f"{label}{w}"), daemon=True)
        for label, server in (("A", a), ("B", b))
        for w in range(3)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert errors == [] and len(acknowledged) == 6 * 12

    with psycopg.connect(store_url) as conn:
        versions = [
            r[0]
            for r in conn.execute(
                "SELECT version FROM serac_versions WHERE version > %s ORDER BY version", (start,)
            )
        ]
        by_version = conn.execute(
            "SELECT ev.version, array_agg(e.target ORDER BY e.id), array_agg(e.id ORDER BY e.id) "
            "FROM serac_events ev JOIN serac_edits e ON e.id = ev.edit_id "
            "WHERE ev.version > %s AND ev.op = 'add' GROUP BY ev.version",
            (start,),
        ).fetchall()
    # one version per acknowledged write, none skipped, none shared
    assert versions == list(range(start + 1, start + 1 + len(acknowledged)))
    assert sorted(v for v, _, _ in by_version) == versions
    for _, targets, ids in by_version:
        assert len(set(targets)) == 1 and ids == acknowledged[targets[0]]  # exactly one batch each


def test_sigkill_of_a_replica_mid_burst_loses_no_acknowledged_edit(replicas):
    _, b, doomed = replicas
    acknowledged: dict[str, list[int]] = {}
    attempted: dict[str, list[str]] = {}
    stop = threading.Event()
    lock = threading.Lock()

    def writer(w: int) -> None:
        with httpx.Client(base_url=doomed.url, timeout=10) as client:
            for n in range(200):  # bounded; the kill comes long before
                if stop.is_set():
                    return
                tag = f"doomed w{w} b{n}"
                edits = [{"input": _question(f"{tag} part {j}"), "target": tag} for j in range(PER_BATCH)]
                with lock:
                    attempted[tag] = [e["input"] for e in edits]
                try:
                    response = client.post("/v1/edits", json={"edits": edits})
                except httpx.HTTPError:
                    return  # the replica is gone: this batch was not acknowledged
                if response.status_code == 201:
                    with lock:
                        acknowledged[tag] = [e["id"] for e in response.json()["data"]]

    threads = [threading.Thread(target=writer, args=(w,), daemon=True) for w in range(4)]
    try:
        for thread in threads:
            thread.start()
        deadline = time.monotonic() + 30
        while len(acknowledged) < 20 and time.monotonic() < deadline:
            time.sleep(0.01)
        doomed.kill()  # SIGKILL mid-burst: writes are in flight
    finally:
        stop.set()
        for thread in threads:
            thread.join(timeout=15)
        doomed.kill()
    assert len(acknowledged) >= 20, "the burst should have been acknowledged in part before the kill"

    # The surviving replica serves every acknowledged edit, and no batch is half-present.
    with httpx.Client(base_url=b.url, timeout=30) as to_b:
        for tag, inputs in attempted.items():
            found = []
            for question in inputs:
                info = _ask(to_b, question)
                if info["source"] == "counterfactual" and info["edit"]["target"] == tag:
                    found.append(info["edit_id"])
            assert len(found) in (0, PER_BATCH), f"batch {tag} is half-present: {len(found)} of {PER_BATCH}"
            if tag in acknowledged:
                assert found == acknowledged[tag], f"acknowledged batch {tag} is missing on the other replica"
        assert (
            to_b.post("/v1/edits", json={"input": "after the kill", "target": "still writable"}).status_code
            == 201
        )
