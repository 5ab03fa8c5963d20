"""Typed training configuration, round-tripped to JSON with a format version.

Every field has a default; the defaults are the run `serac train` makes: 36 minutes measured on the
2-core CPU with an evaluation on the other core, one torch thread (see benchmarks/extra/training.md).
``TrainConfig.quick()`` is a smoke-test run of a few minutes.
"""

from __future__ import annotations

import json
import logging
from dataclasses import asdict, dataclass, field, fields, replace
from pathlib import Path
from typing import Any

from serac.config import DEFAULT_ENCODER, DEFAULT_LM, MODEL_KINDS
from serac.errors import ConfigError

logger = logging.getLogger(__name__)

TRAIN_FORMAT_VERSION = 1
# Benchmark files kept for evaluation only: training on them would leak the test set.
EVALUATION_FILES = ("zsre_mend_eval_portability_gpt4.json", "zsre_mend_eval.json", "counterfact-edit.json")
CF_METHODS = ("lora", "full")


def _positive_int(value: Any, name: str) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ConfigError(f"{name} must be a positive integer, got {value!r}")


def _non_negative_int(value: Any, name: str) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ConfigError(f"{name} must be an integer >= 0, got {value!r}")


def _fraction(value: Any, name: str) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0.0 <= value <= 1.0:
        raise ConfigError(f"{name} must be a number in [0, 1], got {value!r}")


def _positive_float(value: Any, name: str) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value <= 0:
        raise ConfigError(f"{name} must be a positive number, got {value!r}")


@dataclass
class DataConfig:
    """Which training files to read and how much of them to hold out for validation."""

    zsre_train: str | None = None  # zsRE MEND-format training file (e.g. zsre_mend_train-1k.json)
    counterfact_train: str | None = None  # CounterFact training file (counterfact-train.json)
    zsre_limit: int | None = None  # read only the first N records (None: all)
    counterfact_limit: int | None = None
    # Records held out (by fact, so no fact is on both sides) to calibrate the threshold and to
    # measure retrieval with many edits in the index at once.
    zsre_val: int = 200
    counterfact_val: int = 1000

    def __post_init__(self) -> None:
        for name in ("zsre_limit", "counterfact_limit"):
            value = getattr(self, name)
            if value is not None:
                _positive_int(value, f"data.{name}")
        _non_negative_int(self.zsre_val, "data.zsre_val")
        _non_negative_int(self.counterfact_val, "data.counterfact_val")
        for name in ("zsre_train", "counterfact_train"):
            value = getattr(self, name)
            if value is not None and Path(value).name in EVALUATION_FILES:
                raise ConfigError(
                    f"data.{name} is {value!r}, an evaluation file; train on the training files "
                    "(zsre_mend_train-1k.json, counterfact-train.json) and keep evaluation files for evaluation"
                )

    def check_has_data(self) -> None:
        if not self.zsre_train and not self.counterfact_train:
            raise ConfigError(
                "no training data: set data.zsre_train and/or data.counterfact_train "
                "(the CLI's --data-dir finds both in a folder laid out like shared/data)"
            )


@dataclass
class ScopeTrainConfig:
    """Contrastive fine-tuning of the dual encoder, then threshold calibration."""

    encoder: str = DEFAULT_ENCODER  # the pretrained sentence-transformers model to start from
    steps: int = 300
    batch_records: int = 32  # edits per step; each brings its key, one in-scope and one out-of-scope query
    # Share of each batch drawn as nearest neighbours (by the pretrained encoder) of the other
    # records: edits sharing a subject or relation, the hard in-batch negatives.
    neighbour_share: float = 0.5
    mine_k: int = 8  # neighbours mined per edit (keys and out-of-scope queries)
    lr: float = 3e-5
    warmup: float = 0.1  # share of steps with a linear learning-rate warm-up
    weight_decay: float = 0.01
    scale: float = 20.0  # inverse temperature of the two softmax ranking losses
    sigmoid_weight: float = 1.0  # weight of the pairwise in/out-of-scope (sigmoid) loss
    freeze_embeddings: bool = True  # word embeddings stay fixed: faster on CPU, generalises better
    top_k: int = 10  # candidates the trained editor retrieves per query (deep enough to see a fact's newer edits)
    checkpoint_every: int = 50

    def __post_init__(self) -> None:
        for name in ("steps", "mine_k", "top_k", "checkpoint_every"):
            _positive_int(getattr(self, name), f"scope.{name}")
        if isinstance(self.batch_records, bool) or not isinstance(self.batch_records, int) or self.batch_records < 2:
            raise ConfigError(f"scope.batch_records must be an integer >= 2, got {self.batch_records!r}")
        _fraction(self.neighbour_share, "scope.neighbour_share")
        _fraction(self.warmup, "scope.warmup")
        _positive_float(self.lr, "scope.lr")
        _positive_float(self.scale, "scope.scale")
        if not isinstance(self.sigmoid_weight, (int, float)) or self.sigmoid_weight < 0:
            raise ConfigError(f"scope.sigmoid_weight must be >= 0, got {self.sigmoid_weight!r}")


