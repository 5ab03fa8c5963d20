"""The scope verifier against the dual encoder alone, as memory grows (issue 14, items 1 and 4).

The real editor (``EditedModel.from_pretrained(--model)``), the first N CounterFact eval edits in an
in-memory store, routed twice: by the artifact's dual encoder alone (threshold on the cosine) and with
its cross-encoder verifier (``scope.cross_encoder``). Queries:

- in scope: the inputs and rephrasings of ``--scored`` edits drawn from the first 1,000 (routed right
  when the chosen edit asks the same fact: the same normalised input, or the scored edit itself);
- neighbourhood prompts of those edits (same relation, another subject): a route to an edit about
  *another* subject than the one the prompt names is a false route for sure (some prompts name a
  subject that has its own edit in memory; such routes are counted apart);
- NQ-open dev questions: any route is false;
- hijack questions about the scored edits' subjects (serac/eval/hijack.py: other relations' templates
  and chain questions, none seen in training for these eval subjects).

Scope cost: one query per call, p50 ms of ``route`` (encoder pass, index search, verifier), against
the base model's greedy generation of the same out-of-scope questions (16 new tokens).

    python scripts/scope_verifier_check.py --model ARTIFACT --out benchmarks/extra/scope_verifier.json \
        --markdown benchmarks/extra/scope_verifier.md
"""

from __future__ import annotations

import argparse
import json
import platform
import random
import time
from pathlib import Path

import numpy as np
from tqdm import tqdm

from serac.base import GenerationOptions
from serac.data import load_counterfact, load_nq
from serac.data.examples import normalize_text
from serac.editor import EditedModel
from serac.eval.hijack import build_hijack_set
from serac.eval.metrics import rate_cell, rate_entry
from serac.store import EditStore


def route(model: EditedModel, texts: list[str], desc: str, batch: int = 64) -> list:
    out = []
    for start in tqdm(range(0, len(texts), batch), desc=desc, unit="batch", leave=False):
        out += model.route(texts[start:start + batch])
    return out


