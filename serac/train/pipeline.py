"""The whole training run, phase by phase, resumable:

    mine            load + split the training files; mine hard negatives with the pretrained
                    encoder; measure it on the validation split (the "before" numbers)
    scope           contrastive fine-tuning of the dual encoder       -> scope_encoder/
    calibrate       threshold on the validation split; "after" numbers
    cross_encoder   optional scope verifier and its threshold          -> cross_encoder/
                    (add_verifier trains one for a finished artifact)
    counterfactual  LoRA (or full) fine-tuning; exact match on validation queries with the edits
                    the trained scope encoder retrieves                -> counterfactual_adapter/
    finalize        serac_config.json (last), training_report.json, loss PNGs

Finished phases are recorded in ``checkpoints/state.json``; a phase interrupted mid-way resumes
from its own checkpoint. Each phase's wall time and the process's peak RSS are recorded.
"""

from __future__ import annotations

import json
import logging
import os
import platform
import resource
import shutil
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np

from serac.data import load_counterfact, load_zsre
from serac.editor import CONFIG_FILE
from serac.errors import ConfigError
from serac.train import artifacts
from serac.train.calibrate import (
    SourceScores,
    choose_same_fact_threshold,
    choose_threshold,
    score_same_fact,
    score_validation,
    summarize,
)
from serac.train.config import CrossEncoderTrainConfig, TrainConfig
from serac.train.pairs import (
    EditRecord,
    Neighbours,
    add_subject_negatives,
    mine_neighbours,
    records_from_examples,
    same_fact_pairs,
    split_records,
)

logger = logging.getLogger(__name__)

CHECKPOINT_DIR = "checkpoints"
STATE_FILE = "state.json"


@dataclass
class TrainingData:
    train: list[EditRecord]
    val: list[EditRecord]
    counts: dict[str, dict[str, int]] = field(default_factory=dict)


