"""What only the PostgreSQL store has: URL routing, notifications, lock waits, reconnects, and the
same results as SQLite for the same operations (the shared suite is tests/test_store.py)."""

from __future__ import annotations

import os
import random
import threading
import time

import pytest

if os.environ.get("SERAC_REQUIRE_POSTGRES") != "1":  # required: a missing psycopg fails below
    pytest.importorskip("psycopg", reason="psycopg 3 is not installed: pip install -e '.[postgres]'")
import psycopg  # noqa: E402

from serac.errors import ConfigError, StoreCorruptError, StoreError, StoreLockedError, StoreUnavailableError
from serac.postgres_store import PostgresEditStore, describe_url
from serac.store import EditStore
from serac.store_url import open_store


# -- choosing a backend by URL (no server needed) -------------------------------------------------
def test_unreachable_postgres_url_is_an_error_not_a_sqlite_file(tmp_path, monkeypatch):
    # Before open_store, this URL became a local SQLite file under a directory named "postgresql:".
    monkeypatch.chdir(tmp_path)
    url = "postgresql://serac:s3cret-pw@127.0.0.1:1/edits"  # port 1: refused at once
    with pytest.raises(StoreUnavailableError, match="PostgreSQL edit store is unreachable") as caught:
        open_store(url)
    assert "s3cret-pw" not in str(caught.value) and "127.0.0.1" not in str(caught.value)
    assert list(tmp_path.iterdir()) == []


def test_describe_url_drops_the_password():
    assert describe_url("postgresql://ana:pw@db.internal:5433/serac?sslmode=require") == (
        "postgresql://ana@db.internal:5433/serac"
    )
    assert "pw" not in describe_url("postgres://ana:pw@/serac?host=/run/postgresql")


@pytest.mark.parametrize(
    "target, message",
    [
        ("mysql://root@localhost/edits", "unknown edit store URL scheme 'mysql'"),
        ("postgresql:/db.internal/serac", "pass the URL as a string, not a pathlib.Path"),
    ],
)
def test_bad_store_urls(target, message, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ConfigError, match=message):
        open_store(target)
    assert list(tmp_path.iterdir()) == []


def test_sqlite_urls_and_paths(tmp_path):
    with open_store(f"sqlite:///{tmp_path}/a.db") as a, open_store(tmp_path / "b.db") as b:
        assert isinstance(a, EditStore) and isinstance(b, EditStore)
    assert (tmp_path / "a.db").exists() and (tmp_path / "b.db").exists()
    assert isinstance(open_store(None), EditStore)


def test_postgres_url_opens_the_postgres_store(postgres_url):
    with open_store(postgres_url) as store:
        assert isinstance(store, PostgresEditStore)
        store.add("q", "a")
    with open_store(postgres_url.replace("postgresql://", "postgres://", 1)) as again:
        assert [e.target for e in again.list()] == ["a"]


# -- many writers, notifications, locks ---------------------------------------------------------
def listening(store: PostgresEditStore) -> None:
    """Start the store's LISTEN connection and wait until it is up."""
    store.listen()
    deadline = time.monotonic() + 10
    while not store.listening and time.monotonic() < deadline:
        time.sleep(0.01)
    assert store.listening


def test_a_write_wakes_another_store_through_notify(postgres_url):
    with PostgresEditStore(postgres_url) as writer, PostgresEditStore(postgres_url) as reader:
        listening(reader)
        assert reader.wait_for_change(0, timeout=0.2) is False  # nothing changed: times out
        woke: list[tuple[bool, float]] = []

        def wait() -> None:
            start = time.monotonic()
            woke.append((reader.wait_for_change(0, timeout=10), time.monotonic() - start))

        thread = threading.Thread(target=wait)
        thread.start()
        time.sleep(0.2)  # the reader is now blocked in the wait
        writer.add("q", "a")
        thread.join(timeout=15)
        assert woke and woke[0][0] is True
        assert woke[0][1] < 5, "woken by the notification, not by the 10 s timeout"
        assert reader.version == 1 and [e.target for e in reader.changes_since(0).live] == ["a"]


def test_listener_reconnects_after_its_connection_is_killed(postgres_url):
    with PostgresEditStore(postgres_url) as writer, PostgresEditStore(postgres_url) as reader:
        listening(reader)
        with psycopg.connect(postgres_url, autocommit=True) as admin:
            killed = admin.execute(
                "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
                "WHERE application_name = 'serac-listener'"
            ).fetchone()[0]
        assert killed == 1  # the reader's (the writer never waited for changes, so it has no listener)
        writer.add("written while the listener was down", "a")  # its NOTIFY reaches no one
        # The reconnecting listener reads the head, so the missed version is announced anyway.
        assert reader.wait_for_change(0, timeout=15) is True
        assert reader.listening


def test_a_killed_main_connection_is_reopened_for_reads(postgres_url):
    with PostgresEditStore(postgres_url) as store:
        store.add("q", "a")
        with psycopg.connect(postgres_url, autocommit=True) as admin:
            admin.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = 'serac'"
            )
        assert store.count() == 1  # the read is retried on a fresh connection
        store.add("q2", "a2")  # and writes work again
        assert store.version == 2


