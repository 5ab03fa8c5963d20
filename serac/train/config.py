"""Typed training configuration, round-tripped to JSON with a format version.

Every field has a default; the defaults are the run `serac train` makes: 36 minutes measured on the
2-core CPU with an evaluation on the other core, one torch thread (see benchmarks/extra/training.md).
``TrainConfig.quick()`` is a smoke-test run of a few minutes.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

from serac.config import (
    BOOLEAN,
    COSINE,
    DEFAULT_ENCODER,
    DEFAULT_LM,
    DEVICE,
    FRACTION,
    INTEGER,
    LM_KINDS,
    MODEL_NAME,
    NON_NEGATIVE_INT,
    NON_NEGATIVE_NUMBER,
    POSITIVE_INT,
    POSITIVE_NUMBER,
    Config,
    at_least,
    one_of,
    option,
    optional,
)
from serac.errors import ConfigError

TRAIN_FORMAT_VERSION = 1
# Benchmark files kept for evaluation only: training on them would leak the test set.
EVALUATION_FILES = ("zsre_mend_eval_portability_gpt4.json", "zsre_mend_eval.json", "counterfact-edit.json")
CF_METHODS = ("lora", "full")


@dataclass
class DataConfig(Config):
    """Which training files to read and how much of them to hold out for validation."""

    section: ClassVar[str] = "data"

    zsre_train: str | None = option(None, "zsRE MEND-format training file (e.g. zsre_mend_train-1k.json).")
    counterfact_train: str | None = option(None, "CounterFact training file (counterfact-train.json).")
    zsre_limit: int | None = option(None, "Read only the first N zsRE records (None: all).",
                                    check=optional(POSITIVE_INT))
    counterfact_limit: int | None = option(None, "Read only the first N CounterFact records (None: all).",
                                           check=optional(POSITIVE_INT))
    zsre_val: int = option(200, "zsRE records held out (by fact, so no fact is on both sides) to calibrate the "
                           "threshold and measure retrieval with many edits in the index.", check=NON_NEGATIVE_INT)
    counterfact_val: int = option(1000, "CounterFact records held out, likewise.", check=NON_NEGATIVE_INT)

    def check(self) -> None:
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
class ScopeTrainConfig(Config):
    """Contrastive fine-tuning of the dual encoder, then threshold calibration."""

    section: ClassVar[str] = "scope"

    encoder: str = option(DEFAULT_ENCODER, "The pretrained sentence-transformers model to start from.",
                          check=MODEL_NAME)
    steps: int = option(300, "Optimizer steps.", check=POSITIVE_INT)
    batch_records: int = option(32, "Edits per step; each brings its key, one in-scope and one out-of-scope "
                                "query.", check=at_least(2))
    neighbour_share: float = option(0.5, "Share of each batch drawn as nearest neighbours (by the pretrained "
                                    "encoder) of the other records: edits sharing a subject or relation, the "
                                    "hard in-batch negatives.", check=FRACTION)
    mine_k: int = option(8, "Neighbours mined per edit (keys and out-of-scope queries).", check=POSITIVE_INT)
    subject_negatives: int = option(0, "Other relations' templates filled with each edit's subject, used as "
                                    "out-of-scope queries for that edit (against hijacking by subject, issue 14); "
                                    "0: none.", check=NON_NEGATIVE_INT)
    lr: float = option(3e-5, "Peak learning rate.", check=POSITIVE_NUMBER)
    warmup: float = option(0.1, "Share of steps with a linear learning-rate warm-up.", check=FRACTION)
    weight_decay: float = option(0.01, "AdamW weight decay.", check=NON_NEGATIVE_NUMBER)
    scale: float = option(20.0, "Inverse temperature of the two softmax ranking losses.", check=POSITIVE_NUMBER)
    sigmoid_weight: float = option(1.0, "Weight of the pairwise in/out-of-scope (sigmoid) loss.",
                                   check=NON_NEGATIVE_NUMBER)
    freeze_embeddings: bool = option(True, "Word embeddings stay fixed: faster on CPU, generalises better.")
    top_k: int = option(10, "Candidates the trained editor retrieves per query (deep enough to see a fact's "
                        "newer edits).", check=POSITIVE_INT)
    checkpoint_every: int = option(50, "Steps between resumable checkpoints.", check=POSITIVE_INT)


@dataclass
class CrossEncoderTrainConfig(Config):
    """The optional scope verifier: a cross-encoder over (edit input, query) that decides scope for
    the dual encoder's near candidates (off by default in `serac train`; the shipped defaults have one)."""

    section: ClassVar[str] = "cross_encoder"

    enabled: bool = option(False, "Train the verifier.")
    model: str = option(DEFAULT_ENCODER, "Initialised from this BERT-style checkpoint with a new 1-logit head.",
                        check=MODEL_NAME)
    steps: int = option(1200, "Optimizer steps (~12 min on 2 CPU cores).", check=POSITIVE_INT)
    batch_pairs: int = option(32, "Pairs per step, half in scope, half out.", check=POSITIVE_INT)
    lr: float = option(5e-5, "Peak learning rate.", check=POSITIVE_NUMBER)
    warmup: float = option(0.1, "Share of steps with a linear warm-up.", check=FRACTION)
    candidates: int = option(5, "Hard negatives come from the trained dual encoder's top-k.", check=POSITIVE_INT)
    subject_negatives: int = option(
        3, "Per training edit, this many other relations' templates filled with its subject are negatives "
        "(\"The capital of X is\" is out of scope of \"The official language of X is\"): the mistake the dual "
        "encoder makes and the verifier exists to catch.", check=NON_NEGATIVE_INT)
    rephrasing_negatives: int = option(
        2, "Per training edit, this many of its in-scope rephrasings are paired, as negatives, with each of its "
        "subject negatives read as an edit (\"X is affiliated with the religion\" does not cover \"In X, people "
        "speak\"): with other facts about a subject in memory, its rephrasings must not reach them.",
        check=NON_NEGATIVE_INT)
    chain_negatives: bool = option(True, "Questions asked through an edit's fact (\"The capital of the place "
                                   "where X was born is\", serac.data.chains) are negatives too.", check=BOOLEAN)
    freeze_embeddings: bool = option(True, "Embedding tables stay fixed, as for the scope encoder: the change "
                                     "stays low-rank, so `serac compact` keeps it in ~1 MB.", check=BOOLEAN)
    floor: float = option(0.8, "The dual encoder's cosine a candidate needs before the verifier reads it, in "
                          "calibration and at inference (written as scope.cross_encoder_floor).",
                          check=COSINE)
    checkpoint_every: int = option(100, "Steps between resumable checkpoints.", check=POSITIVE_INT)


