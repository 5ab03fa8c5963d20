"""API keys: roles, 401/403, constant-time comparison, keys never logged, loopback-only without keys."""

from __future__ import annotations

import hmac
import logging

import pytest
from typer.testing import CliRunner

from serac.errors import ConfigError
from serac.server.auth import KeyRing, Role, bearer_token
from serac.server.cli import check_exposure, is_loopback

from .conftest import READ_KEY, WRITE_KEY

ASK = {"messages": [{"role": "user", "content": "hi"}], "max_tokens": 2}

# (id, method, path, json body, role needed)
ENDPOINTS = [
    ("chat", "POST", "/v1/chat/completions", ASK, "read"),
    ("completion", "POST", "/v1/completions", {"prompt": "hi", "max_tokens": 2}, "read"),
    ("models", "GET", "/v1/models", None, "read"),
    ("list", "GET", "/v1/edits", None, "read"),
    ("version", "GET", "/v1/edits/version", None, "read"),
    ("get", "GET", "/v1/edits/424242", None, "read"),
    ("metrics", "GET", "/metrics", None, "read"),
    ("add", "POST", "/v1/edits", {"input": "auth q", "target": "auth a"}, "write"),
    ("delete", "DELETE", "/v1/edits/424242", None, "write"),
    ("rollback", "POST", "/v1/edits/rollback", {"version": 0}, "write"),
]


def _call(server, key, method, path, body):
    with server.client(key) as client:
        return client.request(method, path, json=body)


@pytest.mark.parametrize(
    "method, path, body, role", [e[1:] for e in ENDPOINTS], ids=[e[0] for e in ENDPOINTS]
)
def test_roles(auth_server, method, path, body, role):
    missing = _call(auth_server, None, method, path, body)
    assert missing.status_code == 401 and missing.headers["www-authenticate"] == "Bearer"
    assert missing.json()["error"]["type"] == "authentication_error"
    assert "missing API key" in missing.json()["error"]["message"]

    wrong = _call(auth_server, "not-a-key-at-all", method, path, body)
    assert wrong.status_code == 401 and wrong.json()["error"]["code"] == "invalid_api_key"

    as_reader = _call(auth_server, READ_KEY, method, path, body)
    if role == "write":
        assert as_reader.status_code == 403
        error = as_reader.json()["error"]
        assert error["type"] == "permission_error" and "needs 'write'" in error["message"]
    else:
        assert as_reader.status_code in (200, 404), as_reader.text  # 404: the probed edit does not exist

    as_writer = _call(auth_server, WRITE_KEY, method, path, body)
    assert as_writer.status_code in (200, 201, 404), as_writer.text


def test_health_needs_no_key(auth_server):
    assert _call(auth_server, None, "GET", "/healthz", None).status_code == 200


def test_the_openai_client_authenticates_with_its_api_key(auth_server):
    import openai

    good = openai.OpenAI(base_url=auth_server.url + "/v1", api_key=READ_KEY, max_retries=0)
    assert good.chat.completions.create(model="serac", **ASK).choices[0].model_extra["serac"]["source"]
    bad = openai.OpenAI(base_url=auth_server.url + "/v1", api_key="wrong-key-123456", max_retries=0)
    with pytest.raises(openai.AuthenticationError):
        bad.chat.completions.create(model="serac", **ASK)


