"""Model adapters: the base model, and the engine under the counterfactual model.

Behaviour is chosen from the model's config (``is_encoder_decoder``, ``architectures``, the auto-model
mappings), never from its name. Every adapter turns prompts (plain strings or chat message lists) into
answer strings, with greedy decoding by default for language models and the argmax label for a
sequence classifier, so the same input always gives the same output.
"""

from __future__ import annotations

import contextlib
import contextvars
import logging
import threading
from dataclasses import dataclass, field
from typing import Any, Callable, Iterator, Mapping, Protocol, Sequence, Union, runtime_checkable

import torch

from serac.config import DTYPES, GPU_BATCH_SIZE, MODEL_KINDS, BaseModelConfig, LoadOptions
from serac.errors import ConfigError, ModelNotAvailableError, PromptTooLongError, UnsupportedOptionError
from serac.models import loadable_model, weight_errors

logger = logging.getLogger(__name__)

Message = Mapping[str, str]
Prompt = Union[str, Sequence[Message]]


@dataclass(frozen=True)
class GenerationOptions:
    """Per-call decoding settings; ``None`` fields fall back to the adapter's defaults."""

    max_new_tokens: int | None = None
    temperature: float = 0.0  # 0 means greedy
    top_p: float = 1.0
    stop: tuple[str, ...] = field(default_factory=tuple)
    seed: int | None = None
    logprobs: int | None = None  # None: text only; k >= 0: each token's log-prob and its k likeliest rivals


GREEDY = GenerationOptions()


@dataclass(frozen=True)
class TokenLogprob:
    """One generated token, its log-probability under the model that generated it, and the
    ``k`` likeliest tokens at that step (``(token, logprob)``, likeliest first)."""

    token: str
    logprob: float
    top: tuple[tuple[str, float], ...] = ()


@dataclass(frozen=True)
class Generation:
    """An answer and, when asked for, the scores of its tokens (before the answer's final strip)."""

    text: str
    logprobs: tuple[TokenLogprob, ...] | None = None


@runtime_checkable
class TextModel(Protocol):
    """What the router needs from a base model: prompts in, answers out, in order."""

    def generate(self, prompts: Sequence[Prompt], options: GenerationOptions = GREEDY) -> list[str]: ...


def query_text(prompt: Prompt) -> str:
    """The text the scope classifier should read: the prompt, or a chat's last user message."""
    if isinstance(prompt, str):
        return prompt
    for message in reversed(list(prompt)):
        if message.get("role") == "user":
            return message.get("content", "")
    raise ValueError("a chat prompt needs at least one message with role 'user'")


def _truncate_at_stop(text: str, stop: Sequence[str]) -> str:
    cut = min((i for i in (text.find(s) for s in stop if s) if i >= 0), default=-1)
    return text if cut < 0 else text[:cut]


# Set by ``stop_when``: Hugging Face generation started in this context checks it after every token.
_STOP: contextvars.ContextVar[threading.Event | None] = contextvars.ContextVar("serac_stop", default=None)


@contextlib.contextmanager
def stop_when(event: threading.Event | None) -> Iterator[None]:
    """Generation started inside this block stops after its current token once ``event`` is set
    (from any thread): a caller that no longer wants the answer (a client that left, a time limit)
    frees the model at once instead of after ``max_new_tokens``. The cut answer is returned as is."""
    token = _STOP.set(event)
    try:
        yield
    finally:
        _STOP.reset(token)


def _stopping_criteria(events: Sequence[threading.Event]) -> Any:
    from transformers import StoppingCriteria, StoppingCriteriaList

    class StopOnEvent(StoppingCriteria):
        def __call__(self, input_ids: torch.LongTensor, scores: Any, **kwargs: Any) -> torch.BoolTensor:
            stop = any(e.is_set() for e in events)
            return torch.full((input_ids.shape[0],), stop, dtype=torch.bool, device=input_ids.device)

    return StoppingCriteriaList([StopOnEvent()])


