"""Request and response models: the OpenAI wire format plus serac's edit-management API.

Requests forbid unknown fields: a misspelt ``max_tokns`` would otherwise be dropped silently and the
caller would get an answer to a different question than they asked. OpenAI fields that only describe
the request (``metadata``, ``store``, ``user``, ...) are accepted and ignored; those this server
cannot honour (``tools``, ``response_format``, penalties, ...) are accepted only at their no-op
values and otherwise rejected with a message that names the field.
"""

from __future__ import annotations

import json
from typing import Any, Literal, Optional, Union

from pydantic import BaseModel, ConfigDict, Field, ValidationInfo, field_validator, model_validator

from serac.base import GenerationOptions
from serac.edits import MAX_INPUT_CHARS, MAX_TARGET_CHARS

MAX_ID = 2**63 - 1  # SQLite INTEGER range
MIN_TEMPERATURE = 0.01  # below this, decode greedily: tiny temperatures overflow the softmax


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)

    @model_validator(mode="before")
    @classmethod
    def _valid_unicode(cls, data: Any) -> Any:
        # JSON "\ud800" escapes decode to lone surrogates, which no tokenizer or SQLite can encode.
        where = _surrogate_path(data, "")
        if where is not None:
            raise ValueError(
                f"{where or 'the body'} contains an unpaired UTF-16 surrogate (a lone \\ud800-\\udfff "
                "escape); send valid Unicode text"
            )
        return data


def _surrogate_path(value: Any, path: str) -> str | None:
    """The path of the first string (or key) holding a lone surrogate, or None."""
    if isinstance(value, str):
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            return path
        return None
    if isinstance(value, dict):
        for key, item in value.items():
            name = str(key).encode("utf-8", "backslashreplace").decode("utf-8")  # printable in the message
            sub = f"{path}.{name}" if path else name
            found = _surrogate_path(key, sub) if isinstance(key, str) else None
            if found is None:
                found = _surrogate_path(item, sub)
            if found is not None:
                return found
    elif isinstance(value, list):
        for i, item in enumerate(value):
            found = _surrogate_path(item, f"{path}[{i}]")
            if found is not None:
                return found
    return None


# -- inference requests ---------------------------------------------------------------------------
class TextPart(Strict):
    type: Literal["text"]
    text: str


class ChatMessage(Strict):
    role: Literal["system", "developer", "user", "assistant"]
    content: Union[str, list[TextPart]]
    name: Optional[str] = None

    def text(self) -> str:
        if isinstance(self.content, str):
            return self.content
        return "".join(part.text for part in self.content)


class StreamOptions(Strict):
    include_usage: bool = False


# OpenAI fields the local model cannot honour: (values that change nothing, why not). Any other value
# is a 400 that names the field, never a silently different answer.
UNSUPPORTED: dict[str, tuple[tuple[Any, ...], str]] = {
    "tools": ((None, []), "tool calling is not supported"),
    "tool_choice": ((None, "none"), "tool calling is not supported"),
    "functions": ((None, []), "function calling is not supported"),
    "function_call": ((None, "none"), "function calling is not supported"),
    "response_format": (
        (None, {"type": "text"}),
        "only text responses are supported (no JSON mode or schema)",
    ),
    "logit_bias": ((None, {}), "logit_bias is not supported"),
    "audio": ((None,), "audio output is not supported"),
    "modalities": ((None, ["text"]), "only the text modality is supported"),
    "prediction": ((None,), "predicted outputs are not supported"),
    "web_search_options": ((None,), "web search is not supported"),
    "reasoning_effort": ((None,), "the local model has no reasoning modes"),
    "verbosity": ((None,), "verbosity is not supported"),
    "echo": ((None, False), "echo is not supported"),
    "suffix": ((None, ""), "suffix (insertion) is not supported"),
    "presence_penalty": ((None, 0), "penalties are not supported"),
    "frequency_penalty": ((None, 0), "penalties are not supported"),
}
MAX_N = 16  # choices per prompt (also bounded per request by the server's max_prompts_per_request)


def _unsupported(description: str = "") -> Any:
    return Field(None, description=f"Not supported: accepted only at its no-op value. {description}".strip())


