"""The gateway's link to its upstream OpenAI-compatible server: byte-for-byte relay and fault mapping.

An out-of-scope request is sent upstream with the body exactly as the client sent it, on one pooled
async ``httpx`` client. The reply comes back as the upstream sent it: an error status with its own
body, an SSE stream relayed chunk by chunk as it arrives, or a JSON object with one ``serac``
provenance member spliced in before its closing brace (the upstream's bytes are otherwise kept).
Transport failures map to OpenAI-style errors: unreachable 502 ``upstream_unavailable``, timeout
504 ``upstream_timeout``, a 2xx reply that is not a JSON object 502 ``upstream_bad_response``.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from typing import Any, AsyncIterator, Mapping

import httpx
from fastapi.responses import Response, StreamingResponse

from serac.errors import UpstreamBadResponseError, UpstreamError
from serac.remote import OpenAIModel, public_url, upstream_error
from serac.server.errors import error_body, upstream_error_response

logger = logging.getLogger(__name__)

# Not relayed to the client: hop-by-hop headers, and the ones the relay itself recomputes.
_DROPPED_HEADERS = frozenset(
    {
        "connection", "keep-alive", "proxy-authenticate", "proxy-authorization", "te", "trailer",
        "transfer-encoding", "upgrade", "content-length", "content-encoding", "date", "server",
    }
)


def splice(body: bytes, member: dict[str, Any]) -> bytes:
    """``body`` (a JSON object) with ``"serac": member`` added before its closing brace; every other
    byte as it was, so the upstream's answer reaches the client unchanged."""
    end = body.rstrip().rfind(b"}")
    inner = body[body.find(b"{") + 1 : end].strip()
    comma = b"," if inner else b""
    return body[:end].rstrip() + comma + b'"serac":' + json.dumps(member).encode() + body[end:]


class Upstream:
    """One upstream server: a keep-alive connection pool, the relay, and its health."""

    def __init__(
        self, url: str, headers: Mapping[str, str] | None = None, timeout: float = 60.0, max_connections: int = 64
    ) -> None:
        self.url = url.rstrip("/")
        self.where = public_url(self.url)
        self.timeout = timeout
        # identity: relay the upstream's bytes as they are, with no recompression step
        self.client = httpx.AsyncClient(
            base_url=self.url,
            headers={**(headers or {}), "Accept-Encoding": "identity"},
            timeout=httpx.Timeout(timeout),
            limits=httpx.Limits(max_connections=max_connections, max_keepalive_connections=max_connections),
        )

    @classmethod
    def for_model(cls, model: OpenAIModel) -> "Upstream":
        return cls(model.url, model.headers, model.timeout)

    async def aclose(self) -> None:
        await self.client.aclose()

    # -- relay ----------------------------------------------------------------------------------------
    async def open(self, method: str, path: str, body: bytes = b"", content_type: str | None = None) -> httpx.Response:
        """Send the request and return the response with its body not yet read."""
        headers = {"Content-Type": content_type or "application/json"} if body else {}
        request = self.client.build_request(method, path, content=body, headers=headers)
        try:
            return await self.client.send(request, stream=True)
        except httpx.HTTPError as exc:
            raise upstream_error(exc, self.where) from None

    async def relay(
        self,
        method: str,
        path: str,
        body: bytes,
        content_type: str | None,
        provenance: dict[str, Any] | None,
        headers: Mapping[str, str],
        started: asyncio.Task | None = None,
    ) -> Response:
        """Forward one request and answer with the upstream's reply (``provenance`` spliced into a
        2xx JSON object; ``headers`` added to every reply). ``started``: the same request already
        sent by :meth:`start` (speculative relay)."""
        try:
            response = await (started if started is not None else self.open(method, path, body, content_type))
        except UpstreamError as exc:
            logger.warning("%s", exc)
            return upstream_error_response(exc, headers)
        relayed = {**_kept_headers(response.headers), **headers}
        if response.headers.get("content-type", "").startswith("text/event-stream") and response.status_code < 400:
            return StreamingResponse(self._chunks(response), status_code=response.status_code, headers=relayed)
        try:
            data = await response.aread()
        except httpx.HTTPError as exc:
            return upstream_error_response(upstream_error(exc, self.where), headers)
        finally:
            await response.aclose()
        if response.status_code >= 400 or provenance is None:
            return Response(data, status_code=response.status_code, headers=relayed)
        try:
            if not isinstance(json.loads(data), dict):
                raise ValueError("not an object")
        except ValueError:
            exc = UpstreamBadResponseError(
                f"the upstream model server at {self.where} answered {response.status_code} with a body that "
                "is not a JSON object"
            )
            logger.warning("%s", exc)
            return upstream_error_response(exc, headers)
        relayed["content-type"] = response.headers.get("content-type", "application/json")
        return Response(splice(data, provenance), status_code=response.status_code, headers=relayed)

    def start(self, method: str, path: str, body: bytes, content_type: str | None) -> asyncio.Task:
        """Send the request now, in the background (speculative relay: while the scope is decided)."""
        return asyncio.ensure_future(self.open(method, path, body, content_type))

    @staticmethod
    async def discard(started: asyncio.Task) -> None:
        """Abandon a speculative request (the request was in scope): cancel it, or close its reply,
        which drops the connection so the upstream stops generating."""
        if not started.done():
            started.cancel()
        with contextlib.suppress(BaseException):
            response = await started
            await response.aclose()

    async def _chunks(self, response: httpx.Response) -> AsyncIterator[bytes]:
        """The upstream's SSE bytes as they arrive; a failure mid-stream ends it with an error event
        (the status line has gone out already). Closing this (client gone) closes the upstream."""
        try:
            async for chunk in response.aiter_raw():
                yield chunk
        except httpx.HTTPError as exc:
            error = upstream_error(exc, self.where)
            logger.warning("stream cut: %s", error)
            payload = error_body(error.status, str(error), error.code)
            yield f"\n\ndata: {json.dumps(payload)}\n\ndata: [DONE]\n\n".encode()
        finally:
            await response.aclose()

    # -- health ---------------------------------------------------------------------------------------
    async def health(self, timeout: float = 2.0) -> dict[str, Any]:
        """The upstream's state, from GET /models: ok, unavailable, timeout or error (its status)."""
        started = time.perf_counter()
        state: dict[str, Any] = {"url": self.where}
        try:
            response = await self.client.get("/models", timeout=min(timeout, self.timeout))
        except httpx.HTTPError as exc:
            error = upstream_error(exc, self.where)
            return {**state, "status": "timeout" if error.status == 504 else "unavailable", "error": str(error)}
        state["latency_ms"] = round((time.perf_counter() - started) * 1000, 1)
        if response.status_code >= 400:
            return {**state, "status": "error", "error": f"GET /models answered {response.status_code}"}
        return {**state, "status": "ok"}


def _kept_headers(headers: httpx.Headers) -> dict[str, str]:
    return {k: v for k, v in headers.items() if k.lower() not in _DROPPED_HEADERS}


def gateway_upstream(base: Any) -> Upstream | None:
    """The relay for an editor whose base model is an upstream server, else None (in-process model)."""
    return Upstream.for_model(base) if isinstance(base, OpenAIModel) else None

