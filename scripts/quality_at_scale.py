"""Quality at scale (issue 13): CounterFact ES and DD with 100,000 real-text distractor edits in memory,
side by side with the same edits scored with only the 1,000 CounterFact edits in memory.

The editor is the real one: ``EditedModel.from_pretrained(None)`` (the trained defaults shipped in
serac/defaults), an on-disk ``EditStore`` per condition, the base model shared by both. Distractors
(serac/eval/distractors.py: CounterFact subjects crossed with CounterFact relation templates, none
about a scored fact) go in through ``EditStore.add_many(..., embeddings=(encoder id, vectors))``, their
keys encoded by the editor's own scope encoder (cached in ``--workdir``, so a rerun does not re-encode).
Scoring is the benchmark's (``serac.eval.runner.observe``): free generation, exact match; ES over the
scored edits' prompts and rephrasings, locality over their neighbourhood prompts, DD over NQ-open
questions. Conditions:

  a  the first ``--n-edits`` CounterFact edits alone
  b  the same edits, then ``--distractors`` distractor edits added after them (newer: under the
     newest-wins conflict policy a distractor would win any tie)

    OMP_NUM_THREADS=1 nice -n 5 python scripts/quality_at_scale.py --scored 300

Writes benchmarks/extra/quality_at_scale.md and quality_at_scale.json.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import platform
import random
import statistics
import subprocess
import sys
import time
from dataclasses import replace
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np

REPO = Path(__file__).resolve().parents[1]
OUT_DIR = REPO / "benchmarks/extra"
MACHINE = "2-core CPU, 24 GiB, shared with other jobs"
EDIT_FILE = "counterfact/counterfact-edit.json"
TRAIN_FILE = "counterfact/counterfact-train.json"
NQ_FILE = "nq_open/NQ-open.dev.jsonl"
STORE_BATCH = 10_000


def log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, default=REPO.parent / "shared/data",
                        help="the shared data folder (counterfact/, nq_open/); default ../shared/data")
    parser.add_argument("--n-edits", type=int, default=1000, help="CounterFact edits in memory (the first n)")
    parser.add_argument("--scored", type=int, default=300, help="edits scored (a seeded sample of the n)")
    parser.add_argument("--distractors", type=int, default=100_000, help="distractor edits in condition b")
    parser.add_argument("--dd-sample", type=int, default=300, help="NQ-open questions for drawdown")
    parser.add_argument("--seed", type=int, default=0, help="seed of every sample")
    parser.add_argument("--latency-queries", type=int, default=100, help="queries timed one per call, per condition")
    parser.add_argument("--max-new-tokens", type=int, default=16, help="greedy answer length (the benchmark's)")
    parser.add_argument("--workdir", type=Path, default=Path("/tmp/serac_quality_at_scale"),
                        help="stores and the cached distractor vectors")
    parser.add_argument("--relation-first", action=argparse.BooleanOptionalAction, default=None,
                        help="scope.relation_first on or off (default: the artifact's setting)")
    parser.add_argument("--same-fact-by", choices=("encoder", "verifier", "both"), default=None,
                        help="scope.same_fact_by (default: the artifact's setting)")
    parser.add_argument("--same-fact-threshold", type=float, default=None,
                        help="scope.same_fact_threshold (default: the artifact's setting)")
    parser.add_argument("--encode-only", action="store_true", help="build and encode the distractors, then stop")
    parser.add_argument("--out", type=Path, default=OUT_DIR, help="where the .md and .json go")
    parser.add_argument("--render", type=Path, default=None, metavar="JSON",
                        help="only rewrite --out's quality_at_scale.md from a saved quality_at_scale.json")
    return parser.parse_args(argv)


# -- distractor keys ------------------------------------------------------------------------------------
def encode_cached(encoder: Any, texts: list[str], workdir: Path, chunk: int = 10_000) -> np.ndarray:
    """The encoder's vectors of ``texts``, computed in chunks, each cached as an .npz named by the
    encoder id and the chunk's texts (an interrupted run resumes; other texts or weights miss)."""
    from tqdm.auto import tqdm

    workdir.mkdir(parents=True, exist_ok=True)
    parts = []
    with tqdm(total=len(texts), desc="encoding distractor keys", unit="key", dynamic_ncols=True) as bar:
        for start in range(0, len(texts), chunk):
            part = texts[start : start + chunk]
            digest = hashlib.sha256("\x00".join([encoder.id, *part]).encode()).hexdigest()[:20]
            path = workdir / f"keys-{digest}.npz"
            if path.exists():
                with np.load(path, allow_pickle=False) as cached:
                    vectors = np.asarray(cached["vectors"])
                bar.update(len(part))
            else:
                pieces = []
                for i in range(0, len(part), 512):
                    pieces.append(encoder.encode(part[i : i + 512]))
                    bar.update(len(pieces[-1]))
                vectors = np.concatenate(pieces)
                np.savez(path, vectors=vectors)
            parts.append(vectors)
    return np.concatenate(parts) if parts else np.zeros((0, encoder.dim), np.float32)


