"""`serac serve`: run the HTTP server (FastAPI + uvicorn) over an edited model and an edit store."""

from __future__ import annotations

from pathlib import Path
from typing import Literal, Optional

import typer

from serac.errors import ConfigError
from serac.server.auth import is_loopback

__all__ = ["check_exposure", "is_loopback", "register", "serve"]

LOG_LEVELS = ("critical", "error", "warning", "info", "debug", "trace")  # uvicorn's


def check_exposure(host: str, keys_configured: bool) -> str:
    """The auth line to print at start; raises ConfigError for a non-loopback bind without keys."""
    if keys_configured:
        return "API keys configured: every /v1 request needs `Authorization: Bearer KEY`"
    if not is_loopback(host):
        raise ConfigError(
            f"no API keys are configured, so the server only listens on loopback, not {host!r}; set "
            "SERAC_API_KEYS (e.g. 'read:KEY1,write:KEY2') or --api-keys-file, or bind --host 127.0.0.1"
        )
    return f"no API keys configured: auth is off, listening on loopback ({host}) only"


def serve(
    host: str = typer.Option("127.0.0.1", "--host", help="Interface to bind. Non-loopback needs API keys."),
    port: int = typer.Option(8000, "--port", min=0, max=65535, help="TCP port."),
    model: Optional[Path] = typer.Option(
        None,
        "--model",
        envvar="SERAC_MODEL",
        help="Artifact directory from `serac train`. Default: trained artifacts in $SERAC_HOME/trained "
        "when present, else the embedded models.",
    ),
    store: Optional[str] = typer.Option(
        None,
        "--store",
        envvar="SERAC_STORE",
        help="Edit store: a SQLite file, or postgresql://USER@HOST/DB shared by several replicas. "
        "Default: $SERAC_HOME/edits.db",
    ),
    api_keys_file: Optional[Path] = typer.Option(
        None,
        "--api-keys-file",
        envvar="SERAC_API_KEYS_FILE",
        help="File of ROLE:KEY lines (roles: read, write), added to $SERAC_API_KEYS.",
    ),
    model_name: str = typer.Option("serac", "--model-name", help="Model id reported to clients."),
    max_tokens_limit: int = typer.Option(
        512, "--max-tokens-limit", min=1, help="Largest max_tokens allowed."
    ),
    max_prompt_tokens: int = typer.Option(
        2048, "--max-prompt-tokens", min=1, help="Longest prompt (tokens) a request may send; longer: 400."
    ),
    max_streams: int = typer.Option(
        4, "--max-streams", min=1, help="Streamed responses generating at once; more: 503 + Retry-After."
    ),
    max_queued: int = typer.Option(
        64, "--max-queued", min=1, help="Prompts queued or generating at once; more: 503 + Retry-After."
    ),
    request_timeout: float = typer.Option(
        120.0, "--request-timeout", min=0.1, help="Seconds a generation may run before it is stopped (504)."
    ),
    torch_threads: Optional[int] = typer.Option(
        None,
        "--torch-threads",
        min=1,
        help="CPU threads for model compute (torch.set_num_threads). Default: torch's choice; on a "
        "machine shared with other jobs, fewer threads than cores is often faster.",
    ),
    log_level: Literal[LOG_LEVELS] = typer.Option("info", "--log-level", help="uvicorn log level."),
) -> None:
    """Serve OpenAI-compatible inference and edit management over HTTP."""
    import uvicorn

    from serac.cli_support import cli_errors, err_console, load_editor, store_path
    from serac.server.app import create_app
    from serac.server.auth import KeyRing
    from serac.server.settings import ServerSettings

    with cli_errors():
        # Keys and exposure are checked before the (slow) model load, so a refused start is instant.
        keys = KeyRing.from_sources(file=api_keys_file)
        auth_line = check_exposure(host, bool(keys))
        settings = ServerSettings(
            model_name=model_name,
            keys=keys,
            max_tokens_limit=max_tokens_limit,
            max_prompt_tokens=max_prompt_tokens,
            max_streams=max_streams,
            max_queued_requests=max_queued,
            request_timeout_s=request_timeout,
        )
        if torch_threads is not None:
            import torch

            torch.set_num_threads(torch_threads)
        editor = load_editor(model, store_path(store))
    err_console.print(f"serac serve: {auth_line}")
    err_console.print(f"serac serve: http://{host}:{port}/v1 (console at /ui, docs at /docs, metrics at /metrics)")
    uvicorn.run(
        create_app(editor, settings), host=host, port=port, log_level=log_level, timeout_graceful_shutdown=10
    )


def register(app: typer.Typer) -> None:
    app.command("serve")(serve)
