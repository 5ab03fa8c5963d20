"""The web console: its page at ``/ui`` and the read-mostly JSON endpoints it needs beyond the edit API.

The page (``serac/server/console/static``) is plain HTML, JS and CSS served from the package, so it
works offline and needs no build step. It calls the same API as any client, with the same keys:
``/v1/edits`` to add, remove and roll back, and the endpoints below to explain routing (the scope's
top-k against the threshold), compare base and edited answers, show same-fact conflicts, search the
edits, read the version history, and check a bulk file row by row before anything is written.
"""

# No `from __future__ import annotations`: FastAPI reads these signatures at runtime.
from importlib.resources import files
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Query
from fastapi import Path as PathParam
from fastapi.responses import Response
from fastapi.security import HTTPAuthorizationCredentials
from pydantic import BaseModel, Field
from starlette.concurrency import run_in_threadpool

from serac.base import GenerationOptions
from serac.edit_files import read_edit_file
from serac.editor import EditedModel
from serac.edits import MAX_INPUT_CHARS, Edit
from serac.scope import Candidate, ScopeClassifier
from serac.server import inference
from serac.server.auth import Role
from serac.server.dependencies import READ, WRITE, Batcher, Editor, KeyCheckedRoute, Settings, bearer
from serac.server.errors import ERRORS, NOT_FOUND, APIError
from serac.server.routers.edits import edit_out
from serac.server.routers.inference import check_max_tokens
from serac.server.schemas import MAX_ID, EditOut, EditPage, Strict

router = APIRouter(route_class=KeyCheckedRoute)  # the key is checked before the body is read
SEARCH_COUNT_LIMIT = 10_000  # a search counts its matches up to here ("10,000+"): bounded cost at any size

# -- the page ----------------------------------------------------------------------------------------
# The page takes scripts, styles and data from this server only; the API key it holds cannot be sent
# elsewhere by injected markup, and no other site may frame it.
PAGE_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
        "connect-src 'self'; form-action 'none'; frame-ancestors 'none'; base-uri 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-cache",
}
STATIC = {  # the only files served: no path from the request ever reaches the file system
    "index.html": "text/html; charset=utf-8",
    "app.js": "text/javascript; charset=utf-8",
    "style.css": "text/css; charset=utf-8",
}


def _static(name: str) -> Response:
    content = files("serac.server.console").joinpath("static", name).read_bytes()
    return Response(content, media_type=STATIC[name], headers=PAGE_HEADERS)


@router.get("/ui", include_in_schema=False)
@router.get("/ui/", include_in_schema=False)
async def console_page() -> Response:
    """The console. No key is needed to load the page; it asks for one if the API does."""
    return _static("index.html")


@router.get("/ui/static/{name}", include_in_schema=False)
async def console_file(name: str) -> Response:
    if name not in STATIC or name == "index.html":
        raise APIError(404, f"no console file {name!r}", "not_found")
    return _static(name)


# -- schemas -----------------------------------------------------------------------------------------
class QuestionIn(Strict):
    question: str = Field(..., min_length=1, max_length=MAX_INPUT_CHARS, description="A question a user might ask.")


class AskIn(QuestionIn):
    max_tokens: int | None = Field(None, ge=1, le=MAX_ID, description="Upper bound on generated tokens.")


class ImportIn(Strict):
    format: Literal["csv", "jsonl"]
    content: str = Field(..., description="The file's text (CSV with a header row, or JSON Lines).")
    dry_run: bool = Field(True, description="Only check the rows; write nothing.")


class SessionOut(BaseModel):
    auth: bool = Field(..., description="Whether the server checks API keys (off: loopback only).")
    role: Literal["read", "write"] = Field(..., description="What the presented key (or no key, with auth off) may do.")
    model: str
    version: int
    count: int
    threshold: float
    top_k: int
    policy: str
    max_edits_per_request: int


class ConsolePage(EditPage):
    total_exact: bool = Field(
        True, description=f"False when a search matched more than {SEARCH_COUNT_LIMIT:,} edits: `total` is then a lower bound."
    )


class CandidateOut(BaseModel):
    edit: EditOut
    score: float
    above_threshold: bool


