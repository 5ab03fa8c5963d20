"""EditedModel: the SERAC router over an untouched base model.

Per batch: sync the edit index with the store, one scope decision for every row, the counterfactual
model on in-scope rows only, the base model on the rest only, answers merged back in input order.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Iterator, Literal, Mapping, Sequence

from serac.base import (
    GREEDY,
    GenerationOptions,
    Generation,
    Prompt,
    TextModel,
    TokenLogprob,
    load_base_model,
    query_text,
)
from serac.config import SeracConfig
from serac.counterfactual import CounterfactualModel, PromptedCounterfactual, load_counterfactual
from serac.edits import Edit, EditRequest, to_requests, validate_edit
from serac.errors import ConfigError, UnsupportedOptionError
from serac.models import serac_home
from serac.scope import Candidate, ScopeClassifier, ScopeDecision
from serac.store import EditStore, EditStoreProtocol
from serac.store_url import open_store

logger = logging.getLogger(__name__)

# The artifact directory (written by `serac train` and EditedModel.save_pretrained)
CONFIG_FILE = "serac_config.json"
SCOPE_DIR = "scope_encoder"
CROSS_ENCODER_DIR = "cross_encoder"
ADAPTER_DIR = "counterfactual_adapter"
STORE_FILE = "edits.db"
# The trained defaults shipped in the package (serac/defaults/README.md says how they were made).
DEFAULT_ARTIFACT = Path(__file__).resolve().parent / "defaults"


@dataclass(frozen=True)
class Answer:
    """One answer and why: which model produced it and, if an edit fired, which and how strongly."""

    text: str
    source: Literal["base", "counterfactual"]
    edit: Edit | None = None
    score: float | None = None  # best scope score (also reported for out-of-scope rows)
    candidates: tuple[Candidate, ...] = field(default_factory=tuple)
    logprobs: tuple[TokenLogprob, ...] | None = None  # with options.logprobs: the answering model's

    @property
    def edit_id(self) -> int | None:
        return self.edit.id if self.edit else None

    def provenance(self) -> dict[str, Any]:
        return {
            "source": self.source,
            "edit_id": self.edit_id,
            "score": self.score,
            "edit": self.edit.to_dict() if self.edit else None,
        }


class EditedModel:
    """A base model plus an edit memory. Edits take effect on the next call, no retraining."""

    def __init__(
        self,
        base: TextModel,
        scope: ScopeClassifier,
        counterfactual: CounterfactualModel,
        store: EditStoreProtocol | None = None,
        config: SeracConfig | None = None,
    ) -> None:
        self.base = base
        self.scope = scope
        self.counterfactual = counterfactual
        self.store = store if store is not None else EditStore(":memory:")
        self.config = config
        self._lock = threading.RLock()

    # -- construction ------------------------------------------------------------------------------
    @classmethod
    def from_config(
        cls, config: SeracConfig | None = None, store: str | Path | EditStoreProtocol | None = None
    ) -> "EditedModel":
        """Load every part a config names. ``store`` is a SQLite path (created if missing), a
        ``postgresql://`` URL, a store object, or None for an in-memory store (see serac/store_url.py)."""
        config = config or SeracConfig()
        base = _load_base(config)
        counterfactual: CounterfactualModel
        if config.counterfactual.engine == "prompted":
            if config.counterfactual.contrast:
                raise UnsupportedOptionError("counterfactual.contrast needs the local counterfactual model "
                                             "(engine 'local'); with engine 'prompted' set contrast to 0")
            counterfactual = PromptedCounterfactual(base, config.counterfactual.num_edits)
        else:
            counterfactual = load_counterfactual(config.counterfactual, base)
        scope = ScopeClassifier.from_config(config.scope)
        return cls(base, scope, counterfactual, open_store(store), config)

    @classmethod
    def from_pretrained(
        cls, directory: str | Path | None = None, store: str | Path | EditStoreProtocol | None = None
    ) -> "EditedModel":
        """Load an artifact written by ``serac train`` or :meth:`save_pretrained`: a local directory
        holding ``serac_config.json`` (relative paths resolved against it), or a Hugging Face Hub
        repo id holding one (fetched by huggingface_hub, which honours ``HF_HUB_OFFLINE`` and its
        cache); the trained defaults shipped in the package (:data:`DEFAULT_ARTIFACT`) when None. With
        ``store`` None, an artifact's edit snapshot (``edits.db``) is opened when it has one, else an
        in-memory store. ``from_config(SeracConfig())`` gives the untrained embedded defaults."""
        directory = resolve_artifact(directory) if directory is not None else DEFAULT_ARTIFACT
        if store is None and (directory / STORE_FILE).is_file():
            store = directory / STORE_FILE
        return cls.from_config(load_artifact_config(directory), store)

    def save_pretrained(self, directory: str | Path, include_store: bool = False) -> Path:
        """Write an artifact that :meth:`from_pretrained` loads back to the same answers and routing:
        ``serac_config.json``, the scope encoder (``scope_encoder/``), the cross-encoder and the
        counterfactual's trained adapter when there are any, and with ``include_store`` a snapshot of
        the edit store (``edits.db``: edits, versions and key vectors). The base and counterfactual
        models are referenced by their config (model id, ``embedded:`` preset, or local path made
        absolute), not copied. Returns the directory."""
        if self.config is None:
            raise ConfigError("save_pretrained needs an EditedModel built by from_config or from_pretrained (its "
                              "config names the models); build it that way, or save the parts yourself")
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        config = SeracConfig.from_dict(self.config.to_dict())  # a copy, paths rewritten below
        config.scope.encoder = _save_sentence_model(self.scope.encoder, directory / SCOPE_DIR, "scope encoder")
        if self.scope.reranker is not None:
            config.scope.cross_encoder = _save_sentence_model(self.scope.reranker, directory / CROSS_ENCODER_DIR,
                                                              "cross-encoder")
        model = getattr(getattr(self.counterfactual, "lm", None), "model", None)
        if config.counterfactual.adapter and hasattr(model, "peft_config"):
            model.save_pretrained(directory / ADAPTER_DIR)
            config.counterfactual.adapter = ADAPTER_DIR
        for part in (config.base, config.counterfactual):
            if Path(part.model).exists():
                part.model = str(Path(part.model).resolve())
        if include_store:
            _snapshot_store(self.store, directory / STORE_FILE, getattr(self.scope.encoder, "id", None))
        config.save(directory / CONFIG_FILE)  # last: a directory holding it is complete
        return directory

    # -- edits ------------------------------------------------------------------------------------
    def add(self, input: str, target: str, metadata: Mapping[str, Any] | None = None) -> Edit:
        return self.add_many([validate_edit(input, target, metadata)])[0]

    def add_many(self, edits: Iterable[EditRequest | tuple | Mapping[str, Any]]) -> list[Edit]:
        """Validate all, embed the keys, then store edits and vectors in one transaction."""
        requests = to_requests(edits)
        if not requests:
            return []
        vectors = self.scope.embed_keys([r.input for r in requests])
        # The store serialises writers itself; the index lock is taken only once the write committed,
        # so a write waiting for the database (another process holds it) never holds up routing.
        stored = self.store.add_many(requests, embeddings=(self.scope.encoder.id, vectors))
        self.sync()
        return stored

    def remove(self, edit_id: int) -> int:
        version = self.store.remove(edit_id)
        self.sync()
        return version

    def rollback(self, version: int) -> int:
        new_version = self.store.rollback(version)
        self.sync()
        return new_version

    def sync(self) -> None:
        """Bring the scope index up to the store's newest version (a follower calls this between
        requests, so a request finds other replicas' edits already indexed)."""
        with self._lock:
            self.scope.sync(self.store)

    @property
    def edits(self) -> list[Edit]:
        return self.store.list()

    @property
    def version(self) -> int:
        return self.store.version

    def save_index(self) -> None:
        """Persist the scope index, so the next open loads it and applies no changes."""
        with self._lock:
            self.scope.close()

    def close(self) -> None:
        """Persist the scope index (so the next open applies no changes) and close the store."""
        with self._lock:
            self.scope.close()
            close = getattr(self.store, "close", None)
            if close is not None:
                close()

    # -- inference --------------------------------------------------------------------------------
    def route(self, prompts: Sequence[Prompt]) -> list[ScopeDecision]:
        with self._lock:
            self.scope.sync(self.store)  # picks up edits made by other processes too
            return self.scope.decide([query_text(p) for p in prompts])

    def generate(self, prompts: Sequence[Prompt], options: GenerationOptions = GREEDY) -> list[Answer]:
        if isinstance(prompts, str):
            raise TypeError("generate takes a list of prompts; wrap a single prompt as [prompt]")
        # 1. scope: one encoder pass and one index search for the whole batch
        decisions = self.route(prompts)
        edited_rows = [i for i, d in enumerate(decisions) if d.in_scope]
        base_rows = [i for i, d in enumerate(decisions) if not d.in_scope]
        outputs: list[Generation] = [Generation("")] * len(prompts)
        # 2. counterfactual model on in-scope rows only, reading the retrieved edits
        if edited_rows:
            generated = _generations(
                self.counterfactual,
                options,
                [prompts[i] for i in edited_rows],
                [[c.edit for c in decisions[i].candidates] for i in edited_rows],
            )
            _check_count("counterfactual", generated, edited_rows)
            for i, output in zip(edited_rows, generated):
                outputs[i] = output
        # 3. base model on out-of-scope rows only: their answers are exactly the base model's
        if base_rows:
            generated = _generations(self.base, options, [prompts[i] for i in base_rows])
            _check_count("base", generated, base_rows)
            for i, output in zip(base_rows, generated):
                outputs[i] = output
        # 4. merge in input order, each with its provenance
        return [_answer(o.text or "", d, o.logprobs) for o, d in zip(outputs, decisions)]

    def stream(self, prompt: Prompt, options: GenerationOptions = GREEDY) -> tuple[Answer, Iterator[str]]:
        """Route one prompt, then stream the answering model's text as it is generated.

        Returns the provenance first (an ``Answer`` whose ``text`` is empty) and an iterator of text
        pieces; joined, the pieces equal ``generate([prompt], options)[0].text``. A model without a
        ``stream`` method answers in one piece. Closing the iterator early stops the generation."""
        # 1. scope: the same decision generate() makes
        decision = self.route([prompt])[0]
        answer = _answer("", decision)
        # 2. the model that answers, fed what generate() would feed it
        if decision.in_scope:
            edits = [c.edit for c in decision.candidates]
            streamer = getattr(self.counterfactual, "stream", None)
            if streamer is not None:
                pieces: Iterator[str] = streamer(prompt, edits, options)
            else:
                pieces = iter(self.counterfactual.generate([prompt], [edits], options))
        else:
            streamer = getattr(self.base, "stream", None)
            if streamer is not None:
                pieces = streamer(prompt, options)
            else:
                pieces = iter(self.base.generate([prompt], options))
        # 3. strip as the adapters' generate() does
        return answer, _stripped(pieces)

    def teacher_forced(self, prompts: Sequence[Prompt], targets: Sequence[str]) -> list[float]:
        """Teacher-forced token accuracy of ``targets``, each row scored by the model the router
        sends it to (the counterfactual model with its edits, or the base model)."""
        if len(prompts) != len(targets):
            raise ValueError(f"got {len(prompts)} prompts but {len(targets)} targets; pass one target per prompt")
        decisions = self.route(prompts)
        scores: list[float] = [0.0] * len(prompts)
        edited = [i for i, d in enumerate(decisions) if d.in_scope]
        plain = [i for i, d in enumerate(decisions) if not d.in_scope]
        if edited:
            values = self.counterfactual.teacher_forced(
                [prompts[i] for i in edited],
                [[c.edit for c in decisions[i].candidates] for i in edited],
                [targets[i] for i in edited],
            )
            for i, value in zip(edited, values):
                scores[i] = value
        if plain:
            for i, value in zip(plain, self.base.teacher_forced([prompts[i] for i in plain], [targets[i] for i in plain])):
                scores[i] = value
        return scores

    def __call__(self, prompt: Prompt, options: GenerationOptions = GREEDY) -> Answer:
        return self.generate([prompt], options)[0]


