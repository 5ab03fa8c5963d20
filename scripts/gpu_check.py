"""GPU speed check: does routing stay cheap when the base model runs on a GPU?

On a CPU the base model dominates every query, so the router's share is small (BENCHMARKS.md: 0.7%).
A GPU makes the base model far faster, while the scope's work (one encoder pass + a faiss search on
the CPU) shrinks less, so its share can grow. This script measures, on one machine, in one run:

- per-query latency of the base model alone vs the editor answering out-of-scope queries (scope +
  base) and in-scope queries (scope + counterfactual), interleaved, one query per call;
- the scope decision alone (index) vs re-encoding every stored edit per query (the O(N) scope);
- all with N stored edits (default 10,000).

The models have the real architectures and tokenizers (SmolLM2-135M-Instruct, all-MiniLM-L6-v2)
but random weights, built from their configs: latency does not depend on the weight values, and the
real weights do not fit the 64 MiB a lent GPU machine can be sent. Every answer is decoded to exactly
``--max-new-tokens`` tokens (random weights never stop early), so both sides do the same work.

    python scripts/gpu_check.py --shapes .gpucheck --edits 10000 --out benchmarks/extra

``--shapes`` holds ``smollm2/`` and ``minilm/`` (configs and tokenizers, no weights); make it with
``python scripts/gpu_check.py --make-shapes .gpucheck`` where the embedded models are installed.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Callable

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

LM_FILES = ("config.json", "generation_config.json", "tokenizer.json", "tokenizer_config.json", "chat_template.jinja")
ENCODER_FILES = ("config.json", "tokenizer.json", "tokenizer_config.json", "vocab.txt", "special_tokens_map.json",
                 "modules.json", "sentence_bert_config.json", "config_sentence_transformers.json", "1_Pooling")


def make_shapes(out: Path) -> None:
    """Copy the embedded models' configs and tokenizers (no weights) to ``out``."""
    from serac.models import resolve_model

    for name, spec, files in (("smollm2", "embedded:smollm2-135m-instruct", LM_FILES),
                              ("minilm", "embedded:all-minilm-l6-v2", ENCODER_FILES)):
        source, target = Path(resolve_model(spec)), out / name
        target.mkdir(parents=True, exist_ok=True)
        for file in files:
            if (source / file).is_dir():
                shutil.copytree(source / file, target / file, dirs_exist_ok=True)
            elif (source / file).exists():
                shutil.copy2(source / file, target / file)
    print(f"wrote {out}")


def random_weights(shapes: Path, work: Path) -> tuple[str, str]:
    """Save randomly initialised models with the shapes' configs; return (lm dir, encoder dir)."""
    import torch
    from transformers import AutoConfig, AutoModel, AutoModelForCausalLM

    torch.manual_seed(0)
    lm_dir, encoder_dir = work / "smollm2", work / "minilm"
    shutil.copytree(shapes / "smollm2", lm_dir)
    shutil.copytree(shapes / "minilm", encoder_dir)
    AutoModelForCausalLM.from_config(AutoConfig.from_pretrained(lm_dir)).save_pretrained(lm_dir)
    AutoModel.from_config(AutoConfig.from_pretrained(encoder_dir)).save_pretrained(encoder_dir)
    return str(lm_dir), str(encoder_dir)


def timed(fn: Callable[[], Any], sync: Callable[[], None]) -> float:
    began = time.perf_counter()
    fn()
    sync()
    return time.perf_counter() - began


