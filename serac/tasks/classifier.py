"""Sequence-classifier adapters: a classifier as the router's base model, and a pair classifier as
its counterfactual model.

Which adapter a checkpoint gets is read from its config: a model whose ``config.architectures``
names a class in transformers' sequence-classification mapping is a classifier; anything else goes
to :func:`serac.base.load_text_model`. Answers are label strings (``config.id2label``), so a
classifier plugs into the same ``TextModel`` / ``CounterfactualModel`` protocols as a language model
and the router never knows the difference.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch

from serac.base import GREEDY, GenerationOptions, Prompt, query_text, resolve_device
from serac.edits import Edit
from serac.errors import ModelNotAvailableError
from serac.models import loadable_model, resolve_model

logger = logging.getLogger(__name__)


def _classifier_architectures() -> frozenset[str]:
    from transformers.models.auto.modeling_auto import MODEL_FOR_SEQUENCE_CLASSIFICATION_MAPPING_NAMES

    names: set[str] = set()
    for value in MODEL_FOR_SEQUENCE_CLASSIFICATION_MAPPING_NAMES.values():
        names.update((value,) if isinstance(value, str) else value)
    return frozenset(names)


def is_sequence_classifier(config: Any) -> bool:
    """True when ``config.architectures`` names a sequence-classification class."""
    architectures = getattr(config, "architectures", None) or ()
    return any(a in _classifier_architectures() for a in architectures)


class SequenceClassifier:
    """Any ``AutoModelForSequenceClassification`` as a text model: ``generate`` returns the argmax
    label name of each prompt (a chat prompt is read as its last user message). Inputs may also be
    ``(text, text_pair)`` tuples, which the tokenizer joins with its separator."""

    def __init__(self, model: Any, tokenizer: Any, *, batch_size: int = 32, max_length: int = 256) -> None:
        self.model = model.eval()
        self.tokenizer = tokenizer
        self.batch_size = batch_size
        self.max_length = max_length
        id2label = model.config.id2label
        self.labels: tuple[str, ...] = tuple(str(id2label[i]) for i in range(len(id2label)))

    @property
    def label2id(self) -> dict[str, int]:
        return {label: i for i, label in enumerate(self.labels)}

    def _texts(self, items: Sequence[Prompt | tuple[str, str]]) -> tuple[list[str], list[str] | None]:
        firsts, seconds = [], []
        for item in items:
            if isinstance(item, tuple) and len(item) == 2 and all(isinstance(x, str) for x in item):
                firsts.append(item[0])
                seconds.append(item[1])
            else:
                firsts.append(query_text(item))
        if seconds and len(seconds) != len(firsts):
            raise ValueError("mix of single texts and (text, text_pair) tuples in one call; pass one kind")
        return firsts, (seconds or None)

    def encode(self, items: Sequence[Prompt | tuple[str, str]]) -> dict[str, torch.Tensor]:
        firsts, seconds = self._texts(items)
        return self.tokenizer(
            firsts, seconds, return_tensors="pt", padding=True, truncation=True, max_length=self.max_length
        ).to(self.model.device)

    @torch.inference_mode()
    def predict_proba(self, items: Sequence[Prompt | tuple[str, str]]) -> np.ndarray:
        """(len(items), n_labels) class probabilities, in label order."""
        rows = []
        for start in range(0, len(items), self.batch_size):
            logits = self.model(**self.encode(items[start : start + self.batch_size])).logits
            rows.append(logits.float().softmax(dim=-1).cpu().numpy())
        return np.concatenate(rows) if rows else np.zeros((0, len(self.labels)), dtype=np.float32)

    def predict(self, items: Sequence[Prompt | tuple[str, str]]) -> list[str]:
        return [self.labels[int(i)] for i in self.predict_proba(items).argmax(axis=1)] if len(items) else []

    def generate(self, prompts: Sequence[Prompt], options: GenerationOptions = GREEDY) -> list[str]:
        return self.predict(prompts)  # decoding options do not apply to a classifier

    def teacher_forced(self, prompts: Sequence[Prompt], targets: Sequence[str]) -> list[float]:
        """A label is a single "token": 1.0 where the predicted label is the target, else 0.0."""
        return [float(p == t) for p, t in zip(self.predict(prompts), targets)]

    def save(self, directory: str | Path) -> None:
        self.model.save_pretrained(directory)
        self.tokenizer.save_pretrained(directory)


def load_classifier(spec: str, *, batch_size: int = 32, max_length: int = 256) -> SequenceClassifier:
    """Load a saved sequence classifier (a directory or model id; ``embedded:`` presets resolve)."""
    from transformers import AutoConfig, AutoModelForSequenceClassification, AutoTokenizer

    path = loadable_model(spec)
    try:
        config = AutoConfig.from_pretrained(path)
    except (OSError, ValueError) as exc:
        raise ModelNotAvailableError(f"could not read a model config from {spec!r} ({path}): {exc}") from None
    if not is_sequence_classifier(config):
        raise ModelNotAvailableError(
            f"{spec!r} is not a sequence classifier (config.architectures = {config.architectures}); "
            "expected a *ForSequenceClassification checkpoint, e.g. one written by `python -m serac.tasks train fc`"
        )
    model = AutoModelForSequenceClassification.from_pretrained(path, dtype=torch.float32)
    tokenizer = AutoTokenizer.from_pretrained(path)
    return SequenceClassifier(model, tokenizer, batch_size=batch_size, max_length=max_length)


def load_task_model(spec: str, **kwargs: Any) -> Any:
    """A classifier checkpoint becomes a :class:`SequenceClassifier`; any other model goes to
    :func:`serac.base.load_text_model` (causal or seq2seq). Chosen from the config, never the name."""
    from transformers import AutoConfig

    from serac.base import load_text_model

    path = loadable_model(spec)
    try:
        config = AutoConfig.from_pretrained(path)
    except (OSError, ValueError) as exc:
        raise ModelNotAvailableError(f"could not read a model config from {spec!r} ({path}): {exc}") from None
    if is_sequence_classifier(config):
        keep = {k: v for k, v in kwargs.items() if k in ("batch_size", "max_length")}
        return load_classifier(path, **keep)
    return load_text_model(spec, **kwargs)


class PairClassifierCounterfactual:
    """A counterfactual model that classifies ``(edit input, query)`` pairs: for fact-checking the
    edit input is a piece of evidence and the query a claim; the answer is the label the evidence
    gives the claim. It reads the best-matching edit only (``num_edits`` = 1)."""

    num_edits = 1

    def __init__(self, classifier: SequenceClassifier) -> None:
        self.classifier = classifier

    def _pairs(self, queries: Sequence[Prompt], edits: Sequence[Sequence[Edit]]) -> list[tuple[str, str]]:
        pairs = []
        for query, retrieved in zip(queries, edits):
            if not retrieved:
                raise ValueError("the pair-classifier counterfactual got a query with no retrieved edit")
            pairs.append((retrieved[0].input, query_text(query)))
        return pairs

    def generate(
        self, queries: Sequence[Prompt], edits: Sequence[Sequence[Edit]], options: GenerationOptions = GREEDY
    ) -> list[str]:
        return self.classifier.predict(self._pairs(queries, edits))

    def teacher_forced(
        self, queries: Sequence[Prompt], edits: Sequence[Sequence[Edit]], targets: Sequence[str]
    ) -> list[float]:
        predicted = self.classifier.predict(self._pairs(queries, edits))
        return [float(p == t) for p, t in zip(predicted, targets)]


def train_classifier(
    classifier: SequenceClassifier,
    items: Sequence[str | tuple[str, str]],
    labels: Sequence[str],
    *,
    epochs: int = 3,
    lr: float = 5e-5,
    head_lr: float | None = 1e-3,
    batch_size: int = 16,
    seed: int = 0,
    max_steps: int | None = None,
) -> list[float]:
    """Fine-tune every weight with cross-entropy (the new head at ``head_lr``: a randomly
    initialised head trained at the encoder's rate barely moves in a few hundred steps).
    Returns the per-epoch mean loss. The model is left in eval mode."""
    if len(items) != len(labels):
        raise ValueError(f"{len(items)} inputs but {len(labels)} labels")
    unknown = sorted(set(labels) - set(classifier.labels))
    if unknown:
        raise ValueError(f"labels {unknown} are not among the classifier's labels {list(classifier.labels)}")
    model = classifier.model
    head = [
        p for n, p in model.named_parameters() if n.startswith(("classifier.", "score.", "pre_classifier."))
    ]
    head_ids = {id(p) for p in head}
    body = [p for p in model.parameters() if id(p) not in head_ids]
    groups = [{"params": body, "lr": lr}]
    if head:
        groups.append({"params": head, "lr": head_lr or lr})
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
                encoded = classifier.encode([items[i] for i in rows])
                logits = model(**encoded).logits
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
    """A fresh classification head on a pretrained encoder (e.g. ``embedded:all-minilm-l6-v2``), on
    ``device``."""
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    path = resolve_model(encoder)
    model = AutoModelForSequenceClassification.from_pretrained(
        path,
        num_labels=len(labels),
        id2label=dict(enumerate(labels)),
        label2id={label: i for i, label in enumerate(labels)},
        dtype=torch.float32,
    ).to(resolve_device(device))
    return SequenceClassifier(model, AutoTokenizer.from_pretrained(path), max_length=max_length)