def test_keys_never_reach_the_logs(auth_server):
    records: list[str] = []

    class Collect(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            records.append(record.getMessage() + repr(record.args))

    handler = Collect(level=logging.DEBUG)
    loggers = [
        logging.getLogger(name) for name in ("", "uvicorn", "uvicorn.access", "uvicorn.error", "serac")
    ]
    levels = [lg.level for lg in loggers]
    for lg in loggers:
        lg.addHandler(handler)
        lg.setLevel(logging.DEBUG)
    try:
        for key in (READ_KEY, WRITE_KEY, "wrong-key-abcdef"):
            for method, path, body in (
                ("POST", "/v1/chat/completions", ASK),
                ("POST", "/v1/edits/rollback", {"version": 10**6}),
            ):
                _call(auth_server, key, method, path, body)
    finally:
        for lg, level in zip(loggers, levels):
            lg.removeHandler(handler)
            lg.setLevel(level)
    assert records, "the requests should have logged something at DEBUG"
    text = "\n".join(records)
    assert READ_KEY not in text and WRITE_KEY not in text and "wrong-key-abcdef" not in text


# -- the key ring ----------------------------------------------------------------------------------
def test_parse_env_string_and_roles():
    ring = KeyRing.parse("read:reader-key-1, write:writer-key-1 # comment")
    assert len(ring) == 2 and ring.role_of("reader-key-1") is Role.READ
    assert ring.role_of("writer-key-1") is Role.WRITE and ring.role_of("reader-key-") is None
    assert Role.WRITE.allows(Role.READ) and not Role.READ.allows(Role.WRITE)
    assert not KeyRing.from_sources(env="")


@pytest.mark.parametrize(
    "text, pattern",
    [
        ("admin:abcdefghij", r"unknown role 'admin'; valid roles: 'read'"),
        ("read:short", r"shorter than 8 characters"),
        ("abcdefghijkl", r"expected ROLE:KEY pairs"),
    ],
)
def test_bad_key_specs_say_what_is_wrong_without_echoing_the_key(text, pattern):
    with pytest.raises(ConfigError, match=pattern) as info:
        KeyRing.parse(text)
    assert "abcdefghij" not in str(info.value)


def test_keys_file_lines_or_json_add_to_the_env(tmp_path, monkeypatch):
    lines = tmp_path / "keys.txt"
    lines.write_text("# serac keys\nwrite:file-writer-key\n\nread:file-reader-key\n")
    as_json = tmp_path / "keys.json"
    as_json.write_text('{"read": ["json-reader-key"], "write": "json-writer-key"}')
    monkeypatch.setenv("SERAC_API_KEYS", "read:env-reader-key")

    ring = KeyRing.from_sources(file=lines)
    assert [ring.role_of(k) for k in ("env-reader-key", "file-writer-key", "file-reader-key")] == [
        Role.READ,
        Role.WRITE,
        Role.READ,
    ]
    ring = KeyRing.from_sources(file=as_json)
    assert ring.role_of("json-writer-key") is Role.WRITE and ring.role_of("json-reader-key") is Role.READ
    with pytest.raises(ConfigError, match="cannot read API keys file"):
        KeyRing.from_file(tmp_path / "missing")


def test_every_configured_key_is_compared_in_constant_time(monkeypatch):
    ring = KeyRing.parse("read:first-key-xyz,write:second-key-xyz,read:third-key-xyz")
    calls = []
    real = hmac.compare_digest
    monkeypatch.setattr(hmac, "compare_digest", lambda a, b: calls.append((len(a), len(b))) or real(a, b))
    ring.role_of("first-key-xyz")
    ring.role_of("a-much-longer-wrong-key-than-any-configured")
    assert len(calls) == 6, "every entry is compared, whether or not one matched early"
    assert {lengths for lengths in calls} == {(32, 32)}, "digests are compared, so key length does not leak"


def test_bearer_token_parsing():
    assert bearer_token("Bearer abc") == "abc" and bearer_token("bearer  abc ") == "abc"
    assert (
        bearer_token("Basic abc") is None and bearer_token("Bearer ") is None and bearer_token(None) is None
    )


# -- exposure ----------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "host, loopback",
    [
        ("127.0.0.1", True),
        ("localhost", True),
        ("::1", True),
        ("127.0.0.2", True),
        ("0.0.0.0", False),
        ("::", False),
        ("192.168.1.10", False),
        ("example.com", False),
    ],
)
def test_is_loopback(host, loopback):
    assert is_loopback(host) is loopback


def test_without_keys_only_loopback_is_allowed():
    assert "loopback (127.0.0.1) only" in check_exposure("127.0.0.1", keys_configured=False)
    assert "API keys configured" in check_exposure("0.0.0.0", keys_configured=True)
    with pytest.raises(ConfigError, match="only listens on loopback, not '0.0.0.0'"):
        check_exposure("0.0.0.0", keys_configured=False)


def test_serve_refuses_a_public_bind_without_keys_before_loading_models(monkeypatch):
    from serac.cli import app

    monkeypatch.delenv("SERAC_API_KEYS", raising=False)
    monkeypatch.delenv("SERAC_API_KEYS_FILE", raising=False)
    result = CliRunner().invoke(app, ["serve", "--host", "0.0.0.0", "--port", "0"])
    assert result.exit_code == 1
    assert "only listens on loopback" in result.output


def test_serve_is_registered_with_its_options():
    from serac.cli import app

    result = CliRunner().invoke(app, ["serve", "--help"], env={"COLUMNS": "200"})
    assert result.exit_code == 0
    for option in ("--host", "--port", "--model", "--store", "--api-keys-file"):
        assert option in result.output
