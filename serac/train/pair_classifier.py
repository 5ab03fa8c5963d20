"""Train the FC task's (evidence, claim) classifier: a cross-encoder over "evidence [SEP] claim"
with three labels (supports / refutes / not enough info).

Two stages, both plain cross-entropy on a transformers sequence-classification model:

1. *pretrain* on NLI-style pairs (e-SNLI dev+test, the VitaminC sample's train split): teaches the
   comparison itself on ~20k short, balanced pairs;
2. *finetune* on fact-verification pairs (Climate-FEVER, Fool Me Twice dev): Wikipedia-style
   evidence and claims, closer to the tests.

The tests (VitaminC sample test, FM2 test, Symmetric FEVER dev/test) never reach training:
:func:`serac.tasks.fc.corpora.classifier_training_pairs` refuses them and drops any pair sharing a
claim or evidence with them. Each finished stage is saved (``<out>/stage-<name>``), so a killed run
resumes at the first unfinished stage; the final model is ``save_pretrained`` into ``<out>``.
"""

from __future__ import annotations

import json
import logging
import math
import random
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar, Sequence

import numpy as np
import torch

from serac.config import (
    DEFAULT_ENCODER,
    DEVICE,
    FRACTION,
    INTEGER,
    MODEL_NAME,
    NON_NEGATIVE_INT,
    POSITIVE_INT,
    POSITIVE_NUMBER,
    Config,
    each,
    option,
    optional,
)
from serac.data.io import PathArg
from serac.errors import ConfigError, ModelNotAvailableError

logger = logging.getLogger(__name__)

LABELS = ("supports", "refutes", "not enough info")  # the FC task's labels, in id order
DONE_FILE = "stage_done.json"


@dataclass
class PairClassifierConfig(Config):
    """Training of the (evidence, claim) classifier (sizes chosen so one CPU thread finishes in
    about 40 minutes)."""

    section: ClassVar[str] = "pair_classifier"

    model: str = option(DEFAULT_ENCODER, "Starting weights (any encoder transformers can put a "
                        "sequence-classification head on).", check=MODEL_NAME)
    pretrain_splits: tuple[str, ...] = option(("esnli:dev", "esnli:test", "vitaminc:train"),
                                              "NLI-style splits for stage 1.", check=each(MODEL_NAME, "split names"))
    finetune_splits: tuple[str, ...] = option(("climate_fever", "fm2:dev"), "Fact-verification splits for stage 2.",
                                              check=each(MODEL_NAME, "split names"))
    pretrain_pairs: int | None = option(None, "Cap on stage-1 pairs (seeded sample); None: all.",
                                        check=optional(POSITIVE_INT))
    pretrain_epochs: int = option(1, "Stage-1 epochs (0 skips the stage).", check=NON_NEGATIVE_INT)
    finetune_epochs: int = option(2, "Stage-2 epochs (0 skips the stage).", check=NON_NEGATIVE_INT)
    max_nei_fraction: float = option(0.34, "Cap on the share of 'not enough info' pairs in stage 2 "
                                     "(Climate-FEVER is 64% NEI).", check=FRACTION)
    max_length: int = option(128, "Tokens per (evidence, claim) pair; longer evidence is truncated first.",
                             check=POSITIVE_INT)
    batch_size: int = option(32, "Pairs per step.", check=POSITIVE_INT)
    lr: float = option(5e-5, "Peak learning rate of the encoder.", check=POSITIVE_NUMBER)
    head_lr: float = option(5e-4, "Learning rate of the new classification head.", check=POSITIVE_NUMBER)
    warmup_fraction: float = option(0.06, "Linear warm-up share of each stage's steps.", check=FRACTION)
    weight_decay: float = option(0.01, "AdamW weight decay.", check=FRACTION)
    validation_fraction: float = option(0.1, "Share of stage-2 claims held out (seeded, whole claims) to "
                                        "measure each stage on; 0 trains on all of them.", check=FRACTION)
    seed: int = option(0, "Random seed (data order, sampling, head initialisation).", check=INTEGER)
    device: str = option("cpu", "Where training runs: auto, cpu, cuda, cuda:N, mps.", check=DEVICE)

    def check(self) -> None:
        if self.pretrain_epochs == 0 and self.finetune_epochs == 0:
            raise ConfigError("pair_classifier: pretrain_epochs and finetune_epochs are both 0; nothing to train")


