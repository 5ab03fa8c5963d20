"""``serac eval`` and ``serac bench``: registered on the main CLI by ``register(app)``."""

from __future__ import annotations

import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Literal, Optional

import typer

from serac.errors import ConfigError
from serac.eval.results import MODES, QA_TASKS, TASKS

# what `serac eval` runs when --methods is not given
DEFAULT_METHODS = {"qa": "serac,serac-untrained,ft,lu,icl", "task": "serac,icl,ft"}


def _split(text: str, cast: Any = str) -> tuple:
    try:
        return tuple(cast(x.strip()) for x in text.split(",") if x.strip())
    except ValueError:
        raise typer.BadParameter(f"expected a comma-separated list, got {text!r}") from None


ThreadsOption = typer.Option(
    1, "--threads", min=1, envvar="SERAC_EVAL_THREADS",
    help="torch CPU threads. 1 by default: on a shared machine, two threads contending with other jobs ran "
         "SmolLM2 10x slower than one; raise it on a dedicated machine.")


def _set_threads(threads: int) -> None:
    import torch

    torch.set_num_threads(threads)


def task_models(task: str, artifact: Optional[Path], max_new_tokens: int, batch_size: int, device: str) -> Any:
    """fc and sentiment edit the base model their artifact names (fc: a claim classifier), so every
    method of the run shares that base; the artifact is ``--artifact`` or where ``serac train --task``
    writes it."""
    from serac.editor import CONFIG_FILE, load_artifact_config
    from serac.eval.methods import EvalModels
    from serac.models import default_artifact

    directory = artifact or default_artifact(task)
    if not (directory / CONFIG_FILE).exists():
        raise ConfigError(f"--task {task} evaluates a trained {task} artifact: {directory} has no {CONFIG_FILE}. Run "
                          f"`serac train --task {task}` (it writes {default_artifact(task)}) or pass --artifact DIR")
    base = load_artifact_config(directory).base.model
    return directory, EvalModels.load(base, max_new_tokens=max_new_tokens, batch_size=batch_size, device=device)


UPSTREAM_METHODS = ("serac", "serac-untrained", "icl", "base")


def _upstream_models(url: str, methods: Sequence[str], scorings: Sequence[str], max_new_tokens: int,
                     batch_size: int) -> Any:
    """Evaluation models whose base is an OpenAI-compatible server: it answers by generation only (no
    logits, no weights), so teacher forcing and the weight-editing baselines are refused up front."""
    from serac.eval.methods import EvalModels
    from serac.remote import OpenAIModel, public_url

    if "teacher_forced" in scorings:
        raise ConfigError("--upstream: a remote base model has no logits; score by generation (--scoring generation)")
    unsupported = [m for m in methods if m not in UPSTREAM_METHODS]
    if unsupported:
        raise ConfigError(f"--upstream: methods {', '.join(unsupported)} need the base model's weights; "
                          f"use {', '.join(UPSTREAM_METHODS)}")
    base = OpenAIModel(url, max_new_tokens=max_new_tokens, concurrency=batch_size)
    return EvalModels(base, max_new_tokens=max_new_tokens, base_spec=f"openai:{public_url(url)}")


