"""/healthz and /metrics (Prometheus text format)."""

from __future__ import annotations

import re

SAMPLE = re.compile(
    r'^[a-zA-Z_:][a-zA-Z0-9_:]*(\{([a-zA-Z_][a-zA-Z0-9_]*="(\\.|[^"\\])*",?)*\})? -?[0-9.e+Inf-]+$'
)


def _samples(text: str) -> dict[str, float]:
    samples = {}
    for line in text.splitlines():
        if line.startswith("#"):
            assert re.match(r"^# (HELP|TYPE) [a-z_]+ .+$", line), line
            continue
        assert SAMPLE.match(line), f"not a Prometheus sample line: {line!r}"
        name, value = line.rsplit(" ", 1)
        samples[name] = float(value)
    return samples


def test_healthz(http, server):
    assert http.get("/healthz").json() == {
        "status": "ok",
        "model": "serac",
        "version": server.editor.version,
        "edits": 0,
        "problems": [],
    }


def test_metrics_count_requests_latency_scope_share_and_edits(http):
    http.post(
        "/v1/edits",
        json={
            "edits": [
                {"input": "what is the capital of australia", "target": "sydney"},
                {"input": "who makes the iphone", "target": "nokia"},
            ]
        },
    )
    before = _samples(http.get("/metrics").text)

    def ask(question: str):
        body = {"messages": [{"role": "user", "content": question}], "max_tokens": 2}
        return http.post("/v1/chat/completions", json=body)

    assert ask("what is the capital of australia").status_code == 200
    assert ask("the quick brown fox").status_code == 200
    assert ask("the lazy dog").status_code == 200
    response = http.get("/metrics")
    assert response.headers["content-type"].startswith("text/plain; version=0.0.4")
    after = _samples(response.text)

    chat = 'serac_http_requests_total{method="POST",route="/v1/chat/completions",status="200"}'
    assert after[chat] - before.get(chat, 0) == 3
    count = 'serac_http_request_duration_seconds_count{route="/v1/chat/completions"}'
    assert after[count] - before.get(count, 0) == 3
    inf = 'serac_http_request_duration_seconds_bucket{le="+Inf",route="/v1/chat/completions"}'
    assert after[inf] == after[count]
    edited = 'serac_answers_total{source="counterfactual"}'
    base = 'serac_answers_total{source="base"}'
    assert after[edited] - before[edited] == 1 and after[base] - before[base] == 2
    assert after["serac_in_scope_ratio"] == after[edited] / (after[edited] + after[base])
    assert after["serac_edits"] == 2 and after["serac_store_version"] >= 1


def test_unknown_paths_share_one_label(http):
    for i in range(3):
        http.get(f"/scan/{i}")
    text = http.get("/metrics").text
    assert "/scan/" not in text and 'route="unmatched",status="404"' in text