# -- model -------------------------------------------------------------------------------------------
def new_pair_classifier(model: str, *, seed: int = 0) -> tuple[Any, Any]:
    """(model, tokenizer): a fresh 3-label head on ``model`` (``embedded:`` names resolve)."""
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    from serac.models import resolve_model

    torch.manual_seed(seed)
    path = resolve_model(model)
    try:
        classifier = AutoModelForSequenceClassification.from_pretrained(
            path, num_labels=len(LABELS), id2label=dict(enumerate(LABELS)),
            label2id={label: i for i, label in enumerate(LABELS)}, dtype=torch.float32)
    except OSError as exc:
        raise ModelNotAvailableError(f"could not load {model!r} ({path}) as a sequence classifier: {exc}") from None
    return classifier, AutoTokenizer.from_pretrained(path)


def load_pair_classifier(directory: PathArg) -> tuple[Any, Any]:
    """(model, tokenizer) saved by :func:`train_pair_classifier` (eval mode)."""
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    try:
        model = AutoModelForSequenceClassification.from_pretrained(str(directory), dtype=torch.float32)
    except OSError as exc:
        raise ModelNotAvailableError(f"{directory} holds no saved classifier ({exc}); train one with "
                                     "scripts/train_fc_classifier.py") from None
    return model.eval(), AutoTokenizer.from_pretrained(str(directory))


def _batch(tokenizer: Any, pairs: Sequence[tuple[str, str]], max_length: int, device: Any) -> dict:
    """Dynamic padding: each batch is padded to its own longest pair; the longer text (the evidence,
    nearly always) is truncated first."""
    return tokenizer([e for e, _ in pairs], [c for _, c in pairs], padding=True, truncation="longest_first",
                     max_length=max_length, return_tensors="pt").to(device)


def train_steps(
    model: Any,
    tokenizer: Any,
    pairs: Sequence[tuple[str, str]],
    labels: Sequence[str],
    config: PairClassifierConfig,
    *,
    epochs: int,
    desc: str = "train",
    max_steps: int | None = None,
) -> list[float]:
    """Cross-entropy over ``pairs`` for ``epochs`` (AdamW, linear warm-up then decay; the head at
    ``head_lr``). Returns the loss of every step; the model is left in eval mode."""
    from tqdm.auto import tqdm
    from transformers import get_linear_schedule_with_warmup

    if len(pairs) != len(labels):
        raise ConfigError(f"{len(pairs)} pairs but {len(labels)} labels")
    label2id = {str(label): int(i) for label, i in model.config.label2id.items()}
    unknown = sorted(set(labels) - set(label2id))
    if unknown:
        raise ConfigError(f"labels {unknown} are not the classifier's ({', '.join(label2id)})")
    device = next(model.parameters()).device
    # The head is the module the model's class names for its classifier output (not a name guess):
    head_ids = {id(p) for p in _head(model).parameters()}
    groups = [
        {"params": [p for p in model.parameters() if id(p) not in head_ids], "lr": config.lr},
        {"params": [p for p in model.parameters() if id(p) in head_ids], "lr": config.head_lr},
    ]
    optimizer = torch.optim.AdamW(groups, weight_decay=config.weight_decay)
    per_epoch = math.ceil(len(pairs) / config.batch_size)
    total = min(per_epoch * epochs, max_steps or per_epoch * epochs)
    scheduler = get_linear_schedule_with_warmup(optimizer, int(config.warmup_fraction * total), total)
    targets = torch.tensor([label2id[label] for label in labels])
    lengths = [len(e) + len(c) for e, c in pairs]
    rng = random.Random(config.seed)
    losses: list[float] = []
    model.train()
    try:
        with tqdm(total=total, desc=desc, unit="step", mininterval=10) as bar:
            for _ in range(epochs):
                for rows in _length_batches(lengths, config.batch_size, rng):
                    logits = model(**_batch(tokenizer, [pairs[i] for i in rows], config.max_length, device)).logits
                    loss = torch.nn.functional.cross_entropy(logits, targets[rows].to(device))
                    optimizer.zero_grad()
                    loss.backward()
                    torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
                    optimizer.step()
                    scheduler.step()
                    losses.append(loss.item())
                    bar.update(1)
                    bar.set_postfix(loss=f"{np.mean(losses[-50:]):.3f}")
                    if len(losses) >= total:
                        return losses
    finally:
        model.eval()
    return losses


