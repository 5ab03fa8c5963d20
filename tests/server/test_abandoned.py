"""Abandoned and oversized work (issue #11, finding 2): a client that leaves stops its generation,
streams and queued prompts are capped (503 + Retry-After), a request has a time limit, and prompts
have a length limit below the model's context."""

from __future__ import annotations

import json
import threading
import time

import httpx
import pytest

from .tiny import ThreadServer, build_tiny_editor

LONG = 1500  # new tokens: several seconds on the tiny model (its end-of-text token is disabled)


class ForwardCounter:
    """Counts forward passes of the model that answers out-of-scope prompts."""

    def __init__(self, model) -> None:
        self.calls = 0
        model.register_forward_hook(self._hook)

    def _hook(self, *args) -> None:
        self.calls += 1

    def still_running(self, settle_s: float = 1.5, watch_s: float = 1.0) -> bool:
        time.sleep(settle_s)
        before = self.calls
        time.sleep(watch_s)
        return self.calls > before


@pytest.fixture
def make_server(tiny_causal_dir):
    servers = []

    def make(**settings):
        from serac.server import ServerSettings, create_app

        editor = build_tiny_editor(tiny_causal_dir)
        for lm in (editor.base, editor.counterfactual.lm):
            lm.model.generation_config.eos_token_id = None  # always runs to max_tokens, unless stopped
        app = create_app(editor, ServerSettings(**{"max_tokens_limit": 2000, **settings}))
        server = ThreadServer(app).__enter__()
        servers.append(server)
        server.editor, server.app = editor, app
        server.forwards = ForwardCounter(editor.base.model)
        return server

    yield make
    for server in servers:
        server.__exit__(None, None, None)


def _stream_body(max_tokens: int = LONG) -> dict:
    return {"prompt": "hello there", "max_tokens": max_tokens, "stream": True}


def test_a_closed_stream_stops_its_generation(make_server):
    server = make_server()
    with httpx.Client(base_url=server.url, timeout=30) as client:
        with client.stream("POST", "/v1/completions", json=_stream_body()) as response:
            assert response.status_code == 200
            lines = response.iter_lines()
            assert next(lines).startswith("data: ")
    # the client closed the connection after the first event
    assert not server.forwards.still_running(), "the model kept generating for a client that left"


def test_an_abandoned_request_stops_its_generation(make_server):
    server = make_server()
    with pytest.raises(httpx.TimeoutException):
        httpx.post(server.url + "/v1/completions", json={"prompt": "hello", "max_tokens": LONG}, timeout=1.0)
    assert not server.forwards.still_running(), "the model kept generating for a client that left"


def test_streams_beyond_the_cap_get_503_with_retry_after(make_server):
    server = make_server(max_streams=1)
    with httpx.Client(base_url=server.url, timeout=30) as client:
        with client.stream("POST", "/v1/completions", json=_stream_body()) as first:
            assert first.status_code == 200
            second = client.post("/v1/completions", json=_stream_body(4))
            assert second.status_code == 503 and second.headers["retry-after"] == "1"
            assert second.json()["error"]["code"] == "server_busy"
        # the first stream's slot comes back once it is closed
        deadline = time.monotonic() + 5
        while server.app.state.admission.streams and time.monotonic() < deadline:
            time.sleep(0.05)
        assert client.post("/v1/completions", json=_stream_body(4)).status_code == 200


def test_queued_prompts_beyond_the_cap_get_503(make_server):
    server = make_server(max_queued_requests=1)
    results: list[int] = []
    long_one = threading.Thread(
        target=lambda: results.append(
            httpx.post(
                server.url + "/v1/completions", json={"prompt": "a", "max_tokens": 300}, timeout=60
            ).status_code
        )
    )
    long_one.start()
    deadline = time.monotonic() + 10
    while not server.app.state.batcher.running and time.monotonic() < deadline:
        time.sleep(0.02)
    busy = httpx.post(server.url + "/v1/completions", json={"prompt": "b", "max_tokens": 2}, timeout=60)
    assert busy.status_code == 503 and busy.headers["retry-after"] == "1"
    long_one.join(timeout=60)
    assert results == [200]


def test_a_request_over_the_time_limit_is_stopped(make_server):
    server = make_server(request_timeout_s=1.0)
    started = time.monotonic()
    response = httpx.post(
        server.url + "/v1/completions", json={"prompt": "hello", "max_tokens": LONG}, timeout=30
    )
    assert response.status_code == 504 and response.json()["error"]["code"] == "request_timeout"
    assert time.monotonic() - started < 3
    assert not server.forwards.still_running()

    streamed = httpx.post(server.url + "/v1/completions", json=_stream_body(), timeout=30)
    events = [line[6:] for line in streamed.text.splitlines() if line.startswith("data: ")]
    assert events[-1] == "[DONE]" and json.loads(events[-2])["error"]["code"] == "request_timeout"


def test_prompts_over_the_servers_token_limit_are_400(make_server):
    server = make_server(max_prompt_tokens=40)
    long_prompt = "what is the capital " * 30
    for body in ({"prompt": long_prompt}, {"prompt": long_prompt, "stream": True}):
        response = httpx.post(server.url + "/v1/completions", json=body, timeout=30)
        assert response.status_code == 400
        error = response.json()["error"]
        assert error["code"] == "context_length_exceeded" and "at most 40 tokens" in error["message"]
    assert (
        httpx.post(server.url + "/v1/completions", json={"prompt": "hi", "max_tokens": 2}).status_code == 200
    )
