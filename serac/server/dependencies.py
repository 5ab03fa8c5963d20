"""FastAPI dependencies: the shared objects on ``app.state`` and the API-key check.

``create_app`` puts one editor, its settings, metrics and micro-batcher on ``app.state``; routers
read them through these dependencies, so a router module holds no state of its own and any app
(tests, extensions such as another router) can mount it.
"""

# No `from __future__ import annotations`: FastAPI reads these signatures at runtime.
from typing import Annotated, Any, Callable, Coroutine

from fastapi import Depends, Request, Response
from fastapi.params import Depends as DependsMarker
from fastapi.routing import APIRoute
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from serac.editor import EditedModel
from serac.server.admission import Admission
from serac.server.auth import Role
from serac.server.batching import MicroBatcher
from serac.server.errors import APIError
from serac.server.metrics import Metrics
from serac.server.settings import ServerSettings


def get_editor(request: Request) -> EditedModel:
    return request.app.state.editor


def get_settings(request: Request) -> ServerSettings:
    return request.app.state.settings


def get_metrics(request: Request) -> Metrics:
    return request.app.state.metrics


def get_batcher(request: Request) -> MicroBatcher:
    return request.app.state.batcher


def get_admission(request: Request) -> Admission:
    return request.app.state.admission


Editor = Annotated[EditedModel, Depends(get_editor)]
Settings = Annotated[ServerSettings, Depends(get_settings)]
AppMetrics = Annotated[Metrics, Depends(get_metrics)]
Batcher = Annotated[MicroBatcher, Depends(get_batcher)]
Writes = Annotated[Admission, Depends(get_admission)]  # admission control, e.g. for edit writes

bearer = HTTPBearer(auto_error=False, description="An API key: `Authorization: Bearer KEY`.")


def check_key(settings: ServerSettings, credentials: HTTPAuthorizationCredentials | None, role: Role) -> None:
    """Raise 401 (no or wrong key) or 403 (a key whose role is too weak); no-op without keys."""
    if not settings.keys:
        return
    challenge = {"WWW-Authenticate": "Bearer"}
    if credentials is None:
        raise APIError(
            401, "missing API key; send `Authorization: Bearer KEY`", "missing_api_key", headers=challenge
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


def require(role: Role) -> DependsMarker:
    """A route dependency that lets only keys of ``role`` (or stronger) through."""

    def check(
        settings: Settings, credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)]
    ) -> None:
        check_key(settings, credentials, role)

    check.role = role  # type: ignore[attr-defined]  # read by KeyCheckedRoute
    return Depends(check)


class KeyCheckedRoute(APIRoute):
    """A route that checks the API key before FastAPI reads and validates the body, so a request
    without a valid key gets 401/403 whatever its body holds (FastAPI parses the body before it
    runs dependencies). Routers use it with ``APIRouter(route_class=KeyCheckedRoute)``."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()
        roles = [getattr(d.dependency, "role", None) for d in self.dependencies]
        role = next((r for r in roles if isinstance(r, Role)), None)
        if role is None:
            return handler

        async def checked(request: Request) -> Response:
            check_key(request.app.state.settings, await bearer(request), role)
            return await handler(request)

        return checked


READ = [require(Role.READ)]
WRITE = [require(Role.WRITE)]
