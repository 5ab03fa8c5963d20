"""Request and response models: the OpenAI wire format plus serac's edit-management API.

Requests forbid unknown fields: a misspelt ``max_tokns`` or an unsupported ``tools`` would otherwise
be dropped silently and the caller would get an answer to a different question than they asked.
The OpenAI fields this server cannot honour beyond their defaults (``n``, penalties, ``logprobs``)
are accepted at their default values only, and rejected with a message otherwise.
"""

from __future__ import annotations

from typing import Any, Literal, Optional, Union

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from serac.base import GenerationOptions

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
    n: Optional[int] = Field(1, description="Must be 1: one choice per prompt.")
    stream: Optional[bool] = False
    stream_options: Optional[StreamOptions] = None
    seed: Optional[int] = Field(None, ge=0, le=MAX_ID)
    user: Optional[str] = Field(None, max_length=256)
    presence_penalty: Optional[float] = Field(None, description="Accepted only as 0.")
    frequency_penalty: Optional[float] = Field(None, description="Accepted only as 0.")
    logprobs: Optional[Any] = Field(None, description="Not supported; accepted only as null/false.")

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

    @field_validator("n")
    @classmethod
    def _check_n(cls, value: int | None) -> int | None:
        if value not in (None, 1):
            raise ValueError(f"this server returns one choice per prompt; n must be 1, got {value}")
        return value

    @field_validator("presence_penalty", "frequency_penalty")
    @classmethod
    def _check_penalty(cls, value: float | None) -> float | None:
        if value not in (None, 0, 0.0):
            raise ValueError(f"penalties are not supported; leave them out or set them to 0, got {value}")
        return value

    @field_validator("logprobs")
    @classmethod
    def _check_logprobs(cls, value: Any) -> Any:
        if value not in (None, False):
            raise ValueError(
                f"logprobs are not supported; leave the field out or set it to null/false, got {value!r:.40}"
            )
        return value

    def generation_options(self, default_max_tokens: int | None = None) -> GenerationOptions:
        temperature = self.temperature or 0.0
        stops = [self.stop] if isinstance(self.stop, str) else (self.stop or [])
        return GenerationOptions(
            max_new_tokens=self.max_tokens or default_max_tokens,
            temperature=temperature if temperature >= MIN_TEMPERATURE else 0.0,
            top_p=1.0 if self.top_p is None else self.top_p,
            stop=tuple(s for s in stops if s),  # an empty stop string would stop before anything
            seed=self.seed,
        )

    @property
    def include_usage(self) -> bool:
        return bool(self.stream_options and self.stream_options.include_usage)


class ChatCompletionRequest(_GenerationRequest):
    messages: list[ChatMessage] = Field(..., min_length=1, max_length=256)
    max_completion_tokens: Optional[int] = Field(None, ge=1, description="Alias of max_tokens.")

    @model_validator(mode="after")
    def _check(self) -> "ChatCompletionRequest":
        if not any(m.role == "user" for m in self.messages):
            raise ValueError("messages must include at least one message with role 'user'")
        if self.max_completion_tokens is not None:
            if self.max_tokens is not None and self.max_tokens != self.max_completion_tokens:
                raise ValueError("max_tokens and max_completion_tokens disagree; send only one")
            self.max_tokens = self.max_completion_tokens
        return self

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


class ChatChoice(BaseModel):
    index: int
    message: AssistantMessage
    finish_reason: Literal["stop", "length"]
    logprobs: None = None
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
    logprobs: None = None
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
class EditIn(Strict):
    input: str = Field(..., description="The input to edit, e.g. a question.")
    target: str = Field(..., description="The answer it should get.")
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


class Health(BaseModel):
    status: Literal["ok"]
    model: str
    version: int
    edits: int


class ErrorBody(BaseModel):
    message: str
    type: str
    param: Optional[str] = None
    code: Optional[str] = None


class ErrorResponse(BaseModel):
    error: ErrorBody
