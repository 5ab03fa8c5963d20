"""HTTP server: OpenAI-compatible inference over an edited model, edit management, auth, metrics.
``create_app(editor, settings)`` builds the FastAPI app; ``serac serve`` runs it with uvicorn.

Names load on first use, so ``serac --help`` and ``serac.server.cli`` do not import FastAPI.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from serac.extras import require_extra
from serac.lazy import lazy_getattr

require_extra("server", "the HTTP server (serac.server, `serac serve`)")

_EXPORTS = {
    "create_app": "serac.server.app",
    "KeyRing": "serac.server.auth",
    "Role": "serac.server.auth",
    "ServerSettings": "serac.server.settings",
}
__all__ = ["KeyRing", "Role", "ServerSettings", "create_app"]


__getattr__ = lazy_getattr(__name__, _EXPORTS)


if TYPE_CHECKING:
    from serac.server.app import create_app
    from serac.server.auth import KeyRing, Role
    from serac.server.settings import ServerSettings
