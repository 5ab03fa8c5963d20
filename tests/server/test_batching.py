"""The micro-batcher on its own, with a fake generate function."""

from __future__ import annotations

import asyncio
import threading

import pytest

from serac.base import GenerationOptions
from serac.server.batching import MicroBatcher

GREEDY = GenerationOptions(max_new_tokens=4)
SAMPLED = GenerationOptions(max_new_tokens=4, temperature=0.7)


class FakeModel:
    def __init__(self, fail_on: str | None = None) -> None:
        self.calls: list[tuple[list[str], GenerationOptions]] = []
        self.fail_on = fail_on
        self.gate = threading.Event()
        self.gate.set()

    def __call__(self, prompts, options):
        self.gate.wait(5)
        self.calls.append((list(prompts), options))
        if self.fail_on in prompts:
            raise ValueError(f"cannot answer {self.fail_on!r}")
        return [f"answer to {p}" for p in prompts]


def run(coro):
    return asyncio.run(coro)


async def _with_batcher(model, body, **kwargs):
    batcher = MicroBatcher(model, **{"max_wait_s": 0.01, **kwargs})
    await batcher.start()
    try:
        return await body(batcher)
    finally:
        await batcher.close()


def test_simultaneous_requests_share_a_call_and_get_their_own_answers():
    model = FakeModel()

    async def body(batcher):
        return await asyncio.gather(*(batcher.submit_many([f"q{i}"], GREEDY) for i in range(5)))

    results = run(_with_batcher(model, body))
    assert results == [[f"answer to q{i}"] for i in range(5)]
    assert model.calls == [([f"q{i}" for i in range(5)], GREEDY)]


def test_different_options_never_share_a_call_and_seeded_requests_run_alone():
    model = FakeModel()
    seeded = GenerationOptions(temperature=0.7, seed=3)

    async def body(batcher):
        return await asyncio.gather(
            batcher.submit_many(["a"], GREEDY),
            batcher.submit_many(["b"], SAMPLED),
            batcher.submit_many(["c"], GREEDY),
            batcher.submit_many(["d"], seeded),
            batcher.submit_many(["e"], seeded),
        )

    run(_with_batcher(model, body))
    assert sorted(c[0] for c in model.calls) == [["a", "c"], ["b"], ["d"], ["e"]]


def test_a_failing_row_fails_only_its_own_request():
    model = FakeModel(fail_on="bad")

    async def body(batcher):
        return await asyncio.gather(
            batcher.submit_many(["good"], GREEDY),
            batcher.submit_many(["bad"], GREEDY),
            batcher.submit_many(["fine"], GREEDY),
            return_exceptions=True,
        )

    good, bad, fine = run(_with_batcher(model, body))
    assert good == ["answer to good"] and fine == ["answer to fine"]
    assert isinstance(bad, ValueError) and "cannot answer 'bad'" in str(bad)


def test_batches_are_capped_and_requests_queued_during_a_call_go_next():
    model = FakeModel()

    async def body(batcher):
        model.gate.clear()  # hold the first call so the rest queue up behind it
        first = asyncio.create_task(batcher.submit_many(["first"], GREEDY))
        await asyncio.sleep(0.05)
        rest = [asyncio.create_task(batcher.submit_many([f"q{i}"], GREEDY)) for i in range(5)]
        await asyncio.sleep(0.01)
        model.gate.set()
        return await first, await asyncio.gather(*rest)

    run(_with_batcher(model, body, max_batch_size=3))
    assert [len(c[0]) for c in model.calls] == [1, 3, 2]


def test_a_cancelled_request_is_dropped_before_it_runs():
    model = FakeModel()

    async def body(batcher):
        model.gate.clear()
        first = asyncio.create_task(batcher.submit_many(["first"], GREEDY))
        await asyncio.sleep(0.05)
        gone = asyncio.create_task(batcher.submit_many(["gone"], GREEDY))
        kept = asyncio.create_task(batcher.submit_many(["kept"], GREEDY))
        await asyncio.sleep(0.01)
        gone.cancel()
        model.gate.set()
        return await first, await kept

    run(_with_batcher(model, body))
    assert [c[0] for c in model.calls] == [["first"], ["kept"]]


def test_submit_before_start_says_what_to_do():
    with pytest.raises(RuntimeError, match="start"):
        run(MicroBatcher(FakeModel()).submit_many(["x"], GREEDY))
