"""Gateway inference: serac in front of an OpenAI-compatible server (the editor's base is an
``OpenAIModel``). Mounted by ``create_app`` instead of the ``inference`` router.

Each request is routed on the raw body, read leniently (a chat's last user message, or the
completion prompts). Out of scope, the body goes upstream byte for byte and the reply comes back
as the upstream sent it, plus a top-level ``serac`` object (``serac.server.gateway``). In scope,
the gateway answers itself through the ``inference`` router's handlers, so its strict field checks
apply there only; a field that path cannot honour (``tools``, ``n`` > 1, ``logprobs``, ...) gets a
400 ``unsupported_in_scope`` naming the edit, rather than an answer that silently ignores it.
"""

# No `from __future__ import annotations`: FastAPI reads these signatures at runtime.
import asyncio
import json
import time
from typing import Annotated, Any, Optional

from fastapi import APIRouter, Depends, Request
from fastapi.responses import JSONResponse, Response
from pydantic import ValidationError
from starlette.concurrency import run_in_threadpool

from serac.counterfactual import PromptedCounterfactual
from serac.editor import EditedModel
from serac.scope import ScopeDecision
from serac.server.dependencies import READ, AppMetrics, Editor, KeyCheckedRoute, Settings
from serac.server.errors import ERRORS, APIError, validation_message
from serac.server.gateway import Upstream
from serac.server.routers import inference
from serac.server.schemas import ChatCompletionRequest, CompletionRequest

router = APIRouter(tags=["gateway"], dependencies=READ, route_class=KeyCheckedRoute)

RELAYED = {
    **ERRORS,
    200: {"content": {"application/json": {}, "text/event-stream": {}}, "description": "The upstream's reply, "
          "or serac's answer from an edit; `serac` says which"},
    502: {"description": "Upstream unreachable (`upstream_unavailable`) or malformed reply"},
    504: {"description": "Upstream timeout (`upstream_timeout`)"},
}

# Fields the in-scope path answers without (they change nothing about an answer taken from an edit).
IGNORED_IN_SCOPE = frozenset({"store", "metadata", "service_tier", "parallel_tool_calls", "reasoning_effort"})
# Fields it cannot honour, with the values that mean "not used".
UNSUPPORTED_IN_SCOPE: dict[str, tuple[Any, ...]] = {
    "tools": (None, []),
    "tool_choice": (None, "none", "auto"),
    "functions": (None, []),
    "function_call": (None, "none", "auto"),
    "response_format": (None, {"type": "text"}),
    "logit_bias": (None, {}),
    "logprobs": (None, False),
    "top_logprobs": (None, 0),
    "n": (None, 1),
    "presence_penalty": (None, 0),
    "frequency_penalty": (None, 0),
    "modalities": (None, ["text"]),
    "audio": (None,),
    "prediction": (None,),
    "web_search_options": (None,),
    "echo": (None, False),
    "best_of": (None, 1),
    "suffix": (None, ""),
}


def get_upstream(request: Request) -> Upstream:
    return request.app.state.upstream


UpstreamRelay = Annotated[Upstream, Depends(get_upstream)]


# -- reading a body leniently, for the scope decision only ------------------------------------------
def _text(content: Any) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "".join(p.get("text", "") for p in content if isinstance(p, dict) and isinstance(p.get("text"), str))
    return ""


def chat_queries(data: Any) -> list[str]:
    """The chat's last user message, as the scope classifier reads it ([] if there is none)."""
    messages = data.get("messages") if isinstance(data, dict) else None
    for message in reversed(messages if isinstance(messages, list) else []):
        if isinstance(message, dict) and message.get("role") == "user":
            text = _text(message.get("content"))
            return [text] if text.strip() else []
    return []


def completion_queries(data: Any) -> list[str]:
    prompt = data.get("prompt") if isinstance(data, dict) else None
    prompts = [prompt] if isinstance(prompt, str) else prompt if isinstance(prompt, list) else []
    if not prompts or not all(isinstance(p, str) and p.strip() for p in prompts):
        return []  # token ids, empty: the upstream answers (or rejects) it
    return prompts