# -- the editor and its two memories ----------------------------------------------------------------------
class EditorMethod:
    """An ``EditedModel`` as the runner's :class:`~serac.eval.methods.EditingMethod` (its memory is
    the on-disk store it was given; ``reset`` is not offered: the conditions are separate stores)."""

    def __init__(self, name: str, editor: Any, options: Any) -> None:
        self.name = name
        self.editor = editor
        self.options = options
        self.last_routes: list[bool] = []

    def reset(self) -> None:
        raise NotImplementedError("each condition is its own store; build another EditorMethod")

    def apply(self, edits: Any) -> None:
        self.editor.add_many(list(edits))

    def predict(self, prompts: list[str]) -> list[str]:
        answers = self.editor.generate(list(prompts), self.options)
        self.last_routes = [a.source == "counterfactual" for a in answers]
        return [a.text for a in answers]

    def teacher_forced(self, prompts: list[str], targets: list[str]) -> list[float]:
        return self.editor.teacher_forced(list(prompts), list(targets))


def fresh_store(path: Path) -> Any:
    """An empty on-disk store at ``path`` (a previous run's store and persisted index removed)."""
    import shutil

    from serac.store import EditStore

    for old in (path, Path(f"{path}-wal"), Path(f"{path}-shm")):
        old.unlink(missing_ok=True)
    shutil.rmtree(f"{path}.serac", ignore_errors=True)
    path.parent.mkdir(parents=True, exist_ok=True)
    return EditStore(path)


def route_kinds(editor: Any, prompts: list[str], own: list[int | None], real_ids: set[int]) -> dict[str, int]:
    """How each prompt was routed: to its own edit (``own``, when it has one), another of the real
    edits, a distractor, or to the base model."""
    counts = {"own_edit": 0, "other_real_edit": 0, "distractor": 0, "base": 0}
    for decision, mine in zip(editor.route(prompts), own):
        if not decision.in_scope:
            counts["base"] += 1
        elif mine is not None and decision.edit.id == mine:
            counts["own_edit"] += 1
        elif decision.edit.id in real_ids:
            counts["other_real_edit"] += 1
        else:
            counts["distractor"] += 1
    return counts


def scope_latency(editor: Any, queries: list[str]) -> dict[str, float]:
    """Whole-scope ms/query (encoder pass + index search + top-k rows), one query per call."""
    editor.route(queries[:2])  # warm
    times = []
    for query in queries:
        began = time.perf_counter()
        editor.route([query])
        times.append((time.perf_counter() - began) * 1000)
    return {"p50_ms": round(statistics.median(times), 2), "mean_ms": round(statistics.fmean(times), 2),
            "p90_ms": round(float(np.percentile(times, 90)), 2), "queries": len(times)}


def exact_agreement(scope: Any, store: Any, queries: list[str], real_ids: set[int]) -> dict[str, int]:
    """The index's nearest edit against the exact nearest (a brute-force scan of every stored vector):
    same edit, a different edit at the same score (a tie), and the cases that change which kind of edit
    is nearest (one of the real edits or a distractor), which is where an approximate-index miss could
    move a score."""
    vectors = scope.encoder.encode(queries)
    found_scores, found = scope.index.search(vectors, 1, 1)
    rows = np.arange(len(queries))
    best = np.full(len(queries), -np.inf)
    best_id = np.full(len(queries), -1, dtype=np.int64)
    for chunk in store.live_chunks(scope.encoder.id):
        scores = vectors @ np.asarray(chunk.vectors, dtype=np.float32).T
        top = scores.argmax(axis=1)
        better = scores[rows, top] > best
        best[better] = scores[rows, top][better]
        best_id[better] = np.asarray(chunk.ids)[top[better]]
    same = found[:, 0] == best_id
    tie = ~same & (np.abs(found_scores[:, 0] - best) < 1e-4)
    real_exact = np.isin(best_id, list(real_ids))
    real_found = np.isin(found[:, 0], list(real_ids))
    return {"same_top1": int(same.sum()), "tie": int(tie.sum()), "queries": len(queries),
            "exact_real_index_distractor": int(np.sum(real_exact & ~real_found)),
            "exact_distractor_index_real": int(np.sum(~real_exact & real_found))}