def load_training_data(config: TrainConfig) -> TrainingData:
    """Read the training files and hold out a validation split per dataset (by fact)."""
    config.data.check_has_data()
    data = config.data
    train: list[EditRecord] = []
    val: list[EditRecord] = []
    counts: dict[str, dict[str, int]] = {}
    sources = (
        ("zsre", data.zsre_train, load_zsre, data.zsre_limit, data.zsre_val),
        ("counterfact", data.counterfact_train, load_counterfact, data.counterfact_limit, data.counterfact_val),
    )
    for source, path, loader, limit, n_val in sources:
        if not path:
            continue
        # zsRE's MEND training file has a few records with an empty answer: skip them.
        records = records_from_examples(loader(path, limit, skip_malformed=True), source)
        part_train, part_val = split_records(records, min(n_val, len(records) // 2), config.seed)
        train += part_train
        val += part_val
        counts[source] = {"train": len(part_train), "validation": len(part_val)}
    if config.scope.subject_negatives:
        train = add_subject_negatives(train, per_record=config.scope.subject_negatives, seed=config.seed)
    return TrainingData(train, val, counts)


def _peak_rss_mb() -> float:
    return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)  # Linux: KiB


class RunState:
    """``checkpoints/state.json``: the config and the results of finished phases."""

    def __init__(self, directory: Path, config: TrainConfig) -> None:
        self.path = directory / CHECKPOINT_DIR / STATE_FILE
        self.config = config
        self.done: dict[str, dict[str, Any]] = {}

    @classmethod
    def load(cls, directory: Path) -> "RunState":
        path = directory / CHECKPOINT_DIR / STATE_FILE
        try:
            data = json.loads(path.read_text())
        except FileNotFoundError:
            raise ConfigError(f"nothing to resume in {directory}: {path} does not exist") from None
        state = cls(directory, TrainConfig.from_dict(data["config"]))
        state.done = data.get("done", {})
        return state

    def save(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        artifacts.write_json(self.path, {"config": self.config.to_dict(), "done": self.done})

    def finish(self, phase: str, result: dict[str, Any]) -> None:
        self.done[phase] = result
        self.save()


def run_training(
    config: TrainConfig | None,
    output: str | Path,
    *,
    resume: bool = False,
    overwrite: bool = False,
    progress: bool = True,
    keep_checkpoints: bool = False,
    command: str | None = None,
    log: Callable[[str], None] | None = None,
    threads: int | None = None,
) -> dict[str, Any]:
    """Run (or resume) a training run into ``output``; returns the training report.

    ``resume`` continues the run recorded in ``output`` with its saved config (``config`` must then
    be None or equal to it). Without it, ``output`` must not hold a run or an artifact unless
    ``overwrite``. ``threads`` sets torch's CPU threads for the run (None: torch's default)."""
    if threads is not None:
        import torch

        torch.set_num_threads(threads)
    output = Path(output)
    say = log or (lambda message: logger.info("%s", message))
    started = time.perf_counter()
    if resume:
        state = RunState.load(output)
        if config is not None and config.to_dict() != state.config.to_dict():
            raise ConfigError(
                f"--resume continues the run in {output} with its saved config, which differs from the one "
                "given; resume without changing options, or start over with --overwrite"
            )
        config = state.config
    else:
        config = config or TrainConfig()
        _prepare_fresh(output, overwrite)
        state = RunState(output, config)
        state.save()
        config.save(output / artifacts.TRAIN_CONFIG_FILE)
    config.data.check_has_data()
    ckpt = output / CHECKPOINT_DIR

    def phase(name: str, fn: Callable[[], dict[str, Any]]) -> dict[str, Any]:
        if name in state.done:
            say(f"{name}: already done, skipped")
            return state.done[name]
        say(f"{name}: started")
        t0 = time.perf_counter()
        result = fn()
        result.update(wall_s=round(time.perf_counter() - t0, 1), peak_rss_mb=_peak_rss_mb(),
                      load_average=[round(x, 2) for x in os.getloadavg()])
        state.finish(name, result)
        say(f"{name}: done in {result['wall_s']:.0f} s (peak RSS {result['peak_rss_mb']:.0f} MB)")
        return result

    data = load_training_data(config)
    say(f"data: {json.dumps(data.counts)}")
    neighbours_path = ckpt / "neighbours.npz"

    def mine() -> dict[str, Any]:
        from serac.train.scope import encode, load_sentence_encoder

        model = load_sentence_encoder(config.scope.encoder, config.device)
        neighbours = mine_neighbours(data.train, lambda t: encode(model, t), config.scope.mine_k)
        neighbours.save(str(neighbours_path))
        scores = score_validation(lambda t: encode(model, t), data.val)
        result: dict[str, Any] = {"data": data.counts}
        if scores:
            threshold, _ = choose_threshold(scores)
            result["pretrained_validation"] = summarize(scores, threshold, len(data.val))
        return result

    phase("mine", mine)
    neighbours = Neighbours.load(str(neighbours_path))

    def scope() -> dict[str, Any]:
        from serac.train.scope import load_sentence_encoder, train_scope_encoder

        model = load_sentence_encoder(config.scope.encoder, config.device)
        history = train_scope_encoder(model, data.train, neighbours, config.scope, config.seed,
                                      checkpoint=ckpt / "scope.pt", progress=progress)
        model.save(str(output / artifacts.SCOPE_DIR), create_model_card=False)
        return {"steps": config.scope.steps, "losses": history}

    phase("scope", scope)

    def calibrate() -> dict[str, Any]:
        from serac.config import ScopeConfig
        from serac.train.scope import encode, load_sentence_encoder

        model = load_sentence_encoder(str(output / artifacts.SCOPE_DIR), config.device)
        scores = score_validation(lambda t: encode(model, t), data.val)
        if not scores:
            say("calibrate: no validation split; keeping the default threshold")
            return {"threshold": ScopeConfig.threshold}
        threshold, objective = choose_threshold(scores)
        result = {"threshold": threshold, "objective": round(objective, 4),
                  "validation": summarize(scores, threshold, len(data.val))}
        # the same-fact judge: the default (pretrained) encoder, see ScopeConfig.same_fact_encoder
        pairs = same_fact_pairs(data.val, reference=data.train, seed=config.seed)
        judge = ScopeConfig.same_fact_encoder
        if pairs.other and judge:
            judge_model = load_sentence_encoder(judge)
            same, other = score_same_fact(lambda t: encode(judge_model, t), pairs)
            result["same_fact_threshold"], result["same_fact"] = choose_same_fact_threshold(same, other)
        return result

    calibration = phase("calibrate", calibrate)

    cross_result: dict[str, Any] | None = None
    if config.cross_encoder.enabled:
        cross_result = phase("cross_encoder", lambda: train_verifier(
            config, data, output / artifacts.SCOPE_DIR, output / artifacts.CROSS_ENCODER_DIR,
            ckpt / "cross_encoder.pt", progress))

    def counterfactual() -> dict[str, Any]:
        from serac.train.counterfactual import (
            load_trainable_lm,
            save_counterfactual,
            train_counterfactual,
        )

        lm = load_trainable_lm(config.counterfactual, config.seed, device=config.device)
        history = train_counterfactual(lm, data.train, neighbours, config.counterfactual, config.seed,
                                       checkpoint=ckpt / "counterfactual.pt", progress=progress)
        directory = output / (artifacts.ADAPTER_DIR if config.counterfactual.method == "lora" else artifacts.FULL_MODEL_DIR)
        save_counterfactual(lm, directory)
        result: dict[str, Any] = {"steps": config.counterfactual.steps, "losses": history,
                                  "num_edits": config.counterfactual.num_edits}
        if config.counterfactual.eval_examples and data.val:
            cases = _validation_cases(output, data.val, config)
            result.update(choose_num_edits(lm, cases, config.counterfactual.num_edits))
        return result

    cf_result = phase("counterfactual", counterfactual)

    # finalize: everything else first, serac_config.json last (its presence marks a complete artifact)
    plots = {"scope": output / "loss_scope.png", "counterfactual": output / "loss_counterfactual.png"}
    artifacts.plot_losses(plots["scope"], "scope encoder (contrastive + pairwise sigmoid)",
                          state.done["scope"]["losses"])
    artifacts.plot_losses(plots["counterfactual"], f"counterfactual model ({config.counterfactual.method})",
                          {"answer-token cross-entropy": cf_result["losses"]["loss"]})
    if cross_result is not None:
        plots["cross_encoder"] = output / "loss_cross_encoder.png"
        artifacts.plot_losses(plots["cross_encoder"], "cross-encoder re-ranker",
                              {"binary cross-entropy": cross_result["losses"]["loss"]})
    serac_config = artifacts.build_serac_config(
        config, calibration["threshold"], cross_result["threshold"] if cross_result is not None else None,
        cross_encoder_floor=config.cross_encoder.floor,
        num_edits=cf_result.get("num_edits"), same_fact_threshold=calibration.get("same_fact_threshold"),
    )
    phases = {name: {k: v for k, v in result.items() if k != "losses"} for name, result in state.done.items()}
    report = {
        "command": command,
        "finished": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "machine": {"platform": platform.platform(), "python": platform.python_version(),
                    "cpus": os.cpu_count(), "torch_threads": _torch_threads()},
        "total_wall_s": round(sum(r.get("wall_s", 0.0) for r in state.done.values()), 1),
        "this_process_wall_s": round(time.perf_counter() - started, 1),
        "peak_rss_mb": max(r.get("peak_rss_mb", 0.0) for r in state.done.values()),
        "threshold": serac_config.scope.threshold,
        "phases": phases,
        "losses": {name: result["losses"] for name, result in state.done.items() if "losses" in result},
        "plots": {name: path.name for name, path in plots.items()},
        "serac_config": serac_config.to_dict(),
        "train_config": config.to_dict(),
    }
    artifacts.write_json(output / artifacts.REPORT_FILE, report)
    artifacts.write_serac_config(output, serac_config)
    if not keep_checkpoints:
        shutil.rmtree(ckpt, ignore_errors=True)
    say(f"finished: {output} (total {report['total_wall_s']:.0f} s, peak RSS {report['peak_rss_mb']:.0f} MB)")
    return report


def train_verifier(config: TrainConfig, data: TrainingData, scope_dir: Path, target: Path, checkpoint: Path,
                   progress: bool = True) -> dict[str, Any]:
    """Train the scope verifier (cross-encoder) against the trained dual encoder in ``scope_dir``,
    save it in ``target`` and calibrate its threshold on the validation split."""
    from serac.train.cross_encoder import load_cross_encoder, train_cross_encoder, verifier_pairs
    from serac.train.scope import encode, load_sentence_encoder

    options = config.cross_encoder
    train = data.train
    if options.subject_negatives:
        train = add_subject_negatives(train, per_record=options.subject_negatives, seed=config.seed)
    dual = load_sentence_encoder(str(scope_dir), config.device)
    embed = lambda t: encode(dual, t)  # noqa: E731
    positives, negatives = verifier_pairs(embed, train, options.candidates, options.chain_negatives,
                                          options.rephrasing_negatives)
    model = load_cross_encoder(options.model, config.seed, config.device)
    history = train_cross_encoder(model, positives, negatives, options, config.seed, checkpoint=checkpoint,
                                  progress=progress)
    model.save(str(target), create_model_card=False)
    scores = verifier_validation(config, data, embed, model, options.floor)
    result: dict[str, Any] = {"steps": options.steps, "losses": history,
                              "pairs": {"positive": len(positives), "negative": len(negatives)}}
    if scores:
        threshold, objective = choose_threshold(scores)
        result.update(threshold=threshold, objective=round(objective, 4),
                      validation=summarize(scores, threshold, len(data.val)))
    else:
        result["threshold"] = 0.5
    return result


def verifier_validation(config: TrainConfig, data: TrainingData, embed: Callable[[Sequence[str]], np.ndarray],
                        model: Any, floor: float) -> dict[str, SourceScores]:
    """The verifier's calibration scores: the validation split with its same-subject questions,
    each query's candidates read above ``floor`` (``score_validation_reranked``)."""
    from serac.train.cross_encoder import score_validation_reranked

    options = config.cross_encoder
    val = data.val
    if options.subject_negatives:
        val = add_subject_negatives(val, reference=data.train, per_record=options.subject_negatives, seed=config.seed)
    return score_validation_reranked(embed, model, val, config.scope.top_k, floor, options.chain_negatives)


def add_verifier(artifact: Path, options: CrossEncoderTrainConfig | None = None, progress: bool = True,
                 log: Callable[[str], None] | None = None, threads: int | None = None,
                 device: str | None = None) -> dict[str, Any]:
    """Train a scope verifier for a finished `serac train` artifact (its scope encoder, its training
    files and validation split, from its train_config.json) and switch the artifact to it: the
    verifier is written to ``cross_encoder/``, then ``serac_config.json`` is rewritten to use it.
    Nothing else is retrained. ``options``: the verifier's training (default: this version's
    defaults, not the artifact's saved ones). An interrupted run resumes from its checkpoint."""
    from serac.config import SeracConfig

    say = log or logger.info
    artifact = Path(artifact)
    config_file = artifact / artifacts.TRAIN_CONFIG_FILE
    if not (artifact / CONFIG_FILE).is_file() or not config_file.is_file() or not (artifact / artifacts.SCOPE_DIR).is_dir():
        raise ConfigError(f"{artifact} is not a finished `serac train` artifact (it needs {CONFIG_FILE}, "
                          f"{artifacts.TRAIN_CONFIG_FILE} and {artifacts.SCOPE_DIR}/); train one with `serac train`")
    if threads is not None:
        import torch

        torch.set_num_threads(threads)
    config = TrainConfig.load(config_file)
    if device is not None:
        config = config.replace(device=device)
    config.cross_encoder = options or CrossEncoderTrainConfig()
    config.cross_encoder.enabled = True
    data = load_training_data(config)
    say(f"verifier: training on {len(data.train)} edits, calibrating on {len(data.val)}")
    ckpt = artifact / CHECKPOINT_DIR
    ckpt.mkdir(exist_ok=True)
    staging = artifact / (artifacts.CROSS_ENCODER_DIR + ".tmp")
    t0 = time.perf_counter()
    result = train_verifier(config, data, artifact / artifacts.SCOPE_DIR, staging, ckpt / "cross_encoder.pt", progress)
    result.update(wall_s=round(time.perf_counter() - t0, 1), peak_rss_mb=_peak_rss_mb())
    shutil.rmtree(artifact / artifacts.CROSS_ENCODER_DIR, ignore_errors=True)
    staging.rename(artifact / artifacts.CROSS_ENCODER_DIR)
    artifacts.plot_losses(artifact / "loss_cross_encoder.png", "scope verifier (cross-encoder)",
                          {"binary cross-entropy": result["losses"]["loss"]})
    report_file = artifact / artifacts.REPORT_FILE
    report = json.loads(report_file.read_text()) if report_file.is_file() else {}
    report.setdefault("phases", {})["cross_encoder"] = {k: v for k, v in result.items() if k != "losses"}
    report.setdefault("losses", {})["cross_encoder"] = result["losses"]
    report.setdefault("plots", {})["cross_encoder"] = "loss_cross_encoder.png"
    report["train_config"] = config.to_dict()
    artifacts.write_json(report_file, report)
    config.save(config_file)
    serac_config = SeracConfig.load(artifact / CONFIG_FILE)
    serac_config.scope.cross_encoder = artifacts.CROSS_ENCODER_DIR
    serac_config.scope.cross_encoder_threshold = float(result["threshold"])
    serac_config.scope.cross_encoder_floor = float(config.cross_encoder.floor)
    artifacts.write_serac_config(artifact, serac_config)  # last: the artifact uses the verifier from here on
    shutil.rmtree(ckpt, ignore_errors=True)
    say(f"verifier: done in {result['wall_s']:.0f} s, threshold {result['threshold']:.3f}")
    return result


def _prepare_fresh(output: Path, overwrite: bool) -> None:
    existing = [p for p in (output / CONFIG_FILE, output / CHECKPOINT_DIR) if p.exists()]
    if existing and not overwrite:
        what = "an unfinished run (resume it with --resume)" if (output / CHECKPOINT_DIR).exists() else "a trained artifact"
        raise ConfigError(f"{output} already holds {what}; pass --overwrite to start over there, or choose another --output")
    # The config goes first: a directory without it is never mistaken for a usable artifact.
    (output / CONFIG_FILE).unlink(missing_ok=True)
    for name in (CHECKPOINT_DIR, artifacts.SCOPE_DIR, artifacts.CROSS_ENCODER_DIR, artifacts.ADAPTER_DIR,
                 artifacts.FULL_MODEL_DIR):
        shutil.rmtree(output / name, ignore_errors=True)
    output.mkdir(parents=True, exist_ok=True)


def choose_num_edits(lm: Any, cases: list, max_edits: int) -> dict[str, Any]:
    """How many retrieved edits the counterfactual model should read: the k in 1..max_edits with the
    best exact match on held-out queries (ties: the fewest, the cheapest prompt). More edits let it
    reach the right one when retrieval ranks it second, and see conflicting edits of one fact; fewer
    leave less to confuse it. Returns the choice and the exact match at every k."""
    from serac.train.counterfactual import evaluate_generation

    by_k = {k: evaluate_generation(lm, cases, k) for k in range(1, max_edits + 1)}
    best = max(by_k, key=lambda k: (by_k[k]["exact_match"], -k))
    return {"num_edits": best, "validation_generation": by_k[best],
            "exact_match_by_num_edits": {str(k): r["exact_match"] for k, r in by_k.items()}}


def _validation_cases(output: Path, val: list[EditRecord], config: TrainConfig) -> list:
    """Validation rephrasings with the edits the trained scope encoder retrieves for them (all
    validation edits indexed at once), as the editor would hand them to the counterfactual model."""
    import faiss

    from serac.edits import Edit
    from serac.train.counterfactual import GenerationCase
    from serac.train.scope import encode, load_sentence_encoder

    rng = np.random.default_rng([config.seed, 99])
    rows = [(i, q) for i, r in enumerate(val) for q in r.positives]
    if not rows:
        return []
    picked = [rows[int(i)] for i in rng.choice(len(rows), size=min(config.counterfactual.eval_examples, len(rows)),
                                               replace=False)]
    model = load_sentence_encoder(str(output / artifacts.SCOPE_DIR), config.device)
    keys = encode(model, [r.key for r in val])
    index = faiss.IndexFlatIP(keys.shape[1])
    index.add(keys)
    _, ids = index.search(encode(model, [q for _, q in picked]), min(config.counterfactual.num_edits, len(val)))
    # Edits are "made" in file order (ids), as an evaluation applies them; the newest edit of a fact wins.
    newest: dict[tuple[str, str], str] = {}
    for record in val:
        newest[record.group] = record.target
    return [
        GenerationCase(
            query=query,
            edits=tuple(Edit(int(j) + 1, val[j].key, val[j].target, 0.0) for j in row if j >= 0),
            accepted=(newest[val[i].group],),
        )
        for (i, query), row in zip(picked, ids)
    ]


def _torch_threads() -> int:
    import torch

    return torch.get_num_threads()
