"""Operations: liveness/readiness (no key) and Prometheus metrics (read key)."""

# No `from __future__ import annotations`: FastAPI reads these signatures at runtime.
from typing import Any

from fastapi import APIRouter
from fastapi.responses import PlainTextResponse
from starlette.concurrency import run_in_threadpool

from serac.server.dependencies import READ, AppMetrics, Editor, Settings
from serac.server.errors import ERRORS
from serac.server.metrics import CONTENT_TYPE
from serac.server.schemas import Health

router = APIRouter(tags=["operations"])


@router.get("/healthz", response_model=Health)
async def healthz(editor: Editor, settings: Settings) -> Any:
    """Liveness and readiness: the store answers. No key needed."""

    def read_state() -> tuple[int, int]:
        return editor.store.version, editor.store.count()

    version, count = await run_in_threadpool(read_state)
    return {"status": "ok", "model": settings.model_name, "version": version, "edits": count}


@router.get("/metrics", response_class=PlainTextResponse, responses=ERRORS, dependencies=READ)
async def prometheus(editor: Editor, metrics: AppMetrics) -> PlainTextResponse:
    """Prometheus text format: requests, latency histograms, in-scope share, edit count."""

    def read_state() -> tuple[int, int]:
        return editor.store.count(), editor.store.version

    count, version = await run_in_threadpool(read_state)
    return PlainTextResponse(metrics.render(count, version), media_type=CONTENT_TYPE)
