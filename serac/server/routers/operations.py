"""Operations: liveness/readiness (no key) and Prometheus metrics (read key)."""

# No `from __future__ import annotations`: FastAPI reads these signatures at runtime.
import os
import shutil
import stat
import time
from pathlib import Path
from typing import Any

from fastapi import APIRouter
from fastapi.responses import JSONResponse, PlainTextResponse
from starlette.concurrency import run_in_threadpool

from serac.errors import StoreError
from serac.server.dependencies import READ, KeyCheckedRoute, AppMetrics, Editor, Settings
from serac.server.errors import ERRORS, RETRY_AFTER_S
from serac.server.metrics import CONTENT_TYPE
from serac.server.schemas import Health

router = APIRouter(tags=["operations"], route_class=KeyCheckedRoute)

RECENT_WRITE_FAILURE_S = 60  # a failed write keeps /healthz unready this long, unless a write works


def store_problems(store: Any, min_free_bytes: int) -> list[str]:
    """What keeps the store from taking writes now: a read-only file or file system, a nearly full
    disk, or a write that just failed. Empty when ready. Messages name no path."""
    problems = []
    failure = getattr(store, "last_write_error", None)
    if failure is not None and time.time() - failure[0] < RECENT_WRITE_FAILURE_S:
        problems.append(f"the last store write failed ({failure[1]})")
    path = getattr(store, "path", None)
    if not path or path == ":memory:":
        return problems
    folder = Path(path).parent
    try:
        mode = os.stat(path).st_mode
        read_only_fs = bool(os.statvfs(folder).f_flag & os.ST_RDONLY)
        free = shutil.disk_usage(folder).free
    except OSError as exc:
        return [*problems, f"the store file cannot be checked ({exc.strerror or type(exc).__name__})"]
    writable_mode = bool(mode & (stat.S_IWUSR | stat.S_IWGRP | stat.S_IWOTH))
    if read_only_fs or not writable_mode or not os.access(path, os.W_OK):
        problems.append("the store is read-only")
    if free < min_free_bytes:
        problems.append(f"the store's disk is nearly full ({free // 2**20} MiB free)")
    return problems


@router.get(
    "/healthz",
    response_model=Health,
    responses={503: {"model": Health, "description": "Not ready: the store cannot take writes"}},
)
async def healthz(editor: Editor, settings: Settings) -> Any:
    """Liveness and readiness: the store answers and can take writes. No key needed."""

    def read_state() -> dict[str, Any]:
        body: dict[str, Any] = {"model": settings.model_name}
        problems = store_problems(editor.store, settings.min_free_disk_mb * 2**20)
        try:
            body.update(version=editor.store.version, edits=editor.store.count())
        except StoreError as exc:
            problems.append(f"the store cannot be read ({exc.sqlite_error or type(exc).__name__})")
        return {**body, "status": "unavailable" if problems else "ok", "problems": problems}

    body = await run_in_threadpool(read_state)
    if body["problems"]:
        return JSONResponse(body, status_code=503, headers={"Retry-After": str(RETRY_AFTER_S)})
    return body


@router.get("/metrics", response_class=PlainTextResponse, responses=ERRORS, dependencies=READ)
async def prometheus(editor: Editor, metrics: AppMetrics) -> PlainTextResponse:
    """Prometheus text format: requests, latency histograms, in-scope share, edit count."""

    def read_state() -> tuple[int, int]:
        return editor.store.count(), editor.store.version

    count, version = await run_in_threadpool(read_state)
    return PlainTextResponse(metrics.render(count, version), media_type=CONTENT_TYPE)