@dataclass
class CounterfactualTrainConfig(Config):
    """Fine-tuning of the counterfactual model on (edits + query -> in-scope answer)."""

    section: ClassVar[str] = "counterfactual"

    model: str = option(DEFAULT_LM, "Any causal or seq2seq LM (id, path or embedded:NAME).", check=MODEL_NAME)
    kind: str = option("auto", "auto, causal or seq2seq.", check=one_of(LM_KINDS))
    method: str = option("lora", "lora (a peft adapter) or full (every weight).", check=one_of(CF_METHODS))
    lora_r: int = option(16, "LoRA rank.", check=POSITIVE_INT)
    lora_alpha: int = option(32, "LoRA alpha.", check=POSITIVE_INT)
    lora_dropout: float = option(0.05, "LoRA dropout.", check=FRACTION)
    target_modules: str | list[str] = option(
        "all-linear", "all-linear: every linear layer but the output head, found by module type (peft), not name.")
    steps: int = option(120, "Optimizer steps.", check=POSITIVE_INT)
    batch_size: int = option(8, "Examples per step.", check=POSITIVE_INT)
    lr: float | None = option(None, "None: 2e-4 for LoRA, 2e-5 for full fine-tuning.", check=optional(POSITIVE_NUMBER))
    warmup: float = option(0.05, "Share of steps with a linear warm-up.", check=FRACTION)
    weight_decay: float = option(0.0, "AdamW weight decay.", check=NON_NEGATIVE_NUMBER)
    num_edits: int = option(4, "Edits in the prompt: the right one plus up to num_edits-1 distractors (its "
                            "nearest neighbours, as retrieval would return them) in random order, so the model "
                            "learns to pick the right edit.", check=POSITIVE_INT)
    single_edit_share: float = option(0.2, "Share of examples with the right edit alone.", check=FRACTION)
    conflict_share: float = option(0.25, "Share of multi-edit examples that also hold an older edit of the same "
                                   "fact with another answer (placed before the right one): the model learns "
                                   "that the newest edit of a fact wins.", check=FRACTION)
    edit_input_share: float = option(0.25, "Share of queries that are the edit input itself (else a "
                                     "rephrasing).", check=FRACTION)
    max_length: int = option(384, "Prompt + answer tokens; longer examples are dropped.", check=POSITIVE_INT)
    checkpoint_every: int = option(25, "Steps between resumable checkpoints.", check=POSITIVE_INT)
    eval_examples: int = option(48, "Validation generations reported at the end (0: skip).",
                                check=NON_NEGATIVE_INT)

    @property
    def learning_rate(self) -> float:
        if self.lr is not None:
            return float(self.lr)
        return 2e-4 if self.method == "lora" else 2e-5


@dataclass
class TrainConfig(Config):
    """A `serac train` run; saved as ``train_config.json`` beside the artifact."""

    label: ClassVar[str] = "training config"

    data: DataConfig = option(default_factory=DataConfig, help="Training files and validation split.")
    scope: ScopeTrainConfig = option(default_factory=ScopeTrainConfig, help="The dual encoder's training.")
    cross_encoder: CrossEncoderTrainConfig = option(default_factory=CrossEncoderTrainConfig,
                                                    help="The optional re-ranker's training.")
    counterfactual: CounterfactualTrainConfig = option(default_factory=CounterfactualTrainConfig,
                                                       help="The counterfactual model's training.")
    seed: int = option(0, "Random seed: same seed, same run.", check=INTEGER)
    base_model: str = option(DEFAULT_LM, "The model being edited, recorded in the artifact's serac_config.json; "
                             "never trained.", check=MODEL_NAME)
    device: str = option("auto", "Where training runs: auto (the GPU when torch sees one, else the CPU), cpu, "
                         "cuda, cuda:N or mps.", check=DEVICE)
    format_version: int = option(TRAIN_FORMAT_VERSION, "The file format; a different version is refused.")

    @classmethod
    def quick(cls, **data: Any) -> "TrainConfig":
        """A smoke-test run: a few hundred records, a few dozen steps."""
        return cls(
            data=DataConfig(zsre_limit=120, counterfact_limit=300, zsre_val=40, counterfact_val=60, **data),
            scope=ScopeTrainConfig(steps=20, batch_records=16, checkpoint_every=10),
            cross_encoder=CrossEncoderTrainConfig(steps=10, batch_pairs=16, checkpoint_every=5),
            counterfactual=CounterfactualTrainConfig(steps=10, batch_size=4, checkpoint_every=5, eval_examples=8),
        )
