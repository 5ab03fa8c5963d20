"""``serac bench`` (what ``make bench`` runs): the standard evaluation set, written to BENCHMARKS.md,
``benchmarks/results.json`` (rows), ``benchmarks/details.json`` (sample sizes, routing, timings) and
``benchmarks/*.png``. Fragments other commands leave in ``benchmarks/extra/*.md`` (server load test,
training report) are included, so this is the one writer of BENCHMARKS.md.

Sizes were chosen to finish in about an hour on a 2-core CPU for serac and the paper's baselines; grace
and mend (per-edit optimisation / gradient steps) add about two hours more there, so ``--methods``
runs a subset and merges its rows into the saved results. Every sample is stated in the report.
"""

from __future__ import annotations

import json
import os
import shlex
import sys
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from serac.baselines.grace import COUNTERFACT_EPSILON
from serac.config import ScopeConfig
from serac.errors import ConfigError
from serac.eval.methods import METHODS, EvalModels, MethodOptions, build_methods
from serac.eval.merge import merge_runs
from serac.eval.report import machine, markdown_run, plot_run
from serac.eval.results import RunResult
from serac.eval.runner import EvalSettings, Runner, load_task, progress_bar

NQ_FILE = "nq_open/NQ-open.dev.jsonl"


@dataclass(frozen=True)
class Part:
    name: str
    task: str
    file: str  # relative to the data directory; "" for a task's own default (sentiment's built data)
    settings: EvalSettings
    methods: tuple[str, ...]
    dd_sample: int  # NQ-open drawdown questions; 0 for fc and sentiment, which bring their own drawdown sets
    grace_epsilon: float | None = None  # grace's deferral radius on this dataset (None: GraceConfig's default)


OWN_ARTIFACT_TASKS = ("fc", "sentiment")  # edited through their own `serac train --task` artifact and base model


_ALL = ("serac", "serac-untrained", "ft", "lu", "icl", "mend", "grace")
# Sizes: about an hour on a shared 2-core CPU. ft is capped at 10 edits (MethodOptions.ft_max_edits):
# it fine-tunes per batch. lu is capped at 1,000 CounterFact edits: its keys cost a base-model forward
# pass each (~0.07 s per key measured here: 10,000 keys alone would take ~12 min of the hour). mend is
# capped at 1,000 CounterFact edits likewise: each apply call is a forward and backward pass. grace is
# capped at 1,000 CounterFact edits: each new key's value is optimised (~0.7 s of CPU per edit, see
# serac/eval/README.md). The drawdown sets are prefixes of one seeded NQ-open order, so the base model's
# answers to them are computed once for all parts.
STANDARD_PARTS: tuple[Part, ...] = (
    Part("zsre-batch", "zsre", "zsre/zsre_mend_eval_portability_gpt4.json",
         EvalSettings(mode="batch", n_edits=75, batch_sizes=(1, 5, 25, 75)), _ALL, dd_sample=50),
    Part("zsre-sequential", "zsre", "zsre/zsre_mend_eval_portability_gpt4.json",
         EvalSettings(mode="sequential", checkpoints=(10, 100, 1037), sample=100, apply_batch=1),
         (*_ALL, "serac-shipped"), dd_sample=100),
    Part("counterfact-sequential", "counterfact", "counterfact/counterfact-edit.json",
         EvalSettings(mode="sequential", checkpoints=(10, 100, 1000, 10000), sample=50, apply_batch=10,
                      method_caps={"lu": 1000, "mend": 1000, "grace": 1000}),
         ("serac", "serac-shipped", "serac-untrained", "ft", "lu", "icl", "mend", "grace"), dd_sample=100,
         grace_epsilon=COUNTERFACT_EPSILON),
    # fc: 75 VitaminC test evidence are the edits, the claims of the other 25 the drawdown set
    Part("fc-batch", "fc", "vitaminc_sample",
         EvalSettings(mode="batch", n_edits=75, batch_sizes=(1, 5, 25, 75), scorings=("generation",)),
         ("serac", "icl", "ft", "base"), dd_sample=0),
    Part("fc-sequential", "fc", "vitaminc_sample",
         EvalSettings(mode="sequential", checkpoints=(1, 5, 25, 75), scorings=("generation",), cost=False),
         ("serac", "icl", "ft"), dd_sample=0),
    # sentiment: the data `serac train --task sentiment` built ($SERAC_HOME/tasks/sentiment-data)
    Part("sentiment-batch", "sentiment", "",
         EvalSettings(mode="batch", n_edits=75, batch_sizes=(1, 5, 25, 75), scorings=("generation",)),
         ("serac", "icl", "ft"), dd_sample=0),
    Part("sentiment-sequential", "sentiment", "",
         EvalSettings(mode="sequential", checkpoints=(1, 5, 25, 75), scorings=("generation",), cost=False),
         ("serac", "icl", "ft"), dd_sample=0),
)


