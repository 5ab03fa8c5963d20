"""EditStore: the durable, versioned edit memory (SQLite).

Why SQLite: one file, no server, ACID transactions and a write-ahead log, so an edit that ``add``
acknowledged has been fsynced and survives a killed process. Every change (add, remove, rollback) is
one transaction that creates one new version; an event log (version, edit id, add/remove) is what
makes rollback exact and lets other processes catch up incrementally (``changes_since``).

Every operation costs in proportion to what it changes, not to the store's history: catch-up and
rollback read only the events after a version (through the events primary key), the live count is
kept per version, and SQLite's integrity check runs on request (``check``, ``serac edit check``) or
when a previous process that had the store open did not close it, not on every open.
"""

from __future__ import annotations

import json
import os
import re
import socket
import sqlite3
import threading
import time
import uuid
import weakref
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator, Mapping, Protocol, Sequence

import numpy as np

from serac.edits import Edit, EditRequest, input_key, to_requests, validate_edit
from serac.errors import (
    EditNotFoundError,
    StoreCorruptError,
    StoreError,
    StoreLockedError,
    VersionNotFoundError,
)

SCHEMA_VERSION = 2
APPLICATION_ID = 0x53455243  # "SERC": marks the file as ours

_SCHEMA = """
CREATE TABLE versions (
    version    INTEGER PRIMARY KEY,
    created_at REAL    NOT NULL,
    op         TEXT    NOT NULL CHECK (op IN ('add', 'remove', 'rollback')),
    note       TEXT,
    live_count INTEGER NOT NULL DEFAULT 0
);
CREATE TABLE meta (
    key   TEXT PRIMARY KEY,
    value TEXT NOT NULL
);
CREATE TABLE edits (
    id         INTEGER PRIMARY KEY AUTOINCREMENT,
    input      TEXT    NOT NULL,
    input_key  TEXT    NOT NULL,
    target     TEXT    NOT NULL,
    created_at REAL    NOT NULL,
    metadata   TEXT    NOT NULL,
    live       INTEGER NOT NULL
);
CREATE INDEX edits_live_key ON edits (input_key) WHERE live = 1;
CREATE TABLE events (
    version INTEGER NOT NULL REFERENCES versions (version),
    edit_id INTEGER NOT NULL REFERENCES edits (id),
    op      TEXT    NOT NULL CHECK (op IN ('add', 'remove')),
    PRIMARY KEY (version, edit_id)
);
CREATE INDEX events_edit ON events (edit_id, version);
CREATE TABLE embeddings (
    edit_id INTEGER NOT NULL REFERENCES edits (id),
    encoder TEXT    NOT NULL,
    vector  BLOB    NOT NULL,
    PRIMARY KEY (edit_id, encoder)
);
"""


# Full-text index over the edits (word and word-prefix search for people looking for an edit).
# External content: the text lives once, in `edits`; edit text never changes after insert, so one
# insert trigger keeps the index whole. Added to stores made before it by `_ensure_search_index`.
_SEARCH_SCHEMA = (
    (
        "CREATE VIRTUAL TABLE edits_fts USING fts5(input, target, metadata, content='edits', "
        "content_rowid='id', tokenize='unicode61 remove_diacritics 2')"
    ),
    (
        "CREATE TRIGGER edits_fts_insert AFTER INSERT ON edits BEGIN INSERT INTO edits_fts "
        "(rowid, input, target, metadata) VALUES (new.id, new.input, new.target, new.metadata); END"
    ),
    "INSERT INTO edits_fts (edits_fts) VALUES ('rebuild')",
)
_WORD = re.compile(r"\w+")
_MAX_SQL_INT = 2**63 - 1


@dataclass(frozen=True)
class Changes:
    """What changed after a version: edits now live (to index) and ids no longer live (to drop)."""

    version: int
    live: list[Edit]
    removed: list[int]


@dataclass(frozen=True)
class LiveChunk:
    """One slice of the live set in id order, for (re)building an index without holding every
    edit: ids with a cached vector for the encoder, those vectors, and the edits lacking one."""

    ids: np.ndarray  # int64, (n,)
    vectors: np.ndarray  # float32, (n, dim)
    missing: list[Edit]

    @classmethod
    def from_rows(cls, rows: Sequence[tuple], missing: Mapping[int, Edit]) -> "LiveChunk":
        """From (id, vector blob or None) rows and the edits of the rows without a vector."""
        have = [r for r in rows if r[1] is not None]
        vectors = np.frombuffer(b"".join(bytes(r[1]) for r in have), dtype=np.float32)
        vectors = vectors.reshape(len(have), -1) if have else vectors.reshape(0, 0)
        return cls(np.array([r[0] for r in have], dtype=np.int64), vectors, list(missing.values()))


