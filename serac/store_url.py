"""open_store: one place that turns a store location into a store, so the CLI, the server and the
library agree on what a ``--store`` value means.

- ``postgresql://...`` / ``postgres://...``: the shared PostgreSQL store (serac/postgres_store.py);
- ``sqlite:///path/edits.db`` or a plain path: the SQLite store file (created if missing);
- ``:memory:`` or None: a throwaway in-memory SQLite store.

Any other ``scheme://`` is refused rather than taken for a file name (a PostgreSQL URL used to
become a local SQLite file under a directory named ``postgresql:``).
"""

from __future__ import annotations

import re
from pathlib import Path

from serac.errors import ConfigError
from serac.postgres_store import is_postgres_url
from serac.store import EditStore, EditStoreProtocol

_SCHEME = re.compile(r"^([A-Za-z][A-Za-z0-9+.-]*):/")


def open_store(target: str | Path | EditStoreProtocol | None = None) -> EditStoreProtocol:
    """A store for ``target``: a URL or path as above, or an already open store (returned as is)."""
    if target is None:
        return EditStore(":memory:")
    if not isinstance(target, (str, Path)):
        return target
    text = str(target)
    if is_postgres_url(text):
        from serac.postgres_store import PostgresEditStore

        return PostgresEditStore(text)
    match = _SCHEME.match(text)
    if match and len(match.group(1)) > 1:  # "C:/..." is a Windows drive, not a scheme
        scheme = match.group(1).lower()
        if scheme in ("postgresql", "postgres"):  # Path("postgresql://h/db") collapses the "//"
            raise ConfigError(
                f"{scheme}: store URLs need '//' after the scheme (postgresql://USER@HOST/DB); pass the URL "
                "as a string, not a pathlib.Path, which merges the slashes"
            )
        if scheme == "sqlite" and text.startswith("sqlite:///"):
            return EditStore(text[len("sqlite://") :])
        raise ConfigError(
            f"unknown edit store URL scheme {scheme!r}; use postgresql://USER@HOST/DB for PostgreSQL, "
            "sqlite:///PATH or a file path for SQLite"
        )
    return EditStore(target)
