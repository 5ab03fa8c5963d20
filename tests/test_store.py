"""EditStore: versioned, durable, atomic, shareable between processes.

Tests that take ``store`` or ``location`` run against both backends (SQLite and a throwaway
PostgreSQL, see tests/pgcluster.py); those that take ``path`` check SQLite's own file handling."""

from __future__ import annotations

import multiprocessing
import os
import sqlite3
import threading

import numpy as np
import pytest

from serac.edits import EditRequest
from serac.errors import (
    EditNotFoundError,
    EditValidationError,
    StoreCorruptError,
    StoreError,
    StoreLockedError,
    VersionNotFoundError,
)
from serac.store import EditStore
from serac.store_url import open_store


@pytest.fixture
def path(tmp_path):
    return tmp_path / "edits.db"


@pytest.fixture(params=["sqlite", "postgres"])
def location(request, path) -> str:
    """Where a store lives: a SQLite file, or a PostgreSQL URL (a fresh schema per test)."""
    return str(path) if request.param == "sqlite" else request.getfixturevalue("postgres_url")


@pytest.fixture
def store(location):
    with open_store(location) as s:
        yield s


def live(store):
    return [(e.input, e.target) for e in store.list()]


def test_new_store_is_empty(store):
    assert store.version == 0
    assert store.count() == 0 and len(store) == 0
    assert store.list() == []
    assert store.versions() == []


def test_add_get_list_count(store):
    first = store.add("Who is the PM?", "Keir Starmer", {"author": "ana"})
    second = store.add("Capital of Australia?", "Sydney")
    assert first.id != second.id
    assert store.get(first.id) == first
    assert store.get(second.id).target == "Sydney"
    assert store.get(first.id).metadata == {"author": "ana"}
    assert store.list() == [first, second]
    assert store.count() == 2
    assert store.list(offset=1) == [second]
    assert store.list(limit=1) == [first]


def test_add_validates_and_normalises(store):
    edit = store.add("  who?  ", " me ")
    assert (edit.input, edit.target) == ("who?", "me")
    with pytest.raises(EditValidationError, match="edit target is empty"):
        store.add("q", " ")
    assert store.count() == 1 and store.version == 1


def test_every_change_bumps_the_version(store):
    a = store.add("q1", "a1")
    assert store.version == 1
    store.add_many([("q2", "a2"), ("q3", "a3")])
    assert store.version == 2  # one batch, one version
    assert store.remove(a.id) == 3 and store.version == 3
    assert store.rollback(1) == 4 and store.version == 4
    assert [v["op"] for v in store.versions()] == ["add", "add", "remove", "rollback"]
    assert [v["version"] for v in store.versions()] == [1, 2, 3, 4]


def test_remove(store):
    a = store.add("q1", "a1")
    b = store.add("q2", "a2")
    store.remove(a.id)
    assert store.list() == [b]
    with pytest.raises(EditNotFoundError, match=f"edit {a.id} was removed or superseded"):
        store.get(a.id)
    version = store.version
    with pytest.raises(EditNotFoundError, match=f"no live edit with id {a.id}"):
        store.remove(a.id)
    assert store.version == version  # a failed remove creates no version


def test_unknown_id(store):
    store.add("q", "a")
    with pytest.raises(EditNotFoundError, match="no edit with id 999"):
        store.get(999)
    with pytest.raises(EditNotFoundError, match="no live edit with id 999"):
        store.remove(999)
    with pytest.raises(KeyError):  # also a KeyError for generic callers
        store.get(999)
    assert store.version == 1


def test_newest_wins_for_same_input(store):
    old = store.add("Who is the PM of the UK?", "Boris Johnson")
    new = store.add("  who is   the pm OF the uk?", "Keir Starmer")
    assert store.list() == [new]
    with pytest.raises(EditNotFoundError):
        store.get(old.id)
    # A different question is a different slot.
    other = store.add("Who is the PM of Canada?", "Mark Carney")
    assert store.list() == [new, other]


def test_newest_wins_within_one_batch(store):
    edits = store.add_many([("Capital?", "A"), ("capital?", "B"), ("Other", "C")])
    assert live(store) == [("capital?", "B"), ("Other", "C")]
    assert store.version == 1
    # Rolling back to the batch's own version gives the same live set.
    store.rollback(1)
    assert live(store) == [("capital?", "B"), ("Other", "C")]
    assert len(edits) == 3


def test_rollback_restores_earlier_live_set(store):
    a = store.add("q1", "a1")  # v1
    b = store.add("q2", "a2")  # v2
    store.remove(a.id)  # v3
    c = store.add("q2", "a2 new")  # v4 supersedes b
    assert store.list() == [c]
    store.rollback(2)  # v5
    assert store.list() == [a, b]
    store.rollback(0)  # v6
    assert store.list() == []
    store.rollback(4)  # v7
    assert store.list() == [c]
    store.rollback(1)  # v8
    assert store.list() == [a]