@dataclass
class CrossEncoderTrainConfig:
    """Optional re-ranker of the dual encoder's top-k (off by default: it costs CPU time at every query)."""

    enabled: bool = False
    model: str = DEFAULT_ENCODER  # initialised from this BERT-style checkpoint with a new 1-logit head
    steps: int = 300
    batch_pairs: int = 32
    lr: float = 3e-5
    warmup: float = 0.1
    candidates: int = 5  # hard negatives come from the trained dual encoder's top-k
    checkpoint_every: int = 50

    def __post_init__(self) -> None:
        for name in ("steps", "batch_pairs", "candidates", "checkpoint_every"):
            _positive_int(getattr(self, name), f"cross_encoder.{name}")
        _positive_float(self.lr, "cross_encoder.lr")
        _fraction(self.warmup, "cross_encoder.warmup")


@dataclass
class CounterfactualTrainConfig:
    """Fine-tuning of the counterfactual model on (edits + query -> in-scope answer)."""

    model: str = DEFAULT_LM  # any causal or seq2seq LM (id, path or embedded:NAME)
    kind: str = "auto"
    method: str = "lora"  # "lora" (a peft adapter) or "full" (every weight)
    lora_r: int = 16
    lora_alpha: int = 32
    lora_dropout: float = 0.05
    # "all-linear": every linear layer but the output head, found by module type (peft), not name.
    target_modules: str | list[str] = "all-linear"
    steps: int = 120
    batch_size: int = 8
    lr: float | None = None  # None: 2e-4 for LoRA, 2e-5 for full fine-tuning
    warmup: float = 0.05
    weight_decay: float = 0.0
    # Edits in the prompt: the right one plus up to num_edits-1 distractors (its nearest neighbours,
    # as retrieval would return them) in random order, so the model learns to pick the right edit.
    num_edits: int = 4
    single_edit_share: float = 0.2  # share of examples with the right edit alone
    # Share of multi-edit examples that also hold an older edit of the same fact with another answer
    # (placed before the right one): the model learns that the newest edit of a fact wins.
    conflict_share: float = 0.25
    edit_input_share: float = 0.25  # share of queries that are the edit input itself (else a rephrasing)
    max_length: int = 384  # prompt + answer tokens; longer examples are dropped
    checkpoint_every: int = 25
    eval_examples: int = 48  # validation generations reported at the end (0: skip)

    def __post_init__(self) -> None:
        if self.kind not in MODEL_KINDS:
            raise ConfigError(f"counterfactual.kind is {self.kind!r}; valid values: {', '.join(MODEL_KINDS)}")
        if self.method not in CF_METHODS:
            raise ConfigError(f"counterfactual.method is {self.method!r}; valid values: {', '.join(CF_METHODS)}")
        for name in ("lora_r", "lora_alpha", "steps", "batch_size", "num_edits", "max_length", "checkpoint_every"):
            _positive_int(getattr(self, name), f"counterfactual.{name}")
        _non_negative_int(self.eval_examples, "counterfactual.eval_examples")
        _fraction(self.lora_dropout, "counterfactual.lora_dropout")
        _fraction(self.single_edit_share, "counterfactual.single_edit_share")
        _fraction(self.conflict_share, "counterfactual.conflict_share")
        _fraction(self.edit_input_share, "counterfactual.edit_input_share")
        _fraction(self.warmup, "counterfactual.warmup")
        if self.lr is not None:
            _positive_float(self.lr, "counterfactual.lr")

    @property
    def learning_rate(self) -> float:
        if self.lr is not None:
            return float(self.lr)
        return 2e-4 if self.method == "lora" else 2e-5


