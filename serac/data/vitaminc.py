"""VitaminC fact-checking items (JSONL: ``claim``, ``evidence``, ``label``, ``id``).

Labels are accepted in any case (the upstream SUPPORTS / REFUTES / NOT ENOUGH INFO or the
lower-case re-packaging) and normalised to lower case.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from os import PathLike

from serac.data.examples import FactCheckExample
from serac.data.io import (
    PathArg,
    check_limit,
    iter_jsonl,
    parse_records,
    require_id,
    require_record,
    require_str,
)
from serac.errors import DataError

LABELS = ("supports", "refutes", "not enough info")


def load_vitaminc(
    paths: PathArg | Sequence[PathArg],
    limit: int | None = None,
    *,
    skip_malformed: bool = False,
) -> list[FactCheckExample]:
    """Load VitaminC items from one file or several, read in order.

    ``limit`` caps the total (later files are not opened once it is reached);
    ``skip_malformed`` logs and drops bad records instead of raising.
    """
    check_limit(limit)
    files = [paths] if isinstance(paths, (str, PathLike)) else list(paths)
    if not files:
        raise DataError("load_vitaminc got no files; expected a path or a non-empty list of paths")
    rows = itertools.chain.from_iterable(iter_jsonl(path) for path in files)
    return parse_records(rows, _parse, limit, skip_malformed)


def _parse(raw: object, where: str, lineno: int) -> FactCheckExample:
    rec = require_record(raw, where)
    label = " ".join(require_str(rec, "label", where).casefold().split())
    if label not in LABELS:
        raise DataError(
            f"{where}: field 'label' is {rec['label']!r}; expected one of {', '.join(LABELS)} "
            "(any case)"
        )
    return FactCheckExample(
        claim=require_str(rec, "claim", where),
        evidence=require_str(rec, "evidence", where),
        label=label,
        record_id=f"vitaminc:{require_id(rec, 'id', where)}",
    )
