"""The editing gateway end to end: the official `openai` client against a gateway in front of a real
upstream process (a second serac server on the tiny model, no edits), and the fault-injecting stub."""

from __future__ import annotations

import json
import time

import httpx
import openai
import pytest

QUESTION = "Who is the prime minister of the United Kingdom?"
REPHRASED = "Who is the prime minister of the United Kingdom now?"


def without_serac(raw: bytes) -> dict:
    data = json.loads(raw)
    data.pop("serac")
    return data


# -- out of scope: relayed to a real upstream --------------------------------------------------------
def test_chat_out_of_scope_is_the_upstream_answer(gateway, upstream):
    client = gateway.openai()
    reply = client.chat.completions.create(model="tiny", messages=[{"role": "user", "content": "Who wrote Hamlet?"}],
                                           max_tokens=5)
    direct = httpx.post(upstream.url + "/v1/chat/completions", timeout=60,
                        json={"model": "tiny", "messages": [{"role": "user", "content": "Who wrote Hamlet?"}],
                              "max_tokens": 5}).json()
    assert reply.choices[0].message.content == direct["choices"][0]["message"]["content"]
    assert reply.serac["source"] == "base" and reply.serac["answered_by"] == "upstream"
    # the upstream's own provenance object per choice came through untouched
    assert reply.choices[0].serac["source"] == "base"


def test_completion_out_of_scope_and_streaming(gateway, upstream):
    client = gateway.openai()
    reply = client.completions.create(model="tiny", prompt="The capital of France is", max_tokens=4)
    direct = httpx.post(upstream.url + "/v1/completions", timeout=60,
                        json={"model": "tiny", "prompt": "The capital of France is", "max_tokens": 4}).json()
    assert reply.choices[0].text == direct["choices"][0]["text"]
    assert reply.serac["source"] == "base"

    pieces = [c.choices[0].delta.content or "" for c in client.chat.completions.create(
        model="tiny", messages=[{"role": "user", "content": "Who wrote Hamlet?"}], max_tokens=5, stream=True)
        if c.choices]
    whole = client.chat.completions.create(model="tiny", messages=[{"role": "user", "content": "Who wrote Hamlet?"}],
                                           max_tokens=5)
    assert "".join(pieces) == whole.choices[0].message.content


def test_n_and_logprobs_out_of_scope_reach_the_upstream(gateway, upstream):
    """n=2 and logprobs out of scope are not judged by the gateway: the upstream (a serac server)
    answers them, and its choices and log-probs come back as it sent them."""
    client = gateway.openai()
    messages = [{"role": "user", "content": "Who wrote Hamlet?"}]
    two = client.chat.completions.create(model="tiny", messages=messages, n=2, max_tokens=4, temperature=0)
    assert len(two.choices) == 2 and two.serac["source"] == "base"
    with_logprobs = client.chat.completions.create(model="tiny", messages=messages, logprobs=True, max_tokens=4)
    direct = httpx.post(upstream.url + "/v1/chat/completions", timeout=60,
                        json={"model": "tiny", "messages": messages, "logprobs": True, "max_tokens": 4}).json()
    assert with_logprobs.choices[0].logprobs is not None
    assert [t.logprob for t in with_logprobs.choices[0].logprobs.content] == pytest.approx(
        [t["logprob"] for t in direct["choices"][0]["logprobs"]["content"]])


def test_edit_through_the_gateway_answers_the_next_request(gateway):
    client = gateway.openai()
    with gateway.http() as http:
        created = http.post("/v1/edits", json={"input": QUESTION, "target": "Keir Starmer"})
        assert created.status_code == 201
        edit_id = created.json()["data"][0]["id"]
    reply = client.chat.completions.create(model="tiny", messages=[{"role": "user", "content": REPHRASED}])
    assert reply.serac["source"] == "counterfactual"
    assert reply.serac["edit_id"] == edit_id and reply.serac["answered_by"] == "local"
    assert reply.choices[0].serac["answered_by"] == "local"
    # the local counterfactual model's own answer, from the edit
    edit = gateway.editor.store.get(edit_id)
    expected = gateway.editor.counterfactual.generate([[{"role": "user", "content": REPHRASED}]], [[edit]])[0]
    assert reply.choices[0].message.content == expected
    # in scope, a field the edit cannot honour is a clear 400 naming the edit
    with pytest.raises(openai.BadRequestError) as refused:
        client.chat.completions.create(model="tiny", messages=[{"role": "user", "content": REPHRASED}], n=2)
    assert refused.value.body["code"] == "unsupported_in_scope" and str(edit_id) in refused.value.body["message"]
    # streamed in scope: provenance in the chunks and the headers
    with gateway.http() as http, http.stream("POST", "/v1/chat/completions", json={
            "messages": [{"role": "user", "content": REPHRASED}], "stream": True}) as stream:
        assert stream.headers["x-serac-source"] == "counterfactual"
        assert stream.headers["x-serac-edit-id"] == str(edit_id)
        events = [line for line in stream.iter_lines() if line.startswith("data: {")]
    assert json.loads(events[0][6:])["choices"][0]["serac"]["edit_id"] == edit_id


