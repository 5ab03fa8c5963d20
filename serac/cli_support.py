"""What every ``serac`` sub-command shares: the consoles, the error wrapper, store and model lookup.

Its own module so the sub-CLIs (``serac.train.cli``, ``serac.eval.cli``, ``serac.server.cli``)
share it without importing ``serac.cli``, and cheap to import: torch, FastAPI
and transformers load only inside the functions that need them.
"""

from __future__ import annotations

import contextlib
import logging
import os
from pathlib import Path
from typing import TYPE_CHECKING, Iterator, Optional

import typer
from rich.console import Console
from rich.markup import escape

from serac.config import SeracConfig
from serac.errors import SeracError, StoreError

if TYPE_CHECKING:
    from serac.editor import EditedModel
    from serac.store import EditStoreProtocol

console = Console()
err_console = Console(stderr=True)

# SQLite integers are signed 64-bit: a larger id, version, offset or limit is a usage error, not an
# OverflowError from the driver.
SQLITE_MAX_INT = 2**63 - 1

StoreOption = typer.Option(None, "--store", envvar="SERAC_STORE",
                           help="Edit store: a SQLite file, or postgresql://USER@HOST/DB to share one store "
                                "between servers. Default: $SERAC_HOME/edits.db")
ModelOption = typer.Option(None, "--model", envvar="SERAC_MODEL",
                           help="Artifact directory from `serac train`. Default: trained artifacts in "
                                "$SERAC_HOME/trained when present, else the trained defaults shipped with serac.")


def store_path(store: Optional[str]) -> str | Path:
    """The --store value (a path or a postgresql:// URL, kept as text: a Path would merge the URL's
    "//"), or the default SQLite file."""
    from serac.models import serac_home

    return store or serac_home() / "edits.db"


def open_store(store: Optional[str]) -> "EditStoreProtocol":
    """The store ``--store`` names (serac.store_url.open_store), created if it is a new SQLite file."""
    from serac.store_url import open_store as open_any

    return open_any(store_path(store))


def open_existing_store(store: Optional[str]) -> "EditStoreProtocol":
    """The store for commands that read or change existing edits: a SQLite file that does not exist
    is an error (a typo'd ``--store`` must not create directories and an empty store). URLs
    (postgresql://) go to their server, which creates nothing on a read."""
    target = store_path(store)
    text = str(target)
    local = text[len("sqlite://"):] if text.startswith("sqlite:///") else (None if "://" in text else text)
    if local is not None and local != ":memory:" and not Path(local).is_file():
        raise StoreError(f"no edit store at {local}: check --store / $SERAC_STORE, or add a first edit with "
                         "`serac edit add` (which creates the store)")
    return open_store(store)


def model_dir(model: Optional[Path]) -> Optional[Path]:
    """``--model`` when given, else the trained artifact in ``$SERAC_HOME/trained`` when there is one."""
    from serac.models import serac_home

    if model is not None:
        return model
    trained = serac_home() / "trained"
    return trained if (trained / "serac_config.json").exists() else None


@contextlib.contextmanager
def cli_errors() -> Iterator[None]:
    """Project errors become one red line and exit code 1, not a traceback."""
    try:
        yield
    except SeracError as exc:
        # escape: messages quote user text and paths, which may contain [markup]; soft_wrap: one line
        err_console.print(f"[red]error:[/red] {escape(str(exc))}", soft_wrap=True, highlight=False)
        raise typer.Exit(1) from None


@contextlib.contextmanager
def quiet_model_loading() -> Iterator[None]:
    """Hide transformers' and huggingface_hub's progress bars ("Loading weights", "Fetching files")
    while models load: a command prints its answer, not library progress (errors still show)."""
    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    try:
        from transformers.utils import logging as hf_logging
    except ImportError:  # pragma: no cover - transformers is a core dependency
        yield
        return
    was_enabled = hf_logging.is_progress_bar_enabled()
    hf_logging.disable_progress_bar()
    try:
        yield
    finally:
        if was_enabled:
            hf_logging.enable_progress_bar()


def load_editor(model: Optional[Path], store: Optional[Path] | str) -> "EditedModel":
    from serac.editor import EditedModel

    directory = model_dir(model)
    with console.status(f"Loading models ({directory or 'trained defaults'}; the first run converts "
                        "SmolLM2 once, ~30 s)..."), quiet_model_loading():
        return EditedModel.from_pretrained(directory, store=store)


def load_config(model: Optional[Path]) -> SeracConfig:
    from serac.editor import DEFAULT_ARTIFACT, load_artifact_config

    return load_artifact_config(model_dir(model) or DEFAULT_ARTIFACT)


def setup_logging(verbose: bool, level: int = logging.DEBUG) -> None:
    """The one logging set-up of every entry point (never at import)."""
    logging.basicConfig(level=level if verbose else logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
