"""Issue #11 findings 4, 5, 6 and 8, each a regression test: Host/Origin checks without keys and no
CDN docs page, a fixed metrics label set, no credentials in the access log, an honest schema."""

from __future__ import annotations

import logging

import httpx
import pytest

from serac.server.auth import KeyRing, Role
from serac.server.redact import redact_url

from .conftest import READ_KEY, WRITE_KEY

EDIT = {"input": "hardening q", "target": "hardening a"}


# -- 4. without keys: loopback Host names only, no cross-origin writes, no CDN page ---------------
@pytest.mark.parametrize(
    "headers",
    [
        {"Host": "evil.example", "Origin": "http://evil.example"},  # DNS rebinding
        {"Host": "evil.example:8000"},
        {"Origin": "http://evil.example"},  # a page elsewhere posting to 127.0.0.1
        {"Origin": "null"},
    ],
    ids=["rebound-host-and-origin", "rebound-host", "foreign-origin", "opaque-origin"],
)
def test_without_keys_foreign_hosts_and_origins_cannot_write(server, http, headers):
    response = http.post("/v1/edits", json=EDIT, headers=headers)
    assert response.status_code == 403, response.text
    assert response.json()["error"]["code"] in ("forbidden_host", "cross_origin_refused")
    assert server.editor.store.count() == 0


def test_without_keys_loopback_names_and_same_machine_origins_work(server, http):
    assert http.get("/healthz", headers={"Host": "localhost:8000"}).status_code == 200
    assert http.get("/healthz", headers={"Host": "[::1]:8000"}).status_code == 200
    assert http.get("/healthz", headers={"Host": "evil.example"}).status_code == 403
    response = http.post("/v1/edits", json=EDIT, headers={"Origin": "http://localhost:3000"})
    assert response.status_code == 201


def test_docs_page_loads_no_cdn_script_without_keys(http, auth_server):
    assert http.get("/docs").status_code == 404 and http.get("/redoc").status_code == 404
    assert http.get("/openapi.json").status_code == 200
    with auth_server.client() as client:
        assert client.get("/docs").status_code == 200  # with keys the page is offered


# -- 5. metrics labels come from fixed sets ----------------------------------------------------------
def test_made_up_methods_and_paths_share_fixed_labels(http):
    def scan(first: int, last: int) -> int:
        for i in range(first, last):
            http.request(f"FOOBAR{i}", f"/v1/edits/{i}x")
            http.request(f"BAZ{i}", f"/scan/{i}")
        return len(http.get("/metrics").text.splitlines())

    http.get("/metrics")  # its own label set exists from here on
    after_some = scan(0, 5)
    after_many = scan(5, 60)
    text = http.get("/metrics").text
    assert "FOOBAR" not in text and "BAZ" not in text and 'method="OTHER"' in text
    assert after_many == after_some, "new made-up methods and paths add no label sets"


# -- 6. credentials never reach a log ----------------------------------------------------------------
def test_redact_url():
    assert redact_url("/v1/models?api_key=sk-123&x=1") == "/v1/models?api_key=[REDACTED]&x=1"
    assert redact_url("/a?x=1&TOKEN=abc#f") == "/a?x=1&TOKEN=[REDACTED]#f"
    assert redact_url("/v1/edits?offset=2") == "/v1/edits?offset=2"


def test_a_key_in_the_query_string_is_not_written_to_the_access_log(auth_server):
    secret = "query-secret-0123456789"
    lines: list[str] = []

    class Collect(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            lines.append(record.getMessage())

    access = logging.getLogger("uvicorn.access")
    handler, level = Collect(level=logging.INFO), access.level
    access.addHandler(handler)
    access.setLevel(logging.INFO)
    try:
        with auth_server.client() as client:
            assert client.get(f"/v1/models?api_key={secret}").status_code == 401
            assert client.get(f"/v1/edits?offset=0&token={secret}").status_code == 401
    finally:
        access.removeHandler(handler)
        access.setLevel(level)
    assert any("/v1/models?api_key=[REDACTED]" in line for line in lines), lines
    assert not any(secret in line for line in lines)


def test_a_hash_inside_a_key_is_part_of_the_key():
    ring = KeyRing.parse("write:abc#defghijk, read:reader-key-1 # a comment\n# a comment line")
    assert ring.role_of("abc#defghijk") is Role.WRITE and ring.role_of("abc") is None
    assert ring.role_of("reader-key-1") is Role.READ and len(ring) == 2


# -- 8. schema honesty ----------------------------------------------------------------------------------
def test_the_schema_states_that_edit_texts_are_not_blank(http):
    schema = http.get("/openapi.json").json()
    edit = schema["components"]["schemas"]["EditIn"]["properties"]
    for field in ("input", "target"):
        assert edit[field]["minLength"] == 1 and edit[field]["pattern"] == r"\S"
    assert "401" in schema["paths"]["/metrics"]["get"]["responses"]


@pytest.mark.parametrize(
    "method, path, allowed",
    [
        ("GET", "/v1/edits/rollback", "POST"),
        ("DELETE", "/v1/edits/rollback", "POST"),
        ("DELETE", "/v1/edits/version", "GET"),
        ("POST", "/v1/edits/version", "GET"),
    ],
)
def test_wrong_methods_on_fixed_edit_paths_are_405(http, method, path, allowed):
    response = http.request(method, path)
    assert response.status_code == 405 and response.headers["allow"] == allowed
    assert response.json()["error"]["code"] == "method_not_allowed"


@pytest.mark.parametrize(
    "path, body",
    [("/v1/edits", b'{"input": '), ("/v1/chat/completions", b"not json"), ("/v1/edits/rollback", b"[")],
)
def test_auth_runs_before_the_body_is_parsed(auth_server, path, body):
    headers = {"content-type": "application/json"}
    with httpx.Client(base_url=auth_server.url, timeout=30) as client:
        missing = client.post(path, content=body, headers=headers)
        reader = client.post(path, content=body, headers={**headers, "Authorization": f"Bearer {READ_KEY}"})
        writer = client.post(path, content=body, headers={**headers, "Authorization": f"Bearer {WRITE_KEY}"})
    assert missing.status_code == 401 and missing.json()["error"]["code"] == "missing_api_key"
    assert reader.status_code == (400 if path == "/v1/chat/completions" else 403)
    assert writer.status_code == 400
