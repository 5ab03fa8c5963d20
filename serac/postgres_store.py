"""PostgresEditStore: the edit store on PostgreSQL, shared by many `serac serve` replicas.

Same semantics as the SQLite ``EditStore`` (one new version per change, an event log, rollback as a
new version, newest wins on the same folded input, atomic batches, acknowledged = committed), so the
same test suite runs against both. What PostgreSQL adds is many writers on many machines:

- *Gap-free, unique versions.* Every write first bumps the single row of ``serac_head`` (``UPDATE
  ... SET version = version + 1``). The row lock queues concurrent writers, and the bump rolls back
  with a failed transaction, so versions never repeat or skip (a sequence would skip).
- *Incremental catch-up.* ``changes_since(v)`` reads only the events after ``v`` (an index range
  on ``serac_events``), in one snapshot; rollback likewise touches only edits with events after the
  target version. ``count`` is a column of the head row, kept in the write transaction.
- *Wake-ups.* Each write sends ``NOTIFY serac_edits, '<version>'`` inside its transaction (delivered
  on commit). A listener thread on its own connection (started by the first ``wait_for_change``)
  records the newest version announced;
  ``wait_for_change`` blocks on it, so a replica's follower (serac/follower.py) syncs its index as
  soon as another replica commits. When the listener's connection is down, the wait times out and
  the follower polls; ``version`` itself always reads the head row (one primary-key read), so a
  request never misses an acknowledged edit even if a notification is late.

Tables are prefixed ``serac_`` and live in the connection's schema (``options=-csearch_path=X`` in
the URL picks another one); they are created on first open.
"""

from __future__ import annotations

import hashlib
import json
import logging
import threading
import time
from contextlib import contextmanager
from typing import Any, Callable, Iterator, Mapping, Sequence, TypeVar

import numpy as np

from serac.edits import Edit, EditRequest, input_key, to_requests, validate_edit
from serac.errors import (
    EditNotFoundError,
    StoreCorruptError,
    StoreError,
    StoreLockedError,
    StoreUnavailableError,
    VersionNotFoundError,
)
from serac.store import Changes, LiveChunk, SearchResult, live_edit, row_to_edit, search_words, vector_to_blob

logger = logging.getLogger(__name__)

SCHEMA_VERSION = 1
CHANNEL = "serac_edits"
_SCHEMA_LOCK = 0x53455243  # advisory lock key ("SERC") held while creating the tables

_SCHEMA = """
CREATE TABLE IF NOT EXISTS serac_head (
    id             smallint PRIMARY KEY CHECK (id = 1),
    schema_version integer  NOT NULL,
    version        bigint   NOT NULL,
    live_count     bigint   NOT NULL
);
CREATE TABLE IF NOT EXISTS serac_versions (
    version    bigint           PRIMARY KEY,
    created_at double precision NOT NULL,
    op         text             NOT NULL CHECK (op IN ('add', 'remove', 'rollback')),
    note       text
);
CREATE TABLE IF NOT EXISTS serac_edits (
    id         bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    input      text             NOT NULL,
    input_key  text             NOT NULL,
    target     text             NOT NULL,
    created_at double precision NOT NULL,
    metadata   text             NOT NULL,
    live       boolean          NOT NULL
);
CREATE INDEX IF NOT EXISTS serac_edits_live_key ON serac_edits (input_key) WHERE live;
CREATE INDEX IF NOT EXISTS serac_edits_live_id ON serac_edits (id) WHERE live;
CREATE TABLE IF NOT EXISTS serac_events (
    version bigint NOT NULL REFERENCES serac_versions (version),
    edit_id bigint NOT NULL REFERENCES serac_edits (id),
    op      text   NOT NULL CHECK (op IN ('add', 'remove')),
    PRIMARY KEY (version, edit_id)
);
CREATE INDEX IF NOT EXISTS serac_events_edit ON serac_events (edit_id, version);
CREATE TABLE IF NOT EXISTS serac_embeddings (
    edit_id bigint NOT NULL REFERENCES serac_edits (id),
    encoder text   NOT NULL,
    vector  bytea  NOT NULL,
    PRIMARY KEY (edit_id, encoder)
);
INSERT INTO serac_head (id, schema_version, version, live_count) VALUES (1, {schema}, 0, 0)
    ON CONFLICT (id) DO NOTHING
"""