def test_rollback_of_a_rollback(store):
    a = store.add("q1", "a1")  # v1
    b = store.add("q2", "a2")  # v2
    assert store.rollback(1) == 3
    assert store.list() == [a]
    assert store.rollback(2) == 4  # undo the rollback
    assert store.list() == [a, b]
    assert store.rollback(3) == 5  # back to what the first rollback produced
    assert store.list() == [a]


@pytest.mark.parametrize("version", [-1, 3, 100])
def test_rollback_to_nonexistent_version(store, version):
    store.add("q1", "a1")
    store.add("q2", "a2")
    before = store.list()
    with pytest.raises(VersionNotFoundError, match=rf"cannot roll back to version {version}.*0 \(empty\) to 2"):
        store.rollback(version)
    assert store.version == 2 and store.list() == before


@pytest.mark.parametrize("version", ["1", 1.0, True, None])
def test_rollback_needs_an_int(store, version):
    store.add("q", "a")
    with pytest.raises(VersionNotFoundError, match="rollback needs an integer version"):
        store.rollback(version)
    assert store.version == 1


def test_restart_keeps_edits_and_versions(location):
    with open_store(location) as s:
        a = s.add("q1", "a1", {"k": [1, 2]})
        b = s.add("q2", "a2")
        s.remove(a.id)
        s.rollback(1)
        edits, versions = s.list(), s.versions()
    with open_store(location) as s:
        assert s.list() == edits == [a]
        assert s.versions() == versions
        assert s.version == 4
        assert s.get(a.id).metadata == {"k": [1, 2]}
        # ids are never reused, even for an edit that is no longer live
        c = s.add("q3", "a3")
        assert c.id > b.id


def test_add_many_is_atomic(store):
    store.add("existing", "x")
    with pytest.raises(EditValidationError, match=r"edit #2: edit input is empty"):
        store.add_many([("new 1", "a"), ("existing", "superseded?"), ("", "bad")])
    assert live(store) == [("existing", "x")]
    assert store.version == 1
    assert store.changes_since(0).live[0].target == "x"


def test_add_many_rolls_back_on_a_failure_mid_transaction(store):
    store.add("existing", "x")
    # The third embedding row cannot be converted, after two edits (and one supersession) were
    # already written inside the transaction: none of it may remain.
    vectors = [[1.0, 2.0], [3.0, 4.0], "not a vector"]
    with pytest.raises(ValueError):
        store.add_many([("a", "1"), ("EXISTING", "2"), ("c", "3")], embeddings=("enc", vectors))
    assert live(store) == [("existing", "x")]
    assert store.version == 1
    assert store.changes_since(0).live[0].target == "x"
    # ids used by the failed transaction are not visible, and the store keeps working
    assert store.add("a", "1").target == "1"
    assert store.version == 2


def test_add_many_empty_is_a_no_op(store):
    assert store.add_many([]) == []
    assert store.version == 0


def test_changes_since(store):
    a = store.add("q1", "a1")  # v1
    b = store.add("q2", "a2")  # v2
    changes = store.changes_since(0)
    assert changes.version == 2 and changes.live == [a, b] and changes.removed == []
    changes = store.changes_since(1)
    assert changes.live == [b] and changes.removed == []
    store.remove(a.id)  # v3
    c = store.add("Q2", "a2 new")  # v4 supersedes b
    changes = store.changes_since(2)
    assert changes.version == 4
    assert changes.live == [c]
    assert sorted(changes.removed) == [a.id, b.id]
    store.rollback(2)  # v5: a and b live again, c not
    changes = store.changes_since(4)
    assert changes.live == [a, b] and changes.removed == [c.id]
    assert store.changes_since(5) == type(changes)(version=5, live=[], removed=[])


def test_embeddings_round_trip(location):
    with open_store(location) as s:
        edits = s.add_many([("q1", "a1"), ("q2", "a2")], embeddings=("enc-a", np.array([[1, 2], [3, 4]])))
        ids = [e.id for e in edits]
        s.put_embeddings("enc-b", ids[:1], np.array([[0.5, -0.25]], dtype=np.float64))
    with open_store(location) as s:
        got = s.get_embeddings(ids, "enc-a")
        assert set(got) == set(ids)
        assert got[ids[0]].dtype == np.float32
        np.testing.assert_array_equal(got[ids[0]], [1, 2])
        np.testing.assert_array_equal(got[ids[1]], [3, 4])
        other = s.get_embeddings(ids, "enc-b")
        assert list(other) == [ids[0]]
        np.testing.assert_array_equal(other[ids[0]], [0.5, -0.25])
        assert s.get_embeddings(ids, "never-used") == {}
        assert s.get_embeddings([], "enc-a") == {}
        # put replaces
        s.put_embeddings("enc-a", ids[:1], np.array([[9, 9]]))
        np.testing.assert_array_equal(s.get_embeddings(ids[:1], "enc-a")[ids[0]], [9, 9])