def resolve_device(device: str = "auto") -> torch.device:
    """``auto`` is the GPU when torch sees one, else the CPU; anything else is taken as given."""
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    resolved = torch.device(device)
    if resolved.type == "cuda" and not torch.cuda.is_available():
        raise ConfigError(f"device {device!r} asked for, but torch sees no CUDA GPU; use device 'auto' or 'cpu'")
    return resolved


@contextlib.contextmanager
def _seeded(seed: int | None) -> Iterator[None]:
    # fork_rng keeps the caller's global RNG state untouched. Without a seed the global state is
    # used and advances: forking it there would replay the same "random" sample on every call.
    if seed is None:
        yield
        return
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        yield


class HFTextModel:
    """Shared machinery of the Hugging Face adapters (tokenise, batch, decode, check length)."""

    is_encoder_decoder = False

    def __init__(
        self,
        model: Any,
        tokenizer: Any,
        *,
        chat_template: bool | None = None,
        system_prompt: str | None = None,
        max_new_tokens: int = 32,
        batch_size: int = 1,
    ) -> None:
        self.model = model.eval()
        self.tokenizer = tokenizer
        has_template = getattr(tokenizer, "chat_template", None) is not None
        if chat_template and not has_template:
            raise ModelNotAvailableError(
                "chat_template=True but the tokenizer has no chat template; set chat_template to "
                "None/False or use a tokenizer that defines one"
            )
        self.use_chat_template = has_template if chat_template is None else chat_template
        self.system_prompt = system_prompt
        self.max_new_tokens = max_new_tokens
        self.batch_size = batch_size
        if tokenizer.pad_token_id is None:
            tokenizer.pad_token = tokenizer.eos_token
        self.context_length = self._context_length()

    def _context_length(self) -> int:
        config = self.model.config
        for name in ("max_position_embeddings", "n_positions", "max_sequence_length"):
            value = getattr(config, name, None)
            if isinstance(value, int) and value > 0:
                return value
        value = getattr(self.tokenizer, "model_max_length", None)
        return value if isinstance(value, int) and 0 < value < 10**8 else 2048

    @property
    def device(self) -> torch.device:
        return next(self.model.parameters()).device

    # -- prompt formatting -------------------------------------------------------------------------
    def format(self, prompt: Prompt) -> str:
        """The exact text fed to the tokenizer for ``prompt``."""
        if self.use_chat_template:
            messages = [{"role": "user", "content": prompt}] if isinstance(prompt, str) else list(prompt)
            if self.system_prompt and messages[0].get("role") != "system":
                messages = [{"role": "system", "content": self.system_prompt}, *messages]
            return self.tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
        if isinstance(prompt, str):
            return prompt
        return "\n".join(m.get("content", "") for m in prompt)

    def _encode(self, texts: list[str], max_new_tokens: int) -> dict[str, torch.Tensor]:
        # Chat templates already carry the BOS/special tokens they need.
        encoded = self.tokenizer(
            texts, return_tensors="pt", padding=True, add_special_tokens=not self.use_chat_template
        )
        longest = int(encoded["attention_mask"].sum(dim=1).max())
        limit = self.context_length - (0 if self.is_encoder_decoder else max_new_tokens)
        if longest > limit:
            raise PromptTooLongError(
                f"prompt is {longest} tokens; with max_new_tokens={max_new_tokens} the model's context "
                f"of {self.context_length} tokens allows at most {limit}; shorten the prompt or lower max_new_tokens"
            )
        return encoded.to(self.device)

    # -- generation --------------------------------------------------------------------------------
    def generate(self, prompts: Sequence[Prompt], options: GenerationOptions = GREEDY) -> list[str]:
        return [g.text for g in self.generate_detailed(prompts, options)]

    def generate_detailed(
        self, prompts: Sequence[Prompt], options: GenerationOptions = GREEDY
    ) -> list[Generation]:
        """``generate``, each answer with its tokens' log-probs when ``options.logprobs`` is set."""
        return self._generate_rows([self.format(p) for p in prompts], options)

    def generate_contrastive(
        self, prompts: Sequence[Prompt], plain_prompts: Sequence[Prompt], alpha: float, plausibility: float,
        options: GenerationOptions = GREEDY,
    ) -> list[str]:
        """``generate`` with context-aware decoding (:mod:`serac.contrast`): ``plain_prompts`` are the
        same queries without the edits, row for row."""
        if self.is_encoder_decoder:
            raise UnsupportedOptionError("counterfactual.contrast needs a decoder-only language model; set it to 0")
        if options.logprobs is not None:
            raise UnsupportedOptionError("log-probs are not available with counterfactual.contrast; ask without "
                                         "logprobs or set contrast to 0")
        plain = [self.format(p) for p in plain_prompts]
        return [g.text for g in self._generate_rows([self.format(p) for p in prompts], options,
                                                    (plain, alpha, plausibility))]

    def _generate_rows(self, texts: list[str], options: GenerationOptions,
                       contrast: tuple[list[str], float, float] | None = None) -> list[Generation]:
        """Formatted prompts in batches of ``batch_size`` (with contrast: their plain prompts row for row)."""
        max_new = options.max_new_tokens or self.max_new_tokens
        answers: list[Generation] = []
        for start in range(0, len(texts), self.batch_size):
            rows = slice(start, start + self.batch_size)
            batch = None if contrast is None else (contrast[0][rows], contrast[1], contrast[2])
            answers.extend(self._generate_batch(texts[rows], max_new, options, batch))
        return answers

    def _generation_kwargs(
        self, max_new: int, options: GenerationOptions, *stops: threading.Event
    ) -> dict[str, Any]:
        kwargs: dict[str, Any] = {
            "max_new_tokens": max_new,
            "pad_token_id": self.tokenizer.pad_token_id,
            "do_sample": options.temperature > 0,
        }
        events = [e for e in (_STOP.get(), *stops) if e is not None]
        if events:
            kwargs["stopping_criteria"] = _stopping_criteria(events)
        if options.temperature > 0:
            kwargs.update(temperature=options.temperature, top_p=options.top_p)
        else:  # silence sampling defaults from generation_config when decoding greedily
            kwargs.update(temperature=None, top_p=None, top_k=None)
        if options.stop:
            kwargs.update(stop_strings=list(options.stop), tokenizer=self.tokenizer)
        return kwargs

    @torch.inference_mode()
    def _generate_batch(self, texts: list[str], max_new: int, options: GenerationOptions,
                        contrast: tuple[list[str], float, float] | None = None) -> list[Generation]:
        encoded = self._encode(texts, max_new)
        scored = options.logprobs is not None
        kwargs = self._generation_kwargs(max_new, options)
        if contrast is not None:  # (plain prompts, alpha, plausibility): see generate_contrastive
            from transformers import LogitsProcessorList

            from serac.contrast import ContextContrast

            plain, alpha, plausibility = contrast
            kwargs["logits_processor"] = LogitsProcessorList(
                [ContextContrast(self.model, self._encode(plain, max_new), alpha, plausibility)])
        if scored:
            kwargs.update(return_dict_in_generate=True, output_logits=True)
        with _seeded(options.seed):
            output = self.model.generate(**encoded, **kwargs)
        sequences = output.sequences if scored else output
        if not self.is_encoder_decoder:
            sequences = sequences[:, encoded["input_ids"].shape[1] :]
        decoded = [
            _truncate_at_stop(text, options.stop)
            for text in self.tokenizer.batch_decode(sequences, skip_special_tokens=True)
        ]
        if not scored:
            return [Generation(text.strip()) for text in decoded]
        # logits[t] scored the token at sequences[:, offset + t] (seq2seq: after the start token)
        offset = sequences.shape[1] - len(output.logits)
        return [
            Generation(
                text.strip(),
                self._token_logprobs(
                    sequences[row, offset:].tolist(),
                    [step[row] for step in output.logits],
                    len(text),
                    options.logprobs or 0,
                ),
            )
            for row, text in enumerate(decoded)
        ]

    def _token_logprobs(
        self, ids: list[int], logits: list[torch.Tensor], kept_chars: int, top_k: int
    ) -> tuple[TokenLogprob, ...]:
        """Per generated token up to the end of the answer (end of sequence, or a stop string at
        ``kept_chars``): its text, log-prob under the model's own distribution, and top rivals."""
        ends = {self.tokenizer.eos_token_id, self.tokenizer.pad_token_id}
        special = set(self.tokenizer.all_special_ids)
        out, kept, before = [], [], ""
        for token_id, step in zip(ids, logits):
            if token_id in ends:
                break
            if token_id in special:
                continue
            if len(before) >= kept_chars:  # past a stop string
                break
            kept.append(token_id)
            text = self.tokenizer.decode(kept, skip_special_tokens=True)  # whole prefix: merges right
            log_probs = torch.log_softmax(step.float(), dim=-1)
            top: tuple[tuple[str, float], ...] = ()
            if top_k:
                values, indices = log_probs.topk(min(top_k, log_probs.shape[-1]))
                top = tuple(
                    (self.tokenizer.decode([i]), float(v)) for v, i in zip(values.tolist(), indices.tolist())
                )
            out.append(TokenLogprob(text[len(before) :], float(log_probs[token_id]), top))
            before = text
        return tuple(out)

    def stream(self, prompt: Prompt, options: GenerationOptions = GREEDY) -> Iterator[str]:
        """Yield text pieces as they are generated (for SSE); joined they equal ``generate``'s
        answer before its final strip. Closing the iterator early (or ``stop_when``'s event) stops
        the generation thread after its current token, and the thread is joined."""
        from transformers import TextIteratorStreamer

        max_new = options.max_new_tokens or self.max_new_tokens
        encoded = self._encode([self.format(prompt)], max_new)
        streamer = TextIteratorStreamer(self.tokenizer, skip_prompt=True, skip_special_tokens=True)
        closed = threading.Event()
        kwargs = {**encoded, **self._generation_kwargs(max_new, options, closed), "streamer": streamer}
        failure: list[BaseException] = []

        def run() -> None:
            try:
                with torch.inference_mode(), _seeded(options.seed):
                    self.model.generate(**kwargs)
            except BaseException as exc:  # re-raised in the reading thread
                failure.append(exc)
                streamer.end()  # else the reader would wait for pieces forever

        thread = threading.Thread(target=run, daemon=True, name="serac-stream")
        thread.start()
        emitted = ""
        try:
            for piece in streamer:
                candidate = emitted + piece
                cut = _truncate_at_stop(candidate, options.stop)
                if len(cut) < len(candidate):
                    if cut[len(emitted) :]:
                        yield cut[len(emitted) :]
                    break
                emitted = candidate
                if piece:
                    yield piece
        finally:
            closed.set()
            thread.join()
        if failure:
            raise failure[0]

    # -- teacher forcing ---------------------------------------------------------------------------
    @torch.inference_mode()
    def teacher_forced(self, prompts: Sequence[Prompt], targets: Sequence[str]) -> list[float]:
        """Per row, the share of target tokens the model predicts (argmax) given the prompt and
        the gold tokens before them: the metric most published editing numbers use."""
        scores = []
        for prompt, target in zip(prompts, targets):
            scores.append(self._token_accuracy(self.format(prompt), target))
        return scores

    def _target_ids(self, prompt_text: str, target: str) -> list[int]:
        separator = "" if self.use_chat_template or prompt_text.endswith((" ", "\n")) else " "
        return self.tokenizer(separator + target, add_special_tokens=False)["input_ids"]

    def _token_accuracy(self, prompt_text: str, target: str) -> float:
        prompt_ids = self.tokenizer(prompt_text, add_special_tokens=not self.use_chat_template)["input_ids"]
        target_ids = self._target_ids(prompt_text, target)
        if not target_ids:
            return 0.0
        ids = torch.tensor([prompt_ids + target_ids], device=self.device)
        logits = self.model(input_ids=ids).logits[0]
        predicted = logits[len(prompt_ids) - 1 : -1].argmax(dim=-1)
        return float((predicted == ids[0, len(prompt_ids) :]).float().mean())


