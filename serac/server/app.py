"""The HTTP app: OpenAI-compatible inference over an ``EditedModel``, edit management, operations.

``create_app(editor, settings)`` builds a FastAPI app around one editor. Blocking work (generation,
SQLite writes, tokenisation) runs in threads; the event loop only parses, batches and streams.
An edit write is answered 2xx only after its transaction committed and the scope index took it, so
the next request sees it.
"""

# No `from __future__ import annotations`: FastAPI reads these signatures at runtime, and some name
# values local to create_app (the auth scheme, the page-size limit).
import json
import logging
import time
import uuid
from contextlib import asynccontextmanager
from typing import Annotated, Any, AsyncIterator, Sequence, Union

from fastapi import Body, Depends, FastAPI, Query
from fastapi import Path as PathParam
from fastapi.responses import PlainTextResponse, StreamingResponse
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from pydantic import Discriminator, Tag
from starlette.concurrency import iterate_in_threadpool, run_in_threadpool
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from serac.base import GenerationOptions, Prompt
from serac.editor import Answer, EditedModel
from serac.edits import Edit
from serac.follower import StoreFollower
from serac.server import inference
from serac.server.auth import Role
from serac.server.batching import MicroBatcher
from serac.server.errors import APIError, classify, error_body, error_response, install_error_handlers
from serac.server.metrics import CONTENT_TYPE, Metrics
from serac.server.schemas import (
    MAX_ID,
    ChatCompletion,
    ChatCompletionRequest,
    Completion,
    CompletionRequest,
    EditBatchIn,
    EditCreated,
    EditDeleted,
    EditIn,
    EditOut,
    EditPage,
    ErrorResponse,
    Health,
    ModelList,
    RollbackIn,
    RollbackOut,
    SeracInfo,
    StoreVersion,
    _GenerationRequest,
)
from serac.server.settings import ServerSettings

logger = logging.getLogger(__name__)

ERRORS: dict[int | str, dict[str, Any]] = {
    status: {"model": ErrorResponse, "description": description}
    for status, description in (
        (400, "Invalid request: malformed JSON, wrong types, unknown fields, prompt over the context"),
        (401, "Missing or wrong API key"),
        (403, "The API key's role does not allow this"),
        (413, "Request body too large"),
    )
}
NOT_FOUND = {404: {"model": ErrorResponse, "description": "No such edit or version"}}

EditsBody = Annotated[
    Union[Annotated[EditIn, Tag("one")], Annotated[EditBatchIn, Tag("many")]],
    Discriminator(lambda v: "many" if isinstance(v, dict) and "edits" in v else "one"),
]


