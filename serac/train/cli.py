"""`serac train` and `serac train-report`: registered (lazily) on the main CLI by ``register(app)``."""

from __future__ import annotations

import shlex
import sys
from pathlib import Path
from typing import Literal, Optional

import typer

from serac.train.config import CF_METHODS

TRAIN_TASKS = ("qa", "fc", "sentiment")
TRAIN_METHODS = ("serac", "mend")

ZSRE_TRAIN = Path("zsre") / "zsre_mend_train-1k.json"
COUNTERFACT_TRAIN = Path("counterfact") / "counterfact-train.json"


def _default_data_dir() -> Optional[Path]:
    """The project's benchmark data seen from the project root (``../shared/data``), if present.
    Only the CLI guesses; the library always takes explicit paths."""
    candidate = Path.cwd().parent / "shared" / "data"
    return candidate if candidate.is_dir() else None


def train_command(
    method: Literal[TRAIN_METHODS] = typer.Option("serac", "--method",
                                                  help="serac (default): the scope classifier and counterfactual "
                                                       "model. mend: the MEND baseline's editor networks "
                                                       "(-> $SERAC_HOME/mend; takes --output, --data-dir, "
                                                       "--zsre-train, --counterfact-train, --seed, --quick, "
                                                       "--resume, --overwrite, --progress, --threads)."),
    mend_steps: Optional[int] = typer.Option(None, "--mend-steps", min=1, help="--method mend: training steps."),
    task: Literal[TRAIN_TASKS] = typer.Option("qa", "--task",
                             help="qa: question answering (zsRE + CounterFact train files; the editor's default "
                                  "artifact). fc: fact-checking on vitaminc_sample. sentiment: sentiment editing "
                                  "(builds its data set first if missing)."),
    output: Optional[Path] = typer.Option(None, "--output", "-o",
                                          help="Artifact directory. Default: $SERAC_HOME/trained for qa, which "
                                               "`serac ask` and `serac demo` then use by default; "
                                               "$SERAC_HOME/tasks/TASK otherwise."),
    data_dir: Optional[Path] = typer.Option(None, "--data-dir",
                                            help="Folder laid out like shared/data (zsre/, counterfact/). "
                                                 "Default: ../shared/data when it exists."),
    zsre_train: Optional[Path] = typer.Option(None, "--zsre-train", help="zsRE training file (MEND format)."),
    counterfact_train: Optional[Path] = typer.Option(None, "--counterfact-train", help="CounterFact training file."),
    config_file: Optional[Path] = typer.Option(None, "--config", help="A TrainConfig JSON (e.g. a run's "
                                               "train_config.json); with --task fc / sentiment, that task's config "
                                               "(FCTrainConfig / SentimentTrainConfig fields)."),
    seed: Optional[int] = typer.Option(None, "--seed", help="Random seed (default 0): same seed, same run."),
    scope_steps: Optional[int] = typer.Option(None, "--scope-steps", min=1, help="Scope encoder steps."),
    cf_steps: Optional[int] = typer.Option(None, "--cf-steps", min=1, help="Counterfactual model steps."),
    cf_model: Optional[str] = typer.Option(None, "--cf-model", help="Counterfactual base model (causal or seq2seq)."),
    cf_method: Optional[Literal[CF_METHODS]] = typer.Option(None, "--cf-method", help="lora (default) or full."),
    encoder: Optional[str] = typer.Option(None, "--encoder", help="Pretrained sentence-transformers model to start from."),
    cross_encoder: bool = typer.Option(False, "--cross-encoder", help="Also train the scope verifier (a "
                                       "cross-encoder over (edit input, query); ~12 min on 2 CPU cores)."),
    add_cross_encoder: Optional[Path] = typer.Option(
        None, "--add-cross-encoder", help="Train only the scope verifier for this finished artifact (its scope "
        "encoder, training files and validation split) and switch the artifact to it; takes --progress, "
        "--threads and --device."),
    counterfactual: Optional[Path] = typer.Option(
        None, "--counterfactual", help="--task fc: use this trained (evidence, claim) sequence classifier (a "
        "save_pretrained directory with supports/refutes labels) as the counterfactual model instead of training one."),
    quick: bool = typer.Option(False, "--quick", help="A tiny smoke-test run (a few minutes)."),
    resume: bool = typer.Option(False, "--resume", help="Continue the unfinished run in --output with its saved config."),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace a run or artifact already in --output."),
    keep_checkpoints: bool = typer.Option(False, "--keep-checkpoints", help="Keep checkpoints/ after success."),
    progress: bool = typer.Option(True, "--progress/--no-progress", help="Progress bars."),
    device: Optional[str] = typer.Option(None, "--device", help="Where training runs: auto (default: the GPU when "
                                         "torch sees one), cpu, cuda, cuda:N or mps."),
    threads: int = typer.Option(1, "--threads", min=1, envvar="SERAC_TRAIN_THREADS",
                                help="torch CPU threads. 1 by default, as for `serac eval`: on this shared 2-core "
                                     "machine two threads contending with other jobs made SmolLM2 steps 1.3-5x "
                                     "slower than one; raise it on a dedicated machine."),
) -> None:
    """Train the scope classifier and the counterfactual model on edit data; write a loadable artifact."""
    from serac.cli_support import cli_errors, console
    from serac.models import serac_home
    from serac.train.pipeline import run_training

    with cli_errors():
        if counterfactual is not None and task != "fc":
            raise typer.BadParameter("--counterfactual applies to --task fc only")
        if method == "mend":
            others = dict(task=None if task == "qa" else task, config=config_file, scope_steps=scope_steps,
                          cf_steps=cf_steps, cf_model=cf_model, cf_method=cf_method, encoder=encoder,
                          cross_encoder=cross_encoder or None, keep_checkpoints=keep_checkpoints or None,
                          device=device)
            given = [f"--{k.replace('_', '-')}" for k, v in others.items() if v is not None]
            if given:
                raise typer.BadParameter(f"{', '.join(given)} do not apply to --method mend")
            _train_mend(output, data_dir, zsre_train, counterfact_train, seed, mend_steps, quick, resume,
                        overwrite, progress, threads)
            return
        if mend_steps is not None:
            raise typer.BadParameter("--mend-steps applies to --method mend only")
        if add_cross_encoder is not None:
            others = dict(output=output, data_dir=data_dir, zsre_train=zsre_train, counterfact_train=counterfact_train,
                          config=config_file, seed=seed, scope_steps=scope_steps, cf_steps=cf_steps,
                          cf_model=cf_model, cf_method=cf_method, encoder=encoder, cross_encoder=cross_encoder or None,
                          quick=quick or None, resume=resume or None, overwrite=overwrite or None,
                          task=None if task == "qa" else task)
            given = [f"--{k.replace('_', '-')}" for k, v in others.items() if v is not None]
            if given:
                raise typer.BadParameter(f"{', '.join(given)} do not apply to --add-cross-encoder")
            from serac.train.pipeline import add_verifier

            result = add_verifier(add_cross_encoder, progress=progress, threads=threads, device=device,
                                  log=lambda message: console.print(f"[dim]train[/dim] {message}", highlight=False))
            console.print(f"[green]{add_cross_encoder} now uses its scope verifier[/green] (threshold "
                          f"{result['threshold']:.3f}, {result['wall_s'] / 60:.1f} min)")
            return
        if task != "qa":
            qa_only = dict(zsre_train=zsre_train, counterfact_train=counterfact_train,
                           scope_steps=scope_steps, cf_steps=cf_steps, cf_model=cf_model, cf_method=cf_method,
                           encoder=encoder, cross_encoder=cross_encoder or None, quick=quick or None,
                           resume=resume or None, keep_checkpoints=keep_checkpoints or None)
            given = [f"--{k.replace('_', '-')}" for k, v in qa_only.items() if v is not None]
            if given:
                raise typer.BadParameter(f"{', '.join(given)} apply to --task qa only; --task {task} takes "
                                         "--data-dir, --output, --config (the task's config JSON), --seed, "
                                         "--overwrite, --threads and --device (fc also --counterfactual)")
            _train_task(task, output, data_dir, seed, overwrite, threads, device, counterfactual, config_file)
            return
        output = output or serac_home() / "trained"
        options_given = any(v is not None for v in (data_dir, zsre_train, counterfact_train, config_file, seed,
                                                     scope_steps, cf_steps, cf_model, cf_method, encoder))
        if resume:
            if options_given or quick or cross_encoder:
                raise typer.BadParameter("--resume continues with the run's saved config; give no other training options")
            config = None
        else:
            config = _build_config(config_file, quick, data_dir, zsre_train, counterfact_train, seed, scope_steps,
                                   cf_steps, cf_model, cf_method, encoder, cross_encoder)
            if device is not None:
                config = config.replace(device=device)
        report = run_training(
            config, output, resume=resume, overwrite=overwrite, progress=progress, keep_checkpoints=keep_checkpoints,
            command=" ".join(shlex.quote(a) for a in ["serac", *sys.argv[1:]]),
            log=lambda message: console.print(f"[dim]train[/dim] {message}", highlight=False),
            threads=threads,
        )
        console.print(f"[green]trained artifact written to {output}[/green] (threshold {report['threshold']:.3f}, "
                      f"{report['total_wall_s'] / 60:.1f} min, peak RSS {report['peak_rss_mb']:.0f} MB)")
        console.print(f"use it: serac ask --model {output} \"...\"   or   EditedModel.from_pretrained({str(output)!r})")