def _length_batches(lengths: Sequence[int], batch_size: int, rng: random.Random, pool: int = 50) -> list[list[int]]:
    """Shuffled batches of similar length: shuffle, sort within pools of ``pool`` batches, shuffle
    the batches. With dynamic padding this cuts the padded tokens (and CPU time) of mixed-length
    Wikipedia evidence by about a third while every epoch still sees every pair once."""
    order = list(range(len(lengths)))
    rng.shuffle(order)
    batches = []
    for start in range(0, len(order), batch_size * pool):
        chunk = sorted(order[start : start + batch_size * pool], key=lengths.__getitem__)
        batches += [chunk[i : i + batch_size] for i in range(0, len(chunk), batch_size)]
    rng.shuffle(batches)
    return batches


def _head(model: Any) -> torch.nn.Module:
    """The classification head: transformers' sequence classifiers keep it as ``classifier``
    (BERT family) or ``score`` (decoder LMs); anything else is refused."""
    for attribute in ("classifier", "score"):
        module = getattr(model, attribute, None)
        if isinstance(module, torch.nn.Module):
            return module
    raise ModelNotAvailableError(f"{type(model).__name__} has no classifier/score head")


@torch.inference_mode()
def predict(model: Any, tokenizer: Any, pairs: Sequence[tuple[str, str]], *, batch_size: int = 64,
            max_length: int = 128) -> list[str]:
    """The argmax label of each (evidence, claim) pair."""
    from tqdm.auto import tqdm

    device = next(model.parameters()).device
    id2label = model.config.id2label
    out: list[str] = []
    for start in tqdm(range(0, len(pairs), batch_size), desc="predict", unit="batch", mininterval=10,
                      disable=len(pairs) <= batch_size * 4):
        logits = model(**_batch(tokenizer, pairs[start : start + batch_size], max_length, device)).logits
        out += [str(id2label[int(i)]) for i in logits.argmax(dim=-1)]
    return out


def hold_out_claims(pairs: Sequence[Any], fraction: float, seed: int) -> tuple[list, list]:
    """(train, held out): a seeded ``fraction`` of the distinct claims, with every pair of each, held
    out, so no held-out claim is seen with other evidence in training."""
    claims = sorted({p.claim for p in pairs})
    held = set(random.Random(seed).sample(claims, round(fraction * len(claims)))) if fraction else set()
    return [p for p in pairs if p.claim not in held], [p for p in pairs if p.claim in held]


def validation_accuracy(model: Any, tokenizer: Any, pairs: Sequence[Any], max_length: int) -> dict[str, Any]:
    """3-way accuracy on ``pairs`` and supports/refutes accuracy on their decided ones (argmax of all
    three labels: a "not enough info" answer to a decided pair counts as wrong)."""
    predicted = predict(model, tokenizer, [(p.evidence, p.claim) for p in pairs], max_length=max_length)
    decided = [(q, p.label) for q, p in zip(predicted, pairs) if p.label != LABELS[2]]
    return {"n_pairs": len(pairs), "accuracy": float(np.mean([q == p.label for q, p in zip(predicted, pairs)])),
            "n_decided": len(decided),
            "decided_accuracy": float(np.mean([q == g for q, g in decided])) if decided else None}


