"""Optional dependencies, grouped as the package's extras (see pyproject.toml).

The core (`pip install serac-edit`: library, edit store, `serac edit`/`ask`/`demo`) needs none of
them; each feature imports its own through :func:`require`, so a missing one is a one-line error
that names the extra to install, not a ModuleNotFoundError from deep inside.
"""

from __future__ import annotations

import importlib
import importlib.util
from types import ModuleType

from serac.errors import MissingExtraError

# extra -> the importable modules it brings (distribution names differ: vaderSentiment is `vadersentiment`)
EXTRAS: dict[str, tuple[str, ...]] = {
    "server": ("fastapi", "uvicorn"),
    "eval": ("matplotlib",),
    "train": ("matplotlib",),
    "tasks": ("matplotlib", "vaderSentiment"),
    "postgres": ("psycopg",),
}


def missing(module: str, extra: str, purpose: str) -> MissingExtraError:
    return MissingExtraError(f"{purpose} needs the optional package {module!r}, which is not installed: "
                             f"pip install 'serac-edit[{extra}]' (or 'serac-edit[all]')")


def require(module: str, extra: str, purpose: str) -> ModuleType:
    """Import ``module`` (from the ``extra`` extra) for ``purpose``, or raise MissingExtraError."""
    if extra not in EXTRAS:
        raise ValueError(f"unknown extra {extra!r}; extras: {', '.join(EXTRAS)}")
    try:
        return importlib.import_module(module)
    except ModuleNotFoundError as exc:
        top = module.split(".")[0]
        if exc.name is None or exc.name.split(".")[0] != top:
            raise  # the module is there but one of *its* imports is broken: show that
        raise missing(top, extra, purpose) from None


def require_extra(extra: str, purpose: str) -> None:
    """Check that every module of ``extra`` is importable, without importing any of them."""
    for module in EXTRAS[extra]:
        try:
            found = importlib.util.find_spec(module) is not None
        except ModuleNotFoundError:  # a finder that knows the module is absent may raise
            found = False
        if not found:
            raise missing(module, extra, purpose)
