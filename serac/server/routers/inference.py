"""OpenAI-compatible inference: chat completions, text completions (both also as SSE), models.

Non-streamed requests go through the app's micro-batcher to ``EditedModel.generate``; streamed ones
call ``EditedModel.stream`` (through ``serac.server.inference.stream_answer``). Every choice carries
a ``serac`` provenance object.
"""

# No `from __future__ import annotations`: FastAPI reads these signatures at runtime.
import json
import logging
import time
import uuid
from typing import Any, AsyncIterator, Sequence

from fastapi import APIRouter
from fastapi.responses import StreamingResponse
from starlette.concurrency import iterate_in_threadpool, run_in_threadpool

from serac.base import GenerationOptions, Prompt
from serac.editor import Answer, EditedModel
from serac.server import inference
from serac.server.dependencies import READ, AppMetrics, Batcher, Editor, Settings
from serac.server.errors import ERRORS, APIError, classify, error_body
from serac.server.metrics import Metrics
from serac.server.schemas import (
    ChatCompletion,
    ChatCompletionRequest,
    Completion,
    CompletionRequest,
    ModelList,
    SeracInfo,
    _GenerationRequest,
)
from serac.server.settings import ServerSettings

logger = logging.getLogger(__name__)

router = APIRouter(tags=["inference"], dependencies=READ)

STREAM_OR_JSON = {
    **ERRORS,
    200: {"content": {"text/event-stream": {}}, "description": "A completion, or an SSE stream"},
}


# -- helpers ----------------------------------------------------------------------------------------
def options_for(request: _GenerationRequest, settings: ServerSettings) -> GenerationOptions:
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


def record(metrics: Metrics, answers: Sequence[Answer]) -> None:
    for answer in answers:
        metrics.observe_answer(answer.source)


def new_id(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:24]}"


def _sse(payload: dict[str, Any]) -> str:
    return f"data: {json.dumps(payload, ensure_ascii=False)}\n\n"


async def answer_all(
    editor: EditedModel, batcher: Any, metrics: Metrics, prompts: list[Prompt], options: GenerationOptions
) -> tuple[list[Answer], list[Any], int]:
    """Answers (through the micro-batcher), their (prompt tokens, completion tokens, finish reason),
    and the store version after answering."""
    await run_in_threadpool(inference.check_fits, editor, prompts, options)
    answers = await batcher.submit_many(prompts, options)
    record(metrics, answers)

    def account() -> tuple[list[Any], int]:
        usages = [inference.usage_of(editor, a, p, a.text, options) for a, p in zip(answers, prompts)]
        return usages, editor.version

    usages, version = await run_in_threadpool(account)
    return answers, usages, version


def _usage(prompt_tokens: int, completion_tokens: int) -> dict[str, int]:
    return {
        "prompt_tokens": prompt_tokens,
        "completion_tokens": completion_tokens,
        "total_tokens": prompt_tokens + completion_tokens,
    }


# -- routes -----------------------------------------------------------------------------------------
@router.post("/v1/chat/completions", response_model=ChatCompletion, responses=STREAM_OR_JSON)
async def chat_completions(
    request: ChatCompletionRequest, editor: Editor, settings: Settings, metrics: AppMetrics, batcher: Batcher
) -> Any:
    """OpenAI chat completion. Each choice carries `serac`: the edit that routed it, or base."""
    options = options_for(request, settings)
    prompt = request.prompt()
    if request.stream:
        await run_in_threadpool(inference.check_fits, editor, [prompt], options)
        return await stream_response(
            ChatChunks(), editor, settings, metrics, [prompt], options, request.include_usage
        )
    answers, usages, version = await answer_all(editor, batcher, metrics, [prompt], options)
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
        usage=_usage(prompt_tokens, completion_tokens),
    )


@router.post("/v1/completions", response_model=Completion, responses=STREAM_OR_JSON)
async def completions(
    request: CompletionRequest, editor: Editor, settings: Settings, metrics: AppMetrics, batcher: Batcher
) -> Any:
    """OpenAI text completion; a list of prompts gives one choice per prompt, in order."""
    options = options_for(request, settings)
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
        return await stream_response(
            CompletionChunks(), editor, settings, metrics, prompts, options, request.include_usage
        )
    answers, usages, version = await answer_all(editor, batcher, metrics, prompts, options)
    return Completion(
        id=new_id("cmpl"),
        created=int(time.time()),
        model=settings.model_name,
        choices=[
            {"index": i, "text": a.text, "finish_reason": u[2], "serac": serac_info(a, version)}
            for i, (a, u) in enumerate(zip(answers, usages))
        ],
        usage=_usage(sum(u[0] for u in usages), sum(u[1] for u in usages)),
    )


@router.get("/v1/models", response_model=ModelList, responses=ERRORS)
async def models(settings: Settings) -> Any:
    return {"data": [{"id": settings.model_name, "created": int(time.time())}]}


# -- streaming --------------------------------------------------------------------------------------
class Chunks:
    """SSE chunks of one kind of completion; ``serac`` rides on each choice's first and last chunk."""

    prefix, object_name = "", ""

    def choice(self, index: int, piece: str | None, first: bool) -> dict[str, Any]:
        raise NotImplementedError

    def __call__(
        self,
        base: dict[str, Any],
        index: int,
        info: dict[str, Any],
        piece: str | None,
        finish: str | None,
        first: bool,
    ) -> dict[str, Any]:
        choice = {**self.choice(index, piece, first), "finish_reason": finish, "logprobs": None}
        if first or finish:
            choice["serac"] = info
        return {**base, "object": self.object_name, "choices": [choice]}


class ChatChunks(Chunks):
    """The role first, then content deltas, then the finish."""

    prefix, object_name = "chatcmpl", "chat.completion.chunk"

    def choice(self, index: int, piece: str | None, first: bool) -> dict[str, Any]:
        delta: dict[str, Any] = {}
        if first:
            delta = {"role": "assistant", "content": ""}
        elif piece is not None:
            delta = {"content": piece}
        return {"index": index, "delta": delta}


class CompletionChunks(Chunks):
    """Text pieces, then the finish."""

    prefix, object_name = "cmpl", "text_completion"

    def choice(self, index: int, piece: str | None, first: bool) -> dict[str, Any]:
        return {"index": index, "text": piece or ""}


async def stream_response(
    chunk: Chunks,
    editor: EditedModel,
    settings: ServerSettings,
    metrics: Metrics,
    prompts: list[Prompt],
    options: GenerationOptions,
    include_usage: bool,
) -> StreamingResponse:
    # Route and produce the first piece of the first prompt before answering, so an error is a
    # proper 4xx and not a broken stream.
    first = await run_in_threadpool(inference.stream_answer, editor, prompts[0], options)
    base = {"id": new_id(chunk.prefix), "created": int(time.time()), "model": settings.model_name}

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
                record(metrics, [answer])
                yield _sse(chunk(base, index, info, None, finish, False))
            if include_usage:
                yield _sse({**base, "object": chunk.object_name, "choices": [], "usage": _usage(*usage)})
        except Exception as exc:
            api = classify(exc)
            if api is None:
                logger.exception("error while streaming")
                api = APIError(500, "internal server error while streaming; the server log has the details")
            yield _sse(error_body(api.status, api.message, api.code, api.param))
        yield "data: [DONE]\n\n"

    return StreamingResponse(
        events(),
        media_type="text/event-stream",
        headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
    )