def resized_parts(parts: Sequence[Part], sample: int | None, dd_sample: int | None,
                  checkpoints: Sequence[int] | None = None, batch_sizes: Sequence[int] | None = None) -> list[Part]:
    """Override the scored-edit sample and the N values (sequential parts), the k values (batch
    parts) and the drawdown-set size of every part."""
    out = []
    for part in parts:
        settings = part.settings
        if settings.mode == "batch" and batch_sizes:
            settings = replace(settings, batch_sizes=tuple(batch_sizes))
        if settings.mode == "sequential":
            if sample is not None:
                settings = replace(settings, sample=sample)
            if checkpoints:
                settings = replace(settings, checkpoints=tuple(checkpoints))
        out.append(replace(part, settings=settings, dd_sample=(dd_sample or part.dd_sample) if part.dd_sample else 0))
    return out


def only_methods(parts: Sequence[Part], methods: Sequence[str]) -> list[Part]:
    """The parts with only ``methods`` among their own (same settings and samples); parts left with
    none are dropped."""
    unknown = [m for m in methods if m not in METHODS]
    if unknown:
        raise ConfigError(f"unknown method(s) {unknown}; valid: {', '.join(METHODS)}")
    out = [replace(p, methods=tuple(m for m in p.methods if m in methods)) for p in parts]
    out = [p for p in out if p.methods]
    if not out:
        raise ConfigError(f"no chosen part runs {', '.join(methods)}; parts and their methods: "
                          + "; ".join(f"{p.name}: {', '.join(p.methods)}" for p in parts))
    return out


def quick_parts(parts: Sequence[Part]) -> list[Part]:
    """The same parts at smoke-test sizes (a few minutes)."""
    out = []
    for part in parts:
        s = part.settings
        if s.mode == "batch":
            settings = replace(s, n_edits=4, batch_sizes=(1, 4))
        else:
            settings = replace(s, checkpoints=(5, 20), n_edits=20, sample=4, latency_queries=2)
        out.append(replace(part, settings=settings, dd_sample=4 if part.dd_sample else 0))
    return out