def test_healthz_reports_the_upstream(gateway):
    with gateway.http() as http:
        health = http.get("/healthz").json()
    assert health["status"] == "ok" and health["upstream"]["status"] == "ok"
    assert health["upstream"]["url"].startswith("http://127.0.0.1:")


# -- byte-for-byte relay, against the stub -----------------------------------------------------------
def test_out_of_scope_body_reaches_the_upstream_byte_for_byte(stub, stub_gateway):
    gateway = stub_gateway("echo")
    raw = (b'{"model": "m", "messages": [{"role": "user", "content": "Who wrote Hamlet?"}],\n'
           b' "n": 2, "logprobs": true, "top_logprobs": 2, "tools": [{"type": "function", "function": '
           b'{"name": "f", "parameters": {}}}], "response_format": {"type": "json_object"}, '
           b'"presence_penalty": 0.5, "frequency_penalty": 0.25, "x_vendor_field": [1, 2.50]}')
    with gateway.http() as http:
        through = http.post("/v1/chat/completions", content=raw, headers={"content-type": "application/json"})
    direct = httpx.post(stub + "/echo/v1/chat/completions", content=raw, headers={"content-type": "application/json"})
    assert through.status_code == 200
    assert json.loads(through.content)["received"].encode() == raw  # the body as the client sent it
    assert without_serac(through.content) == direct.json()  # the reply unchanged but for `serac`
    assert through.content.replace(b',"serac":' + json.dumps(json.loads(through.content)["serac"]).encode(),
                                   b"") == direct.content
    assert len(json.loads(through.content)["choices"]) == 2  # n=2 answered by the upstream
    assert through.headers["x-stub-upstream"] == "1"  # the upstream's own headers come through
    assert float(through.headers["x-serac-route-ms"]) > 0


def test_speculative_relay(stub, stub_gateway):
    """With speculative relay the out-of-scope reply is the same; an in-scope request does not wait
    for the (abandoned) upstream request."""
    raw = b'{"messages": [{"role": "user", "content": "Who wrote Hamlet?"}], "n": 2}'
    with stub_gateway("echo", speculative=True).http() as http:
        through = http.post("/v1/chat/completions", content=raw, headers={"content-type": "application/json"})
    direct = httpx.post(stub + "/echo/v1/chat/completions", content=raw, headers={"content-type": "application/json"})
    assert without_serac(through.content) == direct.json()
    slow = stub_gateway("slow", speculative=True)
    edit = slow.editor.add(QUESTION, "Keir Starmer")
    started = time.monotonic()
    with slow.http() as http:
        reply = http.post("/v1/chat/completions", json={"messages": [{"role": "user", "content": REPHRASED}]})
    assert reply.status_code == 200 and reply.json()["serac"]["edit_id"] == edit.id
    assert time.monotonic() - started < 4  # the slow upstream (5 s) was not waited for


def test_openai_client_n2_logprobs_through_stub(stub_gateway):
    client = stub_gateway("echo").openai()
    reply = client.chat.completions.create(model="m", messages=[{"role": "user", "content": "Who wrote Hamlet?"}],
                                           n=2, logprobs=True, top_logprobs=1)
    assert [c.message.content for c in reply.choices] == ["stub answer 0", "stub answer 1"]
    assert reply.choices[0].logprobs.content[0].logprob == -0.25
    text = client.completions.create(model="m", prompt="Hello", n=2, logprobs=1)
    assert [c.text for c in text.choices] == ["stub answer 0", "stub answer 1"]


