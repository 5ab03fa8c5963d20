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


# -- store-only commands stay light (issue 10) ------------------------------------------------------
_IMPORT_PROBE = (
    "import sys, json, atexit\n"
    "atexit.register(lambda: print('HEAVY=' + json.dumps(sorted(m for m in "
    "('torch', 'transformers', 'fastapi', 'sentence_transformers', 'matplotlib') if m in sys.modules))))\n"
    "from serac.cli import app\n"
    "app(prog_name='serac')\n"
)


def run_cli_process(*args, env_extra=None):
    """The real CLI in a fresh interpreter; returns (exit code, stdout, heavy modules it imported)."""
    import os
    import subprocess
    import sys

    env = {**os.environ, "OMP_NUM_THREADS": "1", **(env_extra or {})}
    proc = subprocess.run([sys.executable, "-c", _IMPORT_PROBE, *args], capture_output=True, text=True, env=env,
                          timeout=120)
    heavy = [line for line in proc.stdout.splitlines() if line.startswith("HEAVY=")]
    return proc.returncode, proc.stdout + proc.stderr, json.loads(heavy[-1][6:]) if heavy else None


@pytest.mark.parametrize("args", [("edit", "list"), ("edit", "list", "--json"), ("edit", "log"),
                                  ("edit", "rm", "2"), ("edit", "rollback", "1"), ("--help",), ("edit", "--help")])
def test_store_only_commands_import_no_torch(store_path, args):
    with EditStore(store_path) as store:
        store.add_many([("q1", "a1"), ("q2", "a2")])
    code, output, heavy = run_cli_process(*args, *(["--store", str(store_path)] if "--help" not in args else []))
    assert code == 0, output
    assert heavy == [], f"`serac {' '.join(args)}` imported {heavy}"


def test_help_lists_every_command():
    result = runner.invoke(app, ["--help"], env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    listed_commands = {line.split()[1] for line in result.stdout.splitlines()
                       if line.startswith("│ ") and len(line.split()) > 2}
    assert {"edit", "ask", "demo", "train", "train-report", "eval", "bench", "serve"} <= listed_commands
    assert "tasks" not in listed_commands  # fc and sentiment are `serac train/eval --task`, no second CLI


@pytest.mark.parametrize("args, message", [
    (["eval", "--task", "squad", "--data", "x.json"], "'squad' is not one of 'zsre', 'counterfact', 'fc', 'sentiment'"),
    (["eval", "--task", "zsre", "--data", "x.json", "--mode", "both"], "'both' is not one of 'batch', 'sequential'"),
    (["train", "--cf-method", "qlora"], "'qlora' is not one of 'lora', 'full'"),
    (["train", "--task", "ner"], "'ner' is not one of 'qa', 'fc', 'sentiment'"),
    (["serve", "--log-level", "loud"], "'loud' is not one of 'critical', 'error', 'warning', 'info'"),
])
def test_options_with_fixed_values_are_choices(args, message):
    result = runner.invoke(app, args, env={"COLUMNS": "300"})
    assert result.exit_code == 2, result.output
    assert message in " ".join(result.output.split())


# -- issue 11, finding 7: usage errors, not tracebacks; read commands create nothing -----------------
@pytest.mark.parametrize("args", [
    ("edit", "rm", "9223372036854775808"),
    ("edit", "rollback", "9223372036854775808"),
    ("edit", "list", "--offset", "9223372036854775808"),
    ("edit", "list", "--limit", "9223372036854775808"),
])
def test_huge_integers_are_usage_errors(store_path, args):
    run("edit", "add", "q", "a", store=store_path)
    result = runner.invoke(app, [*args, "--store", str(store_path)], env={"COLUMNS": "300"})
    assert result.exit_code == 2, result.output
    assert "Traceback" not in result.output and "OverflowError" not in result.output
    assert "less than or equal to 9223372036854775807" in " ".join(result.output.split())


def test_largest_integers_are_answered(store_path):
    run("edit", "add", "q", "a", store=store_path)
    big = str(2**63 - 1)
    assert_one_line_error(run("edit", "rm", big, store=store_path), f"no live edit with id {big}")
    result = run("edit", "list", "--json", "--offset", big, "--limit", big, store=store_path)
    assert result.exit_code == 0 and result.stdout == "", result.output


@pytest.mark.parametrize("args", [("edit", "list"), ("edit", "log"), ("edit", "rm", "1"), ("edit", "rollback", "0")])
def test_commands_on_a_missing_store_create_nothing(tmp_path, args):
    typo = tmp_path / "no-such-dir" / "edits.db"
    result = run(*args, store=typo)
    assert_one_line_error(result, f"no edit store at {typo}", "serac edit add")
    assert not typo.parent.exists()


def test_missing_default_store_is_not_created(tmp_path):
    assert_one_line_error(run("edit", "list"), "no edit store at", "--store")
    assert not (tmp_path / "home").exists()


def test_model_loading_bars_do_not_leak(tmp_path, tiny_causal_dir, store_path):
    """transformers draws a "Loading weights" bar on stderr for each model; `ask` prints its answer."""
    from serac.config import SeracConfig

    artifact = tmp_path / "artifact"
    artifact.mkdir()
    config = SeracConfig()
    config.base.model = config.counterfactual.model = str(tiny_causal_dir)
    config.base.max_new_tokens = 3
    config.save(artifact / "serac_config.json")
    run("edit", "add", "q", "a", store=store_path)
    result = runner.invoke(app, ["ask", "Who wrote Hamlet?", "--model", str(artifact), "--store", str(store_path)])
    assert result.exit_code == 0, result.output
    assert "no edit in scope" in result.stdout
    assert "Loading weights" not in result.output and "it/s" not in result.output


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