# -- the two-stage pipeline ----------------------------------------------------------------------
def train_pair_classifier(
    data_root: PathArg, vitaminc_dir: PathArg, out_dir: PathArg, config: PairClassifierConfig | None = None
) -> dict:
    """Train both stages into ``out_dir`` (resuming at the first unfinished stage) and return a
    summary: pair counts per split and label, losses, seconds."""
    from serac.base import resolve_device
    from serac.tasks.fc.corpora import classifier_training_pairs

    config = config or PairClassifierConfig()
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    device = resolve_device(config.device)
    stages = [
        ("pretrain", config.pretrain_splits, config.pretrain_epochs, None),
        ("finetune", config.finetune_splits, config.finetune_epochs, config.max_nei_fraction),
    ]
    summary: dict[str, Any] = {"config": config.to_dict(), "labels": list(LABELS), "stages": {}}
    model = tokenizer = None
    started = time.perf_counter()
    # Stage 2's pairs, loaded once; a seeded share of their claims is held out of both stages, so each
    # stage is measured on the same claims
    stage2, validation = hold_out_claims(
        classifier_training_pairs(data_root, vitaminc_dir, config.finetune_splits,
                                  max_nei_fraction=config.max_nei_fraction, seed=config.seed),
        config.validation_fraction, config.seed)
    held = {p.claim for p in validation}
    for name, splits, epochs, nei_cap in stages:
        stage_dir = out / f"stage-{name}"
        if epochs == 0:
            continue
        if (stage_dir / DONE_FILE).exists():
            summary["stages"][name] = json.loads((stage_dir / DONE_FILE).read_text())
            model, tokenizer = load_pair_classifier(stage_dir)
            logger.info("stage %s already done (%s): resumed from it", name, stage_dir)
            continue
        if model is None:
            model, tokenizer = new_pair_classifier(config.model, seed=config.seed)
        model.to(device)
        if name == "finetune":
            data = stage2
        else:
            data = classifier_training_pairs(data_root, vitaminc_dir, splits, max_nei_fraction=nei_cap,
                                             seed=config.seed)
            if config.pretrain_pairs is not None and config.pretrain_pairs < len(data):
                data = random.Random(config.seed).sample(data, config.pretrain_pairs)
            data = [p for p in data if p.claim not in held]
        t = time.perf_counter()
        losses = train_steps(model, tokenizer, [(p.evidence, p.claim) for p in data], [p.label for p in data],
                             config, epochs=epochs, desc=name)
        record = {
            "splits": list(splits),
            "n_pairs": len(data),
            "labels": {label: sum(p.label == label for p in data) for label in LABELS},
            "nei_cap": nei_cap if nei_cap is not None else None,
            "steps": len(losses),
            "loss_first_50": float(np.mean(losses[:50])),
            "loss_last_50": float(np.mean(losses[-50:])),
            "seconds": time.perf_counter() - t,
        }
        if validation:
            record["validation"] = validation_accuracy(model, tokenizer, validation, config.max_length)
        model.save_pretrained(stage_dir)
        tokenizer.save_pretrained(stage_dir)
        (stage_dir / DONE_FILE).write_text(json.dumps(record, indent=2) + "\n")
        summary["stages"][name] = record
        logger.info("stage %s: %s", name, record)
    assert model is not None and tokenizer is not None  # config.check: some stage has epochs
    model.save_pretrained(out)
    tokenizer.save_pretrained(out)
    summary["seconds"] = time.perf_counter() - started
    (out / "train_summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    return summary
