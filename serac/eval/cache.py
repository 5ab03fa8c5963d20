"""Memoised, batched access to a language model for evaluation.

Greedy decoding is deterministic, so an answer depends only on the exact text fed to the model and
the decoding settings. :class:`CachedLM` keys answers (and teacher-forced scores) by that formatted
text: the unedited "before" predictions, the out-of-scope rows the router sends to the base model,
and counterfactual prompts whose retrieved edit did not change between two checkpoints are computed
once per run and shared by every method and every number of edits.

Misses are computed in batches (left padding). Padding can in principle flip a near-tied argmax; a
cached answer is computed once, so before/after comparisons of the same prompt are always
consistent. Latency measurements switch the cache off (:meth:`CachedLM.disabled`).
"""

from __future__ import annotations

import contextlib
import copy
import inspect
import time
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import torch

from serac.base import GREEDY, GenerationOptions, HFTextModel, Prompt

ProgressHook = Callable[[str, int, int], None]  # (what, done, total)


class CachedLM:
    """Wraps an :class:`~serac.base.HFTextModel` (or anything with ``format``/``generate``/
    ``teacher_forced``) with a memo keyed by the formatted prompt. Other attributes pass through, so
    it stands in wherever the router expects a base or counterfactual language model."""

    def __init__(
        self, lm: HFTextModel, progress: ProgressHook | None = None, label: str = "lm", reuse_prefix: bool = False
    ) -> None:
        self.lm = lm
        self.progress = progress
        self.label = label
        self.enabled = True
        # Prompts that share a long prefix (the counterfactual model's few-shot examples) compute it once.
        self.prefix = PrefixReuse(lm) if reuse_prefix and PrefixReuse.supports(lm) else None
        self._answers: dict[tuple[str, int], str] = {}
        self._scores: dict[tuple[str, str], float] = {}
        self.hits = 0
        self.misses = 0
        self.seconds = 0.0  # spent computing misses

    def __getattr__(self, name: str) -> Any:  # only called for names not found on self
        return getattr(self.__dict__["lm"], name)

    def format(self, prompt: Prompt) -> str:
        return self.lm.format(prompt)

    @contextlib.contextmanager
    def disabled(self) -> Iterator[None]:
        """Compute everything afresh inside the block (for timing), and store nothing."""
        previous, self.enabled = self.enabled, False
        try:
            yield
        finally:
            self.enabled = previous

    def clear(self) -> None:
        self._answers.clear()
        self._scores.clear()

    # -- generation ------------------------------------------------------------------------------
    def generate(self, prompts: Sequence[Prompt], options: GenerationOptions = GREEDY) -> list[str]:
        if not self.enabled or options.temperature > 0 or options.seed is not None or options.stop:
            return self.lm.generate(prompts, options)
        began = time.perf_counter()
        try:
            return self._generate(prompts, options)
        finally:
            self.seconds += time.perf_counter() - began

    def _generate(self, prompts: Sequence[Prompt], options: GenerationOptions) -> list[str]:
        max_new = options.max_new_tokens or self.lm.max_new_tokens
        keys = [(self.lm.format(p), max_new) for p in prompts]
        todo: dict[tuple[str, int], Prompt] = {}
        for key, prompt in zip(keys, prompts):
            if key not in self._answers and key not in todo:
                todo[key] = prompt
        self.hits += len(keys) - len(todo)
        self.misses += len(todo)
        if todo and self.prefix is not None:
            answers = self.prefix.generate([key[0] for key in todo], max_new, options, self._progress("generate"))
            if answers is not None:
                self._answers.update(zip(todo, answers))
                todo = {}
        if todo:
            # Sort by length so each batch pads little (faster, and fewer padded rows).
            pending = sorted(todo.items(), key=lambda item: len(item[0][0]))
            chunk = max(1, getattr(self.lm, "batch_size", 1)) * 4
            for start in range(0, len(pending), chunk):
                part = pending[start : start + chunk]
                for (key, _), answer in zip(part, self.lm.generate([p for _, p in part], options)):
                    self._answers[key] = answer
                if self.progress:
                    self.progress(f"{self.label} generate", min(start + chunk, len(pending)), len(pending))
        return [self._answers[key] for key in keys]

    # -- teacher forcing -------------------------------------------------------------------------
    def teacher_forced(self, prompts: Sequence[Prompt], targets: Sequence[str]) -> list[float]:
        if len(prompts) != len(targets):
            raise ValueError(f"teacher_forced got {len(prompts)} prompts and {len(targets)} targets")
        began = time.perf_counter()
        try:
            return self._teacher_forced(prompts, targets)
        finally:
            self.seconds += time.perf_counter() - began

    def _teacher_forced(self, prompts: Sequence[Prompt], targets: Sequence[str]) -> list[float]:
        keys = [(self.lm.format(p), t) for p, t in zip(prompts, targets)]
        if not self.enabled:
            return batched_token_accuracy(self.lm, [k[0] for k in keys], [k[1] for k in keys])
        todo = list(dict.fromkeys(k for k in keys if k not in self._scores))
        self.hits += len(keys) - len(todo)
        self.misses += len(todo)
        if todo and self.prefix is not None:
            values = self.prefix.token_accuracy([k[0] for k in todo], [k[1] for k in todo],
                                                self._progress("teacher-forced"))
            if values is not None:
                self._scores.update(zip(todo, values))
                todo = []
        chunk = 64
        for start in range(0, len(todo), chunk):
            part = todo[start : start + chunk]
            values = batched_token_accuracy(self.lm, [k[0] for k in part], [k[1] for k in part])
            self._scores.update(zip(part, values))
            if self.progress:
                self.progress(f"{self.label} teacher-forced", min(start + chunk, len(todo)), len(todo))
        return [self._scores[key] for key in keys]

    def _progress(self, what: str) -> Callable[[int, int], None] | None:
        if self.progress is None:
            return None
        hook = self.progress
        return lambda done, total: hook(f"{self.label} {what}", done, total)


