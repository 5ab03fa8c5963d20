"""serac: memory-based model editing (SERAC) as a library, CLI and server.

Names are imported lazily on first use, so `serac edit list` and other store-only commands do
not pay for importing torch and transformers.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from serac.lazy import lazy_getattr

__version__ = "0.1.0"

_EXPORTS: dict[str, str] = {
    "Answer": "serac.editor",
    "EditedModel": "serac.editor",
    "BaseModelConfig": "serac.config",
    "CounterfactualConfig": "serac.config",
    "ScopeConfig": "serac.config",
    "SeracConfig": "serac.config",
    "CallableModel": "serac.base",
    "GenerationOptions": "serac.base",
    "HFCausalLM": "serac.base",
    "HFSeq2SeqLM": "serac.base",
    "load_text_model": "serac.base",
    "CounterfactualModel": "serac.counterfactual",
    "LMCounterfactual": "serac.counterfactual",
    "Edit": "serac.edits",
    "EditRequest": "serac.edits",
    "validate_edit": "serac.edits",
    "ScopeClassifier": "serac.scope",
    "ScopeDecision": "serac.scope",
    "ScopeIndex": "serac.scope",
    "SentenceEncoder": "serac.scope",
    "EditStore": "serac.store",
    "PostgresEditStore": "serac.postgres_store",
    "open_store": "serac.store_url",
    **{
        name: "serac.errors"
        for name in (
            "ConfigError",
            "DataError",
            "EditNotFoundError",
            "EditValidationError",
            "MissingExtraError",
            "ModelNotAvailableError",
            "PromptTooLongError",
            "SeracError",
            "StoreCorruptError",
            "StoreError",
            "StoreLockedError",
            "StoreUnavailableError",
            "VersionNotFoundError",
        )
    },
}

__all__ = sorted(_EXPORTS)


__getattr__ = lazy_getattr(__name__, _EXPORTS)


def __dir__() -> list[str]:
    return sorted([*globals(), *__all__])


if TYPE_CHECKING:  # static analysers and IDEs see the real names
    from serac.base import CallableModel, GenerationOptions, HFCausalLM, HFSeq2SeqLM, load_text_model
    from serac.config import BaseModelConfig, CounterfactualConfig, ScopeConfig, SeracConfig
    from serac.counterfactual import CounterfactualModel, LMCounterfactual
    from serac.editor import Answer, EditedModel
    from serac.edits import Edit, EditRequest, validate_edit
    from serac.errors import (
        ConfigError,
        DataError,
        EditNotFoundError,
        EditValidationError,
        MissingExtraError,
        ModelNotAvailableError,
        PromptTooLongError,
        SeracError,
        StoreCorruptError,
        StoreError,
        StoreLockedError,
        StoreUnavailableError,
        VersionNotFoundError,
    )
    from serac.postgres_store import PostgresEditStore
    from serac.scope import ScopeClassifier, ScopeDecision, ScopeIndex, SentenceEncoder
    from serac.store import EditStore
    from serac.store_url import open_store
