"""Batch and sequential evaluation runners: one loop for every method.

*Batch* (the SERAC paper's setting): the first ``n_edits`` edits are split into consecutive batches
of ``k``; before each batch the method's memory is emptied (``reset``), the ``k`` edits are applied,
and that batch's in-scope and out-of-scope inputs are scored. Scores pool every batch of the same
``k``, so every ``k`` is scored on the same edits.

*Sequential*: edits accumulate (``apply`` in groups of ``apply_batch``, never ``reset``), and at each
checkpoint ``N`` the in-scope and out-of-scope inputs of the first ``N`` edits (all, or a stated
seeded sample) are scored with all ``N`` edits in memory: the curve of ES and DD against ``N``.

What is scored, per scored edit: its edit input (reliability) and rephrasings (generalization), the
two together (ES), against the edit's own target (per record) and against the target of the newest
applied edit of the same fact (conflict-aware, :func:`conflict_key`); its dataset out-of-scope
inputs (locality, e.g. CounterFact's same-relation neighbours), and those of them no applied edit asks
(``locality_uncovered``). Drawdown uses an independent out-of-scope
set (NQ-open questions) when one is given, else the dataset's out-of-scope inputs.

Every task runs through this loop; a task only says what its edits and probes are (``serac.tasks``):
the QA benchmarks (zsre, counterfact), fact-checking (fc: an edit is a piece of evidence, in-scope
probes are the claims it decides, each scored against its own label) and sentiment editing
(sentiment: replies are judged by a sentiment classifier before they are compared with the edit's
sentiment). See :class:`Task`.
"""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Callable, Hashable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from serac.data import EditExample, Probe, fact_key, load_counterfact, load_nq, load_zsre
from serac.config import INTEGER, POSITIVE_INT, Config, each, one_of, option, optional
from serac.errors import ConfigError
from serac.eval import metrics
from serac.eval.methods import EditingMethod, EvalModels
from serac.eval.results import MODES, QA_TASKS, SCORINGS, TASKS, RunResult, Score

logger = logging.getLogger(__name__)

LOADERS: dict[str, Callable[..., list[EditExample]]] = dict(zip(QA_TASKS, (load_zsre, load_counterfact)))


# -- data -------------------------------------------------------------------------------------------
@dataclass
class Task:
    """The edits of one benchmark, the independent out-of-scope set used for drawdown, and how a
    task's answers are read (the defaults are the QA benchmarks')."""

    name: str
    examples: list[EditExample]
    dd_probes: list[Probe] | None = None  # None: drawdown on the dataset's own out-of-scope inputs
    dd_source: str = "dataset out-of-scope inputs"
    # False: the edit input is not a question (fc's evidence, sentiment's "Topic: X"): no reliability row
    ask_edit_input: bool = True
    # True: each in-scope probe is scored against its own target (fc: a claim's gold label), which is
    # also its conflict-aware target; False: against the edit's target (QA)
    probe_targets: bool = False
    # maps answers to what targets are compared with, before matching (sentiment: reply -> its label)
    judge: Callable[[Sequence[str]], list[str]] | None = None
    scorings: tuple[str, ...] = SCORINGS  # what the task's answers can be scored by
    max_new_tokens: int | None = None  # the answer length the task needs (None: the command's default)
    # The fact (e.g. CounterFact's (subject, relation)) an edit changes and a prompt asks, where the task
    # can tell: a locality prompt asking a fact some stored edit changes is in scope of that edit, so
    # ``locality_uncovered`` leaves it out. None: every locality prompt counts.
    edit_fact: Callable[[EditExample], Hashable | None] | None = None
    prompt_fact: Callable[[str], Hashable | None] | None = None