def search_words(text: str) -> list[str]:
    """The words a search looks for: runs of letters and digits; everything else (quotes,
    operators, punctuation) separates them, so no query syntax reaches the database."""
    return _WORD.findall(text)


@dataclass(frozen=True)
class SearchResult:
    """One page of search results, newest first, and how many edits match: exactly when
    ``exact``, else at least ``total`` (counting stops there, so a word in every edit stays cheap)."""

    edits: list[Edit]
    total: int
    exact: bool


class EditStoreProtocol(Protocol):
    """The seam a different backend (e.g. Postgres) implements.

    Costs a backend must keep (the scope index relies on them at a million edits): ``version``,
    ``count``, ``get``, ``get_many``, ``remove`` O(1) or O(log N); ``changes_since(v)`` and
    ``rollback(v)`` O(events after v), never a scan of the whole history; ``list`` by ``after_id``
    O(limit).
    """

    @property
    def version(self) -> int:
        """The newest version; 0 for a store that has never changed."""
    @property
    def store_id(self) -> str:
        """A random id fixed when the store is created: a persisted index tagged with another
        store's id (a copied or recreated store) is never trusted."""
    @property
    def index_dir(self) -> Path | None:
        """Where a persisted scope index for this store may be kept (None: keep none)."""
    def add_many(
        self, requests: Sequence[EditRequest], embeddings: tuple[str, np.ndarray] | None = None
    ) -> list[Edit]: ...
    def get(self, edit_id: int) -> Edit: ...
    def get_many(self, ids: Sequence[int]) -> dict[int, Edit]:
        """The rows of these ids, live or not (the caller's index decides liveness); unknown ids
        are left out. Used for the top-k of each query, so no caller holds every edit."""
    def list(
        self, offset: int = 0, limit: int | None = None, newest_first: bool = False, after_id: int | None = None
    ) -> list[Edit]:
        """Live edits in id order; ``after_id`` pages by cursor in O(limit), ``offset`` in O(offset)."""
    def count(self) -> int:
        """Live edits, read from the newest version's maintained count (O(1))."""
    def search(self, text: str, offset: int = 0, limit: int = 50, count_up_to: int = 10_000) -> SearchResult: ...
    def history(self, offset: int = 0, limit: int = 20, sample: int = 5) -> list[dict[str, Any]]: ...
    def remove(self, edit_id: int) -> int: ...
    def rollback(self, version: int) -> int: ...
    def changes_since(self, version: int) -> Changes: ...
    def live_chunks(self, encoder: str, chunk_size: int = 50_000) -> Iterator[LiveChunk]:
        """The whole live set with its cached vectors, chunk by chunk (a full index rebuild)."""
    def get_embeddings(self, ids: Sequence[int], encoder: str) -> dict[int, np.ndarray]: ...
    def put_embeddings(self, encoder: str, ids: Sequence[int], vectors: np.ndarray) -> None: ...
    def check(self, full: bool = False) -> list[str]:
        """Integrity problems found (empty: none); O(N), run on request."""


def row_to_edit(row: sqlite3.Row | tuple) -> Edit:
    """An (id, input, target, created_at, metadata JSON) row as an Edit (shared with the PostgreSQL store)."""
    edit_id, text, target, created_at, metadata = row
    return Edit(id=edit_id, input=text, target=target, created_at=created_at, metadata=json.loads(metadata))


def live_edit(edit_id: int, rows: Sequence[tuple]) -> Edit:
    """The edit in an (id, input, target, created_at, metadata, live) query result, or the error that
    says why there is none (shared with the PostgreSQL store)."""
    if not rows:
        raise EditNotFoundError(f"no edit with id {edit_id}; `serac edit list` (or EditStore.list()) shows the ids")
    if not rows[0][5]:
        raise EditNotFoundError(
            f"edit {edit_id} was removed or superseded; `serac edit rollback VERSION` to a "
            "version where it was live restores it"
        )
    return row_to_edit(rows[0][:5])


_EDIT_COLUMNS = "id, input, target, created_at, metadata"


