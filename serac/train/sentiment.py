"""`serac train --task sentiment`: a LoRA counterfactual model and a scope encoder (trained and
calibrated as ``serac train`` does, :func:`serac.train.scope.fit_task_scope`), saved as a standard
serac artifact (``serac_config.json``), so ``EditedModel.from_pretrained(dir)`` loads it.

The counterfactual model reads ``Edit: Topic: X -> Sentiment: s`` plus the user's opinion prompt
(the compact "trained" format of :mod:`serac.counterfactual`) and is trained, as in the paper,
with likelihood on replies of the desired sentiment and unlikelihood on replies of the opposite
one, for the same topic and prompt.
"""

from __future__ import annotations

import json
import logging
import random
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import ClassVar, Sequence

import numpy as np
import torch

from serac.base import HFTextModel, load_text_model
from serac.config import (
    DEFAULT_ENCODER,
    DEFAULT_LM,
    DEVICE,
    FRACTION,
    INTEGER,
    MODEL_NAME,
    NON_NEGATIVE_INT,
    NON_NEGATIVE_NUMBER,
    POSITIVE_INT,
    POSITIVE_NUMBER,
    BaseModelConfig,
    Config,
    CounterfactualConfig,
    ScopeConfig,
    SeracConfig,
    option,
)
from serac.counterfactual import format_edit_prompt
from serac.data.io import PathArg
from serac.data.examples import EditExample, Probe
from serac.editor import CONFIG_FILE, SCOPE_DIR
from serac.errors import DataError
from serac.tasks.sentiment.data import TopicRecord, load_sentiment_data, topic_prompts
from serac.tasks.sentiment.prompts import SENTIMENTS, edit_input, edit_target
from serac.tasks.sentiment.scoring import likelihood_unlikelihood_loss, reply_batch, token_logprobs
from serac.train.config import ScopeTrainConfig
from serac.train.pairs import records_from_examples
from serac.train.scope import fit_task_scope

logger = logging.getLogger(__name__)


@dataclass
class SentimentTrainConfig(Config):
    """Training of the sentiment task's counterfactual LoRA and dual encoder."""

    section: ClassVar[str] = "sentiment"

    model: str = option(DEFAULT_LM, "The chat model (base and counterfactual start).", check=MODEL_NAME)
    encoder: str = option(DEFAULT_ENCODER, "The dual encoder's starting weights.", check=MODEL_NAME)
    epochs: int = option(3, "Counterfactual epochs.", check=POSITIVE_INT)
    lr: float = option(5e-4, "Counterfactual learning rate.", check=POSITIVE_NUMBER)
    batch_size: int = option(8, "Counterfactual batch size.", check=POSITIVE_INT)
    lora_r: int = option(8, "LoRA rank.", check=POSITIVE_INT)
    lora_alpha: int = option(16, "LoRA alpha.", check=POSITIVE_INT)
    unlikelihood_weight: float = option(1.0, "Weight of the unlikelihood loss on opposite-sentiment replies.",
                                        check=NON_NEGATIVE_NUMBER)
    max_length: int = option(160, "Prompt + reply tokens.", check=POSITIVE_INT)
    scope_steps: int = option(8, "Dual-encoder steps of serac train's scope training, 16 topics each (0 keeps the "
                              "pretrained encoder; 8 is about one pass over the training prompts).",
                              check=NON_NEGATIVE_INT)
    scope_lr: float = option(2e-5, "Dual-encoder learning rate.", check=POSITIVE_NUMBER)
    scope_prompts_per_topic: int = option(4, "Opinion prompts per topic for the dual encoder.", check=POSITIVE_INT)
    val_fraction: float = option(0.2, "Train topics held out to calibrate the scope threshold.", check=FRACTION)
    top_k: int = option(5, "Edits retrieved per query.", check=POSITIVE_INT)
    max_new_tokens: int = option(32, "Reply length cap.", check=POSITIVE_INT)
    generation_batch_size: int = option(8, "Rows per generate call.", check=POSITIVE_INT)
    seed: int = option(0, "Random seed.", check=INTEGER)
    device: str = option("auto", "Where training runs: auto (the GPU when torch sees one), cpu, cuda, cuda:N, mps.",
                         check=DEVICE)


@dataclass(frozen=True)
class TrainingExample:
    topic: str
    sentiment: str
    prompt: str
    good: str  # a reply of ``sentiment``
    bad: str  # a reply of the opposite sentiment, same topic


def opposite(sentiment: str) -> str:
    return SENTIMENTS[1 - SENTIMENTS.index(sentiment)]


def training_examples(records: Sequence[TopicRecord], seed: int = 0) -> list[TrainingExample]:
    """One example per kept reply: that reply is the good one for an edit of its sentiment; a
    seeded pick among the topic's kept replies of the other sentiment is the bad one."""
    rng = random.Random(seed)
    examples = []
    for record in records:
        for sentiment in SENTIMENTS:
            bad = record.kept(opposite(sentiment))
            if not bad:
                continue
            for reply in record.kept(sentiment):
                examples.append(
                    TrainingExample(record.topic, sentiment, reply.prompt, reply.text, rng.choice(bad).text)
                )
    return examples


def counterfactual_prompt(topic: str, sentiment: str, query: str) -> str:
    return format_edit_prompt([(edit_input(topic), edit_target(sentiment))], query)


