"""The store's O(change) operations give the same results as replaying the whole history, the
integrity check runs after an unclean shutdown only, and a schema-1 store is migrated."""

from __future__ import annotations

import random
import signal
import socket
import sqlite3
import subprocess
import sys
import textwrap

import pytest

from serac.errors import StoreCorruptError
from serac.store import EditStore


def replayed_live(store: EditStore, version: int) -> set[int]:
    """The live set at ``version`` the way the store computed it before: replay every event."""
    state: dict[int, bool] = {}
    for edit_id, op in store._read("SELECT edit_id, op FROM events WHERE version <= ? ORDER BY version", (version,)):
        state[edit_id] = op == "add"
    return {i for i, live in state.items() if live}


def live_ids(store: EditStore) -> set[int]:
    return {r[0] for r in store._read("SELECT id FROM edits WHERE live = 1")}


def test_random_history_rollback_count_and_catch_up_match_a_full_replay(tmp_path):
    rng = random.Random(0)
    store = EditStore(tmp_path / "edits.db")
    for step in range(120):
        action = rng.random()
        live = sorted(live_ids(store))
        if action < 0.5 or not live:
            # inputs from a small pool, so some adds supersede a live edit
            batch = [(f"question {rng.randrange(40)}", f"answer {step}") for _ in range(rng.randint(1, 4))]
            store.add_many(batch)
        elif action < 0.7:
            store.remove(rng.choice(live))
        else:
            target = rng.randint(0, store.version)
            store.rollback(target)
            assert live_ids(store) == replayed_live(store, target)
        assert store.count() == len(live_ids(store)) == len(replayed_live(store, store.version))
        since = rng.randint(0, store.version)
        changes = store.changes_since(since)
        touched = {r[0] for r in store._read("SELECT DISTINCT edit_id FROM events WHERE version > ?", (since,))}
        assert {e.id for e in changes.live} == touched & live_ids(store)
        assert set(changes.removed) == touched - live_ids(store)
    assert store.check() == []


def test_catch_up_and_rollback_read_only_the_events_after_the_version(tmp_path):
    store = EditStore(tmp_path / "edits.db")
    store.add_many([(f"q{i}", "a") for i in range(50)])
    plans = []
    for conn in (store._conn, store._reader):  # writes, and reads (a second connection for a file)
        conn.set_trace_callback(plans.append)
    store.changes_since(1)
    store.rollback(1)
    for conn in (store._conn, store._reader):
        conn.set_trace_callback(None)
    assert any("version > 1" in sql or "version > ?" in sql for sql in plans)
    for sql in [s for s in plans if "FROM events" in s]:
        plan = " ".join(r[3] for r in store._conn.execute("EXPLAIN QUERY PLAN " + sql))
        assert "SCAN events" not in plan, (sql, plan)


def test_count_is_maintained_not_counted(tmp_path):
    store = EditStore(tmp_path / "edits.db")
    a, b = store.add_many([("q1", "a"), ("q2", "b")])
    store.add("Q1", "a2")  # supersedes a
    store.remove(b.id)
    assert store.count() == 1
    store.rollback(1)
    assert store.count() == 2
    # count() reads the version's maintained count, so a tampered count shows (and check() finds it)
    store._conn.execute("UPDATE versions SET live_count = 7 WHERE version = ?", (store.version,))
    assert store.count() == 7
    assert store.check() == ["the live count says 7 but 2 edits are live"]


def test_list_pages_by_cursor(tmp_path):
    store = EditStore(tmp_path / "edits.db")
    edits = store.add_many([(f"q{i}", "a") for i in range(10)])
    store.remove(edits[3].id)
    pages, after = [], None
    while page := store.list(limit=4, after_id=after):
        pages.append([e.id for e in page])
        after = page[-1].id
    assert sum(pages, []) == [e.id for e in store.list()] and len(pages) == 3
    assert store.get_many([edits[3].id, edits[4].id, 999]).keys() == {edits[3].id, edits[4].id}