class EditStore:
    """SQLite edit store. ``path`` may be ``":memory:"`` for throwaway use (tests, evaluation).

    Thread-safe within a process. A file store has two connections: writes go through one, behind
    a lock, and wait for SQLite's write lock (held by another process) for up to ``busy_timeout_s``;
    reads go through the other and see the last committed version (WAL), so they never queue behind
    a write that waits. Several processes may share a file.
    """

    last_write_error: tuple[float, str] | None = None  # (time.time(), SQLite error name), until a write works

    def __init__(self, path: str | Path = ":memory:", busy_timeout_s: float = 10.0) -> None:
        self.path = str(path) if str(path) == ":memory:" else str(Path(path).expanduser())
        self.busy_timeout_s = busy_timeout_s
        self._lock = threading.RLock()  # the write connection (and, in memory, the only one)
        self._read_lock = self._lock
        self._store_id: str | None = None
        self._marker: Path | None = None
        if self.path != ":memory:":
            Path(self.path).parent.mkdir(parents=True, exist_ok=True)
        try:
            self._conn = sqlite3.connect(
                self.path, timeout=busy_timeout_s, isolation_level=None, check_same_thread=False
            )
        except sqlite3.Error as exc:
            raise self._translate(exc, "opening") from None
        try:
            self._conn.execute(f"PRAGMA busy_timeout = {int(busy_timeout_s * 1000)}")
            self._init_schema_with_retry(busy_timeout_s)
        except BaseException as exc:
            self._conn.close()  # a store that failed to open holds no file handle or lock
            if isinstance(exc, sqlite3.Error):
                raise self._translate(exc, "opening") from None
            raise
        self._reader = self._conn
        if self.path != ":memory:":
            try:
                self._reader = sqlite3.connect(
                    self.path, timeout=busy_timeout_s, isolation_level=None, check_same_thread=False
                )
                self._reader.execute("PRAGMA query_only = 1")
            except sqlite3.Error as exc:
                self._conn.close()
                raise self._translate(exc, "opening") from None
            self._read_lock = threading.RLock()
        try:
            self._check_after_unclean_shutdown()
        except BaseException:
            self.close()
            raise

    @property
    def index_dir(self) -> Path | None:
        """``<store>.serac/`` beside the store file: persisted indexes and open-process markers."""
        return None if self.path == ":memory:" else Path(self.path + ".serac")

    @property
    def store_id(self) -> str:
        if self._store_id is None:
            self._store_id = self._read("SELECT value FROM meta WHERE key = 'store_id'")[0][0]
        return self._store_id

    # -- setup -----------------------------------------------------------------------------
    def _init_schema_with_retry(self, busy_timeout_s: float) -> None:
        # Switching a new file to WAL needs an exclusive lock, and SQLite reports BUSY for it at
        # once, without its busy handler, while another process is creating the same store.
        deadline = time.monotonic() + busy_timeout_s
        delay = 0.01
        while True:
            try:
                self._init_schema()
                return
            except (sqlite3.OperationalError, StoreLockedError) as exc:
                locked = isinstance(exc, StoreLockedError) or "locked" in str(exc) or "busy" in str(exc)
                if not locked or time.monotonic() + delay > deadline:
                    raise
                time.sleep(delay)
                delay = min(delay * 2, 0.5)

    def _init_schema(self) -> None:
        conn = self._conn

        def blank() -> bool:
            app_id = conn.execute("PRAGMA application_id").fetchone()[0]
            return app_id == 0 and not conn.execute("SELECT 1 FROM sqlite_master LIMIT 1").fetchone()

        if blank():
            if self.path != ":memory:":
                conn.execute("PRAGMA journal_mode = WAL")
            with self._write():
                # Check again under the write lock: another process opening the same new file at
                # the same time may have created the schema since.
                if blank():
                    for statement in _SCHEMA.split(";"):
                        if statement.strip():
                            conn.execute(statement)
                    conn.execute("INSERT INTO meta (key, value) VALUES ('store_id', ?)", (uuid.uuid4().hex,))
                    conn.execute(f"PRAGMA application_id = {APPLICATION_ID}")
                    conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
        app_id = conn.execute("PRAGMA application_id").fetchone()[0]
        user_version = conn.execute("PRAGMA user_version").fetchone()[0]
        if app_id != APPLICATION_ID:
            raise StoreCorruptError(
                f"{self.path} is an SQLite database but not a serac edit store "
                f"(application_id {app_id:#x}); point serac at a new file or an existing store"
            )
        elif user_version == 1:
            self._migrate_from_1()
        elif user_version != SCHEMA_VERSION:
            raise StoreError(
                f"{self.path} has store schema version {user_version}, this serac reads version "
                f"{SCHEMA_VERSION}; upgrade serac or open the file with the version that wrote it"
            )
        # FULL: each commit is fsynced, so an acknowledged edit survives power loss too.
        conn.execute("PRAGMA synchronous = FULL")
        conn.execute("PRAGMA foreign_keys = ON")
        # O(1) sanity check on every open (a truncated file); the O(N) check runs on request or
        # after an unclean shutdown (_check_after_unclean_shutdown).
        if self.path != ":memory:":
            page_size, pages = (conn.execute(f"PRAGMA {p}").fetchone()[0] for p in ("page_size", "page_count"))
            wal = Path(self.path + "-wal")
            size = Path(self.path).stat().st_size + (wal.stat().st_size if wal.exists() else 0)
            if size < page_size * pages:  # pages not yet checkpointed live in the WAL
                raise StoreCorruptError(self._corrupt_message("it is shorter than its header says"))
        self._read_tail()
        self._ensure_search_index()

    def _read_tail(self) -> None:
        """Touch the newest version row and the live count: a damaged file fails here, at open."""
        self._conn.execute("SELECT version, live_count FROM versions ORDER BY version DESC LIMIT 1").fetchall()
        self._conn.execute("SELECT value FROM meta WHERE key = 'store_id'").fetchall()

    def _migrate_from_1(self) -> None:
        """Schema 1 -> 2: a maintained live count per version and a store id (one O(N) count)."""
        with self._write() as conn:
            if conn.execute("PRAGMA user_version").fetchone()[0] != 1:
                return  # another process migrated it meanwhile
            conn.execute("ALTER TABLE versions ADD COLUMN live_count INTEGER NOT NULL DEFAULT 0")
            conn.execute(
                "UPDATE versions SET live_count = (SELECT COUNT(*) FROM edits WHERE live = 1) "
                "WHERE version = (SELECT MAX(version) FROM versions)"
            )
            conn.execute("CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)")
            conn.execute("INSERT INTO meta (key, value) VALUES ('store_id', ?)", (uuid.uuid4().hex,))
            conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")

    def _corrupt_message(self, problem: str) -> str:
        return (f"{self.path} failed SQLite's integrity check ({problem}); restore it from a "
                "backup, or move it aside and start a new store")

    def _check_after_unclean_shutdown(self) -> None:
        """Each process that opens a file store leaves a marker beside it and removes it on close
        (or at interpreter exit). A marker whose process is gone means it died with the store
        open: then run SQLite's quick_check once. A directory we cannot write: check every time."""
        directory = self.index_dir
        if directory is None:
            return
        host = socket.gethostname()
        stale: list[Path] = []
        unwritable = False
        try:
            directory.mkdir(exist_ok=True)
            for marker in directory.glob("open-*"):
                _, marker_host, pid, _ = (marker.name.split("~") + ["", "", "", ""])[:4]
                if marker_host == host and pid.isdigit() and not _process_alive(int(pid)):
                    stale.append(marker)
            self._marker = directory / f"open-~{host}~{os.getpid()}~{uuid.uuid4().hex[:8]}"
            self._marker.touch()
            weakref.finalize(self, _unlink, self._marker)
        except OSError:
            unwritable = True
        if stale or unwritable:
            problems = self.check()
            if problems:  # the stale markers stay: every open checks again until the store is fixed
                raise StoreCorruptError(self._corrupt_message(problems[0]))
            for marker in stale:
                _unlink(marker)

    def _drop_marker(self) -> None:
        if self._marker is not None:
            _unlink(self._marker)
            self._marker = None

    def check(self, full: bool = False) -> list[str]:
        """Integrity problems (empty: none): SQLite's quick_check (``full``: integrity_check, which
        also checks the indexes' contents), then the maintained live count against a recount."""
        pragma = "integrity_check" if full else "quick_check"
        try:
            problems = [r[0] for r in self._read(f"PRAGMA {pragma}")]
        except StoreCorruptError as exc:  # damage bad enough that the check itself cannot run
            return [str(exc)]
        if problems != ["ok"]:
            return problems
        counted = self._read("SELECT COUNT(*) FROM edits WHERE live = 1")[0][0]
        if counted != self.count():
            return [f"the live count says {self.count()} but {counted} edits are live"]
        return []

    def _ensure_search_index(self) -> None:
        """Create the full-text index (and fill it from the stored edits) if this store lacks it:
        new stores, and stores written before search existed. Same schema version: older serac
        versions read such a store unchanged, and their inserts still feed the index (trigger)."""

        def missing() -> bool:
            return not self._conn.execute("SELECT 1 FROM sqlite_master WHERE name = 'edits_fts'").fetchone()

        if missing():
            with self._write() as conn:
                if missing():  # another process may have added it since
                    for statement in _SEARCH_SCHEMA:
                        conn.execute(statement)

    def _translate(self, exc: sqlite3.Error, action: str) -> StoreError:
        error = self._translate_message(exc, action)
        error.sqlite_error = getattr(exc, "sqlite_errorname", None) or type(exc).__name__
        return error

    def _translate_message(self, exc: sqlite3.Error, action: str) -> StoreError:
        message = str(exc)
        if "locked" in message or "busy" in message:
            return StoreLockedError(
                f"the edit store {self.path} stayed locked by another process while {action}; "
                "retry, or stop the other writer (a stuck `serac` process or an open sqlite shell)"
            )
        if isinstance(exc, sqlite3.DatabaseError) and (
            "not a database" in message or "malformed" in message or "corrupt" in message
        ):
            return StoreCorruptError(
                f"{self.path} is not a readable serac edit store ({message}); restore it from a "
                "backup, or move it aside and start a new store"
            )
        return StoreError(f"edit store {self.path}: {action} failed: {message}")

    @contextmanager
    def _write(self) -> Iterator[sqlite3.Connection]:
        """One IMMEDIATE transaction: all or nothing, and writers never interleave. Waiting for the
        write lock (another writer in this process, or another process) is bounded by the busy
        timeout; reads do not wait for it (they use their own connection)."""
        if not self._lock.acquire(timeout=self.busy_timeout_s):
            raise StoreLockedError(
                f"the edit store {self.path} stayed busy with another write from this process; retry"
            )
        try:
            try:
                self._conn.execute("BEGIN IMMEDIATE")
            except sqlite3.Error as exc:
                raise self._failed(exc, "starting a write") from None
            try:
                yield self._conn
            except BaseException as exc:
                if self._conn.in_transaction:  # SQLite may already have rolled back (e.g. disk full)
                    self._conn.execute("ROLLBACK")
                if isinstance(exc, sqlite3.Error):
                    raise self._failed(exc, "writing") from None
                raise
            else:
                try:
                    self._conn.execute("COMMIT")
                except sqlite3.Error as exc:
                    if self._conn.in_transaction:
                        self._conn.execute("ROLLBACK")
                    raise self._failed(exc, "committing") from None
                self.last_write_error = None
        finally:
            self._lock.release()

    def _failed(self, exc: sqlite3.Error, action: str) -> StoreError:
        error = self._translate(exc, action)
        if not isinstance(error, StoreLockedError):
            self.last_write_error = (time.time(), error.sqlite_error or "error")
        return error

    def _read(self, sql: str, params: Sequence[Any] = ()) -> list[tuple]:
        with self._read_lock:
            try:
                return self._reader.execute(sql, params).fetchall()
            except sqlite3.Error as exc:
                raise self._translate(exc, "reading") from None

    def _new_version(self, conn: sqlite3.Connection, op: str, note: str | None = None) -> int:
        """Insert the next version (its live count is set by ``_set_live_count`` before commit)."""
        version, live = conn.execute(
            "SELECT COALESCE(MAX(version), 0) + 1, "
            "COALESCE((SELECT live_count FROM versions ORDER BY version DESC LIMIT 1), 0) FROM versions"
        ).fetchone()
        conn.execute(
            "INSERT INTO versions (version, created_at, op, note, live_count) VALUES (?, ?, ?, ?, ?)",
            (version, time.time(), op, note, live),
        )
        return version

    @staticmethod
    def _add_live_count(conn: sqlite3.Connection, version: int, delta: int) -> None:
        conn.execute("UPDATE versions SET live_count = live_count + ? WHERE version = ?", (delta, version))

    # -- reads -------------------------------------------------------------------------------
    @property
    def version(self) -> int:
        """The newest version; 0 for a store that has never changed."""
        return self._read("SELECT COALESCE(MAX(version), 0) FROM versions")[0][0]

    def versions(self) -> list[dict[str, Any]]:
        rows = self._read("SELECT version, created_at, op, note FROM versions ORDER BY version")
        return [dict(zip(("version", "created_at", "op", "note"), r)) for r in rows]

    def get(self, edit_id: int) -> Edit:
        rows = self._read(f"SELECT {_EDIT_COLUMNS}, live FROM edits WHERE id = ?", (int(edit_id),))
        return live_edit(edit_id, rows)

    def get_many(self, ids: Sequence[int]) -> dict[int, Edit]:
        found: dict[int, Edit] = {}
        for chunk in _chunks([int(i) for i in ids]):
            marks = ",".join("?" * len(chunk))
            for row in self._read(f"SELECT {_EDIT_COLUMNS} FROM edits WHERE id IN ({marks})", chunk):
                found[row[0]] = row_to_edit(row)
        return found

    def list(
        self, offset: int = 0, limit: int | None = None, newest_first: bool = False, after_id: int | None = None
    ) -> list[Edit]:
        """Live edits in id order (oldest first, or newest first). ``after_id`` is a cursor: the
        edits after that id in this order, O(limit) however deep the page; ``offset`` skips that
        many first, at a cost that grows with it."""
        offset, size = int(offset), -1 if limit is None else int(limit)
        with self._read_lock:  # reads never wait behind a write holding the store
            if after_id is None and newest_first and size >= 0 and offset > 0:
                total = self.count()
                if offset > total // 2:
                    # OFFSET costs the rows it skips: a page nearer the oldest end is read from there
                    start = max(0, total - offset - size)
                    return self._page(start, max(0, total - offset - start), "ASC")[::-1]
            return self._page(offset, size, "DESC" if newest_first else "ASC", after_id)

    def _page(self, offset: int, limit: int, order: str, after_id: int | None = None) -> list[Edit]:
        bound = "" if after_id is None else (" AND id > ?" if order == "ASC" else " AND id < ?")
        rows = self._read(
            f"SELECT {_EDIT_COLUMNS} FROM edits WHERE live = 1{bound} ORDER BY id {order} LIMIT ? OFFSET ?",
            (*(() if after_id is None else (int(after_id),)), limit, offset),
        )
        return [row_to_edit(r) for r in rows]

    def count(self) -> int:
        rows = self._read("SELECT live_count FROM versions ORDER BY version DESC LIMIT 1")
        return rows[0][0] if rows else 0

    def __len__(self) -> int:
        return self.count()

    def search(self, text: str, offset: int = 0, limit: int = 50, count_up_to: int = 10_000) -> SearchResult:
        """Live edits whose input, target or metadata contain every word of ``text`` (the last
        word also as a prefix, so results follow typing), newest first, and how many match.

        Served by the full-text index: the page costs about the same however many edits are
        stored, and counting stops after ``count_up_to`` matches (or the end of this page, if
        further), so the worst case does not grow with the store either. Words are quoted, so
        FTS5 syntax (``AND``, ``*``, quotes) in ``text`` is plain text."""
        words = search_words(text)
        if not words:
            return SearchResult([], 0, True)
        query = " ".join(f'"{w}"' for w in words[:-1]) + f' "{words[-1]}"*'
        match = "FROM edits_fts JOIN edits ON edits.id = edits_fts.rowid WHERE edits_fts MATCH ? AND edits.live = 1"
        cap = min(max(int(count_up_to), int(offset) + int(limit)), _MAX_SQL_INT - 1)
        with self._read_lock:
            counted = self._read(f"SELECT COUNT(*) FROM (SELECT 1 {match} LIMIT ?)", (query, cap + 1))[0][0]
            rows = self._read(
                f"SELECT edits.id, edits.input, edits.target, edits.created_at, edits.metadata {match} "
                "ORDER BY edits_fts.rowid DESC LIMIT ? OFFSET ?",
                (query, int(limit), int(offset)),
            )
        return SearchResult([row_to_edit(r) for r in rows], min(counted, cap), counted <= cap)

    def history(self, offset: int = 0, limit: int = 20, sample: int = 5) -> list[dict[str, Any]]:
        """Versions newest first, each with what it did from the event log: how many edits it
        added and removed, and up to ``sample`` of them (id, op, input, target)."""
        with self._read_lock:
            versions = self._read(
                "SELECT version, created_at, op, note FROM versions ORDER BY version DESC LIMIT ? OFFSET ?",
                (int(limit), int(offset)),
            )
            records = []
            for version, created_at, op, note in versions:
                counts = dict(
                    self._read("SELECT op, COUNT(*) FROM events WHERE version = ? GROUP BY op", (version,))
                )
                edits = self._read(
                    "SELECT events.edit_id, events.op, edits.input, edits.target FROM events "
                    "JOIN edits ON edits.id = events.edit_id WHERE version = ? ORDER BY events.edit_id LIMIT ?",
                    (version, int(sample)),
                )
                records.append(
                    {
                        "version": version,
                        "created_at": created_at,
                        "op": op,
                        "note": note,
                        "added": counts.get("add", 0),
                        "removed": counts.get("remove", 0),
                        "edits": [dict(zip(("id", "op", "input", "target"), e)) for e in edits],
                    }
                )
        return records

    def changes_since(self, version: int) -> Changes:
        """Edits touched after ``version``: those now live, and the ids that are not."""
        with self._read_lock:
            current = self.version
            # No DISTINCT: with it SQLite scans the whole events table through events_edit; without
            # it, it reads only the events after `version` through the primary key.
            touched = sorted({r[0] for r in self._read("SELECT edit_id FROM events WHERE version > ?", (int(version),))})
            rows = []
            for chunk in _chunks(touched):
                marks = ",".join("?" * len(chunk))
                rows += self._read(f"SELECT {_EDIT_COLUMNS}, live FROM edits WHERE id IN ({marks})", chunk)
        rows.sort(key=lambda r: r[0])
        live = [row_to_edit(r[:5]) for r in rows if r[5]]
        removed = [r[0] for r in rows if not r[5]]
        return Changes(version=current, live=live, removed=removed)

    def live_chunks(self, encoder: str, chunk_size: int = 50_000) -> Iterator[LiveChunk]:
        after = 0
        while True:
            rows = self._read(
                "SELECT e.id, v.vector FROM edits e LEFT JOIN embeddings v ON v.edit_id = e.id AND v.encoder = ? "
                "WHERE e.live = 1 AND e.id > ? ORDER BY e.id LIMIT ?",
                (encoder, after, int(chunk_size)),
            )
            if not rows:
                return
            after = rows[-1][0]
            yield LiveChunk.from_rows(rows, self.get_many([r[0] for r in rows if r[1] is None]))

    # -- writes ------------------------------------------------------------------------------
    def add(self, input: str, target: str, metadata: Mapping[str, Any] | None = None) -> Edit:
        return self.add_many([validate_edit(input, target, metadata)])[0]

    def add_many(
        self, requests: Sequence[EditRequest], embeddings: tuple[str, np.ndarray] | None = None
    ) -> list[Edit]:
        """Store edits atomically as one new version. An edit whose input matches a live edit's
        (after case/whitespace folding) supersedes it: the newer one wins.

        ``embeddings`` = (encoder id, array with one row per request) stores the key vectors in the
        same transaction, so they are computed once, at insert.
        """
        requests = to_requests(requests)
        if not requests:
            return []
        if embeddings is not None and len(embeddings[1]) != len(requests):
            raise ValueError(f"got {len(embeddings[1])} embeddings for {len(requests)} edits")
        now = time.time()
        edits: list[Edit] = []
        with self._write() as conn:
            version = self._new_version(conn, "add", f"{len(requests)} edit(s)")
            superseded = 0
            for i, request in enumerate(requests):
                key = input_key(request.input)
                for (old_id,) in conn.execute(
                    "SELECT id FROM edits WHERE live = 1 AND input_key = ?", (key,)
                ).fetchall():
                    superseded += 1
                    conn.execute("UPDATE edits SET live = 0 WHERE id = ?", (old_id,))
                    conn.execute(
                        "INSERT OR REPLACE INTO events (version, edit_id, op) VALUES (?, ?, 'remove')",
                        (version, old_id),
                    )
                metadata = json.dumps(dict(request.metadata), ensure_ascii=False)
                cursor = conn.execute(
                    "INSERT INTO edits (input, input_key, target, created_at, metadata, live) "
                    "VALUES (?, ?, ?, ?, ?, 1)",
                    (request.input, key, request.target, now, metadata),
                )
                edit_id = int(cursor.lastrowid)
                conn.execute(
                    "INSERT INTO events (version, edit_id, op) VALUES (?, ?, 'add')", (version, edit_id)
                )
                if embeddings is not None:
                    conn.execute(
                        "INSERT INTO embeddings (edit_id, encoder, vector) VALUES (?, ?, ?)",
                        (edit_id, embeddings[0], vector_to_blob(embeddings[1][i])),
                    )
                edits.append(Edit(edit_id, request.input, request.target, now, dict(request.metadata)))
            self._add_live_count(conn, version, len(requests) - superseded)
        return edits

    def remove(self, edit_id: int) -> int:
        """Remove a live edit; returns the new version."""
        with self._write() as conn:
            row = conn.execute("SELECT live FROM edits WHERE id = ?", (int(edit_id),)).fetchone()
            if row is None or not row[0]:
                raise EditNotFoundError(
                    f"no live edit with id {edit_id}; `serac edit list` shows the live ids"
                )
            version = self._new_version(conn, "remove", f"edit {edit_id}")
            conn.execute("UPDATE edits SET live = 0 WHERE id = ?", (int(edit_id),))
            conn.execute(
                "INSERT INTO events (version, edit_id, op) VALUES (?, ?, 'remove')", (version, int(edit_id))
            )
            self._add_live_count(conn, version, -1)
        return version

    def rollback(self, version: int) -> int:
        """Make the live set equal to what it was at ``version``; recorded as a new version, so a
        rollback can itself be rolled back. Returns the new version.

        Only edits with an event after ``version`` can differ from their state then, so only those
        are read: each one's state at ``version`` is its last event up to it (events_edit index)."""
        if isinstance(version, bool) or not isinstance(version, int):
            raise VersionNotFoundError(f"rollback needs an integer version, got {version!r}")
        with self._write() as conn:
            current = conn.execute("SELECT COALESCE(MAX(version), 0) FROM versions").fetchone()[0]
            if not 0 <= version <= current:
                raise VersionNotFoundError(
                    f"cannot roll back to version {version}: versions run from 0 (empty) to "
                    f"{current}; `serac edit log` lists them"
                )
            touched = sorted({r[0] for r in conn.execute("SELECT edit_id FROM events WHERE version > ?", (version,))})
            to_remove: list[int] = []
            to_add: list[int] = []
            for chunk in _chunks(touched):
                marks = ",".join("?" * len(chunk))
                for edit_id, live, op_then in conn.execute(
                    "SELECT e.id, e.live, (SELECT op FROM events ev WHERE ev.edit_id = e.id AND ev.version <= ? "
                    f"ORDER BY ev.version DESC LIMIT 1) FROM edits e WHERE e.id IN ({marks})",
                    (version, *chunk),
                ):
                    if live and op_then != "add":
                        to_remove.append(edit_id)
                    elif not live and op_then == "add":
                        to_add.append(edit_id)
            new_version = self._new_version(conn, "rollback", f"to version {version}")
            for ids, live, op in ((sorted(to_remove), 0, "remove"), (sorted(to_add), 1, "add")):
                conn.executemany(f"UPDATE edits SET live = {live} WHERE id = ?", [(i,) for i in ids])
                conn.executemany(
                    "INSERT INTO events (version, edit_id, op) VALUES (?, ?, ?)", [(new_version, i, op) for i in ids]
                )
            self._add_live_count(conn, new_version, len(to_add) - len(to_remove))
        return new_version

    # -- embedding cache -------------------------------------------------------------------------
    def get_embeddings(self, ids: Sequence[int], encoder: str) -> dict[int, np.ndarray]:
        found: dict[int, np.ndarray] = {}
        for chunk in _chunks([int(i) for i in ids]):
            marks = ",".join("?" * len(chunk))
            for edit_id, blob in self._read(
                f"SELECT edit_id, vector FROM embeddings WHERE encoder = ? AND edit_id IN ({marks})",
                (encoder, *chunk),
            ):
                found[edit_id] = np.frombuffer(blob, dtype=np.float32)
        return found

    def put_embeddings(self, encoder: str, ids: Sequence[int], vectors: np.ndarray) -> None:
        with self._write() as conn:
            conn.executemany(
                "INSERT OR REPLACE INTO embeddings (edit_id, encoder, vector) VALUES (?, ?, ?)",
                [(int(i), encoder, vector_to_blob(v)) for i, v in zip(ids, vectors)],
            )

    def backup(self, path: str | Path) -> None:
        """A consistent copy of the whole store (edits, versions, vectors) at ``path``, taken with
        SQLite's online backup while other connections may keep writing."""
        with self._lock:
            target = sqlite3.connect(Path(path))
            try:
                self._conn.backup(target)
            finally:
                target.close()

    def close(self) -> None:
        with self._lock, self._read_lock:
            self._conn.close()
            self._reader.close()
            self._drop_marker()

    def __enter__(self) -> "EditStore":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _chunks(ids: list[int], size: int = 900) -> Iterator[list[int]]:
    """Slices under SQLite's bound-parameter limit."""
    for start in range(0, len(ids), size):
        yield ids[start : start + size]


def _process_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # alive, owned by another user
        return True
    return True


def _unlink(path: Path) -> None:
    try:
        path.unlink(missing_ok=True)
    except OSError:
        pass


def vector_to_blob(vector: np.ndarray) -> bytes:
    """A key vector as stored: float32 bytes (shared with the PostgreSQL store)."""
    return np.ascontiguousarray(vector, dtype=np.float32).tobytes()
