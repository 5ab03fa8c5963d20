"""The edit record and its validation.

An edit says "for this input (and anything that means the same), answer this target". Validation
happens once, here, before anything touches the store, so a bad edit never half-lands.
"""

from __future__ import annotations

import json
import unicodedata
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any, Iterable, Mapping

from serac.errors import EditValidationError

MAX_INPUT_CHARS = 4000
MAX_TARGET_CHARS = 2000
MAX_METADATA_BYTES = 16_384


# The target of an evidence edit (``serac ask --evidence``, the fc task): the edit asserts its input.
# A pair-classifier counterfactual reads the edit's input only, so this is for people reading the store.
EVIDENCE_TARGET = "supports"

@dataclass(frozen=True)
class Edit:
    """One stored edit. ``id`` is assigned by the store and never reused."""

    id: int
    input: str
    target: str
    created_at: float
    metadata: Mapping[str, Any] = field(default_factory=dict)

    @property
    def created(self) -> datetime:
        return datetime.fromtimestamp(self.created_at, tz=timezone.utc)

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "input": self.input,
            "target": self.target,
            "created_at": self.created.isoformat(),
            "metadata": dict(self.metadata),
        }


@dataclass(frozen=True)
class EditRequest:
    """A validated, not yet stored edit."""

    input: str
    target: str
    metadata: Mapping[str, Any] = field(default_factory=dict)


def _clean_text(value: Any, name: str, max_chars: int) -> str:
    if isinstance(value, (bytes, bytearray)):
        try:
            value = bytes(value).decode("utf-8")
        except UnicodeDecodeError as exc:
            raise EditValidationError(
                f"edit {name} is not valid UTF-8 (bad byte at position {exc.start}); "
                "re-encode the text as UTF-8 and try again"
            ) from None
    if not isinstance(value, str):
        raise EditValidationError(
            f"edit {name} must be a string, got {type(value).__name__}; pass the text itself"
        )
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise EditValidationError(
            f"edit {name} contains unpaired surrogates (it was decoded from invalid UTF-8); "
            "re-read the source as UTF-8"
        ) from None
    if "\x00" in value:
        raise EditValidationError(f"edit {name} contains a NUL character; remove it")
    text = unicodedata.normalize("NFC", value).strip()
    if not text:
        raise EditValidationError(f"edit {name} is empty; give a non-blank {name}")
    if len(text) > max_chars:
        raise EditValidationError(
            f"edit {name} has {len(text)} characters, more than the limit of {max_chars}; "
            f"shorten it (an edit {name} is a question or statement, not a document)"
        )
    return text


def _clean_metadata(metadata: Mapping[str, Any] | None) -> dict[str, Any]:
    if metadata is None:
        return {}
    if not isinstance(metadata, Mapping):
        raise EditValidationError(
            f"edit metadata must be a mapping (e.g. {{'author': 'ana'}}), got {type(metadata).__name__}"
        )
    try:
        encoded = json.dumps(dict(metadata), ensure_ascii=False, allow_nan=False)
    except (TypeError, ValueError) as exc:
        raise EditValidationError(f"edit metadata must be JSON-serialisable: {exc}") from None
    size = len(encoded.encode("utf-8"))
    if size > MAX_METADATA_BYTES:
        raise EditValidationError(
            f"edit metadata is {size} bytes as JSON, over the {MAX_METADATA_BYTES}-byte limit; "
            "store large documents elsewhere and keep a reference here"
        )
    return json.loads(encoded)


def validate_edit(
    input: Any, target: Any, metadata: Mapping[str, Any] | None = None
) -> EditRequest:
    """Check and normalise (NFC, surrounding whitespace) one edit, or raise EditValidationError."""
    return EditRequest(
        input=_clean_text(input, "input", MAX_INPUT_CHARS),
        target=_clean_text(target, "target", MAX_TARGET_CHARS),
        metadata=_clean_metadata(metadata),
    )


def input_key(text: str) -> str:
    """The identity of an edit input: two edits with the same key are the same edit slot
    (the newer supersedes the older). Case and whitespace runs do not change meaning."""
    return " ".join(unicodedata.normalize("NFC", text).casefold().split())


def to_request(item: EditRequest | tuple | Mapping[str, Any]) -> EditRequest:
    """One (input, target[, metadata]) tuple, {"input", "target", "metadata"} mapping or
    EditRequest, validated."""
    if isinstance(item, EditRequest):
        return item
    if isinstance(item, Mapping):
        unknown = set(item) - {"input", "target", "metadata"}
        if unknown:
            raise EditValidationError(
                f"unknown field(s) {sorted(unknown)}; an edit has 'input', 'target' and optional 'metadata'"
            )
        return validate_edit(item.get("input"), item.get("target"), item.get("metadata"))
    if isinstance(item, (tuple, list)) and len(item) in (2, 3):
        return validate_edit(*item)
    raise EditValidationError(
        f"expected an (input, target) pair or a mapping with 'input' and 'target', got {item!r:.80}"
    )


def to_requests(items: Iterable[EditRequest | tuple | Mapping[str, Any]]) -> list[EditRequest]:
    """Validate a batch up front. One bad item rejects the batch before anything is written."""
    requests = []
    for i, item in enumerate(items):
        try:
            requests.append(to_request(item))
        except EditValidationError as exc:
            raise EditValidationError(f"edit #{i}: {exc}") from None
    return requests


def check_requests(
    items: Iterable[EditRequest | tuple | Mapping[str, Any]],
) -> tuple[list[EditRequest], list[tuple[int, str]]]:
    """Validate every item and collect every problem, as (index, message), instead of stopping at
    the first: what a bulk import shows its user before anything is written."""
    requests, problems = [], []
    for i, item in enumerate(items):
        try:
            requests.append(to_request(item))
        except EditValidationError as exc:
            problems.append((i, str(exc)))
    return requests, problems