def test_get_embeddings_more_ids_than_sqlite_parameters(store):
    edits = store.add_many([(f"q{i}", "a") for i in range(2000)], embeddings=("e", np.eye(2000, 3)))
    got = store.get_embeddings([e.id for e in edits], "e")
    assert len(got) == 2000
    np.testing.assert_array_equal(got[edits[1].id], [0, 1, 0])


def test_embeddings_count_must_match(store):
    with pytest.raises(ValueError, match="got 1 embeddings for 2 edits"):
        store.add_many([("q1", "a"), ("q2", "a")], embeddings=("e", np.zeros((1, 3))))
    assert store.version == 0


def test_random_bytes_file_is_corrupt(path):
    path.write_bytes(os.urandom(8192))
    with pytest.raises(StoreCorruptError, match="not a readable serac edit store"):
        EditStore(path)


def test_foreign_sqlite_database_is_rejected(path):
    conn = sqlite3.connect(path)
    conn.execute("CREATE TABLE users (name TEXT)")
    conn.execute("INSERT INTO users VALUES ('ana')")
    conn.commit()
    conn.close()
    with pytest.raises(StoreCorruptError, match="is an SQLite database but not a serac edit store"):
        EditStore(path)
    # ... and it was not modified
    conn = sqlite3.connect(path)
    assert conn.execute("SELECT name FROM sqlite_master WHERE type='table'").fetchall() == [("users",)]
    conn.close()


def test_truncated_store_is_corrupt(path):
    with EditStore(path) as s:
        s.add_many([(f"question number {i} " + "x" * 200, "a") for i in range(300)])
    size = path.stat().st_size
    with open(path, "r+b") as f:
        f.truncate(size // 2)
    with pytest.raises(StoreCorruptError):
        EditStore(path)


def test_newer_schema_version_refused(path):
    EditStore(path).close()
    conn = sqlite3.connect(path)
    conn.execute("PRAGMA user_version = 99")
    conn.close()
    with pytest.raises(StoreError, match="schema version 99"):
        EditStore(path)


def test_home_relative_path_is_expanded(tmp_path, monkeypatch):
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.chdir(tmp_path)
    with EditStore("~/stores/edits.db") as s:
        s.add("q", "a")
    assert (tmp_path / "stores" / "edits.db").exists()
    assert not (tmp_path / "~").exists()


def test_locked_database(path):
    with EditStore(path) as s:
        s.add("before", "x")
    blocker = sqlite3.connect(path, isolation_level=None)
    blocker.execute("BEGIN EXCLUSIVE")
    blocker.execute("INSERT INTO versions (version, created_at, op) VALUES (2, 0, 'add')")
    try:
        with EditStore(path, busy_timeout_s=0.2) as s:
            assert s.count() == 1  # WAL: readers are not blocked
            with pytest.raises(StoreLockedError, match="stayed locked by another process"):
                s.add_many([("a", "1"), ("b", "2")])
            with pytest.raises(StoreLockedError):
                s.remove(s.list()[0].id)
            with pytest.raises(StoreLockedError):
                s.rollback(0)
    finally:
        blocker.execute("ROLLBACK")
        blocker.close()
    with EditStore(path) as s:
        assert live(s) == [("before", "x")]
        assert s.version == 1
        s.add("after", "y")  # the lock is gone and the store still works
        assert s.version == 2


def test_threads_share_one_store(store):
    errors = []

    def work(n):
        try:
            for i in range(20):
                store.add(f"thread {n} q {i}", "a")
        except Exception as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(n,)) for n in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert store.count() == 80 and store.version == 80


def _writer(location: str, worker: int, count: int, barrier, results) -> None:
    from serac.store_url import open_store

    barrier.wait()  # every process opens the (new) store at the same moment
    try:
        with open_store(location) as s:
            ids = [s.add(f"worker {worker} question {i}", f"answer {worker}.{i}").id for i in range(count)]
        results.put((worker, ids, None))
    except Exception as exc:
        results.put((worker, [], f"{type(exc).__name__}: {exc}"))


def test_concurrent_processes(location):
    ctx = multiprocessing.get_context("spawn")
    workers, count = 3, 10
    barrier = ctx.Barrier(workers)
    results = ctx.Queue()
    processes = [ctx.Process(target=_writer, args=(location, w, count, barrier, results)) for w in range(workers)]
    for p in processes:
        p.start()
    outcomes = [results.get(timeout=120) for _ in processes]
    for p in processes:
        p.join(timeout=60)
        assert p.exitcode == 0
    assert [error for _, _, error in outcomes if error] == []
    with open_store(location) as s:
        assert s.count() == workers * count
        by_id = {e.id: e for e in s.list()}
        for worker, ids, _ in outcomes:
            assert [by_id[i].target for i in ids] == [f"answer {worker}.{i}" for i in range(count)]
        versions = [v["version"] for v in s.versions()]
        assert versions == list(range(1, workers * count + 1))  # unique and contiguous
        assert s.version == workers * count


def test_memory_store():
    with EditStore(":memory:") as s:
        s.add_many([EditRequest("q", "a")])
        assert s.count() == 1 and s.version == 1
