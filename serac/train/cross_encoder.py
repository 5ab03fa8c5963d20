"""Optional cross-encoder re-ranker: reads (edit input, query) together and scores "in scope?".

It is trained after the dual encoder, on the dual encoder's own mistakes: positives are (key, its
in-scope query); negatives are the other keys the trained dual encoder retrieves for an in-scope
query, and the keys it retrieves for out-of-scope queries. At inference it re-ranks the top-k
and its (sigmoid) score is thresholded instead of the cosine; the threshold is calibrated on the
same validation split as the dual encoder's.
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

from serac.train.calibrate import MISSED, SourceScores
from serac.train.checkpoint import linear_schedule, load_checkpoint, save_checkpoint, step_rng
from serac.train.config import CrossEncoderTrainConfig
from serac.train.pairs import EditRecord

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
    embed: Embed, model: Any, records: Sequence[EditRecord], top_k: int
) -> dict[str, SourceScores]:
    """Like ``calibrate.score_validation``, but each query's best score is the cross-encoder's
    best over the dual encoder's top-k, as ``serac.scope.CrossEncoderReranker`` decides."""
    keys = embed([r.key for r in records])
    index = faiss.IndexFlatIP(keys.shape[1])
    index.add(np.ascontiguousarray(keys, dtype=np.float32))
    depth = min(top_k, len(records))
    out: dict[str, SourceScores] = {}
    for kind in ("positive", "negative"):
        rows = [(i, q) for i, r in enumerate(records) for q in (r.positives if kind == "positive" else r.negatives)]
        if not rows:
            continue
        _, ids = index.search(embed([q for _, q in rows]), depth)
        pairs = [(records[j].key, q) for (_, q), row in zip(rows, ids) for j in row if j >= 0]
        scores = np.asarray(model.predict(pairs, convert_to_numpy=True, show_progress_bar=False), dtype=np.float32)
        cursor = 0
        for (i, _), row in zip(rows, ids):
            valid = [j for j in row if j >= 0]
            row_scores = scores[cursor : cursor + len(valid)]
            cursor += len(valid)
            part = out.setdefault(records[i].source, SourceScores())
            best = int(np.argmax(row_scores))
            if kind == "positive":
                part.positive.append(float(row_scores[best]))
                order = [valid[k] for k in np.argsort(-row_scores)]
                hits = [rank for rank, j in enumerate(order) if records[j].group == records[i].group]
                part.positive_rank.append(hits[0] if hits else MISSED)
            else:
                part.negative.append(float(row_scores[best]))
    return out
