"""`serac serve --model <fc artifact>`: a classifier base model and a pair-classifier counterfactual,
loaded from an ordinary serac_config.json artifact, answer over HTTP; an evidence edit added
through the API labels the next claim."""

from __future__ import annotations

from typing import Any

import httpx
import uvicorn
from typer.testing import CliRunner

from .tiny import ThreadServer

CLAIM = "paris is the capital of france"


def test_serve_loads_an_fc_artifact_and_answers_a_claim_from_an_edit(fc_artifact, tmp_path, monkeypatch):
    from serac.cli import app as cli

    apps: list[Any] = []
    monkeypatch.setattr(uvicorn, "run", lambda app, **kwargs: apps.append((app, kwargs)))  # no blocking serve
    result = CliRunner().invoke(cli, ["serve", "--model", str(fc_artifact), "--store", str(tmp_path / "edits.db"),
                                      "--port", "8765"])
    assert result.exit_code == 0, result.output
    (app, kwargs), = apps
    assert kwargs["host"] == "127.0.0.1"
    with ThreadServer(app) as server, httpx.Client(base_url=server.url, timeout=60) as http:
        def ask() -> dict:
            response = http.post("/v1/chat/completions",
                                 json={"model": "serac", "messages": [{"role": "user", "content": CLAIM}]})
            assert response.status_code == 200, response.text
            return response.json()["choices"][0]

        before = ask()
        assert before["message"]["content"] == "supports" and before["serac"]["source"] == "base"
        created = http.post("/v1/edits", json={"input": "the capital of france is paris", "target": "supports"})
        assert created.status_code == 201, created.text
        after = ask()
        assert after["message"]["content"] == "refutes"
        assert after["serac"]["source"] == "counterfactual"
        assert after["serac"]["edit_id"] == created.json()["data"][0]["id"]
