"""Lazy package attributes: a package names what it exports and where; each loads on first use.

Why: ``serac``, ``serac.eval`` and ``serac.server`` re-export names whose modules import torch or
FastAPI, and importing the package must stay cheap for store-only commands (``serac edit list``).
"""

from __future__ import annotations

import importlib
import sys
from typing import Any, Callable


def lazy_getattr(package: str, exports: dict[str, str]) -> Callable[[str], Any]:
    """A module ``__getattr__`` for ``package`` that imports ``exports[name]`` on first access and
    caches the value in the package's namespace."""

    def __getattr__(name: str) -> Any:
        module = exports.get(name)
        if module is None:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        value = getattr(importlib.import_module(module), name)
        setattr(sys.modules[package], name, value)
        return value

    return __getattr__
