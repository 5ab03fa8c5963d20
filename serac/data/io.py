"""Shared JSON / JSONL reading for the loaders.

Every failure becomes a :class:`~serac.errors.DataError` naming the file, the record index (JSON)
or line number (JSONL), the field, and what was expected, so a bad dataset is fixed from the
message alone.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Iterable, Iterator, Mapping
from os import PathLike
from pathlib import Path
from typing import Any, TypeVar, Union

from serac.errors import DataError

PathArg = Union[str, "PathLike[str]"]  # a path as str or os.PathLike
T = TypeVar("T")

logger = logging.getLogger(__name__)


def check_limit(limit: int | None) -> None:
    """Reject a ``limit`` that is not ``None`` or a non-negative int."""
    if limit is None:
        return
    if isinstance(limit, bool) or not isinstance(limit, int) or limit < 0:
        raise ValueError(f"limit={limit!r} is invalid; expected None or an integer >= 0")


def _read_text(path: Path, kind: str) -> str:
    try:
        return path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise DataError(f"{path}: file not found; expected a {kind} file at this path") from None
    except IsADirectoryError:
        raise DataError(f"{path}: is a directory; expected a {kind} file") from None
    except UnicodeDecodeError as exc:
        raise DataError(
            f"{path}: not valid UTF-8 at byte {exc.start}; expected a UTF-8 {kind} file"
        ) from None
    except OSError as exc:
        raise DataError(
            f"{path}: cannot be read ({exc.strerror}); expected a readable {kind} file"
        ) from None


def read_json_list(path: PathArg) -> list[Any]:
    """Read a file holding one JSON list of records."""
    path = Path(path)
    text = _read_text(path, "JSON")
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise DataError(
            f"{path}: invalid JSON at line {exc.lineno} column {exc.colno} ({exc.msg}); "
            "expected a JSON list of records"
        ) from None
    if not isinstance(data, list):
        raise DataError(
            f"{path}: top level is a JSON {_json_type(data)}; expected a JSON list of records"
        )
    return data


def iter_jsonl(path: PathArg) -> Iterator[tuple[str, int, Any]]:
    """Yield ``(where, line number, value)`` for each non-blank line of a JSON-lines file.

    The file is read when iteration starts; a line that is not valid JSON raises.
    """
    path = Path(path)
    for lineno, line in enumerate(_read_text(path, "JSONL").splitlines(), start=1):
        if not line.strip():
            continue
        try:
            value = json.loads(line)
        except json.JSONDecodeError as exc:
            raise DataError(
                f"{path} line {lineno}: invalid JSON at column {exc.colno} ({exc.msg}); "
                "expected one JSON object per line"
            ) from None
        yield f"{path} line {lineno}", lineno, value


def iter_json_list(path: PathArg) -> Iterator[tuple[str, int, Any]]:
    """Yield ``(where, index, value)`` for each record of a JSON list file (read eagerly)."""
    records = read_json_list(path)
    return ((f"{path} record {i}", i, value) for i, value in enumerate(records))


def parse_records(
    rows: Iterable[tuple[str, int, Any]],
    parse: Callable[[Any, str, int], T],
    limit: int | None,
    skip_malformed: bool,
) -> list[T]:
    """Parse ``(where, position, raw)`` rows until ``limit`` results; later rows are not read.

    With ``skip_malformed`` a record whose parse raises :class:`DataError` is logged and left
    out instead of failing the whole load (unreadable files and invalid JSON still raise).
    """
    check_limit(limit)
    results: list[T] = []
    if limit == 0:
        return results
    for where, position, raw in rows:
        try:
            results.append(parse(raw, where, position))
        except DataError as exc:
            if not skip_malformed:
                raise
            logger.warning("skipping malformed record: %s", exc)
            continue
        if limit is not None and len(results) >= limit:
            break
    return results


def require_record(value: Any, where: str) -> Mapping[str, Any]:
    """Check that a record is a JSON object."""
    if not isinstance(value, Mapping):
        raise DataError(f"{where}: record is a JSON {_json_type(value)}; expected a JSON object")
    return value


def require_str(record: Mapping[str, Any], field: str, where: str) -> str:
    """Return ``record[field]``, which must be a non-blank string."""
    if field not in record:
        raise DataError(f"{where}: field {field!r} is missing; expected a non-empty string")
    value = record[field]
    if not isinstance(value, str):
        raise DataError(
            f"{where}: field {field!r} is a JSON {_json_type(value)}; expected a non-empty string"
        )
    if not value.strip():
        raise DataError(f"{where}: field {field!r} is empty; expected a non-empty string")
    return value


def require_str_list(record: Mapping[str, Any], field: str, where: str) -> list[str]:
    """Return ``record[field]``, which must be a non-empty list of non-blank strings."""
    expected = "a non-empty list of non-empty strings"
    if field not in record:
        raise DataError(f"{where}: field {field!r} is missing; expected {expected}")
    value = record[field]
    if not isinstance(value, list):
        got = _json_type(value)
        raise DataError(f"{where}: field {field!r} is a JSON {got}; expected {expected}")
    if not value:
        raise DataError(f"{where}: field {field!r} is an empty list; expected {expected}")
    for i, item in enumerate(value):
        if not isinstance(item, str) or not item.strip():
            got = "an empty string" if isinstance(item, str) else f"a JSON {_json_type(item)}"
            raise DataError(f"{where}: field {field!r} item {i} is {got}; expected {expected}")
    return value


def require_id(record: Mapping[str, Any], field: str, where: str) -> str:
    """Return ``record[field]`` as text; it must be an integer or a non-blank string."""
    expected = "an integer or a non-empty string"
    if field not in record:
        raise DataError(f"{where}: field {field!r} is missing; expected {expected}")
    value = record[field]
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    if isinstance(value, str) and value.strip():
        return value
    got = "an empty string" if isinstance(value, str) else f"a JSON {_json_type(value)}"
    raise DataError(f"{where}: field {field!r} is {got}; expected {expected}")


def _json_type(value: Any) -> str:
    """Name a Python value by its JSON type, for error messages."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, (int, float)):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "list"
    if isinstance(value, Mapping):
        return "object"
    return type(value).__name__
