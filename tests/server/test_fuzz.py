"""Property-based fuzzing from the server's own OpenAPI schema (schemathesis + hypothesis): valid and
invalid requests to every operation; none may get a 5xx, every 4xx carries an OpenAI error object.
Bounded: a fixed number of examples per operation and mode, and an overall time budget."""

from __future__ import annotations

import time

import pytest
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis.configuration import set_hypothesis_home_dir
from hypothesis.errors import Unsatisfiable

schemathesis = pytest.importorskip("schemathesis")

BUDGET_S = 45.0
EXAMPLES = 30


def _fuzz(operation, mode, url: str, deadline: float, seen: dict, failures: list) -> None:
    """Up to EXAMPLES generated requests to one operation, until the deadline."""

    @settings(
        max_examples=EXAMPLES,
        deadline=None,
        database=None,
        derandomize=True,
        phases=[Phase.explicit, Phase.generate],
        suppress_health_check=list(HealthCheck),
    )
    @given(case=operation.as_strategy(generation_mode=mode))
    def exercise(case) -> None:
        if time.monotonic() > deadline:
            return
        response = case.call(base_url=url, timeout=60)
        seen.setdefault(operation.label, []).append(response.status_code)
        if response.status_code >= 500:
            failures.append(
                f"{operation.label} -> {response.status_code}: {response.text[:300]}\n"
                f"  {case.as_curl_command()}"
            )
        elif response.status_code >= 400:
            body = response.json()
            assert set(body["error"]) == {"message", "type", "param", "code"} and body["error"]["message"]

    exercise()


def fuzz_operations(operations, url: str, budget_s: float) -> tuple[dict[str, list[int]], list[str]]:
    """Valid and invalid generated requests to each operation in turn, within ``budget_s``: the
    status codes seen per operation, and a description of each 5xx."""
    from schemathesis import GenerationMode

    deadline = time.monotonic() + budget_s
    seen: dict[str, list[int]] = {}
    failures: list[str] = []
    for operation in operations:
        for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):
            try:
                _fuzz(operation, mode, url, deadline, seen, failures)
            except Unsatisfiable:  # no invalid input exists for an operation without parameters
                assert mode is GenerationMode.NEGATIVE, operation.label
    return seen, failures


def test_no_server_errors_for_generated_requests(server, tmp_path):
    set_hypothesis_home_dir(str(tmp_path / "hypothesis"))  # no .hypothesis/ cache in the work tree
    schema = schemathesis.openapi.from_url(server.url + "/openapi.json")
    operations = [result.ok() for result in schema.get_all_operations()]
    assert len(operations) >= 11, [op.label for op in operations]
    seen, failures = fuzz_operations(operations, server.url, BUDGET_S)

    print({label: (len(codes), sorted(set(codes))) for label, codes in seen.items()})
    assert not failures, "\n".join(failures[:10])
    assert len(seen) >= 11, "every operation should have been called"
    assert any(code < 300 for codes in seen.values() for code in codes)
