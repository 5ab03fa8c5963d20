"""The fact-checking editor: a claim classifier as base, an (evidence, claim) classifier as the
counterfactual model, and the usual dual-encoder scope over the stored evidence.

A trained FC artifact is a directory holding ``fc_config.json`` and the models it names (relative
paths resolve against the directory). ``build_editor`` turns it into a plain
:class:`~serac.editor.EditedModel`: the router is unchanged, only the adapters differ.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any

from serac.config import DEFAULT_ENCODER
from serac.editor import EditedModel
from serac.errors import ConfigError
from serac.scope import ScopeClassifier, SentenceEncoder
from serac.store import EditStore, EditStoreProtocol
from serac.store_url import open_store
from serac.tasks.classifier import PairClassifierCounterfactual, SequenceClassifier, load_classifier

CONFIG_FILE = "fc_config.json"
FORMAT_VERSION = 1


@dataclass
class FCModelConfig:
    """What an FC artifact holds. Paths are relative to the artifact directory or absolute."""

    base: str = "base"  # claim -> supports/refutes classifier
    counterfactual: str = "counterfactual"  # (evidence, claim) -> supports/refutes classifier
    scope_encoder: str = DEFAULT_ENCODER  # dual encoder over (evidence, claim)
    threshold: float = 0.5  # cosine at or above which the nearest evidence is in scope
    top_k: int = 5
    task: str = "fc"
    format_version: int = FORMAT_VERSION

    def __post_init__(self) -> None:
        if self.task != "fc":
            raise ConfigError(f"{CONFIG_FILE} has task {self.task!r}; expected 'fc'")
        if self.format_version != FORMAT_VERSION:
            raise ConfigError(
                f"{CONFIG_FILE} format_version {self.format_version}; this serac reads {FORMAT_VERSION}"
            )
        if not -1.0 <= float(self.threshold) <= 1.0:
            raise ConfigError(f"threshold is a cosine similarity in [-1, 1], got {self.threshold!r}")

    def save(self, directory: str | Path) -> None:
        (Path(directory) / CONFIG_FILE).write_text(json.dumps(asdict(self), indent=2) + "\n")

    @classmethod
    def load(cls, directory: str | Path) -> "FCModelConfig":
        path = Path(directory) / CONFIG_FILE
        if not path.exists():
            raise ConfigError(
                f"{directory} has no {CONFIG_FILE}; train one with `python -m serac.tasks train fc --out DIR`"
            )
        data = json.loads(path.read_text())
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in known})


def _resolve(directory: Path, value: str) -> str:
    return (
        str(directory / value)
        if not value.startswith("embedded:") and (directory / value).exists()
        else value
    )


@dataclass
class FCParts:
    """The loaded models, shared by every editor an evaluation builds."""

    base: SequenceClassifier
    counterfactual: SequenceClassifier
    encoder: Any
    config: FCModelConfig


def load_parts(directory: str | Path) -> FCParts:
    directory = Path(directory)
    config = FCModelConfig.load(directory)
    return FCParts(
        base=load_classifier(_resolve(directory, config.base)),
        counterfactual=load_classifier(_resolve(directory, config.counterfactual)),
        encoder=SentenceEncoder(_resolve(directory, config.scope_encoder)),
        config=config,
    )


def editor_from_parts(
    parts: FCParts,
    store: EditStoreProtocol | None = None,
    *,
    threshold: float | None = None,
    base: Any = None,
    counterfactual: Any = None,
    encoder: Any = None,
) -> EditedModel:
    """A fresh editor (its own scope index and store) over shared models; ``base`` /
    ``counterfactual`` / ``encoder`` override the loaded ones (e.g. caching wrappers)."""
    scope = ScopeClassifier(
        encoder or parts.encoder,
        threshold=parts.config.threshold if threshold is None else threshold,
        top_k=parts.config.top_k,
        # VitaminC's contrastive evidence (one sentence revised to flip a claim) reads as one fact
        # to the encoder, yet each sentence labels its own claims: the nearest evidence answers.
        conflicts="best",
    )
    cf = counterfactual or PairClassifierCounterfactual(parts.counterfactual)
    return EditedModel(base or parts.base, scope, cf, store if store is not None else EditStore(":memory:"))


def build_editor(directory: str | Path, store: str | Path | EditStoreProtocol | None = None) -> EditedModel:
    """The FC editor from an artifact directory: add evidence with ``editor.add(evidence,
    "supports")`` and ask with ``editor.generate([claim])``; answers are label strings."""
    if isinstance(store, (str, Path)):
        store = open_store(store)
    return editor_from_parts(load_parts(directory), store)
