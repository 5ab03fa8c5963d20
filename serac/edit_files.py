"""Edits from a CSV or JSON Lines file, with every bad row reported at once.

A bulk import is all or nothing, so its user needs the whole list of problems (row number and what is
wrong) before anything is written, not the first one per attempt. ``read_edit_file`` parses and
validates every row and returns the valid requests plus a ``RowError`` per bad row.

CSV: a header row with ``input`` and ``target`` columns; an optional ``metadata`` column holds a JSON
object; any other column becomes a metadata field (empty cells are skipped). JSON Lines: one
``{"input", "target", "metadata"?}`` object per line; blank lines are skipped. Row numbers are file
line numbers (1-based), so the header of a CSV is line 1.
"""

from __future__ import annotations

import csv
import io
import json
from dataclasses import dataclass
from typing import Any, Literal

from serac.edits import EditRequest, check_requests
from serac.errors import EditValidationError

FORMATS = ("csv", "jsonl")
Format = Literal["csv", "jsonl"]


@dataclass(frozen=True)
class RowError:
    row: int  # line number in the file
    message: str


@dataclass(frozen=True)
class EditFile:
    """What a file holds: ``rows`` data rows, the valid ones as requests (in file order), the rest as errors."""

    rows: int
    requests: list[EditRequest]
    errors: list[RowError]


def read_edit_file(content: str, format: Format) -> EditFile:
    if format not in FORMATS:
        raise EditValidationError(f"unknown edit file format {format!r}; use one of {list(FORMATS)}")
    content = content.removeprefix("\ufeff")  # a BOM, as spreadsheet programs write
    parsed = _csv_rows(content) if format == "csv" else _jsonl_rows(content)
    errors = [RowError(line, item) for line, item in parsed if isinstance(item, str)]
    candidates = [(line, item) for line, item in parsed if not isinstance(item, str)]
    requests, problems = check_requests(item for _, item in candidates)
    errors += [RowError(candidates[i][0], message) for i, message in problems]
    errors.sort(key=lambda e: e.row)
    return EditFile(rows=len(parsed), requests=requests, errors=errors)


def _csv_rows(content: str) -> list[tuple[int, dict[str, Any] | str]]:
    """(line, edit mapping or error message) per data row."""
    reader = csv.reader(io.StringIO(content, newline=""))
    try:
        header = next(reader)
    except StopIteration:
        return []
    except csv.Error as exc:
        return [(1, f"unreadable CSV header: {exc}")]
    columns = [name.strip().lower() for name in header]
    missing = [name for name in ("input", "target") if name not in columns]
    if missing:
        message = (
            f"the header has no {' or '.join(repr(m) for m in missing)} column; the first row must "
            "name the columns, e.g. 'input,target,metadata'"
        )
        return [(1, message)]
    duplicated = sorted({c for c in columns if columns.count(c) > 1})
    if duplicated:
        return [(1, f"the header repeats column(s) {duplicated}; name each column once")]
    rows: list[tuple[int, dict[str, Any] | str]] = []
    while True:
        line = reader.line_num + 1
        try:
            cells = next(reader)
        except StopIteration:
            break
        except csv.Error as exc:
            rows.append((line, f"unreadable CSV: {exc}"))
            break
        if not any(cell.strip() for cell in cells):
            continue
        if len(cells) != len(columns):
            rows.append((line, f"has {len(cells)} cells, the header has {len(columns)} columns"))
            continue
        rows.append((line, _csv_edit(dict(zip(columns, cells)))))
    return rows


def _csv_edit(cells: dict[str, str]) -> dict[str, Any] | str:
    metadata: dict[str, Any] = {}
    raw = cells.pop("metadata", "").strip()
    if raw:
        try:
            metadata = json.loads(raw)
        except json.JSONDecodeError as exc:
            return f"the metadata cell is not valid JSON ({exc.msg}); write a JSON object such as {{\"author\": \"ana\"}}"
        if not isinstance(metadata, dict):
            return f"the metadata cell must be a JSON object, got a JSON {type(metadata).__name__}"
    edit = {"input": cells.pop("input"), "target": cells.pop("target")}
    metadata.update({name: value for name, value in cells.items() if value.strip()})
    return {**edit, "metadata": metadata}


def _jsonl_rows(content: str) -> list[tuple[int, dict[str, Any] | str]]:
    rows: list[tuple[int, dict[str, Any] | str]] = []
    for line, text in enumerate(content.splitlines(), start=1):
        if not text.strip():
            continue
        try:
            item = json.loads(text)
        except json.JSONDecodeError as exc:
            rows.append((line, f"not valid JSON ({exc.msg} at column {exc.colno})"))
            continue
        if not isinstance(item, dict):
            rows.append((line, f"expected a JSON object with 'input' and 'target', got a JSON {type(item).__name__}"))
            continue
        rows.append((line, item))
    return rows
