"""zsRE question-answering edits in the MEND format (a JSON list of records).

Fields used: ``src`` (question), ``alt`` (new answer), ``answers`` (original answers),
``rephrase`` (in scope), ``loc`` / ``loc_ans`` (an NQ question and answer: out of scope),
``subject``. Others (``pred``, ``cond``, ``portability``) are ignored.
"""

from __future__ import annotations

from serac.data.examples import EditExample, Probe
from serac.data.io import (
    PathArg,
    check_limit,
    iter_json_list,
    parse_records,
    require_record,
    require_str,
    require_str_list,
)
from serac.errors import DataError

NQ_PREFIX = "nq question: "


def load_zsre(
    path: PathArg, limit: int | None = None, *, skip_malformed: bool = False
) -> list[EditExample]:
    """Load zsRE edits from ``path``.

    ``limit`` keeps (and checks) only the first records. ``skip_malformed`` logs and drops bad
    records instead of raising; MEND's training data has a few edits with an empty ``alt``.
    """
    check_limit(limit)
    return parse_records(iter_json_list(path), _parse, limit, skip_malformed)


def _parse(raw: object, where: str, index: int) -> EditExample:
    rec = require_record(raw, where)
    question = require_str(rec, "src", where)
    new_answer = require_str(rec, "alt", where)
    answers = require_str_list(rec, "answers", where)
    rephrase = require_str(rec, "rephrase", where)
    loc = require_str(rec, "loc", where).removeprefix(NQ_PREFIX)
    if not loc.strip():
        raise DataError(
            f"{where}: field 'loc' holds only the {NQ_PREFIX!r} prefix; "
            "expected a question after it"
        )
    return EditExample(
        edit_input=question,
        edit_target=new_answer,
        in_scope=(Probe(question, new_answer), Probe(rephrase, new_answer)),
        out_of_scope=(Probe(loc, require_str(rec, "loc_ans", where)),),
        subject=require_str(rec, "subject", where),
        original_target=answers[0],
        record_id=f"zsre:{index}",
    )
