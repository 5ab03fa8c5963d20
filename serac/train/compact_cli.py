"""`serac compact`: a trained artifact in the small form that ships inside the package
(serac/train/compact.py). Registered lazily on the main CLI by ``register(app)``."""

from __future__ import annotations

from pathlib import Path

import typer


def compact_command(
    source: Path = typer.Argument(..., help="A `serac train` artifact directory (LoRA counterfactual)."),
    target: Path = typer.Argument(..., help="Where to write the compact artifact (replaced if present)."),
    scope_rank: int = typer.Option(8, "--scope-rank", min=1, help="Rank of each scope-encoder matrix's change."),
    adapter_rank: int = typer.Option(4, "--adapter-rank", min=1, help="Rank the LoRA adapter is re-factored to."),
    cross_encoder_rank: int = typer.Option(8, "--cross-encoder-rank", min=1,
                                           help="Rank of each cross-encoder matrix's change (if the artifact has one)."),
    portable: bool = typer.Option(True, "--portable/--local",
                                  help="Refuse artifacts built on local model paths (--local: for this machine only)."),
) -> None:
    """Store a trained artifact as low-rank fp16 differences from the embedded models (a few MB)."""
    from serac.cli_support import cli_errors, console
    from serac.train.compact import compact_artifact

    with cli_errors():
        report = compact_artifact(source, target, scope_rank=scope_rank, adapter_rank=adapter_rank,
                                  portable=portable, cross_encoder_rank=cross_encoder_rank)
    console.print(f"[green]compact artifact written to {target}[/green]: scope {report.scope_bytes / 1e6:.2f} MB "
                  f"(rank {scope_rank}, {report.scope_energy_kept:.1%} of the change kept), adapter "
                  f"{report.adapter_bytes / 1e6:.2f} MB (rank {adapter_rank}, {report.adapter_energy_kept:.1%} kept)")
    if report.cross_encoder_energy_kept is not None:
        console.print(f"cross-encoder {report.cross_encoder_bytes / 1e6:.2f} MB (rank {cross_encoder_rank}, "
                      f"{report.cross_encoder_energy_kept:.1%} of the change kept)")
    console.print("measure what it costs: python scripts/compact_check.py --full SOURCE --compact TARGET")


def register(app: typer.Typer) -> None:
    app.command("compact")(compact_command)
