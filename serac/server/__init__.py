"""HTTP server: OpenAI-compatible inference over an edited model, edit management, auth, metrics.

``create_app(editor, settings)`` builds the FastAPI app; ``serac serve`` runs it with uvicorn.
"""

from serac.server.app import create_app
from serac.server.auth import KeyRing, Role
from serac.server.settings import ServerSettings

__all__ = ["KeyRing", "Role", "ServerSettings", "create_app"]