def test_integrity_check_runs_only_after_an_unclean_shutdown(tmp_path, monkeypatch):
    path = tmp_path / "edits.db"
    checks = []
    real_check = EditStore.check
    monkeypatch.setattr(EditStore, "check", lambda self, full=False: checks.append(1) or real_check(self, full))
    with EditStore(path) as store:
        store.add("q", "a")
    EditStore(path).close()
    assert checks == []  # clean closes: no O(N) check on open
    writer = textwrap.dedent(
        """
        import sys, time
        from serac.store import EditStore
        store = EditStore(sys.argv[1])
        store.add("from the killed process", "x")
        print("ready", flush=True)
        time.sleep(60)
        """
    )
    proc = subprocess.Popen([sys.executable, "-c", writer, str(path)], stdout=subprocess.PIPE, text=True)
    assert proc.stdout.readline().strip() == "ready"
    with EditStore(path):  # the writer is alive: its marker is not stale
        pass
    assert checks == []
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=30)
    proc.stdout.close()
    with EditStore(path) as store:
        assert store.count() == 2
    assert checks == [1]  # once, after the killed process
    EditStore(path).close()
    assert checks == [1]


def test_corruption_found_after_an_unclean_shutdown(tmp_path):
    path = tmp_path / "edits.db"
    with EditStore(path) as store:
        store.add_many([(f"question {i} " + "x" * 300, "a") for i in range(200)])
    (tmp_path / "edits.db.serac" / "open-~nohost~1~dead").touch()  # a foreign host's marker is ignored
    conn = sqlite3.connect(path)
    conn.execute("PRAGMA writable_schema = ON")
    page_size = conn.execute("PRAGMA page_size").fetchone()[0]
    conn.close()
    data = bytearray(path.read_bytes())
    data[5 * page_size : 6 * page_size] = b"\xff" * page_size  # trash one b-tree page
    path.write_bytes(bytes(data))
    with EditStore(path) as store:  # closed cleanly last time: opens without the O(N) check
        assert store.check() != []  # ... which finds the damage on request
    (tmp_path / "edits.db.serac" / f"open-~{socket.gethostname()}~999999999~dead").touch()
    with pytest.raises(StoreCorruptError, match="integrity check"):
        EditStore(path)
    with pytest.raises(StoreCorruptError, match="integrity check"):  # and again: not forgotten
        EditStore(path)


def test_schema_1_store_is_migrated(tmp_path):
    path = tmp_path / "old.db"
    conn = sqlite3.connect(path)
    conn.executescript(
        """
        CREATE TABLE versions (version INTEGER PRIMARY KEY, created_at REAL NOT NULL, op TEXT NOT NULL, note TEXT);
        CREATE TABLE edits (id INTEGER PRIMARY KEY AUTOINCREMENT, input TEXT NOT NULL, input_key TEXT NOT NULL,
            target TEXT NOT NULL, created_at REAL NOT NULL, metadata TEXT NOT NULL, live INTEGER NOT NULL);
        CREATE INDEX edits_live_key ON edits (input_key) WHERE live = 1;
        CREATE TABLE events (version INTEGER NOT NULL, edit_id INTEGER NOT NULL, op TEXT NOT NULL,
            PRIMARY KEY (version, edit_id));
        CREATE INDEX events_edit ON events (edit_id, version);
        CREATE TABLE embeddings (edit_id INTEGER NOT NULL, encoder TEXT NOT NULL, vector BLOB NOT NULL,
            PRIMARY KEY (edit_id, encoder));
        INSERT INTO versions VALUES (1, 0, 'add', '2 edit(s)'), (2, 0, 'remove', 'edit 1');
        INSERT INTO edits VALUES (1, 'q1', 'q1', 'a', 0, '{}', 0), (2, 'q2', 'q2', 'b', 0, '{}', 1);
        INSERT INTO events VALUES (1, 1, 'add'), (1, 2, 'add'), (2, 1, 'remove');
        PRAGMA application_id = 1397051971;
        PRAGMA user_version = 1;
        """
    )
    conn.close()
    with EditStore(path) as store:
        assert store.count() == 1 and len(store.store_id) == 32
        store.rollback(1)
        assert store.count() == 2 and [e.input for e in store.list()] == ["q1", "q2"]
    assert sqlite3.connect(path).execute("PRAGMA user_version").fetchone()[0] == 2