class _GenerationRequest(Strict):
    """Fields shared by /v1/chat/completions and /v1/completions."""

    model: Optional[str] = Field(
        None,
        max_length=256,
        description="Accepted for compatibility; the server always answers with its one edited model.",
    )
    max_tokens: Optional[int] = Field(None, ge=1, description="Upper bound on generated tokens.")
    temperature: Optional[float] = Field(
        None, ge=0.0, le=2.0, allow_inf_nan=False, description="0 (default) decodes greedily; below 0.01 too."
    )
    top_p: Optional[float] = Field(None, gt=0.0, le=1.0, allow_inf_nan=False)
    stop: Union[str, list[str], None] = Field(None, description="Up to 4 stop sequences.")
    n: Optional[int] = Field(
        1, ge=1, le=MAX_N, description="Choices per prompt. Greedy decoding gives n equal choices."
    )
    stream: Optional[bool] = False
    stream_options: Optional[StreamOptions] = None
    seed: Optional[int] = Field(
        None, ge=0, le=MAX_ID, description="Reproducible sampling; choice j of n samples with seed + j."
    )
    # accepted and ignored: they describe the request, not the answer
    user: Optional[str] = Field(None, max_length=256, description="Accepted and ignored.")
    metadata: Optional[dict[str, str]] = Field(
        None, max_length=16, description="Accepted and ignored (OpenAI's stored-completion tags)."
    )
    store: Optional[bool] = Field(None, description="Accepted and ignored: nothing is stored.")
    service_tier: Optional[str] = Field(None, max_length=64, description="Accepted and ignored.")
    prompt_cache_key: Optional[str] = Field(None, max_length=256, description="Accepted and ignored.")
    safety_identifier: Optional[str] = Field(None, max_length=256, description="Accepted and ignored.")
    # not supported beyond their no-op values
    logit_bias: Optional[dict[str, Any]] = _unsupported("Only {} or null.")
    presence_penalty: Optional[float] = _unsupported("Only 0.")
    frequency_penalty: Optional[float] = _unsupported("Only 0.")

    @field_validator("stop")
    @classmethod
    def _check_stop(cls, value: str | list[str] | None) -> str | list[str] | None:
        items = [value] if isinstance(value, str) else (value or [])
        if len(items) > 4:
            raise ValueError(f"at most 4 stop sequences are allowed, got {len(items)}")
        if any(len(s) > 256 for s in items):
            raise ValueError(
                f"a stop sequence may be at most 256 characters, got one of {max(map(len, items))}"
            )
        return value

    @field_validator(*UNSUPPORTED, mode="before", check_fields=False)
    @classmethod
    def _only_no_op(cls, value: Any, info: ValidationInfo) -> Any:
        neutral, why = UNSUPPORTED[info.field_name]
        if not any(value == v and type(value) is type(v) or (value == v == 0) for v in neutral):
            allowed = " or ".join(json.dumps(v) for v in neutral)
            raise ValueError(f"{why} by this server's local model; leave the field out or send {allowed}")
        return value

    @property
    def choices_per_prompt(self) -> int:
        return self.n or 1

    def top_logprobs_asked(self) -> int | None:
        """None: no log-probs; k >= 0: each token's log-prob and its k likeliest rivals."""
        return None

    @model_validator(mode="after")
    def _check_stream_logprobs(self) -> "_GenerationRequest":
        if self.stream and self.top_logprobs_asked() is not None:
            raise ValueError("logprobs are not supported with stream: true; ask without streaming")
        return self

    def generation_options(self, default_max_tokens: int | None = None) -> GenerationOptions:
        temperature = self.temperature or 0.0
        stops = [self.stop] if isinstance(self.stop, str) else (self.stop or [])
        return GenerationOptions(
            max_new_tokens=self.max_tokens or default_max_tokens,
            temperature=temperature if temperature >= MIN_TEMPERATURE else 0.0,
            top_p=1.0 if self.top_p is None else self.top_p,
            stop=tuple(s for s in stops if s),  # an empty stop string would stop before anything
            seed=self.seed,
            logprobs=self.top_logprobs_asked(),
        )

    @property
    def include_usage(self) -> bool:
        return bool(self.stream_options and self.stream_options.include_usage)


