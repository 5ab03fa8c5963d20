"""ASGI middleware around the whole app: body-size limit and request metrics; without API keys,
the loopback-only Host and same-origin checks that stop DNS rebinding and cross-site writes."""

from __future__ import annotations

import time
from urllib.parse import urlsplit

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from serac.server.auth import is_loopback
from serac.server.errors import error_response
from serac.server.metrics import Metrics

SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


def _host_name(host: str) -> str:
    """``host`` of a Host header value ``host[:port]`` (IPv6 in brackets)."""
    if host.startswith("["):
        return host[: host.find("]") + 1] if "]" in host else host
    return host.rsplit(":", 1)[0] if host.count(":") == 1 else host


class LoopbackGuard:
    """For a server without API keys (which only listens on loopback): refuse requests whose
    ``Host`` is not a loopback name (a DNS-rebinding page reaches 127.0.0.1 under its own name) and
    state-changing requests whose ``Origin`` is another site (a page cannot post to the API)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = dict(scope.get("headers") or [])
        host = headers.get(b"host", b"").decode("latin-1")
        if not host or not is_loopback(_host_name(host)):
            await error_response(
                403,
                "this server has no API keys, so it answers only requests addressed to a loopback "
                "name (localhost, 127.0.0.1, [::1]); configure API keys to serve other host names",
                "forbidden_host",
            )(scope, receive, send)
            return
        origin = headers.get(b"origin")
        if origin is not None and scope["method"] not in SAFE_METHODS:
            origin_host = urlsplit(origin.decode("latin-1")).hostname or ""
            if not is_loopback(origin_host):
                await error_response(
                    403,
                    "cross-origin requests that change state or run inference are refused when the "
                    "server has no API keys; call it from a local client, or configure API keys",
                    "cross_origin_refused",
                )(scope, receive, send)
                return
        await self.app(scope, receive, send)


class RequestGuard:
    """ASGI middleware: rejects bodies over ``max_body_bytes`` with 413 (by Content-Length before
    reading, or while reading a chunked body), and records request counts and latency."""

    def __init__(self, app: ASGIApp, metrics: Metrics, max_body_bytes: int) -> None:
        self.app, self.metrics, self.max_body_bytes = app, metrics, max_body_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = [500]

        async def send_tracking(message: Message) -> None:
            if message["type"] == "http.response.start":
                status[0] = message["status"]
            await send(message)

        try:
            body_receive = await self._read_body(scope, receive)
            if body_receive is None:
                status[0] = 413
                await error_response(
                    413,
                    f"request body is larger than this server's limit of {self.max_body_bytes} bytes",
                    "request_too_large",
                )(scope, receive, send)
                return
            await self.app(scope, body_receive, send_tracking)
        finally:
            route = scope.get("route")
            template = getattr(route, "path", None) or "unmatched"
            self.metrics.observe_request(scope["method"], template, status[0], time.perf_counter() - started)

    async def _read_body(self, scope: Scope, receive: Receive) -> Receive | None:
        """A receive that replays the whole (size-checked) body, or None if it is too large."""
        headers = dict(scope.get("headers") or [])
        declared = headers.get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > self.max_body_bytes:
            return None
        chunks, size = [], 0
        while True:
            message = await receive()
            if message["type"] != "http.request":  # the client left before sending the body
                pending: list[Message] = [message]
                break
            body = message.get("body", b"")
            size += len(body)
            if size > self.max_body_bytes:
                return None
            chunks.append(body)
            if not message.get("more_body", False):
                pending = [{"type": "http.request", "body": b"".join(chunks), "more_body": False}]
                break

        async def replay() -> Message:
            if pending:
                return pending.pop(0)
            return await receive()

        return replay
