"""Sentiment evaluation: "Topic: X -> Sentiment: s" edits applied in batches of k or accumulated,
for SERAC and the baselines; in-scope replies judged by VADER, other-topic replies compared with
the unedited model's.

Methods:
- ``serac``: the router (scope encoder + LoRA counterfactual; other prompts go to the base model).
- ``icl``: retrieval in context: every prompt goes to the base chat model with its nearest edit
  stated in a system message (no scope decision).
- ``ft``: LoRA fine-tuning of the base model on the edit descriptors ("Topic: X" answered by
  "Sentiment: s"), as the paper's fine-tuning baseline edits, until it reproduces them (at most
  ``ft_steps`` steps per batch).

SERAC is scored on every edit and every other-topic prompt. The baselines regenerate every reply
after each edit (nothing can be reused), so on this CPU they are scored on a sample:
``baseline_edits`` edits per cell and ``baseline_out_of_scope`` other-topic prompts per batch.
"""

from __future__ import annotations

import copy
import logging
import math
import random
import time
from dataclasses import dataclass
from typing import Any, ClassVar, Sequence

import torch

from serac.base import GenerationOptions, HFTextModel
from serac.counterfactual import LMCounterfactual
from serac.editor import EditedModel
from serac.scope import ScopeClassifier
from serac.store import EditStore
from serac.config import INTEGER, POSITIVE_INT, POSITIVE_NUMBER, Config, each, one_of, option
from serac.tasks import TASK_METHODS
from serac.tasks.common import (
    BATCH_SIZES,
    CachedCounterfactual,
    CachedEncoder,
    CachedTextModel,
    checkpoints,
    edit_batches,
    mean,
    prompt_key,
    result_row,
)
from serac.tasks.sentiment.data import Judge, TopicRecord, topic_prompts
from serac.tasks.sentiment.metrics import changed_share, paper_es, sentiment_success
from serac.tasks.sentiment.model import InContextCounterfactual, sentiment_edit
from serac.tasks.sentiment.prompts import SENTIMENTS
from serac.tasks.sentiment.scoring import mean_reply_logprob, reply_batch, token_logprobs
from serac.tasks.sentiment.train import opposite

logger = logging.getLogger(__name__)

TASK = "sentiment"
METHODS = TASK_METHODS


@dataclass
class SentimentEvalConfig(Config):
    """How the sentiment task is evaluated."""

    section: ClassVar[str] = "sentiment"

    methods: tuple[str, ...] = option(METHODS, "Methods to evaluate.",
                                      check=each(one_of(METHODS), "sentiment methods"))
    batch_sizes: tuple[int, ...] = option(BATCH_SIZES, "Batch sizes k.", check=each(POSITIVE_INT, "positive integers"))
    sequential: bool = option(True, "Also run the sequential setting.")
    max_edits: int = option(75, "Eval topics used as edits; the rest are other-topic probes only.", check=POSITIVE_INT)
    prompts_per_edit: int = option(2, "In-scope opinion prompts per edited topic.", check=POSITIVE_INT)
    max_new_tokens: int = option(32, "Reply length cap.", check=POSITIVE_INT)
    teacher_forced: bool = option(True, "The paper's ES (costs a forward pass per reference reply).")
    baseline_edits: int = option(6, "Edits the costly baselines are run with.", check=POSITIVE_INT)
    baseline_out_of_scope: int = option(6, "Out-of-scope probes for the baselines.", check=POSITIVE_INT)
    ft_steps: int = option(5, "Fine-tuning baseline steps.", check=POSITIVE_INT)
    ft_lr: float = option(1e-3, "Fine-tuning baseline learning rate.", check=POSITIVE_NUMBER)
    seed: int = option(0, "Random seed.", check=INTEGER)


@dataclass(frozen=True)
class SentimentEdit:
    record: TopicRecord
    sentiment: str
    prompts: tuple[str, ...]  # in-scope opinion prompts

    @property
    def topic(self) -> str:
        return self.record.topic


def make_edits(records: Sequence[TopicRecord], prompts_per_edit: int, seed: int = 0) -> list[SentimentEdit]:
    """One edit per topic, sentiments alternating over a seeded order (half each)."""
    order = list(records)
    random.Random(seed).shuffle(order)
    return [
        SentimentEdit(r, SENTIMENTS[i % 2], tuple(topic_prompts(r.topic, prompts_per_edit, seed)))
        for i, r in enumerate(order)
    ]