class ChatCompletionRequest(_GenerationRequest):
    messages: list[ChatMessage] = Field(..., min_length=1, max_length=256)
    max_completion_tokens: Optional[int] = Field(None, ge=1, description="Alias of max_tokens.")
    logprobs: Optional[bool] = Field(
        None, description="Log-probs of the generated tokens, from the model that answered."
    )
    top_logprobs: Optional[int] = Field(
        None, ge=0, le=20, description="With logprobs: the k likeliest tokens at each step."
    )
    parallel_tool_calls: Optional[bool] = Field(None, description="Accepted and ignored (no tools).")
    tools: Optional[list[Any]] = _unsupported("Only [] or null.")
    tool_choice: Union[str, dict[str, Any], None] = _unsupported('Only "none" or null.')
    functions: Optional[list[Any]] = _unsupported("Only [] or null.")
    function_call: Union[str, dict[str, Any], None] = _unsupported('Only "none" or null.')
    response_format: Optional[dict[str, Any]] = _unsupported('Only {"type": "text"} or null.')
    audio: Optional[dict[str, Any]] = _unsupported()
    modalities: Optional[list[str]] = _unsupported('Only ["text"] or null.')
    prediction: Optional[dict[str, Any]] = _unsupported()
    web_search_options: Optional[dict[str, Any]] = _unsupported()
    reasoning_effort: Optional[str] = _unsupported()
    verbosity: Optional[str] = _unsupported()

    @model_validator(mode="after")
    def _check(self) -> "ChatCompletionRequest":
        if not any(m.role == "user" for m in self.messages):
            raise ValueError("messages must include at least one message with role 'user'")
        if self.max_completion_tokens is not None:
            if self.max_tokens is not None and self.max_tokens != self.max_completion_tokens:
                raise ValueError("max_tokens and max_completion_tokens disagree; send only one")
            self.max_tokens = self.max_completion_tokens
        if self.top_logprobs is not None and not self.logprobs:
            raise ValueError("top_logprobs needs logprobs: true")
        return self

    def top_logprobs_asked(self) -> int | None:
        return (self.top_logprobs or 0) if self.logprobs else None

    def prompt(self) -> list[dict[str, str]]:
        # "developer" is OpenAI's newer name for the system role; chat templates know "system".
        return [
            {"role": "system" if m.role == "developer" else m.role, "content": m.text()}
            for m in self.messages
        ]


class CompletionRequest(_GenerationRequest):
    prompt: Union[str, list[str]] = Field(
        ..., description="One prompt, or a list of prompts (one choice each)."
    )
    logprobs: Optional[int] = Field(
        None, ge=0, le=5, description="Log-probs of the generated tokens and the k likeliest at each step."
    )
    best_of: Optional[int] = Field(None, ge=1, le=MAX_N, description="Accepted only as 1 or equal to n.")
    echo: Optional[bool] = _unsupported("Only false.")
    suffix: Optional[str] = _unsupported('Only "" or null.')

    @field_validator("prompt", mode="before")
    @classmethod
    def _check_prompt(cls, value: Any) -> Any:
        if isinstance(value, list):
            if not value:
                raise ValueError("prompt is an empty list; send a string or a non-empty list of strings")
            if not all(isinstance(p, str) for p in value):
                raise ValueError(
                    "prompt must be a string or a list of strings (token-id prompts are not supported), "
                    f"got a list holding {sorted({type(p).__name__ for p in value})}"
                )
        return value

    @model_validator(mode="after")
    def _check_best_of(self) -> "CompletionRequest":
        if self.best_of not in (None, 1, self.choices_per_prompt):
            raise ValueError(
                f"best_of={self.best_of} (ranking extra samples) is not supported; leave it out or set it "
                "to n"
            )
        return self

    def top_logprobs_asked(self) -> int | None:
        return self.logprobs

    def prompts(self) -> list[str]:
        return [self.prompt] if isinstance(self.prompt, str) else list(self.prompt)


# -- inference responses --------------------------------------------------------------------------
class SeracInfo(BaseModel):
    """Why this answer: the edit that routed it (and its scope score), or that the base model answered."""

    source: Literal["base", "counterfactual"]
    edit_id: Optional[int] = None
    score: Optional[float] = Field(
        None, description="Best scope score; also reported when the base answered."
    )
    edit: Optional[dict[str, Any]] = None
    store_version: Optional[int] = None


class Usage(BaseModel):
    prompt_tokens: int
    completion_tokens: int
    total_tokens: int


