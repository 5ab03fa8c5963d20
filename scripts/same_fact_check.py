"""Measure the "newest wins" policy's same-fact decision on held-out data (issue 14, item 0).

Routing only (no generation): which stored edit would answer each input. For an artifact (or the
embedded defaults) and three policies: "best" (closest edit), "newest, keys only" (the rule before
the same-fact decision: keys' cosine >= scope threshold), "newest" (today's: plus the subject-masked
relation cosine >= same_fact_threshold).

1. zsRE eval, all 1,037 edits in memory in file order: share of edit inputs / rephrasings routed to
   the newest edit of their fact (conflict-aware routing) and to their own record's edit.
2. CounterFact eval edits, each followed by two newer edits of *other* relations of the same subject
   (templates from the training file, relations told apart by their answers): share of the edits'
   exact inputs and rephrasings routed to their own edit (anything else answers another fact).
3. Pairs: same-fact pairs merged vs other-relation pairs merged, at the configured thresholds, by
   each judge: the masked cosine, the scope verifier, and both together (``same_fact_by``).
4. Issue 14's four edits.

    python scripts/same_fact_check.py [--model DIR] [--data-dir ../shared/data] [--out benchmarks/extra/same_fact.json]
"""

from __future__ import annotations

import argparse
import json
import platform
import random
import sys
import time
from pathlib import Path

import numpy as np

from serac.config import SeracConfig
from serac.data import fact_key, load_counterfact, load_zsre
from serac.editor import load_artifact_config
from serac.scope import CrossEncoderReranker, ScopeClassifier, SentenceEncoder
from serac.store import EditStore
from serac.train.calibrate import score_same_fact
from serac.train.pairs import SameFactPairs, records_from_examples, same_fact_pairs

FOUR = [
    ("The official language of Australia is", "Arabic"),
    ("Australia is located in the continent of", "South America"),
    ("The capital of Serbia is", "Dhaka"),
    ("Serbia is located in the continent of", "Asia"),
]


JUDGES: dict[str, tuple] = {}  # name -> (encoder or None for the scope's, threshold); filled in main


VERIFIER: list = []  # the artifact's scope verifier (CrossEncoderReranker), when it has one; filled in main


def policies(config) -> dict[str, dict]:
    """Every policy routes with the artifact's verifier when it has one (as the editor does)."""
    out = {
        "best": dict(conflicts="best"),
        "newest, keys only (before)": dict(conflicts="newest", same_fact_threshold=-1.0, same_fact_by="encoder"),
    }
    for name, (encoder, threshold) in JUDGES.items():
        out[f"newest, same-fact decision: {name}"] = dict(
            conflicts="newest", same_fact_threshold=threshold, same_fact_encoder=encoder, same_fact_by="encoder")
        if not VERIFIER:  # relation_first variants only where no verifier (it ships off beside one)
            out[f"newest, same-fact decision: {name}, relation_first"] = dict(
                conflicts="newest", same_fact_threshold=threshold, same_fact_encoder=encoder, relation_first=True,
                same_fact_by="encoder")
    if VERIFIER:
        out["newest, same-fact decision: verifier"] = dict(conflicts="newest", same_fact_by="verifier")
        for name, (encoder, threshold) in JUDGES.items():
            out[f"newest, same-fact decision: verifier and {name}"] = dict(
                conflicts="newest", same_fact_threshold=threshold, same_fact_encoder=encoder, same_fact_by="both")
    return out


def build(encoder, config, store, **policy) -> ScopeClassifier:
    reranker = VERIFIER[0] if VERIFIER else None
    scope = ScopeClassifier(encoder, config.scope.threshold, config.scope.top_k, reranker=reranker, **policy)
    scope.sync(store)
    return scope


def store_with(encoder, edits: list[tuple[str, str]]) -> EditStore:
    store = EditStore(":memory:")
    vectors = encoder.encode([e[0] for e in edits])
    store.add_many(edits, embeddings=(encoder.id, vectors))
    return store


