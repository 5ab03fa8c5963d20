"""`serac edit ...` on a temporary store, with the hashing encoder instead of a real model."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from conftest import HashingEncoder
from serac.cli import app
from serac.scope import ScopeClassifier
from serac.store import EditStore

runner = CliRunner()


@pytest.fixture(autouse=True)
def isolated(monkeypatch, tmp_path):
    monkeypatch.setenv("SERAC_HOME", str(tmp_path / "home"))
    monkeypatch.delenv("SERAC_STORE", raising=False)
    monkeypatch.delenv("SERAC_MODEL", raising=False)
    encoders = []

    def from_config(cls, config):
        encoders.append(HashingEncoder())
        return cls(encoders[-1], config.threshold, config.top_k)

    monkeypatch.setattr(ScopeClassifier, "from_config", classmethod(from_config))
    return encoders


@pytest.fixture
def store_path(tmp_path):
    return tmp_path / "edits.db"


def run(*args, store=None):
    argv = list(args) + (["--store", str(store)] if store is not None else [])
    return runner.invoke(app, argv)


def assert_one_line_error(result, *fragments):
    assert result.exit_code == 1, result.output
    assert "Traceback" not in result.output
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("error: ")
    for fragment in fragments:
        assert fragment in lines[0]


def listed(store_path):
    result = run("edit", "list", "--json", store=store_path)
    assert result.exit_code == 0, result.output
    return [json.loads(line) for line in result.stdout.splitlines()]


def test_add_list_rm_rollback_log(store_path, isolated):
    result = run("edit", "add", "Who is the UK prime minister?", "Keir Starmer", "--meta", "author=ana",
                 store=store_path)
    assert result.exit_code == 0, result.output
    assert "added edit 1 (store version 1)" in result.stdout
    run("edit", "add", "What is the capital of Australia?", "Sydney", store=store_path)

    edits = listed(store_path)
    assert [(e["id"], e["input"], e["target"], e["metadata"]) for e in edits] == [
        (1, "Who is the UK prime minister?", "Keir Starmer", {"author": "ana"}),
        (2, "What is the capital of Australia?", "Sydney", {}),
    ]
    # the key vector was stored at insert, under the encoder's id
    with EditStore(store_path) as s:
        assert set(s.get_embeddings([1, 2], HashingEncoder.id)) == {1, 2}
    assert all(e.calls == 1 for e in isolated)

    table = run("edit", "list", store=store_path)
    assert table.exit_code == 0 and "2 live edits (version 2)" in table.stdout and "Sydney" in table.stdout

    result = run("edit", "rm", "1", store=store_path)
    assert result.exit_code == 0 and "removed edit 1 (store version 3)" in result.stdout
    assert [e["id"] for e in listed(store_path)] == [2]

    result = run("edit", "rollback", "2", store=store_path)
    assert result.exit_code == 0, result.output
    assert "rolled back to version 2: now version 4, 2 live edits" in result.stdout
    assert [e["id"] for e in listed(store_path)] == [1, 2]

    log = run("edit", "log", store=store_path)
    assert log.exit_code == 0
    ops = [line.split("│")[3].strip() for line in log.stdout.splitlines() if line.count("│") >= 4]
    assert ops == ["add", "add", "remove", "rollback"]


def test_list_paging_and_json_lines(store_path):
    for i in range(5):
        run("edit", "add", f"question {i} with a long enough text to wrap a narrow terminal " * 2, f"answer {i}",
            store=store_path)
    result = run("edit", "list", "--json", "--offset", "1", "--limit", "2", store=store_path)
    lines = result.stdout.splitlines()
    assert len(lines) == 2  # one JSON document per line
    assert [json.loads(line)["target"] for line in lines] == ["answer 1", "answer 2"]


def test_store_from_environment(store_path, monkeypatch):
    monkeypatch.setenv("SERAC_STORE", str(store_path))
    assert run("edit", "add", "q", "a").exit_code == 0
    with EditStore(store_path) as s:
        assert [e.target for e in s.list()] == ["a"]


def test_default_store_is_under_serac_home(tmp_path):
    assert run("edit", "add", "q", "a").exit_code == 0
    assert (tmp_path / "home" / "edits.db").exists()


@pytest.mark.parametrize(
    "args, fragments",
    [
        (("", "x"), ["edit input is empty"]),
        (("q", "   "), ["edit target is empty"]),
        (("q\x00", "x"), ["NUL"]),
        (("q", "x" * 2001), ["2001 characters", "limit of 2000"]),
    ],
)
def test_add_bad_input(store_path, args, fragments):
    result = run("edit", "add", *args, store=store_path)
    assert_one_line_error(result, *fragments)
    with EditStore(store_path) as s:
        assert s.version == 0


def test_add_bad_meta(store_path):
    result = run("edit", "add", "q", "a", "--meta", "no-equals-sign", store=store_path)
    assert_one_line_error(result, "--meta takes KEY=VALUE, got 'no-equals-sign'")
    assert not store_path.exists() or EditStore(store_path).version == 0


def test_unknown_id(store_path):
    run("edit", "add", "q", "a", store=store_path)
    assert_one_line_error(run("edit", "rm", "42", store=store_path), "no live edit with id 42", "serac edit list")
    assert run("edit", "rm", "1", store=store_path).exit_code == 0
    assert_one_line_error(run("edit", "rm", "1", store=store_path), "no live edit with id 1")


def test_table_shows_text_literally(store_path):
    run("edit", "add", "What does [bold] do?", "it closes with [/bold] or [/]", store=store_path)
    result = run("edit", "list", store=store_path)
    assert result.exit_code == 0, result.output
    assert "[bold]" in result.stdout and "[/]" in result.stdout


def test_rollback_to_bad_version(store_path):
    run("edit", "add", "q", "a", store=store_path)
    result = run("edit", "rollback", "7", store=store_path)
    assert_one_line_error(result, "cannot roll back to version 7", "0 (empty) to 1", "serac edit log")
    assert listed(store_path)[0]["target"] == "a"


def test_corrupt_store_is_one_line(tmp_path):
    bad = tmp_path / "bad [v1].db"  # brackets must not be eaten as markup
    bad.write_bytes(b"this is not sqlite at all" * 100)
    result = run("edit", "list", store=bad)
    assert_one_line_error(result, "bad [v1].db", "not a readable serac edit store")


def test_locked_store_is_one_line(store_path):
    import sqlite3

    run("edit", "add", "q", "a", store=store_path)
    blocker = sqlite3.connect(store_path, isolation_level=None)
    blocker.execute("BEGIN EXCLUSIVE")
    try:
        from unittest import mock

        real_init = EditStore.__init__

        def short_timeout(self, path=":memory:", busy_timeout_s=10.0):
            real_init(self, path, busy_timeout_s=0.1)

        with mock.patch.object(EditStore, "__init__", short_timeout):
            result = run("edit", "rm", "1", store=store_path)
    finally:
        blocker.execute("ROLLBACK")
        blocker.close()
    assert_one_line_error(result, "stayed locked by another process")
    assert [e["id"] for e in listed(store_path)] == [1]


def test_non_integer_id_is_a_usage_error(store_path):
    result = run("edit", "rm", "one", store=store_path)
    assert result.exit_code == 2
    assert "Traceback" not in result.output


def test_edit_check(store_path):
    run("edit", "add", "q", "a", store=store_path)
    result = run("edit", "check", store=store_path)
    assert result.exit_code == 0 and "ok: 1 live edits, version 1" in result.output
    import sqlite3

    conn = sqlite3.connect(store_path)
    conn.execute("UPDATE versions SET live_count = 5")
    conn.commit()
    conn.close()
    result = run("edit", "check", "--full", store=store_path)
    assert result.exit_code == 1
    assert "the live count says 5 but 1 edits are live" in result.output and "restore the store" in result.output


def test_edit_commands_on_a_postgres_url(postgres_url, tmp_path, monkeypatch):
    from serac.postgres_store import PostgresEditStore

    monkeypatch.chdir(tmp_path)
    assert run("edit", "add", "Who is the UK prime minister?", "Keir Starmer", store=postgres_url).exit_code == 0
    monkeypatch.setenv("SERAC_STORE", postgres_url)  # the environment variable takes a URL too
    assert run("edit", "add", "Capital of Australia?", "Sydney").exit_code == 0
    assert [e["target"] for e in listed(postgres_url)] == ["Keir Starmer", "Sydney"]
    assert run("edit", "rm", "1").exit_code == 0
    assert "now version 4, 2 live edits" in run("edit", "rollback", "2").stdout
    assert "rollback" in run("edit", "log").stdout
    with PostgresEditStore(postgres_url) as store:  # in PostgreSQL, not in a local file
        assert [e.target for e in store.list()] == ["Keir Starmer", "Sydney"] and store.version == 4
    assert not any(tmp_path.glob("postgres*"))  # the old Path-typed option made a "postgresql:" directory


def test_unreachable_postgres_url_is_one_line(tmp_path):
    result = run("edit", "list", store="postgresql://serac:s3cret@127.0.0.1:1/edits")
    assert_one_line_error(result, "PostgreSQL edit store is unreachable", "Connection refused")
    assert "s3cret" not in result.output
