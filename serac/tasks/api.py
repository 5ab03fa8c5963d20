"""The FC and sentiment tasks as library calls (what ``serac train/eval --task``, ``serac tasks`` and
the tasks report call):

    train_task("fc", out_dir, data=VITAMINC_DIR)            -> training summary (dict)
    eval_task("fc", model_dir, data=VITAMINC_DIR)           -> result rows (harness schema)
    build_task_data("sentiment", out_dir, counterfact=..., zsre=...)   -> data file path
    train_task("sentiment", out_dir, data=SENTIMENT_DIR)
    eval_task("sentiment", model_dir, data=SENTIMENT_DIR)
    task_results("fc", rows, settings)                      -> one RunResult per mode (eval reports)
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any, Sequence

from serac.errors import ConfigError
from serac.tasks import BATCH_SIZES, TASKS

logger = logging.getLogger(__name__)

DEFAULT_SHARED = Path("../shared/data")


def _check_task(task: str) -> None:
    if task not in TASKS:
        raise ConfigError(f"unknown task {task!r}; valid tasks: {', '.join(TASKS)}")


def _override(config: Any, overrides: dict) -> Any:
    """``config`` with the options that were given (None: keep the default), validated again."""
    return config.replace(**{key: value for key, value in overrides.items() if value is not None})


def _vitaminc_files(data: str | Path | Sequence[str | Path], split: str) -> list[Path]:
    """A VitaminC sample directory -> its train_*.jsonl (split "train") or test.jsonl ("eval");
    explicit files are used as given."""
    if isinstance(data, (str, Path)) and Path(data).is_dir():
        pattern = "train_*.jsonl" if split == "train" else "test.jsonl"
        files = sorted(Path(data).glob(pattern))
        if not files:
            raise ConfigError(f"{data} has no {pattern}; pass the vitaminc_sample directory or the files")
        return files
    return [Path(p) for p in ([data] if isinstance(data, (str, Path)) else data)]


# -- the functions serac train / serac eval call ---------------------------------------------------
def default_task_dir(task: str) -> Path:
    """Where ``serac train --task TASK`` writes its artifact by default (``$SERAC_HOME/tasks/TASK``)."""
    from serac.models import serac_home

    _check_task(task)
    return serac_home() / "tasks" / task


def task_data(task: str, shared: Path, sentiment_data: Path | None = None, rebuild: bool = False) -> tuple[Path, bool]:
    """A task's training/evaluation data under the ``shared/data`` layout, and whether it was just built.

    fc reads ``vitaminc_sample/`` as is. sentiment has no public copy here, so its data is built once
    (chat-model replies judged by VADER, topics from the zsRE/CounterFact *train* files) into
    ``sentiment_data`` (default ``$SERAC_HOME/tasks/sentiment-data``) and reused after that.
    """
    _check_task(task)
    if task == "fc":
        data = shared / "vitaminc_sample"
        if not data.is_dir():
            raise ConfigError(f"{data} not found: pass the folder that holds vitaminc_sample/ (e.g. ../shared/data)")
        return data, False
    from serac.tasks.sentiment.data import default_data_dir

    data = sentiment_data or default_data_dir()
    if not rebuild and (data / "sentiment.jsonl").exists():
        return data, False
    logger.warning("building the sentiment data set in %s (chat-model replies; about 10 min on 2 CPU cores)", data)
    build_task_data(
        "sentiment",
        data,
        counterfact=shared / "counterfact" / "counterfact-train.json",
        zsre=shared / "zsre" / "zsre_mend_train-1k.json",
    )
    return data, True


def build_task_data(task: str, out_dir: str | Path | None = None, **options: Any) -> Path:
    """Build a task's data set. Only ``sentiment`` has a recipe (FC reads VitaminC as is).
    Options: ``counterfact``, ``zsre`` (topic sources) and any ``SentimentRecipe`` field."""
    _check_task(task)
    if task != "sentiment":
        raise ConfigError("only the sentiment task builds its data; fc reads the VitaminC files directly")
    from serac.tasks.sentiment.data import SentimentRecipe, build_sentiment_data

    counterfact, zsre = options.pop("counterfact", None), options.pop("zsre", None)
    recipe = _override(SentimentRecipe(), options)
    return build_sentiment_data(out_dir, counterfact=counterfact, zsre=zsre, recipe=recipe)


def train_task(task: str, out_dir: str | Path, data: Any = None, **options: Any) -> dict:
    """Train a task's models into ``out_dir``. ``data``: for fc the vitaminc_sample directory (its
    train_*.jsonl) or files; for sentiment the directory built by ``build_task_data`` (default
    ``$SERAC_HOME/tasks/sentiment-data``). ``options`` override the task's training config fields."""
    _check_task(task)
    if task == "fc":
        from serac.tasks.fc.train import FCTrainConfig, train_fc

        if data is None:
            raise ConfigError("fc training needs data: the vitaminc_sample directory or VitaminC JSONL files")
        return train_fc(_vitaminc_files(data, "train"), out_dir, _override(FCTrainConfig(), options))
    from serac.tasks.sentiment.data import default_data_dir
    from serac.tasks.sentiment.train import SentimentTrainConfig, train_sentiment

    return train_sentiment(data or default_data_dir(), out_dir, _override(SentimentTrainConfig(), options))