class ScopeOut(BaseModel):
    question: str
    in_scope: bool
    edit_id: int | None = Field(None, description="The edit that would answer, if any.")
    score: float | None = Field(None, description="The best score, the one compared with the threshold.")
    threshold: float
    top_k: int
    candidates: list[CandidateOut] = Field(..., description="The scope's top-k, highest score first.")
    version: int


class BaseAnswer(BaseModel):
    text: str


class EditedAnswer(BaseModel):
    text: str
    source: Literal["base", "counterfactual"]
    edit_id: int | None = None
    edit: EditOut | None = None
    score: float | None = None


class AskOut(BaseModel):
    question: str
    base: BaseAnswer
    edited: EditedAnswer
    threshold: float
    candidates: list[CandidateOut]
    version: int


class NeighbourOut(BaseModel):
    edit: EditOut
    score: float = Field(..., description="Cosine of this edit's key and the edit's key.")
    relation_similarity: float | None = Field(
        None, description="Cosine of the two inputs with their shared subject masked (None for the edit itself)."
    )
    same_fact: bool = Field(..., description="score >= key_threshold and the same-fact judge agrees (with the default "
                            "judge: relation_similarity >= same_fact_threshold; see scope.same_fact_by).")


class ConflictsOut(BaseModel):
    edit: EditOut
    policy: str
    key_threshold: float
    same_fact_threshold: float
    answering_edit_id: int | None = Field(None, description="The edit that answers the edit's own input.")
    answering_target: str | None = None
    neighbours: list[NeighbourOut]


class HistoryEdit(BaseModel):
    id: int
    op: Literal["add", "remove"]
    input: str
    target: str


class HistoryEntry(BaseModel):
    version: int
    created_at: float
    op: Literal["add", "remove", "rollback"]
    note: str | None = None
    added: int
    removed: int
    edits: list[HistoryEdit] = Field(..., description="A sample of the edits this version added or removed.")


class HistoryPage(BaseModel):
    data: list[HistoryEntry]
    total: int
    offset: int
    limit: int
    has_more: bool
    current: int


class RowProblem(BaseModel):
    row: int = Field(..., description="Line number in the file (1-based).")
    message: str


class ImportOut(BaseModel):
    rows: int
    valid: int
    errors: list[RowProblem]
    written: bool
    data: list[EditOut] = Field(default_factory=list, description="The stored edits, when written.")
    version: int


# -- scope helpers -------------------------------------------------------------------------------------
def routing_threshold(scope: ScopeClassifier) -> float:
    """The threshold the best score is compared with (the re-ranker's when there is one)."""
    return scope.reranker.threshold if scope.reranker is not None else scope.threshold


def _candidates(candidates: tuple[Candidate, ...], threshold: float) -> list[dict[str, Any]]:
    ranked = sorted(candidates, key=lambda c: -c.score)
    return [{"edit": edit_out(c.edit), "score": c.score, "above_threshold": c.score >= threshold} for c in ranked]


def _question_prompt(question: str) -> list[dict[str, str]]:
    return [{"role": "user", "content": question}]


# -- endpoints -----------------------------------------------------------------------------------------
Offset = Annotated[int, Query(ge=0, le=MAX_ID, description="Items to skip.")]


@router.get("/v1/console/session", response_model=SessionOut, responses=ERRORS, dependencies=READ, tags=["console"])
async def session(
    editor: Editor,
    settings: Settings,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)],
) -> Any:
    """Who the console is talking as (the key's role; with auth off, loopback clients may write)
    and the state it shows in its header."""
    role = Role.WRITE if not settings.keys else settings.keys.role_of(credentials.credentials)

    def read_state() -> tuple[int, int]:
        return editor.store.version, editor.store.count()

    version, count = await run_in_threadpool(read_state)
    scope = editor.scope
    return {
        "auth": bool(settings.keys),
        "role": role.value,
        "model": settings.model_name,
        "version": version,
        "count": count,
        "threshold": routing_threshold(scope),
        "top_k": scope.top_k,
        "policy": scope.conflicts,
        "max_edits_per_request": settings.max_edits_per_request,
    }