def load_task(
    name: str,
    path: str | Path | None,
    *,
    limit: int | None = None,
    dd_path: str | Path | None = None,
    dd_sample: int | None = None,
    seed: int = 0,
) -> Task:
    """Load ``limit`` edits of task ``name`` from ``path``; with ``dd_path`` (NQ-open JSONL), a seeded
    sample of ``dd_sample`` of its questions is the drawdown set. fc and sentiment bring their own
    drawdown sets (claims of other evidence, prompts about other topics) and take no ``dd_path``."""
    if name in ("fc", "sentiment"):
        if dd_path is not None:
            raise ConfigError(f"task {name} brings its own drawdown set (see serac/eval/README.md); drop --dd-data")
        return _task_of(name, path, limit, seed)
    if name not in LOADERS:
        raise ConfigError(f"unknown task {name!r}; valid tasks: {', '.join(TASKS)}")
    if path is None:
        raise ConfigError(f"task {name} needs its data file (--data)")
    examples = LOADERS[name](path, limit)
    if not examples:
        raise ConfigError(f"{path} gave no {name} edits (limit={limit}); pass a non-empty file and limit")
    task = Task(name, examples, **_facts_of(name, examples))
    if dd_path is None:
        return task
    probes = load_nq(dd_path)
    random.Random(seed).shuffle(probes)  # a seeded order: smaller samples are prefixes of larger ones
    if dd_sample is not None:
        probes = probes[:dd_sample]
    task.dd_probes = probes
    task.dd_source = f"{len(probes)} questions sampled from {Path(dd_path).name} (seed {seed})"
    return task


def _facts_of(name: str, examples: Sequence[EditExample]) -> dict[str, Any]:
    """CounterFact: (subject, relation) of edits and prompts, from the records' templates
    (:class:`serac.eval.distractors.Relations`); other QA tasks name no relation."""
    if name != "counterfact":
        return {}
    from serac.eval.distractors import Relations

    try:
        relations = Relations(examples)
    except ConfigError:  # no record with its subject in its prompt: nothing to tell facts by
        return {}
    return {"edit_fact": relations.fact_of_edit, "prompt_fact": relations.fact_of_prompt}


def _task_of(name: str, path: str | Path | None, limit: int | None, seed: int) -> Task:
    """The fc / sentiment task: its data, prompts and judge come from ``serac.tasks``."""
    if name == "fc":
        from serac.tasks.fc.data import load_fc_task

        if path is None:
            raise ConfigError("task fc needs --data: the vitaminc_sample folder or VitaminC JSONL files")
        examples, dd_probes, dd_source = load_fc_task(path, limit)
        return Task(name, examples, dd_probes, dd_source, ask_edit_input=False, probe_targets=True,
                    scorings=("generation",))
    from serac.tasks.sentiment.data import VaderJudge, load_sentiment_task

    examples, dd_probes, dd_source = load_sentiment_task(path, limit, seed)
    judge = VaderJudge()
    return Task(name, examples, dd_probes, dd_source, ask_edit_input=False, probe_targets=True,
                judge=lambda texts: [label for label, _ in judge(texts)], scorings=("generation",), max_new_tokens=32)


def progress_bar(total: int, desc: str) -> Any:
    """The tqdm bar the commands hand to :attr:`Runner.progress` (one step per scored checkpoint)."""
    from tqdm.auto import tqdm

    return tqdm(total=total, desc=desc, unit="step", dynamic_ncols=True)


# -- settings --------------------------------------------------------------------------------
def default_checkpoints(n: int) -> tuple[int, ...]:
    """Powers of ten below half of ``n``, then ``n``: 1,037 -> (10, 100, 1037); 10,000 -> (10, 100, 1000, 10000)."""
    powers = [10**i for i in range(1, 8) if 10**i <= n / 2]
    return tuple(powers + [n])


