"""Scope-encoder fine-tuning and threshold calibration for the task editors.

Contrastive training with in-batch negatives (sentence-transformers' multiple-negatives ranking
loss): each (query, edit key) pair pulls together, every other key in the batch pushes away. A
threshold is then chosen on held-out scores to separate "nearest edit is the right one" from
"no edit covers this input".
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Sequence

import numpy as np
import torch

from serac.models import resolve_model

logger = logging.getLogger(__name__)


def finetune_dual_encoder(
    encoder: str,
    pairs: Sequence[tuple[str, str]],
    out_dir: str | Path,
    *,
    epochs: int = 2,
    batch_size: int = 16,
    lr: float = 2e-5,
    seed: int = 0,
    device: str = "cpu",
) -> list[float]:
    """Fine-tune a sentence-transformers encoder on (query, key) pairs and save it to ``out_dir``.
    Keys in one batch are distinct by construction (a duplicate key would be a false negative).
    Returns per-epoch mean losses."""
    from sentence_transformers import SentenceTransformer
    from sentence_transformers.losses import MultipleNegativesRankingLoss
    from sentence_transformers.util import batch_to_device

    from serac.base import resolve_device

    if not pairs:
        raise ValueError("finetune_dual_encoder got no (query, key) pairs")
    model = SentenceTransformer(resolve_model(encoder), device=str(resolve_device(device)))
    loss_fn = MultipleNegativesRankingLoss(model)
    optimizer = torch.optim.AdamW(model.parameters(), lr=lr)
    generator = torch.Generator().manual_seed(seed)
    losses = []
    model.train()
    for _ in range(epochs):
        order = torch.randperm(len(pairs), generator=generator).tolist()
        total, count = 0.0, 0
        for batch in _distinct_key_batches([pairs[i] for i in order], batch_size):
            if len(batch) < 2:
                continue  # one pair has no in-batch negative
            features = [batch_to_device(model.tokenize(texts), model.device)
                        for texts in ([q for q, _ in batch], [k for _, k in batch])]
            loss = loss_fn(features, labels=None)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            total, count = total + loss.item() * len(batch), count + len(batch)
        losses.append(total / max(count, 1))
    model.eval()
    model.save(str(out_dir))
    return losses


def _distinct_key_batches(pairs: Sequence[tuple[str, str]], size: int) -> list[list[tuple[str, str]]]:
    batches: list[list[tuple[str, str]]] = []
    current: list[tuple[str, str]] = []
    keys: set[str] = set()
    waiting: list[tuple[str, str]] = []
    for pair in pairs:
        if pair[1] in keys:
            waiting.append(pair)
            continue
        current.append(pair)
        keys.add(pair[1])
        if len(current) == size:
            batches.append(current)
            current, keys = [], set()
            while waiting and len(current) < size and waiting[0][1] not in keys:
                pair = waiting.pop(0)
                current.append(pair)
                keys.add(pair[1])
    if current:
        batches.append(current)
    batches.extend([p] for p in waiting)
    return batches


def calibrate_threshold(positives: Sequence[float], negatives: Sequence[float]) -> tuple[float, float]:
    """The cosine threshold that maximises Youden's J (true-positive rate minus false-positive
    rate) of ``score >= threshold``; returns (threshold, J). Positives are the best scores of
    inputs whose nearest edit is theirs, negatives the best scores of inputs no edit covers.
    Ties between equally good thresholds go to the midpoint of the gap they share."""
    pos, neg = np.asarray(positives, dtype=float), np.asarray(negatives, dtype=float)
    if not len(pos) or not len(neg):
        raise ValueError(f"calibration needs positives and negatives, got {len(pos)} and {len(neg)}")
    candidates = np.unique(np.concatenate([pos, neg]))
    best_j, best_t = -2.0, float(candidates[0])
    for i, t in enumerate(candidates):
        j = float((pos >= t).mean() - (neg >= t).mean())
        if j > best_j + 1e-12:
            below = candidates[i - 1] if i > 0 else t
            best_j, best_t = j, float((t + below) / 2) if i > 0 else float(t)
    return best_t, best_j