def train_counterfactual(
    lm: HFTextModel, examples: Sequence[TrainingExample], config: SentimentTrainConfig
) -> list[dict]:
    """Wrap ``lm.model`` in a LoRA adapter (every linear layer, found by type) and train it;
    returns per-epoch stats. ``lm.model`` is left as the trained peft model, in eval mode."""
    from peft import LoraConfig, get_peft_model

    torch.manual_seed(config.seed)
    lora = LoraConfig(
        r=config.lora_r,
        lora_alpha=config.lora_alpha,
        lora_dropout=0.0,
        target_modules="all-linear",
        task_type="CAUSAL_LM",
    )
    model = get_peft_model(lm.model, lora)
    lm.model = model
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=config.lr)
    rng = random.Random(config.seed)
    history = []
    model.train()
    for epoch in range(config.epochs):
        order = list(range(len(examples)))
        rng.shuffle(order)
        stats: list[dict] = []
        for start in range(0, len(order), config.batch_size):
            rows = [examples[i] for i in order[start : start + config.batch_size]]
            prompts = [counterfactual_prompt(r.topic, r.sentiment, r.prompt) for r in rows]
            good = reply_batch(lm, prompts, [r.good for r in rows], eos=True, max_length=config.max_length)
            bad = reply_batch(lm, prompts, [r.bad for r in rows], eos=False, max_length=config.max_length)
            loss, info = likelihood_unlikelihood_loss(
                *token_logprobs(model, good),
                *token_logprobs(model, bad),
                unlikelihood_weight=config.unlikelihood_weight,
            )
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            stats.append({"loss": loss.item(), **info})
        summary = {"epoch": epoch, **{k: float(np.mean([s[k] for s in stats])) for k in stats[0]}}
        logger.info("counterfactual epoch %s", summary)
        history.append(summary)
    model.eval()
    return history


def scope_examples(records: Sequence[TopicRecord], prompts_per_topic: int, seed: int) -> list[EditExample]:
    """Each topic as a scope record: key ``Topic: X``, in-scope queries opinion prompts about X."""
    return [EditExample(edit_input(r.topic), edit_target(SENTIMENTS[0]),
                        (Probe(edit_input(r.topic), None), *(Probe(p, None) for p in topic_prompts(r.topic, prompts_per_topic, seed))),
                        (), subject=r.topic) for r in records]


def train_sentiment(data: PathArg, out_dir: str | Path, config: SentimentTrainConfig | None = None) -> dict:
    """Train on the ``train`` topics of a sentiment data set; write the artifact to ``out_dir``."""
    config = config or SentimentTrainConfig()
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    records = [r for r in load_sentiment_data(data) if r.split == "train"]
    if not records:
        raise DataError(f"{data} has no usable train topics; rebuild it with more topics")
    order = list(range(len(records)))
    random.Random(config.seed).shuffle(order)
    n_val = max(2, round(len(records) * config.val_fraction))
    val = [records[i] for i in order[:n_val]]
    train = [records[i] for i in order[n_val:]]
    summary: dict = {"config": asdict(config), "train_topics": len(train), "val_topics": len(val)}
    started = time.perf_counter()

    # 1. counterfactual: LoRA, likelihood + unlikelihood
    examples = training_examples(train, config.seed)
    lm = load_text_model(config.model, max_new_tokens=config.max_new_tokens, device=config.device)
    summary["examples"] = len(examples)
    summary["counterfactual_history"] = train_counterfactual(lm, examples, config)
    lm.model.save_pretrained(out / "adapter")
    summary["seconds_counterfactual"] = time.perf_counter() - started

    # 2. scope: serac train's scope training over (opinion prompt, "Topic: X") records, calibrated on
    # held-out topics
    t = time.perf_counter()
    scope = fit_task_scope(
        records_from_examples(scope_examples(train, config.scope_prompts_per_topic, config.seed + 1), "sentiment"),
        records_from_examples(scope_examples(val, config.scope_prompts_per_topic, config.seed), "sentiment"),
        ScopeTrainConfig(encoder=config.encoder, steps=max(config.scope_steps, 1), batch_records=16, lr=config.scope_lr,
                         top_k=config.top_k),
        out / SCOPE_DIR, fit=config.scope_steps > 0, seed=config.seed, device=config.device,
    )
    threshold, scope_encoder = scope["threshold"], scope["encoder"]
    summary.update(threshold=threshold, val_objective=scope["objective"], scope_losses=scope.get("losses", []),
                   seconds_scope=time.perf_counter() - t)

    # 3. the artifact: a standard serac config naming the parts
    SeracConfig(
        base=BaseModelConfig(
            model=config.model, max_new_tokens=config.max_new_tokens, batch_size=config.generation_batch_size
        ),
        scope=ScopeConfig(encoder=scope_encoder, threshold=threshold, top_k=config.top_k, conflicts="best",
                          same_fact_encoder=None),
        counterfactual=CounterfactualConfig(
            model=config.model,
            adapter="adapter",
            prompt="trained",
            num_edits=1,
            max_new_tokens=config.max_new_tokens,
            batch_size=config.generation_batch_size,
        ),
    ).save(out / CONFIG_FILE)
    summary["seconds"] = time.perf_counter() - started
    (out / "train_summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    return summary
