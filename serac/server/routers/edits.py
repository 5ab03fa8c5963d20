"""Edit management: add (one or a batch, atomically), list, get, delete, roll back, version.

A write is answered only after its store transaction committed and the scope index took it, so the
very next request routes with it.
"""

# No `from __future__ import annotations`: FastAPI reads these signatures at runtime.
from typing import Annotated, Any, Union

from fastapi import APIRouter, Body, Query, Request
from fastapi import Path as PathParam
from pydantic import Discriminator, Tag
from starlette.concurrency import run_in_threadpool

from serac.edits import Edit
from serac.server.dependencies import READ, KeyCheckedRoute, Writes, WRITE, Editor, Settings
from serac.server.errors import ERRORS, NOT_FOUND, APIError
from serac.server.schemas import (
    MAX_ID,
    EditBatchIn,
    EditCreated,
    EditDeleted,
    EditIn,
    EditOut,
    EditPage,
    RollbackIn,
    RollbackOut,
    StoreVersion,
)

router = APIRouter(prefix="/v1/edits", tags=["edits"], route_class=KeyCheckedRoute)

EditsBody = Annotated[
    Union[Annotated[EditIn, Tag("one")], Annotated[EditBatchIn, Tag("many")]],
    Discriminator(lambda v: "many" if isinstance(v, dict) and "edits" in v else "one"),
]
EditId = Annotated[int, PathParam(ge=1, le=MAX_ID, description="An edit id from GET /v1/edits.")]


def edit_out(edit: Edit) -> dict[str, Any]:
    return {**edit.to_dict(), "object": "edit"}


@router.post("", status_code=201, response_model=EditCreated, responses=ERRORS, dependencies=WRITE)
async def add_edits(
    body: Annotated[EditsBody, Body()], editor: Editor, settings: Settings, admission: Writes
) -> Any:
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

    with admission.writing():
        stored, version = await run_in_threadpool(add)
    return {"data": [edit_out(e) for e in stored], "version": version}


@router.get("", response_model=EditPage, responses=ERRORS, dependencies=READ)
async def list_edits(
    editor: Editor,
    settings: Settings,
    offset: Annotated[int, Query(ge=0, le=MAX_ID, description="Live edits to skip (oldest first).")] = 0,
    after_id: Annotated[
        int | None,
        Query(ge=0, le=MAX_ID, description="Cursor: only edits with a larger id (the previous page's "
              "next_after_id); costs the same however deep the page, unlike offset."),
    ] = None,
    limit: Annotated[
        int,
        Query(ge=1, le=MAX_ID, description="Page size, at most the server's max_page_size (default 1000)."),
    ] = 100,
) -> Any:
    if limit > settings.max_page_size:
        raise APIError(
            400,
            f"invalid value for 'limit': this server returns at most {settings.max_page_size} edits per page "
            f"(got {limit}); page with offset",
            "invalid_request",
            "limit",
        )

    def page() -> tuple[list[Edit], int, int]:
        store = editor.store
        return store.list(offset, limit + 1, after_id=after_id), store.count(), store.version

    edits, total, version = await run_in_threadpool(page)
    has_more = len(edits) > limit  # one row past the page says whether another page exists
    edits = edits[:limit]
    return {
        "data": [edit_out(e) for e in edits],
        "total": total,
        "offset": offset,
        "limit": limit,
        "has_more": has_more,
        "next_after_id": edits[-1].id if has_more else None,
        "version": version,
    }


@router.get("/version", response_model=StoreVersion, responses=ERRORS, dependencies=READ)
async def store_version(editor: Editor) -> Any:
    def read_version() -> dict[str, int]:
        return {"version": editor.store.version, "count": editor.store.count()}

    return await run_in_threadpool(read_version)


@router.post("/rollback", response_model=RollbackOut, responses={**ERRORS, **NOT_FOUND}, dependencies=WRITE)
async def rollback(body: RollbackIn, editor: Editor, admission: Writes) -> Any:
    """Make the live edits what they were at `version` (recorded as a new version)."""

    def run() -> dict[str, int]:
        new_version = editor.rollback(body.version)
        return {"rolled_back_to": body.version, "version": new_version, "count": editor.store.count()}

    with admission.writing():
        return await run_in_threadpool(run)


@router.api_route("/version", methods=["POST", "PUT", "PATCH", "DELETE"], include_in_schema=False)
@router.api_route("/rollback", methods=["GET", "HEAD", "PUT", "PATCH", "DELETE"], include_in_schema=False)
async def wrong_method(request: Request) -> None:
    """`/{edit_id}` would otherwise take these paths as a (bad) edit id and answer 400."""
    allowed = "GET" if request.url.path.endswith("/version") else "POST"
    raise APIError(
        405,
        f"method {request.method} is not allowed on {request.url.path}; use {allowed}",
        "method_not_allowed",
        headers={"Allow": allowed},
    )


@router.get("/{edit_id}", response_model=EditOut, responses={**ERRORS, **NOT_FOUND}, dependencies=READ)
async def get_edit(edit_id: EditId, editor: Editor) -> Any:
    return edit_out(await run_in_threadpool(editor.store.get, edit_id))


@router.delete(
    "/{edit_id}", response_model=EditDeleted, responses={**ERRORS, **NOT_FOUND}, dependencies=WRITE
)
async def delete_edit(edit_id: EditId, editor: Editor, admission: Writes) -> Any:
    """Remove a live edit (undo with POST /v1/edits/rollback)."""
    with admission.writing():
        return {"id": edit_id, "version": await run_in_threadpool(editor.remove, edit_id)}
