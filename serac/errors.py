"""Project exceptions.

Every message says what was received, what is valid, and what to do, so a caller can act on it
without reading our source. Subclasses also derive from the matching builtin so generic
``except ValueError`` code keeps working.
"""

from __future__ import annotations


class SeracError(Exception):
    """Base class for every error serac raises on purpose."""


class EditValidationError(SeracError, ValueError):
    """An edit's input, target or metadata is unusable (empty, too long, not text)."""


class EditNotFoundError(SeracError, KeyError):
    """No edit with the given id exists in the store."""

    def __str__(self) -> str:  # KeyError would quote the whole message
        return str(self.args[0]) if self.args else "edit not found"


class VersionNotFoundError(SeracError, ValueError):
    """A rollback asked for a store version that was never created."""


class StoreError(SeracError, RuntimeError):
    """The edit store's database cannot be opened, read or written."""

    sqlite_error: str | None = None  # SQLite's error name (e.g. SQLITE_FULL) when SQLite raised it


class StoreLockedError(StoreError):
    """Another process holds a write lock on the store for longer than the busy timeout."""


class StoreUnavailableError(StoreError):
    """The store's database server cannot be reached (down, wrong address, refused login)."""


class StoreCorruptError(StoreError):
    """The store file is not a serac database, or its contents fail an integrity check."""


class ModelNotAvailableError(SeracError, RuntimeError):
    """A model could not be located or loaded (missing package, bad path, unsupported type)."""


class MissingExtraError(SeracError, ImportError):
    """An optional dependency is not installed; the message names the extra that brings it."""


class ConfigError(SeracError, ValueError):
    """A configuration value or file is invalid."""


class DataError(SeracError, ValueError):
    """A dataset file is missing or malformed."""


class PromptTooLongError(SeracError, ValueError):
    """A prompt plus the requested new tokens does not fit the model's context window."""


class UnsupportedOptionError(SeracError, ValueError):
    """A request asks for something the model in use cannot do (e.g. log-probs from a callable)."""
