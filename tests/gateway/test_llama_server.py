"""The gateway in front of llama.cpp's own llama-server (a real third-party OpenAI-compatible server).

Skipped unless a llama-server binary is found ($SERAC_LLAMA_SERVER or PATH): building one takes
~10 minutes (see scripts/gateway_common.py), too long for CI. `make gateway-check` runs the same
checks plus the throughput comparison and writes benchmarks/extra/gateway.md.
"""

from __future__ import annotations

import sys

import pytest

from tests.server.tiny import REPO

sys.path.insert(0, str(REPO / "scripts"))
from gateway_common import find_llama_server, gateway, llama_upstream

pytestmark = pytest.mark.skipif(
    find_llama_server() is None,
    reason="no llama-server binary: set SERAC_LLAMA_SERVER=/path/to/llama-server (build it as "
    "scripts/gateway_common.py explains) to run the llama.cpp gateway checks",
)


def test_gateway_in_front_of_llama_server(tmp_path):
    from llama_gateway import run_checks

    with llama_upstream(find_llama_server(), tmp_path) as llama:
        upstream = llama.url + "/v1"
        with gateway(upstream, tmp_path / "local.db", tmp_path) as local, \
                gateway(upstream, tmp_path / "prompted.db", tmp_path, "--counterfactual", "prompted") as prompted:
            rows = run_checks(llama.url, local.url, prompted.url)
    failed = [f"{name}: {detail}" for name, ok, detail in rows if not ok]
    assert not failed, "\n".join(failed)
