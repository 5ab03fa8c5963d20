"""Command line: manage edits, ask questions, run the demo (and, as they land, train/eval/serve)."""

from __future__ import annotations

import contextlib
import json
import logging
import os
from pathlib import Path
from typing import Iterator, Optional

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table
from rich.text import Text

from serac.config import SeracConfig
from serac.errors import EditValidationError, SeracError

app = typer.Typer(help="SERAC model editing: edit a model's answers without touching its weights.",
                  no_args_is_help=True, pretty_exceptions_enable=False)
edit_app = typer.Typer(help="Add, list, remove and roll back edits in the edit store.", no_args_is_help=True)
app.add_typer(edit_app, name="edit")
console = Console()
err_console = Console(stderr=True)

StoreOption = typer.Option(None, "--store", envvar="SERAC_STORE",
                           help="Edit store: a SQLite file, or postgresql://USER@HOST/DB to share one store "
                                "between servers. Default: $SERAC_HOME/edits.db")
ModelOption = typer.Option(None, "--model", envvar="SERAC_MODEL",
                           help="Artifact directory from `serac train`. Default: trained artifacts in "
                                "$SERAC_HOME/trained when present, else the embedded models.")


def _store_path(store: Optional[str]) -> str | Path:
    """The --store value (a path or a postgresql:// URL, kept as text: a Path would merge the URL's
    "//"), or the default SQLite file."""
    from serac.editor import default_store_path

    return store or default_store_path()


def _open_store(store: Optional[str]):
    from serac.store_url import open_store

    return open_store(_store_path(store))


def _model_dir(model: Optional[Path]) -> Optional[Path]:
    from serac.models import serac_home

    if model is not None:
        return model
    trained = serac_home() / "trained"
    return trained if (trained / "serac_config.json").exists() else None


@contextlib.contextmanager
def _errors() -> Iterator[None]:
    """Project errors become one red line and exit code 1, not a traceback."""
    try:
        yield
    except SeracError as exc:
        # escape: messages quote user text and paths, which may contain [markup]; soft_wrap: one line
        err_console.print(f"[red]error:[/red] {escape(str(exc))}", soft_wrap=True, highlight=False)
        raise typer.Exit(1) from None


def _load_editor(model: Optional[Path], store: Optional[Path] | str):
    from serac.editor import EditedModel

    directory = _model_dir(model)
    with console.status(f"Loading models ({directory or 'embedded defaults'}; the first run converts "
                        "SmolLM2 once, ~30 s)..."):
        return EditedModel.from_pretrained(directory, store=store)


def _load_config(model: Optional[Path]) -> SeracConfig:
    from serac.editor import load_artifact_config

    directory = _model_dir(model)
    return load_artifact_config(directory) if directory else SeracConfig()


