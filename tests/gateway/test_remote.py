"""The remote base model (serac.remote.OpenAIModel) and its configuration, on an in-memory transport."""

from __future__ import annotations

import json

import httpx
import pytest

from serac.base import GenerationOptions
from serac.config import BaseModelConfig, CounterfactualConfig, SeracConfig
from serac.errors import (
    ConfigError,
    UpstreamBadResponseError,
    UpstreamStatusError,
    UpstreamTimeoutError,
    UpstreamUnavailableError,
)
from serac.remote import OpenAIModel, public_url


def fake_server(requests: list, reply=None):
    """An httpx transport answering like an OpenAI server, recording each request."""

    def handle(request: httpx.Request) -> httpx.Response:
        requests.append(request)
        if reply is not None:
            return reply(request)
        if request.url.path.endswith("/models"):
            return httpx.Response(200, json={"object": "list", "data": [{"id": "listed-model"}]})
        body = json.loads(request.content)
        if body.get("stream"):
            events = [{"choices": [{"delta": {"content": p}}]} for p in ("Keir", " Starmer")]
            text = "".join(f"data: {json.dumps(e)}\n\n" for e in events) + "data: [DONE]\n\n"
            return httpx.Response(200, text=text, headers={"content-type": "text/event-stream"})
        content = body["messages"][-1]["content"]
        return httpx.Response(200, json={"choices": [{"message": {"content": f" echo: {content} "}}]})

    return httpx.MockTransport(handle)


def test_generate_sends_greedy_chat_requests_with_the_key():
    requests: list = []
    model = OpenAIModel("http://upstream.test/v1", "m1", api_key="sk-test", transport=fake_server(requests))
    assert model.generate(["Who?", [{"role": "user", "content": "What?"}]]) == ["echo: Who?", "echo: What?"]
    body = json.loads(requests[0].content)
    assert requests[0].url == "http://upstream.test/v1/chat/completions"
    assert requests[0].headers["authorization"] == "Bearer sk-test"
    assert body == {"model": "m1", "messages": [{"role": "user", "content": "Who?"}], "max_tokens": 32,
                    "temperature": 0.0}
    options = GenerationOptions(max_new_tokens=5, temperature=0.7, top_p=0.9, stop=("\n",), seed=3)
    model.generate(["Who?"], options)
    assert json.loads(requests[-1].content) | {"messages": None} == {
        "model": "m1", "messages": None, "max_tokens": 5, "temperature": 0.7, "top_p": 0.9, "stop": ["\n"], "seed": 3}


def test_model_name_comes_from_the_server_when_not_configured():
    requests: list = []
    model = OpenAIModel("http://upstream.test/v1", transport=fake_server(requests))
    model.generate(["a", "b", "c"])
    assert [r.url.path for r in requests].count("/v1/models") == 1
    assert all(json.loads(r.content)["model"] == "listed-model" for r in requests if r.method == "POST")


def test_stream_yields_the_deltas():
    model = OpenAIModel("http://upstream.test/v1", "m", transport=fake_server([]))
    assert list(model.stream("Who?")) == ["Keir", " Starmer"]


@pytest.mark.parametrize(
    "reply, error, status",
    [
        (lambda r: httpx.Response(500, json={"error": {"message": "boom"}}), UpstreamStatusError, 500),
        (lambda r: httpx.Response(200, text="not json"), UpstreamBadResponseError, 502),
        (lambda r: httpx.Response(200, json={"choices": []}), UpstreamBadResponseError, 502),
    ],
)
def test_upstream_replies_become_project_errors(reply, error, status):
    model = OpenAIModel("http://upstream.test/v1", "m", transport=fake_server([], reply))
    with pytest.raises(error) as raised:
        model.generate(["Who?"])
    assert raised.value.status == status


def test_transport_failures_become_project_errors():
    def refuse(request):
        raise httpx.ConnectError("refused", request=request)

    def stall(request):
        raise httpx.ReadTimeout("slow", request=request)

    with pytest.raises(UpstreamUnavailableError, match="unreachable"):
        OpenAIModel("http://user:secret@upstream.test/v1", "m", transport=httpx.MockTransport(refuse)).generate(["x"])
    with pytest.raises(UpstreamTimeoutError) as timed_out:
        OpenAIModel("http://upstream.test/v1", "m", transport=httpx.MockTransport(stall)).generate(["x"])
    assert timed_out.value.status == 504


def test_public_url_hides_credentials_and_query():
    assert public_url("https://user:secret@api.example.com:8443/v1?key=abc") == "https://api.example.com:8443/v1"
    try:
        OpenAIModel("http://user:secret@127.0.0.1:9/v1", "m", timeout=1).generate(["x"])
    except UpstreamUnavailableError as exc:
        assert "secret" not in str(exc) and "127.0.0.1:9" in str(exc)