@router.get("/v1/console/edits", response_model=ConsolePage, responses=ERRORS, dependencies=READ, tags=["console"])
async def search_edits(
    editor: Editor,
    settings: Settings,
    q: Annotated[str, Query(max_length=500, description="Words to find in input, target or metadata.")] = "",
    offset: Offset = 0,
    limit: Annotated[int, Query(ge=1, le=MAX_ID, description="Page size.")] = 20,
) -> Any:
    """Live edits newest first, optionally only those matching every word of `q` (the last word
    as a prefix). Served by the store's full-text index, so a page costs the same at 100,000 edits."""
    if limit > settings.max_page_size:
        raise APIError(
            400, f"limit is {limit}; this server returns at most {settings.max_page_size} per page", "invalid_request", "limit"
        )

    def page() -> tuple[list[Edit], int, bool, int]:
        store = editor.store
        if q.strip():
            found = store.search(q, offset, limit, count_up_to=SEARCH_COUNT_LIMIT)
            return found.edits, found.total, found.exact, store.version
        return store.list(offset, limit, newest_first=True), store.count(), True, store.version

    found, total, exact, version = await run_in_threadpool(page)
    return {
        "data": [edit_out(e) for e in found],
        "total": total,
        "total_exact": exact,
        "offset": offset,
        "limit": limit,
        "has_more": offset + len(found) < total or (not exact and len(found) == limit),
        "version": version,
    }


@router.post("/v1/console/scope", response_model=ScopeOut, responses=ERRORS, dependencies=READ, tags=["console"])
async def explain_scope(body: QuestionIn, editor: Editor) -> Any:
    """Which edits would fire for this question: the scope's top-k with scores, the threshold, and
    the edit that would answer (after the conflict policy). Nothing is generated."""

    def decide() -> tuple[Any, int]:
        return editor.route([_question_prompt(body.question)])[0], editor.version

    decision, version = await run_in_threadpool(decide)
    threshold = routing_threshold(editor.scope)
    return {
        "question": body.question,
        "in_scope": decision.in_scope,
        "edit_id": decision.edit.id if decision.edit else None,
        "score": decision.score,
        "threshold": threshold,
        "top_k": editor.scope.top_k,
        "candidates": _candidates(decision.candidates, threshold),
        "version": version,
    }


@router.post("/v1/console/ask", response_model=AskOut, responses=ERRORS, dependencies=READ, tags=["console"])
async def ask(body: AskIn, editor: Editor, settings: Settings, batcher: Batcher) -> Any:
    """The edited model's answer with its provenance, beside the base model's answer to the same
    question. Out of scope the edited answer *is* the base model's (the router passes the prompt
    through unchanged), so the base model runs once; in scope it runs as well, for the comparison."""
    check_max_tokens(body.max_tokens, settings)
    prompt = _question_prompt(body.question)
    options = GenerationOptions(max_new_tokens=body.max_tokens)
    await run_in_threadpool(inference.check_fits, editor, [prompt], options)
    (answer,) = await batcher.submit_many([prompt], options)
    if answer.source == "counterfactual":
        base_text = (await run_in_threadpool(editor.base.generate, [prompt], options))[0]
    else:
        base_text = answer.text
    threshold = routing_threshold(editor.scope)
    return {
        "question": body.question,
        "base": {"text": base_text},
        "edited": {
            "text": answer.text,
            "source": answer.source,
            "edit_id": answer.edit_id,
            "edit": edit_out(answer.edit) if answer.edit else None,
            "score": answer.score,
        },
        "threshold": threshold,
        "candidates": _candidates(answer.candidates, threshold),
        "version": await run_in_threadpool(lambda: editor.version),
    }


EditId = Annotated[int, PathParam(ge=1, le=MAX_ID, description="An edit id from GET /v1/edits.")]


@router.get(
    "/v1/console/edits/{edit_id}/conflicts",
    response_model=ConflictsOut,
    responses={**ERRORS, **NOT_FOUND},
    dependencies=READ,
    tags=["console"],
)
async def conflicts(edit_id: EditId, editor: Editor) -> Any:
    """The stored edits nearest this edit (its input routed as a question: the same top-k and
    conflict policy as any request), which of them the scope treats as the same fact (keys in scope
    of each other and the same relation, as `ScopeClassifier` decides for newest-wins), and which
    one answers."""
    return await run_in_threadpool(_conflicts, editor, edit_id)


