"""Editing methods under evaluation, all behind one small interface.

A method is anything with a ``name`` and four calls (:class:`EditingMethod`): ``reset()`` empties its
memory (or restores its weights), ``apply(edits)`` adds ``(input, target)`` pairs, ``predict(prompts)``
answers by greedy decoding, and ``teacher_forced(prompts, targets)`` returns per-row token accuracy.
The runner treats them all alike; a new method plugs in by implementing those and registering a
factory in :data:`METHODS` (or passing the object to the runner directly).

Built in, all on the same base model (loaded once, shared through :class:`EvalModels`):

- ``serac`` / ``serac-shipped`` / ``serac-untrained``: :class:`~serac.editor.EditedModel` with a
  trained artifact directory (``serac train``), the trained defaults shipped in the package, or the
  untrained embedded defaults (``SeracConfig()``);
- ``ft``: fine-tune a copy of the base model on the edits (the SERAC paper's FT baseline);
- ``lu``: a lookup cache on the base model's hidden states (the paper's LU baseline);
- ``icl``: retrieval in context: the nearest edit is prepended to every prompt, with no scope decision;
- ``grace``: a GRACE codebook at one block of the base model (:mod:`serac.baselines.grace`);
- ``base``: the unedited base model (a reference: ES without editing, DD 0 by construction).
"""

from __future__ import annotations

import contextlib
import copy
import logging
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import numpy as np
import torch

from serac.base import GenerationOptions, HFCausalLM, HFTextModel, SequenceClassifier, load_text_model
from serac.baselines.grace import GraceConfig, GraceMethod
from serac.config import DEFAULT_ENCODER, DEFAULT_LM, SeracConfig
from serac.counterfactual import CounterfactualModel, LMCounterfactual, load_counterfactual
from serac.editor import CONFIG_FILE, DEFAULT_ARTIFACT, EditedModel, load_artifact_config
from serac.errors import ConfigError, ModelNotAvailableError, SeracError
from serac.eval.cache import CachedLM, ProgressHook
from serac.models import default_artifact, serac_home
from serac.scope import CrossEncoderReranker, Encoder, ScopeClassifier, SentenceEncoder
from serac.store import EditStore

logger = logging.getLogger(__name__)

EditPair = tuple[str, str]  # (input, target)


class MethodUnavailableError(SeracError, RuntimeError):
    """A method cannot run here (e.g. no trained artifact); the runner skips it with this message."""


@runtime_checkable
class EditingMethod(Protocol):
    """What the runner needs from an editing method."""

    name: str

    def reset(self) -> None:
        """Forget every edit: back to the unedited base model."""
        ...

    def apply(self, edits: Sequence[EditPair]) -> None:
        """Add edits (oldest first); earlier edits stay unless ``reset`` is called."""
        ...

    def predict(self, prompts: Sequence[str]) -> list[str]:
        """Greedy answers, one per prompt, in order."""
        ...

    def teacher_forced(self, prompts: Sequence[str], targets: Sequence[str]) -> list[float]:
        """Per row, the share of ``targets``' tokens predicted given the prompt and gold prefix."""
        ...


# Optional attributes the runner reads when a method has them:
#   max_edits: int | None       the most edits it is run with in one setting (cost cap), else no cap
#   last_routes: list[bool]     after predict, per prompt: did an edit answer it (scope decisions)
#   scope: ScopeClassifier      an index-backed scope whose query cost is compared with re-encoding


