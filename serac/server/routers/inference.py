"""OpenAI-compatible inference: chat completions, text completions (both also as SSE), models.

Non-streamed requests go through the app's micro-batcher to ``EditedModel.generate``; streamed ones
call ``EditedModel.stream`` (through ``serac.server.inference.stream_answer``). Every choice carries
a ``serac`` provenance object.
"""

# No `from __future__ import annotations`: FastAPI reads these signatures at runtime.
import asyncio
import contextlib
import json
import logging
import threading
import time
import uuid
from dataclasses import dataclass
from typing import Annotated, Any, AsyncIterator, Iterator, Sequence

from fastapi import APIRouter, Depends, Request
from fastapi.responses import StreamingResponse
from starlette.concurrency import iterate_in_threadpool, run_in_threadpool

from serac.base import GenerationOptions, Prompt
from serac.editor import Answer, EditedModel
from serac.server import inference
from serac.server.admission import Admission, until_disconnected
from serac.server.batching import MicroBatcher
from serac.server.dependencies import READ, KeyCheckedRoute, Settings
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

router = APIRouter(tags=["inference"], dependencies=READ, route_class=KeyCheckedRoute)

STREAM_OR_JSON = {
    **ERRORS,
    200: {"content": {"text/event-stream": {}}, "description": "A completion, or an SSE stream"},
}


@dataclass
class Serving:
    """What an inference request works with: the app's shared objects and the request itself."""

    request: Request
    editor: EditedModel
    settings: ServerSettings
    metrics: Metrics
    batcher: MicroBatcher
    admission: Admission


def serving(request: Request) -> Serving:
    state = request.app.state
    return Serving(request, state.editor, state.settings, state.metrics, state.batcher, state.admission)


Ctx = Annotated[Serving, Depends(serving)]


# -- helpers ----------------------------------------------------------------------------------------
def check_max_tokens(max_tokens: int | None, settings: ServerSettings) -> None:
    if max_tokens is not None and max_tokens > settings.max_tokens_limit:
        raise APIError(
            400,
            f"max_tokens is {max_tokens}; this server allows at most {settings.max_tokens_limit}",
            "invalid_request",
            "max_tokens",
        )


def options_for(request: _GenerationRequest, settings: ServerSettings) -> GenerationOptions:
    check_max_tokens(request.max_tokens, settings)
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


def check_choices(prompts: Sequence[Prompt], n: int, settings: ServerSettings) -> None:
    total = len(prompts) * n
    if total > settings.max_prompts_per_request:
        raise APIError(
            400,
            f"got {len(prompts)} prompt(s) x n={n} = {total} choices; this server makes at most "
            f"{settings.max_prompts_per_request} per request",
            "invalid_request",
            "n" if n > 1 else "prompt",
        )


async def check_fits(ctx: Serving, prompts: list[Prompt], options: GenerationOptions) -> None:
    await run_in_threadpool(
        inference.check_fits, ctx.editor, prompts, options, ctx.settings.max_prompt_tokens
    )