def register(app: typer.Typer) -> None:
    from serac.cli_support import cli_errors, console, err_console

    @app.command("eval")
    def eval_command(
        task: Literal[TASKS] = typer.Option(..., "--task",
                                            help="Benchmark: zsre, counterfact, fc (fact-checking: a claim classifier "
                                                 "edited with evidence) or sentiment (a chat model's opinion of a "
                                                 "topic); fc and sentiment evaluate a `serac train --task` artifact."),
        data: Optional[Path] = typer.Option(None, "--data",
                                            help="zsre/counterfact: the task's JSON file (e.g. "
                                                 "zsre_mend_eval_portability_gpt4.json); fc: the vitaminc_sample "
                                                 "folder (its test.jsonl) or VitaminC JSONL; sentiment: the data "
                                                 "folder `serac train --task sentiment` built (default "
                                                 "$SERAC_HOME/tasks/sentiment-data)."),
        n_edits: Optional[int] = typer.Option(None, "--n-edits", min=1, help="Use the first N edits (default: all)."),
        mode: Literal[MODES] = typer.Option("sequential", "--mode",
                                            help="batch (memory emptied per batch of k) or sequential."),
        methods: Optional[str] = typer.Option(None, "--methods",
                                              help="Comma-separated: serac, serac-untrained, ft, lu, icl, base, mend. "
                                                   f"Default: {DEFAULT_METHODS['qa']} (fc, sentiment: "
                                                   f"{DEFAULT_METHODS['task']})."),
        limit: Optional[int] = typer.Option(None, "--limit", min=1,
                                            help="Quick run: load at most LIMIT edits, and score at most LIMIT edits "
                                                 "per checkpoint and LIMIT drawdown questions."),
        checkpoints: Optional[str] = typer.Option(None, "--checkpoints",
                                                  help="Sequential: N values, e.g. 10,100,1037 (default: powers of 10, then N)."),
        batch_sizes: str = typer.Option("1,5,25,75", "--batch-sizes", help="Batch: k values."),
        sample: Optional[int] = typer.Option(None, "--sample", min=1,
                                             help="Sequential: score a seeded sample of this many edits per checkpoint."),
        dd_data: Optional[Path] = typer.Option(None, "--dd-data",
                                               help="NQ-open JSONL whose questions form the drawdown set "
                                                    "(default: the dataset's own out-of-scope inputs)."),
        dd_sample: int = typer.Option(200, "--dd-sample", min=1, help="Drawdown questions sampled from --dd-data."),
        scoring: str = typer.Option("generation,teacher_forced", "--scoring", help="generation, teacher_forced or both."),
        artifact: Optional[Path] = typer.Option(None, "--artifact",
                                                help="'serac': a `serac train` artifact dir (default $SERAC_HOME/trained; "
                                                     "fc, sentiment: $SERAC_HOME/tasks/TASK)."),
        counterfactual: Optional[Path] = typer.Option(
            None, "--counterfactual",
            help="'serac': replace the artifact's counterfactual model with this model directory (a language model, "
                 "or a sequence classifier, read as an (edit input, query) pair classifier: e.g. a trained "
                 "(evidence, claim) fact-checker)."),
        mend_artifact: Optional[Path] = typer.Option(None, "--mend-artifact",
                                                     help="'mend': a `serac train --method mend` dir "
                                                          "(default $SERAC_HOME/mend)."),
        out: Optional[Path] = typer.Option(None, "--out", help="Output directory (default runs/eval/TASK-MODE-TIME)."),
        max_new_tokens: Optional[int] = typer.Option(None, "--max-new-tokens", min=1,
                                                     help="Answer length cap for generation (default 16; sentiment 32)."),
        batch_size: int = typer.Option(8, "--batch-size", min=1, help="Generation batch size of the base model."),
        apply_batch: int = typer.Option(1, "--apply-batch", min=1, help="Sequential: edits per apply call."),
        cost: bool = typer.Option(True, "--cost/--no-cost", help="Sequential: measure latency ratios at the largest N."),
        ft_max_edits: int = typer.Option(10, "--ft-max-edits", min=1, help="Cap on edits for the costly ft baseline."),
        seed: int = typer.Option(0, "--seed"),
        threads: int = ThreadsOption,
        device: str = typer.Option("cpu", "--device", help="Where the models run: cpu (the default: the "
                                   "benchmark's numbers are CPU numbers), auto, cuda, cuda:N or mps."),
        upstream: Optional[str] = typer.Option(
            None, "--upstream",
            help="The base model is this OpenAI-compatible server (e.g. `serac serve` on the same model: "
                 "http://127.0.0.1:8000/v1); generation scoring, methods serac, serac-untrained, icl, base."),
    ) -> None:
        """Evaluate editing methods: ES/DD, reliability/generalization/locality, cost; JSON, markdown, PNG."""
        from serac.eval.methods import EvalModels, MethodOptions, build_methods
        from serac.eval.report import write_run
        from serac.eval.runner import EvalSettings, Runner, load_task, progress_bar

        with cli_errors():
            _set_threads(threads)
            own = task not in QA_TASKS  # fc, sentiment: their own artifact, base model and data
            if data is None and task != "sentiment":
                raise ConfigError(f"--task {task} needs --data (see --help)")
            settings = EvalSettings(
                mode=mode, n_edits=n_edits,
                checkpoints=_split(checkpoints, int) if checkpoints else None,
                batch_sizes=_split(batch_sizes, int), sample=min(filter(None, (sample, limit)), default=None),
                scorings=_split(scoring), apply_batch=apply_batch, cost=cost, seed=seed,
            )
            names = _split(methods or DEFAULT_METHODS["task" if own else "qa"])
            if not names:
                raise ConfigError("--methods is empty; name at least one of serac, serac-untrained, ft, lu, icl, base")
            if dd_data is None and not own:
                err_console.print("[yellow]note:[/yellow] no --dd-data: drawdown is measured on the dataset's own "
                                  "out-of-scope inputs (then DD = 1 - locality)")
            the_task = load_task(task, data, limit=limit, dd_path=dd_data,
                                 dd_sample=min(dd_sample, limit) if limit else dd_sample, seed=seed)
            max_new = max_new_tokens or the_task.max_new_tokens or 16
            with console.status("Loading the base model and encoder..."):
                if upstream is not None:
                    if own:
                        raise ConfigError(f"--upstream: task {task} edits the base model its artifact names")
                    models = _upstream_models(upstream, names, settings.scorings, max_new, batch_size)
                elif own:
                    artifact, models = task_models(task, artifact, max_new, batch_size, device)
                else:
                    models = EvalModels.load(max_new_tokens=max_new, batch_size=batch_size, device=device)
            options = MethodOptions(artifact=str(artifact) if artifact else None, ft_max_edits=ft_max_edits,
                                    counterfactual=str(counterfactual) if counterfactual else None,
                                    mend_artifact=str(mend_artifact) if mend_artifact else None)
            built = build_methods(names, models, options, lambda m: err_console.print(f"[yellow]{m}[/yellow]"))
            if not built:
                raise ConfigError("no method could be built; see the messages above")
            runner = Runner(the_task, models, settings)
            bar = progress_bar(runner.steps(built), f"eval {task} {mode}")
            runner.progress = bar
            models.progress = lambda what, done, total: bar.set_postfix_str(f"{what} {done}/{total}", refresh=True)
            try:
                result = runner.run(built)
            finally:
                bar.close()
                models.progress = None
            directory = out or Path("runs") / "eval" / f"{task}-{mode}-{time.strftime('%Y%m%d-%H%M%S')}"
            paths = write_run(result, directory)
            from serac.eval.report import markdown_run

            console.print(markdown_run(result), markup=False, highlight=False)
            console.print(f"wrote {paths['json']}, {paths['markdown']}, {paths['plot']} "
                          f"({result.wall_s / 60:.1f} min)")

    @app.command("bench")
    def bench_command(
        data_dir: Path = typer.Option(Path("../shared/data"), "--data-dir", envvar="SERAC_DATA",
                                      help="Folder holding zsre/, counterfact/, nq_open/ and vitaminc_sample/ (fc and "
                                           "sentiment also need their `serac train --task` artifacts; without one, "
                                           "their parts are skipped)."),
        out: Path = typer.Option(Path("benchmarks"), "--out", help="Where results.json and the plots go."),
        doc: Path = typer.Option(Path("BENCHMARKS.md"), "--doc", help="The markdown report to rewrite."),
        parts: Optional[str] = typer.Option(None, "--parts", help="Comma-separated subset of the standard parts."),
        methods: Optional[str] = typer.Option(
            None, "--methods",
            help="Comma-separated: run only these methods (same parts, settings and samples) and merge their rows "
                 "into the saved results in --out, replacing the rows of the same part and method."),
        quick: bool = typer.Option(False, "--quick", help="Tiny sizes: a smoke test of the whole pipeline."),
        sample: Optional[int] = typer.Option(None, "--sample", min=1,
                                             help="Override the edits scored per N in the sequential parts."),
        dd_sample: Optional[int] = typer.Option(None, "--dd-sample", min=1, help="Override the drawdown-set sizes."),
        checkpoints: Optional[str] = typer.Option(None, "--checkpoints",
                                                  help="Override the sequential parts' N values, e.g. 10,100,400."),
        batch_sizes: Optional[str] = typer.Option(None, "--batch-sizes", help="Override the batch parts' k values, e.g. 25,75."),
        artifact: Optional[Path] = typer.Option(None, "--artifact", help="Trained serac artifact (default $SERAC_HOME/trained)."),
        grace_radius: Optional[float] = typer.Option(
            None, "--grace-radius", min=1e-6,
            help="Override grace's deferral radius in every part (default: each part's own, calibrated on its "
                 "dataset's training file; see serac/eval/README.md)."),
        render: bool = typer.Option(False, "--render",
                                    help="Only rewrite BENCHMARKS.md from the last run's saved results (e.g. after "
                                         "a fragment in benchmarks/extra/ changed); measures nothing."),
        merge_from: Optional[Path] = typer.Option(
            None, "--merge-from",
            help="Only merge the saved results of a bench run in DIR (e.g. `serac bench --methods grace --out DIR`, "
                 "run elsewhere) into --out, replacing rows of the same part and method, and rewrite BENCHMARKS.md."),
        threads: int = ThreadsOption,
    ) -> None:
        """Run the standard benchmark set and rewrite BENCHMARKS.md and benchmarks/results.json."""
        from serac.eval.bench import merge_saved, render_saved, run_bench

        with cli_errors():
            if merge_from is not None:
                merge_saved(merge_from, out, doc)
                console.print(f"merged {merge_from} into {out}; wrote {doc}")
                return
            if render:
                render_saved(out, doc)
                console.print(f"wrote {doc} from {out / 'run.json'} and {out / 'details.json'}")
                return
            _set_threads(threads)
            run_bench(data_dir, out, doc, parts=_split(parts) if parts else None,
                      methods=_split(methods) if methods else None, quick=quick, sample=sample,
                      dd_sample=dd_sample, checkpoints=_split(checkpoints, int) if checkpoints else None,
                      batch_sizes=_split(batch_sizes, int) if batch_sizes else None,
                      artifact=str(artifact) if artifact else None, grace_epsilon=grace_radius, console=console,
                      err_console=err_console)