@dataclass
class EvalSettings(Config):
    """How a run applies and scores edits (``serac eval`` options; ``serac bench`` parts)."""

    mode: Literal["batch", "sequential"] = option("sequential", "batch: memory emptied per batch of k; "
                                                  "sequential: edits accumulate.", check=one_of(MODES))
    n_edits: int | None = option(None, "Edits used, the first n of the task (None: all loaded).",
                                 check=optional(POSITIVE_INT))
    checkpoints: tuple[int, ...] | None = option(None, "Sequential: N values (None: default_checkpoints).",
                                                 check=optional(each(POSITIVE_INT, "positive integers")))
    batch_sizes: tuple[int, ...] = option((1, 5, 25, 75), "Batch: k values.",
                                          check=each(POSITIVE_INT, "positive integers"))
    sample: int | None = option(None, "Sequential: edits scored per checkpoint (a seeded sample; None: all).",
                                check=optional(POSITIVE_INT))
    scorings: tuple[str, ...] = option(SCORINGS, "generation, teacher_forced, or both.",
                                       check=each(one_of(SCORINGS), f"scorings ({', '.join(SCORINGS)})"))
    apply_batch: int = option(1, "Sequential: edits per apply() call as they arrive.", check=POSITIVE_INT)
    cost: bool = option(True, "Sequential: latency and re-encode comparisons at the largest N.")
    latency_queries: int = option(6, "Per kind (out-of-scope, in-scope), one query per call.", check=POSITIVE_INT)
    seed: int = option(0, "Seed of every sample.", check=INTEGER)
    method_caps: dict[str, int] = option(default_factory=dict, help="Method name -> most edits it is run with.")


# -- observations --------------------------------------------------------------------------------------
@dataclass
class Observations:
    """Raw predictions of one or more checkpoints (batches pool theirs), reduced to scores at the end."""

    reliability: list[tuple[str, str]] = field(default_factory=list)  # (prediction, target)
    generalization: list[tuple[str, str]] = field(default_factory=list)
    conflict_aware: list[tuple[str, str]] = field(default_factory=list)  # every in-scope row, newest target
    reliability_conflict_aware: list[tuple[str, str]] = field(default_factory=list)  # edit inputs, newest target
    generalization_conflict_aware: list[tuple[str, str]] = field(default_factory=list)  # rephrasings, newest target
    locality: list[tuple[str, str]] = field(default_factory=list)  # (after, before)
    locality_uncovered: list[tuple[str, str]] = field(default_factory=list)  # locality, prompts no edit asks
    dd: list[tuple[str, str]] = field(default_factory=list)
    tf: dict[str, list[float]] = field(default_factory=dict)  # metric -> token accuracies
    routed: dict[str, list[bool]] = field(default_factory=dict)  # "in_scope"/"locality"/"dd" -> answered by an edit
    examples: list[dict[str, str]] = field(default_factory=list)  # a few raw predictions, for reading

    MAX_EXAMPLES = 6

    def extend(self, other: Observations) -> None:
        for name in ("reliability", "generalization", "conflict_aware", "reliability_conflict_aware",
                     "generalization_conflict_aware", "locality", "locality_uncovered", "dd"):
            getattr(self, name).extend(getattr(other, name))
        self.examples = (self.examples + other.examples)[: self.MAX_EXAMPLES]
        for store, more in ((self.tf, other.tf), (self.routed, other.routed)):
            for key, values in more.items():
                store.setdefault(key, []).extend(values)

    def scores(self, task: str, method: str, mode: str, n_edits: int) -> list[Score]:
        in_scope = self.reliability + self.generalization
        generation = {
            "es": (metrics.edit_success([p for p, _ in in_scope], [t for _, t in in_scope]), len(in_scope)),
            "es_conflict_aware": (
                metrics.edit_success([p for p, _ in self.conflict_aware], [t for _, t in self.conflict_aware]),
                len(self.conflict_aware),
            ),
            "dd": (metrics.drawdown([a for a, _ in self.dd], [b for _, b in self.dd]), len(self.dd)),
            "reliability": (
                metrics.reliability([p for p, _ in self.reliability], [t for _, t in self.reliability]),
                len(self.reliability),
            ),
            "generalization": (
                metrics.generalization([p for p, _ in self.generalization], [t for _, t in self.generalization]),
                len(self.generalization),
            ),
            "reliability_conflict_aware": (
                metrics.reliability([p for p, _ in self.reliability_conflict_aware],
                                    [t for _, t in self.reliability_conflict_aware]),
                len(self.reliability_conflict_aware),
            ),
            "generalization_conflict_aware": (
                metrics.generalization([p for p, _ in self.generalization_conflict_aware],
                                       [t for _, t in self.generalization_conflict_aware]),
                len(self.generalization_conflict_aware),
            ),
            "locality": (metrics.locality([a for a, _ in self.locality], [b for _, b in self.locality]), len(self.locality)),
            "locality_uncovered": (metrics.locality([a for a, _ in self.locality_uncovered],
                                                    [b for _, b in self.locality_uncovered]),
                                   len(self.locality_uncovered)),
        }
        out = [Score(task, method, mode, n_edits, "generation", m, v, c)
               for m, (v, c) in generation.items() if v is not None]
        if self.tf:
            tf = self.tf
            forced = {
                "es": metrics.tf_edit_success(tf.get("reliability", []) + tf.get("generalization", [])),
                "es_conflict_aware": metrics.tf_edit_success(tf.get("es_conflict_aware", [])),
                "dd": metrics.tf_drawdown(tf.get("dd", [])),
                "reliability": metrics.tf_edit_success(tf.get("reliability", [])),
                "generalization": metrics.tf_edit_success(tf.get("generalization", [])),
                "reliability_conflict_aware": metrics.tf_edit_success(tf.get("reliability_conflict_aware", [])),
                "generalization_conflict_aware": metrics.tf_edit_success(tf.get("generalization_conflict_aware", [])),
                "locality": metrics.tf_locality(tf.get("locality", [])),
                "locality_uncovered": metrics.tf_locality(tf.get("locality_uncovered", [])),
            }
            counts = {"es": len(tf.get("reliability", [])) + len(tf.get("generalization", [])),
                      "es_conflict_aware": len(tf.get("es_conflict_aware", [])), "dd": len(tf.get("dd", [])),
                      "reliability": len(tf.get("reliability", [])), "generalization": len(tf.get("generalization", [])),
                      "reliability_conflict_aware": len(tf.get("reliability_conflict_aware", [])),
                      "generalization_conflict_aware": len(tf.get("generalization_conflict_aware", [])),
                      "locality": len(tf.get("locality", [])),
                      "locality_uncovered": len(tf.get("locality_uncovered", []))}
            out += [Score(task, method, mode, n_edits, "teacher_forced", m, v, counts[m])
                    for m, v in forced.items() if v is not None]
        return out

    def routing(self) -> dict[str, float]:
        return {f"routed_to_edit_{k}": round(sum(v) / len(v), 4) for k, v in self.routed.items() if v}


