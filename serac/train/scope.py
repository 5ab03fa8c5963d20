"""Contrastive fine-tuning of the scope dual encoder (a sentence-transformers model).

A plain torch loop over the SentenceTransformer: on a 2-core CPU it is the easiest to keep to a
time budget, checkpoint and resume exactly. Each step encodes B keys (edit inputs) and their
queries, and combines three losses over the (key x query) cosine matrix:

1. query -> key softmax: each in-scope query picks its own edit among the batch's keys, which
   hold its mined neighbours (edits sharing a subject or relation). This is what "which edit?"
   needs when thousands of edits are indexed.
2. key -> query softmax: each key prefers its in-scope query over every other query in the batch,
   the hard out-of-scope ones included (MultipleNegativesRankingLoss with hard negatives).
3. pairwise sigmoid (SigLIP-style): every (key, query) pair is classified in or out of scope
   around a learned threshold. Ranking losses only order candidates; the editor thresholds the
   best cosine, so the absolute scale must separate in-scope from out-of-scope globally.
"""

from __future__ import annotations

import logging
import math
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from tqdm.auto import tqdm

from serac.errors import DataError
from serac.train.checkpoint import linear_schedule, load_checkpoint, save_checkpoint, step_rng
from serac.train.config import ScopeTrainConfig
from serac.train.pairs import EditRecord, Neighbours, sample_batch

logger = logging.getLogger(__name__)


def load_sentence_encoder(spec: str, device: str = "cpu") -> Any:
    from sentence_transformers import SentenceTransformer

    from serac.base import resolve_device
    from serac.models import resolve_model

    return SentenceTransformer(str(resolve_model(spec)), device=str(resolve_device(device)))


def encode(model: Any, texts: Sequence[str], batch_size: int = 64) -> np.ndarray:
    """Unit vectors, exactly as ``serac.scope.SentenceEncoder`` computes them at inference (same
    batch size: padding to a different batch width perturbs the last float bits)."""
    vectors = model.encode(
        list(texts), batch_size=batch_size, convert_to_numpy=True, normalize_embeddings=True, show_progress_bar=False
    )
    return np.asarray(vectors, dtype=np.float32).reshape(len(texts), -1)


class ScopeLoss(nn.Module):
    def __init__(self, scale: float = 20.0, sigmoid_weight: float = 1.0, threshold: float = 0.7) -> None:
        super().__init__()
        self.scale = scale
        self.sigmoid_weight = sigmoid_weight
        # The sigmoid's own threshold and sharpness are learned; the editor's threshold is
        # calibrated afterwards on held-out data, so these only shape training.
        self.threshold = nn.Parameter(torch.tensor(float(threshold)))
        self.log_sharpness = nn.Parameter(torch.tensor(math.log(20.0)))

    def forward(
        self, keys: torch.Tensor, queries: torch.Tensor, n_positive: int, ignore: torch.Tensor
    ) -> tuple[torch.Tensor, dict[str, float]]:
        # keys (B, d), queries (Q, d), unit length; query i < n_positive is in scope of key i only.
        sim = keys @ queries.T  # (B, Q) cosines
        target = torch.arange(n_positive)
        masked = sim.masked_fill(ignore, float("-inf"))
        q2k = F.cross_entropy(self.scale * masked[:, :n_positive].T, target)  # (P, B) rows
        k2q = F.cross_entropy(self.scale * masked[:n_positive], target)  # (B, Q) rows
        labels = torch.zeros_like(sim)
        labels[target, target] = 1.0
        logits = self.log_sharpness.exp() * (sim - self.threshold)
        pair = F.binary_cross_entropy_with_logits(logits, labels, reduction="none")
        valid = ~ignore
        positive = pair[(labels > 0) & valid].mean()
        negative = pair[(labels == 0) & valid].mean()
        sigmoid = 0.5 * (positive + negative)
        loss = q2k + k2q + self.sigmoid_weight * sigmoid
        return loss, {"q2k": q2k.item(), "k2q": k2q.item(), "sigmoid": sigmoid.item()}


def freeze_embeddings(model: nn.Module) -> int:
    """Freeze every ``nn.Embedding`` (found by type); returns the number of frozen parameters."""
    frozen = 0
    for module in model.modules():
        if isinstance(module, nn.Embedding):
            for p in module.parameters():
                p.requires_grad_(False)
                frozen += p.numel()
    return frozen


