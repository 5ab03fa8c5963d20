"""Optional scope verifier: a cross-encoder that reads (edit input, query) together and scores "in scope?".

It is trained after the dual encoder, on the mistakes a dual encoder makes: positives are (key, its
in-scope query) and some (key, key); negatives are the other keys the trained dual encoder retrieves
for an in-scope query, the keys it retrieves for out-of-scope queries, and questions that name an
edit's subject but ask something else (other relations' templates filled with the subject, and
questions asked through the edited fact, serac.data.chains), which the dual encoder routes to the
edit almost always (issue 14's hijacking). At inference it reads the dual encoder's candidates whose
cosine reaches a floor, and its (sigmoid) score is thresholded instead of the cosine; the threshold
is calibrated on the same validation split as the dual encoder's, with the same kinds of negatives.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any, Callable, Sequence

import faiss
import numpy as np
import torch
import torch.nn.functional as F
from sentence_transformers.util import batch_to_device
from tqdm.auto import tqdm

from serac.data.chains import SECOND_HOPS, chain_question
from serac.train.calibrate import MISSED, SourceScores
from serac.train.checkpoint import linear_schedule, load_checkpoint, save_checkpoint, step_rng
from serac.train.config import CrossEncoderTrainConfig
from serac.train.pairs import EditRecord, relation_template

logger = logging.getLogger(__name__)

Embed = Callable[[Sequence[str]], np.ndarray]
Pair = tuple[str, str]  # (edit input, query)


def load_cross_encoder(spec: str, seed: int = 0, device: str = "cpu") -> Any:
    """A CrossEncoder with one output logit; a sentence-transformers bi-encoder checkpoint
    (e.g. MiniLM) gets a classification head freshly initialised from ``seed``."""
    from sentence_transformers import CrossEncoder

    from serac.base import resolve_device
    from serac.models import resolve_model

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return CrossEncoder(str(resolve_model(spec)), num_labels=1, device=str(resolve_device(device)))


def mine_pairs(embed: Embed, records: Sequence[EditRecord], candidates: int) -> tuple[list[Pair], list[Pair]]:
    """(positive pairs, hard negative pairs) from the trained dual encoder's retrieval."""
    keys = embed([r.key for r in records])
    index = faiss.IndexFlatIP(keys.shape[1])
    index.add(np.ascontiguousarray(keys, dtype=np.float32))
    depth = min(candidates, len(records))
    positives: list[Pair] = []
    negatives: list[Pair] = []
    rows = [(i, q) for i, r in enumerate(records) for q in r.positives]
    if rows:
        _, ids = index.search(embed([q for _, q in rows]), depth)
        for (i, query), row in zip(rows, ids):
            positives.append((records[i].key, query))
            negatives.extend((records[j].key, query) for j in row if j >= 0 and records[j].group != records[i].group)
    rows = [(i, q) for i, r in enumerate(records) for q in r.negatives]
    if rows:
        _, ids = index.search(embed([q for _, q in rows]), min(2, len(records)))
        for (_, query), row in zip(rows, ids):
            negatives.extend((records[j].key, query) for j in row if j >= 0)
    return positives, negatives


def hijack_questions(record: EditRecord, chains: bool = True) -> list[str]:
    """Questions that name ``record``'s subject but are out of its scope: its ``subject_negatives``
    (other relations' templates, :func:`serac.train.pairs.add_subject_negatives`) and, with
    ``chains``, questions asked through its fact."""
    questions = list(record.subject_negatives)
    template = relation_template(record)
    if chains and template is not None:
        questions += [q for hop in SECOND_HOPS if (q := chain_question(template, record.subject, hop))]
    return questions


def verifier_pairs(embed: Embed, records: Sequence[EditRecord], candidates: int,
                   chains: bool = True, rephrasings: int = 0) -> tuple[list[Pair], list[Pair]]:
    """All training pairs: :func:`mine_pairs`' plus every fourth record's (key, key) as a positive
    (an edit's own input must pass), each record's :func:`hijack_questions` as negatives and, with
    ``rephrasings``, the reverse case: each subject negative read as another edit's input against up
    to ``rephrasings`` of the record's own in-scope queries. A memory that holds several facts about
    one subject (a long-lived one does) otherwise lets a rephrasing reach a sibling fact's edit."""
    positives, negatives = mine_pairs(embed, records, candidates)
    positives += [(r.key, r.key) for r in records[::4]]
    negatives += [(r.key, q) for r in records for q in hijack_questions(r, chains)]
    negatives += [(other, query) for r in records for other in r.subject_negatives
                  for query in r.positives[:rephrasings]]
    return positives, negatives