def condition(name: str, method: EditorMethod, models: Any, examples: list[Any], scored: list[int],
              dd_probes: list[Any], real_ids: set[int], latency_queries: list[str]) -> dict[str, Any]:
    """Score the scored edits with everything in ``method``'s store: the runner's observe()."""
    from serac.eval.runner import observe

    editor = method.editor
    began = time.perf_counter()
    editor.sync()
    sync_s = time.perf_counter() - began
    log(f"{name}: {editor.store.count():,} edits in memory, index {editor.scope.index.kind} "
        f"(first sync {sync_s:.1f} s); scoring")
    began = time.perf_counter()
    obs = observe(method, models, examples, range(len(examples)), scored, dd_probes, ("generation",))
    score_s = time.perf_counter() - began
    ids = {e.input: e.id for e in editor.store.get_many(sorted(real_ids)).values()}
    in_scope = [(p.input, ids.get(examples[i].edit_input)) for i in scored for p in examples[i].in_scope]
    routes = {
        "in_scope": route_kinds(editor, [p for p, _ in in_scope], [o for _, o in in_scope], real_ids),
        "locality": route_kinds(editor, [p.input for i in scored for p in examples[i].out_of_scope],
                                [None] * sum(len(examples[i].out_of_scope) for i in scored), real_ids),
        "dd": route_kinds(editor, [p.input for p in dd_probes], [None] * len(dd_probes), real_ids),
    }
    queries = [p for p, _ in in_scope] + [p.input for i in scored for p in examples[i].out_of_scope] + \
        [p.input for p in dd_probes]
    agreement = exact_agreement(editor.scope, editor.store, queries, real_ids)
    return {"name": name, "edits_in_memory": editor.store.count(), "index": editor.scope.index.kind,
            "index_top1_equals_exact": agreement,
            "first_sync_s": round(sync_s, 1), "score_s": round(score_s, 1), "obs": obs, "routes": routes,
            "scope_latency": scope_latency(editor, latency_queries)}


def rates(obs: Any) -> dict[str, dict[str, Any]]:
    """Generation scores of one condition with counts and 95% Wilson intervals."""
    from serac.eval.metrics import successes_of, wilson

    out = {}
    for score in obs.scores("counterfact", "serac-shipped", "sequential", 0):
        if score.scoring != "generation":
            continue
        k = successes_of(score.value, score.count)
        low, high = wilson(k, score.count)
        out[score.metric] = {"value": round(score.value, 4), "successes": k, "count": score.count,
                             "ci95": [round(low, 4), round(high, 4)]}
    return out


def flips(a: Any, b: Any) -> dict[str, dict[str, int]]:
    """Per item (the same inputs in both conditions): right in a only, right in b only."""
    from serac.eval.metrics import changed, exact_match

    def paired(xs: list[tuple[str, str]], ys: list[tuple[str, str]], good: Any) -> dict[str, int]:
        ga = [good(p, t) for p, t in xs]
        gb = [good(p, t) for p, t in ys]
        return {"a_only": sum(x and not y for x, y in zip(ga, gb)), "b_only": sum(y and not x for x, y in zip(ga, gb))}

    return {
        "es": paired(a.reliability + a.generalization, b.reliability + b.generalization, exact_match),
        # "good" for DD and locality: the answer is unchanged from the base model's
        "dd": paired(a.dd, b.dd, lambda p, t: not changed(p, t)),
        "locality": paired(a.locality, b.locality, lambda p, t: not changed(p, t)),
    }