def _train_mend(output: Optional[Path], data_dir: Optional[Path], zsre_train: Optional[Path],
                counterfact_train: Optional[Path], seed: Optional[int], steps: Optional[int], quick: bool,
                resume: bool, overwrite: bool, progress: bool, threads: int) -> None:
    """``serac train --method mend``: the MEND editor, artifact in ``output`` (default $SERAC_HOME/mend)."""
    import torch

    from serac.baselines.mend.config import MendConfig
    from serac.baselines.mend.train import train_mend
    from serac.cli_support import console
    from serac.models import serac_home

    output = output or serac_home() / "mend"
    config = None
    if resume:
        if any(v is not None for v in (data_dir, zsre_train, counterfact_train, seed, steps)) or quick:
            raise typer.BadParameter("--resume continues with the run's saved config; give no other training options")
    else:
        directory = data_dir or (None if (zsre_train or counterfact_train) else _default_data_dir())
        files = {"zsre_train": zsre_train or (directory / ZSRE_TRAIN if directory else None),
                 "counterfact_train": counterfact_train or (directory / COUNTERFACT_TRAIN if directory else None)}
        found = {k: str(Path(v).resolve()) for k, v in files.items() if v is not None and Path(v).exists()}
        if not found:
            raise typer.BadParameter("no training data found: pass --data-dir (a folder with "
                                     "zsre/zsre_mend_train-1k.json and/or counterfact/counterfact-train.json)")
        changes: dict = {**found, **({"seed": seed} if seed is not None else {}),
                         **({"steps": steps} if steps is not None else {})}
        config = MendConfig.quick(**changes) if quick else MendConfig(**changes)
    torch.set_num_threads(threads)
    report = train_mend(config, output, resume=resume, overwrite=overwrite, progress=progress,
                        log=lambda message: console.print(f"[dim]mend[/dim] {message}", highlight=False))
    console.print(f"[green]MEND editor written to {output}[/green] ({report['wall_s_this_run'] / 60:.1f} min)")
    console.print("evaluate it: serac eval --methods mend ... (it reads $SERAC_HOME/mend, or --mend-artifact DIR)")


