"""MEND's typed config: what the editor edits, its size, and how it is trained. Saved in the artifact
(``mend_config.json``) so a trained editor names its base model and the matrices it edits."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

from serac.config import (
    DEFAULT_LM,
    MODEL_NAME,
    NON_NEGATIVE_NUMBER,
    POSITIVE_INT,
    POSITIVE_NUMBER,
    Check,
    Config,
    FRACTION,
    INTEGER,
    option,
    optional,
)
from serac.errors import ConfigError
from serac.train.config import EVALUATION_FILES

MEND_FORMAT_VERSION = 1
CONFIG_FILE = "mend_config.json"
WEIGHTS_FILE = "editor.safetensors"
REPORT_FILE = "training_report.json"

_NAMES = Check(lambda v: isinstance(v, list) and len(v) > 0 and all(isinstance(x, str) and x for x in v),
               "{name} must be a non-empty list of module names, got {value}")


@dataclass
class MendConfig(Config):
    """Every field has a default: the defaults are the CPU-sized run `serac train --method mend` makes
    (measured in serac/train/README.md)."""

    label: ClassVar[str] = "MEND config"

    format_version: int = option(MEND_FORMAT_VERSION, "Format of this file.", check=INTEGER)
    base_model: str = option(DEFAULT_LM, "The model the editor was trained for (id, path or embedded:NAME).",
                             check=MODEL_NAME)
    num_layers: int = option(3, "Edit the MLP matrices of this many last decoder blocks.", check=POSITIVE_INT)
    targets: list[str] | None = option(
        None, "Names of the edited linear modules; None: found from the model's structure (every linear "
        "module of the last num_layers blocks with config.intermediate_size as its input or output size). "
        "Filled in when training starts.", check=optional(_NAMES))
    rank: int = option(64, "Hidden size of the low-rank editor MLP (shared by matrices of one shape).",
                       check=POSITIVE_INT)
    alpha_init: float = option(1e-2, "Initial per-matrix step size alpha (learned).", check=POSITIVE_NUMBER)
    c_loc: float = option(10.0, "Weight of the locality KL term in the training loss (the paper's c_edit = 0.1 "
                          "on the edit term is the same balance).", check=NON_NEGATIVE_NUMBER)
    steps: int = option(250, "Training steps (each one combined edit of edits_per_step records).",
                        check=POSITIVE_INT)
    edits_per_step: int = option(2, "Edits combined in one update per training step.", check=POSITIVE_INT)
    lr: float = option(3e-4, "Adam learning rate of the editor networks.", check=POSITIVE_NUMBER)
    alpha_lr: float = option(5e-4, "Adam learning rate of the step sizes alpha.", check=POSITIVE_NUMBER)
    warmup: float = option(0.05, "Share of the steps with a linear learning-rate warm-up.", check=FRACTION)
    max_grad_norm: float = option(1.0, "Clip the editor's gradient norm to this.", check=POSITIVE_NUMBER)
    seed: int = option(0, "Random seed: the same seed gives the same run.", check=INTEGER)
    zsre_train: str | None = option(None, "zsRE MEND-format training file.")
    counterfact_train: str | None = option(None, "CounterFact training file.")
    counterfact_share: float = option(0.5, "Share of training edits drawn from CounterFact (the rest: zsRE).",
                                      check=FRACTION)
    checkpoint_every: int = option(25, "Steps between resumable checkpoints.", check=POSITIVE_INT)
    max_tokens: int = option(128, "Skip training records longer than this many tokens.", check=POSITIVE_INT)

    def check(self) -> None:
        for name in ("zsre_train", "counterfact_train"):
            value = getattr(self, name)
            if value is not None and Path(value).name in EVALUATION_FILES:
                raise ConfigError(f"{name} is {value!r}, an evaluation file; train on the training files "
                                  "(zsre_mend_train-1k.json, counterfact-train.json)")

    @classmethod
    def quick(cls, **changes: object) -> MendConfig:
        """A smoke-test run of a few steps."""
        return cls(**{"steps": 4, "checkpoint_every": 2, **changes})  # type: ignore[arg-type]
