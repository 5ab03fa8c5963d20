"""Bad input: every case is a 4xx with an OpenAI-style error object whose message says what is
wrong, and nothing is written."""

from __future__ import annotations

import json

import pytest

CHAT = "/v1/chat/completions"
ASK = [{"role": "user", "content": "hi"}]
JSON = {"content-type": "application/json"}
LONG_PROMPT = "what is the capital " * 2500  # ~10k tokens for the tiny tokenizer; its context is 2048

# (id, method, path, request kwargs, status, code, message pattern)
# fmt: off
CASES = [
    ("malformed-json", "POST", CHAT, {"content": b'{"messages": [', "headers": JSON},
     400, "invalid_request", r"not valid JSON"),
    ("body-not-json", "POST", CHAT, {"content": b"hello"}, 400, "invalid_request", r"not a JSON object"),
    ("body-is-a-list", "POST", "/v1/edits", {"json": [1, 2]},
     400, "invalid_request", r"must be a JSON object, got an array"),
    ("messages-wrong-type", "POST", CHAT, {"json": {"messages": "hi"}},
     400, "invalid_request", r"'messages'"),
    ("temperature-wrong-type", "POST", CHAT, {"json": {"messages": ASK, "temperature": "hot"}},
     400, "invalid_request", r"'temperature'"),
    ("temperature-out-of-range", "POST", CHAT, {"json": {"messages": ASK, "temperature": 3}},
     400, "invalid_request", r"'temperature'.*less than or equal to 2"),
    ("max-tokens-as-string", "POST", CHAT, {"json": {"messages": ASK, "max_tokens": "5"}},
     400, "invalid_request", r"'max_tokens'"),
    ("unknown-field", "POST", CHAT, {"json": {"messages": ASK, "toolz": []}},
     400, "invalid_request", r"unknown or unsupported field 'toolz'"),
    ("tools", "POST", CHAT, {"json": {"messages": ASK, "tools": [{"type": "function", "function": {}}]}},
     400, "invalid_request", r"'tools': tool calling is not supported"),
    ("response-format", "POST", CHAT, {"json": {"messages": ASK, "response_format": {"type": "json_object"}}},
     400, "invalid_request", r"'response_format': only text responses"),
    ("echo", "POST", "/v1/completions", {"json": {"prompt": "a", "echo": True}},
     400, "invalid_request", r"'echo': echo is not supported"),
    ("best-of", "POST", "/v1/completions", {"json": {"prompt": "a", "best_of": 3}},
     400, "invalid_request", r"best_of=3 .* not supported"),
    ("top-logprobs-without-logprobs", "POST", CHAT, {"json": {"messages": ASK, "top_logprobs": 2}},
     400, "invalid_request", r"top_logprobs needs logprobs: true"),
    ("logprobs-streamed", "POST", CHAT, {"json": {"messages": ASK, "logprobs": True, "stream": True}},
     400, "invalid_request", r"logprobs are not supported with stream"),
    ("too-many-choices", "POST", "/v1/completions", {"json": {"prompt": ["a"] * 4, "n": 5}},
     400, "invalid_request", r"4 prompt\(s\) x n=5 = 20 choices; this server makes at most 16"),
    ("misspelt-field", "POST", "/v1/completions", {"json": {"prompt": "hi", "max_tokns": 3}},
     400, "invalid_request", r"unknown or unsupported field 'max_tokns'"),
    ("n-too-big", "POST", CHAT, {"json": {"messages": ASK, "n": 17}}, 400, "invalid_request", r"'n'.*16"),
    ("max-tokens-over-limit", "POST", CHAT, {"json": {"messages": ASK, "max_tokens": 10_000}},
     400, "invalid_request", r"max_tokens is 10000; this server allows at most 32"),
    ("no-user-message", "POST", CHAT, {"json": {"messages": [{"role": "system", "content": "x"}]}},
     400, "invalid_request", r"at least one message with role 'user'"),
    ("unsupported-role", "POST", CHAT, {"json": {"messages": [{"role": "tool", "content": "x"}]}},
     400, "invalid_request", r"'messages\[0\]\.role'"),
    ("empty-messages", "POST", CHAT, {"json": {"messages": []}}, 400, "invalid_request", r"'messages'"),
    ("penalty", "POST", CHAT, {"json": {"messages": ASK, "presence_penalty": 1}},
     400, "invalid_request", r"penalties are not supported"),
    ("token-prompt", "POST", "/v1/completions", {"json": {"prompt": [1, 2, 3]}},
     400, "invalid_request", r"token-id prompts are not supported"),
    ("too-many-stops", "POST", "/v1/completions", {"json": {"prompt": "a", "stop": list("abcde")}},
     400, "invalid_request", r"at most 4 stop sequences"),
    ("prompt-over-context", "POST", CHAT, {"json": {"messages": [{"role": "user", "content": LONG_PROMPT}]}},
     400, "context_length_exceeded", r"prompt is \d+ tokens.*context of 2048 tokens"),
    ("prompt-over-context-streaming", "POST", "/v1/completions",
     {"json": {"prompt": LONG_PROMPT, "stream": True}},
     400, "context_length_exceeded", r"shorten the prompt"),
    ("oversized-body", "POST", CHAT, {"json": {"messages": [{"role": "user", "content": "x" * 70_000}]}},
     413, "request_too_large", r"larger than this server's limit of 65536 bytes"),
    ("oversized-chunked-body", "POST", "/v1/edits", {"content": iter([b"{" + b" " * 40_000] * 3)},
     413, "request_too_large", r"limit of 65536 bytes"),
    ("edit-unknown-field", "POST", "/v1/edits", {"json": {"input": "a", "target": "b", "author": "me"}},
     400, "invalid_request", r"unknown or unsupported field 'author'"),
    ("edit-missing-target", "POST", "/v1/edits", {"json": {"input": "a"}},
     400, "invalid_request", r"missing required field 'target'"),
    ("edit-target-wrong-type", "POST", "/v1/edits", {"json": {"input": "a", "target": 5}},
     400, "invalid_request", r"'target'.*valid string"),
    ("edit-empty-input", "POST", "/v1/edits", {"json": {"input": "", "target": "b"}},
     400, "invalid_edit", r"edit input is empty"),
    ("edit-batch-empty", "POST", "/v1/edits", {"json": {"edits": []}}, 400, "invalid_request", r"'edits'"),
    ("edit-metadata-not-object", "POST", "/v1/edits",
     {"json": {"input": "a", "target": "b", "metadata": [1]}},
     400, "invalid_request", r"'metadata'"),
    ("unknown-edit", "GET", "/v1/edits/999999", {}, 404, "edit_not_found", r"no edit with id 999999"),
    ("delete-unknown-edit", "DELETE", "/v1/edits/999999", {},
     404, "edit_not_found", r"no live edit with id 999999"),
    ("edit-id-not-int", "GET", "/v1/edits/abc", {}, 400, "invalid_request", r"'edit_id'"),
    ("edit-id-zero", "GET", "/v1/edits/0", {},
     400, "invalid_request", r"'edit_id'.*greater than or equal to 1"),
    ("edit-id-huge", "GET", f"/v1/edits/{2**70}", {}, 400, "invalid_request", r"'edit_id'"),
    ("rollback-unknown-version", "POST", "/v1/edits/rollback", {"json": {"version": 10**9}},
     404, "version_not_found", r"cannot roll back to version 1000000000: versions run from 0"),
    ("rollback-negative", "POST", "/v1/edits/rollback", {"json": {"version": -1}},
     400, "invalid_request", r"'version'"),
    ("rollback-version-string", "POST", "/v1/edits/rollback", {"json": {"version": "1"}},
     400, "invalid_request", r"'version'"),
    ("rollback-missing-version", "POST", "/v1/edits/rollback", {"json": {}},
     400, "invalid_request", r"missing required field 'version'"),
    ("list-limit-zero", "GET", "/v1/edits?limit=0", {}, 400, "invalid_request", r"'limit'"),
    ("list-limit-huge", "GET", "/v1/edits?limit=100000", {}, 400, "invalid_request", r"'limit'"),
    ("unknown-route", "GET", "/v1/nothing-here", {},
     404, "unknown_endpoint", r"no such endpoint: GET /v1/nothing-here"),
    ("wrong-method", "PUT", "/v1/edits", {"json": {}},
     405, "method_not_allowed", r"method PUT is not allowed"),
    ("deeply-nested-json", "POST", "/v1/edits", {"content": b"[" * 30000 + b"]" * 30000, "headers": JSON},
     400, "invalid_request", r"nested too deeply"),
    ("lone-surrogate-in-stop", "POST", CHAT,
     {"content": b'{"messages": [{"role": "user", "content": "hi"}], "stop": ["\\ud800"]}', "headers": JSON},
     400, "invalid_request", r"stop\[0\] contains an unpaired UTF-16 surrogate"),
    ("lone-surrogate-in-prompt", "POST", "/v1/completions",
     {"content": b'{"prompt": ["ok", "a\\udfff"]}', "headers": JSON},
     400, "invalid_request", r"prompt\[1\] contains an unpaired"),
    ("lone-surrogate-in-metadata-key", "POST", "/v1/edits",
     {"content": b'{"input": "a", "target": "b", "metadata": {"\\ud800": 1}}', "headers": JSON},
     400, "invalid_request", r"metadata\.\\ud800 contains an unpaired"),
]
# fmt: on