def _train_task(task: str, output: Optional[Path], data_dir: Optional[Path], seed: Optional[int], overwrite: bool,
                threads: int, device: Optional[str] = None, counterfactual: Optional[Path] = None,
                config_file: Optional[Path] = None) -> None:
    """``serac train --task fc|sentiment``: the task's models (serac.train.fc / serac.train.sentiment),
    artifact in ``output`` (default ``$SERAC_HOME/tasks/TASK``); ``config_file``: the task's config
    JSON (FCTrainConfig / SentimentTrainConfig fields), the other options override it."""
    import logging

    import torch

    from serac.cli_support import console
    from serac.errors import ConfigError
    from serac.models import default_artifact

    shared = data_dir or _default_data_dir()
    if shared is None or not shared.is_dir():
        raise typer.BadParameter("pass --data-dir: the folder laid out like shared/data (vitaminc_sample/, zsre/, "
                                 "counterfact/)")
    output = output or default_artifact(task)
    if output.exists() and any(output.iterdir()) and not overwrite:
        raise typer.BadParameter(f"{output} is not empty; pass --overwrite to replace it or --output elsewhere")
    torch.set_num_threads(threads)
    logging.getLogger("serac").setLevel(logging.INFO)  # the task trainers log their phases
    given = {k: v for k, v in (("seed", seed), ("device", device)) if v is not None}
    if task == "fc":
        from serac.train.fc import FCTrainConfig, train_fc

        data = shared / "vitaminc_sample"
        if not data.is_dir():
            raise ConfigError(f"{data} not found: pass --data-dir, the folder that holds vitaminc_sample/")
        if counterfactual is not None:
            given["counterfactual"] = str(counterfactual)
        config = FCTrainConfig.load(config_file) if config_file else FCTrainConfig()
        summary = train_fc(data, output, config.replace(**given))
        evaluate = f"serac eval --task fc --artifact {output} --data {data}"
    else:
        from serac.tasks.sentiment.data import DATA_FILE, build_sentiment_data, default_data_dir
        from serac.train.sentiment import SentimentTrainConfig, train_sentiment

        data = default_data_dir()
        if not (data / DATA_FILE).exists():
            console.print(f"building the sentiment data set in {data} (chat-model replies judged by VADER; about "
                          "10 min on 2 CPU cores)")
            build_sentiment_data(data, counterfact=shared / COUNTERFACT_TRAIN, zsre=shared / ZSRE_TRAIN)
        config = SentimentTrainConfig.load(config_file) if config_file else SentimentTrainConfig()
        summary = train_sentiment(data, output, config.replace(**given))
        evaluate = f"serac eval --task sentiment --artifact {output}"
    seconds = summary.get("seconds")
    console.print(f"[green]{task} artifact written to {output}[/green]"
                  + (f" ({float(seconds) / 60:.1f} min)" if seconds else ""))
    console.print(f"evaluate it: {evaluate}   ask it: serac ask --model {output} ...")