class PrefixReuse:
    """Greedy generation and teacher forcing over a key/value cache of the token prefix that all
    prompts of a call share (the counterfactual model's few-shot examples), computed once.

    Rows are batched: each row is ``prefix + padding + own suffix`` with the padding masked out and
    positions counted from the attention mask, so a row sees exactly the tokens and positions of its
    full prompt. As with any batched path, results can differ from batch size 1 only by float
    summation order."""

    MIN_PREFIX = 48  # shorter shared prefixes are not worth it

    def __init__(self, lm: HFTextModel) -> None:
        self.lm = lm
        self.batch_size = max(1, getattr(lm, "batch_size", 1))
        self._prefix: list[int] = []
        self._cache: Any = None

    @staticmethod
    def supports(lm: Any) -> bool:
        return not getattr(lm, "is_encoder_decoder", True) and hasattr(lm, "_generation_kwargs")

    def _ids(self, text: str) -> list[int]:
        return self.lm.tokenizer(text, add_special_tokens=not self.lm.use_chat_template)["input_ids"]

    def _prepare(self, texts: Sequence[str]) -> tuple[list[list[int]], int] | None:
        if len(texts) < 2 and not self._prefix:
            return None
        ids = [self._ids(t) for t in texts]
        # Longest common token prefix, leaving every prompt at least one token of its own.
        shortest = min(len(i) for i in ids) - 1
        n = 0
        reference = ids[0] if len(ids) > 1 else self._prefix
        while n < shortest and n < len(reference) and all(row[n] == reference[n] for row in ids):
            n += 1
        if n < self.MIN_PREFIX:
            return None
        if self._prefix[:n] != ids[0][:n] or len(self._prefix) != n:
            self._prefix = ids[0][:n]
            with torch.inference_mode():
                output = self.lm.model(input_ids=torch.tensor([self._prefix], device=self.lm.device), use_cache=True)
            cache = getattr(output, "cache", None)
            self._cache = cache if cache is not None else output.past_key_values
        return ids, n

    def _cache_kwarg(self, rows: int) -> dict[str, Any]:
        """A copy of the prefix cache for ``rows`` rows, under the name this transformers version
        takes (``cache`` from 5.x, ``past_key_values`` before)."""
        cache = copy.deepcopy(self._cache)
        if rows > 1:
            cache.batch_repeat_interleave(rows)
        name = "cache" if "cache" in inspect.signature(self.lm.model.forward).parameters else "past_key_values"
        return {name: cache}

    def _batches(self, ids: list[list[int]]) -> Iterator[list[int]]:
        order = sorted(range(len(ids)), key=lambda i: len(ids[i]))  # similar lengths: little padding
        for start in range(0, len(order), self.batch_size):
            yield order[start : start + self.batch_size]

    def generate(self, texts: Sequence[str], max_new: int, options: GenerationOptions,
                 progress: Callable[[int, int], None] | None = None) -> list[str] | None:
        prepared = self._prepare(texts)
        if prepared is None:
            return None
        ids, n = prepared
        pad = self.lm.tokenizer.pad_token_id
        kwargs = self.lm._generation_kwargs(max_new, options)
        answers: list[str] = [""] * len(ids)
        done = 0
        for batch in self._batches(ids):
            width = max(len(ids[i]) for i in batch) - n
            rows, masks = [], []
            for i in batch:
                own = ids[i][n:]
                rows.append(self._prefix + [pad] * (width - len(own)) + own)
                masks.append([1] * n + [0] * (width - len(own)) + [1] * len(own))
            with torch.inference_mode():
                device = self.lm.device
                output = self.lm.model.generate(input_ids=torch.tensor(rows, device=device),
                                                attention_mask=torch.tensor(masks, device=device),
                                                **self._cache_kwarg(len(batch)), **kwargs)
            texts_out = self.lm.tokenizer.batch_decode(output[:, n + width :], skip_special_tokens=True)
            for i, text in zip(batch, texts_out):
                answers[i] = text.strip()
            done += len(batch)
            if progress:
                progress(done, len(ids))
        return answers

    def token_accuracy(self, texts: Sequence[str], targets: Sequence[str],
                       progress: Callable[[int, int], None] | None = None) -> list[float] | None:
        prepared = self._prepare(texts)
        if prepared is None:
            return None
        ids, n = prepared
        pad = self.lm.tokenizer.pad_token_id
        target_ids = [self.lm._target_ids(text, target) for text, target in zip(texts, targets)]
        scores = [0.0] * len(ids)  # an empty target scores 0, as in the adapter
        rows_with_target = [i for i in range(len(ids)) if target_ids[i]]
        full = {i: ids[i] + target_ids[i] for i in rows_with_target}
        done = 0
        for batch in self._batches([full[i] for i in rows_with_target]):
            batch = [rows_with_target[b] for b in batch]
            width = max(len(full[i]) for i in batch) - n
            # Right padding: every real token keeps its causal context and position.
            rows = [full[i][n:] + [pad] * (width - len(full[i]) + n) for i in batch]
            masks = [[1] * n + [1] * (len(full[i]) - n) + [0] * (width - len(full[i]) + n) for i in batch]
            device = self.lm.device
            positions = torch.arange(n, n + width, device=device).unsqueeze(0).expand(len(batch), -1)
            with torch.inference_mode():
                logits = self.lm.model(input_ids=torch.tensor(rows, device=device),
                                       attention_mask=torch.tensor(masks, device=device),
                                       position_ids=positions, use_cache=True, **self._cache_kwarg(len(batch))).logits
            for r, i in enumerate(batch):
                # suffix index j predicts token j+1; the target starts at suffix index len(prompt) - n
                start = len(ids[i]) - n - 1
                predicted = logits[r, start : start + len(target_ids[i])].argmax(dim=-1)
                scores[i] = float((predicted == torch.tensor(target_ids[i], device=device)).float().mean())
            done += len(batch)
            if progress:
                progress(done, len(rows_with_target))
        return scores


