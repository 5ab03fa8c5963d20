"""An asyncio micro-batcher in front of ``EditedModel.generate``.

Requests that arrive within ``max_wait_s`` of each other (and all that queue up while a batch runs)
go to the router together when their generation options match, so the scope encoder and index
search run once per batch instead of once per request. Generation runs in one worker thread: the
models are CPU/GPU bound and already use every core, so more threads would only contend.

A failing batch is retried row by row, so one bad prompt (e.g. over the context length) fails its
own request only. Seeded sampling runs alone: a seed reproduces a sample only for the same batch.
A request whose caller gave up (client gone, time limit) is dropped while queued; a running batch
whose every request was given up stops after its current token (``serac.base.stop_when``).
"""

from __future__ import annotations

import asyncio
import logging
import threading
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, Callable, Sequence

from serac.base import GenerationOptions, Prompt, stop_when

logger = logging.getLogger(__name__)

GenerateFn = Callable[[list[Prompt], GenerationOptions], list[Any]]


@dataclass
class _Item:
    prompt: Prompt
    options: GenerationOptions
    future: asyncio.Future


class MicroBatcher:
    def __init__(
        self,
        generate: GenerateFn,
        max_batch_size: int = 16,
        max_wait_s: float = 0.005,
        on_batch: Callable[[int], None] | None = None,
    ) -> None:
        self.generate = generate
        self.max_batch_size = max_batch_size
        self.max_wait_s = max_wait_s
        self.on_batch = on_batch
        self.running = 0  # prompts in the batch being generated now
        self._queue: asyncio.Queue[_Item] | None = None
        self._task: asyncio.Task | None = None
        self._executor: ThreadPoolExecutor | None = None

    # -- lifecycle ---------------------------------------------------------------------------------
    async def start(self) -> None:
        self._queue = asyncio.Queue()
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="serac-generate")
        self._task = asyncio.create_task(self._run(self._queue), name="serac-micro-batcher")

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            try:
                await self._task
            except asyncio.CancelledError:
                pass
            self._task = None
        if self._queue is not None:
            while not self._queue.empty():
                item = self._queue.get_nowait()
                if not item.future.done():
                    item.future.set_exception(RuntimeError("the server is shutting down"))
        if self._executor is not None:
            self._executor.shutdown(wait=False, cancel_futures=True)
            self._executor = None

    @property
    def queued(self) -> int:
        """Prompts waiting for a batch."""
        return self._queue.qsize() if self._queue is not None else 0

    # -- submitting --------------------------------------------------------------------------------
    async def submit_many(
        self, prompts: Sequence[Prompt], options: GenerationOptions | Sequence[GenerationOptions]
    ) -> list[Any]:
        """Answers for ``prompts`` in order; they may share a batch with other requests. ``options``
        is one for all prompts, or one per prompt."""
        if self._queue is None:
            raise RuntimeError("MicroBatcher.start() was not called (the app's lifespan did not run)")
        per_prompt = [options] * len(prompts) if isinstance(options, GenerationOptions) else list(options)
        if len(per_prompt) != len(prompts):
            raise ValueError(f"got {len(per_prompt)} options for {len(prompts)} prompts")
        loop = asyncio.get_running_loop()
        futures = []
        for prompt, prompt_options in zip(prompts, per_prompt):
            future = loop.create_future()
            self._queue.put_nowait(_Item(prompt, prompt_options, future))
            futures.append(future)
        try:
            results = await asyncio.gather(*futures, return_exceptions=True)
        finally:
            for future in futures:  # the client went away: drop what is still queued
                future.cancel()
        for result in results:
            if isinstance(result, BaseException):
                raise result
        return list(results)

    # -- the loop ------------------------------------------------------------------------------------
    async def _run(self, queue: asyncio.Queue[_Item]) -> None:
        loop = asyncio.get_running_loop()
        while True:
            batch = [await queue.get()]
            deadline = loop.time() + self.max_wait_s
            while len(batch) < self.max_batch_size:
                if not queue.empty():
                    batch.append(queue.get_nowait())
                    continue
                remaining = deadline - loop.time()
                if remaining <= 0:
                    break
                try:
                    batch.append(await asyncio.wait_for(queue.get(), remaining))
                except asyncio.TimeoutError:
                    break
            for group in _groups(batch):
                await self._execute(group)

    async def _execute(self, group: list[_Item]) -> None:
        group = [item for item in group if not item.future.done()]  # cancelled while queued
        if not group:
            return
        if self.on_batch is not None:
            self.on_batch(len(group))
        given_up = threading.Event()

        def check_all_given_up(_: asyncio.Future) -> None:
            if all(item.future.cancelled() for item in group):
                given_up.set()

        for item in group:
            item.future.add_done_callback(check_all_given_up)
        self.running = len(group)
        try:
            await self._run_group(group, given_up)
        finally:
            self.running = 0

    async def _run_group(self, group: list[_Item], given_up: threading.Event) -> None:
        try:
            answers = await self._call([item.prompt for item in group], group[0].options, given_up)
        except Exception as exc:
            if len(group) == 1:
                _settle(group[0], exc=exc)
                return
            logger.debug("batch of %d failed (%s); retrying row by row", len(group), type(exc).__name__)
            for item in group:
                if item.future.done():
                    continue
                try:
                    _settle(item, result=(await self._call([item.prompt], item.options, given_up))[0])
                except Exception as row_exc:
                    _settle(item, exc=row_exc)
            return
        for item, answer in zip(group, answers):
            _settle(item, result=answer)

    async def _call(
        self, prompts: list[Prompt], options: GenerationOptions, given_up: threading.Event
    ) -> list[Any]:
        def run() -> list[Any]:
            with stop_when(given_up):
                return self.generate(prompts, options)

        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._executor, run)


def _groups(batch: list[_Item]) -> list[list[_Item]]:
    """Items with equal options share a router call, in arrival order; seeded ones go alone."""
    groups: dict[Any, list[_Item]] = {}
    for n, item in enumerate(batch):
        key = ("seeded", n) if item.options.seed is not None else item.options
        groups.setdefault(key, []).append(item)
    return list(groups.values())


def _settle(item: _Item, result: Any = None, exc: BaseException | None = None) -> None:
    if item.future.done():
        return
    if exc is not None:
        item.future.set_exception(exc)
    else:
        item.future.set_result(result)