def run_bench(
    data_dir: Path,
    out: Path,
    doc: Path,
    *,
    parts: Sequence[str] | None = None,
    methods: Sequence[str] | None = None,
    quick: bool = False,
    sample: int | None = None,
    dd_sample: int | None = None,
    checkpoints: Sequence[int] | None = None,
    batch_sizes: Sequence[int] | None = None,
    artifact: str | None = None,
    grace_epsilon: float | None = None,
    console: Any = None,
    err_console: Any = None,
    models: EvalModels | None = None,
) -> list[RunResult]:
    chosen = list(STANDARD_PARTS)
    if parts:
        unknown = [p for p in parts if p not in {q.name for q in STANDARD_PARTS}]
        if unknown:
            raise ConfigError(f"unknown bench part(s) {unknown}; valid: {', '.join(p.name for p in STANDARD_PARTS)}")
        chosen = [p for p in chosen if p.name in parts]
    if methods:
        chosen = only_methods(chosen, methods)
    if quick:
        chosen = quick_parts(chosen)
    if sample or dd_sample or checkpoints or batch_sizes:
        chosen = resized_parts(chosen, sample, dd_sample, checkpoints, batch_sizes)
    if grace_epsilon is not None:  # one radius for every part (e.g. zsRE's on CounterFact, for comparison)
        chosen = [replace(p, grace_epsilon=grace_epsilon) if "grace" in p.methods else p for p in chosen]
    for part in chosen:
        if part.file and not (data_dir / part.file).exists():
            raise ConfigError(f"{data_dir / part.file} not found; pass --data-dir (or SERAC_DATA) pointing at the "
                              "folder holding zsre/, counterfact/, nq_open/ and vitaminc_sample/")
    say = console.print if console else print
    warn = (lambda m: err_console.print(f"[yellow]{m}[/yellow]")) if err_console else print
    began = time.perf_counter()
    started = datetime.now(UTC)
    command = "serac bench " + " ".join(shlex.quote(a) for a in sys.argv[2:]) if sys.argv[1:2] == ["bench"] else "serac bench"
    load_began = time.perf_counter()
    qa_parts = [p for p in chosen if p.task not in OWN_ARTIFACT_TASKS]
    groups: dict[str, tuple[EvalModels, MethodOptions]] = {}  # "qa", "fc", "sentiment": models and options
    if qa_parts:
        groups["qa"] = (models or EvalModels.load(), MethodOptions(artifact=artifact))
    for task_name in dict.fromkeys(p.task for p in chosen if p.task in OWN_ARTIFACT_TASKS):
        group = _task_group(task_name, warn)
        if group is not None:
            groups[task_name] = group
    load_s = time.perf_counter() - load_began
    missing = [p.name for p in chosen if _group(p) not in groups]
    chosen = [p for p in chosen if _group(p) in groups]
    built: dict[tuple[str, str], Any] = {}
    for key, (group_models, options) in groups.items():
        names = list(dict.fromkeys(n for p in chosen for n in p.methods if _group(p) == key))
        built.update({(key, m.name): m for m in build_methods(names, group_models, options, warn)})
    wanted = list(dict.fromkeys((_group(p), n) for p in chosen for n in p.methods))
    skipped = [f"{n} ({g})" if g != "qa" else n for g, n in wanted if (g, n) not in built] + [
        f"part {name} (no task artifact)" for name in missing]
    options = groups["qa"][1] if "qa" in groups else MethodOptions(artifact=artifact)
    results: list[RunResult] = []
    part_times: list[tuple[Part, float]] = []
    out.mkdir(parents=True, exist_ok=True)
    for part in chosen:
        models = groups[_group(part)][0]
        limit = part.settings.n_edits if part.settings.mode == "batch" else max(part.settings.checkpoints or (0,)) or None
        own = part.task in OWN_ARTIFACT_TASKS
        task = load_task(part.task, (data_dir / part.file) if part.file else None, limit=limit,
                         dd_path=None if own else data_dir / NQ_FILE, dd_sample=part.dd_sample or None,
                         seed=part.settings.seed)
        to_run = [built[(_group(part), n)] for n in part.methods if (_group(part), n) in built]
        own_methods = [part_method(m, part, models, groups[_group(part)][1]) for m in to_run]
        fresh = [m for m, o in zip(to_run, own_methods) if m is not o]
        to_run = own_methods
        runner = Runner(task, models, part.settings)
        bar = progress_bar(runner.steps(to_run), part.name)
        runner.progress = bar
        models.progress = lambda what, done, total, bar=bar: bar.set_postfix_str(f"{what} {done}/{total}", refresh=True)
        try:
            result = runner.run(to_run)
        finally:
            bar.close()
            models.progress = None
            for method in fresh:
                method.close()
        results.append(result)
        part_times.append((part, result.wall_s))
        write_outputs(results, part_times, out, doc, started=started, command=command, wall_s=time.perf_counter() - began,
                      load_s=load_s, skipped=skipped, finished=len(results) == len(chosen), quick=quick, options=options,
                      merge=bool(methods))
        say(f"{part.name}: {result.wall_s / 60:.1f} min")
    say(f"wrote {doc}, {out / 'results.json'} in {(time.perf_counter() - began) / 60:.1f} min")
    return results


