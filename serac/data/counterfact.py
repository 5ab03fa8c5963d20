"""CounterFact counterfactual edits (the simplified EasyEdit/MEND JSON list format).

Fields used: ``case_id``, ``prompt``, ``target_new``, ``ground_truth``, ``subject``,
``rephrase_prompt`` (in scope), ``locality_prompt`` / ``locality_ground_truth`` (same relation,
another subject: out of scope).
"""

from __future__ import annotations

from serac.data.examples import EditExample, Probe
from serac.data.io import (
    PathArg,
    check_limit,
    iter_json_list,
    parse_records,
    require_id,
    require_record,
    require_str,
)


def load_counterfact(
    path: PathArg, limit: int | None = None, *, skip_malformed: bool = False
) -> list[EditExample]:
    """Load CounterFact edits from ``path``.

    ``limit`` keeps (and checks) only the first records; ``skip_malformed`` logs and drops bad
    records instead of raising.
    """
    check_limit(limit)
    return parse_records(iter_json_list(path), _parse, limit, skip_malformed)


def _parse(raw: object, where: str, index: int) -> EditExample:
    rec = require_record(raw, where)
    case_id = require_id(rec, "case_id", where)
    prompt = require_str(rec, "prompt", where)
    target = require_str(rec, "target_new", where)
    return EditExample(
        edit_input=prompt,
        edit_target=target,
        in_scope=(Probe(prompt, target), Probe(require_str(rec, "rephrase_prompt", where), target)),
        out_of_scope=(
            Probe(
                require_str(rec, "locality_prompt", where),
                require_str(rec, "locality_ground_truth", where),
            ),
        ),
        subject=require_str(rec, "subject", where),
        original_target=require_str(rec, "ground_truth", where),
        record_id=f"counterfact:{case_id}",
    )