@pytest.mark.parametrize(
    "method, path, kwargs, status, code, pattern", [c[1:] for c in CASES], ids=[c[0] for c in CASES]
)
def test_bad_input_is_a_4xx_with_an_openai_error_and_writes_nothing(
    http, method, path, kwargs, status, code, pattern
):
    import re

    before = http.get("/v1/edits/version").json()
    response = http.request(method, path, **kwargs)
    assert response.status_code == status, response.text
    body = response.json()
    assert set(body) == {"error"} and set(body["error"]) == {"message", "type", "param", "code"}
    assert body["error"]["code"] == code
    assert (
        body["error"]["type"]
        == {
            400: "invalid_request_error",
            404: "not_found_error",
            405: "invalid_request_error",
            413: "invalid_request_error",
        }[status]
    )
    assert re.search(pattern, body["error"]["message"]), body["error"]["message"]
    assert http.get("/v1/edits/version").json() == before


def test_param_names_the_offending_field(http):
    error = http.post(CHAT, json={"messages": ASK, "temperature": "hot"}).json()["error"]
    assert error["param"] == "temperature"


def test_the_openai_client_raises_its_own_error_types(openai_client):
    import openai

    with pytest.raises(openai.BadRequestError, match="'tools': tool calling is not supported"):
        openai_client.chat.completions.create(
            model="serac", messages=ASK, tools=[{"type": "function", "function": {"name": "f"}}]
        )
    with pytest.raises(openai.BadRequestError, match="context"):
        openai_client.completions.create(model="serac", prompt=LONG_PROMPT)


def test_an_error_after_streaming_started_is_sent_in_band(server, http, monkeypatch):
    """Headers are gone once a stream starts; a later failure arrives as an SSE error event."""
    from serac.errors import PromptTooLongError
    from serac.server import inference

    real = inference.stream_answer
    calls = []

    def failing_second(editor, prompt, options, *stop):
        calls.append(prompt)
        if len(calls) == 2:
            raise PromptTooLongError("prompt is too long for this test")
        return real(editor, prompt, options, *stop)

    monkeypatch.setattr(inference, "stream_answer", failing_second)
    response = http.post("/v1/completions", json={"prompt": ["a", "b"], "stream": True, "max_tokens": 2})
    assert response.status_code == 200
    events = [line[len("data: ") :] for line in response.text.splitlines() if line.startswith("data: ")]
    assert events[-1] == "[DONE]"
    error = json.loads(events[-2])["error"]
    assert error["code"] == "context_length_exceeded" and "too long for this test" in error["message"]
