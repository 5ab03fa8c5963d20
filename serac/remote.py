"""A base model behind an OpenAI-compatible HTTP API (vLLM, llama.cpp's llama-server, Ollama, TGI,
a hosted API): ``base.kind = "openai"``.

It implements the ``TextModel`` protocol, so ``EditedModel`` routes to it like to a local model:
every prompt (a string is sent as one user message) becomes one ``/chat/completions`` request on a
pooled, keep-alive ``httpx`` client. Transport failures become ``serac.errors.Upstream*Error``
(unreachable, timeout, error status, malformed reply), which the server maps to 502/504/the
upstream's status.
"""

from __future__ import annotations

import json
import logging
import os
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Iterator, Sequence
from urllib.parse import urlsplit, urlunsplit

import httpx

from serac.base import GREEDY, GenerationOptions, Prompt
from serac.config import DEFAULT_LM, BaseModelConfig
from serac.errors import (
    ConfigError,
    UpstreamBadResponseError,
    UpstreamError,
    UpstreamStatusError,
    UpstreamTimeoutError,
    UpstreamUnavailableError,
)

logger = logging.getLogger(__name__)


def public_url(url: str) -> str:
    """``url`` without user:password, query or fragment: safe for a log line or a client message."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    if ":" in host:  # IPv6
        host = f"[{host}]"
    netloc = f"{host}:{parts.port}" if parts.port else host
    return urlunsplit((parts.scheme, netloc, parts.path, "", ""))


def api_key_from_env(name: str | None) -> str | None:
    """The upstream API key from the environment variable ``name`` (None when not configured)."""
    if name is None:
        return None
    key = os.environ.get(name)
    if not key:
        raise ConfigError(
            f"base.api_key_env names ${name}, which is not set or empty; export it with the upstream's API "
            "key, or remove base.api_key_env for a server that needs none"
        )
    return key


def upstream_error(exc: httpx.HTTPError, where: str) -> UpstreamError:
    """The project error for an httpx transport failure (timeouts first: they subclass transport errors)."""
    if isinstance(exc, httpx.TimeoutException):
        return UpstreamTimeoutError(f"the upstream model server at {where} did not answer in time ({type(exc).__name__})")
    if isinstance(exc, (httpx.ConnectError, httpx.RemoteProtocolError, httpx.ReadError, httpx.WriteError)):
        return UpstreamUnavailableError(
            f"the upstream model server at {where} is unreachable or dropped the connection ({type(exc).__name__}); "
            "check that it is running"
        )
    return UpstreamUnavailableError(f"request to the upstream model server at {where} failed ({type(exc).__name__})")


def status_error(response: httpx.Response, where: str) -> UpstreamStatusError:
    body = response.read()
    message = _error_message(body) or response.reason_phrase or "error"
    return UpstreamStatusError(
        f"the upstream model server at {where} answered {response.status_code}: {message}",
        status=response.status_code,
        body=body,
    )


def _error_message(body: bytes) -> str | None:
    try:
        data = json.loads(body)
    except ValueError:
        return None
    error = data.get("error") if isinstance(data, dict) else None
    if isinstance(error, dict):
        return str(error.get("message", ""))[:500] or None
    return str(error)[:500] if error else None


class OpenAIModel:
    """``TextModel`` over an OpenAI-compatible server. Greedy by default, like the local adapters
    (``temperature`` 0 is sent explicitly, since servers default to sampling)."""

    def __init__(
        self,
        url: str,
        model: str | None = None,
        *,
        api_key: str | None = None,
        timeout: float = 60.0,
        max_new_tokens: int = 32,
        system_prompt: str | None = None,
        concurrency: int = 4,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        self.url = url.rstrip("/")
        self.where = public_url(self.url)
        self._model = model or None
        self.max_new_tokens = max_new_tokens
        self.system_prompt = system_prompt
        self.timeout = timeout
        self.concurrency = concurrency
        headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        self.headers = headers  # shared with the gateway's async relay; never logged
        self.client = httpx.Client(
            base_url=self.url,
            headers=headers,
            timeout=httpx.Timeout(timeout),
            limits=httpx.Limits(max_keepalive_connections=concurrency, max_connections=max(concurrency, 8)),
            transport=transport,
        )

    @classmethod
    def from_config(cls, config: BaseModelConfig) -> "OpenAIModel":
        return cls(
            config.url or "",
            None if config.model in ("", DEFAULT_LM) else config.model,
            api_key=api_key_from_env(config.api_key_env),
            timeout=config.timeout,
            max_new_tokens=config.max_new_tokens,
            system_prompt=config.system_prompt,
            concurrency=config.batch_size or 4,
        )

    # -- the upstream's model name ------------------------------------------------------------------
    @property
    def model(self) -> str:
        """The configured model name, else the first one the server's /models lists (asked once)."""
        if self._model is None:
            data = self._json(self._request("GET", "/models"))
            try:
                self._model = str(data["data"][0]["id"])
            except (KeyError, IndexError, TypeError):
                raise UpstreamBadResponseError(
                    f"the upstream model server at {self.where} lists no model on /models; set the model "
                    "name (base.model, or serac serve --upstream-model NAME)"
                ) from None
        return self._model

    # -- requests -----------------------------------------------------------------------------------
    def messages(self, prompt: Prompt) -> list[dict[str, Any]]:
        messages = [{"role": "user", "content": prompt}] if isinstance(prompt, str) else [dict(m) for m in prompt]
        if self.system_prompt and (not messages or messages[0].get("role") != "system"):
            messages.insert(0, {"role": "system", "content": self.system_prompt})
        return messages

    def format(self, prompt: Prompt) -> str:
        """The messages sent for ``prompt``, as one string (a stable key for the evaluation's memo)."""
        return json.dumps(self.messages(prompt), ensure_ascii=False, sort_keys=True)

    def body(self, prompt: Prompt, options: GenerationOptions, stream: bool = False) -> dict[str, Any]:
        body: dict[str, Any] = {
            "model": self.model,
            "messages": self.messages(prompt),
            "max_tokens": options.max_new_tokens or self.max_new_tokens,
            "temperature": options.temperature,
        }
        if options.temperature > 0:
            body["top_p"] = options.top_p
        if options.stop:
            body["stop"] = list(options.stop)
        if options.seed is not None:
            body["seed"] = options.seed
        if stream:
            body["stream"] = True
        return body

    def _request(self, method: str, path: str, body: dict[str, Any] | None = None) -> httpx.Response:
        try:
            response = self.client.request(method, path, json=body)
        except httpx.HTTPError as exc:
            raise upstream_error(exc, self.where) from None
        if response.status_code >= 400:
            raise status_error(response, self.where)
        return response

    def _json(self, response: httpx.Response) -> Any:
        try:
            return response.json()
        except ValueError:
            raise UpstreamBadResponseError(
                f"the upstream model server at {self.where} sent a reply that is not JSON"
            ) from None

    def complete(self, prompt: Prompt, options: GenerationOptions = GREEDY) -> str:
        data = self._json(self._request("POST", "/chat/completions", self.body(prompt, options)))
        try:
            text = data["choices"][0]["message"]["content"]
        except (KeyError, IndexError, TypeError):
            raise UpstreamBadResponseError(
                f"the upstream model server at {self.where} sent a chat completion without choices[0].message"
            ) from None
        return (text or "").strip()

    def generate(self, prompts: Sequence[Prompt], options: GenerationOptions = GREEDY) -> list[str]:
        """One request per prompt, up to ``concurrency`` in flight (the server batches them)."""
        if len(prompts) <= 1 or self.concurrency <= 1:
            return [self.complete(p, options) for p in prompts]
        _ = self.model  # resolve the name once, not in every thread
        with ThreadPoolExecutor(max_workers=min(self.concurrency, len(prompts))) as pool:
            return list(pool.map(lambda p: self.complete(p, options), prompts))

    def stream(self, prompt: Prompt, options: GenerationOptions = GREEDY) -> Iterator[str]:
        """Text pieces from the server's SSE stream as they arrive."""
        try:
            with self.client.stream("POST", "/chat/completions", json=self.body(prompt, options, True)) as response:
                if response.status_code >= 400:
                    raise status_error(response, self.where)
                for line in response.iter_lines():
                    piece = self._delta(line)
                    if piece is None:
                        break
                    if piece:
                        yield piece
        except httpx.HTTPError as exc:
            raise upstream_error(exc, self.where) from None

    def _delta(self, line: str) -> str | None:
        """The content delta of one SSE line ('' for other lines); None at ``[DONE]``."""
        if not line.startswith("data:"):
            return ""
        data = line[5:].strip()
        if data == "[DONE]":
            return None
        try:
            event = json.loads(data)
        except ValueError:
            raise UpstreamBadResponseError(f"the upstream model server at {self.where} sent a malformed SSE event") from None
        if isinstance(event, dict) and "error" in event:
            raise UpstreamStatusError(
                f"the upstream model server at {self.where} failed while streaming: {_error_message(data.encode())}",
                status=502,
                body=data.encode(),
            )
        try:
            return event["choices"][0]["delta"].get("content") or "" if event.get("choices") else ""
        except (KeyError, IndexError, TypeError, AttributeError):
            return ""

    def health(self) -> None:
        """Raise an ``UpstreamError`` unless the server answers GET /models."""
        self._request("GET", "/models")

    def close(self) -> None:
        self.client.close()