def part_method(method: Any, part: Part, models: EvalModels, options: MethodOptions) -> Any:
    """``method`` as ``part`` runs it: a grace with the part's own deferral radius when the part sets
    one (a new method on the same base model; the caller closes it after the part), else ``method``."""
    if method.name != "grace" or part.grace_epsilon is None or part.grace_epsilon == options.grace.epsilon:
        return method
    return METHODS["grace"](models, replace(options, grace=replace(options.grace, epsilon=part.grace_epsilon)))


def _group(part: Part) -> str:
    return part.task if part.task in OWN_ARTIFACT_TASKS else "qa"


def _task_group(task: str, warn: Any) -> tuple[EvalModels, MethodOptions] | None:
    """The models and options of a task with its own artifact (``$SERAC_HOME/tasks/TASK``): its base
    model is the artifact's. None, with a warning, when the artifact is missing."""
    from serac.editor import CONFIG_FILE, load_artifact_config
    from serac.models import default_artifact

    directory = default_artifact(task)
    if not (directory / CONFIG_FILE).exists():
        warn(f"skipping the {task} parts: {directory} has no {CONFIG_FILE}; run `serac train --task {task}` first")
        return None
    config = load_artifact_config(directory)
    max_new = 32 if task == "sentiment" else 16
    return EvalModels.load(config.base.model, max_new_tokens=max_new), MethodOptions(artifact=str(directory))


def write_outputs(
    results: Sequence[RunResult],
    part_times: Sequence[tuple[Part, float]],
    out: Path,
    doc: Path,
    *,
    started: datetime,
    command: str,
    wall_s: float,
    load_s: float,
    skipped: Sequence[str],
    finished: bool,
    quick: bool,
    options: MethodOptions | None = None,
    merge: bool = False,
) -> None:
    """Save a run's ``results.json``, ``details.json`` and ``run.json`` in ``out`` and render ``doc``.
    ``merge``: the run's rows replace those of the same part and method in the saved files and the
    other rows stay (a run of some methods: ``serac bench --methods``; see :mod:`serac.eval.merge`)."""
    run = {"started": started.isoformat(), "command": command, "wall_s": round(wall_s, 1), "load_s": round(load_s, 1),
           "skipped": list(skipped), "finished": finished, "quick": quick, "machine": machine(),
           "parts": [{"name": p.name, "task": p.task, "file": p.file, "methods": list(p.methods),
                      "dd_sample": p.dd_sample, "settings": asdict(p.settings), "wall_s": round(t, 1),
                      **({"grace_epsilon": p.grace_epsilon} if p.grace_epsilon is not None and "grace" in p.methods
                         else {})}
                     for p, t in part_times]}
    saved: tuple[dict[str, Any], list[RunResult]] = (run, list(results))
    if merge and (out / "run.json").exists():
        saved = merge_runs(load_saved(out), saved)
    save_and_render(*saved, out, doc, options or MethodOptions())


def load_saved(out: Path) -> tuple[dict[str, Any], list[RunResult]]:
    """A bench's saved ``run.json`` and its parts' results (``details.json``)."""
    try:
        run = json.loads((out / "run.json").read_text())
        results = [RunResult.from_json(r) for r in json.loads((out / "details.json").read_text())]
    except FileNotFoundError as exc:
        raise ConfigError(f"{exc.filename} not found: run `serac bench` first (it writes run.json and "
                          "details.json)") from None
    if len(results) != len(run["parts"]):
        raise ConfigError(f"{out}: run.json lists {len(run['parts'])} parts but details.json holds {len(results)} "
                          "results; re-run `serac bench` to rewrite both")
    return run, results


