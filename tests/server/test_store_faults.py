"""The store under faults (issue #11, findings 1 and 3): a write waiting for a store that another
process holds locked stalls no read, health check or inference; storage failures are 5xx with
messages that name no server path; /healthz says when the store cannot take writes."""

from __future__ import annotations

import os
import sqlite3
import stat
import threading
import time
from pathlib import Path

import httpx
import pytest

from serac.errors import StoreError

from .tiny import ThreadServer, build_tiny_editor

ASK = {"messages": [{"role": "user", "content": "hello"}], "max_tokens": 2}


@pytest.fixture
def file_server(tmp_path, tiny_causal_dir):
    """A server over a store file that the test can lock from another connection."""
    from serac.server import ServerSettings, create_app
    from serac.store import EditStore

    path = tmp_path / "edits.db"
    editor = build_tiny_editor(tiny_causal_dir, EditStore(path, busy_timeout_s=4.0))
    app = create_app(editor, ServerSettings(max_tokens_limit=8))
    with ThreadServer(app) as server:
        server.path, server.editor = path, editor
        yield server
    editor.store.close()


def _hold_write_lock(path: Path) -> sqlite3.Connection:
    """Another process's view: a connection holding an open write transaction on the store."""
    other = sqlite3.connect(path, isolation_level=None, timeout=0)
    other.execute("BEGIN IMMEDIATE")
    return other


def test_a_write_waiting_for_a_locked_store_stalls_no_read(file_server):
    with httpx.Client(base_url=file_server.url, timeout=30) as http:
        assert http.post("/v1/edits", json={"input": "first q", "target": "first a"}).status_code == 201
        other = _hold_write_lock(file_server.path)
        results: dict[str, httpx.Response] = {}
        writer = threading.Thread(
            target=lambda: results.update(
                write=httpx.post(
                    file_server.url + "/v1/edits", json={"input": "q2", "target": "a2"}, timeout=30
                )
            )
        )
        try:
            writer.start()
            time.sleep(0.5)  # the write is now waiting for the database lock
            for method, path, body in (
                ("GET", "/healthz", None),
                ("GET", "/v1/edits", None),
                ("GET", "/v1/edits/version", None),
                ("POST", "/v1/chat/completions", ASK),
            ):
                started = time.monotonic()
                response = http.request(method, path, json=body)
                took = time.monotonic() - started
                assert response.status_code == 200, (path, response.text)
                assert took < 1.0, f"{path} took {took:.1f} s while a write waited for the store"
            assert writer.is_alive(), "the write should still be waiting for the lock"
        finally:
            other.rollback()
            other.close()
        writer.join(timeout=30)
        assert results["write"].status_code == 201
        assert http.get("/v1/edits/version").json()["count"] == 2


def test_a_write_that_waits_too_long_is_a_503_with_retry_after(file_server):
    other = _hold_write_lock(file_server.path)
    try:
        started = time.monotonic()
        response = httpx.post(file_server.url + "/v1/edits", json={"input": "q", "target": "a"}, timeout=30)
        took = time.monotonic() - started
    finally:
        other.rollback()
        other.close()
    assert response.status_code == 503 and response.headers["retry-after"] == "1"
    error = response.json()["error"]
    assert error["code"] == "store_locked" and error["type"] == "service_unavailable"
    assert str(file_server.path.parent) not in error["message"]
    assert took < 4.0 + 2.0, "the wait is bounded by the store's busy timeout"


@pytest.mark.parametrize(
    "fault, code",
    [("PRAGMA query_only = 1", "SQLITE_READONLY"), ("PRAGMA max_page_count = 1", "SQLITE_FULL")],
    ids=["read-only", "disk-full"],
)
def test_storage_failures_are_5xx_naming_no_path_and_health_reports_them(file_server, fault, code):
    store = file_server.editor.store
    with httpx.Client(base_url=file_server.url, timeout=30) as http:
        assert http.get("/healthz").status_code == 200
        if "max_page_count" in fault:  # fill the file to its current size first
            pages = store._conn.execute("PRAGMA page_count").fetchone()[0]
            store._conn.execute(f"PRAGMA max_page_count = {pages}")
        else:
            store._conn.execute(fault)
        body = {"edits": [{"input": f"q{i} " + "x" * 500, "target": "a" * 500} for i in range(50)]}
        response = http.post("/v1/edits", json=body)
        assert response.status_code == 503, response.text
        error = response.json()["error"]
        assert error["code"] == "store_unavailable" and response.headers["retry-after"]
        assert str(file_server.path.parent) not in response.text and "edits.db" not in response.text
        health = http.get("/healthz")
        assert health.status_code == 503 and health.json()["status"] == "unavailable"
        assert any(code in p for p in health.json()["problems"]), health.json()
        assert http.get("/v1/edits/version").json()["count"] == 0, "nothing was written"


def test_a_commit_io_error_is_a_503(file_server, monkeypatch):
    def broken(*args, **kwargs):
        error = StoreError(f"edit store {file_server.path}: committing failed: disk I/O error")
        error.sqlite_error = "SQLITE_IOERR_FSYNC"
        raise error

    monkeypatch.setattr(file_server.editor.store, "add_many", broken)
    response = httpx.post(file_server.url + "/v1/edits", json={"input": "q", "target": "a"}, timeout=30)
    assert response.status_code == 503 and str(file_server.path) not in response.text


def test_health_reports_a_read_only_store_file(file_server):
    mode = os.stat(file_server.path).st_mode
    os.chmod(file_server.path, stat.S_IRUSR | stat.S_IRGRP)
    try:
        health = httpx.get(file_server.url + "/healthz", timeout=30)
    finally:
        os.chmod(file_server.path, mode)
    assert health.status_code == 503 and "the store is read-only" in health.json()["problems"]
    assert str(file_server.path.parent) not in health.text
    assert httpx.get(file_server.url + "/healthz", timeout=30).status_code == 200
