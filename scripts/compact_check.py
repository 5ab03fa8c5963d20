"""What compacting a trained artifact costs (issue 14, item 2): the full artifact against its compact
forms, on held-out data, side by side in one run.

Scope (routing only): zsRE eval (all 1,037 edits) and the first 1,000 CounterFact eval edits in one
memory; in-scope queries are the edit inputs and rephrasings, out-of-scope queries are CounterFact
neighbourhood prompts and NQ-open questions. Per artifact: in-scope routed to their own fact's
edit, out-of-scope routed to any edit, and agreement of every decision with the full artifact.
Counterfactual: greedy answers for zsRE edit inputs and rephrasings given their edit; exact match
with the target, and agreement with the full artifact's answers.

    python scripts/compact_check.py --full DIR --compact DIR [--compact DIR ...] [--answers 150]
"""

from __future__ import annotations

import argparse
import json
import platform
import random
import time
from pathlib import Path

from serac.base import GREEDY
from serac.counterfactual import LMCounterfactual
from serac.data import fact_key, load_counterfact, load_nq, load_zsre
from serac.edits import Edit
from serac.editor import load_artifact_config
from serac.eval.metrics import exact_match
from serac.scope import ScopeClassifier, SentenceEncoder
from serac.store import EditStore


def routing(artifact: str, edits, queries) -> list[int | None]:
    config = load_artifact_config(artifact)
    encoder = SentenceEncoder(config.scope.encoder, device="cpu")
    store = EditStore(":memory:")
    store.add_many(edits, embeddings=(encoder.id, encoder.encode([e[0] for e in edits])))
    scope = ScopeClassifier.from_config(config.scope)
    scope.sync(store)
    out: list[int | None] = []
    for start in range(0, len(queries), 256):
        for d in scope.decide(queries[start:start + 256]):
            out.append(d.edit.id if d.in_scope else None)
    return out


def answers(artifact: str, rows) -> list[str]:
    config = load_artifact_config(artifact)
    model = LMCounterfactual.from_config(config.counterfactual.replace(device="cpu"))
    out = []
    for start in range(0, len(rows), 8):
        chunk = rows[start:start + 8]
        out += model.generate([q for q, _ in chunk], [[e] for _, e in chunk], GREEDY)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--full", required=True)
    parser.add_argument("--compact", action="append", required=True)
    parser.add_argument("--data-dir", default="../shared/data")
    parser.add_argument("--answers", type=int, default=150, help="zsRE edits whose answers are generated")
    parser.add_argument("--nq", type=int, default=500)
    parser.add_argument("--out", default="benchmarks/extra/compact.json")
    args = parser.parse_args()
    data = Path(args.data_dir)
    zsre = load_zsre(data / "zsre" / "zsre_mend_eval_portability_gpt4.json")
    counterfact = load_counterfact(data / "counterfact" / "counterfact-edit.json", limit=1000)
    nq = load_nq(data / "nq_open" / "NQ-open.dev.jsonl", limit=args.nq)
    examples = list(zsre) + list(counterfact)
    edits = [(e.edit_input, e.edit_target) for e in examples]
    newest: dict = {}
    for edit_id, example in enumerate(examples, start=1):  # store ids start at 1, in insertion order
        newest[fact_key(example)] = edit_id
    queries, expected = [], []  # expected: the edit id for in-scope queries, None for out-of-scope ones
    for example in examples:
        for probe in example.in_scope:
            queries.append(probe.input)
            expected.append(newest[fact_key(example)])
    for example in counterfact:
        queries.append(example.out_of_scope[0].input)
        expected.append(None)
    queries += [p.input for p in nq]
    expected += [None] * len(nq)
    started = time.time()
    artifacts = [args.full] + args.compact
    routes = {a: routing(a, edits, queries) for a in artifacts}
    rng = random.Random(0)
    sample = rng.sample(list(zsre), args.answers)
    rows = [(p.input, Edit(0, e.edit_input, e.edit_target, 0.0)) for e in sample for p in e.in_scope[:2]]
    targets = [e.edit_target for e in sample for _ in e.in_scope[:2]]
    generated = {a: answers(a, rows) for a in artifacts}
    result: dict = {
        "command": "python scripts/compact_check.py --full " + args.full + "".join(f" --compact {c}" for c in args.compact),
        "date": time.strftime("%Y-%m-%d"), "machine": f"{platform.machine()}, 2-core CPU, shared with other jobs",
        "memory": len(edits), "in_scope_queries": sum(e is not None for e in expected),
        "out_of_scope_queries": sum(e is None for e in expected), "answer_rows": len(rows), "artifacts": {},
    }
    for a in artifacts:
        r = routes[a]
        inside = [(got, want) for got, want in zip(r, expected) if want is not None]
        outside = [got for got, want in zip(r, expected) if want is None]
        report_file = Path(a) / "compact_report.json"
        result["artifacts"][a] = {
            "compact": json.loads(report_file.read_text()) if report_file.exists() else None,
            "bytes": sum(f.stat().st_size for f in Path(a).rglob("*") if f.is_file()),
            "in_scope_routed_to_fact": [sum(g == w for g, w in inside), len(inside)],
            "out_of_scope_routed": [sum(g is not None for g in outside), len(outside)],
            "routing_agrees_with_full": [sum(x == y for x, y in zip(r, routes[args.full])), len(r)],
            "answers_exact_match": [sum(exact_match(g, t) for g, t in zip(generated[a], targets)), len(rows)],
            "answers_agree_with_full": [sum(x == y for x, y in zip(generated[a], generated[args.full])), len(rows)],
        }
    result["wall_s"] = round(time.time() - started, 1)
    Path(args.out).write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result["artifacts"], indent=1))


if __name__ == "__main__":
    main()