def _conflicts(editor: EditedModel, edit_id: int) -> dict[str, Any]:
    scope = editor.scope
    edit = editor.store.get(edit_id)
    decision = editor.route([edit.input])[0]
    others = [c.edit for c in sorted(decision.candidates, key=lambda c: -c.score) if c.edit.id != edit.id]
    # key cosines from the stored vectors (the scores above are a re-ranker's when there is one)
    vectors = editor.store.get_embeddings([edit.id] + [o.id for o in others], scope.encoder.id)
    keys = {c.edit.id: c.score for c in decision.candidates}  # the same, without a re-ranker
    keys.update({o.id: float(vectors[o.id] @ vectors[edit.id]) for o in others if o.id in vectors and edit.id in vectors})
    relations = dict(zip((o.id for o in others), scope.same_fact.similarities(edit, others) if others else []))
    near = [o for o in others if keys[o.id] >= scope.threshold]  # the judge decides only between these
    judged = dict(zip((o.id for o in near), scope.same_fact.same_fact(edit, near) if near else []))
    same_threshold = scope.same_fact.threshold
    neighbours = [{"edit": edit_out(edit), "score": 1.0, "relation_similarity": None, "same_fact": True}]
    for other in others:
        key = keys[other.id]
        neighbours.append(
            {
                "edit": edit_out(other),
                "score": key,
                "relation_similarity": relations[other.id],
                "same_fact": judged.get(other.id, False),
            }
        )
    answering = decision.edit
    return {
        "edit": edit_out(edit),
        "policy": scope.conflicts,
        "key_threshold": scope.threshold,
        "same_fact_threshold": same_threshold,
        "answering_edit_id": answering.id if answering else None,
        "answering_target": answering.target if answering else None,
        "neighbours": neighbours,
    }


@router.get("/v1/console/history", response_model=HistoryPage, responses=ERRORS, dependencies=READ, tags=["console"])
async def history(
    editor: Editor,
    offset: Offset = 0,
    limit: Annotated[int, Query(ge=1, le=100, description="Versions per page.")] = 20,
) -> Any:
    """The store's versions newest first, each with the edits it added and removed (from the event
    log; a sample of five for big batches)."""

    def read() -> tuple[list[dict[str, Any]], int]:
        return editor.store.history(offset, limit, sample=5), editor.store.version

    entries, current = await run_in_threadpool(read)
    return {
        "data": entries,
        "total": current,
        "offset": offset,
        "limit": limit,
        "has_more": offset + len(entries) < current,
        "current": current,
    }


@router.post("/v1/console/import", response_model=ImportOut, responses=ERRORS, dependencies=WRITE, tags=["console"])
async def import_edits(body: ImportIn, editor: Editor, settings: Settings) -> Any:
    """Bulk add from a CSV or JSON Lines file's text. `dry_run` (the default) checks every row and
    reports each problem by line; without it, the rows are written as one version only if every
    row is valid (else 400 and nothing is written)."""
    parsed = await run_in_threadpool(read_edit_file, body.content, body.format)
    if parsed.rows > settings.max_edits_per_request:
        raise APIError(
            400,
            f"the file has {parsed.rows} rows; this server takes at most {settings.max_edits_per_request} "
            "edits per request; split the file",
            "invalid_request",
            "content",
        )
    report = {
        "rows": parsed.rows,
        "valid": len(parsed.requests),
        "errors": [{"row": e.row, "message": e.message} for e in parsed.errors],
        "written": False,
        "data": [],
    }
    if body.dry_run:
        return {**report, "version": await run_in_threadpool(lambda: editor.version)}
    if parsed.errors:
        first = parsed.errors[0]
        raise APIError(
            400,
            f"{len(parsed.errors)} of {parsed.rows} rows have errors (first: line {first.row}: {first.message}); "
            "nothing was written; fix them (a dry run lists them all) and upload again",
            "invalid_import",
            "content",
        )
    if not parsed.requests:
        raise APIError(400, "the file holds no edits; nothing was written", "invalid_import", "content")

    def write() -> tuple[list[Edit], int]:
        return editor.add_many(parsed.requests), editor.version

    stored, version = await run_in_threadpool(write)
    return {**report, "written": True, "data": [edit_out(e) for e in stored], "version": version}