def _load_base(config: SeracConfig) -> TextModel:
    if config.base.kind == "openai":
        from serac.remote import OpenAIModel  # httpx only when an upstream server is configured

        return OpenAIModel.from_config(config.base)
    return load_base_model(config.base)


def _generations(model: Any, options: GenerationOptions, *inputs: Any) -> list[Generation]:
    """The model's answers; with ``options.logprobs`` set, each with its tokens' log-probs."""
    if options.logprobs is None:
        return [Generation(text) for text in model.generate(*inputs, options)]
    detailed = getattr(model, "generate_detailed", None)
    if detailed is None:
        raise UnsupportedOptionError(
            f"{type(model).__name__} does not report token log-probs; ask without logprobs, or use a "
            "Hugging Face model"
        )
    return detailed(*inputs, options)


def _answer(text: str, decision: ScopeDecision, logprobs: tuple[TokenLogprob, ...] | None = None) -> Answer:
    answer = Answer(
        text=text,
        source="counterfactual" if decision.in_scope else "base",
        edit=decision.edit,
        score=decision.score,
        candidates=decision.candidates,
        logprobs=logprobs,
    )
    logger.debug("routed to %s (edit %s, score %s)", answer.source, answer.edit_id, answer.score)
    return answer


def _stripped(pieces: Iterator[str]) -> Iterator[str]:
    """Drop leading whitespace and hold trailing whitespace back until more text follows it, so
    the joined pieces equal the stripped whole answer. Closing this closes ``pieces`` too."""
    started, held = False, ""
    try:
        for piece in pieces:
            if not started:
                piece = piece.lstrip()
                if not piece:
                    continue
                started = True
            body = piece.rstrip()
            if body:
                yield held + body
                held = piece[len(body) :]
            else:
                held += piece
    finally:
        close = getattr(pieces, "close", None)
        if close is not None:
            close()