def routed(scope, queries, vectors) -> list[int | None]:
    out = []
    for start in range(0, len(queries), 256):
        for d in scope.decide(queries[start:start + 256], vectors[start:start + 256]):
            out.append(d.edit.id if d.in_scope else None)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", help="artifact directory (default: embedded defaults)")
    parser.add_argument("--data-dir", default="../shared/data")
    parser.add_argument("--counterfact", type=int, default=1000, help="CounterFact eval edits in part 2")
    parser.add_argument("--out", default=None)
    parser.add_argument("--judge", action="append", default=[], metavar="ENCODER=THRESHOLD",
                        help="also try a same-fact judge with another encoder (repeatable), e.g. embedded:all-minilm-l6-v2=0.6")
    args = parser.parse_args()
    data = Path(args.data_dir)
    config = load_artifact_config(args.model) if args.model else SeracConfig()
    encoder = SentenceEncoder(config.scope.encoder, device="cpu")
    started = time.time()
    verifier = CrossEncoderReranker.from_config(config.scope)
    if verifier is not None:
        VERIFIER.append(verifier)
    if not config.scope.same_fact_encoder or config.scope.same_fact_encoder == config.scope.encoder:
        JUDGES["scope encoder"] = (None, config.scope.same_fact_threshold)
    else:  # what ships: the pretrained MiniLM judges beside the trained scope encoder
        JUDGES[config.scope.same_fact_encoder] = (SentenceEncoder(config.scope.same_fact_encoder, device="cpu"),
                                                  config.scope.same_fact_threshold)
    for spec in args.judge:
        name, threshold = spec.rsplit("=", 1)
        JUDGES[f"{name} at {threshold}"] = (SentenceEncoder(name, device="cpu"), float(threshold))
    result: dict = {"command": "python scripts/same_fact_check.py " + " ".join(sys.argv[1:]),
                    "date": time.strftime("%Y-%m-%d"), "machine": f"{platform.machine()}, {platform.processor() or 'cpu'}",
                    "threshold": config.scope.threshold, "same_fact_threshold": config.scope.same_fact_threshold}

    # 1. zsRE, all edits in memory
    zsre = load_zsre(data / "zsre" / "zsre_mend_eval_portability_gpt4.json")
    store = store_with(encoder, [(e.edit_input, e.edit_target) for e in zsre])
    ids = [e.id for e in store.list()]
    newest: dict = {}
    for edit_id, example in zip(ids, zsre):
        newest[fact_key(example)] = edit_id
    queries, own, fact_newest, kinds = [], [], [], []
    for edit_id, example in zip(ids, zsre):
        for n, probe in enumerate(example.in_scope):
            queries.append(probe.input)
            own.append(edit_id)
            fact_newest.append(newest[fact_key(example)])
            kinds.append("input" if n == 0 else "rephrasing")
    qv = encoder.encode(queries)
    part1 = {}
    for name, policy in policies(config).items():
        got = routed(build(encoder, config, store, **policy), queries, qv)
        part1[name] = {
            kind: {"n": sum(k == kind for k in kinds),
                   "routed_to_newest_of_fact": round(float(np.mean([g == f for g, f, k in zip(got, fact_newest, kinds) if k == kind])), 4),
                   "routed_to_own_edit": round(float(np.mean([g == o for g, o, k in zip(got, own, kinds) if k == kind])), 4)}
            for kind in ("input", "rephrasing")
        }
    result["zsre_all_1037"] = part1

    # 2. CounterFact edits with newer other-relation edits of the same subject
    train = records_from_examples(load_counterfact(data / "counterfact" / "counterfact-train.json", skip_malformed=True), "counterfact")
    cf = load_counterfact(data / "counterfact" / "counterfact-edit.json")[: args.counterfact]
    cf_records = records_from_examples(cf, "counterfact")
    other = same_fact_pairs(cf_records, reference=train, seed=0, per_record=2).other
    rng = random.Random(0)
    by_key: dict[str, list[str]] = {}
    for a, b in other:
        by_key.setdefault(a, []).append(b)
    edits, owners = [], []
    for example in cf:
        edits.append((example.edit_input, example.edit_target))
        owners.append(True)
        for text in by_key.get(example.edit_input, []):
            edits.append((text, f"other-{rng.randrange(10**6)}"))
            owners.append(False)
    store = store_with(encoder, edits)
    stored = store.list()
    own_ids = [e.id for e, mine in zip(stored, owners) if mine]
    queries, own, kinds = [], [], []
    for edit_id, example in zip(own_ids, cf):
        for n, probe in enumerate(example.in_scope):
            queries.append(probe.input)
            own.append(edit_id)
            kinds.append("input" if n == 0 else "rephrasing")
    qv = encoder.encode(queries)
    part2 = {"edits": len(cf), "other_relation_edits": len(edits) - len(cf)}
    for name, policy in policies(config).items():
        got = routed(build(encoder, config, store, **policy), queries, qv)
        part2[name] = {kind: {"n": sum(k == kind for k in kinds),
                              "routed_to_own_edit": round(float(np.mean([g == o for g, o, k in zip(got, own, kinds) if k == kind])), 4)}
                       for kind in ("input", "rephrasing")}
    result["counterfact_with_other_relations"] = part2

    # 3. pairs
    zsre_records = records_from_examples(zsre, "zsre")
    same = same_fact_pairs(zsre_records, seed=0).same
    pairs = SameFactPairs(same, other)
    key_same = np.sum(encoder.encode([a for a, _ in same]) * encoder.encode([b for _, b in same]), 1)
    key_other = np.sum(encoder.encode([a for a, _ in other]) * encoder.encode([b for _, b in other]), 1)
    t = config.scope.threshold
    result["pairs"] = {
        "same_fact_pairs (zsRE eval: rephrasings and re-edits)": len(same),
        "other_relation_pairs (CounterFact eval subjects)": len(other),
        "keys only (before): same merged": round(float((key_same >= t).mean()), 4),
        "keys only (before): other merged": round(float((key_other >= t).mean()), 4),
    }
    cosines = {name: score_same_fact((judge_encoder or encoder).encode, pairs)
               for name, (judge_encoder, _) in JUDGES.items()}
    for name, (_, s) in JUDGES.items():
        same_sim, other_sim = cosines[name]
        result["pairs"][f"{name}: same merged"] = round(float(((key_same >= t) & (same_sim >= s)).mean()), 4)
        result["pairs"][f"{name}: other merged"] = round(float(((key_other >= t) & (other_sim >= s)).mean()), 4)
    if VERIFIER:
        v = VERIFIER[0]
        same_v, other_v = np.array(v.pair_mutual_scores(same)), np.array(v.pair_mutual_scores(other))
        result["pairs"]["verifier: same merged"] = round(float(((key_same >= t) & (same_v >= v.threshold)).mean()), 4)
        result["pairs"]["verifier: other merged"] = round(float(((key_other >= t) & (other_v >= v.threshold)).mean()), 4)
        for name, (_, s) in JUDGES.items():
            same_sim, other_sim = cosines[name]
            both_same = (key_same >= t) & (same_v >= v.threshold) & (same_sim >= s)
            both_other = (key_other >= t) & (other_v >= v.threshold) & (other_sim >= s)
            result["pairs"][f"verifier and {name}: same merged"] = round(float(both_same.mean()), 4)
            result["pairs"][f"verifier and {name}: other merged"] = round(float(both_other.mean()), 4)

    # 4. the four edits
    store = store_with(encoder, FOUR)
    inputs = [e[0] for e in FOUR]
    qv = encoder.encode(inputs)
    result["four_edits"] = {}
    for name, policy in policies(config).items():
        scope = build(encoder, config, store, **policy)
        result["four_edits"][name] = {q: (d.edit.target if d.in_scope else None) for q, d in zip(inputs, scope.decide(inputs, qv))}
    result["wall_s"] = round(time.time() - started, 1)
    text = json.dumps(result, indent=1)
    print(text)
    if args.out:
        Path(args.out).write_text(text + "\n")


if __name__ == "__main__":
    main()
