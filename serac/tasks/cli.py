"""``serac tasks`` (also ``python -m serac.tasks``): build data, train, evaluate and benchmark the FC
and sentiment tasks. Parses options and calls :mod:`serac.tasks.api`."""

from __future__ import annotations

import json
import logging
from enum import Enum
from pathlib import Path
from typing import Literal, Optional

import typer

from serac.cli_support import setup_logging
from serac.errors import SeracError
from serac.tasks import BATCH_SIZES, TASK_METHODS, TASKS
from serac.tasks.api import DEFAULT_SHARED, build_task_data, eval_task, train_task

# Repeatable options with a fixed set of values (Typer takes enums there, not Literal)
TaskChoice = Enum("TaskChoice", {name: name for name in TASKS}, type=str)
MethodChoice = Enum("MethodChoice", {name: name for name in TASK_METHODS}, type=str)


def _values(choices: list[Enum]) -> list[str]:
    return [choice.value for choice in choices]

# -- standalone command ----------------------------------------------------------------------------
app = typer.Typer(
    help="FC and sentiment editing tasks: build data, train, evaluate, benchmark.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)


def _run(fn, *args, **kwargs):
    try:
        return fn(*args, **kwargs)
    except SeracError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(1) from None


@app.callback()
def _main(verbose: bool = typer.Option(False, "--verbose", "-v")) -> None:
    setup_logging(verbose, logging.INFO)


@app.command("build-data")
def build_data_cmd(
    task: Literal["sentiment"] = typer.Argument("sentiment", help="Only sentiment builds its data."),
    out: Optional[Path] = typer.Option(None, help="Output directory (default $SERAC_HOME/tasks/sentiment-data)."),
    counterfact: Optional[Path] = typer.Option(None, help="CounterFact JSON (topic source)."),
    zsre: Optional[Path] = typer.Option(None, help="zsRE JSON (topic source)."),
    n_topics: Optional[int] = typer.Option(None),
    templates_per_sentiment: Optional[int] = typer.Option(None),
    seed: Optional[int] = typer.Option(None),
) -> None:
    """Build the sentiment data set with the chat model and VADER (never inside the repository)."""
    path = _run(
        build_task_data,
        task,
        out,
        counterfact=counterfact,
        zsre=zsre,
        n_topics=n_topics,
        templates_per_sentiment=templates_per_sentiment,
        seed=seed,
    )
    typer.echo(str(path))


@app.command("train")
def train_cmd(
    task: Literal[TASKS] = typer.Argument(..., help="The task."),
    out: Path = typer.Option(..., help="Artifact directory to write."),
    data: Optional[Path] = typer.Option(None, help="fc: vitaminc_sample dir; sentiment: built data dir."),
    epochs: Optional[int] = typer.Option(None),
    seed: Optional[int] = typer.Option(None),
) -> None:
    """Train a task's models."""
    summary = _run(train_task, task, out, data, epochs=epochs, seed=seed)
    typer.echo(json.dumps({k: v for k, v in summary.items() if k != "config"}, indent=1, default=str))


@app.command("eval")
def eval_cmd(
    task: Literal[TASKS] = typer.Argument(..., help="The task."),
    model: Path = typer.Option(..., help="Artifact directory from `train`."),
    data: Optional[Path] = typer.Option(None, help="fc: vitaminc_sample dir; sentiment: built data dir."),
    method: list[MethodChoice] = typer.Option([], help="Methods (repeatable). Default: all."),
    batch_size: list[int] = typer.Option([], help="Batch sizes (repeatable). Default: 1 5 25 75."),
    no_sequential: bool = typer.Option(False, "--no-sequential"),
    out: Optional[Path] = typer.Option(None, help="Write the rows to this JSON file."),
) -> None:
    """Evaluate a task artifact: ES and DD per method, batch size and sequential checkpoint."""
    from serac.tasks.common import markdown_table

    rows = _run(
        eval_task,
        task,
        model,
        data,
        methods=_values(method) or None,
        batch_sizes=batch_size or BATCH_SIZES,
        sequential=not no_sequential,
        out=out,
    )
    for metric in ("es", "dd"):
        typer.echo(
            f"\n{task} {metric} (generation)\n"
            + markdown_table(rows, metric, task=task, scoring="generation")
        )


@app.command("bench")
def bench_cmd(
    out: Path = typer.Option(Path("benchmarks/extra"), help="Where tasks.md and tasks.json go."),
    shared: Path = typer.Option(DEFAULT_SHARED, help="The shared benchmark data folder."),
    work: Optional[Path] = typer.Option(None, help="Models and data (default $SERAC_HOME/tasks)."),
    task: list[TaskChoice] = typer.Option([], help="Tasks to run (repeatable). Default: both."),
    retrain: bool = typer.Option(False, help="Retrain even where an artifact exists."),
    method: list[MethodChoice] = typer.Option([], help="Methods to evaluate (repeatable). Default: all."),
) -> None:
    """End to end: build the sentiment data, train both tasks, evaluate, write the report."""
    task, method = _values(task), _values(method)
    from serac.tasks.report import bench

    command = (
        "python -m serac.tasks bench"
        + "".join(f" --task {t}" for t in task)
        + "".join(f" --method {m}" for m in method)
    )
    _run(
        bench,
        out,
        shared,
        work,
        tuple(task) or TASKS,
        retrain,
        command=command,
        methods=tuple(method) or None,
    )


@app.command("report")
def report_cmd(
    source: list[Path] = typer.Option(
        ..., "--from", help="tasks.json files to merge (later ones win per task)."
    ),
    out: Path = typer.Option(Path("benchmarks/extra"), help="Where tasks.md and tasks.json go."),
) -> None:
    """Merge the rows of several bench runs (per task, the last file naming it wins) and re-render."""
    from serac.tasks.report import merge

    _run(merge, source, out)


def register(main: typer.Typer) -> None:
    """``serac tasks ...`` on the main CLI."""
    main.add_typer(app, name="tasks")