def p50_ms(fn, texts: list[str]) -> float:
    times = []
    for text in texts:
        began = time.perf_counter()
        fn([text])
        times.append((time.perf_counter() - began) * 1000)
    return round(float(np.median(times)), 2)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", required=True, help="an artifact with scope.cross_encoder set")
    parser.add_argument("--data-dir", default="../shared/data")
    parser.add_argument("--sizes", default="1000,10000")
    parser.add_argument("--scored", type=int, default=500)
    parser.add_argument("--nq", type=int, default=500)
    parser.add_argument("--timing-queries", type=int, default=40)
    parser.add_argument("--floors", default=None,
                        help="comma-separated verifier floors to compare (default: the artifact's own)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", default=None)
    parser.add_argument("--markdown", default=None)
    args = parser.parse_args()
    started = time.time()
    data = Path(args.data_dir)
    sizes = [int(s) for s in args.sizes.split(",")]
    edits = load_counterfact(data / "counterfact" / "counterfact-edit.json")[: max(sizes)]
    rng = random.Random(args.seed)
    scored = sorted(rng.sample(range(min(1000, len(edits))), args.scored))
    nq = [p.input for p in load_nq(data / "nq_open" / "NQ-open.dev.jsonl")][: args.nq]
    hijack = build_hijack_set([edits[i] for i in scored], n_counterfact=args.scored, n_zsre=0, seed=args.seed)
    hijack_queries = [q for q in hijack.queries if q.kind != "sibling"]  # siblings: other scored edits' inputs

    model = EditedModel.from_pretrained(args.model, store=EditStore())
    verifier = model.scope.reranker
    if verifier is None:
        parser.error(f"{args.model} has no scope.cross_encoder; add one with `serac train --add-cross-encoder`")
    result: dict = {
        "command": f"python scripts/scope_verifier_check.py --model {args.model} --sizes {args.sizes} "
                   f"--scored {args.scored} --nq {args.nq} --seed {args.seed}"
                   + (f" --floors {args.floors}" if args.floors else ""),
        "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "machine": f"{platform.machine()}; 2-core CPU, 24 GiB, shared with other jobs",
        "dual_threshold": model.scope.threshold, "verifier_threshold": verifier.threshold,
        "verifier_floor": verifier.floor, "points": [],
    }
    own_floor = verifier.floor
    floors = [float(f) for f in args.floors.split(",")] if args.floors else [own_floor]
    probes = [(p.input, i) for i in scored for p in edits[i].in_scope]
    neighbourhood = [(edits[i].out_of_scope[0].input, i) for i in scored]
    subjects = [normalize_text(e.subject or "") for e in edits]
    added = 0
    for n in sizes:
        model.add_many([(e.edit_input, e.edit_target) for e in edits[added:n]])
        added = n
        input_of = {normalize_text(e.edit_input) for e in edits[:n]}
        assert len(input_of) <= n
        for variant, floor in (("dual", None), *((f"verifier, floor {f}", f) for f in floors)):
            model.scope.reranker = verifier if floor is not None else None
            verifier.floor = floor if floor is not None else own_floor
            got = route(model, [t for t, _ in probes], f"{n} {variant} in-scope")
            right = sum(d.edit is not None and (d.edit.id == i + 1 or normalize_text(d.edit.input)
                                                == normalize_text(edits[i].edit_input))
                        for d, (_, i) in zip(got, probes))
            got = route(model, [t for t, _ in neighbourhood], f"{n} {variant} neighbourhood")
            routed = [d.edit is not None for d in got]
            # a route to an edit about a subject the prompt does not name is false for sure
            other = [d.edit is not None and not (subjects[d.edit.id - 1]
                                                 and subjects[d.edit.id - 1] in normalize_text(t))
                     for d, (t, _) in zip(got, neighbourhood)]
            got_nq = route(model, nq, f"{n} {variant} NQ")
            got_hijack = route(model, [q.text for q in hijack_queries], f"{n} {variant} hijack")
            point = {
                "n_edits": n, "variant": variant,
                "in_scope_routed_to_its_fact": rate_entry(right, len(probes)),
                "neighbourhood_routed": rate_entry(sum(routed), len(routed)),
                "neighbourhood_routed_to_another_subject": rate_entry(sum(other), len(other)),
                "nq_routed": rate_entry(sum(d.edit is not None for d in got_nq), len(got_nq)),
                "hijack_routed": rate_entry(sum(d.edit is not None for d in got_hijack), len(got_hijack)),
                "scope_p50_ms": {
                    "out_of_scope": p50_ms(model.route, nq[: args.timing_queries]),
                    "in_scope": p50_ms(model.route, [t for t, _ in probes[: args.timing_queries]]),
                },
            }
            result["points"].append(point)
            print(json.dumps(point), flush=True)
    model.scope.reranker, verifier.floor = verifier, own_floor
    options = GenerationOptions(max_new_tokens=16)
    result["base_generation_p50_ms"] = p50_ms(lambda texts: model.base.generate(texts, options),
                                              nq[: min(20, args.timing_queries)])
    result["wall_s"] = round(time.time() - started, 1)
    text = json.dumps(result, indent=1)
    if args.out:
        Path(args.out).write_text(text + "\n")
    if args.markdown:
        Path(args.markdown).write_text(markdown(result))
    print(text)


def markdown(result: dict) -> str:
    lines = ["## Scope verifier: precision as memory grows, and hijacking (issue 14, items 1 and 4)", "",
             f"Command: `{result['command']}` ({result['date']}, {result['machine']}, {result['wall_s'] / 60:.0f} min). "
             "Raw numbers: [scope_verifier.json](benchmarks/extra/scope_verifier.json). The first N CounterFact eval "
             "edits in memory, routed by the dual encoder alone (cosine >= "
             f"{result['dual_threshold']:.4f}) and with the cross-encoder verifier (probability >= "
             f"{result['verifier_threshold']:.3f} over the candidates whose cosine reaches the floor; the artifact's "
             f"own floor is {result['verifier_floor']}). "
             "Hijack questions: other relations' templates filled with the scored edits' subjects and chain questions "
             "through their facts (serac/eval/hijack.py), for eval subjects the verifier never trained on. Rates: value "
             "[95% Wilson interval] (count).", "",
             "| N | scope | in-scope routed to its fact | neighbourhood routed | to an edit about another subject | "
             "NQ routed | hijack questions routed | scope p50 ms (out / in scope) |",
             "|---:|---|---|---|---|---|---|---|"]
    for p in result["points"]:
        lines.append(f"| {p['n_edits']:,} | {p['variant']} | {rate_cell(p['in_scope_routed_to_its_fact'])} | "
                     f"{rate_cell(p['neighbourhood_routed'])} | {rate_cell(p['neighbourhood_routed_to_another_subject'])} | "
                     f"{rate_cell(p['nq_routed'])} | {rate_cell(p['hijack_routed'])} | "
                     f"{p['scope_p50_ms']['out_of_scope']} / {p['scope_p50_ms']['in_scope']} |")
    lines += ["", f"Base model greedy generation (16 new tokens), p50: {result['base_generation_p50_ms']} ms per "
              "question, same run."]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()