def _check_count(model: str, outputs: Sequence[Any], rows: Sequence[int]) -> None:
    # zip would silently drop rows and leave them answered with ""
    if len(outputs) != len(rows):
        raise ValueError(f"the {model} model returned {len(outputs)} answers for {len(rows)} prompts")


def resolve_artifact(name: str | Path) -> Path:
    """A local artifact directory as given; a Hub repo id (``org/name``) through huggingface_hub."""
    from serac.models import hub_snapshot, is_repo_id

    path = Path(name)
    if path.exists() or not is_repo_id(str(name)):
        return path
    return hub_snapshot(str(name))


def _save_sentence_model(part: Any, target: Path, what: str) -> str:
    """Save a sentence-transformers model (an encoder's or a re-ranker's ``.model``) into ``target``."""
    model = getattr(part, "model", None)
    if not hasattr(model, "save"):
        raise ConfigError(f"the {what} ({type(part).__name__}) is not a sentence-transformers model and cannot be "
                          "saved; save_pretrained supports serac's SentenceEncoder and CrossEncoderReranker")
    model.save(str(target))
    return target.name


def _snapshot_store(store: EditStoreProtocol, path: Path, encoder_id: str | None) -> None:
    """Copy ``store`` to a SQLite file: the whole database for an EditStore; for another store, its
    live edits and their cached key vectors."""
    if path.exists():
        path.unlink()
    if isinstance(store, EditStore):
        store.backup(path)
        return
    edits = store.list()
    with EditStore(path) as copy:
        vectors = store.get_embeddings([e.id for e in edits], encoder_id) if encoder_id else {}
        embeddings = None
        if encoder_id and edits and len(vectors) == len(edits):
            import numpy as np

            embeddings = (encoder_id, np.stack([vectors[e.id] for e in edits]))
        copy.add_many([EditRequest(e.input, e.target, e.metadata) for e in edits], embeddings=embeddings)


def default_store_path() -> Path:
    return serac_home() / "edits.db"


def load_artifact_config(directory: str | Path) -> SeracConfig:
    directory = Path(directory)
    path = directory / CONFIG_FILE
    if not path.exists():
        raise ConfigError(
            f"{directory} has no {CONFIG_FILE}; pass a directory written by `serac train`, or omit it "
            "to use the trained defaults shipped with serac"
        )
    config = SeracConfig.load(path)
    # Relative model paths in an artifact are relative to the artifact directory.
    for part, name in ((config.scope, "encoder"), (config.scope, "cross_encoder"), (config.counterfactual, "adapter"),
                       (config.counterfactual, "model"), (config.base, "model")):
        value = getattr(part, name)
        if value and not value.startswith("embedded:") and (directory / value).exists():
            setattr(part, name, str(directory / value))
    return config
