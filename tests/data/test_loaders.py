"""Tests for the dataset loaders, on tiny fixtures written to tmp_path (never the real data)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from serac.data import (
    EditExample,
    FactCheckExample,
    Probe,
    conflict_groups,
    fact_key,
    load_counterfact,
    load_nq,
    load_vitaminc,
    load_zsre,
)
from serac.errors import DataError


def zsre_record(**overrides: Any) -> dict[str, Any]:
    record = {
        "subject": "Toodyay Fire Station",
        "src": "What architect designed Toodyay Fire Station?",
        "pred": "Ken Duncan",
        "rephrase": "Who is the architect of Toodyay Fire Station?",
        "alt": "Wyndham Lewis",
        "answers": ["Ken Duncan"],
        "loc": "nq question: who sang the theme song for friends",
        "loc_ans": "The Rembrandts",
        "cond": "Ken Duncan >> Wyndham Lewis || What architect designed Toodyay Fire Station?",
    }
    record.update(overrides)
    return record


def cf_record(**overrides: Any) -> dict[str, Any]:
    record = {
        "case_id": 7,
        "prompt": "The mother tongue of Danielle Darrieux is",
        "target_new": "English",
        "subject": "Danielle Darrieux",
        "ground_truth": "French",
        "rephrase_prompt": "Where Danielle Darrieux is from, people speak the language of",
        "locality_prompt": "Michel Rocard is a native speaker of",
        "locality_ground_truth": "French",
    }
    record.update(overrides)
    return record


def vitc_record(**overrides: Any) -> dict[str, Any]:
    record = {"claim": "A claim .", "evidence": "Some evidence .", "label": "SUPPORTS", "id": "abc_1"}
    record.update(overrides)
    return record


def write_json(path: Path, data: Any) -> Path:
    path.write_text(json.dumps(data), encoding="utf-8")
    return path


def write_jsonl(path: Path, rows: list[Any]) -> Path:
    path.write_text("".join(json.dumps(row) + "\n" for row in rows), encoding="utf-8")
    return path


# --- zsRE -----------------------------------------------------------------------------------


def test_zsre_parses_record(tmp_path: Path) -> None:
    path = write_json(tmp_path / "zsre.json", [zsre_record(), zsre_record(alt="Frank Gehry")])
    examples = load_zsre(path)
    assert len(examples) == 2
    ex = examples[0]
    assert ex.edit_input == "What architect designed Toodyay Fire Station?"
    assert ex.edit_target == "Wyndham Lewis"
    assert ex.in_scope == (
        Probe("What architect designed Toodyay Fire Station?", "Wyndham Lewis"),
        Probe("Who is the architect of Toodyay Fire Station?", "Wyndham Lewis"),
    )
    assert ex.reliability_probe == ex.in_scope[0]
    assert ex.generalization_probes == (ex.in_scope[1],)
    assert ex.out_of_scope == (Probe("who sang the theme song for friends", "The Rembrandts"),)
    assert ex.subject == "Toodyay Fire Station"
    assert ex.original_target == "Ken Duncan"
    assert [e.record_id for e in examples] == ["zsre:0", "zsre:1"]


def test_zsre_keeps_loc_without_prefix(tmp_path: Path) -> None:
    path = write_json(tmp_path / "zsre.json", [zsre_record(loc="who wrote hamlet")])
    assert load_zsre(path)[0].out_of_scope[0].input == "who wrote hamlet"


def test_zsre_limit(tmp_path: Path) -> None:
    records = [zsre_record(alt=f"answer {i}") for i in range(5)]
    path = write_json(tmp_path / "zsre.json", records)
    assert [e.edit_target for e in load_zsre(path, limit=2)] == ["answer 0", "answer 1"]
    assert load_zsre(path, limit=0) == []
    assert len(load_zsre(path, limit=100)) == 5


def test_limit_must_be_non_negative_int(tmp_path: Path) -> None:
    path = write_json(tmp_path / "zsre.json", [zsre_record()])
    with pytest.raises(ValueError, match="limit=-1"):
        load_zsre(path, limit=-1)


@pytest.mark.parametrize(
    ("record", "pattern"),
    [
        ({k: v for k, v in zsre_record().items() if k != "alt"}, r"record 1: field 'alt' is missing; expected a non-empty string"),
        (zsre_record(src=""), r"record 1: field 'src' is empty; expected a non-empty string"),
        (zsre_record(rephrase="   "), r"record 1: field 'rephrase' is empty"),
        (zsre_record(subject=None), r"record 1: field 'subject' is a JSON null; expected a non-empty string"),
        (zsre_record(answers="Ken Duncan"), r"record 1: field 'answers' is a JSON string; expected a non-empty list"),
        (zsre_record(answers=[]), r"record 1: field 'answers' is an empty list"),
        (zsre_record(answers=[3]), r"record 1: field 'answers' item 0 is a JSON number"),
        (zsre_record(loc="nq question: "), r"record 1: field 'loc' holds only the 'nq question: ' prefix"),
        ("not an object", r"record 1: record is a JSON string; expected a JSON object"),
    ],
)
def test_zsre_malformed_record(tmp_path: Path, record: Any, pattern: str) -> None:
    path = write_json(tmp_path / "zsre.json", [zsre_record(), record])
    with pytest.raises(DataError, match=pattern) as info:
        load_zsre(path)
    assert str(path) in str(info.value)


def test_zsre_bad_record_past_limit_is_not_checked(tmp_path: Path) -> None:
    path = write_json(tmp_path / "zsre.json", [zsre_record(), {"src": 1}])
    assert len(load_zsre(path, limit=1)) == 1


def test_zsre_skip_malformed_drops_and_logs(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    records = [zsre_record(alt="a0"), zsre_record(alt=""), zsre_record(alt="a2"), zsre_record(alt="a3")]
    path = write_json(tmp_path / "zsre.json", records)
    with pytest.raises(DataError, match="record 1: field 'alt' is empty"):
        load_zsre(path)
    with caplog.at_level("WARNING", logger="serac.data.io"):
        examples = load_zsre(path, skip_malformed=True)
    assert [e.record_id for e in examples] == ["zsre:0", "zsre:2", "zsre:3"]
    assert "record 1: field 'alt' is empty" in caplog.text
    assert [e.record_id for e in load_zsre(path, limit=2, skip_malformed=True)] == ["zsre:0", "zsre:2"]


# --- file-level errors (shared by every loader) ---------------------------------------------------


@pytest.mark.parametrize("loader", [load_zsre, load_counterfact, load_nq, load_vitaminc])
def test_missing_file(tmp_path: Path, loader: Any) -> None:
    path = tmp_path / "nope.json"
    with pytest.raises(DataError, match=r"nope\.json: file not found"):
        loader(path)


def test_directory_instead_of_file(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="is a directory"):
        load_counterfact(tmp_path)


def test_invalid_json(tmp_path: Path) -> None:
    path = tmp_path / "zsre.json"
    path.write_text('[\n  {"src": "a",\n}', encoding="utf-8")
    with pytest.raises(DataError, match=r"zsre\.json: invalid JSON at line 3 column 1 .*expected a JSON list"):
        load_zsre(path)


def test_json_top_level_not_list(tmp_path: Path) -> None:
    path = write_json(tmp_path / "cf.json", {"data": []})
    with pytest.raises(DataError, match=r"top level is a JSON object; expected a JSON list of records"):
        load_counterfact(path)


def test_not_utf8(tmp_path: Path) -> None:
    path = tmp_path / "nq.jsonl"
    path.write_bytes(b'{"question": "caf\xe9", "answer": ["x"]}\n')
    with pytest.raises(DataError, match="not valid UTF-8"):
        load_nq(path)


# --- CounterFact ------------------------------------------------------------------------------


def test_counterfact_parses_record(tmp_path: Path) -> None:
    path = write_json(tmp_path / "cf.json", [cf_record(), cf_record(case_id="x9")])
    examples = load_counterfact(path)
    ex = examples[0]
    assert ex.reliability_probe == Probe("The mother tongue of Danielle Darrieux is", "English")
    assert ex.generalization_probes == (
        Probe("Where Danielle Darrieux is from, people speak the language of", "English"),
    )
    assert ex.out_of_scope == (Probe("Michel Rocard is a native speaker of", "French"),)
    assert (ex.subject, ex.original_target) == ("Danielle Darrieux", "French")
    assert [e.record_id for e in examples] == ["counterfact:7", "counterfact:x9"]


def test_counterfact_limit(tmp_path: Path) -> None:
    path = write_json(tmp_path / "cf.json", [cf_record(case_id=i) for i in range(4)])
    assert [e.record_id for e in load_counterfact(path, limit=3)] == [
        "counterfact:0",
        "counterfact:1",
        "counterfact:2",
    ]


@pytest.mark.parametrize(
    ("record", "pattern"),
    [
        ({k: v for k, v in cf_record().items() if k != "locality_prompt"}, r"record 0: field 'locality_prompt' is missing"),
        (cf_record(target_new=""), r"record 0: field 'target_new' is empty"),
        (cf_record(ground_truth=["French"]), r"record 0: field 'ground_truth' is a JSON list; expected a non-empty string"),
        (cf_record(case_id=True), r"record 0: field 'case_id' is a JSON boolean; expected an integer or a non-empty string"),
        ({k: v for k, v in cf_record().items() if k != "case_id"}, r"record 0: field 'case_id' is missing"),
    ],
)
def test_counterfact_malformed_record(tmp_path: Path, record: Any, pattern: str) -> None:
    path = write_json(tmp_path / "cf.json", [record])
    with pytest.raises(DataError, match=pattern):
        load_counterfact(path)


# --- NQ-open ----------------------------------------------------------------------------------


def test_nq_parses_lines(tmp_path: Path) -> None:
    path = tmp_path / "nq.jsonl"
    path.write_text(
        '{"question": "who wrote hamlet", "answer": ["Shakespeare", "William Shakespeare"]}\n'
        "\n"
        '{"question": "capital of france", "answer": ["Paris"]}\n',
        encoding="utf-8",
    )
    assert load_nq(path) == [Probe("who wrote hamlet", "Shakespeare"), Probe("capital of france", "Paris")]
    assert load_nq(path, limit=1) == [Probe("who wrote hamlet", "Shakespeare")]


def test_nq_bad_json_line_names_line_number(tmp_path: Path) -> None:
    path = tmp_path / "nq.jsonl"
    path.write_text('{"question": "q", "answer": ["a"]}\n{"question": "q2", \n', encoding="utf-8")
    with pytest.raises(DataError, match=r"nq\.jsonl line 2: invalid JSON .*expected one JSON object per line"):
        load_nq(path)


@pytest.mark.parametrize(
    ("row", "pattern"),
    [
        ({"question": "q"}, r"line 2: field 'answer' is missing; expected a non-empty list of non-empty strings"),
        ({"question": "q", "answer": "a"}, r"line 2: field 'answer' is a JSON string"),
        ({"question": "q", "answer": [""]}, r"line 2: field 'answer' item 0 is an empty string"),
        ({"answer": ["a"]}, r"line 2: field 'question' is missing"),
        (["q", ["a"]], r"line 2: record is a JSON list; expected a JSON object"),
    ],
)
def test_nq_malformed_line(tmp_path: Path, row: Any, pattern: str) -> None:
    path = write_jsonl(tmp_path / "nq.jsonl", [{"question": "ok", "answer": ["a"]}, row])
    with pytest.raises(DataError, match=pattern):
        load_nq(path)


def test_skip_malformed_still_raises_on_invalid_json_line(tmp_path: Path) -> None:
    path = tmp_path / "nq.jsonl"
    path.write_text('{"question": "q", "answer": []}\n{"question": \n', encoding="utf-8")
    with pytest.raises(DataError, match="line 2: invalid JSON"):
        load_nq(path, skip_malformed=True)
    path.write_text('{"question": "q", "answer": []}\n{"question": "q2", "answer": ["a"]}\n', encoding="utf-8")
    assert load_nq(path, skip_malformed=True) == [Probe("q2", "a")]


# --- VitaminC ---------------------------------------------------------------------------------


def test_vitaminc_normalises_labels_and_reads_several_files(tmp_path: Path) -> None:
    first = write_jsonl(
        tmp_path / "a.jsonl",
        [vitc_record(label="SUPPORTS", id="1"), vitc_record(label="Not Enough Info", id="2")],
    )
    second = write_jsonl(tmp_path / "b.jsonl", [vitc_record(label="refutes", id="3")])
    examples = load_vitaminc([first, str(second)])
    assert [e.label for e in examples] == ["supports", "not enough info", "refutes"]
    assert [e.record_id for e in examples] == ["vitaminc:1", "vitaminc:2", "vitaminc:3"]
    assert examples[0] == FactCheckExample("A claim .", "Some evidence .", "supports", "vitaminc:1")
    assert load_vitaminc(first) == examples[:2]
    assert load_vitaminc(str(first)) == examples[:2]


def test_vitaminc_limit_spans_files(tmp_path: Path) -> None:
    first = write_jsonl(tmp_path / "a.jsonl", [vitc_record(id="1"), vitc_record(id="2")])
    second = write_jsonl(tmp_path / "b.jsonl", [vitc_record(id="3"), vitc_record(id="4")])
    assert [e.record_id for e in load_vitaminc([first, second], limit=3)] == [
        "vitaminc:1",
        "vitaminc:2",
        "vitaminc:3",
    ]
    assert len(load_vitaminc([first, tmp_path / "missing.jsonl"], limit=2)) == 2


@pytest.mark.parametrize(
    ("row", "pattern"),
    [
        (vitc_record(label="maybe"), r"line 1: field 'label' is 'maybe'; expected one of supports, refutes, not enough info"),
        (vitc_record(evidence=""), r"line 1: field 'evidence' is empty"),
        ({k: v for k, v in vitc_record().items() if k != "claim"}, r"line 1: field 'claim' is missing"),
        (vitc_record(id=None), r"line 1: field 'id' is a JSON null"),
    ],
)
def test_vitaminc_malformed_line(tmp_path: Path, row: Any, pattern: str) -> None:
    path = write_jsonl(tmp_path / "v.jsonl", [row])
    with pytest.raises(DataError, match=pattern):
        load_vitaminc(path)


def test_vitaminc_needs_a_file() -> None:
    with pytest.raises(DataError, match="no files"):
        load_vitaminc([])


# --- example type and conflicts ----------------------------------------------------------------


def test_edit_example_needs_in_scope_probe() -> None:
    with pytest.raises(ValueError, match="in_scope is empty"):
        EditExample("q", "a", in_scope=(), out_of_scope=())


def test_conflict_groups(tmp_path: Path) -> None:
    records = [
        zsre_record(alt="Wyndham Lewis"),
        zsre_record(subject="Eiffel Tower", answers=["Gustave Eiffel"], alt="Le Corbusier"),
        zsre_record(subject="  toodyay   FIRE station ", answers=["ken duncan"], alt="Frank Gehry"),
        zsre_record(subject="Toodyay Fire Station", answers=["Someone Else"], alt="Zaha Hadid"),
    ]
    examples = load_zsre(write_json(tmp_path / "zsre.json", records))
    assert fact_key(examples[0]) == ("toodyay fire station", "ken duncan")
    assert fact_key(examples[2]) == fact_key(examples[0])
    assert conflict_groups(examples) == {
        ("toodyay fire station", "ken duncan"): [0, 2],
        ("eiffel tower", "gustave eiffel"): [1],
        ("toodyay fire station", "someone else"): [3],
    }


def test_fact_key_without_subject_uses_edit_input() -> None:
    probe = Probe("Who  designed X?", "Y")
    example = EditExample("Who  designed X?", "Y", in_scope=(probe,), out_of_scope=())
    assert fact_key(example) == ("who designed x?", "")