# A catalog scan with a fresh snapshot, not to_regclass: its cached "not found" would outlive
# another process creating the table while we waited for the lock.
_HAS_SCHEMA = (
    "SELECT EXISTS (SELECT 1 FROM pg_catalog.pg_tables WHERE schemaname = current_schema() "
    "AND tablename = 'serac_head')"
)
_EDIT_COLUMNS = "id, input, target, created_at, metadata"
# Full-text search over the live edits (the console's search box): a GIN index on this expression;
# queries must repeat it exactly for the planner to use the index.
_TSV = "to_tsvector('simple', input || ' ' || target || ' ' || metadata)"
_SEARCH_INDEX = f"CREATE INDEX IF NOT EXISTS serac_edits_search ON serac_edits USING GIN ({_TSV}) WHERE live"
_HAS_SEARCH_INDEX = (
    "SELECT EXISTS (SELECT 1 FROM pg_catalog.pg_indexes WHERE schemaname = current_schema() "
    "AND indexname = 'serac_edits_search')"
)
T = TypeVar("T")


def is_postgres_url(value: object) -> bool:
    return isinstance(value, str) and value.split("://", 1)[0].lower() in ("postgresql", "postgres")


def describe_url(url: str) -> str:
    """The URL without its password (and without query options, which may carry one)."""
    from psycopg.conninfo import conninfo_to_dict

    try:
        parts = conninfo_to_dict(url)
    except Exception:  # a malformed URL: say only what kind it is
        return "postgresql://(unparsable URL)"
    user = f"{parts['user']}@" if parts.get("user") else ""
    host = parts.get("host") or ""
    port = f":{parts['port']}" if parts.get("port") else ""
    return f"postgresql://{user}{host if not host.startswith('/') else ''}{port}/{parts.get('dbname', '')}"


def _touched_since(conn: Any, version: int) -> list[int]:
    """Ids of the edits with events after ``version``: a range of the events' primary key. Fetched
    on their own, so the edits are then read by id, never by a join the planner might turn into a
    scan of every edit."""
    rows = conn.execute("SELECT DISTINCT edit_id FROM serac_events WHERE version > %s", (int(version),))
    return [r[0] for r in rows.fetchall()]