def create_app(editor: EditedModel, settings: ServerSettings | None = None) -> FastAPI:
    settings = settings or ServerSettings()
    metrics = Metrics()
    batcher = MicroBatcher(
        editor.generate,
        max_batch_size=settings.max_batch_size,
        max_wait_s=settings.batch_wait_ms / 1000,
        on_batch=metrics.observe_batch,
    )

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        await batcher.start()
        # A shared store (PostgreSQL) announces other replicas' writes: index them between requests.
        follower = StoreFollower(editor).start() if StoreFollower.supported(editor.store) else None
        try:
            yield
        finally:
            if follower is not None:
                await run_in_threadpool(follower.stop)
            await batcher.close()

    app = FastAPI(
        title="serac",
        summary="OpenAI-compatible inference over a SERAC-edited model, and its edit memory.",
        version="1",
        lifespan=lifespan,
    )
    app.state.editor = editor  # for tests and extensions
    app.state.settings = settings
    app.state.metrics = metrics
    install_error_handlers(app)
    app.add_middleware(RequestGuard, metrics=metrics, max_body_bytes=settings.max_body_bytes)

    # -- auth ----------------------------------------------------------------------------------------
    bearer = HTTPBearer(auto_error=False, description="An API key: `Authorization: Bearer KEY`.")

    def require(role: Role):
        def check(credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)]) -> None:
            if not settings.keys:
                return
            challenge = {"WWW-Authenticate": "Bearer"}
            if credentials is None:
                raise APIError(
                    401,
                    "missing API key; send `Authorization: Bearer KEY`",
                    "missing_api_key",
                    headers=challenge,
                )
            found = settings.keys.role_of(credentials.credentials)
            if found is None:
                raise APIError(401, "invalid API key", "invalid_api_key", headers=challenge)
            if not found.allows(role):
                raise APIError(
                    403,
                    f"this API key has the '{found.value}' role; this endpoint needs '{role.value}'",
                    "insufficient_role",
                )

        return Depends(check)

    read, write = [require(Role.READ)], [require(Role.WRITE)]

    # -- helpers -------------------------------------------------------------------------------------
    def options_for(request: _GenerationRequest) -> GenerationOptions:
        if request.max_tokens is not None and request.max_tokens > settings.max_tokens_limit:
            raise APIError(
                400,
                f"max_tokens is {request.max_tokens}; this server allows at most {settings.max_tokens_limit}",
                "invalid_request",
                "max_tokens",
            )
        return request.generation_options()

    def serac_info(answer: Answer, version: int | None) -> SeracInfo:
        return SeracInfo(**answer.provenance(), store_version=version)

    def record(answers: Sequence[Answer]) -> None:
        for answer in answers:
            metrics.observe_answer(answer.source)

    async def answer_all(
        prompts: list[Prompt], options: GenerationOptions
    ) -> tuple[list[Answer], list[Any], int]:
        """Answers (through the micro-batcher), their (prompt tokens, completion tokens, finish
        reason), and the store version after answering."""
        await run_in_threadpool(inference.check_fits, editor, prompts, options)
        answers = await batcher.submit_many(prompts, options)
        record(answers)

        def account() -> tuple[list[Any], int]:
            usages = [inference.usage_of(editor, a, p, a.text, options) for a, p in zip(answers, prompts)]
            return usages, editor.version

        usages, version = await run_in_threadpool(account)
        return answers, usages, version

    def new_id(prefix: str) -> str:
        return f"{prefix}-{uuid.uuid4().hex[:24]}"

    # -- inference -----------------------------------------------------------------------------------
    @app.post(
        "/v1/chat/completions",
        response_model=ChatCompletion,
        responses={
            **ERRORS,
            200: {"content": {"text/event-stream": {}}, "description": "A completion, or an SSE stream"},
        },
        dependencies=read,
        tags=["inference"],
    )
    async def chat_completions(request: ChatCompletionRequest) -> Any:
        """OpenAI chat completion. Each choice carries `serac`: the edit that routed it, or base."""
        options = options_for(request)
        prompt = request.prompt()
        if request.stream:
            await run_in_threadpool(inference.check_fits, editor, [prompt], options)
            return await stream_response(chat_chunks, [prompt], options, request.include_usage)
        answers, usages, version = await answer_all([prompt], options)
        answer, (prompt_tokens, completion_tokens, finish) = answers[0], usages[0]
        return ChatCompletion(
            id=new_id("chatcmpl"),
            created=int(time.time()),
            model=settings.model_name,
            choices=[
                {
                    "index": 0,
                    "message": {"content": answer.text},
                    "finish_reason": finish,
                    "serac": serac_info(answer, version),
                }
            ],
            usage={
                "prompt_tokens": prompt_tokens,
                "completion_tokens": completion_tokens,
                "total_tokens": prompt_tokens + completion_tokens,
            },
        )

    @app.post(
        "/v1/completions",
        response_model=Completion,
        responses={
            **ERRORS,
            200: {"content": {"text/event-stream": {}}, "description": "A completion, or an SSE stream"},
        },
        dependencies=read,
        tags=["inference"],
    )
    async def completions(request: CompletionRequest) -> Any:
        """OpenAI text completion; a list of prompts gives one choice per prompt, in order."""
        options = options_for(request)
        prompts = request.prompts()
        if len(prompts) > settings.max_prompts_per_request:
            raise APIError(
                400,
                f"got {len(prompts)} prompts; this server takes at most "
                f"{settings.max_prompts_per_request} per request",
                "invalid_request",
                "prompt",
            )
        if request.stream:
            await run_in_threadpool(inference.check_fits, editor, prompts, options)
            return await stream_response(completion_chunks, prompts, options, request.include_usage)
        answers, usages, version = await answer_all(prompts, options)
        total_prompt = sum(u[0] for u in usages)
        total_completion = sum(u[1] for u in usages)
        return Completion(
            id=new_id("cmpl"),
            created=int(time.time()),
            model=settings.model_name,
            choices=[
                {"index": i, "text": a.text, "finish_reason": u[2], "serac": serac_info(a, version)}
                for i, (a, u) in enumerate(zip(answers, usages))
            ],
            usage={
                "prompt_tokens": total_prompt,
                "completion_tokens": total_completion,
                "total_tokens": total_prompt + total_completion,
            },
        )

    # -- streaming -----------------------------------------------------------------------------------
    def chat_chunks(
        base: dict[str, Any],
        index: int,
        info: dict[str, Any],
        piece: str | None,
        finish: str | None,
        first: bool,
    ) -> dict[str, Any]:
        delta: dict[str, Any] = {}
        if first:
            delta = {"role": "assistant", "content": ""}
        elif piece is not None:
            delta = {"content": piece}
        choice = {"index": index, "delta": delta, "finish_reason": finish, "logprobs": None}
        if first or finish:
            choice["serac"] = info
        return {**base, "object": "chat.completion.chunk", "choices": [choice]}

    def completion_chunks(
        base: dict[str, Any],
        index: int,
        info: dict[str, Any],
        piece: str | None,
        finish: str | None,
        first: bool,
    ) -> dict[str, Any]:
        choice = {"index": index, "text": piece or "", "finish_reason": finish, "logprobs": None}
        if first or finish:
            choice["serac"] = info
        return {**base, "object": "text_completion", "choices": [choice]}

    async def stream_response(
        chunk, prompts: list[Prompt], options: GenerationOptions, include_usage: bool
    ) -> StreamingResponse:
        # Route and produce the first piece of the first prompt before answering, so an error is a
        # proper 4xx and not a broken stream.
        first = await run_in_threadpool(inference.stream_answer, editor, prompts[0], options)
        prefix = "chatcmpl" if chunk is chat_chunks else "cmpl"
        base = {"id": new_id(prefix), "created": int(time.time()), "model": settings.model_name}

        async def events() -> AsyncIterator[str]:
            usage = [0, 0]
            try:
                for index, prompt in enumerate(prompts):
                    answer, pieces = (
                        first
                        if index == 0
                        else await run_in_threadpool(inference.stream_answer, editor, prompt, options)
                    )
                    info = serac_info(answer, await run_in_threadpool(lambda: editor.version)).model_dump()
                    yield _sse(chunk(base, index, info, None, None, True))
                    text = ""
                    async for piece in iterate_in_threadpool(pieces):
                        text += piece
                        yield _sse(chunk(base, index, info, piece, None, False))
                    prompt_tokens, completion_tokens, finish = await run_in_threadpool(
                        inference.usage_of, editor, answer, prompt, text, options
                    )
                    usage[0] += prompt_tokens
                    usage[1] += completion_tokens
                    record([answer])
                    yield _sse(chunk(base, index, info, None, finish, False))
                if include_usage:
                    object_name = "chat.completion.chunk" if chunk is chat_chunks else "text_completion"
                    yield _sse(
                        {
                            **base,
                            "object": object_name,
                            "choices": [],
                            "usage": {
                                "prompt_tokens": usage[0],
                                "completion_tokens": usage[1],
                                "total_tokens": sum(usage),
                            },
                        }
                    )
            except Exception as exc:
                api = classify(exc)
                if api is None:
                    logger.exception("error while streaming")
                    api = APIError(
                        500, "internal server error while streaming; the server log has the details"
                    )
                yield _sse(error_body(api.status, api.message, api.code, api.param))
            yield "data: [DONE]\n\n"

        return StreamingResponse(
            events(),
            media_type="text/event-stream",
            headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
        )

    @app.get("/v1/models", response_model=ModelList, responses=ERRORS, dependencies=read, tags=["inference"])
    async def models() -> Any:
        return {"data": [{"id": settings.model_name, "created": int(time.time())}]}

    # -- edits ---------------------------------------------------------------------------------------
    @app.post(
        "/v1/edits",
        status_code=201,
        response_model=EditCreated,
        responses=ERRORS,
        dependencies=write,
        tags=["edits"],
    )
    async def add_edits(body: Annotated[EditsBody, Body()]) -> Any:
        """Add one edit (`{"input", "target", "metadata"}`) or many (`{"edits": [...]}`) atomically:
        all are stored in one transaction, or none. The next request already sees them."""
        items = body.edits if isinstance(body, EditBatchIn) else [body]
        if len(items) > settings.max_edits_per_request:
            raise APIError(
                400,
                f"got {len(items)} edits; this server takes at most "
                f"{settings.max_edits_per_request} per request; split them",
                "invalid_request",
                "edits",
            )
        requests = [item.model_dump(exclude_none=True) for item in items]

        def add() -> tuple[list[Edit], int]:
            return editor.add_many(requests), editor.version

        stored, version = await run_in_threadpool(add)
        return {"data": [_edit_out(e) for e in stored], "version": version}

    @app.get("/v1/edits", response_model=EditPage, responses=ERRORS, dependencies=read, tags=["edits"])
    async def list_edits(
        offset: Annotated[int, Query(ge=0, le=MAX_ID, description="Live edits to skip (oldest first).")] = 0,
        limit: Annotated[int, Query(ge=1, le=settings.max_page_size, description="Page size.")] = 100,
    ) -> Any:
        def page() -> tuple[list[Edit], int, int]:
            store = editor.store
            return store.list(offset, limit), store.count(), store.version

        edits, total, version = await run_in_threadpool(page)
        return {
            "data": [_edit_out(e) for e in edits],
            "total": total,
            "offset": offset,
            "limit": limit,
            "has_more": offset + len(edits) < total,
            "version": version,
        }

    @app.get(
        "/v1/edits/version", response_model=StoreVersion, responses=ERRORS, dependencies=read, tags=["edits"]
    )
    async def store_version() -> Any:
        def read_version() -> dict[str, int]:
            return {"version": editor.store.version, "count": editor.store.count()}

        return await run_in_threadpool(read_version)

    @app.post(
        "/v1/edits/rollback",
        response_model=RollbackOut,
        responses={**ERRORS, **NOT_FOUND},
        dependencies=write,
        tags=["edits"],
    )
    async def rollback(body: RollbackIn) -> Any:
        """Make the live edits what they were at `version` (recorded as a new version)."""

        def run() -> dict[str, int]:
            new_version = editor.rollback(body.version)
            return {"rolled_back_to": body.version, "version": new_version, "count": editor.store.count()}

        return await run_in_threadpool(run)

    EditId = Annotated[int, PathParam(ge=1, le=MAX_ID, description="An edit id from GET /v1/edits.")]

    @app.get(
        "/v1/edits/{edit_id}",
        response_model=EditOut,
        responses={**ERRORS, **NOT_FOUND},
        dependencies=read,
        tags=["edits"],
    )
    async def get_edit(edit_id: EditId) -> Any:
        return _edit_out(await run_in_threadpool(editor.store.get, edit_id))

    @app.delete(
        "/v1/edits/{edit_id}",
        response_model=EditDeleted,
        responses={**ERRORS, **NOT_FOUND},
        dependencies=write,
        tags=["edits"],
    )
    async def delete_edit(edit_id: EditId) -> Any:
        """Remove a live edit (undo with POST /v1/edits/rollback)."""
        return {"id": edit_id, "version": await run_in_threadpool(editor.remove, edit_id)}

    # -- operations ----------------------------------------------------------------------------------
    @app.get("/healthz", response_model=Health, tags=["operations"])
    async def healthz() -> Any:
        """Liveness and readiness: the store answers. No key needed."""

        def read_state() -> tuple[int, int]:
            return editor.store.version, editor.store.count()

        version, count = await run_in_threadpool(read_state)
        return {"status": "ok", "model": settings.model_name, "version": version, "edits": count}

    @app.get(
        "/metrics", response_class=PlainTextResponse, responses=ERRORS, dependencies=read, tags=["operations"]
    )
    async def prometheus() -> PlainTextResponse:
        """Prometheus text format: requests, latency histograms, in-scope share, edit count."""

        def read_state() -> tuple[int, int]:
            return editor.store.count(), editor.store.version

        count, version = await run_in_threadpool(read_state)
        return PlainTextResponse(metrics.render(count, version), media_type=CONTENT_TYPE)

    return app


