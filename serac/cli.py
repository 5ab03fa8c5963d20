"""Command line: manage edits, ask questions, run the demo; train, eval, bench, serve and tasks load lazily."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Optional

import click
import typer
from rich.markup import escape
from rich.table import Table
from rich.text import Text
from typer.core import TyperGroup

from serac.cli_support import (
    SQLITE_MAX_INT,
    ModelOption,
    StoreOption,
    cli_errors,
    console,
    err_console,
    load_config,
    load_editor,
    quiet_model_loading,
    open_existing_store,
    open_store,
    setup_logging,
    store_path,
)
from serac.errors import EditValidationError, MissingExtraError

# Commands that live in their own packages, imported only when named (or listed by --help), so
# `serac edit list` never pays for torch, FastAPI or transformers. Each module has `register(app)`.
LAZY_COMMANDS: dict[str, str] = {
    "train": "serac.train.cli",
    "train-report": "serac.train.cli",
    "compact": "serac.train.compact_cli",
    "eval": "serac.eval.cli",
    "bench": "serac.eval.cli",
    "serve": "serac.server.cli",
    "tasks": "serac.tasks.cli",
}


class LazyGroup(TyperGroup):
    """A Typer group that imports a sub-command's module the first time the command is looked up."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return [*super().list_commands(ctx), *(name for name in LAZY_COMMANDS if name not in self.commands)]

    def get_command(self, ctx: click.Context, cmd_name: str) -> Optional[click.Command]:
        if cmd_name not in self.commands and cmd_name in LAZY_COMMANDS:
            self._load(LAZY_COMMANDS[cmd_name])
        return super().get_command(ctx, cmd_name)

    def _load(self, module_name: str) -> None:
        import importlib

        try:
            module: Any = importlib.import_module(module_name)
        except MissingExtraError as exc:  # still listed; running it says which extra to install
            for name in (n for n, m in LAZY_COMMANDS.items() if m == module_name):
                self.commands.setdefault(name, _unavailable(name, exc))
            return
        holder = typer.Typer()
        module.register(holder)
        for name, command in typer.main.get_group(holder).commands.items():
            self.commands.setdefault(name, command)


def _unavailable(name: str, error: MissingExtraError) -> click.Command:
    """A stand-in for a command whose optional dependencies are missing. Built through Typer, so
    ``--help`` and the exit it raises go through Typer's own (vendored) click like every command;
    no rich markup, which would eat the extra's brackets (``serac-edit[server]``)."""
    holder = typer.Typer(add_completion=False, rich_markup_mode=None)

    @holder.command(name, help=f"(not installed) {error}", add_help_option=True,
                    context_settings={"ignore_unknown_options": True, "allow_extra_args": True})
    def fail(ctx: typer.Context) -> None:
        with cli_errors():
            raise error

    return typer.main.get_command(holder)


app = typer.Typer(cls=LazyGroup, help="SERAC model editing: edit a model's answers without touching its weights.",
                  no_args_is_help=True, pretty_exceptions_enable=False)
edit_app = typer.Typer(help="Add, list, remove and roll back edits in the edit store.", no_args_is_help=True)
app.add_typer(edit_app, name="edit")

EditId = typer.Argument(..., min=1, max=SQLITE_MAX_INT, metavar="EDIT_ID", help="Edit id (see `serac edit list`).")


@app.callback()
def main(verbose: bool = typer.Option(False, "--verbose", "-v", help="Log routing decisions (DEBUG).")) -> None:
    setup_logging(verbose)


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

    with cli_errors():
        metadata = {}
        for item in meta:
            key, sep, value = item.partition("=")
            if not sep or not key:
                raise EditValidationError(f"--meta takes KEY=VALUE, got {item!r}")
            metadata[key] = value
        request = validate_edit(input, target, metadata)
        with console.status("Embedding the edit key..."), quiet_model_loading():
            scope = ScopeClassifier.from_config(load_config(model).scope)
            vectors = scope.embed_keys([request.input])
        with open_store(store) as edit_store:
            edit = edit_store.add_many([request], embeddings=(scope.encoder.id, vectors))[0]
            console.print(f"added edit [bold]{edit.id}[/bold] (store version {edit_store.version})")


@edit_app.command("list")
def edit_list(
    store: Optional[str] = StoreOption,
    offset: int = typer.Option(0, min=0, max=SQLITE_MAX_INT, help="Skip this many live edits."),
    limit: int = typer.Option(50, min=1, max=SQLITE_MAX_INT, help="Show at most this many."),
    as_json: bool = typer.Option(False, "--json", help="Print JSON lines instead of a table."),
) -> None:
    """List live edits."""
    with cli_errors(), open_existing_store(store) as edit_store:
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
def edit_rm(edit_id: int = EditId, store: Optional[str] = StoreOption) -> None:
    """Remove an edit (undo with `serac edit rollback`)."""
    with cli_errors(), open_existing_store(store) as edit_store:
        version = edit_store.remove(edit_id)
        console.print(f"removed edit {edit_id} (store version {version})")


@edit_app.command("rollback")
def edit_rollback(version: int = typer.Argument(..., min=0, max=SQLITE_MAX_INT, metavar="VERSION",
                                                help="Version to restore (see `serac edit log`)."),
                  store: Optional[str] = StoreOption) -> None:
    """Restore the set of edits live at VERSION (recorded as a new version)."""
    with cli_errors(), open_existing_store(store) as edit_store:
        new_version = edit_store.rollback(version)
        console.print(f"rolled back to version {version}: now version {new_version}, {edit_store.count()} live edits")


@edit_app.command("log")
def edit_log(store: Optional[str] = StoreOption) -> None:
    """Show the store's version history."""
    from datetime import datetime, timezone

    with cli_errors(), open_existing_store(store) as edit_store:
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
    with cli_errors(), open_existing_store(store) as edit_store:
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

    with cli_errors():
        editor = load_editor(model, store_path(store))
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

    with cli_errors():
        run_demo(load_editor(model, None), console)


if __name__ == "__main__":  # python -m serac.cli
    app()