def _embed(model: Any, texts: list[str]) -> torch.Tensor:
    from sentence_transformers.util import batch_to_device

    features = batch_to_device(model.preprocess(texts), model.device)
    return F.normalize(model(features)["sentence_embedding"], dim=-1)


def train_scope_encoder(
    model: Any,
    records: Sequence[EditRecord],
    neighbours: Neighbours,
    config: ScopeTrainConfig,
    seed: int,
    checkpoint: str | Path | None = None,
    progress: bool = True,
) -> dict[str, list[float]]:
    """Train ``model`` in place for ``config.steps`` steps; resume from ``checkpoint`` when it exists.

    Returns the per-step loss history (total and parts)."""
    if len(records) < 2:
        raise ValueError(f"scope training needs at least 2 edit records, got {len(records)}")
    torch.manual_seed(seed)
    if config.freeze_embeddings:
        freeze_embeddings(model)
    loss_fn = ScopeLoss(config.scale, config.sigmoid_weight).to(model.device)
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(
        [{"params": params, "weight_decay": config.weight_decay},
         {"params": list(loss_fn.parameters()), "weight_decay": 0.0, "lr": config.lr * 100}],
        lr=config.lr,
    )
    scheduler = linear_schedule(optimizer, config.steps, config.warmup)
    history: dict[str, list[float]] = {"loss": [], "q2k": [], "k2q": [], "sigmoid": []}
    start = 0
    modules = {"encoder": model, "loss": loss_fn}
    if checkpoint is not None and Path(checkpoint).exists():
        state = load_checkpoint(checkpoint, modules=modules, optimizer=optimizer, scheduler=scheduler)
        start, history = state["step"], state["extra"].get("history", history)
        logger.info("resuming scope training at step %d of %d", start, config.steps)

    model.train()
    bar = tqdm(total=config.steps, initial=start, desc="scope encoder", disable=not progress, dynamic_ncols=True)
    for step in range(start, config.steps):
        batch = sample_batch(records, neighbours, config.batch_records, config.neighbour_share, step_rng(seed, step))
        keys = _embed(model, batch.keys)
        queries = _embed(model, batch.queries)
        loss, parts = loss_fn(keys, queries, batch.n_positive, torch.from_numpy(batch.ignore).to(model.device))
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        optimizer.step()
        scheduler.step()
        value = loss.item()
        history["loss"].append(value)
        for name, value in parts.items():
            history[name].append(value)
        bar.update(1)
        bar.set_postfix(loss=f"{value:.3f}")
        done = step + 1
        if checkpoint is not None and (done % config.checkpoint_every == 0) and done < config.steps:
            save_checkpoint(checkpoint, step=done, modules=modules, optimizer=optimizer, scheduler=scheduler,
                            losses=history["loss"], extra={"history": history})
    bar.close()
    model.eval()
    return history


def fit_task_scope(
    train: Sequence[EditRecord],
    val: Sequence[EditRecord],
    config: ScopeTrainConfig,
    out_dir: str | Path,
    *,
    fit: bool = True,
    seed: int = 0,
    device: str = "cpu",
    progress: bool = False,
) -> dict[str, Any]:
    """The scope of a task artifact (fc, sentiment) on the same stack as ``serac train``: mine
    neighbours with the pretrained encoder, train it for ``config.steps`` steps (``fit`` False: keep
    the pretrained encoder), save it to ``out_dir`` and calibrate the threshold on ``val`` with
    held-out negatives (:func:`serac.train.calibrate.score_validation`). Returns the encoder spec
    to write in the artifact (``out_dir``'s name, or the pretrained spec), the threshold and the
    validation summary."""
    from serac.train.calibrate import choose_threshold, score_validation, summarize
    from serac.train.pairs import mine_neighbours

    model = load_sentence_encoder(config.encoder, device)
    result: dict[str, Any] = {"encoder": config.encoder}
    if fit and len(train) >= 2:
        neighbours = mine_neighbours(train, lambda t: encode(model, t), config.mine_k)
        result["losses"] = train_scope_encoder(model, train, neighbours, config, seed, progress=progress)["loss"]
        model.save(str(out_dir), create_model_card=False)
        result["encoder"] = Path(out_dir).name
    scores = score_validation(lambda t: encode(model, t), val, held_out=True)
    if not any(part.positive and part.negative for part in scores.values()):
        raise DataError(f"{len(val)} validation edits give no in-scope and out-of-scope scores to calibrate on; "
                         "hold out more edits (val_fraction)")
    result["threshold"], result["objective"] = choose_threshold(scores)
    result["validation"] = summarize(scores, result["threshold"], len(val))
    return result