class _Scorer:
    """Mean reply log-probabilities through one LM, memoised per (formatted prompt, reply)."""

    def __init__(self, lm: HFTextModel) -> None:
        self.lm = lm
        self.cache: dict[tuple[str, str], float] = {}

    def __call__(self, prompts: Sequence[Any], replies: Sequence[str]) -> list[float]:
        keys = [(prompt_key(p), r) for p, r in zip(prompts, replies)]
        todo = {k: i for i, k in enumerate(keys) if k not in self.cache}
        if todo:
            rows = list(todo.values())
            values = mean_reply_logprob(self.lm, [prompts[i] for i in rows], [replies[i] for i in rows])
            self.cache.update(zip(todo, values))
        return [self.cache[k] for k in keys]


class _RouterSession:
    """An EditedModel over shared models; scores replies through whichever model routing picks."""

    def __init__(self, shared: dict, cf_key: str, threshold: float) -> None:
        # Each topic is its own fact and a re-edit of a topic has the same input (the store keeps
        # the newest), so the nearest topic answers.
        scope = ScopeClassifier(shared["encoder"], threshold=threshold, top_k=shared["top_k"], conflicts="best")
        self.shared, self.cf_key = shared, cf_key
        self.editor = EditedModel(shared["base"], scope, shared[cf_key + "_cached"], EditStore(":memory:"))

    def add(self, edits: Sequence[SentimentEdit]) -> None:
        self.editor.add_many([sentiment_edit(e.topic, e.sentiment) for e in edits])

    def generate(self, prompts: Sequence[str], options: GenerationOptions) -> list[str]:
        return [a.text for a in self.editor.generate(list(prompts), options)]

    def routed(self, prompts: Sequence[str]) -> list[str | None]:
        return [d.edit.input if d.edit else None for d in self.editor.route(list(prompts))]

    def score(self, prompts: Sequence[str], replies: Sequence[str]) -> list[float]:
        decisions = self.editor.route(list(prompts))
        cf: LMCounterfactual = self.shared[self.cf_key]
        built = [
            cf.build_prompt(p, [c.edit for c in d.candidates]) if d.in_scope else p
            for p, d in zip(prompts, decisions)
        ]
        out = [0.0] * len(prompts)
        for scorer, rows in (
            (self.shared[self.cf_key + "_scorer"], [i for i, d in enumerate(decisions) if d.in_scope]),
            (self.shared["base_scorer"], [i for i, d in enumerate(decisions) if not d.in_scope]),
        ):
            if rows:
                for i, v in zip(rows, scorer([built[i] for i in rows], [replies[i] for i in rows])):
                    out[i] = v
        return out


class _FineTuneSession:
    """A LoRA-adapted copy of the base chat model, trained on the edit descriptors it receives."""

    def __init__(self, base_lm: HFTextModel, steps: int, lr: float, seed: int) -> None:
        from peft import LoraConfig, get_peft_model

        torch.manual_seed(seed)
        self.lm = copy.copy(base_lm)
        lora = LoraConfig(
            r=8, lora_alpha=16, lora_dropout=0.0, target_modules="all-linear", task_type="CAUSAL_LM"
        )
        self.lm.model = get_peft_model(copy.deepcopy(base_lm.model), lora)
        self.optimizer = torch.optim.AdamW([p for p in self.lm.model.parameters() if p.requires_grad], lr=lr)
        self.steps = steps
        self.scorer = _Scorer(self.lm)

    def add(self, edits: Sequence[SentimentEdit]) -> None:
        pairs = [sentiment_edit(e.topic, e.sentiment) for e in edits]
        inputs, targets = [p[0] for p in pairs], [p[1] for p in pairs]
        self.scorer.cache.clear()
        batch = reply_batch(self.lm, inputs, targets, eos=True)
        self.lm.model.train()
        try:
            for _ in range(self.steps):
                logp, mask = token_logprobs(self.lm.model, batch)
                if bool((logp[mask] > math.log(0.5)).all()):  # every target token is now the argmax
                    break
                loss = -(logp * mask).sum() / mask.sum()
                self.optimizer.zero_grad()
                loss.backward()
                self.optimizer.step()
        finally:
            self.lm.model.eval()

    def generate(self, prompts: Sequence[str], options: GenerationOptions) -> list[str]:
        return self.lm.generate(list(prompts), options)

    def routed(self, prompts: Sequence[str]) -> list[str | None]:
        return [None] * len(prompts)

    def score(self, prompts: Sequence[str], replies: Sequence[str]) -> list[float]:
        return self.scorer(list(prompts), list(replies))