class HFCausalLM(HFTextModel):
    """Any ``AutoModelForCausalLM``; uses its chat template when the tokenizer has one."""

    def __init__(self, model: Any, tokenizer: Any, **kwargs: Any) -> None:
        tokenizer.padding_side = "left"  # generation continues from the right edge
        super().__init__(model, tokenizer, **kwargs)


class HFSeq2SeqLM(HFTextModel):
    """Any ``AutoModelForSeq2SeqLM`` (``config.is_encoder_decoder``)."""

    is_encoder_decoder = True

    def _token_accuracy(self, prompt_text: str, target: str) -> float:
        encoded = self.tokenizer(prompt_text, return_tensors="pt").to(self.device)
        labels = self.tokenizer(target, return_tensors="pt")["input_ids"].to(self.device)
        logits = self.model(**encoded, labels=labels).logits[0]
        return float((logits.argmax(dim=-1) == labels[0]).float().mean())


class CallableModel:
    """Wraps any Python callable as a base model: ``fn(list_of_prompts) -> list_of_answers`` or,
    with ``batched=False``, ``fn(prompt) -> answer``. Use it for remote endpoints."""

    def __init__(self, fn: Callable[..., Any], batched: bool = True) -> None:
        self.fn = fn
        self.batched = batched

    def generate(self, prompts: Sequence[Prompt], options: GenerationOptions = GREEDY) -> list[str]:
        answers = list(self.fn(list(prompts))) if self.batched else [self.fn(p) for p in prompts]
        if len(answers) != len(prompts):
            raise ValueError(f"the base callable returned {len(answers)} answers for {len(prompts)} prompts")
        return [str(a) for a in answers]


