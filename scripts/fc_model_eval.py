"""Held-out accuracy of the FC (evidence, claim) classifier with gold evidence, and the FC editing
evaluation (ES / DD, batch k and sequential) on the VitaminC sample test and Fool Me Twice test with
it as the counterfactual model -> benchmarks/extra/fc_model.{md,json}.

    OMP_NUM_THREADS=1 python scripts/fc_model_eval.py --classifier /work/artifacts/fc_classifier \\
        --task-artifact FC_ARTIFACT   # from `serac train --task fc` (base + scope)

The editing evaluation is the evaluation runner's fc task (what `serac eval --task fc
--counterfactual CLASSIFIER` runs) with the FC artifact's base classifier and scope, and the new
classifier as the counterfactual model ("not enough info" defers to the base classifier: a label
the base lacks, see serac.counterfactual.PairClassifierCounterfactual).
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import platform
import random
import sys
import time
from collections import Counter
from datetime import datetime, timezone
from pathlib import Path

DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"
ACCURACY_SETS = {
    "vitaminc:test": ("vitaminc:test",),
    "fm2:test": ("fm2:test",),
    "symmetric_fever:dev+test": ("symmetric_fever:dev", "symmetric_fever:test"),
}


def _accuracy(predicted, gold) -> float:
    return sum(p == g for p, g in zip(predicted, gold)) / len(gold) if gold else float("nan")


def accuracy_rows(classifier, old_classifier, root: Path, vitaminc: Path, sets=tuple(ACCURACY_SETS),
                  sample: int | None = None) -> list[dict]:
    """3-way and supports/refutes accuracy per test set, with the majority baselines."""
    from serac.tasks.fc.corpora import load_split
    from serac.tasks.fc.data import DECIDED

    rows = []
    for name in sets:
        splits = ACCURACY_SETS[name]
        pairs = [p for split in splits for p in load_split(split, root, vitaminc)]
        if sample is not None and sample < len(pairs):
            pairs = random.Random(0).sample(pairs, sample)
        items = [(p.evidence, p.claim) for p in pairs]
        gold = [p.label for p in pairs]
        decided = [i for i, g in enumerate(gold) if g in DECIDED]
        gold_decided = [gold[i] for i in decided]
        probabilities = classifier.predict_proba(items)  # one pass: 3-way and decided readings
        three_way = [classifier.labels[int(i)] for i in probabilities.argmax(axis=1)]
        columns = [classifier.labels.index(label) for label in DECIDED]
        two_way = [DECIDED[int(i)] for i in probabilities[decided][:, columns].argmax(axis=1)]
        row = {
            "set": name,
            "n_pairs": len(pairs),
            "n_decided": len(decided),
            "labels": dict(Counter(gold)),
            "new_3way_accuracy": _accuracy(three_way, gold),
            "new_3way_accuracy_on_decided": _accuracy([three_way[i] for i in decided], gold_decided),
            "new_decided_accuracy": _accuracy(two_way, gold_decided),
            "new_predicted_labels": dict(Counter(three_way)),
            "majority_3way": max(Counter(gold).values()) / len(gold),
            "majority_decided": max(Counter(gold_decided).values()) / len(gold_decided),
        }
        if old_classifier is not None:
            row["old_decided_accuracy"] = _accuracy(old_classifier.predict([items[i] for i in decided]), gold_decided)
        rows.append(row)
        logging.info("accuracy %s", row)
    return rows


def editing_results(task_artifact: Path, classifier: Path, edits, name: str, methods, batch_sizes, limit,
                    modes=("batch", "sequential")):
    """Batch and sequential runs of the fc task on ``edits`` (the first ``limit`` edited, the claims of
    the rest the drawdown set), the new classifier plugged in as the counterfactual model. Sequential
    checkpoints: the batch sizes, then all ``limit`` edits."""
    from serac.editor import load_artifact_config
    from serac.eval.methods import EvalModels, MethodOptions, build_methods
    from serac.eval.runner import EvalSettings, Runner, Task
    from serac.tasks.fc.data import fc_task

    examples, dd_probes, dd_source = fc_task(edits, limit)
    task = Task("fc", examples, dd_probes, dd_source, ask_edit_input=False, probe_targets=True,
                scorings=("generation",))
    models = EvalModels.load(load_artifact_config(task_artifact).base.model, batch_size=32)
    options = MethodOptions(artifact=str(task_artifact), counterfactual=str(classifier))
    built = build_methods(methods, models, options, logging.warning)
    started = time.perf_counter()
    settings = {"batch": EvalSettings(mode="batch", batch_sizes=tuple(batch_sizes)),
                "sequential": EvalSettings(mode="sequential", cost=False,
                                           checkpoints=tuple(sorted({*batch_sizes, limit})))}
    results = [Runner(task, models, settings[mode]).run(built) for mode in modes]
    logging.info("editing %s: %.0fs", name, time.perf_counter() - started)
    return results


def merge(reports: list[dict]) -> dict:
    """One report from the reports of separate runs (run side by side on the shared machine):
    commands and dates joined, wall time the longest, accuracy and editing rows concatenated."""
    merged: dict = {"command": "`; `".join(r["command"] for r in reports),
                    "date": max(r["date"] for r in reports), "machine": reports[0]["machine"],
                    "seconds": max(r.get("seconds", 0.0) for r in reports), "accuracy": [], "editing": {},
                    "editing_counts": {}}
    for report in reports:
        merged.setdefault("training", report.get("training"))
        merged["accuracy"] += report.get("accuracy", [])
        merged["editing"].update(report.get("editing", {}))
        merged["editing_counts"].update(report.get("editing_counts", {}))
    return merged


def render(report: dict) -> str:
    """The markdown section (benchmarks/extra/fc_model.md) for a report from :func:`main`."""
    from serac.eval.report import markdown_run
    from serac.eval.results import RunResult

    lines = ["## FC: an (evidence, claim) classifier trained on public NLI and fact-verification pairs", "",
             f"Command: `{report['command']}` · date: {report['date']} · machine: {report['machine']} · "
             f"wall time: {report.get('seconds', float('nan')) / 60:.1f} min.", ""]
    training = report.get("training")
    if training:
        lines += ["**Training** (`scripts/train_fc_classifier.py`, MiniLM-L6 cross-encoder, 3 labels):", ""]
        for name, stage in training["stages"].items():
            lines.append(f"- {name}: {stage['n_pairs']:,} pairs from {', '.join(stage['splits'])} "
                         f"({', '.join(f'{k} {v:,}' for k, v in stage['labels'].items())}); {stage['steps']} steps, "
                         f"loss {stage['loss_first_50']:.3f} -> {stage['loss_last_50']:.3f}, "
                         f"{stage['seconds'] / 60:.1f} min")
        lines.append("")
    if report.get("accuracy"):
        lines += ["**Held-out accuracy with gold evidence** (the ceiling of FC edit success). 3-way: all "
                  "three labels; decided: supports/refutes pairs only, the classifier read as 2-way (the larger "
                  "of its supports/refutes probabilities). Old: the counterfactual classifier of "
                  "`serac train --task fc` (trained on the VitaminC sample's train files only).", "",
                  "| test set | pairs | decided | new 3-way | majority 3-way | new decided | old decided "
                  "| majority decided |", "|---|---:|---:|---:|---:|---:|---:|---:|"]
        for row in report["accuracy"]:
            old = row.get("old_decided_accuracy")
            lines.append(f"| {row['set']} | {row['n_pairs']:,} | {row['n_decided']:,} | {row['new_3way_accuracy']:.3f} "
                         f"| {row['majority_3way']:.3f} | {row['new_decided_accuracy']:.3f} | "
                         f"{'–' if old is None else f'{old:.3f}'} | {row['majority_decided']:.3f} |")
        lines.append("")
    for name, counts in report.get("editing_counts", {}).items():
        lines += [f"**Editing, {name}**: {counts['edits']:,} edits ({counts['edited']:,} edited, the claims of the "
                  f"rest are the drawdown set), {counts['in_scope_claims']:,} in-scope claims. Counterfactual: the new "
                  "classifier ('not enough info' defers to the base classifier); base and scope: the FC artifact's.",
                  ""]
        for run in report["editing"].get(name, []):
            lines.append(markdown_run(RunResult.from_json(run), "###"))
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--classifier", type=Path, required=True)
    parser.add_argument("--task-artifact", type=Path, help="FC artifact (base, scope, old counterfactual).")
    parser.add_argument("--data", type=Path, default=DATA / "fact_checking")
    parser.add_argument("--vitaminc", type=Path, default=DATA / "vitaminc_sample")
    parser.add_argument("--out", type=Path, default=Path("benchmarks/extra/fc_model.json"))
    parser.add_argument("--editing", nargs="*", default=["vitaminc", "fm2"], choices=["vitaminc", "fm2"])
    parser.add_argument("--methods", nargs="*", default=["serac", "icl", "ft"])
    parser.add_argument("--fm2-methods", nargs="*", help="Methods for FM2 (default: --methods).")
    parser.add_argument("--fm2-edits", type=int, help="Use the first N (shuffled) FM2 edits; default all.")
    parser.add_argument("--modes", nargs="*", default=["batch", "sequential"], choices=["batch", "sequential"])
    parser.add_argument("--skip-accuracy", action="store_true")
    parser.add_argument("--accuracy-sample", type=int, help="Score a seeded sample of N pairs per set.")
    parser.add_argument("--accuracy-sets", nargs="*", default=list(ACCURACY_SETS), choices=list(ACCURACY_SETS))
    parser.add_argument("--render", nargs="*", type=Path, metavar="JSON",
                        help="Only write --out (.json and .md) from these reports of separate runs, merged.")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    if args.render is not None:
        report = merge([json.loads(path.read_text()) for path in args.render or [args.out]])
        args.out.write_text(json.dumps(report, indent=1) + "\n")
        args.out.with_suffix(".md").write_text(render(report))
        return 0

    import torch

    from serac.base import load_text_model
    from serac.editor import load_artifact_config
    from serac.tasks.fc.corpora import fm2_edits, load_fm2, vitaminc_edits

    torch.set_num_threads(int(os.environ.get("OMP_NUM_THREADS", "1")))
    started = time.perf_counter()
    report: dict = {
        "command": "python " + " ".join([sys.argv[0], *(argv if argv is not None else sys.argv[1:])]),
        "date": datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "machine": f"{platform.system()} {platform.machine()}, {os.cpu_count()} CPU cores (shared with other "
                   "jobs), no GPU, 1 torch thread",
    }
    classifier = load_text_model(str(args.classifier), max_length=128, batch_size=32)
    old = (load_text_model(load_artifact_config(args.task_artifact).counterfactual.model, batch_size=32)
           if args.task_artifact else None)
    summary_file = args.classifier / "train_summary.json"
    if summary_file.exists():
        report["training"] = {k: v for k, v in json.loads(summary_file.read_text()).items()}
    if not args.skip_accuracy:
        report["accuracy"] = accuracy_rows(classifier, old, args.data, args.vitaminc, args.accuracy_sets,
                                           args.accuracy_sample)
    if args.task_artifact is not None and args.editing:
        report["editing"] = {}
        report["editing_counts"] = {}
        for name in args.editing:
            if name == "vitaminc":
                edits = vitaminc_edits(args.vitaminc).edits  # file order, as `serac tasks eval fc`
                methods = args.methods
            else:
                edits = fm2_edits(load_fm2(args.data, "test", keep_sentences=True), seed=0).edits[: args.fm2_edits]
                methods = args.fm2_methods or args.methods
            limit = round(len(edits) * 0.75)  # a quarter of the evidence is never edited: the drawdown set
            report["editing_counts"][name] = {
                "edits": len(edits), "edited": limit,
                "in_scope_claims": sum(len(e.in_scope) for e in edits[:limit]),
            }
            results = editing_results(args.task_artifact, args.classifier, edits, name, methods, (1, 5, 25, 75), limit,
                                      args.modes)
            report["editing"][name] = [r.to_json() for r in results]
            args.out.parent.mkdir(parents=True, exist_ok=True)
            args.out.write_text(json.dumps(report, indent=1) + "\n")  # partial results survive a kill
    report["seconds"] = time.perf_counter() - started
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=1) + "\n")
    args.out.with_suffix(".md").write_text(render(report))
    print(render(report))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