class AssistantMessage(BaseModel):
    role: Literal["assistant"] = "assistant"
    content: str


class TopLogprob(BaseModel):
    token: str
    logprob: float
    bytes: Optional[list[int]] = None


class ChatTokenLogprob(TopLogprob):
    top_logprobs: list[TopLogprob]


class ChatLogprobs(BaseModel):
    content: Optional[list[ChatTokenLogprob]]
    refusal: None = None


class CompletionLogprobs(BaseModel):
    tokens: list[str]
    token_logprobs: list[float]
    top_logprobs: list[dict[str, float]]
    text_offset: list[int]


class ChatChoice(BaseModel):
    index: int
    message: AssistantMessage
    finish_reason: Literal["stop", "length"]
    logprobs: Optional[ChatLogprobs] = None
    serac: SeracInfo


class ChatCompletion(BaseModel):
    id: str
    object: Literal["chat.completion"] = "chat.completion"
    created: int
    model: str
    choices: list[ChatChoice]
    usage: Usage


class CompletionChoice(BaseModel):
    index: int
    text: str
    finish_reason: Literal["stop", "length"]
    logprobs: Optional[CompletionLogprobs] = None
    serac: SeracInfo


class Completion(BaseModel):
    id: str
    object: Literal["text_completion"] = "text_completion"
    created: int
    model: str
    choices: list[CompletionChoice]
    usage: Usage


class ModelCard(BaseModel):
    id: str
    object: Literal["model"] = "model"
    created: int
    owned_by: str = "serac"


class ModelList(BaseModel):
    object: Literal["list"] = "list"
    data: list[ModelCard]


# -- edits ------------------------------------------------------------------------------------------
def _text_schema(max_chars: int) -> dict[str, Any]:
    # What serac.edits.validate_edit enforces (with its own messages): some non-space text, bounded.
    return {"minLength": 1, "maxLength": max_chars, "pattern": r"\S"}


class EditIn(Strict):
    input: str = Field(
        ...,
        description="The input to edit, e.g. a question. Not blank; surrounding whitespace is removed.",
        json_schema_extra=_text_schema(MAX_INPUT_CHARS),
    )
    target: str = Field(
        ...,
        description="The answer it should get. Not blank; surrounding whitespace is removed.",
        json_schema_extra=_text_schema(MAX_TARGET_CHARS),
    )
    metadata: Optional[dict[str, Any]] = None


class EditBatchIn(Strict):
    edits: list[EditIn] = Field(..., min_length=1, description="Stored atomically: all or none.")


class EditOut(BaseModel):
    id: int
    object: Literal["edit"] = "edit"
    input: str
    target: str
    created_at: str
    metadata: dict[str, Any]


class EditCreated(BaseModel):
    object: Literal["list"] = "list"
    data: list[EditOut]
    version: int


class EditPage(BaseModel):
    object: Literal["list"] = "list"
    data: list[EditOut]
    total: int
    offset: int
    limit: int
    has_more: bool
    next_after_id: int | None = None  # pass as after_id for the next page
    version: int


class EditDeleted(BaseModel):
    id: int
    object: Literal["edit.deleted"] = "edit.deleted"
    deleted: Literal[True] = True
    version: int


class RollbackIn(Strict):
    version: int = Field(
        ..., ge=0, le=MAX_ID, description="A version from GET /v1/edits/version or `serac edit log`."
    )


class RollbackOut(BaseModel):
    rolled_back_to: int
    version: int
    count: int


class StoreVersion(BaseModel):
    version: int
    count: int


class UpstreamHealth(BaseModel):
    status: Literal["ok", "unavailable", "timeout", "error"]
    url: str
    latency_ms: Optional[float] = None
    error: Optional[str] = None


class Health(BaseModel):
    status: Literal["ok", "unavailable"]
    model: str
    version: Optional[int] = None
    edits: Optional[int] = None
    problems: list[str] = Field(
        default_factory=list, description="Why the server is not ready (with status 503); no paths."
    )
    upstream: Optional[UpstreamHealth] = Field(
        None, description="Gateway only: the upstream server's state (GET /models)."
    )


class ErrorBody(BaseModel):
    message: str
    type: str
    param: Optional[str] = None
    code: Optional[str] = None


class ErrorResponse(BaseModel):
    error: ErrorBody
