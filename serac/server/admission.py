"""Admission control: caps on the work one server takes on at once, so overload is an immediate 503
with ``Retry-After`` instead of a queue that grows until every request times out, and on how long
one request may run. State lives on the app (``app.state.admission``); all of it is touched from
the event loop only, so plain counters suffice."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Iterator
from typing import Any, TypeVar

from starlette.requests import Request

from serac.server.batching import MicroBatcher
from serac.server.errors import RETRY_AFTER_S, APIError
from serac.server.metrics import Metrics
from serac.server.settings import ServerSettings

T = TypeVar("T")


class Admission:
    def __init__(self, settings: ServerSettings, batcher: MicroBatcher, metrics: Metrics) -> None:
        self.settings, self.batcher, self.metrics = settings, batcher, metrics
        self.streams = 0  # SSE responses being generated now
        self.writes = 0  # edit writes running or waiting for the store

    def _busy(self, what: str) -> APIError:
        self.metrics.rejected.labels("busy").inc()
        return APIError(
            503,
            f"the server is busy ({what}); retry shortly",
            "server_busy",
            headers={"Retry-After": str(RETRY_AFTER_S)},
        )

    def admit_prompts(self, count: int) -> None:
        """Refuse ``count`` more prompts for the micro-batcher when its queue is full."""
        waiting = self.batcher.queued + self.batcher.running
        if waiting + count > self.settings.max_queued_requests:
            raise self._busy(
                f"{waiting} prompts are queued or running, the limit is {self.settings.max_queued_requests}"
            )

    def open_stream(self) -> None:
        if self.streams >= self.settings.max_streams:
            raise self._busy(f"{self.streams} streams run, the limit is {self.settings.max_streams}")
        self.streams += 1

    def close_stream(self) -> None:
        self.streams -= 1

    @contextlib.contextmanager
    def writing(self) -> Iterator[None]:
        """A slot for one edit write; writes beyond the cap (e.g. all waiting for a store another
        process holds) are refused at once instead of tying up the server's threads."""
        if self.writes >= self.settings.max_pending_writes:
            raise self._busy(f"{self.writes} edit writes are waiting for the store")
        self.writes += 1
        try:
            yield
        finally:
            self.writes -= 1

    async def bounded(self, request: Request, work: Awaitable[T]) -> T:
        """``work``'s result, or: cancelled once the client disconnects (499, nobody reads it) or
        runs past the time limit (504). Cancelling drops queued prompts and stops a batch that no
        remaining request wants."""
        task: asyncio.Future[T] = asyncio.ensure_future(work)
        watcher = asyncio.ensure_future(until_disconnected(request))
        try:
            done, _ = await asyncio.wait(
                {task, watcher}, timeout=self.settings.request_timeout_s, return_when=asyncio.FIRST_COMPLETED
            )
        finally:
            watcher.cancel()
        if task in done:
            return task.result()
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await task
        if watcher in done:
            raise APIError(499, "the client closed the request", "client_closed_request")
        raise self.timed_out()

    def timed_out(self) -> APIError:
        self.metrics.rejected.labels("timeout").inc()
        return APIError(
            504,
            f"the request ran longer than this server's limit of {self.settings.request_timeout_s:g} s and "
            "was stopped; ask for fewer max_tokens, or retry when the server is less busy",
            "request_timeout",
        )


async def until_disconnected(request: Request) -> Any:
    """Returns once the client has gone. (The body was read already, so the next ASGI message is
    the disconnect.)"""
    while True:
        message = await request.receive()
        if message["type"] == "http.disconnect":
            return message