def eval_task(
    task: str,
    model_dir: str | Path,
    data: Any = None,
    *,
    methods: Sequence[str] | None = None,
    batch_sizes: Sequence[int] = BATCH_SIZES,
    sequential: bool = True,
    out: str | Path | None = None,
    **options: Any,
) -> list[dict]:
    """Evaluate a trained task artifact; returns rows ``{"task", "method", "mode", "n_edits",
    "scoring", "metric", "value"}`` (also written to ``out`` as JSON when given)."""
    _check_task(task)
    if task == "fc":
        from serac.data import load_vitaminc
        from serac.tasks.fc.data import build_fc_edits
        from serac.tasks.fc.evaluate import METHODS, FCEvalConfig, evaluate_fc
        from serac.tasks.fc.model import load_parts

        if data is None:
            raise ConfigError(
                "fc evaluation needs data: the vitaminc_sample directory or VitaminC JSONL files"
            )
        config = _override(
            FCEvalConfig(
                methods=tuple(methods or METHODS), batch_sizes=tuple(batch_sizes), sequential=sequential
            ),
            options,
        )
        edits = build_fc_edits(load_vitaminc(_vitaminc_files(data, "eval")))
        rows = evaluate_fc(load_parts(model_dir), edits, config)
    else:
        rows = _eval_sentiment(model_dir, data, methods, batch_sizes, sequential, options)
    if out is not None:
        from serac.tasks.common import write_rows

        write_rows(rows, out)
    return rows


def _eval_sentiment(model_dir, data, methods, batch_sizes, sequential, options) -> list[dict]:
    from serac.base import load_options, load_text_model
    from serac.counterfactual import with_adapter
    from serac.editor import load_artifact_config
    from serac.scope import SentenceEncoder
    from serac.tasks.sentiment.data import VaderJudge, default_data_dir, load_sentiment_data
    from serac.tasks.sentiment.evaluate import METHODS, SentimentEvalConfig, evaluate_sentiment

    artifact = load_artifact_config(model_dir)
    config = _override(
        SentimentEvalConfig(
            methods=tuple(methods or METHODS), batch_sizes=tuple(batch_sizes), sequential=sequential
        ),
        options,
    )
    kwargs = dict(max_new_tokens=config.max_new_tokens, batch_size=artifact.base.batch_size)
    base = load_text_model(artifact.base.model, artifact.base.kind, **kwargs, **load_options(artifact.base))
    counterfactual = load_text_model(artifact.counterfactual.model, artifact.counterfactual.kind, **kwargs,
                                     **load_options(artifact.counterfactual))
    if artifact.counterfactual.adapter:
        counterfactual.model = with_adapter(counterfactual.model, artifact.counterfactual.adapter)
    # every eval topic is an edit; topics without kept replies of both sentiments only lack the
    # paper's teacher-forced ES
    records = [
        r for r in load_sentiment_data(data or default_data_dir(), usable_only=False) if r.split == "eval"
    ]
    return evaluate_sentiment(
        base,
        counterfactual,
        SentenceEncoder(artifact.scope.encoder),
        artifact.scope.threshold,
        records,
        VaderJudge(),
        config,
        top_k=artifact.scope.top_k,
    )


def task_results(task: str, rows: Sequence[dict], settings: dict[str, Any]) -> list[Any]:
    """A task's result rows as one :class:`serac.eval.results.RunResult` per mode, so ``serac eval
    --task fc|sentiment`` writes the same JSON, markdown and plots as the QA benchmarks."""
    from serac.eval.results import ROW_KEYS, RunResult, Score

    return [RunResult(task, mode, dict(settings), [Score(**{k: r[k] for k in ROW_KEYS}) for r in rows
                                                   if r["mode"] == mode])
            for mode in dict.fromkeys(r["mode"] for r in rows)]



def task_methods(task: str, methods: Sequence[str]) -> list[str] | None:
    """The names in ``methods`` that ``task`` evaluates (its own ``METHODS``); None (its defaults) when
    none of them is one of its methods."""
    import importlib

    _check_task(task)
    valid = importlib.import_module(f"serac.tasks.{task}.evaluate").METHODS
    return [m for m in methods if m in valid] or None
