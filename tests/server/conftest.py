"""Fixtures: one real uvicorn server over tiny models for the whole session (edits reset before
each test), and one with API keys."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Iterator

import httpx
import pytest

from .tiny import ThreadServer, build_tiny_editor

READ_KEY = "read-key-0123456789"
WRITE_KEY = "write-key-0123456789"


@dataclass
class Live:
    url: str
    editor: Any
    app: Any

    def client(self, key: str | None = None) -> httpx.Client:
        headers = {"Authorization": f"Bearer {key}"} if key else {}
        return httpx.Client(base_url=self.url, headers=headers, timeout=60)


def _serve(tiny_causal_dir, **settings: Any) -> Iterator[Live]:
    from serac.server import ServerSettings, create_app

    editor = build_tiny_editor(tiny_causal_dir)
    app = create_app(editor, ServerSettings(**{"max_tokens_limit": 32, **settings}))
    with ThreadServer(app) as server:
        yield Live(server.url, editor, app)


@pytest.fixture(scope="session")
def live_server(tiny_causal_dir) -> Iterator[Live]:
    yield from _serve(tiny_causal_dir, max_body_bytes=65_536)


@pytest.fixture
def server(live_server: Live) -> Live:
    """The shared server with an empty edit memory."""
    if live_server.editor.store.count():
        live_server.editor.rollback(0)
    return live_server


@pytest.fixture
def http(server: Live) -> Iterator[httpx.Client]:
    with server.client() as client:
        yield client


@pytest.fixture
def openai_client(server: Live):
    from openai import OpenAI

    return OpenAI(base_url=server.url + "/v1", api_key="unused", max_retries=0, timeout=60)


@pytest.fixture(scope="session")
def auth_server(tiny_causal_dir) -> Iterator[Live]:
    from serac.server import KeyRing

    keys = KeyRing.parse(f"read:{READ_KEY},write:{WRITE_KEY}")
    yield from _serve(tiny_causal_dir, keys=keys)