def newest_targets(examples: Sequence[EditExample], applied: Sequence[int],
                   key: Callable[[EditExample], Hashable] = fact_key) -> dict[Hashable, str]:
    """For each fact (``key``) among the applied edits, the target of the last one applied: the
    answer a "newest edit wins" policy should give."""
    newest: dict[Hashable, str] = {}
    for index in applied:
        newest[key(examples[index])] = examples[index].edit_target
    return newest


def conflict_key(task: Task) -> Callable[[EditExample], Hashable]:
    """What makes two edits one fact for the conflict-aware scores: the task's ``edit_fact`` where it
    tells one (CounterFact: subject and relation, so two records editing "The twin city of X is"
    from different true answers conflict), else :func:`serac.data.fact_key` (subject, true answer)."""
    edit_fact = task.edit_fact
    if edit_fact is None:
        return fact_key

    def key(example: EditExample) -> Hashable:
        fact = edit_fact(example)
        return ("fact", fact_key(example)) if fact is None else ("relation", fact)

    return key


def observe(
    method: EditingMethod,
    models: EvalModels,
    examples: Sequence[EditExample],
    applied: Sequence[int],
    scored: Sequence[int],
    dd_probes: Sequence[Probe] | None,
    scorings: Sequence[str],
    task: Task | None = None,
) -> Observations:
    """Score the ``scored`` edits' inputs with the ``applied`` edits in the method's memory (read
    the way ``task`` says; the QA way when None)."""
    task = task or Task("qa", [])
    key = conflict_key(task)
    newest = newest_targets(examples, applied, key)

    def targets(example: EditExample, probe: Probe) -> tuple[str, str]:  # (per record, conflict-aware)
        if task.probe_targets and probe.target is not None:
            return probe.target, probe.target
        return example.edit_target, newest[key(example)]

    rel = [(examples[i].reliability_probe.input, *targets(examples[i], examples[i].reliability_probe))
           for i in scored] if task.ask_edit_input else []
    gen = [(p.input, *targets(examples[i], p)) for i in scored for p in examples[i].generalization_probes]
    loc = [p.input for i in scored for p in examples[i].out_of_scope]
    loc_uncovered: list[str] = []  # stays empty (no such row) where the task cannot tell facts
    if task.edit_fact is not None and task.prompt_fact is not None:
        changed = {task.edit_fact(examples[i]) for i in applied} - {None}
        loc_uncovered = [p for p in loc if task.prompt_fact(p) not in changed]
    dd = loc if dd_probes is None else [p.input for p in dd_probes]

    oos = list(dict.fromkeys(loc + dd))
    # The unedited base model's answers: the reference for locality and drawdown (both scorings).
    before = dict(zip(oos, models.base.generate(oos, models.options)))
    obs = Observations()
    if "generation" in scorings:
        # One predict call for everything (methods batch internally), duplicates asked once.
        prompts = list(dict.fromkeys([r[0] for r in rel] + [g[0] for g in gen] + loc + dd))
        predictions = dict(zip(prompts, method.predict(prompts)))
        in_scope = list(dict.fromkeys([r[0] for r in rel] + [g[0] for g in gen]))
        # what in-scope answers are compared with the targets as: the answer, or the task's reading of it
        read = dict(zip(in_scope, task.judge([predictions[p] for p in in_scope]))) if task.judge and in_scope \
            else predictions
        obs = Observations(
            reliability=[(read[p], t) for p, t, _ in rel],
            generalization=[(read[p], t) for p, t, _ in gen],
            conflict_aware=[(read[p], c) for p, _, c in rel + gen],
            reliability_conflict_aware=[(read[p], c) for p, _, c in rel],
            generalization_conflict_aware=[(read[p], c) for p, _, c in gen],
            locality=[(predictions[p], before[p]) for p in loc],
            locality_uncovered=[(predictions[p], before[p]) for p in loc_uncovered],
            dd=[(predictions[p], before[p]) for p in dd],
        )
        obs.examples = (
            [{"kind": "reliability", "input": p, "target": t, "prediction": predictions[p]} for p, t, _ in rel[:2]]
            + [{"kind": "generalization", "input": p, "target": t, "prediction": predictions[p]} for p, t, _ in gen[:2]]
            + [{"kind": "out-of-scope", "input": p, "before": before[p], "prediction": predictions[p]} for p in dd[:2]]
        )[: Observations.MAX_EXAMPLES]
        routes = getattr(method, "last_routes", None)
        if routes and len(routes) == len(prompts):
            route_of = dict(zip(prompts, routes))
            obs.routed = {"in_scope": [route_of[p] for p, _, _ in rel + gen], "locality": [route_of[p] for p in loc],
                          "dd": [route_of[p] for p in dd]}
    if "teacher_forced" in scorings:
        rows = rel + gen
        per_record = method.teacher_forced([p for p, _, _ in rows], [t for _, t, _ in rows])
        differ = [i for i, (_, t, c) in enumerate(rows) if c != t]
        conflict = list(per_record)
        if differ:
            for i, v in zip(differ, method.teacher_forced([rows[i][0] for i in differ], [rows[i][2] for i in differ])):
                conflict[i] = v
        # Out of scope: how much of the base model's own answer the edited model still predicts, on
        # rows where that answer survives decoding and re-tokenisation (the base model scores 1 on it).
        kept = [p for p in oos if before[p].strip()]
        if kept:
            reference = models.base.teacher_forced(kept, [before[p] for p in kept])
            kept = [p for p, r in zip(kept, reference) if r == 1.0]
        on_base = dict(zip(kept, method.teacher_forced(kept, [before[p] for p in kept]))) if kept else {}
        obs.tf = {
            "reliability": per_record[: len(rel)],
            "generalization": per_record[len(rel):],
            "es_conflict_aware": conflict,
            "reliability_conflict_aware": conflict[: len(rel)],
            "generalization_conflict_aware": conflict[len(rel):],
            "locality": [on_base[p] for p in loc if p in on_base],
            "locality_uncovered": [on_base[p] for p in loc_uncovered if p in on_base],
            "dd": [on_base[p] for p in dd if p in on_base],
        }
    return obs


