"""The fact-checking editor: a claim classifier as base, an (evidence, claim) classifier as the
counterfactual model, and the usual dual-encoder scope over the stored evidence.

A trained FC artifact is a directory holding ``fc_config.json`` and the models it names (relative
paths resolve against the directory). ``build_editor`` turns it into a plain
:class:`~serac.editor.EditedModel`: the router is unchanged, only the adapters differ.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

from serac.config import DEFAULT_ENCODER, MODEL_NAME, POSITIVE_INT, Check, Config, number_in, option
from serac.editor import EditedModel
from serac.errors import ConfigError
from serac.scope import ScopeClassifier, SentenceEncoder
from serac.store import EditStore, EditStoreProtocol
from serac.store_url import open_store
from serac.base import SequenceClassifier, load_text_model
from serac.counterfactual import PairClassifierCounterfactual

CONFIG_FILE = "fc_config.json"
FORMAT_VERSION = 1


@dataclass
class FCModelConfig(Config):
    """What an FC artifact holds (``fc_config.json``). Paths are relative to the artifact directory or
    absolute. ``save``/``load`` take the artifact directory."""

    label: ClassVar[str] = CONFIG_FILE

    base: str = option("base", "Claim -> supports/refutes classifier.")
    counterfactual: str = option("counterfactual", "(evidence, claim) -> supports/refutes classifier.")
    scope_encoder: str = option(DEFAULT_ENCODER, "Dual encoder over (evidence, claim).", check=MODEL_NAME)
    threshold: float = option(0.5, "Cosine at or above which the nearest evidence is in scope.",
                              check=number_in(-1.0, 1.0, "{name} is a cosine similarity in [{low}, {high}], got {value}"))
    top_k: int = option(5, "Evidence candidates retrieved per claim.", check=POSITIVE_INT)
    task: str = option("fc", "Always 'fc'.", check=Check(lambda v: v == "fc", f"{CONFIG_FILE} has task {{value}}; "
                                                          "expected 'fc'"))
    format_version: int = option(FORMAT_VERSION, "The file format; a different version is refused.")

    def save(self, directory: str | Path) -> None:
        super().save(Path(directory) / CONFIG_FILE)

    @classmethod
    def load(cls, directory: str | Path) -> "FCModelConfig":
        path = Path(directory) / CONFIG_FILE
        if not path.exists():
            raise ConfigError(
                f"{directory} has no {CONFIG_FILE}; train one with `python -m serac.tasks train fc --out DIR`"
            )
        return super().load(path)


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
        base=load_text_model(_resolve(directory, config.base), "classifier", batch_size=32),  # type: ignore[arg-type]
        counterfactual=load_text_model(_resolve(directory, config.counterfactual), "classifier",  # type: ignore[arg-type]
                                       batch_size=32),
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