class SequenceClassifier:
    """Any ``AutoModelForSequenceClassification`` as a text model: ``generate`` returns each prompt's
    argmax label name (``config.id2label``; a chat prompt is read as its last user message), so a
    classifier plugs into the router like a language model. Inputs may also be ``(text, text_pair)``
    tuples, joined by the tokenizer's separator: what a pair classifier (``counterfactual.kind =
    "classifier"``) reads. Decoding options do not apply; the answer of a prompt never depends on its
    batch-mates beyond float padding effects (``batch_size`` 1 removes those)."""

    is_encoder_decoder = False

    def __init__(self, model: Any, tokenizer: Any, *, batch_size: int = 32, max_length: int = 512,
                 max_new_tokens: int = 1, chat_template: bool | None = None, system_prompt: str | None = None) -> None:
        # max_new_tokens, chat_template and system_prompt are language-model options, taken so that one
        # config loads either kind; a classifier reads the raw text and answers one label.
        self.model = model.eval()
        self.tokenizer = tokenizer
        self.batch_size = batch_size
        self.max_length = min(max_length, getattr(tokenizer, "model_max_length", max_length) or max_length)
        self.max_new_tokens = max_new_tokens
        id2label = model.config.id2label
        self.labels: tuple[str, ...] = tuple(str(id2label[i]) for i in range(len(id2label)))
        if tokenizer.pad_token_id is None and tokenizer.eos_token is not None:
            tokenizer.pad_token = tokenizer.eos_token  # decoder classifiers (Llama, GPT-2) ship no pad token
        if getattr(model.config, "pad_token_id", None) is None:
            model.config.pad_token_id = tokenizer.pad_token_id

    @property
    def device(self) -> torch.device:
        return next(self.model.parameters()).device

    @property
    def label2id(self) -> dict[str, int]:
        return {label: i for i, label in enumerate(self.labels)}

    def format(self, prompt: Prompt | tuple[str, str]) -> str:
        """The text the classifier reads (a pair joined by a tab, for cache keys and logs)."""
        return "\t".join(prompt) if isinstance(prompt, tuple) else query_text(prompt)

    def encode(self, items: Sequence[Prompt | tuple[str, str]]) -> Any:
        pairs = [isinstance(item, tuple) for item in items]
        if any(pairs) and not all(pairs):
            raise UnsupportedOptionError("a classifier call mixes single texts and (text, text_pair) tuples; pass "
                                         "one kind per call")
        firsts = [item[0] if pair else query_text(item) for item, pair in zip(items, pairs)]  # type: ignore[index]
        seconds = [item[1] for item, pair in zip(items, pairs) if pair] or None  # type: ignore[index]
        return self.tokenizer(firsts, seconds, return_tensors="pt", padding=True, truncation=True,
                              max_length=self.max_length).to(self.device)

    @torch.inference_mode()
    def predict_proba(self, items: Sequence[Prompt | tuple[str, str]]) -> Any:
        """(len(items), n_labels) class probabilities (numpy), in label order."""
        import numpy as np

        rows = []
        for start in range(0, len(items), self.batch_size):
            logits = self.model(**self.encode(items[start : start + self.batch_size])).logits
            rows.append(logits.float().softmax(dim=-1).cpu().numpy())
        return np.concatenate(rows) if rows else np.zeros((0, len(self.labels)), dtype=np.float32)

    def predict(self, items: Sequence[Prompt | tuple[str, str]]) -> list[str]:
        return [self.labels[int(i)] for i in self.predict_proba(items).argmax(axis=1)] if len(items) else []

    def generate(self, prompts: Sequence[Prompt], options: GenerationOptions = GREEDY) -> list[str]:
        if options.logprobs is not None:
            raise UnsupportedOptionError("a sequence classifier answers a label, not tokens: ask without logprobs")
        return self.predict(prompts)

    def teacher_forced(self, prompts: Sequence[Prompt], targets: Sequence[str]) -> list[float]:
        """A label is a single "token": 1.0 where the predicted label is the target, else 0.0."""
        return [float(p == t) for p, t in zip(self.predict(prompts), targets)]

    def save(self, directory: str | Any) -> None:
        self.model.save_pretrained(directory)
        self.tokenizer.save_pretrained(directory)


