"""Scope: does a stored edit cover this input, and which one?

A dual encoder embeds each edit's input once, at insert; the vectors live in a vector index
(serac/index.py), so a query costs one encoder pass plus a top-k search (SERAC's original classifier
and EasyEdit re-encode every edit for every query). The index is exact up to
``ScopeConfig.approximate_above`` live edits and approximate (IVF or HNSW, exact re-scoring) above it. It
holds only ids and vectors; the top-k edits' rows are read from the store by id for each query. It
is persisted beside the store, tagged with the store version and encoder id, so opening a store
applies only the changes after that version.
"""

from __future__ import annotations

import hashlib
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol, Sequence, runtime_checkable

import numpy as np

from serac.config import ScopeConfig
from serac.edits import Edit, input_key
from serac.facts import SameFactJudge
from serac.index import ExactIndex, IndexTag, VectorIndex, index_file, load_index, new_index, save_index
from serac.models import loadable_model, weight_errors
from serac.store import EditStoreProtocol

logger = logging.getLogger(__name__)


@runtime_checkable
class Encoder(Protocol):
    """Text to unit-length float32 vectors. ``id`` names the weights, so cached vectors from other
    weights are never mixed in."""

    id: str
    dim: int

    def encode(self, texts: Sequence[str]) -> np.ndarray: ...


class SentenceEncoder:
    """A sentence-transformers model (the default is all-MiniLM-L6-v2)."""

    def __init__(self, spec: str, batch_size: int = 64, device: str = "cpu", trust_remote_code: bool = False) -> None:
        from sentence_transformers import SentenceTransformer

        from serac.base import resolve_device

        path = loadable_model(spec)
        with weight_errors(spec, path):
            self.model = SentenceTransformer(path, device=str(resolve_device(device)),
                                             trust_remote_code=trust_remote_code)
        self.batch_size = batch_size
        # sentence-transformers renamed the method (the old name warns, and will go)
        dimension = getattr(self.model, "get_embedding_dimension", None) or self.model.get_sentence_embedding_dimension
        self.dim = int(dimension())
        self.id = f"{Path(path).name}:{_fingerprint(path)}"

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        vectors = self.model.encode(
            list(texts), batch_size=self.batch_size, convert_to_numpy=True, normalize_embeddings=True
        )
        return np.asarray(vectors, dtype=np.float32).reshape(len(texts), self.dim)


def _fingerprint(path: str) -> str:
    """Hash of the weight files, so a retrained encoder never reuses stale cached embeddings."""
    digest = hashlib.sha256()
    root = Path(path)
    files = sorted(root.rglob("*.safetensors")) + sorted(root.rglob("*.bin")) if root.is_dir() else []
    if not files:
        digest.update(path.encode())
    for file in files:
        digest.update(file.read_bytes())
    return digest.hexdigest()[:16]


ScopeIndex = ExactIndex  # the public name of the exact index (serac.ScopeIndex)


@dataclass(frozen=True)
class Candidate:
    edit: Edit
    score: float


@dataclass(frozen=True)
class ScopeDecision:
    """The routing decision for one input, with the evidence behind it."""

    in_scope: bool
    candidates: tuple[Candidate, ...] = field(default_factory=tuple)  # best first
    score: float | None = None  # the score the threshold was applied to

    @property
    def edit(self) -> Edit | None:
        return self.candidates[0].edit if self.in_scope and self.candidates else None


