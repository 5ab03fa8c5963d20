"""Fine-tuning a sequence classifier (a classifier base model, or a pair-classifier counterfactual)
with cross-entropy, and fresh classification heads on a pretrained encoder.

The head is found from the model class, not from parameter names: everything outside the backbone
the class names in ``base_model_prefix`` (``bert``, ``model``, ``roberta``, ...) is the task head
transformers adds on top (``classifier``, ``score``, ``pre_classifier``, whatever a class calls it).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch

from serac.base import Prompt, SequenceClassifier, resolve_device
from serac.errors import ConfigError, DataError, ModelNotAvailableError
from serac.models import resolve_model


def head_parameters(model: Any) -> list[torch.nn.Parameter]:
    """The parameters of ``model`` outside its backbone (``getattr(model, model.base_model_prefix)``):
    the classification head a ``*ForSequenceClassification`` class puts on top."""
    prefix = getattr(model, "base_model_prefix", "")
    backbone = getattr(model, prefix, None) if prefix else None
    if not isinstance(backbone, torch.nn.Module) or backbone is model:
        raise ModelNotAvailableError(f"{type(model).__name__} names no backbone module (base_model_prefix "
                                     f"{prefix!r}); expected a transformers *ForSequenceClassification model")
    inside = {id(p) for p in backbone.parameters()}
    return [p for p in model.parameters() if id(p) not in inside]


def train_classifier(
    classifier: SequenceClassifier,
    items: Sequence[Prompt | tuple[str, str]],
    labels: Sequence[str],
    *,
    epochs: int = 3,
    lr: float = 5e-5,
    head_lr: float | None = 1e-3,
    batch_size: int = 16,
    seed: int = 0,
    max_steps: int | None = None,
) -> list[float]:
    """Fine-tune every weight with cross-entropy, the head at ``head_lr`` (a randomly initialised head
    trained at the backbone's rate barely moves in a few hundred steps). Returns the per-epoch mean
    loss; the model is left in eval mode."""
    if len(items) != len(labels):
        raise DataError(f"{len(items)} inputs but {len(labels)} labels; pass one label per input")
    unknown = sorted(set(labels) - set(classifier.labels))
    if unknown:
        raise DataError(f"labels {unknown} are not among the classifier's labels {list(classifier.labels)}")
    model = classifier.model
    head = head_parameters(model)
    head_ids = {id(p) for p in head}
    groups = [{"params": [p for p in model.parameters() if id(p) not in head_ids], "lr": lr},
              {"params": head, "lr": head_lr or lr}]
    optimizer = torch.optim.AdamW(groups, weight_decay=0.01)
    targets = torch.tensor([classifier.label2id[label] for label in labels])
    generator = torch.Generator().manual_seed(seed)
    losses, steps = [], 0
    model.train()
    try:
        for _ in range(epochs):
            order = torch.randperm(len(items), generator=generator).tolist()
            total, count = 0.0, 0
            for start in range(0, len(order), batch_size):
                rows = order[start : start + batch_size]
                logits = model(**classifier.encode([items[i] for i in rows])).logits
                loss = torch.nn.functional.cross_entropy(logits, targets[rows].to(logits.device))
                optimizer.zero_grad()
                loss.backward()
                optimizer.step()
                total, count, steps = total + loss.item() * len(rows), count + len(rows), steps + 1
                if max_steps is not None and steps >= max_steps:
                    break
            losses.append(total / max(count, 1))
            if max_steps is not None and steps >= max_steps:
                break
    finally:
        model.eval()
    return losses


def new_classifier(encoder: str, labels: Sequence[str], *, max_length: int = 256,
                   device: str = "cpu") -> SequenceClassifier:
    """A fresh classification head over ``labels`` on a pretrained encoder (e.g.
    ``embedded:all-minilm-l6-v2``), on ``device``."""
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    if len(set(labels)) != len(labels) or len(labels) < 2:
        raise ConfigError(f"a classifier needs at least two distinct labels, got {list(labels)}")
    path = resolve_model(encoder)
    model = AutoModelForSequenceClassification.from_pretrained(
        path, num_labels=len(labels), id2label=dict(enumerate(labels)),
        label2id={label: i for i, label in enumerate(labels)}, dtype=torch.float32,
    ).to(resolve_device(device))
    return SequenceClassifier(model, AutoTokenizer.from_pretrained(path), max_length=max_length)
