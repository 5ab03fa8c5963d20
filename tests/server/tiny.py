"""Tiny-model servers for the server tests: an editor on the tiny causal LM and the hashing
encoder from tests/conftest.py, served by a real uvicorn on 127.0.0.1 (in a thread, or in a
subprocess via serve_tiny.py when a test must kill it)."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import httpx

REPO = Path(__file__).resolve().parents[2]


def build_tiny_editor(model_dir: str | Path, store: Any = None, threshold: float = 0.7):
    """An EditedModel whose base and counterfactual models are the tiny causal LM in ``model_dir``."""
    from serac.base import load_text_model
    from serac.counterfactual import LMCounterfactual
    from serac.editor import EditedModel
    from serac.scope import ScopeClassifier
    from serac.store_url import open_store
    from tests.conftest import HashingEncoder

    base = load_text_model(str(model_dir), max_new_tokens=6)
    counterfactual = LMCounterfactual(load_text_model(str(model_dir), max_new_tokens=6))
    scope = ScopeClassifier(HashingEncoder(), threshold=threshold, top_k=3)
    return EditedModel(base, scope, counterfactual, open_store(store))


def ensure_tiny_model(model_dir: str | Path) -> Path:
    from tests.conftest import save_tiny_causal

    model_dir = Path(model_dir)
    if not (model_dir / "config.json").exists():
        model_dir.mkdir(parents=True, exist_ok=True)
        save_tiny_causal(model_dir)
    return model_dir


class ThreadServer:
    """A real uvicorn server on 127.0.0.1 (a free port it binds itself), running in a thread."""

    def __init__(self, app: Any) -> None:
        import uvicorn

        self.socket = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.socket.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.socket.bind(("127.0.0.1", 0))
        self.port = self.socket.getsockname()[1]
        self.url = f"http://127.0.0.1:{self.port}"
        self.server = uvicorn.Server(uvicorn.Config(app, log_level="warning", lifespan="on"))
        self.thread = threading.Thread(target=self.server.run, kwargs={"sockets": [self.socket]}, daemon=True)

    def __enter__(self) -> "ThreadServer":
        self.thread.start()
        deadline = time.monotonic() + 30
        while not self.server.started:
            if not self.thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError("the test uvicorn server did not start")
            time.sleep(0.02)
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=15)
        self.socket.close()


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class ProcessServer:
    """serve_tiny.py in a subprocess, so a test can SIGKILL it."""

    def __init__(self, model_dir: Path, store: Path | str, env: dict[str, str] | None = None) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.command = [
            sys.executable,
            str(Path(__file__).with_name("serve_tiny.py")),
            "--model-dir",
            str(model_dir),
            "--store",
            str(store),
            "--port",
            str(self.port),
        ]
        self.env = {**os.environ, "PYTHONPATH": str(REPO), **(env or {})}
        self.process: subprocess.Popen | None = None

    def start(self, timeout: float = 120) -> "ProcessServer":
        return self.launch().wait_healthy(timeout)

    def launch(self) -> "ProcessServer":
        """Start the process without waiting (start several, then wait for each: they load in parallel)."""
        self.process = subprocess.Popen(
            self.command, env=self.env, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.STDOUT
        )
        return self

    def wait_healthy(self, timeout: float = 120) -> "ProcessServer":
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                output = self.process.stdout.read().decode(errors="replace") if self.process.stdout else ""
                raise RuntimeError(f"serve_tiny.py exited with {self.process.returncode}:\n{output[-3000:]}")
            try:
                if httpx.get(self.url + "/healthz", timeout=1).status_code == 200:
                    return self
            except httpx.HTTPError:
                pass
            time.sleep(0.1)
        self.kill()
        raise RuntimeError("serve_tiny.py did not become healthy in time")

    def kill(self) -> None:
        if self.process is not None and self.process.poll() is None:
            os.kill(self.process.pid, signal.SIGKILL)
            self.process.wait(timeout=30)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.kill()