# -- shared models ----------------------------------------------------------------------------------
class EvalModels:
    """The models every method shares in one run: the base model (loaded once, memoised), sentence
    encoders by spec, and base-model hidden states for the lookup cache."""

    def __init__(
        self,
        base_lm: HFTextModel,
        *,
        encoder: Encoder | str = DEFAULT_ENCODER,
        max_new_tokens: int = 16,
        base_spec: str = "custom",
        progress: ProgressHook | None = None,
    ) -> None:
        """``encoder``: the default encoder, or the spec of a sentence-transformers model to load when
        first needed. ``base_spec`` names the base model; "custom" (a model passed in, as in tests)
        lets the untrained counterfactual share the base model's weights."""
        self.base_spec = base_spec
        self.progress = progress
        self._caches: list[CachedLM] = []
        self.base = self.cached(base_lm, "base")
        self.options = GenerationOptions(max_new_tokens=max_new_tokens)
        self._encoders: dict[str, Encoder] = {}
        self._default_encoder = encoder
        self._hidden: dict[str, np.ndarray] = {}
        self._hidden_cache_on = True

    @classmethod
    def load(
        cls,
        base: str = DEFAULT_LM,
        encoder: str = DEFAULT_ENCODER,
        *,
        max_new_tokens: int = 16,
        batch_size: int = 8,
        progress: ProgressHook | None = None,
        device: str = "cpu",
    ) -> EvalModels:
        """The base model on ``device`` (the CPU unless asked: the benchmark's numbers are CPU
        numbers); the encoders and the other methods' models follow it."""
        lm = load_text_model(base, max_new_tokens=max_new_tokens, batch_size=batch_size, device=device)
        return cls(lm, encoder=encoder, max_new_tokens=max_new_tokens, base_spec=base, progress=progress)

    def _report(self, what: str, done: int, total: int) -> None:
        if self.progress is not None:
            self.progress(what, done, total)

    def cached(self, lm: HFTextModel, label: str, reuse_prefix: bool = False) -> CachedLM:
        """Wrap ``lm`` in a memo that :meth:`uncached` can switch off, reporting progress here."""
        cache = CachedLM(lm, progress=self._report, label=label, reuse_prefix=reuse_prefix)
        self._caches.append(cache)
        return cache

    def cache_stats(self) -> dict[str, dict[str, int]]:
        """Per memo: answers and scores reused (hits), computed (misses), and seconds inside it so far."""
        stats: dict[str, dict[str, int]] = {}
        for cache in self._caches:
            entry = stats.setdefault(cache.label, {"hits": 0, "misses": 0, "seconds": 0})
            entry["hits"] += cache.hits
            entry["misses"] += cache.misses
            entry["seconds"] += round(cache.seconds)
        return stats

    @contextlib.contextmanager
    def uncached(self) -> Iterator[None]:
        """Every memo off inside the block (latency measurements)."""
        with contextlib.ExitStack() as stack:
            for cache in self._caches:
                stack.enter_context(cache.disabled())
            previous, self._hidden_cache_on = self._hidden_cache_on, False
            stack.callback(setattr, self, "_hidden_cache_on", previous)
            yield

    def encoder(self, spec: str | None = None) -> Encoder:
        """The default encoder (``spec`` None), or a sentence-transformers model loaded once per spec."""
        if spec is None:
            if not isinstance(self._default_encoder, str):
                return self._default_encoder
            spec = self._default_encoder
        if spec not in self._encoders:
            self._encoders[spec] = SentenceEncoder(spec, device=str(self.base.lm.device))
        return self._encoders[spec]

    @torch.inference_mode()
    def hidden_states(self, texts: Sequence[str], batch_size: int = 32, cache: bool = True) -> np.ndarray:
        """Unit-length mean of the base model's last hidden layer over each text's tokens (raw text,
        no chat template): the lookup cache's keys. Memoised per text unless ``cache`` is False (edit
        keys, whose computation is part of the insert cost being timed) or inside :meth:`uncached`."""
        lm = self.base.lm
        memo = self._hidden if (cache and self._hidden_cache_on) else {}
        todo = list(dict.fromkeys(t for t in texts if t not in memo))
        for start in range(0, len(todo), batch_size):
            part = todo[start : start + batch_size]
            encoded = lm.tokenizer(part, return_tensors="pt", padding=True).to(lm.device)
            model = lm.model.get_encoder() if lm.is_encoder_decoder else lm.model
            output = model(**encoded, output_hidden_states=True)
            hidden = output.hidden_states[-1] if hasattr(output, "hidden_states") else output.last_hidden_state
            mask = encoded["attention_mask"].unsqueeze(-1).to(hidden.dtype)
            pooled = (hidden * mask).sum(dim=1) / mask.sum(dim=1).clamp(min=1)
            pooled = torch.nn.functional.normalize(pooled.float(), dim=-1).cpu().numpy()
            memo.update(zip(part, pooled))
        return np.stack([memo[t] for t in texts]) if texts else np.zeros((0, 0), dtype=np.float32)