def _build_config(config_file, quick, data_dir, zsre_train, counterfact_train, seed, scope_steps, cf_steps,
                  cf_model, cf_method, encoder, cross_encoder):  # type: ignore[no-untyped-def]
    from serac.train.config import TrainConfig

    config = TrainConfig.load(config_file) if config_file else (TrainConfig.quick() if quick else TrainConfig())
    directory = data_dir or (None if (zsre_train or counterfact_train or config_file) else _default_data_dir())
    if data_dir is not None and not data_dir.is_dir():
        raise typer.BadParameter(f"--data-dir {data_dir} is not a directory")
    if directory is not None:
        if (directory / ZSRE_TRAIN).exists():
            config.data.zsre_train = str((directory / ZSRE_TRAIN).resolve())
        if (directory / COUNTERFACT_TRAIN).exists():
            config.data.counterfact_train = str((directory / COUNTERFACT_TRAIN).resolve())
    if zsre_train is not None:
        config.data.zsre_train = str(zsre_train.resolve())
    if counterfact_train is not None:
        config.data.counterfact_train = str(counterfact_train.resolve())
    if seed is not None:
        config.seed = seed
    if scope_steps is not None:
        config.scope.steps = scope_steps
    if cf_steps is not None:
        config.counterfactual.steps = cf_steps
    if cf_model is not None:
        config.counterfactual.model = cf_model
    if cf_method is not None:
        config.counterfactual.method = cf_method
    if encoder is not None:
        config.scope.encoder = encoder
    if cross_encoder:
        config.cross_encoder.enabled = True
    # Re-validate everything the options touched (dataclass checks run in __post_init__).
    config = TrainConfig.from_dict(config.to_dict())
    if not config.data.zsre_train and not config.data.counterfact_train:
        raise typer.BadParameter(
            "no training data found: pass --data-dir (a folder with zsre/zsre_mend_train-1k.json and/or "
            "counterfact/counterfact-train.json) or --zsre-train / --counterfact-train"
        )
    return config


def train_report_command(
    artifact: Optional[Path] = typer.Argument(None, help="Artifact directory (default: $SERAC_HOME/trained)."),
    out: Path = typer.Option(Path("benchmarks/extra"), "--out", help="Where training.md, training.json and the PNGs go."),
    evals: list[Path] = typer.Option([], "--eval", help="A `serac eval` results JSON of the trained editor (repeatable)."),
    notes: list[str] = typer.Option([], "--note", help="A sentence added under Notes (repeatable)."),
) -> None:
    """Write the training benchmark fragment (time, memory, loss curves, validation and eval scores)."""
    from serac.cli_support import cli_errors, console
    from serac.models import serac_home
    from serac.train.report import write_benchmark

    with cli_errors():
        path = write_benchmark(artifact or serac_home() / "trained", out, evals, notes)
        console.print(f"wrote {path}")


def register(app: typer.Typer) -> None:
    app.command("train")(train_command)
    app.command("train-report")(train_report_command)