def add_distractors(store: Any, distractors: list[Any], vectors: np.ndarray, encoder_id: str) -> float:
    """Store the distractors with their cached key vectors (``add_many`` in batches); seconds taken."""
    from tqdm.auto import tqdm

    from serac.edits import EditRequest

    began = time.perf_counter()
    with tqdm(total=len(distractors), desc="storing distractors", unit="edit", dynamic_ncols=True) as bar:
        for start in range(0, len(distractors), STORE_BATCH):
            part = distractors[start : start + STORE_BATCH]
            store.add_many([EditRequest(d.input, d.target) for d in part],
                           embeddings=(encoder_id, vectors[start : start + len(part)]))
            bar.update(len(part))
    return round(time.perf_counter() - began, 1)


def judge_words(report: dict[str, Any]) -> str:
    """The same-fact judge of a run (scope.same_fact_by), as the report's notes name it."""
    cosine = f"subject-masked MiniLM cosine >= {report.get('same_fact_threshold', 0.55)}"
    return {"verifier": "the scope verifier, both ways",
            "both": f"the scope verifier, both ways, and {cosine}"}.get(report.get("same_fact_by", "encoder"), cosine)


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    if args.render is not None:
        (args.out / "quality_at_scale.md").write_text(render(json.loads(args.render.read_text())))
        return

    from serac.data import load_counterfact, load_nq
    from serac.edits import EditRequest
    from serac.editor import DEFAULT_ARTIFACT, EditedModel, load_artifact_config
    from serac.eval.distractors import build_distractors
    from serac.eval.runner import sample_indices

    started = datetime.now(timezone.utc)
    began = time.perf_counter()
    examples = load_counterfact(args.data / EDIT_FILE, args.n_edits)
    source = load_counterfact(args.data / TRAIN_FILE) + load_counterfact(args.data / EDIT_FILE)
    scored = sample_indices(len(examples), args.scored, args.seed)
    distractors = build_distractors(source, examples, args.distractors, args.seed)
    scored_subjects = {examples[i].subject.casefold() for i in scored if examples[i].subject}
    about_scored = sum(d.subject.casefold() in scored_subjects for d in distractors)
    log(f"{len(distractors):,} distractors ({about_scored:,} about a scored edit's subject), "
        f"{len(examples):,} edits, {len(scored)} scored")

    if args.encode_only:
        from serac.scope import SentenceEncoder

        scope_config = load_artifact_config(DEFAULT_ARTIFACT).scope
        encoder = SentenceEncoder(scope_config.encoder, device=scope_config.device)
        encode_cached(encoder, [d.input for d in distractors], args.workdir)
        return

    from serac.eval.methods import EvalModels
    from serac.scope import ScopeClassifier

    editor = EditedModel.from_pretrained(None, store=fresh_store(args.workdir / "a.db"))
    config = editor.config
    if args.relation_first is not None:
        config = replace(config, scope=replace(config.scope, relation_first=args.relation_first))
        editor.scope.relation_first = args.relation_first
    judge = {k: v for k, v in (("same_fact_by", args.same_fact_by), ("same_fact_threshold", args.same_fact_threshold))
             if v is not None}
    if judge:
        config = replace(config, scope=replace(config.scope, **judge))
        editor.scope = ScopeClassifier.from_config(config.scope, encoder=editor.scope.encoder,
                                                   same_fact_encoder=editor.scope.same_fact.encoder,
                                                   reranker=editor.scope.reranker)
    editor.base.batch_size = 8  # the benchmark's (EvalModels.load); answers are memoised, so a/b/before agree
    models = EvalModels(editor.base, encoder=editor.scope.encoder, max_new_tokens=args.max_new_tokens,
                        base_spec=config.base.model)
    # Both conditions share the memoised base and counterfactual models (an answer is memoised on its
    # whole formatted prompt, the retrieved edit included, so a memo hit is the same computation).
    counterfactual = editor.counterfactual
    counterfactual.lm = models.cached(counterfactual.lm, "counterfactual", reuse_prefix=True)
    encoder = editor.scope.encoder
    pairs = [EditRequest(e.edit_input, e.edit_target) for e in examples]
    keys = (encoder.id, encoder.encode([r.input for r in pairs]))
    vectors = encode_cached(encoder, [d.input for d in distractors], args.workdir)
    stores = {"a": editor.store, "b": fresh_store(args.workdir / "b.db"), "c": fresh_store(args.workdir / "c.db")}
    real: dict[str, list[Any]] = {}
    insert_s = {}
    log("filling the stores: a the edits; b the edits, then the distractors; c the distractors, then the edits")
    for name, store in stores.items():
        if name == "c":
            insert_s[name] = add_distractors(store, distractors, vectors, encoder.id)
        real[name] = store.add_many(pairs, embeddings=keys)
        if name == "b":
            insert_s[name] = add_distractors(store, distractors, vectors, encoder.id)

    dd_probes = load_nq(args.data / NQ_FILE)
    random.Random(args.seed).shuffle(dd_probes)  # the benchmark's seeded order (load_task)
    dd_probes = dd_probes[: args.dd_sample]
    rng = random.Random(args.seed + 1)
    pool = [p.input for i in scored for p in examples[i].in_scope] + [p.input for p in dd_probes]
    latency_queries = rng.sample(pool, min(args.latency_queries, len(pool)))

    results = []
    for name, store in stores.items():
        scope = editor.scope if name == "a" else ScopeClassifier.from_config(
            config.scope, encoder=editor.scope.encoder, same_fact_encoder=editor.scope.same_fact.encoder,
            reranker=editor.scope.reranker)
        method = EditorMethod("serac-shipped", EditedModel(models.base, scope, counterfactual, store, config),
                              models.options)
        results.append(condition(name, method, models, examples, scored, dd_probes, {e.id for e in real[name]},
                                 latency_queries))
    report = {
        "command": "OMP_NUM_THREADS=1 nice -n 5 python scripts/quality_at_scale.py "
                   + " ".join(argv if argv is not None else sys.argv[1:]),
        "date": started.strftime("%Y-%m-%d %H:%M UTC"), "machine": MACHINE, "python": platform.python_version(),
        "commit": _commit(), "wall_s": round(time.perf_counter() - began, 1),
        "n_edits": len(examples), "scored": len(scored), "distractors": len(distractors),
        "relations": len({d.relation for d in distractors}),
        "distractors_about_scored_subjects": about_scored, "dd_questions": len(dd_probes), "seed": args.seed,
        "distractor_insert_s": insert_s, "scope_threshold": config.scope.threshold,
        "relation_first": config.scope.relation_first,
        "same_fact_by": config.scope.same_fact_by, "same_fact_threshold": config.scope.same_fact_threshold,
        "approximate_above": config.scope.approximate_above, "examples_of_distractors": [
            {"input": d.input, "target": d.target, "relation": d.relation} for d in distractors[:5]],
        "conditions": {r["name"]: {**{k: v for k, v in r.items() if k not in ("obs", "name")},
                                   "scores": rates(r["obs"]), "routing": r["obs"].routing()} for r in results},
        "paired": {r["name"]: flips(results[0]["obs"], r["obs"]) for r in results[1:]},
        "cache": models.cache_stats(),
    }
    a = report["conditions"]["a"]["scores"]
    report["difference_from_a"] = {
        r["name"]: {m: round(report["conditions"][r["name"]]["scores"][m]["value"] - a[m]["value"], 4) for m in a}
        for r in results[1:]}
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "quality_at_scale.json").write_text(json.dumps(report, indent=2) + "\n")
    (args.out / "quality_at_scale.md").write_text(render(report))
    log(f"wrote {args.out / 'quality_at_scale.md'} in {report['wall_s'] / 60:.1f} min")