def run(shapes: Path, n_edits: int, queries: int, max_new_tokens: int, device: str) -> dict[str, Any]:
    import torch

    from serac.base import GenerationOptions, load_text_model
    from serac.counterfactual import LMCounterfactual
    from serac.editor import EditedModel
    from serac.eval.cost import reencode_decide
    from serac.scope import ScopeClassifier, SentenceEncoder
    from serac.store import EditStore

    sync = torch.cuda.synchronize if device.startswith("cuda") else (lambda: None)
    work = Path(tempfile.mkdtemp())
    lm_dir, encoder_dir = random_weights(shapes, work)
    # random weights never emit EOS early; the floor makes every call decode the same length
    options = GenerationOptions(max_new_tokens=max_new_tokens)
    base = load_text_model(lm_dir, max_new_tokens=max_new_tokens, device=device)
    base.model.generation_config.min_new_tokens = max_new_tokens
    counterfactual = LMCounterfactual(load_text_model(lm_dir, max_new_tokens=max_new_tokens, device=device),
                                      prompt="trained")
    counterfactual.lm.model.generation_config.min_new_tokens = max_new_tokens
    encoder = SentenceEncoder(encoder_dir, device=device)
    store = EditStore(str(work / "edits.db"))
    subjects = ["river", "bridge", "novel", "painter", "league", "island", "opera", "engine", "temple", "comet"]
    edits = [(f"Who designed the {subjects[i % 10]} number {i} in region {i // 10}?", f"Person {i}")
             for i in range(n_edits)]
    began = time.perf_counter()
    store.add_many(edits)
    insert_s = time.perf_counter() - began
    # threshold above any cosine: every query out of scope (scope runs, base answers); below any: in scope
    outside = EditedModel(base, ScopeClassifier(encoder, threshold=1.01), counterfactual, store)
    inside = EditedModel(base, ScopeClassifier(encoder, threshold=-1.01), counterfactual, store)
    began = time.perf_counter()
    outside.route(["warm-up"])  # embeds and indexes every stored edit once
    index_build_s = time.perf_counter() - began
    inside.route(["warm-up"])  # reuses the vectors cached in the store
    asked = [f"Which {subjects[i % 10]} was finished in the year {1800 + i}?" for i in range(queries)]
    for fn in (lambda: base.generate(asked[:1], options), lambda: outside.generate(asked[:1], options),
               lambda: inside.generate(asked[:1], options)):
        fn()
    sync()
    rows: dict[str, list[float]] = {"base": [], "serac_out_of_scope": [], "serac_in_scope": []}
    for i, query in enumerate(asked):  # interleaved, rotating the order, so drift hits all three alike
        calls = [("base", lambda: base.generate([query], options)),
                 ("serac_out_of_scope", lambda: outside.generate([query], options)),
                 ("serac_in_scope", lambda: inside.generate([query], options))]
        for name, fn in calls[i % 3:] + calls[: i % 3]:
            rows[name].append(timed(fn, sync))
    assert all(a.source == "base" for a in outside.generate(asked[:2], options))
    assert all(a.source == "counterfactual" for a in inside.generate(asked[:2], options))
    scope_s = [timed(lambda q=q: outside.scope.decide([q]), sync) for q in asked]
    edit_inputs = [e[0] for e in edits]
    reencode_s = [timed(lambda q=q: reencode_decide(encoder, edit_inputs, q), sync) for q in asked[:3]]
    batch = asked[: min(32, queries)]
    base_batch = timed(lambda: base.generate(batch, options), sync)
    serac_batch = timed(lambda: outside.generate(batch, options), sync)
    ms = lambda values: round(1000 * statistics.median(values), 2)  # noqa: E731
    result = {
        "device": (torch.cuda.get_device_name(0) if device.startswith("cuda")
                   else f"CPU, {os.cpu_count()} cores, {torch.get_num_threads()} torch threads"),
        "torch": torch.__version__,
        "n_edits": n_edits,
        "queries": queries,
        "max_new_tokens": max_new_tokens,
        "insert_edits_per_s": round(n_edits / insert_s, 1),
        "index_build_s": round(index_build_s, 2),
        "median_ms": {name: ms(values) for name, values in rows.items()},
        "scope_decision_ms": ms(scope_s),
        "reencode_decision_ms": ms(reencode_s),
        "batch_of_32_s": {"base": round(base_batch, 3), "serac_out_of_scope": round(serac_batch, 3)},
    }
    base_ms = statistics.median(rows["base"])
    result["overhead_out_of_scope"] = round(statistics.median(rows["serac_out_of_scope"]) / base_ms - 1, 4)
    result["latency_ratio_in_scope"] = round(statistics.median(rows["serac_in_scope"]) / base_ms, 4)
    result["scope_share_of_base"] = round(statistics.median(scope_s) / base_ms, 4)
    result["speedup_vs_reencode"] = round(statistics.median(reencode_s) / statistics.median(scope_s), 1)
    return result


def markdown(results: list[dict[str, Any]], command: str, date: str) -> str:
    lines = [
        "## GPU speed check (random weights, real shapes)",
        "",
        f"Command: `{command}` on {date}. Models: SmolLM2-135M-Instruct and all-MiniLM-L6-v2 architectures and "
        "tokenizers with random weights (latency does not depend on weight values); every answer decoded to the "
        "same length. Medians over single-query calls, interleaved.",
        "",
        "| device | edits stored | base ms/query | serac out-of-scope ms | overhead | serac in-scope ms "
        "| scope decision ms | re-encode ms | speedup vs re-encode | batch of 32: base s / serac s |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---|",
    ]
    for r in results:
        m = r["median_ms"]
        lines.append(
            f"| {r['device']} | {r['n_edits']:,} | {m['base']} | {m['serac_out_of_scope']} | "
            f"{100 * r['overhead_out_of_scope']:+.1f}% | {m['serac_in_scope']} | {r['scope_decision_ms']} | "
            f"{r['reencode_decision_ms']} | {r['speedup_vs_reencode']}x | "
            f"{r['batch_of_32_s']['base']} / {r['batch_of_32_s']['serac_out_of_scope']} |")
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--make-shapes", type=Path, help="write configs + tokenizers of the embedded models here")
    parser.add_argument("--shapes", type=Path, default=REPO / ".gpucheck")
    parser.add_argument("--edits", type=int, default=10_000)
    parser.add_argument("--queries", type=int, default=30)
    parser.add_argument("--max-new-tokens", type=int, default=16)
    parser.add_argument("--devices", default="cuda", help="comma-separated, e.g. cuda,cpu")
    parser.add_argument("--out", type=Path, default=REPO / "benchmarks" / "extra")
    args = parser.parse_args()
    if args.make_shapes:
        make_shapes(args.make_shapes)
        return
    results = [run(args.shapes, args.edits, args.queries, args.max_new_tokens, d) for d in args.devices.split(",")]
    command = "python scripts/gpu_check.py " + " ".join(sys.argv[1:])
    date = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "gpu_check.json").write_text(json.dumps({"command": command, "date": date, "results": results},
                                                        indent=2) + "\n")
    (args.out / "gpu_check.md").write_text(markdown(results, command, date))
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