def save_and_render(run: dict[str, Any], results: Sequence[RunResult], out: Path, doc: Path,
                    options: MethodOptions) -> None:
    out.mkdir(parents=True, exist_ok=True)
    rows = [row for r in results for row in r.rows()]
    (out / "results.json").write_text(json.dumps(rows, indent=1) + "\n")
    (out / "details.json").write_text(json.dumps([r.to_json() for r in results], indent=1) + "\n")
    (out / "run.json").write_text(json.dumps(run, indent=1) + "\n")
    render(results, _part_times(run), out, doc, run, options)


def run_part(run: dict[str, Any], name: str) -> dict[str, Any]:
    """The saved description of part ``name`` in ``run`` ({} if absent)."""
    return next((p for p in run.get("parts", []) if p["name"] == name), {})


def _part_times(run: dict[str, Any]) -> list[tuple[Part, float]]:
    return [(Part(p["name"], p["task"], p["file"], EvalSettings(**p["settings"]), tuple(p["methods"]),
                  p["dd_sample"], p.get("grace_epsilon")), p["wall_s"]) for p in run["parts"]]


def render_saved(out: Path, doc: Path) -> None:
    """Rewrite ``doc`` from a finished bench's saved files (``results`` details and ``run.json``), e.g.
    after a fragment in ``benchmarks/extra/`` changed; no model is loaded and nothing is re-measured."""
    run, results = load_saved(out)
    render(results, _part_times(run), out, doc, run, MethodOptions())


def merge_saved(source: Path, out: Path, doc: Path) -> None:
    """Merge the saved results of a bench run in ``source`` (e.g. ``serac bench --methods grace --out
    DIR``, run elsewhere or in parallel) into those in ``out``, and re-render ``doc``."""
    new = load_saved(source)
    merged = merge_runs(load_saved(out), new) if (out / "run.json").exists() else new
    save_and_render(*merged, out, doc, MethodOptions())