@dataclass
class TrainConfig:
    data: DataConfig = field(default_factory=DataConfig)
    scope: ScopeTrainConfig = field(default_factory=ScopeTrainConfig)
    cross_encoder: CrossEncoderTrainConfig = field(default_factory=CrossEncoderTrainConfig)
    counterfactual: CounterfactualTrainConfig = field(default_factory=CounterfactualTrainConfig)
    seed: int = 0
    # The model being edited, recorded in the artifact's serac_config.json; never trained.
    base_model: str = DEFAULT_LM
    format_version: int = TRAIN_FORMAT_VERSION

    def __post_init__(self) -> None:
        if isinstance(self.seed, bool) or not isinstance(self.seed, int):
            raise ConfigError(f"seed must be an integer, got {self.seed!r}")
        if not isinstance(self.base_model, str) or not self.base_model:
            raise ConfigError(f"base_model must be a model id, path or embedded:NAME, got {self.base_model!r}")

    @classmethod
    def quick(cls, **data: Any) -> "TrainConfig":
        """A smoke-test run: a few hundred records, a few dozen steps."""
        return cls(
            data=DataConfig(zsre_limit=120, counterfact_limit=300, zsre_val=40, counterfact_val=60, **data),
            scope=ScopeTrainConfig(steps=20, batch_records=16, checkpoint_every=10),
            cross_encoder=CrossEncoderTrainConfig(steps=10, batch_pairs=16, checkpoint_every=5),
            counterfactual=CounterfactualTrainConfig(steps=10, batch_size=4, checkpoint_every=5, eval_examples=8),
        )

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "TrainConfig":
        if not isinstance(data, dict):
            raise ConfigError(f"a training config is a JSON object, got {type(data).__name__}")
        version = data.get("format_version", TRAIN_FORMAT_VERSION)
        if version != TRAIN_FORMAT_VERSION:
            raise ConfigError(
                f"training config format_version {version} is not supported (this serac reads {TRAIN_FORMAT_VERSION})"
            )
        parts = {
            name: _build(part_cls, data.get(name) or {}, name)
            for name, part_cls in (
                ("data", DataConfig),
                ("scope", ScopeTrainConfig),
                ("cross_encoder", CrossEncoderTrainConfig),
                ("counterfactual", CounterfactualTrainConfig),
            )
        }
        unknown = sorted(set(data) - {"seed", "base_model", "format_version", *parts})
        if unknown:
            logger.warning("ignoring unknown training config keys: %s", ", ".join(unknown))
        return cls(**parts, seed=data.get("seed", 0), base_model=data.get("base_model", DEFAULT_LM))

    def save(self, path: str | Path) -> None:
        Path(path).write_text(json.dumps(self.to_dict(), indent=2) + "\n")

    @classmethod
    def load(cls, path: str | Path) -> "TrainConfig":
        try:
            data = json.loads(Path(path).read_text())
        except FileNotFoundError:
            raise ConfigError(f"training config {path} does not exist") from None
        except json.JSONDecodeError as exc:
            raise ConfigError(f"training config {path} is not valid JSON: {exc}") from None
        return cls.from_dict(data)

    def replace(self, **changes: Any) -> "TrainConfig":
        return replace(self, **changes)


def _build(part_cls: type, values: dict[str, Any], where: str) -> Any:
    if not isinstance(values, dict):
        raise ConfigError(f"training config section {where!r} must be an object, got {values!r}")
    known = {f.name for f in fields(part_cls)}
    unknown = sorted(set(values) - known)
    if unknown:
        logger.warning("ignoring unknown %s training config keys: %s", where, ", ".join(unknown))
    try:
        return part_cls(**{k: v for k, v in values.items() if k in known})
    except TypeError as exc:
        raise ConfigError(f"training config section {where!r}: {exc}") from None