@app.callback()
def main(verbose: bool = typer.Option(False, "--verbose", "-v", help="Log routing decisions (DEBUG).")) -> None:
    logging.basicConfig(level=logging.DEBUG if verbose else logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


# -- edits ----------------------------------------------------------------------------------------
@edit_app.command("add")
def edit_add(
    input: str = typer.Argument(..., help="The input to edit, e.g. a question."),
    target: str = typer.Argument(..., help="The answer it should get."),
    meta: list[str] = typer.Option([], "--meta", help="Metadata as KEY=VALUE (repeatable)."),
    store: Optional[str] = StoreOption,
    model: Optional[Path] = ModelOption,
) -> None:
    """Add one edit. Its key is embedded now, so queries never re-encode it."""
    from serac.edits import validate_edit
    from serac.scope import ScopeClassifier

    with _errors():
        metadata = {}
        for item in meta:
            key, sep, value = item.partition("=")
            if not sep or not key:
                raise EditValidationError(f"--meta takes KEY=VALUE, got {item!r}")
            metadata[key] = value
        request = validate_edit(input, target, metadata)
        with console.status("Embedding the edit key..."):
            scope = ScopeClassifier.from_config(_load_config(model).scope)
            vectors = scope.embed_keys([request.input])
        with _open_store(store) as edit_store:
            edit = edit_store.add_many([request], embeddings=(scope.encoder.id, vectors))[0]
            console.print(f"added edit [bold]{edit.id}[/bold] (store version {edit_store.version})")


@edit_app.command("list")
def edit_list(
    store: Optional[str] = StoreOption,
    offset: int = typer.Option(0, min=0),
    limit: int = typer.Option(50, min=1),
    as_json: bool = typer.Option(False, "--json", help="Print JSON lines instead of a table."),
) -> None:
    """List live edits."""

    with _errors(), _open_store(store) as edit_store:
        edits = edit_store.list(offset, limit)
        if as_json:
            for edit in edits:  # one JSON document per line, unstyled and never wrapped
                typer.echo(json.dumps(edit.to_dict(), ensure_ascii=False))
            return
        table = Table(title=f"{edit_store.count()} live edits (version {edit_store.version})")
        for column in ("id", "input", "target", "created", "metadata"):
            table.add_column(column)
        for edit in edits:
            # Text(): edit text is shown literally, never parsed as rich markup
            table.add_row(str(edit.id), Text(edit.input), Text(edit.target), edit.created.strftime("%Y-%m-%d %H:%M"),
                          Text(json.dumps(dict(edit.metadata)) if edit.metadata else ""))
        console.print(table)


@edit_app.command("rm")
def edit_rm(edit_id: int = typer.Argument(..., help="Edit id (see `serac edit list`)."),
            store: Optional[str] = StoreOption) -> None:
    """Remove an edit (undo with `serac edit rollback`)."""

    with _errors(), _open_store(store) as edit_store:
        version = edit_store.remove(edit_id)
        console.print(f"removed edit {edit_id} (store version {version})")


@edit_app.command("rollback")
def edit_rollback(version: int = typer.Argument(..., help="Version to restore (see `serac edit log`)."),
                  store: Optional[str] = StoreOption) -> None:
    """Restore the set of edits live at VERSION (recorded as a new version)."""

    with _errors(), _open_store(store) as edit_store:
        new_version = edit_store.rollback(version)
        console.print(f"rolled back to version {version}: now version {new_version}, {edit_store.count()} live edits")


@edit_app.command("log")
def edit_log(store: Optional[str] = StoreOption) -> None:
    """Show the store's version history."""
    from datetime import datetime, timezone

    with _errors(), _open_store(store) as edit_store:
        table = Table(title="edit store versions")
        for column in ("version", "time (UTC)", "change", "detail"):
            table.add_column(column)
        for row in edit_store.versions():
            when = datetime.fromtimestamp(row["created_at"], tz=timezone.utc).strftime("%Y-%m-%d %H:%M:%S")
            table.add_row(str(row["version"]), when, row["op"], row["note"] or "")
        console.print(table)


@edit_app.command("check")
def edit_check(store: Optional[str] = StoreOption,
               full: bool = typer.Option(False, "--full", help="SQLite's integrity_check (slower, also "
                                                               "checks index contents) instead of quick_check.")) -> None:
    """Check the store's integrity (opening a store checks it only after an unclean shutdown)."""
    with _errors(), _open_store(store) as edit_store:
        with console.status("Checking the edit store..."):
            problems = edit_store.check(full=full)
        if problems:
            for problem in problems[:20]:
                err_console.print(f"[red]problem:[/red] {escape(problem)}", soft_wrap=True, highlight=False)
            err_console.print("restore the store from a backup, or move it aside and start a new store")
            raise typer.Exit(1)
        console.print(f"ok: {edit_store.count()} live edits, version {edit_store.version}")


# -- inference ------------------------------------------------------------------------------------
@app.command()
def ask(
    question: str = typer.Argument(..., help="The input to answer."),
    store: Optional[str] = StoreOption,
    model: Optional[Path] = ModelOption,
    max_new_tokens: int = typer.Option(32, min=1, max=4096),
) -> None:
    """Answer through the edited model and say which edit, if any, fired."""
    from serac.base import GenerationOptions

    with _errors():
        editor = _load_editor(model, _store_path(store))
        answer = editor.generate([question], GenerationOptions(max_new_tokens=max_new_tokens))[0]
        console.print(answer.text, markup=False, highlight=False)
        if answer.edit is not None:
            console.print(f"[green]edit {answer.edit.id} fired[/green] (score {answer.score:.3f}): "
                          f"{escape(repr(answer.edit.input))} -> {escape(repr(answer.edit.target))}", highlight=False)
        else:
            best = "no edits stored" if answer.score is None else f"best score {answer.score:.3f}"
            console.print(f"[dim]no edit in scope ({best}); the base model answered[/dim]")


@app.command()
def demo(model: Optional[Path] = ModelOption) -> None:
    """Load the defaults, apply example edits, and show answers before and after."""
    from serac.demo import run_demo

    with _errors():
        run_demo(_load_editor(model, None), console)


def _register_optional_commands() -> None:
    """Commands whose modules land in their own packages (train, eval, serve)."""
    import importlib

    for module_name in ("serac.train.cli", "serac.eval.cli", "serac.server.cli"):
        try:
            module = importlib.import_module(module_name)
        except ModuleNotFoundError as exc:
            if exc.name != module_name and not module_name.startswith(str(exc.name)):
                raise
            continue
        module.register(app)


_register_optional_commands()