def _nearest(queries: np.ndarray, keys: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(best index, best cosine) per query over unit vectors; ties go to the newest key."""
    if len(keys) == 0:
        return np.full(len(queries), -1), np.full(len(queries), -np.inf)
    scores = queries @ keys.T  # (n_queries, n_keys)
    reversed_best = np.argmax(scores[:, ::-1], axis=1)  # argmax takes the first max: scan newest first
    best = keys.shape[0] - 1 - reversed_best
    return best, scores[np.arange(len(queries)), best]


class _VectorMemory:
    """Edits and their key vectors, appended in order."""

    def __init__(self) -> None:
        self.inputs: list[str] = []
        self.targets: list[str] = []
        self._vectors: list[np.ndarray] = []
        self._stacked: np.ndarray | None = None

    def add(self, edits: Sequence[EditPair], vectors: np.ndarray) -> None:
        self.inputs += [e[0] for e in edits]
        self.targets += [e[1] for e in edits]
        self._vectors.append(np.asarray(vectors, dtype=np.float32))
        self._stacked = None

    @property
    def vectors(self) -> np.ndarray:
        if self._stacked is None:
            self._stacked = np.concatenate(self._vectors) if self._vectors else np.zeros((0, 1), np.float32)
        return self._stacked

    def __len__(self) -> int:
        return len(self.inputs)


# -- serac ------------------------------------------------------------------------------------------
class SeracMethod:
    """An :class:`~serac.editor.EditedModel` over the shared base model; ``reset`` gives it a fresh
    in-memory store and index."""

    warm_cache = True  # its models' answers are memoised (EvalModels.cached): the runner may pre-fill them

    def __init__(
        self,
        name: str,
        models: EvalModels,
        scope_factory: Callable[[], ScopeClassifier],
        counterfactual: CounterfactualModel,
    ) -> None:
        self.name = name
        self.models = models
        self.scope_factory = scope_factory
        self.counterfactual = counterfactual
        self.last_routes: list[bool] = []
        self.reset()

    def reset(self) -> None:
        self.editor = EditedModel(self.models.base, self.scope_factory(), self.counterfactual, EditStore(":memory:"))

    @property
    def scope(self) -> ScopeClassifier:
        self.editor.scope.sync(self.editor.store)  # the index in step with the store
        return self.editor.scope

    def apply(self, edits: Sequence[EditPair]) -> None:
        self.editor.add_many(list(edits))

    def predict(self, prompts: Sequence[str]) -> list[str]:
        answers = self.editor.generate(list(prompts), self.models.options)
        self.last_routes = [a.source == "counterfactual" for a in answers]
        return [a.text for a in answers]

    def teacher_forced(self, prompts: Sequence[str], targets: Sequence[str]) -> list[float]:
        return self.editor.teacher_forced(list(prompts), list(targets))


def serac_untrained(models: EvalModels, options: MethodOptions) -> SeracMethod:
    """The embedded defaults: pretrained MiniLM scope at its default threshold, and the few-shot
    prompted instruct model as counterfactual (sharing the base model's weights when they are the
    same model, as with the defaults)."""
    config = SeracConfig()
    cf_config = config.counterfactual
    if cf_config.model == models.base_spec or models.base_spec == "custom":
        base_lm = models.base.lm
        lm = type(base_lm)(base_lm.model, base_lm.tokenizer, max_new_tokens=models.options.max_new_tokens,
                           batch_size=cf_config.batch_size)
    else:
        lm = load_text_model(cf_config.model, cf_config.kind, max_new_tokens=cf_config.max_new_tokens,
                             batch_size=cf_config.batch_size, device=str(models.base.lm.device))
    counterfactual = LMCounterfactual(models.cached(lm, "counterfactual", reuse_prefix=True), cf_config.prompt,
                                      cf_config.num_edits, cf_config.contrast, cf_config.contrast_plausibility)
    encoder = models.encoder()
    scope = config.scope
    threshold = options.serac_threshold if options.serac_threshold is not None else scope.threshold
    return SeracMethod(
        "serac-untrained", models,
        lambda: ScopeClassifier(encoder, threshold, scope.top_k, conflicts=scope.conflicts), counterfactual,
    )


def serac_shipped(models: EvalModels, options: MethodOptions) -> SeracMethod:
    """The trained defaults shipped in the package (serac/defaults: compact form of a ``serac train``
    artifact), evaluated beside a fresh artifact's ``serac`` rows."""
    return serac_trained(models, replace(options, artifact=str(DEFAULT_ARTIFACT)),
                         name="serac-shipped", cache_label="counterfactual-shipped")


def serac_trained(models: EvalModels, options: MethodOptions, name: str = "serac",
                  threshold: float | None = None, cache_label: str = "counterfactual-trained") -> SeracMethod:
    """A ``serac train`` artifact directory (``--artifact``, default ``$SERAC_HOME/trained``), its
    counterfactual model replaced by ``options.counterfactual`` when given (any model directory whose
    config says what it is: a language model, or a sequence classifier read as a pair classifier);
    ``threshold`` overrides the artifact's scope threshold."""
    directory = Path(options.artifact) if options.artifact else default_artifact()
    if not (directory / CONFIG_FILE).exists():
        raise MethodUnavailableError(
            f"method 'serac' needs a trained artifact: {directory} has no {CONFIG_FILE}. Run `serac train` "
            "(it writes $SERAC_HOME/trained) or pass --artifact DIR; 'serac-untrained' evaluates the "
            "embedded defaults"
        )
    config = load_artifact_config(directory)
    if config.base.model != models.base_spec:
        logger.warning("artifact base model %s differs from the evaluation base %s; the evaluation base is used "
                       "so every method edits the same model", config.base.model, models.base_spec)
    device = str(models.base.lm.device)  # every method runs where the evaluation base model runs
    cf_config = config.counterfactual.replace(device=device)
    if options.counterfactual:
        cf_config = cf_config.replace(model=str(options.counterfactual), kind="auto", adapter=None)
    counterfactual = load_counterfactual(cf_config, models.base)
    counterfactual.lm = models.cached(counterfactual.lm, cache_label, reuse_prefix=True)
    encoder = models.encoder(config.scope.encoder)
    scope = config.scope.replace(device=device)
    if threshold is not None:
        scope = scope.replace(threshold=threshold)
    reranker = CrossEncoderReranker.from_config(scope)  # loaded once, shared by every run's scope
    judge = (models.encoder(scope.same_fact_encoder)
             if scope.same_fact_encoder and scope.same_fact_encoder != scope.encoder else None)
    return SeracMethod(  # the artifact's own scope (ScopeClassifier.from_config), on the shared encoders
        name, models, lambda: ScopeClassifier.from_config(scope, encoder, judge, reranker), counterfactual,
    )


def icl(models: EvalModels, options: MethodOptions) -> EditingMethod:
    """Retrieval in context. A language-model base reads its nearest edit in the prompt
    (:class:`ICLMethod`); a classifier base reads no context, so the artifact's pair classifier reads
    every input with its nearest edit, with no scope decision (serac with every input in scope)."""
    if isinstance(models.base.lm, SequenceClassifier):
        return serac_trained(models, options, name="icl", threshold=-1.0)
    return ICLMethod(models, models.encoder())


# -- retrieval in context -----------------------------------------------------------------------------
ICL_TEMPLATE = "New fact: {input} {target}\n{query}"


class ICLMethod:
    """Retrieval in context: embed the edit inputs; for every prompt, prepend the nearest edit (as
    :data:`ICL_TEMPLATE`) and ask the base model. No scope decision, so unrelated prompts see an edit
    too; this is what the scope classifier buys."""

    name = "icl"

    def __init__(self, models: EvalModels, encoder: Encoder, template: str = ICL_TEMPLATE) -> None:
        self.models = models
        self.encoder = encoder
        self.template = template
        self.reset()

    def reset(self) -> None:
        self.memory = _VectorMemory()

    def apply(self, edits: Sequence[EditPair]) -> None:
        edits = list(edits)
        if edits:
            self.memory.add(edits, self.encoder.encode([e[0] for e in edits]))

    def prompts_for(self, prompts: Sequence[str]) -> list[str]:
        if not len(self.memory):
            return list(prompts)
        best, _ = _nearest(self.encoder.encode(list(prompts)), self.memory.vectors)
        return [
            self.template.format(input=self.memory.inputs[j], target=self.memory.targets[j], query=p)
            for p, j in zip(prompts, best)
        ]

    def predict(self, prompts: Sequence[str]) -> list[str]:
        return self.models.base.generate(self.prompts_for(prompts), self.models.options)

    def teacher_forced(self, prompts: Sequence[str], targets: Sequence[str]) -> list[float]:
        return self.models.base.teacher_forced(self.prompts_for(prompts), list(targets))


# -- lookup cache --------------------------------------------------------------------------------------
# Cosine threshold on mean-pooled last hidden states of SmolLM2-135M-Instruct, chosen on the zsRE
# *training* file (disjoint from the evaluation file): see LU_CALIBRATION in serac/eval/README.md.
LU_THRESHOLD = 0.95


class LookupCacheMethod:
    """The SERAC paper's LU baseline: keys are the base model's mean last hidden state of each edit
    input; a prompt whose nearest key has cosine >= ``threshold`` gets that edit's target verbatim,
    any other prompt the base model's answer."""

    name = "lu"

    def __init__(self, models: EvalModels, threshold: float = LU_THRESHOLD) -> None:
        self.models = models
        self.threshold = threshold
        self.last_routes: list[bool] = []
        self.reset()

    def reset(self) -> None:
        self.memory = _VectorMemory()

    def apply(self, edits: Sequence[EditPair]) -> None:
        edits = list(edits)
        if edits:
            self.memory.add(edits, self.models.hidden_states([e[0] for e in edits], cache=False))

    def lookup(self, prompts: Sequence[str]) -> list[str | None]:
        if not len(self.memory) or not prompts:
            return [None] * len(prompts)
        best, score = _nearest(self.models.hidden_states(list(prompts)), self.memory.vectors)
        return [self.memory.targets[j] if s >= self.threshold else None for j, s in zip(best, score)]

    def predict(self, prompts: Sequence[str]) -> list[str]:
        hits = self.lookup(prompts)
        self.last_routes = [h is not None for h in hits]
        misses = [p for p, h in zip(prompts, hits) if h is None]
        answers = iter(self.models.base.generate(misses, self.models.options) if misses else [])
        return [h if h is not None else next(answers) for h in hits]

    def teacher_forced(self, prompts: Sequence[str], targets: Sequence[str]) -> list[float]:
        """A hit's argmax tokens are the cached answer's tokens: score their position-wise agreement
        with the target's tokens; misses are the base model's teacher-forced scores."""
        hits = self.lookup(prompts)
        miss_rows = [i for i, h in enumerate(hits) if h is None]
        scores = [0.0] * len(prompts)
        if miss_rows:
            values = self.models.base.teacher_forced([prompts[i] for i in miss_rows], [targets[i] for i in miss_rows])
            for i, v in zip(miss_rows, values):
                scores[i] = v
        lm = self.models.base.lm
        for i, hit in enumerate(hits):
            if hit is None:
                continue
            text = lm.format(prompts[i])
            want, have = lm._target_ids(text, targets[i]), lm._target_ids(text, hit)
            scores[i] = sum(a == b for a, b in zip(want, have)) / len(want) if want else 0.0
        return scores


# -- fine-tuning ------------------------------------------------------------------------------------------
class FTMethod:
    """Fine-tune a copy of the base model on the edits (prompt formatted as the base model sees it,
    loss on the target tokens and end-of-sequence only), AdamW for up to ``steps`` full-batch steps,
    stopping early once every edit's target is reproduced token by token. ``reset`` restores the
    original weights. Sequential use keeps training the same weights, one ``apply`` at a time."""

    name = "ft"

    def __init__(self, models: EvalModels, steps: int = 10, lr: float = 1e-4, max_edits: int | None = 10) -> None:
        base = models.base.lm
        if base.is_encoder_decoder or not isinstance(base, HFCausalLM):
            raise MethodUnavailableError("the ft baseline supports causal language models only")
        self.models = models
        self.steps = steps
        self.lr = lr
        self.max_edits = max_edits
        self.model = copy.deepcopy(base.model)
        self._original = {k: v.detach().clone() for k, v in self.model.state_dict().items()}
        adapter = HFCausalLM(self.model, base.tokenizer, chat_template=base.use_chat_template,
                             system_prompt=base.system_prompt, max_new_tokens=base.max_new_tokens,
                             batch_size=base.batch_size)
        self.lm = models.cached(adapter, "ft")
        self.last_steps = 0

    def reset(self) -> None:
        self.model.load_state_dict(self._original)
        self.lm.clear()

    def _batch(self, edits: Sequence[EditPair]) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        lm, tokenizer = self.lm.lm, self.lm.lm.tokenizer
        rows = []
        for prompt, target in edits:
            text = lm.format(prompt)
            prompt_ids = tokenizer(text, add_special_tokens=not lm.use_chat_template)["input_ids"]
            target_ids = lm._target_ids(text, target) + [tokenizer.eos_token_id]
            rows.append((prompt_ids + target_ids, [-100] * len(prompt_ids) + target_ids))
        width = max(len(ids) for ids, _ in rows)
        ids = torch.full((len(rows), width), tokenizer.pad_token_id, dtype=torch.long)
        labels = torch.full((len(rows), width), -100, dtype=torch.long)
        mask = torch.zeros((len(rows), width), dtype=torch.long)
        for r, (seq, lab) in enumerate(rows):
            ids[r, : len(seq)], labels[r, : len(seq)], mask[r, : len(seq)] = (
                torch.tensor(seq), torch.tensor(lab), 1)
        device = next(self.model.parameters()).device
        return ids.to(device), labels.to(device), mask.to(device)

    def apply(self, edits: Sequence[EditPair]) -> None:
        edits = list(edits)
        if not edits:
            return
        ids, labels, mask = self._batch(edits)
        optimizer = torch.optim.AdamW(self.model.parameters(), lr=self.lr, weight_decay=0.0)
        self.last_steps = 0
        with torch.enable_grad():
            for _ in range(self.steps):
                logits = self.model(input_ids=ids, attention_mask=mask).logits[:, :-1]
                gold = labels[:, 1:]
                scored = gold != -100
                if bool((logits.argmax(-1)[scored] == gold[scored]).all()):
                    break  # every edit already reproduced exactly
                loss = torch.nn.functional.cross_entropy(logits[scored], gold[scored])
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                optimizer.step()
                self.last_steps += 1
        self.model.zero_grad(set_to_none=True)
        self.lm.clear()

    def predict(self, prompts: Sequence[str]) -> list[str]:
        return self.lm.generate(list(prompts), self.models.options)

    def teacher_forced(self, prompts: Sequence[str], targets: Sequence[str]) -> list[float]:
        return self.lm.teacher_forced(list(prompts), list(targets))


class ClassifierFTMethod:
    """The FT baseline for a classifier base model: fine-tune a copy on the edits (input -> target
    label, e.g. evidence -> supports), one full-batch step at a time until it labels every edit so
    (at most ``steps`` steps). ``reset`` restores the original weights."""

    name = "ft"

    def __init__(self, models: EvalModels, steps: int = 10, lr: float = 5e-5, max_edits: int | None = None) -> None:
        base = models.base.lm
        self.models = models
        self.steps, self.lr, self.max_edits = steps, lr, max_edits
        self.classifier = SequenceClassifier(copy.deepcopy(base.model), base.tokenizer, batch_size=base.batch_size,
                                             max_length=base.max_length)
        self._original = {k: v.detach().clone() for k, v in self.classifier.model.state_dict().items()}
        self.lm = models.cached(self.classifier, "ft")

    def reset(self) -> None:
        self.classifier.model.load_state_dict(self._original)
        self.lm.clear()

    def apply(self, edits: Sequence[EditPair]) -> None:
        from serac.train.classifier import train_classifier

        inputs, labels = [e[0] for e in edits], [e[1] for e in edits]
        for _ in range(self.steps):
            if self.classifier.predict(inputs) == labels:
                break
            with torch.enable_grad():
                train_classifier(self.classifier, inputs, labels, epochs=1, lr=self.lr, head_lr=self.lr,
                                 batch_size=len(inputs), max_steps=1)
        self.lm.clear()

    def predict(self, prompts: Sequence[str]) -> list[str]:
        return self.lm.generate(list(prompts), self.models.options)

    def teacher_forced(self, prompts: Sequence[str], targets: Sequence[str]) -> list[float]:
        return self.classifier.teacher_forced(list(prompts), list(targets))


class BaseMethod:
    """The unedited base model: edits are ignored. A reference row, not an editor."""

    name = "base"

    def __init__(self, models: EvalModels) -> None:
        self.models = models

    def reset(self) -> None:
        pass

    def apply(self, edits: Sequence[EditPair]) -> None:
        pass

    def predict(self, prompts: Sequence[str]) -> list[str]:
        return self.models.base.generate(list(prompts), self.models.options)

    def teacher_forced(self, prompts: Sequence[str], targets: Sequence[str]) -> list[float]:
        return self.models.base.teacher_forced(list(prompts), list(targets))


# -- registry ------------------------------------------------------------------------------------------
@dataclass
class MethodOptions:
    """Per-method knobs, with the defaults the benchmark uses."""

    artifact: str | None = None  # 'serac': artifact directory (default $SERAC_HOME/trained)
    serac_threshold: float | None = None  # 'serac-untrained': override the scope threshold
    lu_threshold: float = LU_THRESHOLD
    ft_steps: int = 10
    ft_lr: float = 1e-4
    ft_max_edits: int | None = 10  # FT fine-tunes per edit: run it on at most this many edits
    classifier_ft_lr: float = 5e-5  # 'ft' on a classifier base (the fc task)
    counterfactual: str | None = None  # 'serac' (and a classifier's 'icl'): replaces the artifact's counterfactual
    grace: GraceConfig = field(default_factory=GraceConfig)  # 'grace': block, radius, value optimisation
    mend_artifact: str | None = None  # 'mend': a `serac train --method mend` directory (default $SERAC_HOME/mend)


MethodFactory = Callable[[EvalModels, MethodOptions], EditingMethod]

METHODS: dict[str, MethodFactory] = {
    "serac": serac_trained,
    "serac-untrained": serac_untrained,
    "serac-shipped": serac_shipped,
    "ft": lambda m, o: (ClassifierFTMethod(m, o.ft_steps, o.classifier_ft_lr, o.ft_max_edits)
                        if isinstance(m.base.lm, SequenceClassifier) else FTMethod(m, o.ft_steps, o.ft_lr, o.ft_max_edits)),
    "lu": lambda m, o: LookupCacheMethod(m, o.lu_threshold),
    "icl": icl,
    "base": lambda m, o: BaseMethod(m),
    "grace": lambda m, o: GraceMethod(m, o.grace),
    "mend": lambda m, o: _mend(m, o),
}


def _mend(models: EvalModels, options: MethodOptions) -> EditingMethod:
    """A trained MEND editor (serac.baselines.mend; default $SERAC_HOME/mend)."""
    from serac.baselines.mend.config import CONFIG_FILE as MEND_CONFIG
    from serac.baselines.mend.method import load_method

    directory = Path(options.mend_artifact) if options.mend_artifact else serac_home() / "mend"
    if not (directory / MEND_CONFIG).exists():
        raise MethodUnavailableError(
            f"method 'mend' needs a trained MEND editor: {directory} has no {MEND_CONFIG}. Run "
            "`serac train --method mend` (it writes $SERAC_HOME/mend) or pass --mend-artifact DIR")
    try:
        return load_method(models, directory)
    except ModelNotAvailableError as exc:
        raise MethodUnavailableError(str(exc)) from None


def build_method(name: str, models: EvalModels, options: MethodOptions | None = None) -> EditingMethod:
    """The method registered under ``name`` (an exact key of :data:`METHODS`)."""
    if name not in METHODS:
        raise ConfigError(f"unknown method {name!r}; valid methods: {', '.join(METHODS)}")
    return METHODS[name](models, options or MethodOptions())


def build_methods(names: Sequence[str], models: EvalModels, options: MethodOptions,
                  warn: Callable[[str], Any]) -> list[EditingMethod]:
    """Build each named method; an unavailable one (e.g. 'serac' with no artifact) is skipped with
    ``warn(message)``, so one missing artifact does not stop a whole benchmark."""
    methods = []
    for name in names:
        try:
            methods.append(build_method(name, models, options))
        except MethodUnavailableError as exc:
            warn(f"skipping {name}: {exc}")
    return methods