def test_config_openai_kind(monkeypatch):
    with pytest.raises(ConfigError, match="base.url"):
        BaseModelConfig(kind="openai")
    with pytest.raises(ConfigError, match="environment variable"):
        BaseModelConfig(kind="openai", url="http://x/v1", api_key_env="not a name")
    with pytest.raises(ConfigError, match="engine"):
        CounterfactualConfig(engine="remote")
    config = SeracConfig.from_dict({"base": {"kind": "openai", "url": "http://x/v1", "api_key_env": "SERAC_TEST_KEY",
                                             "timeout": 5}, "counterfactual": {"engine": "prompted"}})
    assert SeracConfig.from_dict(config.to_dict()) == config
    monkeypatch.delenv("SERAC_TEST_KEY", raising=False)
    with pytest.raises(ConfigError, match=r"\$SERAC_TEST_KEY"):
        OpenAIModel.from_config(config.base)
    monkeypatch.setenv("SERAC_TEST_KEY", "sk-abc")
    model = OpenAIModel.from_config(config.base)
    assert model.headers == {"Authorization": "Bearer sk-abc"} and model.timeout == 5
    assert model._model is None  # the local default names no upstream model: ask the server


def test_edited_model_with_a_remote_base_and_prompted_counterfactual(hashing_encoder):
    from serac.counterfactual import PromptedCounterfactual
    from serac.editor import EditedModel
    from serac.scope import ScopeClassifier

    requests: list = []
    base = OpenAIModel("http://upstream.test/v1", "m", transport=fake_server(requests))
    editor = EditedModel(base, ScopeClassifier(hashing_encoder, threshold=0.7), PromptedCounterfactual(base))
    edit = editor.add("Who is the prime minister of the United Kingdom?", "Keir Starmer")
    edited, plain = editor.generate(["Who is the prime minister of the United Kingdom now?", "Who wrote Hamlet?"])
    assert (edited.source, edited.edit_id, plain.source) == ("counterfactual", edit.id, "base")
    sent = [json.loads(r.content)["messages"] for r in requests]
    system = [m for m in sent if m[0]["role"] == "system"]
    assert len(system) == 1 and "A: Keir Starmer" in system[0][0]["content"]
    assert plain.text == "echo: Who wrote Hamlet?"
    answer, pieces = editor.stream("Who is the prime minister of the United Kingdom now?")
    assert answer.source == "counterfactual" and "".join(pieces) == "Keir Starmer"


def test_serve_upstream_options_need_upstream(tmp_path):
    from typer.testing import CliRunner

    from serac.cli import app

    result = CliRunner().invoke(app, ["serve", "--upstream-model", "m", "--store", str(tmp_path / "e.db")])
    assert result.exit_code == 1 and "add --upstream URL" in result.output
    result = CliRunner().invoke(app, ["serve", "--upstream", "http://127.0.0.1:9/v1", "--counterfactual", "remote",
                                      "--store", str(tmp_path / "e.db")])
    assert result.exit_code == 1 and "counterfactual.engine" in result.output


def test_eval_with_an_upstream_base(monkeypatch):
    """`serac eval --upstream`: generation scoring through the remote base, memoised like a local one;
    what needs logits or weights is refused before anything loads."""
    from serac.eval.cache import CachedLM
    from serac.eval.cli import _upstream_models

    with pytest.raises(ConfigError, match="--scoring generation"):
        _upstream_models("http://upstream.test/v1", ["serac-untrained"], ["generation", "teacher_forced"], 8, 4)
    with pytest.raises(ConfigError, match="ft, lu"):
        _upstream_models("http://upstream.test/v1", ["serac-untrained", "ft", "lu"], ["generation"], 8, 4)
    requests: list = []
    cached = CachedLM(OpenAIModel("http://upstream.test/v1", "m", transport=fake_server(requests)))
    assert cached.generate(["Who?", "Who?", "What?"]) == ["echo: Who?", "echo: Who?", "echo: What?"]
    assert len(requests) == 2  # the repeated prompt came from the memo


def test_from_config_builds_the_remote_base_and_prompted_counterfactual(monkeypatch, hashing_encoder):
    """`base.kind = "openai"` with the prompted engine loads no local language model at all."""
    from serac import base as base_module
    from serac.counterfactual import PromptedCounterfactual
    from serac.editor import EditedModel
    from serac.scope import ScopeClassifier

    monkeypatch.setattr(ScopeClassifier, "from_config", classmethod(lambda cls, c: cls(hashing_encoder, 0.7)))
    monkeypatch.setattr(base_module, "load_text_model", lambda *a, **k: pytest.fail("a local model was loaded"))
    config = SeracConfig(base=BaseModelConfig(kind="openai", url="http://127.0.0.1:9/v1", model="m", timeout=2),
                         counterfactual=CounterfactualConfig(engine="prompted"))
    editor = EditedModel.from_config(config)
    assert isinstance(editor.base, OpenAIModel) and editor.base.url == "http://127.0.0.1:9/v1"
    assert isinstance(editor.counterfactual, PromptedCounterfactual) and editor.counterfactual.lm is editor.base
    editor.add("Who is the prime minister of the United Kingdom?", "Keir Starmer")  # no upstream needed
    with pytest.raises(UpstreamUnavailableError):
        editor.generate(["Who wrote Hamlet?"])