class _Tally:
    def __init__(self) -> None:
        self.desired: list[str] = []
        self.labels: list[str] = []
        self.pre_labels: list[str] = []
        self.routed_right: list[bool] = []
        self.before: list[str] = []
        self.after: list[str] = []
        self.before_labels: list[str] = []
        self.after_labels: list[str] = []
        self.paper: list[tuple[float, float, float]] = []

    def rows(self, method: str, mode: str, n: int, routed: bool) -> list[dict]:
        gen = {
            "es": sentiment_success(self.labels, self.desired),
            "es_pre": sentiment_success(self.pre_labels, self.desired),  # the unedited model
            "dd": changed_share(self.before, self.after),
            "dd_sentiment": changed_share(self.before_labels, self.after_labels),
            "n_in_scope": len(self.labels),
            "n_out_of_scope": len(self.before),
        }
        if routed:
            gen["scope_recall"] = mean(self.routed_right)
        rows = [result_row(TASK, method, mode, n, "generation", m, v) for m, v in gen.items()]
        if self.paper:
            for name, column in (("es", 0), ("z_sent", 1), ("z_topic", 2)):
                rows.append(
                    result_row(
                        TASK, method, mode, n, "teacher_forced", name, mean(p[column] for p in self.paper)
                    )
                )
        return rows


