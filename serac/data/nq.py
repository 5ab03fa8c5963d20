"""NQ-open questions (JSONL: ``question``, ``answer`` list), used as out-of-scope probes."""

from __future__ import annotations

from serac.data.examples import Probe
from serac.data.io import (
    PathArg,
    check_limit,
    iter_jsonl,
    parse_records,
    require_record,
    require_str,
    require_str_list,
)


def load_nq(
    path: PathArg, limit: int | None = None, *, skip_malformed: bool = False
) -> list[Probe]:
    """Load NQ-open questions as probes whose target is the first listed answer.

    ``limit`` keeps (and checks) only the first lines; ``skip_malformed`` logs and drops bad
    records instead of raising.
    """
    check_limit(limit)
    return parse_records(iter_jsonl(path), _parse, limit, skip_malformed)


def _parse(raw: object, where: str, lineno: int) -> Probe:
    rec = require_record(raw, where)
    question = require_str(rec, "question", where)
    return Probe(question, require_str_list(rec, "answer", where)[0])
