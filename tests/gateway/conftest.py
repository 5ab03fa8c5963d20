"""Gateway fixtures: real upstream processes on 127.0.0.1 (a second serac server on the tiny model
with no edits, and the fault-injecting stub) and gateways in front of them, driven over HTTP."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterator

import httpx
import pytest

from tests.server.tiny import REPO, ProcessServer, ThreadServer, free_port


@dataclass
class Gateway:
    url: str
    editor: Any
    app: Any

    def openai(self, timeout: float = 60):
        from openai import OpenAI

        return OpenAI(base_url=self.url + "/v1", api_key="unused", max_retries=0, timeout=timeout)

    def http(self) -> httpx.Client:
        return httpx.Client(base_url=self.url, timeout=60)


def gateway_editor(tiny_causal_dir: Path, upstream_url: str, *, prompted: bool = False, timeout: float = 30.0):
    """An editor whose base model is the upstream at ``upstream_url`` and whose counterfactual model
    is the local tiny LM (or, ``prompted``, the upstream given the edits)."""
    from serac.base import load_text_model
    from serac.counterfactual import LMCounterfactual, PromptedCounterfactual
    from serac.editor import EditedModel
    from serac.remote import OpenAIModel
    from serac.scope import ScopeClassifier
    from tests.conftest import HashingEncoder

    base = OpenAIModel(upstream_url, "tiny", timeout=timeout, max_new_tokens=6)
    if prompted:
        counterfactual = PromptedCounterfactual(base)
    else:
        counterfactual = LMCounterfactual(load_text_model(str(tiny_causal_dir), max_new_tokens=6))
    return EditedModel(base, ScopeClassifier(HashingEncoder(), threshold=0.7, top_k=3), counterfactual)


@pytest.fixture(scope="session")
def upstream(tiny_causal_dir, tmp_path_factory) -> Iterator[ProcessServer]:
    """`serac serve` on the tiny model with no edits: a real OpenAI-compatible server process."""
    server = ProcessServer(tiny_causal_dir, tmp_path_factory.mktemp("upstream") / "edits.db").start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="session")
def stub() -> Iterator[str]:
    """The fault-injecting stub; yields its root URL (append /<mode>/v1)."""
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, str(Path(__file__).with_name("stub_upstream.py")), "--port", str(port)],
        cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                httpx.get(url + "/echo/v1/models", timeout=1)
                break
            except httpx.HTTPError:
                if process.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError("the stub upstream did not start") from None
                time.sleep(0.05)
        yield url
    finally:
        os.kill(process.pid, signal.SIGTERM)
        process.wait(timeout=10)


def _serve(editor: Any, **settings: Any) -> Iterator[Gateway]:
    from serac.server import ServerSettings, create_app

    app = create_app(editor, ServerSettings(**{"max_tokens_limit": 32, **settings}))
    with ThreadServer(app) as server:
        yield Gateway(server.url, editor, app)


@pytest.fixture(scope="session")
def live_gateway(tiny_causal_dir, upstream) -> Iterator[Gateway]:
    yield from _serve(gateway_editor(tiny_causal_dir, upstream.url + "/v1"))


@pytest.fixture
def gateway(live_gateway: Gateway) -> Gateway:
    """The gateway in front of the tiny serac upstream, with an empty edit memory."""
    if live_gateway.editor.store.count():
        live_gateway.editor.rollback(0)
    return live_gateway


@pytest.fixture
def stub_gateway(tiny_causal_dir, stub) -> Iterator[Callable[..., Gateway]]:
    """``make(mode, timeout=..., prompted=..., speculative=...)``: a gateway in front of the stub in that mode."""
    from contextlib import ExitStack

    with ExitStack() as stack:

        def make(mode: str, *, timeout: float = 30.0, prompted: bool = False, speculative: bool = False) -> Gateway:
            editor = gateway_editor(tiny_causal_dir, f"{stub}/{mode}/v1", prompted=prompted, timeout=timeout)
            generator = _serve(editor, speculative_relay=speculative)
            stack.callback(generator.close)
            return next(generator)

        yield make
