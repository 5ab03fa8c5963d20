"""Edit files (CSV, JSON Lines): every bad row reported with its line number, good rows parsed."""

from __future__ import annotations

import pytest

from serac.edit_files import RowError, read_edit_file
from serac.edits import EditRequest
from serac.errors import EditValidationError


def test_csv_columns_metadata_and_extra_columns():
    content = (
        "\ufeffInput,Target,author,metadata\n"
        "Who leads the UK?,Keir Starmer,ana,\n"
        '"Capital of Australia, officially?",Canberra,,"{""source"": ""atlas""}"\n'
    )
    parsed = read_edit_file(content, "csv")
    assert parsed.errors == [] and parsed.rows == 2
    assert parsed.requests == [
        EditRequest("Who leads the UK?", "Keir Starmer", {"author": "ana"}),
        EditRequest("Capital of Australia, officially?", "Canberra", {"source": "atlas"}),
    ]


def test_csv_reports_every_bad_row_by_line():
    content = (
        "input,target,metadata\n"  # line 1
        "good,row,\n"  # 2
        ",no input,\n"  # 3
        '"two\nlines",ok,\n'  # 4-5
        "bad meta,x,{nope\n"  # 6
        "list meta,x,[1]\n"  # 7
        "short,row\n"  # 8
        "\n"  # 9: blank, skipped
        "last,good,\n"  # 10
    )
    parsed = read_edit_file(content, "csv")
    assert parsed.rows == 7
    assert [r.input for r in parsed.requests] == ["good", "two\nlines", "last"]
    assert [e.row for e in parsed.errors] == [3, 6, 7, 8]
    messages = [e.message for e in parsed.errors]
    assert "input is empty" in messages[0]
    assert "not valid JSON" in messages[1] and "object" in messages[2]
    assert "2 cells" in messages[3] and "3 columns" in messages[3]


@pytest.mark.parametrize(
    "header, expected",
    [("question,answer", "no 'input' or 'target' column"), ("input,input,target", "repeats column")],
)
def test_csv_header_problems(header, expected):
    parsed = read_edit_file(header + "\na,b\n", "csv")
    assert parsed.requests == [] and parsed.errors[0].row == 1 and expected in parsed.errors[0].message


def test_jsonl_reports_every_bad_line():
    content = "\n".join(
        [
            '{"input": "a", "target": "b", "metadata": {"k": 1}}',
            "",
            "[1, 2]",
            "{broken",
            '{"input": "a", "target": " "}',
            '{"input": "a", "target": "b", "extra": 1}',
            '{"input": "c", "target": "d"}',
        ]
    )
    parsed = read_edit_file(content, "jsonl")
    assert parsed.rows == 6
    assert parsed.requests == [EditRequest("a", "b", {"k": 1}), EditRequest("c", "d", {})]
    assert [e.row for e in parsed.errors] == [3, 4, 5, 6]
    assert "JSON object" in parsed.errors[0].message and "not valid JSON" in parsed.errors[1].message
    assert "target is empty" in parsed.errors[2].message and "unknown field" in parsed.errors[3].message


def test_empty_files_and_unknown_format():
    assert read_edit_file("", "csv").rows == 0 and read_edit_file("\n\n", "jsonl").rows == 0
    with pytest.raises(EditValidationError, match="unknown edit file format 'xml'"):
        read_edit_file("<edits/>", "xml")  # type: ignore[arg-type]
    assert isinstance(read_edit_file("x", "jsonl").errors[0], RowError)