async def answer_all(
    ctx: Serving, prompts: list[Prompt], options: GenerationOptions, n: int = 1
) -> tuple[list[Answer], list[Any], int]:
    """``n`` answers per prompt (prompt-major, through the micro-batcher), their (prompt tokens,
    completion tokens, finish reason), and the store version after answering. Bounded: a client
    that leaves or a request past the time limit stops its generation."""
    editor, metrics = ctx.editor, ctx.metrics
    await check_fits(ctx, prompts, options)
    runs = inference.distinct_runs(options, n)
    per_choice = inference.choice_options(options, runs)
    ctx.admission.admit_prompts(len(prompts) * runs)
    generated = await ctx.admission.bounded(
        ctx.request,
        ctx.batcher.submit_many(
            [p for p in prompts for _ in range(runs)], [o for _ in prompts for o in per_choice]
        ),
    )
    # greedy: one run per prompt, shared by its n choices
    answers = [generated[i * runs + (j % runs)] for i in range(len(prompts)) for j in range(n)]
    record(metrics, answers)

    def account() -> tuple[list[Any], int]:
        usages = [
            inference.usage_of(editor, a, prompts[k // n], a.text, options) for k, a in enumerate(answers)
        ]
        return usages, editor.version

    usages, version = await run_in_threadpool(account)
    return answers, usages, version


def _usage(prompt_tokens: int, completion_tokens: int) -> dict[str, int]:
    return {
        "prompt_tokens": prompt_tokens,
        "completion_tokens": completion_tokens,
        "total_tokens": prompt_tokens + completion_tokens,
    }


def _total_usage(usages: Sequence[Any], n: int) -> dict[str, int]:
    """Each prompt's tokens once (not once per choice), every choice's completion tokens."""
    return _usage(sum(u[0] for u in usages[::n]), sum(u[1] for u in usages))


# -- routes -----------------------------------------------------------------------------------------
@router.post("/v1/chat/completions", response_model=ChatCompletion, responses=STREAM_OR_JSON)
async def chat_completions(request: ChatCompletionRequest, ctx: Ctx) -> Any:
    """OpenAI chat completion. Each choice carries `serac`: the edit that routed it, or base."""
    settings = ctx.settings
    options = options_for(request, settings)
    prompt, n = request.prompt(), request.choices_per_prompt
    check_choices([prompt], n, settings)
    if request.stream:
        await check_fits(ctx, [prompt], options)
        return await stream_response(ctx, ChatChunks(), [prompt], options, request.include_usage, n)
    answers, usages, version = await answer_all(ctx, [prompt], options, n)
    return ChatCompletion(
        id=new_id("chatcmpl"),
        created=int(time.time()),
        model=settings.model_name,
        choices=[
            {
                "index": j,
                "message": {"content": answer.text},
                "finish_reason": usage[2],
                "logprobs": inference.chat_logprobs(answer.logprobs),
                "serac": serac_info(answer, version),
            }
            for j, (answer, usage) in enumerate(zip(answers, usages))
        ],
        usage=_total_usage(usages, n),
    )


@router.post("/v1/completions", response_model=Completion, responses=STREAM_OR_JSON)
async def completions(request: CompletionRequest, ctx: Ctx) -> Any:
    """OpenAI text completion; a list of prompts gives `n` choices per prompt, prompt by prompt."""
    settings = ctx.settings
    options = options_for(request, settings)
    prompts, n = request.prompts(), request.choices_per_prompt
    check_choices(prompts, n, settings)
    if request.stream:
        await check_fits(ctx, prompts, options)
        return await stream_response(ctx, CompletionChunks(), prompts, options, request.include_usage, n)
    answers, usages, version = await answer_all(ctx, prompts, options, n)
    return Completion(
        id=new_id("cmpl"),
        created=int(time.time()),
        model=settings.model_name,
        choices=[
            {
                "index": k,
                "text": a.text,
                "finish_reason": u[2],
                "logprobs": inference.completion_logprobs(a.logprobs),
                "serac": serac_info(a, version),
            }
            for k, (a, u) in enumerate(zip(answers, usages))
        ],
        usage=_total_usage(usages, n),
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


def _close_all(iterators: list[Iterator[str]]) -> None:
    for pieces in iterators:
        with contextlib.suppress(ValueError):  # a worker is inside next(): it ends with the generation
            pieces.close()  # type: ignore[attr-defined]


async def stream_response(
    ctx: Serving,
    chunk: Chunks,
    prompts: list[Prompt],
    options: GenerationOptions,
    include_usage: bool,
    n: int = 1,
) -> StreamingResponse:
    """Choices one after another (prompt-major, ``n`` per prompt), each streamed as generated.
    The generation stops after its current token when the client disconnects or the request's
    time limit passes (then an in-band error event ends the stream)."""
    editor, settings, metrics = ctx.editor, ctx.settings, ctx.metrics
    per_choice = inference.choice_options(options, n)
    ctx.admission.open_stream()
    stop, timed_out = threading.Event(), threading.Event()
    loop = asyncio.get_running_loop()
    timer = loop.call_later(settings.request_timeout_s, lambda: (timed_out.set(), stop.set()))
    current: list[Iterator[str]] = []
    finished: list[bool] = []

    def finish() -> None:
        """Once, whatever ended the stream: stop any generation and give the slot back."""
        if finished:
            return
        finished.append(True)
        stop.set()
        timer.cancel()
        watcher.cancel()
        if current:  # closing joins the generation thread: off the event loop
            loop.run_in_executor(None, _close_all, list(current))
        current.clear()
        ctx.admission.close_stream()

    # A disconnect ends the stream at once, without waiting for the next piece to fail to send.
    watcher = asyncio.ensure_future(until_disconnected(ctx.request))
    watcher.add_done_callback(lambda task: task.cancelled() or finish())

    try:
        # Route and produce the first piece of the first prompt before answering, so an error is a
        # proper 4xx and not a broken stream.
        first = await run_in_threadpool(inference.stream_answer, editor, prompts[0], per_choice[0], stop)
    except BaseException:
        finish()
        raise
    base = {"id": new_id(chunk.prefix), "created": int(time.time()), "model": settings.model_name}

    async def events() -> AsyncIterator[str]:
        usage = [0, 0]
        try:
            for index in range(len(prompts) * n):
                prompt, choice_options = prompts[index // n], per_choice[index % n]
                if index == 0:
                    answer, pieces = first
                else:
                    answer, pieces = await run_in_threadpool(
                        inference.stream_answer, editor, prompt, choice_options, stop
                    )
                current[:] = [pieces]
                info = serac_info(answer, await run_in_threadpool(lambda: editor.version)).model_dump()
                yield _sse(chunk(base, index, info, None, None, True))
                text = ""
                async for piece in iterate_in_threadpool(pieces):
                    text += piece
                    yield _sse(chunk(base, index, info, piece, None, False))
                if timed_out.is_set():
                    raise ctx.admission.timed_out()
                prompt_tokens, completion_tokens, finish_reason = await run_in_threadpool(
                    inference.usage_of, editor, answer, prompt, text, options
                )
                usage[0] += prompt_tokens if index % n == 0 else 0
                usage[1] += completion_tokens
                record(metrics, [answer])
                yield _sse(chunk(base, index, info, None, finish_reason, False))
            if include_usage:
                yield _sse({**base, "object": chunk.object_name, "choices": [], "usage": _usage(*usage)})
        except Exception as exc:
            api = classify(exc)
            if api is None:
                logger.exception("error while streaming")
                api = APIError(500, "internal server error while streaming; the server log has the details")
            yield _sse(error_body(api.status, api.message, api.code, api.param))
        finally:
            finish()
        yield "data: [DONE]\n\n"

    current.append(first[1])
    return StreamingResponse(
        events(),
        media_type="text/event-stream",
        headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
    )