class PostgresEditStore:
    """Edit store on PostgreSQL (psycopg 3). ``url`` is a libpq URL, e.g.
    ``postgresql://serac:PASSWORD@db.internal:5432/serac``.

    Thread-safe within a process (one connection behind a lock, plus one listener connection);
    any number of processes and machines may share the database.
    """

    def __init__(self, url: str, busy_timeout_s: float = 10.0, connect_timeout_s: float = 10.0) -> None:
        try:
            import psycopg  # noqa: F401
        except ImportError:
            raise StoreError(
                "a postgresql:// store needs psycopg 3; install it with `pip install 'serac-edit[postgres]'`"
            ) from None
        self.url = url
        self.description = describe_url(url)
        self.busy_timeout_s = busy_timeout_s
        self.connect_timeout_s = connect_timeout_s
        self._lock = threading.RLock()
        self._conn: Any = None
        self._closed = False
        # The newest version any notification (or our own commit) announced; guarded by _changed.
        self._announced = -1
        self._changed = threading.Condition()
        self._listener_up = threading.Event()
        self._listener: threading.Thread | None = None  # started by the first listen()
        with self._lock:
            self._connection()

    # -- connections and errors ---------------------------------------------------------------------
    def _connect(self, role: str = "serac") -> Any:
        """A new autocommit connection, named ``role`` in pg_stat_activity."""
        import psycopg

        try:
            conn = psycopg.connect(
                self.url,
                autocommit=True,
                connect_timeout=max(1, int(self.connect_timeout_s)),
                application_name=role,
            )
        except psycopg.Error as exc:
            raise self._translate(exc, "connecting") from None
        except Exception as exc:  # e.g. a malformed URL (psycopg.ProgrammingError is a psycopg.Error)
            raise StoreError(f"cannot open the PostgreSQL edit store: {exc}") from None
        return conn

    def _connection(self) -> Any:
        """The main connection, (re)opened on demand; on first use also checks/creates the schema."""
        if self._closed:
            raise StoreError("the edit store was closed; open a new one")
        if self._conn is None or self._conn.closed:
            conn = self._connect()
            try:
                self._prepare(conn)
            except BaseException:
                conn.close()
                raise
            self._conn = conn
        return self._conn

    def _prepare(self, conn: Any) -> None:
        import psycopg

        try:
            conn.execute(f"SET lock_timeout = {int(self.busy_timeout_s * 1000)}")
            # Every query here is meant to walk an index (the events after a version, the live
            # edits with one key, ids); on a freshly filled table without statistics the planner
            # chose full scans (5 ms at 10k edits for one version's changes, O(N) at 1M). No query
            # of this store needs a full scan, so discourage them outright.
            conn.execute("SET enable_seqscan = off")
            conn.execute("SET plan_cache_mode = force_custom_plan")  # plans see the real version
            # Acknowledged = durable, even where the server's default says otherwise.
            if conn.execute("SHOW synchronous_commit").fetchone()[0] in ("off", "local"):
                conn.execute("SET synchronous_commit = on")
            if not conn.execute(_HAS_SCHEMA).fetchone()[0]:
                with conn.transaction():
                    conn.execute("SELECT pg_advisory_xact_lock(%s)", (_SCHEMA_LOCK,))
                    # Check again under the lock: another process may have just created the tables
                    # (re-running the DDL would lock tables its writes need: a deadlock).
                    if not conn.execute(_HAS_SCHEMA).fetchone()[0]:
                        for statement in _SCHEMA.format(schema=SCHEMA_VERSION).split(";"):
                            if statement.strip():
                                conn.execute(statement)
            row = conn.execute("SELECT schema_version FROM serac_head WHERE id = 1").fetchone()
        except psycopg.errors.UndefinedColumn:
            raise StoreCorruptError(
                "the database has a serac_head table that is not a serac edit store's; point serac at "
                "another database or schema (options=-csearch_path=NAME in the URL)"
            ) from None
        except psycopg.Error as exc:
            raise self._translate(exc, "opening") from None
        if row is None:
            raise StoreCorruptError(
                "the serac_head table of this PostgreSQL edit store is empty; restore the database from a "
                "backup, or point serac at a new database"
            )
        if row[0] != SCHEMA_VERSION:
            raise StoreError(
                f"the PostgreSQL edit store has schema version {row[0]}, this serac reads version "
                f"{SCHEMA_VERSION}; upgrade serac or use the version that wrote it"
            )
        try:
            if not conn.execute(_HAS_SEARCH_INDEX).fetchone()[0]:  # a store made before search existed
                with conn.transaction():
                    conn.execute("SELECT pg_advisory_xact_lock(%s)", (_SCHEMA_LOCK,))
                    if not conn.execute(_HAS_SEARCH_INDEX).fetchone()[0]:
                        conn.execute(_SEARCH_INDEX)
        except psycopg.Error as exc:
            raise self._translate(exc, "opening") from None

    def _translate(self, exc: Exception, action: str) -> StoreError:
        """A project error whose message names neither host nor password (it may reach a client)."""
        import psycopg

        logger.info("PostgreSQL edit store %s: %s failed: %s", self.description, action, exc)
        if isinstance(exc, psycopg.errors.LockNotAvailable):
            return StoreLockedError(
                f"the PostgreSQL edit store stayed locked by another writer for over "
                f"{self.busy_timeout_s:g} s while {action}; retry"
            )
        if isinstance(exc, psycopg.OperationalError):
            reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            # drop libpq's 'connection to server at HOST, port P failed:' (no host in a client message)
            reason = reason.rsplit("failed: ", 1)[-1]
            outcome = (
                " (a write in flight may or may not have committed; list the edits to see)"
                if action == "writing"
                else ""
            )
            return StoreUnavailableError(
                f"the PostgreSQL edit store is unreachable while {action}: {reason}{outcome}; check that the "
                "server runs and that the store URL (--store / SERAC_STORE) is right"
            )
        return StoreError(f"PostgreSQL edit store: {action} failed: {type(exc).__name__}: {str(exc).strip()}")

    def _run(self, fn: Callable[[Any], T], action: str, retry: bool) -> T:
        """Run ``fn(connection)`` under the lock; a read whose connection broke is retried once on a
        fresh connection (a write is not: its outcome is unknown)."""
        import psycopg

        with self._lock:
            for attempt in (0, 1):
                conn = self._connection()
                try:
                    return fn(conn)
                except psycopg.OperationalError as exc:
                    if conn.closed or conn.broken:
                        self._conn = None
                        if retry and attempt == 0:
                            continue
                    raise self._translate(exc, action) from None
                except psycopg.Error as exc:
                    raise self._translate(exc, action) from None
            raise AssertionError("unreachable")

    def _read(self, sql: str, params: Sequence[Any] | Mapping[str, Any] = ()) -> list[tuple]:
        return self._run(lambda conn: conn.execute(sql, params).fetchall(), "reading", retry=True)

    @contextmanager
    def _write(self, op: str, note: str) -> Iterator[tuple[Any, int, float]]:
        """One transaction that creates the next version: yields (connection, version, timestamp).

        The head-row bump comes first, so it is the lock that orders writers; every read after it
        (READ COMMITTED: a fresh snapshot per statement) sees all earlier versions."""
        import psycopg

        with self._lock:
            conn = self._connection()
            try:
                with conn.transaction():
                    version, now = conn.execute(
                        "UPDATE serac_head SET version = version + 1 WHERE id = 1 "
                        "RETURNING version, EXTRACT(EPOCH FROM clock_timestamp())::float8"
                    ).fetchone()
                    conn.execute(
                        "INSERT INTO serac_versions (version, created_at, op, note) VALUES (%s, %s, %s, %s)",
                        (version, now, op, note),
                    )
                    yield conn, version, now
                    conn.execute("SELECT pg_notify(%s, %s)", (CHANNEL, str(version)))
            except psycopg.OperationalError as exc:
                if conn.closed or conn.broken:
                    self._conn = None
                raise self._translate(exc, "writing") from None
            except psycopg.Error as exc:
                raise self._translate(exc, "writing") from None
        self._announce(version)

    # -- notifications ------------------------------------------------------------------------------
    def _announce(self, version: int) -> None:
        with self._changed:
            if version > self._announced:
                self._announced = version
                self._changed.notify_all()

    def _listen(self) -> None:
        """LISTEN on a connection of its own; reconnects with backoff while the store is open."""
        delay = 0.1
        while not self._closed:
            conn = None
            try:
                conn = self._connect("serac-listener")
                conn.execute(f"LISTEN {CHANNEL}")
                # Anything committed while we were not listening is announced by reading the head.
                self._announce(conn.execute("SELECT version FROM serac_head WHERE id = 1").fetchone()[0])
                self._listener_up.set()
                delay = 0.1
                while not self._closed:
                    for note in conn.notifies(timeout=0.5):
                        if note.payload.isdigit():
                            self._announce(int(note.payload))
            except Exception as exc:  # the connection broke or could not be made: retry later
                if not self._closed:
                    logger.info("PostgreSQL edit store listener reconnecting after: %s", exc)
            finally:
                self._listener_up.clear()
                if conn is not None:
                    conn.close()
            if not self._closed:
                time.sleep(delay)
                delay = min(delay * 2, 5.0)

    def listen(self) -> None:
        """Start the LISTEN thread (once). Only processes that wait for changes pay for it: a
        one-shot `serac edit ...` command never opens the second connection."""
        with self._changed:
            if self._listener is None and not self._closed:
                self._listener = threading.Thread(target=self._listen, name="serac-pg-listener", daemon=True)
                self._listener.start()

    @property
    def listening(self) -> bool:
        """Whether the LISTEN connection is up (if not, followers fall back to polling)."""
        return self._listener_up.is_set()

    def wait_for_change(self, version: int, timeout: float) -> bool:
        """Block until a version newer than ``version`` is announced (by NOTIFY or by our own write)
        or ``timeout`` passes. True when woken by a change; the caller then reads the store."""
        self.listen()
        deadline = time.monotonic() + timeout
        with self._changed:
            while self._announced <= version and not self._closed:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return False
                self._changed.wait(remaining)
            return self._announced > version

    # -- reads -------------------------------------------------------------------------------------
    @property
    def version(self) -> int:
        """The newest committed version; 0 for a store that has never changed."""
        return self._read("SELECT version FROM serac_head WHERE id = 1")[0][0]

    def versions(self) -> list[dict[str, Any]]:
        rows = self._read("SELECT version, created_at, op, note FROM serac_versions ORDER BY version")
        return [dict(zip(("version", "created_at", "op", "note"), r)) for r in rows]

    def get(self, edit_id: int) -> Edit:
        rows = self._read(f"SELECT {_EDIT_COLUMNS}, live FROM serac_edits WHERE id = %s", (int(edit_id),))
        return live_edit(edit_id, rows)

    def list(
        self, offset: int = 0, limit: int | None = None, newest_first: bool = False, after_id: int | None = None
    ) -> list[Edit]:
        """Live edits in id order (oldest first, or newest first); ``after_id``: a cursor, the
        edits after that id in this order."""
        order = "DESC" if newest_first else "ASC"
        bound = "" if after_id is None else (" AND id < %s" if newest_first else " AND id > %s")
        rows = self._read(
            f"SELECT {_EDIT_COLUMNS} FROM serac_edits WHERE live{bound} ORDER BY id {order} LIMIT %s OFFSET %s",
            (*(() if after_id is None else (int(after_id),)), None if limit is None else int(limit), int(offset)),
        )
        return [row_to_edit(r) for r in rows]

    # A scope index is not yet persisted for PostgreSQL stores: each server builds it at its first sync.
    index_dir = None

    @property
    def store_id(self) -> str:
        # only tags a persisted index, which this store does not keep yet (index_dir); hashed: the
        # URL may hold a password
        return hashlib.sha256(self.url.encode()).hexdigest()[:32]

    def get_many(self, ids: Sequence[int]) -> dict[int, Edit]:
        ids = [int(i) for i in ids]
        if not ids:
            return {}
        rows = self._read(f"SELECT {_EDIT_COLUMNS} FROM serac_edits WHERE id = ANY(%s)", (ids,))
        return {row[0]: row_to_edit(row) for row in rows}

    def live_chunks(self, encoder: str, chunk_size: int = 50_000) -> Iterator[LiveChunk]:
        after = 0
        while True:
            rows = self._read(
                "SELECT e.id, v.vector FROM serac_edits e LEFT JOIN serac_embeddings v "
                "ON v.edit_id = e.id AND v.encoder = %s WHERE e.live AND e.id > %s ORDER BY e.id LIMIT %s",
                (encoder, after, int(chunk_size)),
            )
            if not rows:
                return
            after = rows[-1][0]
            yield LiveChunk.from_rows(rows, self.get_many([r[0] for r in rows if r[1] is None]))

    def check(self, full: bool = False) -> list[str]:
        """The maintained live count against a recount (PostgreSQL checks its own pages)."""
        counted = self._read("SELECT COUNT(*) FROM serac_edits WHERE live")[0][0]
        if counted != self.count():
            return [f"the live count says {self.count()} but {counted} edits are live"]
        return []

    def search(self, text: str, offset: int = 0, limit: int = 50, count_up_to: int = 10_000) -> SearchResult:
        """As ``EditStore.search``: every word of ``text`` (the last also as a prefix) in input,
        target or metadata, newest first; counting stops after ``count_up_to`` matches."""
        words = search_words(text)
        if not words:
            return SearchResult([], 0, True)
        query = " & ".join(f"'{w.lower()}'" for w in words) + ":*"
        match = f"FROM serac_edits WHERE live AND {_TSV} @@ to_tsquery('simple', %s)"
        cap = min(max(int(count_up_to), int(offset) + int(limit)), 2**62)

        def read(conn: Any) -> tuple[int, list[tuple]]:
            with conn.transaction():
                conn.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
                sql = f"SELECT COUNT(*) FROM (SELECT 1 {match} LIMIT %s) AS hits"
                counted = conn.execute(sql, (query, cap + 1)).fetchone()[0]
                rows = conn.execute(
                    f"SELECT {_EDIT_COLUMNS} {match} ORDER BY id DESC LIMIT %s OFFSET %s",
                    (query, int(limit), int(offset)),
                ).fetchall()
                return counted, rows

        counted, rows = self._run(read, "searching", retry=True)
        return SearchResult([row_to_edit(r) for r in rows], min(counted, cap), counted <= cap)

    def history(self, offset: int = 0, limit: int = 20, sample: int = 5) -> list[dict[str, Any]]:
        """As ``EditStore.history``: versions newest first with their event counts and a sample."""
        versions = self._read(
            "SELECT v.version, v.created_at, v.op, v.note, "
            "(SELECT COUNT(*) FROM serac_events e WHERE e.version = v.version AND e.op = 'add'), "
            "(SELECT COUNT(*) FROM serac_events e WHERE e.version = v.version AND e.op = 'remove') "
            "FROM serac_versions v ORDER BY v.version DESC LIMIT %s OFFSET %s",
            (int(limit), int(offset)),
        )
        samples: dict[int, list[dict[str, Any]]] = {v[0]: [] for v in versions}
        for version, edit_id, op, text, target in self._read(
            "SELECT version, edit_id, op, input, target FROM (SELECT e.version, e.edit_id, e.op, d.input, "
            "d.target, row_number() OVER (PARTITION BY e.version ORDER BY e.edit_id) AS n FROM serac_events e "
            "JOIN serac_edits d ON d.id = e.edit_id WHERE e.version = ANY(%s)) AS s WHERE n <= %s "
            "ORDER BY version, edit_id",
            (list(samples), int(sample)),
        ):
            samples[version].append({"id": edit_id, "op": op, "input": text, "target": target})
        keys = ("version", "created_at", "op", "note", "added", "removed")
        return [{**dict(zip(keys, v)), "edits": samples[v[0]]} for v in versions]

    def count(self) -> int:
        return self._read("SELECT live_count FROM serac_head WHERE id = 1")[0][0]

    def __len__(self) -> int:
        return self.count()

    def changes_since(self, version: int) -> Changes:
        """Edits touched after ``version``: those now live, and the ids that are not. One snapshot,
        so the returned version and the changes agree."""

        def read(conn: Any) -> tuple[int, list[tuple]]:
            with conn.transaction():
                conn.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
                current = conn.execute("SELECT version FROM serac_head WHERE id = 1").fetchone()[0]
                rows = conn.execute(
                    f"SELECT {_EDIT_COLUMNS}, live FROM serac_edits WHERE id = ANY(%s) ORDER BY id",
                    (_touched_since(conn, version),),
                ).fetchall()
            return current, rows

        current, rows = self._run(read, "reading", retry=True)
        live = [row_to_edit(r[:5]) for r in rows if r[5]]
        removed = [r[0] for r in rows if not r[5]]
        return Changes(version=current, live=live, removed=removed)

    # -- writes ------------------------------------------------------------------------------------
    def add(self, input: str, target: str, metadata: Mapping[str, Any] | None = None) -> Edit:
        return self.add_many([validate_edit(input, target, metadata)])[0]

    def add_many(
        self, requests: Sequence[EditRequest], embeddings: tuple[str, np.ndarray] | None = None
    ) -> list[Edit]:
        """Store edits atomically as one new version; an edit whose folded input matches a live
        edit's (or a later one in the same batch) supersedes it. ``embeddings`` = (encoder id, one
        row per request) are stored in the same transaction."""
        requests = to_requests(requests)
        if not requests:
            return []
        if embeddings is not None and len(embeddings[1]) != len(requests):
            raise ValueError(f"got {len(embeddings[1])} embeddings for {len(requests)} edits")
        keys = [input_key(r.input) for r in requests]
        last = {key: i for i, key in enumerate(keys)}  # the newest of each key in the batch wins
        metadata = [json.dumps(dict(r.metadata), ensure_ascii=False) for r in requests]
        edits: list[Edit] = []
        with self._write("add", f"{len(requests)} edit(s)") as (conn, version, now):
            superseded = [
                r[0]
                for r in conn.execute(
                    "UPDATE serac_edits SET live = false WHERE live AND input_key = ANY(%s) RETURNING id",
                    (sorted(set(keys)),),
                ).fetchall()
            ]
            with conn.cursor() as cursor:
                cursor.executemany(
                    "INSERT INTO serac_edits (input, input_key, target, created_at, metadata, live) "
                    "VALUES (%s, %s, %s, %s, %s, %s) RETURNING id",
                    [
                        (r.input, key, r.target, now, meta, last[key] == i)
                        for i, (r, key, meta) in enumerate(zip(requests, keys, metadata))
                    ],
                    returning=True,
                )
                ids = []
                while True:
                    ids.append(int(cursor.fetchone()[0]))
                    if not cursor.nextset():
                        break
                events = [(version, old, "remove") for old in superseded] + [
                    (version, edit_id, "add" if last[key] == i else "remove")
                    for i, (edit_id, key) in enumerate(zip(ids, keys))
                ]
                cursor.executemany(
                    "INSERT INTO serac_events (version, edit_id, op) VALUES (%s, %s, %s)", events
                )
                if embeddings is not None:  # a bad vector fails here, inside the transaction
                    cursor.executemany(
                        "INSERT INTO serac_embeddings (edit_id, encoder, vector) VALUES (%s, %s, %s)",
                        [(edit_id, embeddings[0], vector_to_blob(v)) for edit_id, v in zip(ids, embeddings[1])],
                    )
            conn.execute(
                "UPDATE serac_head SET live_count = live_count + %s WHERE id = 1",
                (len(last) - len(superseded),),
            )
            edits = [Edit(i, r.input, r.target, now, dict(r.metadata)) for i, r in zip(ids, requests)]
        return edits

    def remove(self, edit_id: int) -> int:
        """Remove a live edit; returns the new version."""
        with self._write("remove", f"edit {edit_id}") as (conn, version, _):
            row = conn.execute(
                "UPDATE serac_edits SET live = false WHERE id = %s AND live RETURNING id", (int(edit_id),)
            ).fetchone()
            if row is None:  # raising rolls the version bump back: no gap
                raise EditNotFoundError(
                    f"no live edit with id {edit_id}; `serac edit list` shows the live ids"
                )
            conn.execute(
                "INSERT INTO serac_events (version, edit_id, op) VALUES (%s, %s, 'remove')",
                (version, int(edit_id)),
            )
            conn.execute("UPDATE serac_head SET live_count = live_count - 1 WHERE id = 1")
        return version

    def rollback(self, version: int) -> int:
        """Make the live set what it was at ``version``, as a new version. Only edits with events
        after ``version`` can differ from then, so only those are read and changed."""
        if isinstance(version, bool) or not isinstance(version, int):
            raise VersionNotFoundError(f"rollback needs an integer version, got {version!r}")
        with self._write("rollback", f"to version {version}") as (conn, new_version, _):
            current = new_version - 1
            if not 0 <= version <= current:
                raise VersionNotFoundError(
                    f"cannot roll back to version {version}: versions run from 0 (empty) to "
                    f"{current}; `serac edit log` lists them"
                )
            rows = conn.execute(
                """
                SELECT e.id, e.live, COALESCE((
                    SELECT ev.op = 'add' FROM serac_events ev
                    WHERE ev.edit_id = e.id AND ev.version <= %s
                    ORDER BY ev.version DESC LIMIT 1), false)
                FROM serac_edits e WHERE e.id = ANY(%s)
                """,
                (version, _touched_since(conn, version)),
            ).fetchall()
            drop = sorted(i for i, live, was in rows if live and not was)
            restore = sorted(i for i, live, was in rows if was and not live)
            if drop:
                conn.execute("UPDATE serac_edits SET live = false WHERE id = ANY(%s)", (drop,))
            if restore:
                conn.execute("UPDATE serac_edits SET live = true WHERE id = ANY(%s)", (restore,))
            with conn.cursor() as cursor:
                cursor.executemany(
                    "INSERT INTO serac_events (version, edit_id, op) VALUES (%s, %s, %s)",
                    [(new_version, i, "remove") for i in drop] + [(new_version, i, "add") for i in restore],
                )
            conn.execute(
                "UPDATE serac_head SET live_count = live_count + %s WHERE id = 1", (len(restore) - len(drop),)
            )
        return new_version

    # -- embedding cache -------------------------------------------------------------------------
    def get_embeddings(self, ids: Sequence[int], encoder: str) -> dict[int, np.ndarray]:
        ids = [int(i) for i in ids]
        if not ids:
            return {}
        rows = self._read(
            "SELECT edit_id, vector FROM serac_embeddings WHERE encoder = %s AND edit_id = ANY(%s)",
            (encoder, ids),
        )
        return {edit_id: np.frombuffer(blob, dtype=np.float32) for edit_id, blob in rows}

    def put_embeddings(self, encoder: str, ids: Sequence[int], vectors: np.ndarray) -> None:
        rows = [(int(i), encoder, vector_to_blob(v)) for i, v in zip(ids, vectors)]
        if not rows:
            return

        def write(conn: Any) -> None:
            with conn.transaction(), conn.cursor() as cursor:
                cursor.executemany(
                    "INSERT INTO serac_embeddings (edit_id, encoder, vector) VALUES (%s, %s, %s) "
                    "ON CONFLICT (edit_id, encoder) DO UPDATE SET vector = EXCLUDED.vector",
                    rows,
                )

        self._run(write, "writing", retry=False)

    def close(self) -> None:
        self._closed = True
        with self._changed:
            self._changed.notify_all()
        with self._lock:
            if self._conn is not None:
                self._conn.close()
                self._conn = None
        listener = self._listener
        if listener is not None and listener.is_alive() and listener is not threading.current_thread():
            listener.join(timeout=2)

    def __enter__(self) -> "PostgresEditStore":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
