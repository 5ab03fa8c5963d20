"""Hijacking by subject (issue 14, item 4): with edits in memory, how many questions that mention an
edited subject but ask something else are routed to an edit, and answered with its target?

The set comes from the training files only (serac/eval/hijack.py): other CounterFact records of an
edited subject with another relation ("sibling"), other relations' templates filled with the
subject ("template"), and chain questions through a place-valued edited relation ("chain"). Every
query is routed; the routed ones (up to --generate) are answered by the full model and counted as
hijacked when the answer came from an edit and exact-matches that edit's target (a query left to the
base model is answered as before the edit). ES on the edits themselves (inputs and rephrasings) is
measured alongside. A routing-only variant is also reported: the routed edit must ask the same
relation as the query (the same-fact judge's subject-masked cosine, serac.facts), at a few thresholds,
with what it costs in-scope routing.

    python scripts/hijack_check.py --model ARTIFACT [--data-dir ../shared/data] [--out benchmarks/extra/hijack.json]
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
from serac.data import load_counterfact, load_zsre
from serac.editor import EditedModel
from serac.eval.hijack import KINDS, build_hijack_set
from serac.eval.metrics import exact_match, rate_cell, rate_entry
from serac.facts import mask_shared_span

RELATION_THRESHOLDS = (0.3, 0.4, 0.5, 0.55)


def generate(model: EditedModel, texts: list[str], desc: str, batch: int = 8, max_new_tokens: int = 16) -> list:
    out = []
    options = GenerationOptions(max_new_tokens=max_new_tokens)
    for start in tqdm(range(0, len(texts), batch), desc=desc, unit="batch"):
        out += model.generate(texts[start:start + batch], options)
    return out


def relation_similarity(encoder, pairs: list[tuple[str, str]]) -> np.ndarray:
    """The same-fact judge's measure between a query and an edit input: cosine with the shared
    subject masked out."""
    if not pairs:
        return np.zeros(0)
    masked = [mask_shared_span(a, b) for a, b in pairs]
    vectors = encoder.encode([t for pair in masked for t in pair])
    return np.sum(vectors[0::2] * vectors[1::2], axis=1)


def markdown(result: dict) -> str:
    """The benchmarks/extra fragment for a result."""
    lines = ["## No hijacking by subject (issue 14, item 4)", "",
             f"Command: `{result['command']}` ({result['date']}, {result['machine']}, {result['wall_s'] / 60:.1f} min). "
             f"Raw numbers: [hijack.json](benchmarks/extra/hijack.json). Model: `{result['model']}` (counterfactual prompt "
             f"`{result['counterfactual']}`), scope threshold {result['threshold']:.4f}" + (f", verifier threshold "
             f"{result['verifier_threshold']:.3f} (floor {result['verifier_floor']})" if result.get("verifier_threshold") else "")
             + f"; {result['edits_in_memory']} training "
             "edits in memory (CounterFact and zsRE training files" + ("; with --held-out only records of the artifact's "
             "validation split, which neither its scope encoder nor its verifier trained on" if "--held-out" in result["command"]
             else "") + "). Queries (`serac/eval/hijack.py`, training data only): "
             "**sibling**: another CounterFact record of an edited subject with another relation; **template**: another "
             "relation's template filled with the subject; **chain**: a relation asked through the edited fact (\"The "
             "official language of the place where <subject> was born is\"). Rates: value [95% Wilson interval] (count).", "",
             "| queries | n | routed to an edit | routed to the subject's edit | routed ones answered with the edit's target "
             "(generated sample) | answered with an edit's target, all queries |", "|---|---:|---|---|---|---|"]
    for kind in (*KINDS, "all"):
        routing = result["routing"][kind]
        gen = result["generation"]["by_kind"][kind]
        total = rate_cell(gen.get("answered_with_target")) if "answered_with_target" in gen else (
            f"~{gen['answered_with_target_estimate']:.3f} (estimate: routed share x sampled rate)"
            if "answered_with_target_estimate" in gen else "–")
        lines.append(f"| {kind} | {routing['routed_to_an_edit']['n']} | {rate_cell(routing['routed_to_an_edit'])} | "
                     f"{rate_cell(routing['routed_to_the_subjects_edit'])} | {rate_cell(gen['routed_answered_with_target'])} | {total} |")
    es = result["es_on_the_edits"]
    lines += ["", f"ES on the edits themselves (same memory, generated): {rate_cell(es['es'])}; reliability "
              f"{rate_cell(es['reliability'])}, generalization {rate_cell(es['generalization'])}.", "",
              "Routing only: requiring the routed edit to ask the query's relation (the same-fact judge's "
              "subject-masked cosine between the query and the edit's input, `serac.facts`):", "",
              "| rule | hijack queries routed to an edit | in-scope probes routed to their own edit |", "|---|---|---|"]
    for name, entry in result["relation_check_routing_only"].items():
        if isinstance(entry, dict):
            lines.append(f"| {name} | {rate_cell(entry['hijack_routed'])} | {rate_cell(entry['in_scope_routed_to_own'])} |")
    if "verifier_threshold_routing_only" in result:
        lines += ["", "Routing only: the scope verifier's threshold (the cross-encoder's probability):", "",
                  "| verifier threshold | hijack queries routed to an edit | in-scope probes routed to their own edit |",
                  "|---|---|---|"]
        for name, entry in result["verifier_threshold_routing_only"].items():
            lines.append(f"| {name} | {rate_cell(entry['hijack_routed'])} | {rate_cell(entry['in_scope_routed_to_own'])} |")
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", help="artifact directory (serac train output); required unless --render")
    parser.add_argument("--data-dir", default="../shared/data")
    parser.add_argument("--n-counterfact", type=int, default=200, help="CounterFact training edits in memory")
    parser.add_argument("--n-zsre", type=int, default=50, help="zsRE training edits in memory")
    parser.add_argument("--generate", type=int, default=300, help="at most this many routed hijack queries generated")
    parser.add_argument("--es-edits", type=int, default=60, help="edits whose inputs and rephrasings are generated (ES)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--held-out", action="store_true",
                        help="edits only from the artifact's validation split (never seen by its scope or verifier "
                             "in training; read from its train_config.json)")
    parser.add_argument("--routing-only", action="store_true", help="skip generation (routing shares only)")
    parser.add_argument("--out", default=None)
    parser.add_argument("--markdown", default=None, help="write the benchmarks/extra fragment here")
    parser.add_argument("--render", default=None, metavar="JSON", help="only render --markdown from a saved result")
    args = parser.parse_args()
    if args.render:
        Path(args.markdown).write_text(markdown(json.loads(Path(args.render).read_text())))
        return
    if not args.model:
        parser.error("--model is required (an artifact directory written by serac train)")
    started = time.time()
    data = Path(args.data_dir)
    counterfact = load_counterfact(data / "counterfact" / "counterfact-train.json", skip_malformed=True)
    zsre = load_zsre(data / "zsre" / "zsre_mend_train-1k.json", skip_malformed=True)
    held_out = None
    if args.held_out:
        from serac.train.config import TrainConfig
        from serac.train.pipeline import load_training_data

        held_out = {r.key for r in load_training_data(TrainConfig.load(Path(args.model) / "train_config.json")).val}
    hijack = build_hijack_set(counterfact, zsre, args.n_counterfact, args.n_zsre, seed=args.seed, edit_inputs=held_out)

    model = EditedModel.from_pretrained(args.model)
    stored = model.add_many([(e.edit_input, e.edit_target) for e in hijack.edits])
    edit_ids = [e.id for e in stored]
    result: dict = {
        "command": "python scripts/hijack_check.py --model " + args.model + "".join(
            f" --{k.replace('_', '-')} {getattr(args, k)}" for k in ("n_counterfact", "n_zsre", "generate", "es_edits", "seed"))
            + (" --held-out" if args.held_out else ""),
        "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "machine": f"{platform.machine()}, {platform.processor() or 'cpu'}; 2-core CPU shared with other jobs",
        "model": args.model, "counterfactual": model.config.counterfactual.prompt if model.config else None,
        "threshold": model.scope.threshold, "edits_in_memory": len(hijack.edits),
        "verifier_threshold": model.scope.reranker.threshold if model.scope.reranker else None,
        "verifier_floor": model.scope.reranker.floor if model.scope.reranker else None,
        "queries": {kind: len(hijack.of_kind(kind)) for kind in KINDS},
    }

    # 1. routing, every query
    texts = [q.text for q in hijack.queries]
    decisions = model.route(texts)
    routed = [d.edit is not None for d in decisions]
    own = [d.edit is not None and d.edit.id == edit_ids[q.edit] for q, d in zip(hijack.queries, decisions)]
    result["routing"] = {
        kind: {"routed_to_an_edit": rate_entry(sum(r for r, q in zip(routed, hijack.queries) if q.kind == kind),
                                          len(hijack.of_kind(kind))),
               "routed_to_the_subjects_edit": rate_entry(sum(o for o, q in zip(own, hijack.queries) if q.kind == kind),
                                                    len(hijack.of_kind(kind)))}
        for kind in KINDS}
    result["routing"]["all"] = {"routed_to_an_edit": rate_entry(sum(routed), len(routed)),
                                "routed_to_the_subjects_edit": rate_entry(sum(own), len(own))}

    # 2. routing-only variant: the routed edit must ask the query's relation
    probes = [(p.input, n) for n, e in enumerate(hijack.edits) for p in e.in_scope]
    probe_decisions = model.route([t for t, _ in probes])
    probe_own = [d.edit is not None and d.edit.id == edit_ids[n] for (_, n), d in zip(probes, probe_decisions)]
    judge = model.scope.same_fact.encoder
    hijack_sim = relation_similarity(judge, [(t, d.edit.input) for t, d in zip(texts, decisions) if d.edit is not None])
    probe_sim = relation_similarity(judge, [(t, d.edit.input) for (t, _), d, ok in zip(probes, probe_decisions, probe_own) if ok])
    result["relation_check_routing_only"] = {
        "encoder": "the same-fact judge's encoder", "in_scope_probes": len(probes),
        "no_check": {"hijack_routed": rate_entry(sum(routed), len(routed)), "in_scope_routed_to_own": rate_entry(sum(probe_own), len(probes))},
        **{f"masked cosine >= {t}": {"hijack_routed": rate_entry(int((hijack_sim >= t).sum()), len(routed)),
                                     "in_scope_routed_to_own": rate_entry(int((probe_sim >= t).sum()), len(probes))}
           for t in RELATION_THRESHOLDS}}

    verifier = model.scope.reranker
    if verifier is not None:  # the verifier's threshold: what a stricter one buys, routing only
        chosen, sweep = verifier.threshold, {}
        for threshold in sorted({chosen, 0.5, 0.7, 0.9, 0.95}):
            verifier.threshold = threshold
            hijack_routed = sum(d.edit is not None for d in model.route(texts))
            own_routed = sum(d.edit is not None and d.edit.id == edit_ids[n]
                             for d, (_, n) in zip(model.route([t for t, _ in probes]), probes))
            sweep[f"{threshold:.3f}" + (" (the artifact's)" if threshold == chosen else "")] = {
                "hijack_routed": rate_entry(hijack_routed, len(texts)), "in_scope_routed_to_own": rate_entry(own_routed, len(probes))}
        verifier.threshold = chosen
        result["verifier_threshold_routing_only"] = sweep

    def save() -> None:  # after each stage, so a run stopped by its time bound keeps what it measured
        if args.out:
            Path(args.out).write_text(json.dumps({**result, "wall_s": round(time.time() - started, 1)}, indent=1) + "\n")

    save()
    if args.routing_only:
        print(json.dumps(result, indent=1))
        return
    # 3. generation: routed hijack queries (sample) and the edits' own inputs (ES)
    rng = random.Random(args.seed)
    routed_idx = [i for i, r in enumerate(routed) if r]
    sample = sorted(rng.sample(routed_idx, min(args.generate, len(routed_idx))))
    answers = generate(model, [texts[i] for i in sample], "hijack queries")
    hits = {kind: 0 for kind in KINDS}
    tried = {kind: 0 for kind in KINDS}
    examples = []
    for i, answer in zip(sample, answers):
        kind = hijack.queries[i].kind
        tried[kind] += 1
        hit = answer.edit is not None and exact_match(answer.text, answer.edit.target)
        hits[kind] += hit
        if hit and len(examples) < 12:
            examples.append({"kind": kind, "query": texts[i], "edit": answer.edit.input, "target": answer.edit.target,
                             "answer": answer.text})
    generated = {}
    for kind in (*KINDS, "all"):
        kinds = KINDS if kind == "all" else (kind,)
        n_kind = sum(len(hijack.of_kind(k)) for k in kinds)
        n_routed = sum(1 for i in routed_idx if hijack.queries[i].kind in kinds)
        k_hit, k_tried = sum(hits[k] for k in kinds), sum(tried[k] for k in kinds)
        entry = {"routed_answered_with_target": rate_entry(k_hit, k_tried)}
        if k_tried == n_routed:  # every routed query generated: the share over all queries is exact
            entry["answered_with_target"] = rate_entry(k_hit, n_kind)
        elif k_tried:  # a sample of the routed ones: scale by the routed share
            rate = k_hit / k_tried * n_routed / n_kind
            entry["answered_with_target_estimate"] = round(rate, 4)
        generated[kind] = entry
    result["generation"] = {"generated": len(sample), "routed": len(routed_idx), "by_kind": generated,
                            "hijacked_examples": examples}

    save()
    es_edits = sorted(rng.sample(range(len(hijack.edits)), min(args.es_edits, len(hijack.edits))))
    es_probes = [(p.input, hijack.edits[n].edit_target, j) for n in es_edits for j, p in enumerate(hijack.edits[n].in_scope)]
    es_answers = generate(model, [t for t, _, _ in es_probes], "edit inputs and rephrasings")
    ok = [exact_match(a.text, target) for a, (_, target, _) in zip(es_answers, es_probes)]
    result["es_on_the_edits"] = {"es": rate_entry(sum(ok), len(ok)),
                                 "reliability": rate_entry(sum(o for o, p in zip(ok, es_probes) if p[2] == 0),
                                                      sum(1 for p in es_probes if p[2] == 0)),
                                 "generalization": rate_entry(sum(o for o, p in zip(ok, es_probes) if p[2] > 0),
                                                         sum(1 for p in es_probes if p[2] > 0))}
    result["wall_s"] = round(time.time() - started, 1)
    text = json.dumps(result, indent=1)
    print(text)
    if args.out:
        Path(args.out).write_text(text + "\n")
    if args.markdown:
        Path(args.markdown).write_text(markdown(result))


if __name__ == "__main__":
    main()