class ScopeClassifier:
    """Keeps an index in step with an edit store and decides scope for batches of inputs."""

    def __init__(
        self,
        encoder: Encoder,
        threshold: float = ScopeConfig.threshold,
        top_k: int = ScopeConfig.top_k,
        reranker: "CrossEncoderReranker | None" = None,
        conflicts: str = ScopeConfig.conflicts,
        same_fact_threshold: float = ScopeConfig.same_fact_threshold,
        same_fact_encoder: Encoder | None = None,
        index: str = ScopeConfig.index,
        approximate_above: int = ScopeConfig.approximate_above,
        search_threads: int = ScopeConfig.search_threads,
        ann: str = ScopeConfig.ann,
        relation_first: bool = ScopeConfig.relation_first,
        same_fact_by: str = ScopeConfig.same_fact_by,
        save_every: int = 10_000,
    ) -> None:
        self.encoder = encoder
        self.threshold = threshold
        self.top_k = top_k
        self.conflicts = conflicts
        verifier = {} if reranker is None else dict(pair_scorer=reranker.mutual_scores, pair_threshold=reranker.threshold)
        self.same_fact = SameFactJudge(same_fact_encoder or encoder, same_fact_threshold, by=same_fact_by, **verifier)
        self.reranker = reranker
        self.index_kind = index
        self.approximate_above = approximate_above
        self.ann = ann  # the approximate index's structure: "ivf" or "hnsw"
        self.relation_first = relation_first
        self.search_threads = search_threads
        self.save_every = save_every  # changes applied before the persisted index is rewritten
        self.index: VectorIndex = ExactIndex(encoder.dim)
        self.store: EditStoreProtocol | None = None  # the store the index mirrors
        self.synced_version = -1
        self._unsaved = 0

    @classmethod
    def from_config(cls, config: ScopeConfig, encoder: Encoder | None = None,
                    same_fact_encoder: Encoder | None = None,
                    reranker: "CrossEncoderReranker | None" = None) -> "ScopeClassifier":
        """The scope a config describes; ``encoder``, ``same_fact_encoder`` and ``reranker``: already
        loaded models to use instead of loading the config's (e.g. shared by an evaluation)."""
        reranker = reranker or CrossEncoderReranker.from_config(config)
        encoder = encoder or SentenceEncoder(config.encoder, device=config.device,
                                             trust_remote_code=config.trust_remote_code)
        judge = config.same_fact_encoder
        judge_encoder = same_fact_encoder or (
            SentenceEncoder(judge, device=config.device) if judge and judge != config.encoder else None)
        return cls(encoder, config.threshold, config.top_k, reranker, config.conflicts,
                   config.same_fact_threshold, judge_encoder, index=config.index,
                   approximate_above=config.approximate_above, search_threads=config.search_threads,
                   ann=config.ann, relation_first=config.relation_first, same_fact_by=config.same_fact_by)

    # -- keeping in step with the store -----------------------------------------------------------
    def embed_keys(self, inputs: Sequence[str]) -> np.ndarray:
        return self.encoder.encode(list(inputs))

    def sync(self, store: EditStoreProtocol) -> None:
        """Apply the store's changes since the last sync (edits made by this or another process).
        The first sync with a store loads its persisted index and applies only the newer events
        (or rebuilds the index when there is none it can trust). Vectors come from the store's
        cache; missing ones are computed once and cached."""
        if store is not self.store:
            self._attach(store)
        current = store.version  # read first: a write racing the reads below is re-applied next time
        if current == self.synced_version and self.index.kind == self._wanted_kind():
            return  # the common case; a loaded index of another kind than configured goes on to a rebuild
        if current != self.synced_version:
            changes = store.changes_since(self.synced_version)
            self.index.remove(changes.removed)
            self._add_edits(store, changes.live)
            self.synced_version = current
            self._unsaved += len(changes.live) + len(changes.removed)
        if self._wanted_kind() != self.index.kind or getattr(self.index, "outgrown", False):
            self._rebuild(store)
        elif self._unsaved >= self.save_every:
            self.save()

    def _attach(self, store: EditStoreProtocol) -> None:
        self.store = store
        directory = store.index_dir
        loaded = None
        if directory is not None:
            loaded = load_index(index_file(directory, self.encoder.id), self.encoder.dim, store.store_id,
                                self.encoder.id, store.version, self._exact_vectors)
        if loaded is None:
            self._rebuild(store)
        else:
            self.index, self.synced_version = loaded
            self._unsaved = 0

    def _wanted_kind(self) -> str:
        if self.index_kind != "auto":
            return self.ann if self.index_kind == "approximate" else self.index_kind
        n = len(self.index)
        if n > self.approximate_above:
            return self.ann
        if n <= self.approximate_above // 2:  # hysteresis: no flapping around the threshold
            return "exact"
        return self.index.kind if self.index.kind == "exact" else self.ann

    def _exact_vectors(self, ids: Sequence[int]) -> dict[int, np.ndarray]:
        assert self.store is not None
        return self.store.get_embeddings(ids, self.encoder.id)

    def _rebuild(self, store: EditStoreProtocol) -> None:
        """The whole live set, chunk by chunk: O(N), only when no trusted index exists or the
        index kind changes."""
        version, live = store.version, store.count()
        kind = {"exact": "exact", "approximate": self.ann}.get(self.index_kind) or (
            self.ann if live > self.approximate_above else "exact")
        logger.info("building the %s scope index over %d edits (store version %d)", kind, live, version)
        self.index = new_index(kind, self.encoder.dim, self._exact_vectors, sized_for=live)
        for chunk in store.live_chunks(self.encoder.id):
            if len(chunk.ids):
                # a one-off batch job, unlike a query: every core (0) for the graph build
                self.index.add(chunk.ids, chunk.vectors, threads=0)
            self._add_edits(store, chunk.missing)
        # Changes committed while reading are after `version`: the next sync re-applies them.
        self.synced_version = version
        self.save()

    def save(self) -> None:
        """Persist the index beside the store (a no-op for stores without a directory)."""
        if self.store is None or self.store.index_dir is None:
            return
        tag = IndexTag(self.store.store_id, self.synced_version, self.encoder.id)
        try:
            save_index(index_file(self.store.index_dir, self.encoder.id), self.index, tag)
            self._unsaved = 0
        except OSError as exc:
            logger.warning("could not persist the scope index (%s); the next open rebuilds it", exc.strerror or exc)

    def close(self) -> None:
        """Persist changes not yet saved, so the next open applies none."""
        if self._unsaved:
            self.save()

    def _add_edits(self, store: EditStoreProtocol, edits: list[Edit]) -> None:
        if not edits:
            return
        cached = store.get_embeddings([e.id for e in edits], self.encoder.id)
        missing = [e for e in edits if e.id not in cached]
        if missing:
            logger.info("embedding %d edit keys not yet cached for encoder %s", len(missing), self.encoder.id)
            vectors = self.embed_keys([e.input for e in missing])
            store.put_embeddings(self.encoder.id, [e.id for e in missing], vectors)
            cached.update(zip((e.id for e in missing), vectors))
        self.index.add([e.id for e in edits], np.stack([cached[e.id] for e in edits]))

    # -- deciding --------------------------------------------------------------------------------
    def decide(self, queries: Sequence[str], query_vectors: np.ndarray | None = None) -> list[ScopeDecision]:
        """One encoder pass and one index search for the whole batch."""
        if not queries:
            return []
        if len(self.index) == 0:
            return [ScopeDecision(in_scope=False) for _ in queries]
        vectors = self.encoder.encode(list(queries)) if query_vectors is None else query_vectors
        scores, ids = self.index.search(vectors, self.top_k, self.search_threads)
        assert self.store is not None  # a non-empty index was filled by sync(store)
        edits = self.store.get_many(sorted({int(i) for i in ids.reshape(-1) if i >= 0}))
        rows = [[Candidate(edits[int(i)], float(s)) for s, i in zip(scores[row], ids[row]) if int(i) in edits]
                for row in range(len(queries))]
        threshold = self.threshold
        if self.reranker is not None:
            rows = self.reranker.verify(queries, rows)
            threshold = self.reranker.threshold
        decisions = []
        for query, candidates in zip(queries, rows):
            best = candidates[0].score if candidates else None
            in_scope = best is not None and best >= threshold
            if in_scope and self.relation_first:
                candidates = self._same_relation_first(query, candidates, threshold)
            if in_scope:
                candidates = _exact_input_first(query, candidates)
            if in_scope and self.conflicts == "newest":
                candidates = self._newest_first(candidates, threshold)
            decisions.append(ScopeDecision(in_scope=in_scope, candidates=tuple(candidates), score=best))
        return decisions

    def _same_relation_first(self, query: str, candidates: list[Candidate], threshold: float) -> list[Candidate]:
        """Of the candidates in scope, the one whose input asks the query's relation first.

        The scope encoder scores a question about a subject nearly as high against an edit of any
        relation of that subject (0.98-0.99 with the trained encoder), so with many facts about one
        subject in memory a rephrasing's nearest edit is often another relation's. The relation is
        compared as the same-fact judge does, with the shared subject masked out."""
        rivals = [c for c in candidates if c.score >= threshold]
        if len(rivals) < 2:
            return candidates
        similarity = self.same_fact.query_similarities(query, [c.edit for c in rivals])
        best = max(range(len(rivals)), key=lambda i: (similarity[i], rivals[i].score))
        if best == 0:
            return candidates
        winner = rivals[best]
        return [winner] + [c for c in candidates if c is not winner]

    def _newest_first(self, candidates: list[Candidate], threshold: float) -> list[Candidate]:
        """Move the newest edit of the best match's fact to the front.

        A newer candidate takes over when the query is in scope of it too, its input is in scope
        of the best match's input (keys' cosine clears the threshold), and the two inputs ask the
        same relation (``SameFactJudge``, by ``same_fact_by``: cosine with the shared subject
        masked out clears ``same_fact_threshold``, and/or the verifier's mutual score): e.g.
        "What company made X?" -> A, then "Which firm built X?" -> B.
        Without the policy, whichever phrasing sits nearer the query would win, so a rephrasing
        could still get the superseded answer A; without the relation test, a newer edit of
        another fact about the same subject would answer (the subject dominates both keys).
        """
        best = candidates[0]
        rivals = [c for c in candidates[1:] if c.score >= threshold and c.edit.id > best.edit.id]
        if not rivals:
            return candidates
        keys = self.index.vectors([best.edit.id] + [c.edit.id for c in rivals])
        rivals = [c for c, sim in zip(rivals, keys[1:] @ keys[0]) if sim >= self.threshold]
        if not rivals:
            return candidates
        same_fact = [c for c, same in zip(rivals, self.same_fact.same_fact(best.edit, [c.edit for c in rivals])) if same]
        if not same_fact:
            return candidates
        winner = max(same_fact, key=lambda c: c.edit.id)
        return [winner] + [c for c in candidates if c is not winner]


