"""What the HTTP layer needs from the edited model beyond ``generate`` and ``stream``: streams that
fail before the response starts, a cheap context-length check before a request is queued, and
token counts for the ``usage`` object.

Only public attributes of the editor are used (``stream``, ``base``, ``counterfactual``), so any
``TextModel`` works; models without a tokenizer count zero tokens.
"""

from __future__ import annotations

import dataclasses
import math
import threading
from typing import Any, Iterator, Sequence

from serac.base import GenerationOptions, Prompt, TokenLogprob, stop_when
from serac.editor import Answer, EditedModel
from serac.errors import PromptTooLongError


# -- which model answers, and what it reads -------------------------------------------------------
def _model_prompt(editor: EditedModel, answer: Answer, prompt: Prompt) -> tuple[Any, Prompt]:
    """(the language model that answers, the prompt it reads); the model is None when the
    counterfactual model is not a language model behind a prompt."""
    if answer.source == "base":
        return editor.base, prompt
    counterfactual = editor.counterfactual
    lm, build = getattr(counterfactual, "lm", None), getattr(counterfactual, "build_prompt", None)
    if lm is None or build is None:
        return None, prompt
    return lm, build(prompt, [c.edit for c in answer.candidates])


def stream_answer(
    editor: EditedModel, prompt: Prompt, options: GenerationOptions, stop: threading.Event | None = None
) -> tuple[Answer, Iterator[str]]:
    """``editor.stream(prompt, options)`` with its first piece computed before returning, so errors
    such as an over-long prompt are raised here, before any byte of a response is sent. Setting
    ``stop`` (the client left, the time limit passed) ends the generation after its current token."""
    with stop_when(stop):  # the model's stream reads it when it starts, inside _primed
        answer, pieces = editor.stream(prompt, options)
        return answer, _primed(pieces)


def _primed(iterator: Iterator[str]) -> Iterator[str]:
    """``iterator`` with its first item computed now; closable (closing it closes ``iterator``)."""
    return _Primed(iterator)


class _Primed:
    _EMPTY = object()

    def __init__(self, iterator: Iterator[str]) -> None:
        self._rest = iterator
        self._first: object = next(iterator, self._EMPTY)

    def __iter__(self) -> "_Primed":
        return self

    def __next__(self) -> str:
        if self._first is not self._EMPTY:
            first, self._first = self._first, self._EMPTY
            return first  # type: ignore[return-value]
        return next(self._rest)

    def close(self) -> None:
        close = getattr(self._rest, "close", None)
        if close is not None:
            close()


# -- limits and counts ----------------------------------------------------------------------------
def _has_tokenizer(model: Any) -> bool:
    return all(hasattr(model, name) for name in ("tokenizer", "format", "context_length"))


def count_tokens(model: Any, prompt: Prompt | None = None, text: str | None = None) -> int:
    """Tokens in the formatted ``prompt`` or in a generated ``text``; 0 for models without a tokenizer."""
    if not _has_tokenizer(model):
        return 0
    if prompt is not None:
        special = not getattr(model, "use_chat_template", False)
        return len(model.tokenizer(model.format(prompt), add_special_tokens=special)["input_ids"])
    return len(model.tokenizer(text or "", add_special_tokens=False)["input_ids"])


def check_fits(
    editor: EditedModel,
    prompts: Sequence[Prompt],
    options: GenerationOptions,
    max_prompt_tokens: int | None = None,
) -> None:
    """Raise PromptTooLongError before queueing a prompt the base model cannot take, or one longer
    than the server's ``max_prompt_tokens``. (A prompt that routes to the counterfactual model is
    checked there too, when it runs.)"""
    model = editor.base
    if not _has_tokenizer(model):
        return
    max_new = options.max_new_tokens or getattr(model, "max_new_tokens", 0)
    limit = model.context_length - (0 if getattr(model, "is_encoder_decoder", False) else max_new)
    for prompt in prompts:
        length = count_tokens(model, prompt)
        if length > limit:
            raise PromptTooLongError(
                f"prompt is {length} tokens; with max_tokens={max_new} the model's context of "
                f"{model.context_length} tokens allows at most {max(limit, 0)}; shorten the prompt or "
                "lower max_tokens"
            )
        if max_prompt_tokens is not None and length > max_prompt_tokens:
            raise PromptTooLongError(
                f"prompt is {length} tokens; this server takes prompts of at most {max_prompt_tokens} "
                "tokens (serac serve --max-prompt-tokens); shorten the prompt"
            )


def usage_of(
    editor: EditedModel, answer: Answer, prompt: Prompt, text: str, options: GenerationOptions
) -> tuple[int, int, str]:
    """(prompt tokens, completion tokens, finish reason) as the answering model counts them."""
    model, model_prompt = _model_prompt(editor, answer, prompt)
    if model is None:
        return 0, 0, "stop"
    prompt_tokens = count_tokens(model, prompt=model_prompt)
    completion_tokens = count_tokens(model, text=text)  # re-tokenised: may differ from what was generated
    max_new = options.max_new_tokens or getattr(model, "max_new_tokens", None)
    finish = "length" if max_new and completion_tokens >= max_new else "stop"
    if max_new:
        completion_tokens = min(completion_tokens, max_new)
    return prompt_tokens, completion_tokens, finish


# -- several choices per prompt -------------------------------------------------------------------
def choice_options(options: GenerationOptions, n: int) -> list[GenerationOptions]:
    """Options for the ``n`` choices of one prompt: seeded sampling uses seed + j for choice j, so
    the choices differ and each reproduces. (Greedy choices are all equal: see ``distinct_runs``.)"""
    if options.seed is None or options.temperature == 0:
        return [options] * n
    return [dataclasses.replace(options, seed=(options.seed + j) % 2**63) for j in range(n)]


def distinct_runs(options: GenerationOptions, n: int) -> int:
    """How many generations ``n`` choices need: one when decoding is greedy (all would be equal)."""
    return 1 if options.temperature == 0 else n


# -- log-probs in the OpenAI shapes ---------------------------------------------------------------
LOGPROB_FLOOR = -9999.0  # what OpenAI sends for a token the model gave no probability; JSON has no -inf


def _finite(value: float) -> float:
    return value if math.isfinite(value) else LOGPROB_FLOOR


def chat_logprobs(tokens: Sequence[TokenLogprob] | None) -> dict[str, Any] | None:
    """``choices[i].logprobs`` of a chat completion."""
    if tokens is None:
        return None

    def entry(token: str, logprob: float) -> dict[str, Any]:
        return {"token": token, "logprob": _finite(logprob), "bytes": list(token.encode("utf-8"))}

    content = [
        {**entry(t.token, t.logprob), "top_logprobs": [entry(a, lp) for a, lp in t.top]} for t in tokens
    ]
    return {"content": content, "refusal": None}


def completion_logprobs(tokens: Sequence[TokenLogprob] | None) -> dict[str, Any] | None:
    """``choices[i].logprobs`` of a (legacy) text completion; offsets count characters of the
    joined tokens (the choice's text is that with surrounding whitespace removed)."""
    if tokens is None:
        return None
    offsets, position = [], 0
    for t in tokens:
        offsets.append(position)
        position += len(t.token)
    top = []
    for t in tokens:
        alternatives: dict[str, float] = {}
        for token, logprob in t.top:
            alternatives.setdefault(token, _finite(logprob))  # two ids may decode alike: keep the likelier
        top.append(alternatives)
    return {
        "tokens": [t.token for t in tokens],
        "token_logprobs": [_finite(t.logprob) for t in tokens],
        "top_logprobs": top,
        "text_offset": offsets,
    }
