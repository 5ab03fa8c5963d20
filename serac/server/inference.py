"""What the HTTP layer needs from the edited model beyond ``generate`` and ``stream``: streams that
fail before the response starts, a cheap context-length check before a request is queued, and
token counts for the ``usage`` object.

Only public attributes of the editor are used (``stream``, ``base``, ``counterfactual``), so any
``TextModel`` works; models without a tokenizer count zero tokens.
"""

from __future__ import annotations

import itertools
from typing import Any, Iterator, Sequence

from serac.base import GenerationOptions, Prompt
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
    editor: EditedModel, prompt: Prompt, options: GenerationOptions
) -> tuple[Answer, Iterator[str]]:
    """``editor.stream(prompt, options)`` with its first piece computed before returning, so errors
    such as an over-long prompt are raised here, before any byte of a response is sent."""
    answer, pieces = editor.stream(prompt, options)
    return answer, _primed(pieces)


def _primed(iterator: Iterator[str]) -> Iterator[str]:
    sentinel = object()
    first = next(iterator, sentinel)
    if first is sentinel:
        return iter(())
    return itertools.chain([first], iterator)


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


def check_fits(editor: EditedModel, prompts: Sequence[Prompt], options: GenerationOptions) -> None:
    """Raise PromptTooLongError before queueing a prompt the base model cannot take. (A prompt that
    routes to the counterfactual model is checked there, when it runs.)"""
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
