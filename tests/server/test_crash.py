"""Crash safety: SIGKILL the server during a burst of concurrent edit writes, restart it on the same
store, and check that every acknowledged (2xx) write is there in full and no write is half-present."""

from __future__ import annotations

import hashlib
import threading
import time

import httpx

from serac.store import EditStore

from .tiny import ProcessServer, ensure_tiny_model

WRITERS = 6
PER_BATCH = 3


def test_sigkill_during_concurrent_edit_writes_loses_no_acknowledged_edit(tmp_path, tiny_causal_dir):
    store = tmp_path / "edits.db"
    server = ProcessServer(ensure_tiny_model(tiny_causal_dir), store).start()
    acknowledged: dict[str, list[int]] = {}  # batch tag -> ids the server returned
    attempted: dict[str, list[dict]] = {}
    stop = threading.Event()
    lock = threading.Lock()

    def writer(w: int) -> None:
        with httpx.Client(base_url=server.url, timeout=10) as client:
            n = 0
            while not stop.is_set():
                tag = f"w{w}-b{n}"
                edits = [
                    {
                        # a word of its own per edit: the hashing encoder must not read two of
                        # these as one fact, or the newest would answer the routing check below
                        "input": f"{tag} part {j} {hashlib.md5(f'{tag}/{j}'.encode()).hexdigest()[:10]}",
                        "target": f"answer {tag} {j}",
                        "metadata": {"batch": tag, "part": j},
                    }
                    for j in range(PER_BATCH)
                ]
                with lock:
                    attempted[tag] = edits
                try:
                    response = client.post("/v1/edits", json={"edits": edits})
                except httpx.HTTPError:
                    return  # the server is gone: this batch was not acknowledged
                if response.status_code == 201:
                    with lock:
                        acknowledged[tag] = [e["id"] for e in response.json()["data"]]
                n += 1

    threads = [threading.Thread(target=writer, args=(w,), daemon=True) for w in range(WRITERS)]
    try:
        for thread in threads:
            thread.start()
        deadline = time.monotonic() + 20
        while len(acknowledged) < 30 and time.monotonic() < deadline:
            time.sleep(0.01)
        server.kill()  # SIGKILL mid-burst: writers are in flight
    finally:
        stop.set()
        for thread in threads:
            thread.join(timeout=15)
        server.kill()
    assert len(acknowledged) >= 30, "the burst should have been acknowledged in part before the kill"
    assert len(attempted) > len(acknowledged), "some writes should have been in flight at the kill"

    # The store opens cleanly (SQLite integrity check) and holds whole batches only.
    with EditStore(store) as reopened:
        live = {e.input: e for e in reopened.list()}
    for tag, edits in attempted.items():
        present = [live.get(e["input"]) for e in edits]
        found = [p for p in present if p is not None]
        assert len(found) in (0, PER_BATCH), f"batch {tag} is half-present: {len(found)} of {PER_BATCH}"
        for sent, stored in zip(edits, present):
            if stored is not None:
                assert (stored.target, dict(stored.metadata)) == (sent["target"], sent["metadata"])
        if tag in acknowledged:
            assert [p.id for p in found] == acknowledged[tag], f"acknowledged batch {tag} is missing"

    # A restarted server on the same store serves the same edits, and they route.
    restarted = ProcessServer(tiny_causal_dir, store).start()
    try:
        with httpx.Client(base_url=restarted.url, timeout=30) as client:
            total = client.get("/v1/edits/version").json()["count"]
            assert total == len(live)
            listed, offset = [], 0
            while offset < total:
                page = client.get("/v1/edits", params={"offset": offset, "limit": 1000}).json()
                listed += page["data"]
                offset += len(page["data"])
            assert {e["input"] for e in listed} == set(live)
            tag, ids = next(iter(acknowledged.items()))
            question = attempted[tag][0]["input"]
            answer = client.post("/v1/completions", json={"prompt": question, "max_tokens": 2}).json()
            assert answer["choices"][0]["serac"]["edit_id"] == ids[0]
            new = client.post("/v1/edits", json={"input": "after the crash", "target": "still writable"})
            assert new.status_code == 201
    finally:
        restarted.stop()