def batched_token_accuracy(
    lm: HFTextModel, prompt_texts: Sequence[str], targets: Sequence[str], batch_size: int = 8
) -> list[float]:
    """The adapters' teacher-forced token accuracy (``HFTextModel._token_accuracy``: the share of
    target tokens that are the argmax given the formatted prompt and the gold prefix), computed for
    several rows per forward pass. Causal models only; anything else falls back to the adapter's
    row-by-row method. Right padding keeps every real token's causal context unchanged."""
    if not hasattr(lm, "_token_accuracy"):
        raise TypeError(
            f"{type(lm).__name__} has no teacher forcing; teacher-forced scores need a Hugging Face "
            "adapter (serac.base.HFTextModel); pass --scoring generation for other models"
        )
    if lm.is_encoder_decoder:
        with torch.inference_mode():
            return [lm._token_accuracy(p, t) for p, t in zip(prompt_texts, targets)]
    tokenizer = lm.tokenizer
    rows = []
    for prompt_text, target in zip(prompt_texts, targets):
        prompt_ids = tokenizer(prompt_text, add_special_tokens=not lm.use_chat_template)["input_ids"]
        rows.append((prompt_ids, lm._target_ids(prompt_text, target)))
    scores: list[float | None] = [0.0 if not t else None for _, t in rows]  # empty target: 0, as the adapter
    order = sorted((i for i, (_, t) in enumerate(rows) if t), key=lambda i: len(rows[i][0]) + len(rows[i][1]))
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
    for start in range(0, len(order), batch_size):
        batch = order[start : start + batch_size]
        sequences = [rows[i][0] + rows[i][1] for i in batch]
        width = max(len(s) for s in sequences)
        ids = torch.full((len(batch), width), pad, dtype=torch.long)
        mask = torch.zeros((len(batch), width), dtype=torch.long)
        for r, seq in enumerate(sequences):
            ids[r, : len(seq)] = torch.tensor(seq)
            mask[r, : len(seq)] = 1
        with torch.inference_mode():
            logits = lm.model(input_ids=ids.to(lm.device), attention_mask=mask.to(lm.device)).logits
        for r, i in enumerate(batch):
            prompt_ids, target_ids = rows[i]
            # logits at position j predict token j+1: the target's tokens are predicted from
            # positions len(prompt)-1 .. len(prompt)+len(target)-2
            predicted = logits[r, len(prompt_ids) - 1 : len(prompt_ids) + len(target_ids) - 1].argmax(dim=-1)
            scores[i] = float((predicted == torch.tensor(target_ids, device=predicted.device)).float().mean())
    return [float(s) for s in scores]  # type: ignore[arg-type]