def _classifier_architectures() -> frozenset[str]:
    from transformers.models.auto.modeling_auto import MODEL_FOR_SEQUENCE_CLASSIFICATION_MAPPING_NAMES

    names: set[str] = set()
    for value in MODEL_FOR_SEQUENCE_CLASSIFICATION_MAPPING_NAMES.values():
        names.update((value,) if isinstance(value, str) else value)
    return frozenset(names)


def is_sequence_classifier(config: Any) -> bool:
    """True when ``config.architectures`` names a class of transformers' sequence-classification
    mapping (``BertForSequenceClassification``, ``LlamaForSequenceClassification``, ...)."""
    architectures = getattr(config, "architectures", None) or ()
    return any(a in _classifier_architectures() for a in architectures)


def _model_kind(config: Any) -> str:
    from transformers.models.auto.modeling_auto import (
        MODEL_FOR_CAUSAL_LM_MAPPING_NAMES,
        MODEL_FOR_SEQ_TO_SEQ_CAUSAL_LM_MAPPING_NAMES,
    )

    # first: a Llama sequence classifier has a causal model_type, but its checkpoint holds a label head
    if is_sequence_classifier(config):
        return "classifier"
    if getattr(config, "is_encoder_decoder", False) or config.model_type in MODEL_FOR_SEQ_TO_SEQ_CAUSAL_LM_MAPPING_NAMES:
        return "seq2seq"
    if config.model_type in MODEL_FOR_CAUSAL_LM_MAPPING_NAMES:
        return "causal"
    raise ModelNotAvailableError(
        f"model type {config.model_type!r} is neither a causal nor a seq2seq language model nor a sequence "
        "classifier (config.architectures); set kind='causal', 'seq2seq' or 'classifier' explicitly, or wrap it "
        "with serac.CallableModel"
    )


