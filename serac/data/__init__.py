"""Benchmark loaders: zsRE, CounterFact, NQ-open and VitaminC, all into one example type.

Loaders take an explicit path (no assumed data directory) and raise
:class:`~serac.errors.DataError` on a missing or malformed file.
"""

from __future__ import annotations

from serac.data.counterfact import load_counterfact
from serac.data.examples import (
    EditExample,
    FactCheckExample,
    Probe,
    conflict_groups,
    fact_key,
    normalize_text,
)
from serac.data.nq import load_nq
from serac.data.vitaminc import load_vitaminc
from serac.data.zsre import load_zsre

__all__ = [
    "EditExample",
    "FactCheckExample",
    "Probe",
    "conflict_groups",
    "fact_key",
    "load_counterfact",
    "load_nq",
    "load_vitaminc",
    "load_zsre",
    "normalize_text",
]