def _exact_input_first(query: str, candidates: list[Candidate]) -> list[Candidate]:
    """An edit whose input is the query itself (after case and whitespace folding) is the best
    match, whatever a re-ranker or a near-tie says: an edit's own input must reach it."""
    key = input_key(query)
    for position, candidate in enumerate(candidates):
        if input_key(candidate.edit.input) == key:
            return [candidate] + candidates[:position] + candidates[position + 1:] if position else candidates
    return candidates


class CrossEncoderReranker:
    """The scope verifier: a cross-encoder that reads (edit input, query) together and scores "is
    this query in the edit's scope?". The dual encoder cannot tell "The capital of X is" from "The
    official language of X is" (the subject dominates both vectors); read together, the relation
    words decide. It scores only the candidates whose cosine reaches ``floor``, all queries of a
    batch in one pass, so a query with no near edit costs nothing extra."""

    def __init__(self, spec: str, threshold: float = 0.5, device: str = "cpu", floor: float = -1.0) -> None:
        from sentence_transformers import CrossEncoder

        from serac.base import resolve_device

        path = loadable_model(spec)
        with weight_errors(spec, path):
            self.model = CrossEncoder(path, device=str(resolve_device(device)))
        self.threshold = threshold
        self.floor = floor

    @classmethod
    def from_config(cls, config: ScopeConfig) -> "CrossEncoderReranker | None":
        """The config's verifier (``cross_encoder``, its threshold and floor), None without one."""
        if not config.cross_encoder:
            return None
        return cls(config.cross_encoder, config.cross_encoder_threshold, config.device, floor=config.cross_encoder_floor)

    def verify(self, queries: Sequence[str], rows: Sequence[list[Candidate]]) -> list[list[Candidate]]:
        """Each query's candidates at or above the floor, re-scored by the cross-encoder, best first
        (ties keep the dual encoder's order); candidates below the floor are dropped. An edit whose
        input is the query itself scores 1 unread: an edit's own input always reaches it."""
        kept = [[c for c in row if c.score >= self.floor] for row in rows]
        exact = [[input_key(c.edit.input) == input_key(query) for c in row] for query, row in zip(queries, kept)]
        pairs = [(c.edit.input, query) for query, row, flags in zip(queries, kept, exact)
                 for c, own in zip(row, flags) if not own]
        scores = iter(self._score(pairs) if pairs else ())
        return [sorted((Candidate(c.edit, 1.0 if own else float(next(scores))) for c, own in zip(row, flags)),
                       key=lambda c: -c.score) for row, flags in zip(kept, exact)]

    def mutual_scores(self, anchor: str, others: list[str]) -> list[float]:
        """For each of ``others``, the lower of the two verifier scores (``anchor`` as the edit and
        the other as the query, and the reverse): high only when each input is in the other's scope."""
        return self.pair_mutual_scores([(anchor, other) for other in others])

    def pair_mutual_scores(self, pairs: Sequence[tuple[str, str]]) -> list[float]:
        """:meth:`mutual_scores` for any pairs of inputs, in one cross-encoder pass."""
        if not pairs:
            return []
        scores = self._score([*pairs, *((b, a) for a, b in pairs)])
        return np.minimum(scores[: len(pairs)], scores[len(pairs):]).tolist()

    def _score(self, pairs: Sequence[tuple[str, str]]) -> np.ndarray:
        """The "in scope" score of each (edit input, query) pair."""
        return np.asarray(self.model.predict(list(pairs), convert_to_numpy=True, show_progress_bar=False),
                          dtype=np.float32).reshape(len(pairs), -1)[:, -1]

    def rerank(self, query: str, candidates: list[Candidate]) -> list[Candidate]:
        return self.verify([query], [candidates])[0]