def train_cross_encoder(
    model: Any,
    positives: Sequence[Pair],
    negatives: Sequence[Pair],
    config: CrossEncoderTrainConfig,
    seed: int,
    checkpoint: str | Path | None = None,
    progress: bool = True,
) -> dict[str, list[float]]:
    """Balanced binary cross-entropy on (key, query) pairs; resumes from ``checkpoint``."""
    if not positives or not negatives:
        raise ValueError("cross-encoder training needs both positive and negative pairs")
    torch.manual_seed(seed)
    if config.freeze_embeddings:
        from serac.train.scope import freeze_embeddings

        freeze_embeddings(model)
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(params, lr=config.lr)
    scheduler = linear_schedule(optimizer, config.steps, config.warmup)
    history: dict[str, list[float]] = {"loss": []}
    start = 0
    modules = {"cross_encoder": model}
    if checkpoint is not None and Path(checkpoint).exists():
        state = load_checkpoint(checkpoint, modules=modules, optimizer=optimizer, scheduler=scheduler)
        start, history = state["step"], state["extra"].get("history", history)
    model.train()
    half = max(1, config.batch_pairs // 2)
    bar = tqdm(total=config.steps, initial=start, desc="cross-encoder", disable=not progress, dynamic_ncols=True)
    for step in range(start, config.steps):
        rng = step_rng(seed, step, stream=2)
        pos = [positives[i] for i in rng.choice(len(positives), size=min(half, len(positives)), replace=False)]
        neg = [negatives[i] for i in rng.choice(len(negatives), size=min(half, len(negatives)), replace=False)]
        features = batch_to_device(model.preprocess(pos + neg), model.device)
        logits = model(features)["scores"].reshape(-1)
        labels = torch.tensor([1.0] * len(pos) + [0.0] * len(neg), device=logits.device)
        loss = F.binary_cross_entropy_with_logits(logits, labels)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        optimizer.step()
        scheduler.step()
        value = loss.item()
        history["loss"].append(value)
        bar.update(1)
        bar.set_postfix(loss=f"{value:.3f}")
        done = step + 1
        if checkpoint is not None and done % config.checkpoint_every == 0 and done < config.steps:
            save_checkpoint(checkpoint, step=done, modules=modules, optimizer=optimizer, scheduler=scheduler,
                            losses=history["loss"], extra={"history": history})
    bar.close()
    model.eval()
    return history


def score_validation_reranked(
    embed: Embed, model: Any, records: Sequence[EditRecord], top_k: int, floor: float = -1.0, chains: bool = True
) -> dict[str, SourceScores]:
    """Like ``calibrate.score_validation``, but each query's best score is the verifier's best over
    the dual encoder's top-k candidates whose cosine reaches ``floor`` (0 when none does), as
    ``serac.scope.CrossEncoderReranker`` decides. The records' :func:`hijack_questions` are scored as
    out-of-scope queries of their own dataset, ``same_subject``, so the threshold weighs them as much
    as each dataset's ordinary negatives."""
    keys = embed([r.key for r in records])
    index = faiss.IndexFlatIP(keys.shape[1])
    index.add(np.ascontiguousarray(keys, dtype=np.float32))
    depth = min(top_k, len(records))
    queries = {
        "positive": [(i, q, records[i].source) for i, r in enumerate(records) for q in r.positives],
        "negative": [(i, q, records[i].source) for i, r in enumerate(records) for q in r.negatives]
                    + [(i, q, "same_subject") for i, r in enumerate(records) for q in hijack_questions(r, chains)],
    }
    out: dict[str, SourceScores] = {}
    for kind, rows in queries.items():
        if not rows:
            continue
        cosines, ids = index.search(embed([q for _, q, _ in rows]), depth)
        near = [[j for c, j in zip(row_cos, row) if j >= 0 and c >= floor] for row_cos, row in zip(cosines, ids)]
        pairs = [(records[j].key, q) for (_, q, _), row in zip(rows, near) for j in row]
        scores = (np.asarray(model.predict(pairs, convert_to_numpy=True, show_progress_bar=False), dtype=np.float32)
                  if pairs else np.zeros(0, dtype=np.float32))
        cursor = 0
        for (i, _, source), row in zip(rows, near):
            row_scores = scores[cursor : cursor + len(row)]
            cursor += len(row)
            part = out.setdefault(source, SourceScores())
            best = float(row_scores.max()) if len(row) else 0.0
            if kind == "positive":
                part.positive.append(best)
                order = [row[k] for k in np.argsort(-row_scores, kind="stable")]
                hits = [rank for rank, j in enumerate(order) if records[j].group == records[i].group]
                part.positive_rank.append(hits[0] if hits else MISSED)
            else:
                part.negative.append(best)
    return out