def _commit() -> str | None:
    try:
        return subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=REPO, capture_output=True, text=True,
                              check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return None


def _rate(row: dict[str, Any] | None) -> str:
    if row is None:
        return "-"
    low, high = row["ci95"]
    return f"{row['value']:.3f} [{low:.2f}, {high:.2f}] ({row['successes']}/{row['count']})"


CONDITIONS = {"a": "a: the edits alone", "b": "b: + distractors, newer", "c": "c: + distractors, older"}
METRICS = (("es", "ES (prompts + rephrasings)"), ("reliability", "reliability (prompts)"),
           ("generalization", "generalization (rephrasings)"), ("dd", "DD (NQ-open; lower is better)"),
           ("locality", "locality (neighbourhood prompts)"))


def render(report: dict[str, Any]) -> str:
    conds = report["conditions"]
    names = list(conds)
    diff = report["difference_from_a"]
    n_d = report["distractors"]
    lines = [
        f"## Quality at scale: CounterFact edits among {n_d:,} real-text distractors (issue 13)",
        "",
        f"Command: `{report['command']}`  ",
        f"Date: {report['date']}; machine: {report['machine']}; commit {report['commit']}; "
        f"wall {report['wall_s'] / 60:.1f} min.",
        "",
        f"Editor: `EditedModel.from_pretrained(None)` (the shipped trained defaults: scope threshold "
        f"{report['scope_threshold']:.4f}, conflicts newest-wins, same-fact judge "
        f"{report.get('same_fact_by', 'encoder')} (cosine threshold {report.get('same_fact_threshold', 0.55)}), "
        f"relation_first {report.get('relation_first', 'off')}), one on-disk `EditStore` per condition, the "
        f"same base and counterfactual models. {report['n_edits']:,} CounterFact edits (the first of "
        f"counterfact-edit.json) in memory in every condition; {report['scored']} of them scored (a seeded "
        "sample): their prompts and rephrasings (ES), their neighbourhood prompts (locality); DD on "
        f"{report['dd_questions']} NQ-open questions; free generation, exact match "
        "(`serac.eval.runner.observe`, the benchmark's scoring)."
        + (" The scored count is below the planned 300 to fit the 10-minute bound on this loaded machine; the "
           "distractor count is not reduced." if report["scored"] < 300 else ""),
        "",
        f"- **a**: the {report['n_edits']:,} edits alone ({conds['a']['edits_in_memory']:,} in memory, "
        f"{conds['a']['index']} index).",
        f"- **b**: the edits, then {n_d:,} distractor edits added after them (newer) "
        f"({conds['b']['edits_in_memory']:,} in memory, **{conds['b']['index']} index**, `approximate_above` = "
        f"{report['approximate_above']:,}).",
        f"- **c**: the {n_d:,} distractors first, then the edits (the distractors older; "
        f"{conds['c']['index']} index).",
        f"- {report['distractors_about_scored_subjects']:,} distractors are about a scored edit's subject "
        "(another relation of it).",
        "",
        "| | " + " | ".join(CONDITIONS[n] for n in names) + " | " + " | ".join(f"{n} - a" for n in names[1:]) + " |",
        "|---" * (2 * len(names)) + "|",
    ]
    for key, label in METRICS:
        lines.append(f"| {label} | " + " | ".join(_rate(conds[n]["scores"].get(key)) for n in names) + " | "
                     + " | ".join(f"{diff[n][key] * 100:+.1f} pts" for n in names[1:]) + " |")
    for key, label in (("in_scope", "in-scope inputs"), ("locality", "neighbourhood prompts"), ("dd", "NQ questions")):
        cells = []
        for n in names:
            r = conds[n]["routes"][key]
            parts = [f"own edit {r['own_edit']}"] if key == "in_scope" else []
            parts += [f"other real edit {r['other_real_edit']}", f"distractor {r['distractor']}", f"base {r['base']}"]
            cells.append(", ".join(parts) + f" (of {sum(r.values())})")
        lines.append(f"| routing of {label} | " + " | ".join(cells) + " |" + " |" * (len(names) - 1))
    lat = [conds[n]["scope_latency"] for n in names]
    lines += [
        "| scope ms/query, p50 (mean), one query per call | "
        + " | ".join(f"{x['p50_ms']:.1f} ({x['mean_ms']:.1f})" for x in lat) + " |" + " |" * (len(names) - 1),
        "| index top-1 against an exact scan (all scored queries): same edit; tie at the same score; "
        "exact a real edit but index a distractor; the reverse | "
        + " | ".join("{same_top1}; {tie}; {exact_real_index_distractor}; {exact_distractor_index_real} (of {queries})"
                     .format(**conds[n]["index_top1_equals_exact"]) for n in names)
        + " |" + " |" * (len(names) - 1),
        "| first sync of the store (index build), s | " + " | ".join(str(conds[n]["first_sync_s"]) for n in names)
        + " |" + " |" * (len(names) - 1),
        "",
        "Paired (the same inputs in every condition): "
        + "; ".join(f"{n} vs a: ES right in a only {p['es']['a_only']}, in {n} only {p['es']['b_only']}; NQ answers "
                    f"unchanged in a only {p['dd']['a_only']}, in {n} only {p['dd']['b_only']}; neighbourhood answers "
                    f"unchanged in a only {p['locality']['a_only']}, in {n} only {p['locality']['b_only']}"
                    for n, p in report["paired"].items())
        + f". Storing the distractors (`add_many` in batches of {STORE_BATCH:,}, vectors given): "
        + ", ".join(f"{k} {v} s" for k, v in report["distractor_insert_s"].items()) + ".",
        "",
        *verdict(report),
    ]
    return "\n".join(lines) + "\n"


