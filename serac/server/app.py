"""The HTTP app: OpenAI-compatible inference over an ``EditedModel``, edit management, operations.

``create_app(editor, settings)`` only assembles: it puts the editor, settings, metrics and the
micro-batcher on ``app.state``, installs the error handlers and middleware, and mounts one router
per concern (``serac.server.routers``: inference, edits, operations, console). When the editor's base
model is an OpenAI-compatible server, the ``gateway`` router replaces ``inference`` (out-of-scope
requests are relayed to that server as sent) and ``app.state.upstream`` holds the relay. Routes reach the shared
objects and the API-key check through ``serac.server.dependencies``.
"""

from __future__ import annotations

from contextlib import asynccontextmanager
from typing import AsyncIterator

from fastapi import FastAPI
from starlette.concurrency import run_in_threadpool

from serac.editor import EditedModel
from serac.follower import StoreFollower
from serac.server.admission import Admission
from serac.server.batching import MicroBatcher
from serac.server.errors import install_error_handlers
from serac.server.gateway import gateway_upstream
from serac.server.metrics import Metrics
from serac.server.middleware import LoopbackGuard, RequestGuard
from serac.server.redact import install_access_log_redaction
from serac.server.routers import console, edits, gateway, inference, operations
from serac.server.settings import ServerSettings


@asynccontextmanager
async def _lifespan(app: FastAPI) -> AsyncIterator[None]:
    install_access_log_redaction()
    await app.state.batcher.start()
    # A shared store (PostgreSQL) announces other replicas' writes: index them between requests.
    store = app.state.editor.store
    follower = StoreFollower(app.state.editor).start() if StoreFollower.supported(store) else None
    try:
        yield
    finally:
        if follower is not None:
            await run_in_threadpool(follower.stop)
        await app.state.batcher.close()
        if app.state.upstream is not None:
            await app.state.upstream.aclose()
        # the next start loads the index as it is now and applies no changes (the store stays open:
        # whoever built the editor owns it)
        await run_in_threadpool(app.state.editor.save_index)


def create_app(editor: EditedModel, settings: ServerSettings | None = None) -> FastAPI:
    settings = settings or ServerSettings()
    # The interactive docs load Swagger UI from a CDN: offered only when API keys guard the server
    # (without keys, a page from anywhere could run in a browser that can reach the loopback API).
    docs = bool(settings.keys)
    app = FastAPI(
        title="serac",
        summary="OpenAI-compatible inference over a SERAC-edited model, and its edit memory.",
        version="1",
        lifespan=_lifespan,
        docs_url="/docs" if docs else None,
        redoc_url=None,
    )
    # shared objects, read by the routers through serac.server.dependencies
    app.state.editor = editor
    app.state.settings = settings
    app.state.metrics = metrics = Metrics()
    app.state.batcher = MicroBatcher(
        editor.generate,
        max_batch_size=settings.max_batch_size,
        max_wait_s=settings.batch_wait_ms / 1000,
        on_batch=metrics.observe_batch,
    )
    app.state.admission = admission = Admission(settings, app.state.batcher, metrics)
    metrics.generations.set_function(lambda: app.state.batcher.running + admission.streams)
    app.state.upstream = gateway_upstream(editor.base)  # None: the base model runs in-process
    install_error_handlers(app)
    app.add_middleware(RequestGuard, metrics=metrics, max_body_bytes=settings.max_body_bytes)
    if not settings.keys:
        app.add_middleware(LoopbackGuard)  # added last: runs first
    answers = inference.router if app.state.upstream is None else gateway.router
    for router in (answers, edits.router, operations.router, console.router):
        app.include_router(router)
    return app