def evaluate_sentiment(
    base_lm: HFTextModel,
    counterfactual_lm: HFTextModel,
    encoder: Any,
    threshold: float,
    records: Sequence[TopicRecord],
    judge: Judge,
    config: SentimentEvalConfig | None = None,
    top_k: int = 5,
) -> list[dict]:
    """ES/DD rows for every method, batch size and sequential checkpoint on the eval ``records``."""
    config = config or SentimentEvalConfig()
    options = GenerationOptions(max_new_tokens=config.max_new_tokens)
    all_edits = make_edits(records, config.prompts_per_edit, config.seed)
    edits, spare = all_edits[: config.max_edits], all_edits[config.max_edits :]
    spare_prompts = [p for e in spare for p in e.prompts]
    cf = LMCounterfactual(counterfactual_lm, prompt="trained", num_edits=1)
    icl = InContextCounterfactual(base_lm)
    shared = {
        "base": CachedTextModel(base_lm),
        "base_scorer": _Scorer(base_lm),
        "serac": cf,
        "serac_cached": CachedCounterfactual(cf),
        "serac_scorer": _Scorer(counterfactual_lm),
        "encoder": CachedEncoder(encoder),
        "top_k": top_k,
    }
    # the in-context baseline is the base model with other prompts: it shares the base's scorer
    shared.update(icl=icl, icl_cached=CachedCounterfactual(icl), icl_scorer=shared["base_scorer"])
    judged: dict[str, str] = {}

    def labels(texts: Sequence[str]) -> list[str]:
        todo = [t for t in dict.fromkeys(texts) if t not in judged]
        judged.update(zip(todo, (label for label, _ in judge(todo))))
        return [judged[t] for t in texts]

    def pre(prompts: Sequence[str]) -> list[str]:
        return shared["base"].generate(list(prompts), options)

    rng = random.Random(config.seed)
    warm_started = time.perf_counter()

    def session(method: str):
        if method == "serac":
            return _RouterSession(shared, "serac", threshold)
        if method == "icl":
            return _RouterSession(shared, "icl", -1.0)
        return _FineTuneSession(base_lm, config.ft_steps, config.ft_lr, config.seed)

    def score(
        current, chosen: Sequence[int], scored: Sequence[int], tally: _Tally, n_out: int | None
    ) -> None:
        chosen_set = set(chosen)
        # in scope: the prompts of the scored edits
        prompts = [p for i in scored for p in edits[i].prompts]
        desired = [edits[i].sentiment for i in scored for _ in edits[i].prompts]
        topics = [
            sentiment_edit(edits[i].topic, edits[i].sentiment)[0] for i in scored for _ in edits[i].prompts
        ]
        # out of scope: prompts of topics not in memory
        others = [p for j, e in enumerate(edits) if j not in chosen_set for p in e.prompts] + spare_prompts
        if n_out is not None and len(others) > n_out:
            others = rng.sample(others, n_out)
        replies = current.generate(prompts + others, options)
        inside, outside = replies[: len(prompts)], replies[len(prompts) :]
        tally.desired += desired
        tally.labels += labels(inside)
        tally.pre_labels += labels(pre(prompts))
        tally.routed_right += [r == t for r, t in zip(current.routed(prompts), topics)]
        before = pre(others)
        tally.before += before
        tally.after += outside
        tally.before_labels += labels(before)
        tally.after_labels += labels(outside)
        if config.teacher_forced:
            for i in scored:
                record, s = edits[i].record, edits[i].sentiment
                good, bad = record.kept(s), record.kept(opposite(s))
                if not good or not bad:  # no reference reply of one sentiment for this topic
                    continue
                post = current.score([r.prompt for r in good + bad], [r.text for r in good + bad])
                before_good = shared["base_scorer"]([r.prompt for r in good], [r.text for r in good])
                tally.paper.append(
                    paper_es(mean(post[: len(good)]), mean(post[len(good) :]), mean(before_good))
                )

    if "serac" in config.methods:
        # Answer every prompt once, in full generation batches, with all edits in memory: the
        # caches key on the prompt and the edit the model reads, which routing picks the same way
        # in every smaller memory that holds that edit, so the per-batch loops below mostly hit
        # the cache instead of decoding two prompts at a time. Exact, only faster.
        warm = session("serac")
        warm.add(edits)
        in_scope = [p for e in edits for p in e.prompts]
        pre(in_scope + spare_prompts)
        warm.generate(in_scope, options)
        if config.teacher_forced:
            refs = [r for e in edits for r in e.record.kept("positive") + e.record.kept("negative")]
            warm.score([r.prompt for r in refs], [r.text for r in refs])
            shared["base_scorer"]([r.prompt for r in refs], [r.text for r in refs])
        logger.info("sentiment: warmed the caches in %.1fs", time.perf_counter() - warm_started)

    rows: list[dict] = []
    for method in config.methods:
        baseline = method != "serac"
        n_out = config.baseline_out_of_scope if baseline else None
        for k in config.batch_sizes:
            started = time.perf_counter()
            batches = edit_batches(len(edits), k)
            if not batches:
                logger.warning("sentiment: %d edits are fewer than a batch of %d; skipped", len(edits), k)
                continue
            if baseline:  # at most baseline_edits scored edits, in as few batches as that takes
                batches = batches[: max(1, config.baseline_edits // k)]
            tally = _Tally()
            for batch in batches:
                current = session(method)
                current.add([edits[i] for i in batch])
                scored = list(batch)[: config.baseline_edits] if baseline else list(batch)
                score(current, list(batch), scored, tally, n_out)
            rows += tally.rows(method, "batch", k, routed=not baseline or method == "icl")
            rows.append(result_row(TASK, method, "batch", k, "generation", "n_batches", len(batches)))
            logger.info(
                "sentiment %s batch k=%d: %d batches, %.1fs",
                method,
                k,
                len(batches),
                time.perf_counter() - started,
            )
        if config.sequential:
            started = time.perf_counter()
            current = session(method)
            added = 0
            for n in checkpoints(len(edits), config.batch_sizes):
                for edit in edits[added:n]:  # one edit at a time
                    current.add([edit])
                added = n
                scored = list(range(n))
                if baseline and n > config.baseline_edits:  # spread the sample over the history
                    scored = sorted(random.Random(config.seed + n).sample(scored, config.baseline_edits))
                tally = _Tally()
                score(current, list(range(n)), scored, tally, n_out)
                rows += tally.rows(method, "sequential", n, routed=not baseline or method == "icl")
            logger.info("sentiment %s sequential: %.1fs", method, time.perf_counter() - started)
    return rows