def _parse(raw: bytes) -> Any:
    try:
        return json.loads(raw)
    except ValueError:
        return None  # not ours to judge: the upstream answers it


# -- provenance ------------------------------------------------------------------------------------
def answered_by(editor: EditedModel, source: str) -> str:
    """'upstream' for the base model and a prompted counterfactual, 'local' for the local model."""
    if source == "base" or isinstance(editor.counterfactual, PromptedCounterfactual):
        return "upstream"
    return "local"


def provenance_headers(info: dict[str, Any]) -> dict[str, str]:
    headers = {"X-Serac-Source": info["source"], "X-Serac-Answered-By": info["answered_by"]}
    if info.get("edit_id") is not None:
        headers["X-Serac-Edit-Id"] = str(info["edit_id"])
    if info.get("score") is not None:
        headers["X-Serac-Score"] = f"{info['score']:.4f}"
    return headers


# -- the two paths ---------------------------------------------------------------------------------
async def _decide(editor: EditedModel, queries: list[str]) -> tuple[list[ScopeDecision], float]:
    """The scope decisions and the CPU seconds they took (on a busy machine, wall time is more)."""
    if not queries:
        return [], 0.0

    def timed() -> tuple[list[ScopeDecision], float]:
        cpu = time.thread_time()
        return editor.route(queries), time.thread_time() - cpu

    return await run_in_threadpool(timed)


async def _route(
    editor: EditedModel, settings: Any, upstream: Upstream, request: Request, path: str
) -> tuple[bytes, Any, list[ScopeDecision], Optional[asyncio.Task], float]:
    """(body, parsed body, scope decisions, the speculative upstream request or None, start time).

    With ``settings.speculative_relay`` the body goes upstream while the scope is decided, so an
    out-of-scope request pays no routing latency; an in-scope one is then cancelled upstream."""
    started = time.perf_counter()
    raw = await request.body()
    data = _parse(raw)
    queries = chat_queries(data) if path == "/chat/completions" else completion_queries(data)
    pending = None
    if settings.speculative_relay and queries:
        pending = upstream.start("POST", path, raw, request.headers.get("content-type"))
    try:
        decisions, cpu_s = await _decide(editor, queries)
    except BaseException:
        if pending is not None:
            await upstream.discard(pending)
        raise
    if pending is not None and any(d.in_scope for d in decisions):
        await upstream.discard(pending)
        pending = None
    request.state.route_cpu_s = cpu_s
    return raw, data, decisions, pending, started


async def _pass_through(
    upstream: Upstream, editor: EditedModel, metrics: Any, path: str, request: Request, raw: bytes,
    decisions: list[ScopeDecision], pending: Optional[asyncio.Task], started: float,
) -> Response:
    scores = [d.score for d in decisions if d.score is not None]
    info = {
        "source": "base",
        "answered_by": "upstream",
        "edit_id": None,
        "score": max(scores) if scores else None,
        "edit": None,
        "store_version": getattr(editor.scope, "synced_version", None),
    }
    for _ in decisions or [None]:
        metrics.observe_answer("base")
    # the gateway's own time before relaying (body read, scope decision): its added latency
    headers = {
        **provenance_headers(info),
        "X-Serac-Route-Ms": f"{(time.perf_counter() - started) * 1000:.2f}",
        "X-Serac-Route-Cpu-Ms": f"{request.state.route_cpu_s * 1000:.2f}",
    }
    return await upstream.relay("POST", path, raw, request.headers.get("content-type"), info, headers, pending)