def _edit_out(edit: Edit) -> dict[str, Any]:
    return {**edit.to_dict(), "object": "edit"}


def _sse(payload: dict[str, Any]) -> str:
    return f"data: {json.dumps(payload, ensure_ascii=False)}\n\n"


class RequestGuard:
    """ASGI middleware: rejects bodies over ``max_body_bytes`` with 413 (by Content-Length before
    reading, or while reading a chunked body), and records request counts and latency."""

    def __init__(self, app: ASGIApp, metrics: Metrics, max_body_bytes: int) -> None:
        self.app, self.metrics, self.max_body_bytes = app, metrics, max_body_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = [500]

        async def send_tracking(message: Message) -> None:
            if message["type"] == "http.response.start":
                status[0] = message["status"]
            await send(message)

        try:
            body_receive = await self._read_body(scope, receive)
            if body_receive is None:
                status[0] = 413
                await error_response(
                    413,
                    f"request body is larger than this server's limit of {self.max_body_bytes} bytes",
                    "request_too_large",
                )(scope, receive, send)
                return
            await self.app(scope, body_receive, send_tracking)
        finally:
            route = scope.get("route")
            template = getattr(route, "path", None) or "unmatched"
            self.metrics.observe_request(scope["method"], template, status[0], time.perf_counter() - started)

    async def _read_body(self, scope: Scope, receive: Receive) -> Receive | None:
        """A receive that replays the whole (size-checked) body, or None if it is too large."""
        headers = dict(scope.get("headers") or [])
        declared = headers.get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > self.max_body_bytes:
            return None
        chunks, size = [], 0
        while True:
            message = await receive()
            if message["type"] != "http.request":  # the client left before sending the body
                pending: list[Message] = [message]
                break
            body = message.get("body", b"")
            size += len(body)
            if size > self.max_body_bytes:
                return None
            chunks.append(body)
            if not message.get("more_body", False):
                pending = [{"type": "http.request", "body": b"".join(chunks), "more_body": False}]
                break

        async def replay() -> Message:
            if pending:
                return pending.pop(0)
            return await receive()

        return replay
