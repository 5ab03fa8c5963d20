"""serac: memory-based model editing (SERAC) as a library, CLI and server."""

from serac.base import CallableModel, GenerationOptions, HFCausalLM, HFSeq2SeqLM, load_text_model
from serac.config import BaseModelConfig, CounterfactualConfig, ScopeConfig, SeracConfig
from serac.counterfactual import CounterfactualModel, LMCounterfactual
from serac.edits import Edit, EditRequest, validate_edit
from serac.editor import Answer, EditedModel
from serac.errors import (
    ConfigError,
    DataError,
    EditNotFoundError,
    EditValidationError,
    ModelNotAvailableError,
    PromptTooLongError,
    SeracError,
    StoreCorruptError,
    StoreError,
    StoreLockedError,
    VersionNotFoundError,
)
from serac.scope import ScopeClassifier, ScopeDecision, ScopeIndex, SentenceEncoder
from serac.store import EditStore

__version__ = "0.1.0"

__all__ = [
    "Answer",
    "BaseModelConfig",
    "CallableModel",
    "ConfigError",
    "CounterfactualConfig",
    "CounterfactualModel",
    "DataError",
    "Edit",
    "EditNotFoundError",
    "EditRequest",
    "EditStore",
    "EditValidationError",
    "EditedModel",
    "GenerationOptions",
    "HFCausalLM",
    "HFSeq2SeqLM",
    "LMCounterfactual",
    "ModelNotAvailableError",
    "PromptTooLongError",
    "ScopeClassifier",
    "ScopeConfig",
    "ScopeDecision",
    "ScopeIndex",
    "SentenceEncoder",
    "SeracConfig",
    "SeracError",
    "StoreCorruptError",
    "StoreError",
    "StoreLockedError",
    "VersionNotFoundError",
    "load_text_model",
    "validate_edit",
]