def test_writer_waiting_on_the_lock_times_out(postgres_url):
    with PostgresEditStore(postgres_url) as store:
        store.add("before", "x")
    blocker = psycopg.connect(postgres_url)  # not autocommit: holds the head row lock until rollback
    blocker.execute("UPDATE serac_head SET version = version WHERE id = 1")
    try:
        with PostgresEditStore(postgres_url, busy_timeout_s=0.2) as store:
            assert store.count() == 1 and store.version == 1  # readers are not blocked
            with pytest.raises(StoreLockedError, match="stayed locked by another writer"):
                store.add_many([("a", "1"), ("b", "2")])
            with pytest.raises(StoreLockedError):
                store.rollback(0)
    finally:
        blocker.rollback()
        blocker.close()
    with PostgresEditStore(postgres_url) as store:
        assert [e.input for e in store.list()] == ["before"] and store.version == 1
        store.add("after", "y")
        assert [v["version"] for v in store.versions()] == [1, 2]


def test_newer_schema_version_refused(postgres_url):
    PostgresEditStore(postgres_url).close()
    with psycopg.connect(postgres_url, autocommit=True) as conn:
        conn.execute("UPDATE serac_head SET schema_version = 99")
    with pytest.raises(StoreError, match="schema version 99"):
        PostgresEditStore(postgres_url)


def test_foreign_table_is_rejected(postgres_url):
    with psycopg.connect(postgres_url, autocommit=True) as conn:
        conn.execute("CREATE TABLE serac_head (name text)")
    with pytest.raises(StoreCorruptError, match="not a serac edit store"):
        PostgresEditStore(postgres_url)


# -- the same operations give the same store on both backends ------------------------------------
def test_random_operations_match_sqlite(postgres_url, tmp_path):
    rng = random.Random(13)
    with EditStore(tmp_path / "edits.db") as lite, PostgresEditStore(postgres_url) as pg:
        for step in range(120):
            choice = rng.random()
            live = lite.list()
            if choice < 0.55:
                batch = [
                    (f"Question {rng.randrange(25)}", f"answer {step}.{j}")
                    for j in range(rng.randrange(1, 4))
                ]
                assert [(e.id, e.input) for e in lite.add_many(batch)] == [
                    (e.id, e.input) for e in pg.add_many(batch)
                ]
            elif choice < 0.75 and live:
                edit_id = rng.choice(live).id
                assert lite.remove(edit_id) == pg.remove(edit_id)
            else:
                target = rng.randrange(lite.version + 1)
                assert lite.rollback(target) == pg.rollback(target)
            assert [(e.id, e.input, e.target) for e in lite.list()] == [
                (e.id, e.input, e.target) for e in pg.list()
            ]
            assert lite.count() == pg.count() == len(pg.list())
            since = rng.randrange(lite.version + 1)
            a, b = lite.changes_since(since), pg.changes_since(since)
            assert a.version == b.version
            assert [e.id for e in a.live] == [e.id for e in b.live] and sorted(a.removed) == sorted(b.removed)
        assert [(v["version"], v["op"], v["note"]) for v in lite.versions()] == [
            (v["version"], v["op"], v["note"]) for v in pg.versions()
        ]


def test_follower_syncs_on_another_writers_notification(postgres_url):
    from serac.follower import StoreFollower

    class Editor:  # what the follower uses of an EditedModel
        def __init__(self, store):
            self.store, self.synced = store, []

        def sync(self):
            self.synced.append(self.store.version)

    with PostgresEditStore(postgres_url) as writer, PostgresEditStore(postgres_url) as replica:
        editor = Editor(replica)
        follower = StoreFollower(editor, poll_s=60).start()  # a poll would come only after 60 s
        try:
            deadline = time.monotonic() + 10
            while not editor.synced and time.monotonic() < deadline:
                time.sleep(0.01)
            assert editor.synced == [0]  # the first sync, at start
            writer.add("q", "a")
            deadline = time.monotonic() + 10
            while editor.synced[-1] != 1 and time.monotonic() < deadline:
                time.sleep(0.01)
            assert editor.synced[-1] == 1, "woken by the NOTIFY, long before the 60 s poll"
        finally:
            started = time.monotonic()
            follower.stop()
            assert time.monotonic() - started < 3  # stop is prompt


def test_catch_up_rollback_and_writes_never_scan_every_edit(postgres_url):
    """Work proportional to the change: on a store of 3,000 edits with no planner statistics yet
    (the case that produced full scans), none of these operations reads a whole table."""

    def seq_scans(admin) -> int:
        return admin.execute(
            "SELECT COALESCE(sum(seq_scan), 0) FROM pg_stat_user_tables "
            "WHERE schemaname = current_schema() AND relname IN ('serac_edits', 'serac_events')"
        ).fetchone()[0]

    with PostgresEditStore(postgres_url) as store, psycopg.connect(postgres_url, autocommit=True) as admin:
        for batch in range(3):
            store.add_many([(f"filler {batch}.{i}", "a") for i in range(1000)])

        def flush() -> None:  # the store's session reports its counters when next idle
            store._run(lambda conn: conn.execute("SELECT pg_stat_force_next_flush()"), "reading", retry=False)
            store.count()
            time.sleep(0.05)

        flush()
        before = seq_scans(admin)
        version = store.version
        edit = store.add("filler 1.5", "superseding")  # looks up the live edit with the same key
        store.changes_since(version)
        store.remove(edit.id)
        store.rollback(version + 1)
        store.get(edit.id)
        store.list(limit=10)
        flush()
        assert seq_scans(admin) == before