def torch_dtype(dtype: str, device: torch.device) -> torch.dtype | str:
    """``auto``: float32 on a CPU (exact, and half precision is slow there), the checkpoint's own
    dtype elsewhere; otherwise the named dtype."""
    if dtype not in DTYPES:
        raise ConfigError(f"dtype is {dtype!r}; valid values: {', '.join(DTYPES)}")
    if dtype == "auto":
        return torch.float32 if device.type == "cpu" else "auto"
    return getattr(torch, dtype)


def default_batch_size(device: torch.device) -> int:
    """Rows per generate call when the config leaves it unset: 1 on a CPU (exact parity: no padding
    between batch-mates), GPU_BATCH_SIZE on an accelerator, where batching is what makes it fast."""
    return 1 if device.type == "cpu" else GPU_BATCH_SIZE


def load_text_model(spec: str, kind: str = "auto", *, device: str = "cpu", dtype: str = "auto",
                    device_map: str | dict[str, Any] | None = None, trust_remote_code: bool = False,
                    **kwargs: Any) -> HFTextModel | SequenceClassifier:
    """Load a model id/path/``embedded:`` preset as the right adapter for its config (causal, seq2seq or
    sequence classifier: see ``_model_kind``), on ``device``
    (the CPU unless asked), in ``dtype``; ``device_map`` (e.g. "auto") and ``trust_remote_code``
    go to ``from_pretrained`` as given. ``batch_size=None`` picks :func:`default_batch_size`."""
    from transformers import (
        AutoConfig,
        AutoModelForCausalLM,
        AutoModelForSeq2SeqLM,
        AutoModelForSequenceClassification,
        AutoTokenizer,
    )

    if kind not in MODEL_KINDS:
        raise ConfigError(f"model kind is {kind!r}; valid values: {', '.join(MODEL_KINDS)}")
    target = resolve_device(device)
    load = {"dtype": torch_dtype(dtype, target), "trust_remote_code": trust_remote_code}
    if device_map is not None:
        load["device_map"] = device_map
    if kwargs.get("batch_size") is None:
        kwargs["batch_size"] = default_batch_size(target)
    path = loadable_model(spec)
    try:
        with weight_errors(spec, path):
            config = AutoConfig.from_pretrained(path, trust_remote_code=trust_remote_code)
            kind = _model_kind(config) if kind == "auto" else kind
            auto = {"seq2seq": AutoModelForSeq2SeqLM, "classifier": AutoModelForSequenceClassification}.get(
                kind, AutoModelForCausalLM)
            model = auto.from_pretrained(path, **load)
            tokenizer = AutoTokenizer.from_pretrained(path, trust_remote_code=trust_remote_code)
    except (OSError, ValueError) as exc:
        if isinstance(exc, ModelNotAvailableError):
            raise
        raise ModelNotAvailableError(
            f"could not load model {spec!r} from {path}: {exc}. Pass a local model directory or "
            "a Hugging Face model id available offline"
        ) from None
    adapter = {"seq2seq": HFSeq2SeqLM, "classifier": SequenceClassifier}.get(kind, HFCausalLM)
    # with a device_map, accelerate has placed the weights already
    return adapter(model if device_map is not None else model.to(target), tokenizer, **kwargs)


def load_base_model(config: BaseModelConfig) -> HFTextModel | SequenceClassifier:
    return load_text_model(
        config.model,
        config.kind,
        chat_template=config.chat_template,
        system_prompt=config.system_prompt,
        max_new_tokens=config.max_new_tokens,
        batch_size=config.batch_size,
        **load_options(config),
    )


def load_options(config: LoadOptions) -> dict[str, Any]:
    """The ``from_pretrained`` options of a model config, as load_text_model takes them."""
    return {"device": config.device, "dtype": config.dtype, "device_map": config.device_map,
            "trust_remote_code": config.trust_remote_code}