def render(
    results: Sequence[RunResult],
    part_times: Sequence[tuple[Part, float]],
    out: Path,
    doc: Path,
    run: dict[str, Any],
    options: MethodOptions,
) -> None:
    started = datetime.fromisoformat(run["started"])
    command, wall_s, load_s = run["command"], run["wall_s"], run["load_s"]
    skipped, finished, quick = run["skipped"], run["finished"], run["quick"]
    plots = [plot_run(r, out / f"{r.task}_{r.mode}.png") for r in results]
    info = run["machine"]
    lines = [
        "# Benchmarks",
        "",
        f"Generated by `make bench` (`{command}`){' with --quick (smoke-test sizes, not results)' if quick else ''}, "
        f"started {started.strftime('%Y-%m-%d %H:%M')} UTC; "
        + (f"total wall time {wall_s / 60:.1f} min." if finished else f"**in progress** ({wall_s / 60:.1f} min so far)."),
        "",
        f"Machine: {info['cpu']}, {info['cores']} cores, {info['ram_gb']} GB RAM; torch {info['torch']} "
        f"({info['torch_threads']} threads), Python {info['python']}. Shared with other jobs, so timings are noisy; "
        "latency ratios are measured interleaved to cancel that out.",
        "",
        "Numbers: `benchmarks/results.json` (rows `{task, method, mode, n_edits, scoring, metric, value}`); "
        "sample sizes, routing and timings: `benchmarks/details.json`.",
        "",
        "## What is measured",
        "",
        "- **Base model** for every method: SmolLM2-135M-Instruct (embedded), greedy decoding, at most 16 new "
        "tokens, chat template. **Scope encoder**: all-MiniLM-L6-v2.",
        "- **Methods**: `serac` (a `serac train` artifact), `serac-shipped` (the trained defaults shipped in the "
        "package: that artifact compacted to 3.2 MB by `serac compact`), `serac-untrained` (`SeracConfig()`: pretrained MiniLM "
        f"scope at cosine {ScopeConfig.threshold:.2f}, few-shot prompted counterfactual), `ft` (fine-tuning a copy "
        f"of the base model on the edits, AdamW lr {options.ft_lr:g}, up to {options.ft_steps} steps), `lu` (lookup "
        f"cache on the base model's mean last hidden state, cosine >= {options.lu_threshold:.2f}, returns the edit's "
        "target verbatim), `icl` (nearest edit by MiniLM prepended to every prompt as `New fact: {input} {target}`, "
        "no scope decision), `grace` (GRACE: a codebook at decoder block "
        f"{'24 of 30 (4/5 of the depth)' if options.grace.layer is None else options.grace.layer} of the base model, "
        f"initial deferral radius {options.grace.epsilon:g} (a per-dataset hyper-parameter: a part with its own "
        f"radius says so in the table of parts), each new value optimised by up to {options.grace.steps} "
        f"Adam steps at lr {options.grace.lr:g}). Details: `serac/eval/README.md`.",
        "- **Generation scores** (the headline): exact match of the normalised first line of the answer with the "
        "normalised target (NFKC, case-folded, dashes and `/` to spaces, other punctuation deleted, articles "
        "a/an/the dropped, whitespace collapsed). The instruct base model often answers in full sentences, which "
        "never exact-match: that is what ES of the base model is.",
        "- **Teacher-forced scores**: share of the target's tokens predicted as argmax given the gold prefix; for "
        "out-of-scope inputs the target is the base model's own greedy answer.",
        "- **ES** (SERAC): in-scope inputs (edit inputs and rephrasings) answered with the edit's target. "
        "**Reliability** / **generalization** (EasyEdit): the same on edit inputs / rephrasings alone. "
        "**Locality**: the dataset's out-of-scope inputs of the scored edits (zsRE: an NQ question; CounterFact: "
        "same relation, another subject) whose answer is unchanged from the unedited base model; **locality, "
        "uncovered**: the same on the prompts no edit in memory asks (CounterFact: a neighbourhood prompt whose "
        "(subject, relation) another stored edit changes is in that edit's scope, and its answer should change). "
        "**DD** (SERAC): "
        "the share of an independent set of NQ-open questions whose answer changed.",
        "- **Conflicts**: the 1,037 zsRE edits hold 743 distinct facts (`serac.data.fact_key`); conflicting edits "
        "phrase the question differently. *Per-record* scores use each record's own target; *conflict-aware* scores "
        "(`es_conflict_aware`, and `reliability_conflict_aware` / `generalization_conflict_aware` on edit inputs / "
        "rephrasings alone) expect the target of the "
        "newest applied edit of the same fact (CounterFact runs from 2026-12-02 on: the same subject and relation, "
        "`serac.eval.runner.conflict_key`, since some records edit one multi-valued relation of one subject, e.g. "
        "\"Saint Petersburg is a twin city of\", twice from two true answers with the same input; rows measured "
        "before, such as a counterfact-sequential table older than that, use `fact_key` and count those as two "
        "facts). serac's policy (`scope.conflicts = \"newest\"`): an edit on the same "
        "input (case and whitespace folded) supersedes the older one; among differently phrased edits of one fact "
        "(each edit's input in scope of the other's), the newest answers. So serac aims at the conflict-aware "
        "score, and per-record scores count the superseded edits' targets as misses.",
        "- **Batch**: memory emptied before each batch of k edits; every k scores the same first edits. "
        "**Sequential**: edits accumulate; at each N a seeded sample of the first N edits is scored (the same "
        "sample for every method).",
        "- **fc** (fact-checking, VitaminC sample test): base = a claim classifier, counterfactual = an (evidence, "
        "claim) pair classifier, both from the `serac train --task fc` artifact; an edit is a piece of evidence, "
        "in-scope inputs are the claims it decides (ES: the claim gets its gold label), locality its \"not enough "
        "info\" claims, DD the claims of 25 pieces of evidence never edited (label changed vs the base classifier). "
        "`icl` there: the pair classifier reads every claim with its nearest evidence (no scope decision); `ft`: "
        "fine-tuning a copy of the base classifier on (evidence -> supports).",
        "- **sentiment** (ConvSent-style): base = SmolLM2; an edit is `Topic: X -> Sentiment: s`; in-scope inputs "
        "are opinion prompts about X, whose reply VADER must label s (ES); DD: prompts about topics never edited "
        "whose reply changed. Data and counterfactual: `serac train --task sentiment`.",
        "- **Cost**: `edits_per_s` = edits applied per second of `apply` time; `latency_ratio_vs_base` = per-query "
        "time of the method answering one out-of-scope NQ question at a time at the largest N, over the base model "
        "alone on the same questions (interleaved, memos off); `speedup_vs_reencode` = per-query time of a scope "
        "that re-encodes every stored edit (original SERAC / EasyEdit) over serac's index.",
        "",
    ]
    if skipped:
        lines += [f"Not run: {', '.join(skipped)} (unavailable here; see the notes when running `serac bench`; "
                  "'serac' needs `serac train` first).", ""]
    lines += ["## Parts", "", "| part | methods | settings | wall time |", "|---|---|---|---:|"]
    for part, seconds in part_times:
        s = part.settings
        dd = f"{part.dd_sample} DD questions" if part.dd_sample else "the task's own DD set"
        if s.mode == "batch":
            what = f"first {s.n_edits} edits, k in {{{', '.join(map(str, s.batch_sizes))}}}, {dd} split across batches"
        else:
            scored = f"{s.sample} edits scored per N" if s.sample else "every edit scored"
            what = (f"N in {{{', '.join(f'{n:,}' for n in s.checkpoints or ())}}}, {scored}, "
                    f"{dd}, edits applied {s.apply_batch} per call")
        caps = {**({"ft": options.ft_max_edits} if "ft" in part.methods and options.ft_max_edits else {}),
                **s.method_caps}
        if caps:
            what += "; cost caps: " + ", ".join(f"{m} at most {c:,} edits" for m, c in caps.items())
        if part.grace_epsilon is not None and "grace" in part.methods:
            what += f"; grace deferral radius {part.grace_epsilon:g}"
        lines.append(f"| {part.name} | {', '.join(m for m in part.methods if m in METHODS and m not in skipped)} | {what} "
                     f"| {seconds / 60:.1f} min |")
    lines += ["", f"Model loading: {load_s:.0f} s.", ""]
    later = [(part.name, method, source) for part, _ in part_times
             for method, source in run_part(run, part.name).get("sources", {}).items()]
    if later:
        lines += ["Rows from later runs (`serac bench --methods ...`, merged into this run's files; the other rows "
                  "are from the command above):", ""]
        for name, method, source in later:
            sizes = ", ".join(f"{label} {source[key]:g}" for key, label in
                              (("sample", "edits scored per N"), ("dd_sample", "DD questions"),
                               ("grace_epsilon", "grace deferral radius")) if source.get(key) and
                              (key != "grace_epsilon" or method == "grace"))
            sequential = run_part(run, name).get("settings", {}).get("mode") == "sequential"
            label, points = ("N", source.get("checkpoints")) if sequential else ("k", source.get("batch_sizes"))
            if points:
                sizes = f"{label} in {{{', '.join(f'{n:,}' for n in points)}}}" + (f", {sizes}" if sizes else "")
            lines.append(f"- {name} / `{method}`: `{source['command']}`, started "
                         f"{datetime.fromisoformat(source['started']).strftime('%Y-%m-%d %H:%M')} UTC, "
                         f"{source['wall_s'] / 60:.1f} min" + (f"; {sizes}" if sizes else "")
                         + (f"; machine: {other.get('cpu')}, {other.get('cores')} cores"
                            if (other := source.get("machine", {})) and other.get("cpu") != info.get("cpu") else ""))
        lines.append("")
    for result, plot in zip(results, plots):
        link = Path(os.path.relpath(plot, doc.resolve().parent if plot.is_absolute() else doc.parent)).as_posix()
        lines += [markdown_run(result, "##"), f"![{result.task} {result.mode}: ES and DD]({link})", ""]
    extra = sorted((out / "extra").glob("*.md")) if (out / "extra").is_dir() else []
    if extra:
        lines += ["# Other benchmarks", ""]
        for fragment in extra:
            lines += [fragment.read_text().rstrip(), ""]
    doc.write_text("\n".join(lines).rstrip() + "\n")
