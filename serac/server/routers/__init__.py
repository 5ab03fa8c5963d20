"""The API's routers, one per concern; ``serac.server.app.create_app`` mounts them."""

from serac.server.routers import console, edits, inference, operations

__all__ = ["console", "edits", "inference", "operations"]