TARGET_POINTS = 2.0  # issue 13: ES and DD with the distractors within 2 points of the 1,000-edit memory


def verdict(report: dict[str, Any]) -> list[str]:
    """Whether the issue's target holds, and what the sample can and cannot say."""
    a = report["conditions"]["a"]["scores"]
    lines = [f"Target (issue 13): ES and DD by free generation within {TARGET_POINTS:g} points of the "
             f"{report['n_edits']:,}-edit memory."]
    for n, diff in report["difference_from_a"].items():
        for key, label in (("es", "ES"), ("dd", "DD")):
            points = diff[key] * 100
            held = "holds" if abs(points) <= TARGET_POINTS else "does NOT hold"
            lines.append(f"- {CONDITIONS[n]}: {label} {n} - a = {points:+.1f} points on {a[key]['count']} inputs: "
                         f"the target {held} on this sample.")
    b, c = report["conditions"]["b"]["routes"], report["conditions"]["c"]["routes"]
    lines += [
        "",
        "Notes:",
        f"- The difference is routing: an in-scope input taken by a distractor (b: {b['in_scope']['distractor']}) "
        f"or an out-of-scope input newly taken by an edit (b: neighbourhood prompts to a distractor "
        f"{b['locality']['distractor']}, NQ questions to a distractor {b['dd']['distractor']}). Answers "
        "otherwise come from the same memoised models in every condition, so an input routed to the same edit "
        "gets the same answer: the paired counts are the exact changes, and the columns' intervals are not "
        "independent samples.",
        "- Two causes, told apart by the order (b against c) and by the exact check: (1) retrieval: the "
        "shipped scope encoder scores a query about a subject at about 0.98-0.99 against an edit of *any* "
        "relation of that subject, so a rephrasing or a neighbourhood prompt lands on a distractor about its "
        f"subject (c, distractors older: in-scope inputs to a distractor {c['in_scope']['distractor']}, "
        f"neighbourhood prompts {c['locality']['distractor']}); the approximate index's part is bounded by the "
        "exact-scan row: where its nearest edit differs from the exact nearest, count how often that turns a "
        "real edit into a distractor. (2) the conflict policy (`conflicts: newest`, "
        "`ScopeClassifier._newest_first`): a newer in-scope candidate whose key is near the best match's and "
        f"which the same-fact judge ({judge_words(report)}) calls the same fact takes over, even "
        "from an edit whose input is the query itself; short templates of different relations of one subject "
        "(\"X, by\" / \"X, in\"; \"X works as\" / \"X worked in\") can pass that judge. With the distractors "
        f"newer (b) that adds {b['in_scope']['distractor'] - c['in_scope']['distractor']} in-scope inputs "
        "taken by a distractor, the edit prompts themselves among them (reliability row).",
        f"- The sample bounds the claim: every column scores the same {report['scored']} edits; 2 points is "
        f"{round(0.02 * a['es']['count'])} of {a['es']['count']} in-scope inputs and "
        f"{round(0.02 * a['dd']['count'])} of {a['dd']['count']} NQ questions.",
        "- Distractors (serac/eval/distractors.py) are CounterFact subjects crossed with CounterFact relation "
        "templates: relations are the templates linked through the records' neighbourhood prompts, and groups "
        "with nearly one answer vocabulary (the language relations) merged "
        f"({report.get('relations', 24)} relations; runs before 2026-12-02 split the language relations "
        "into 4, so some distractors re-edited a scored fact through another template); every (subject, "
        "relation) pair of the 1,000 edits and of their neighbourhood prompts' subjects is excluded; each pair is used once, with another record's answer for that relation as target. Many "
        "cross a subject with a relation that does not fit it (a person's capital city): real text and "
        "sentence shapes, not all plausible facts. Their keys are encoded by the editor's own scope encoder "
        "(the shipped trained delta of MiniLM), cached in --workdir.",
        "",
    ]
    return lines


if __name__ == "__main__":
    main()
