"""Edit validation: every bad edit is rejected with an actionable message before it reaches a store."""

from __future__ import annotations

import json

import pytest

from serac.edits import (
    MAX_INPUT_CHARS,
    MAX_METADATA_BYTES,
    MAX_TARGET_CHARS,
    Edit,
    EditRequest,
    input_key,
    to_requests,
    validate_edit,
)
from serac.errors import EditValidationError


def test_valid_edit_is_normalised():
    # "e" + combining acute accent becomes the single NFC code point; surrounding blanks go.
    request = validate_edit("  Who is the Pre\u0301mier?\n", "\tAna ", {"author": "ana", "n": 2})
    assert request == EditRequest("Who is the Pr\u00e9mier?", "Ana", {"author": "ana", "n": 2})


def test_bytes_are_decoded_as_utf8():
    assert validate_edit("Qui est l\u00e0 ?".encode(), b"moi").input == "Qui est l\u00e0 ?"


@pytest.mark.parametrize("value", ["", "   ", "\n\t \u3000"])
@pytest.mark.parametrize("field", ["input", "target"])
def test_empty_or_blank_rejected(field, value):
    args = {"input": "a question", "target": "an answer", field: value}
    with pytest.raises(EditValidationError, match=rf"edit {field} is empty"):
        validate_edit(args["input"], args["target"])


def test_error_is_also_a_value_error():
    with pytest.raises(ValueError):
        validate_edit("", "x")


@pytest.mark.parametrize("field, limit", [("input", MAX_INPUT_CHARS), ("target", MAX_TARGET_CHARS)])
def test_oversized_rejected_and_limit_is_inclusive(field, limit):
    ok = {"input": "q", "target": "a", field: "x" * limit}
    assert len(getattr(validate_edit(ok["input"], ok["target"]), field)) == limit
    bad = {"input": "q", "target": "a", field: "x" * (limit + 1)}
    with pytest.raises(EditValidationError, match=rf"edit {field} has {limit + 1} characters.*limit of {limit}"):
        validate_edit(bad["input"], bad["target"])


def test_length_counts_after_stripping():
    # Surrounding whitespace does not count against the limit.
    assert len(validate_edit("  " + "x" * MAX_INPUT_CHARS + "  ", "a").input) == MAX_INPUT_CHARS


def test_invalid_utf8_bytes_rejected_with_position():
    with pytest.raises(EditValidationError, match=r"edit input is not valid UTF-8 \(bad byte at position 3\)"):
        validate_edit(b"abc\xff\xfe", "x")


def test_surrogates_rejected():
    # What Python produces when bytes are decoded with errors="surrogateescape".
    text = b"caf\xe9".decode("utf-8", errors="surrogateescape")
    with pytest.raises(EditValidationError, match="edit target contains unpaired surrogates"):
        validate_edit("q", text)


def test_nul_rejected():
    with pytest.raises(EditValidationError, match="edit input contains a NUL character"):
        validate_edit("who\x00is", "x")


@pytest.mark.parametrize("value, type_name", [(42, "int"), (None, "NoneType"), (["a"], "list"), (3.5, "float")])
def test_non_string_rejected(value, type_name):
    with pytest.raises(EditValidationError, match=rf"edit target must be a string, got {type_name}"):
        validate_edit("q", value)


def test_metadata_must_be_a_mapping():
    with pytest.raises(EditValidationError, match="edit metadata must be a mapping.*got list"):
        validate_edit("q", "a", ["author"])


@pytest.mark.parametrize("metadata", [{"when": object()}, {"x": {1, 2}}, {"score": float("nan")}, {"b": b"raw"}])
def test_metadata_not_json_rejected(metadata):
    with pytest.raises(EditValidationError, match="edit metadata must be JSON-serialisable"):
        validate_edit("q", "a", metadata)


def test_metadata_size_limit_in_utf8_bytes():
    # 2-byte characters: the character count is under the limit, the UTF-8 size is over it.
    text = "\u00e9" * (MAX_METADATA_BYTES // 2)
    assert len(json.dumps({"t": text}, ensure_ascii=False)) < MAX_METADATA_BYTES
    with pytest.raises(EditValidationError, match=rf"over the {MAX_METADATA_BYTES}-byte limit"):
        validate_edit("q", "a", {"t": text})
    fits = {"t": "x" * (MAX_METADATA_BYTES - 20)}
    assert validate_edit("q", "a", fits).metadata == fits


def test_metadata_size_message_reports_bytes():
    text = "\u00e9" * MAX_METADATA_BYTES
    size = len(json.dumps({"t": text}, ensure_ascii=False).encode("utf-8"))
    with pytest.raises(EditValidationError, match=rf"metadata is {size} bytes as JSON"):
        validate_edit("q", "a", {"t": text})


def test_metadata_is_copied_to_plain_json():
    original = {"tags": ("a", "b"), "nested": {"k": 1}}
    request = validate_edit("q", "a", original)
    assert request.metadata == {"tags": ["a", "b"], "nested": {"k": 1}}
    original["nested"]["k"] = 2
    assert request.metadata["nested"]["k"] == 1


def test_input_key_folds_case_and_whitespace_only():
    assert input_key("  Who IS\tthe  PM? ") == input_key("who is the pm?")
    assert input_key("Stra\u00dfe") == input_key("STRASSE")  # casefold, not lower
    assert input_key("who is the pm?") != input_key("who is the pm")


def test_to_requests_accepts_all_shapes():
    requests = to_requests(
        [
            ("q1", "a1"),
            ["q2", "a2", {"k": "v"}],
            {"input": "q3", "target": "a3"},
            EditRequest("q4", "a4"),
        ]
    )
    assert [(r.input, r.target, dict(r.metadata)) for r in requests] == [
        ("q1", "a1", {}),
        ("q2", "a2", {"k": "v"}),
        ("q3", "a3", {}),
        ("q4", "a4", {}),
    ]


@pytest.mark.parametrize(
    "bad, message",
    [
        (("q", ""), r"edit #2: edit target is empty"),
        ({"input": "q", "target": "a", "author": "x"}, r"edit #2: unknown field\(s\) \['author'\]"),
        (("only-one",), r"edit #2: expected an \(input, target\) pair"),
        ("q -> a", r"edit #2: expected an \(input, target\) pair"),
        ({"target": "a"}, r"edit #2: edit input must be a string, got NoneType"),
    ],
)
def test_to_requests_names_the_bad_index(bad, message):
    with pytest.raises(EditValidationError, match=message):
        to_requests([("q0", "a0"), ("q1", "a1"), bad, ("q3", "a3")])


def test_edit_to_dict():
    edit = Edit(id=7, input="q", target="a", created_at=0.0, metadata={"k": 1})
    assert edit.to_dict() == {
        "id": 7,
        "input": "q",
        "target": "a",
        "created_at": "1970-01-01T00:00:00+00:00",
        "metadata": {"k": 1},
    }