def test_stream_is_relayed_chunk_by_chunk(stub_gateway):
    from tests.gateway.stub_upstream import STREAM_GAP_S

    gateway = stub_gateway("echo")
    arrivals = []
    with gateway.http() as http, http.stream("POST", "/v1/chat/completions", json={
            "messages": [{"role": "user", "content": "Who wrote Hamlet?"}], "stream": True}) as stream:
        for line in stream.iter_lines():
            if line.startswith("data: {"):
                arrivals.append((time.monotonic(), json.loads(line[6:])["choices"][0]["delta"]["content"]))
    assert [text for _, text in arrivals] == ["piece0 ", "piece1 ", "piece2 "]
    # the first chunk reached the client while the upstream was still producing the others
    assert arrivals[-1][0] - arrivals[0][0] >= 1.5 * STREAM_GAP_S


def test_prompted_counterfactual_sends_the_edit_to_the_upstream(stub_gateway):
    gateway = stub_gateway("echo", prompted=True)
    edit = gateway.editor.add(QUESTION, "Keir Starmer")
    reply = gateway.openai().chat.completions.create(model="m", messages=[{"role": "user", "content": REPHRASED}])
    assert reply.serac["source"] == "counterfactual" and reply.serac["answered_by"] == "upstream"
    assert reply.serac["edit_id"] == edit.id
    # the stub echoes the system message it got: the edit, then the question as the user asked it
    assert reply.choices[0].message.content.startswith("stub answer 0 | system: ")
    assert "Q: " + QUESTION + " A: Keir Starmer" in reply.choices[0].message.content


# -- faults ------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "mode, status, code",
    [("drop", 502, "upstream_unavailable"), ("malformed", 502, "upstream_bad_response")],
)
def test_transport_faults_map_to_openai_errors(stub_gateway, mode, status, code):
    client = stub_gateway(mode).openai()
    with pytest.raises(openai.APIStatusError) as failed:
        client.chat.completions.create(model="m", messages=[{"role": "user", "content": "Who wrote Hamlet?"}])
    assert failed.value.status_code == status and failed.value.body["code"] == code


def test_timeout_is_504(stub_gateway):
    client = stub_gateway("slow", timeout=0.5).openai()
    started = time.monotonic()
    with pytest.raises(openai.APIStatusError) as failed:
        client.chat.completions.create(model="m", messages=[{"role": "user", "content": "Who wrote Hamlet?"}])
    assert failed.value.status_code == 504 and failed.value.body["code"] == "upstream_timeout"
    assert time.monotonic() - started < 4  # the gateway's timeout, not the upstream's 5 s


@pytest.mark.parametrize("status", [500, 429])
def test_upstream_error_status_and_body_pass_through(stub, stub_gateway, status):
    gateway = stub_gateway(f"error{status}")
    with gateway.http() as http:
        response = http.post("/v1/chat/completions", json={"messages": [{"role": "user", "content": "Hi there"}]})
    direct = httpx.post(f"{stub}/error{status}/v1/chat/completions", json={"messages": []})
    assert response.status_code == status
    assert response.content == direct.content  # the upstream's error body, unchanged


def test_stream_cut_by_the_upstream_ends_with_an_error_event(stub_gateway):
    client = stub_gateway("dropstream").openai()
    stream = client.chat.completions.create(
        model="m", messages=[{"role": "user", "content": "Who wrote Hamlet?"}], stream=True)
    with pytest.raises(openai.APIError, match="unreachable or dropped"):
        for _ in stream:
            pass


def test_unreachable_upstream_edits_keep_working_and_healthz_says_so(tiny_causal_dir):
    from tests.gateway.conftest import _serve, gateway_editor
    from tests.server.tiny import free_port

    editor = gateway_editor(tiny_causal_dir, f"http://127.0.0.1:{free_port()}/v1")
    generator = _serve(editor)
    gateway = next(generator)
    try:
        with gateway.http() as http:
            health = http.get("/healthz")
            assert health.status_code == 200 and health.json()["status"] == "ok"
            assert health.json()["upstream"]["status"] == "unavailable"
            out = http.post("/v1/chat/completions", json={"messages": [{"role": "user", "content": "Who wrote it?"}]})
            assert out.status_code == 502 and out.json()["error"]["code"] == "upstream_unavailable"
            assert "127.0.0.1" in out.json()["error"]["message"]
            assert http.post("/v1/edits", json={"input": QUESTION, "target": "Keir Starmer"}).status_code == 201
            assert http.get("/v1/edits").json()["total"] == 1
            # in scope is answered by the local counterfactual model, upstream or not
            edited = http.post("/v1/chat/completions", json={"messages": [{"role": "user", "content": REPHRASED}]})
            assert edited.status_code == 200 and edited.json()["serac"]["source"] == "counterfactual"
    finally:
        generator.close()