# -- the runner ----------------------------------------------------------------------------------------
def sample_indices(n: int, sample: int | None, seed: int) -> list[int]:
    """The edits scored at checkpoint ``n``: all of them, or a seeded sample (the same for every method)."""
    if sample is None or n <= sample:
        return list(range(n))
    return sorted(random.Random(seed * 1_000_003 + n).sample(range(n), sample))


class Runner:
    """Runs methods over a task in batch or sequential mode and collects :class:`Score` rows."""

    def __init__(self, task: Task, models: EvalModels, settings: EvalSettings, progress: Any = None) -> None:
        self.task = task
        self.models = models
        self.settings = settings
        self.progress = progress  # a tqdm-like bar (update, set_postfix_str), or None
        n = len(task.examples) if settings.n_edits is None else min(settings.n_edits, len(task.examples))
        self.examples = task.examples[:n]
        self.scorings = tuple(s for s in settings.scorings if s in task.scorings)
        if not self.scorings:
            raise ConfigError(f"task {task.name} is scored by {', '.join(task.scorings)} only; asked for "
                              f"{', '.join(settings.scorings)}")
        if settings.n_edits is not None and settings.n_edits > len(task.examples):
            logger.warning("asked for %d edits, the task has %d", settings.n_edits, len(task.examples))

    # progress ---------------------------------------------------------------------------------
    def steps(self, methods: Sequence[EditingMethod]) -> int:
        per = len(self.checkpoints()) if self.settings.mode == "sequential" else len(self.settings.batch_sizes)
        return per * len(methods)

    def checkpoints(self) -> list[int]:
        n = len(self.examples)
        points = self.settings.checkpoints or default_checkpoints(n)
        return sorted({min(p, n) for p in points})

    def _status(self, text: str) -> None:
        if self.progress is not None:
            self.progress.set_postfix_str(text, refresh=True)

    def _step(self) -> None:
        if self.progress is not None:
            self.progress.update(1)

    # run --------------------------------------------------------------------------------------
    def run(self, methods: Sequence[EditingMethod]) -> RunResult:
        settings = self.settings
        result = RunResult(self.task.name, settings.mode, settings.to_dict(), dd_source=self.task.dd_source)
        result.settings["n_edits_used"] = len(self.examples)
        start = time.perf_counter()
        for method in methods:
            if settings.mode == "sequential":
                self._sequential(method, result)
            else:
                self._batch(method, result)
        result.wall_s = time.perf_counter() - start
        result.cache_stats = self.models.cache_stats()
        return result

    def _cap(self, method: EditingMethod) -> int | None:
        caps = [c for c in (getattr(method, "max_edits", None), self.settings.method_caps.get(method.name)) if c]
        return min(caps) if caps else None

    def _apply_timed(self, method: EditingMethod, edits: Sequence[EditExample], group: int) -> float:
        began = time.perf_counter()
        for s in range(0, len(edits), group):
            method.apply([(e.edit_input, e.edit_target) for e in edits[s : s + group]])
        return time.perf_counter() - began

    def _record(self, result: RunResult, method: EditingMethod, n: int, obs: Observations,
                apply_s: float, applied_now: int, extra: dict[str, Any]) -> None:
        task, mode = self.task.name, self.settings.mode
        result.scores += obs.scores(task, method.name, mode, n)
        if applied_now and apply_s > 0:
            result.scores.append(Score(task, method.name, mode, n, "cost", "edits_per_s", applied_now / apply_s, applied_now))
        result.details.append({
            "method": method.name, "n_edits": n, "in_scope_inputs": len(obs.reliability) + len(obs.generalization),
            "locality_inputs": len(obs.locality), "dd_inputs": len(obs.dd), "apply_s": round(apply_s, 3),
            **obs.routing(), **extra, "examples": obs.examples,
        })

    def _sequential(self, method: EditingMethod, result: RunResult) -> None:
        settings, examples = self.settings, self.examples
        cap = self._cap(method)
        method.reset()
        applied = 0
        reached = 0
        for n in self.checkpoints():
            if cap is not None and n > cap:
                result.details.append({"method": method.name, "n_edits": n,
                                       "skipped": f"not run: cost cap of {cap:,} edits on this machine"})
                self._step()
                continue
            self._status(f"{method.name} N={n}: applying edits")
            apply_s = self._apply_timed(method, examples[applied:n], settings.apply_batch)
            fresh, applied = n - applied, n
            self._status(f"{method.name} N={n}: scoring")
            scored = sample_indices(n, settings.sample, settings.seed)
            began = time.perf_counter()
            obs = observe(method, self.models, examples, range(n), scored, self.task.dd_probes, self.scorings,
                          self.task)
            self._record(result, method, n, obs, apply_s, fresh,
                         {"scored_edits": len(scored), "score_s": round(time.perf_counter() - began, 1)})
            reached = n
            self._step()
        if settings.cost and reached:
            from serac.eval.cost import measure_cost

            self._status(f"{method.name} N={reached}: measuring cost")
            began = time.perf_counter()
            scores, detail = measure_cost(method, self.models, self.task, examples[:reached], settings)
            detail["measure_s"] = round(time.perf_counter() - began, 1)
            result.scores += scores
            result.details.append({"method": method.name, "n_edits": reached, "cost": detail})

    def _warm(self, method: EditingMethod, n_total: int) -> None:
        """Answer every input of the batch setting once, with all ``n_total`` edits in memory, in full
        generation batches. Exact, only faster: a memoised answer depends on the prompt and the edit the
        model reads, which routing picks the same way in every smaller memory holding that edit (the rest
        are unused entries), so the per-batch loops below mostly hit the memos instead of decoding a few
        prompts at a time. For methods that say so (``warm_cache``), whose answers are memoised."""
        if not getattr(method, "warm_cache", False) or "generation" not in self.scorings:
            return
        self._status(f"{method.name}: warming the caches")
        examples = self.examples[:n_total]
        prompts = [p.input for e in examples for p in (e.in_scope if self.task.ask_edit_input else e.in_scope[1:])]
        prompts += [p.input for e in examples for p in e.out_of_scope] + [p.input for p in self.task.dd_probes or ()]
        method.reset()
        method.apply([(e.edit_input, e.edit_target) for e in examples])
        method.predict(list(dict.fromkeys(prompts)))
        method.reset()

    def _batch(self, method: EditingMethod, result: RunResult) -> None:
        cap = self._cap(method)
        n_total = len(self.examples) if cap is None else min(cap, len(self.examples))
        self._warm(method, n_total)
        for k in self.settings.batch_sizes:
            batches = n_total // k
            if batches == 0:
                why = (f"cost cap of {cap:,} edits on this machine" if cap is not None and cap < len(self.examples)
                       else f"only {len(self.examples)} edits")
                result.details.append({"method": method.name, "n_edits": k, "skipped": f"not run: {why}"})
                self._step()
                continue
            obs, apply_s = Observations(), 0.0
            dd_probes = self.task.dd_probes
            began = time.perf_counter()
            for b in range(batches):
                self._status(f"{method.name} k={k}: batch {b + 1}/{batches}")
                indices = list(range(b * k, (b + 1) * k))
                method.reset()
                apply_s += self._apply_timed(method, [self.examples[i] for i in indices], k)
                # Each batch gets its share of the drawdown set, so the whole set is asked once per k.
                share = None if dd_probes is None else list(dd_probes[b::batches])
                obs.extend(observe(method, self.models, self.examples, indices, indices, share, self.scorings,
                                   self.task))
            if cap is not None and n_total < len(self.examples):
                result.notes.append(f"{method.name}: batch k={k} scored on the first {n_total} edits only "
                                    "(cost cap on this machine)")
            self._record(result, method, k, obs, apply_s, batches * k,
                         {"batches": batches, "scored_edits": batches * k,
                          "score_s": round(time.perf_counter() - began - apply_s, 1)})
            self._step()
        method.reset()