def _check_in_scope(data: dict[str, Any], edit_id: Optional[int]) -> dict[str, Any]:
    """The body the strict in-scope schema reads: ignorable fields dropped, unsupported ones refused."""
    for name, unused in UNSUPPORTED_IN_SCOPE.items():
        if name in data and data[name] not in unused:
            raise APIError(
                400,
                f"this request is in scope of edit {edit_id} and is answered from that edit, which cannot honour "
                f"'{name}'; send it without '{name}' (requests out of scope reach the upstream with every field)",
                "unsupported_in_scope",
                name,
            )
    return {k: v for k, v in data.items() if k not in IGNORED_IN_SCOPE and k not in UNSUPPORTED_IN_SCOPE}


def _validated(model: Any, data: dict[str, Any]) -> Any:
    try:
        return model.model_validate_json(json.dumps(data))
    except ValidationError as exc:
        message, param = validation_message(exc.errors())
        raise APIError(400, message, "invalid_request", param) from None


def _with_provenance(editor: EditedModel, result: Any) -> Response:
    """The in-scope answer, each choice's ``serac`` saying who answered, plus a top-level ``serac``
    (the first edited choice's) and the X-Serac-* headers."""
    if not isinstance(result, Response):
        body = result.model_dump(mode="json")
        for choice in body["choices"]:
            choice["serac"]["answered_by"] = answered_by(editor, choice["serac"]["source"])
        edited = [c["serac"] for c in body["choices"] if c["serac"]["source"] == "counterfactual"]
        body["serac"] = (edited or [body["choices"][0]["serac"]])[0]
        return JSONResponse(body, headers=provenance_headers(body["serac"]))
    return result


async def _answer_in_scope(
    handler: Any, schema: Any, data: dict[str, Any], decision: ScopeDecision, editor: EditedModel, request: Request,
) -> Response:
    body = _validated(schema, _check_in_scope(data, decision.edit.id if decision.edit else None))
    result = await handler(body, inference.serving(request))
    response = _with_provenance(editor, result)
    if not isinstance(result, JSONResponse) and isinstance(result, Response):  # a stream: headers only
        info = {"source": "counterfactual", "answered_by": answered_by(editor, "counterfactual"),
                "edit_id": decision.edit.id if decision.edit else None, "score": decision.score}
        response.headers.update(provenance_headers(info))
    return response


# -- routes ----------------------------------------------------------------------------------------
async def _serve(
    path: str, handler: Any, schema: Any, request: Request, editor: EditedModel, settings: Any, metrics: Any,
    upstream: Upstream,
) -> Response:
    raw, data, decisions, pending, started = await _route(editor, settings, upstream, request, path)
    edited = [d for d in decisions if d.in_scope]
    if not edited:
        return await _pass_through(upstream, editor, metrics, path, request, raw, decisions, pending, started)
    return await _answer_in_scope(handler, schema, data, edited[0], editor, request)


@router.post("/v1/chat/completions", responses=RELAYED)
async def chat_completions(
    request: Request, editor: Editor, settings: Settings, metrics: AppMetrics, upstream: UpstreamRelay,
) -> Response:
    """OpenAI chat completion: out of scope relayed to the upstream as sent; in scope answered from
    the edit. The reply's top-level `serac` says which (and `X-Serac-*` headers, also on streams)."""
    return await _serve("/chat/completions", inference.chat_completions, ChatCompletionRequest, request, editor,
                        settings, metrics, upstream)


@router.post("/v1/completions", responses=RELAYED)
async def completions(
    request: Request, editor: Editor, settings: Settings, metrics: AppMetrics, upstream: UpstreamRelay,
) -> Response:
    """OpenAI text completion. A list of prompts goes upstream as sent when none is in scope; when
    one is, serac answers them all (the others from the upstream model, one request each)."""
    return await _serve("/completions", inference.completions, CompletionRequest, request, editor, settings,
                        metrics, upstream)


@router.get("/v1/models", responses=RELAYED)
async def models(upstream: UpstreamRelay) -> Response:
    """The upstream's model list, as it sent it."""
    return await upstream.relay("GET", "/models", b"", None, None, {})
