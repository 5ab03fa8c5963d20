"""The artifact directory `serac train` writes, in standard formats:

    scope_encoder/           sentence-transformers model (SentenceTransformer.save)
    cross_encoder/           sentence-transformers CrossEncoder (only with --cross-encoder)
    counterfactual_adapter/  peft adapter (LoRA)   -- or --
    counterfactual_model/    save_pretrained model + tokenizer (full fine-tuning)
    serac_config.json        SeracConfig with paths relative to the directory; written last, so a
                             directory holding it is complete
    train_config.json        the TrainConfig that produced it
    training_report.json     times, peak memory, validation metrics, loss curves
    loss_*.png               loss curves

``EditedModel.from_pretrained(directory)`` (or ``serac ask --model directory``) loads it.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any, Sequence

from serac.config import SeracConfig
from serac.editor import ADAPTER_DIR, CONFIG_FILE, CROSS_ENCODER_DIR, SCOPE_DIR
from serac.models import EMBEDDED_PREFIX
from serac.train.config import TrainConfig

FULL_MODEL_DIR = "counterfactual_model"
TRAIN_CONFIG_FILE = "train_config.json"
REPORT_FILE = "training_report.json"


def _portable(spec: str) -> str:
    """Model specs stay as given, except local paths, made absolute (the artifact may be read from
    another working directory)."""
    if spec.startswith(EMBEDDED_PREFIX) or not Path(spec).exists():
        return spec
    return str(Path(spec).resolve())


def build_serac_config(
    config: TrainConfig, threshold: float, cross_encoder_threshold: float | None = None,
    same_fact_threshold: float | None = None,
    num_edits: int | None = None,
    cross_encoder_floor: float | None = None,
) -> SeracConfig:
    """``num_edits``: how many retrieved edits the counterfactual reads (chosen on validation; default
    the training maximum)."""
    serac = SeracConfig()
    serac.base.model = _portable(config.base_model)
    serac.scope.encoder = SCOPE_DIR
    serac.scope.threshold = float(threshold)
    if same_fact_threshold is not None:  # absent from runs calibrated before it existed
        serac.scope.same_fact_threshold = float(same_fact_threshold)
    serac.scope.top_k = max(config.scope.top_k, config.counterfactual.num_edits)
    if cross_encoder_threshold is not None:
        serac.scope.cross_encoder = CROSS_ENCODER_DIR
        serac.scope.cross_encoder_threshold = float(cross_encoder_threshold)
        if cross_encoder_floor is not None:
            serac.scope.cross_encoder_floor = float(cross_encoder_floor)
    cf = config.counterfactual
    if cf.method == "lora":
        serac.counterfactual.model = _portable(cf.model)
        serac.counterfactual.adapter = ADAPTER_DIR
    else:
        serac.counterfactual.model = FULL_MODEL_DIR
        serac.counterfactual.adapter = None
    serac.counterfactual.kind = cf.kind
    serac.counterfactual.prompt = "trained"
    serac.counterfactual.num_edits = int(num_edits or cf.num_edits)
    return serac


def write_json(path: Path, data: Any) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(data, indent=2) + "\n")
    os.replace(tmp, path)


def write_serac_config(directory: Path, serac: SeracConfig) -> Path:
    path = directory / CONFIG_FILE
    write_json(path, serac.to_dict())
    return path


def plot_losses(path: Path, title: str, series: dict[str, Sequence[float]]) -> Path:
    """Raw per-step losses (faint) and a moving average (bold), one line per series."""
    from serac.extras import require

    matplotlib = require("matplotlib", "train", "the training report's loss plots")
    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4), dpi=110)
    for name, values in series.items():
        if not values:
            continue
        steps = range(1, len(values) + 1)
        line = ax.plot(steps, values, alpha=0.25, linewidth=0.8)[0]
        ax.plot(steps, _moving_average(values, max(1, len(values) // 20)), color=line.get_color(),
                linewidth=1.8, label=name)
    ax.set_xlabel("step")
    ax.set_ylabel("loss")
    ax.set_yscale("log")
    ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return path


def _moving_average(values: Sequence[float], window: int) -> list[float]:
    out, total = [], 0.0
    for i, value in enumerate(values):
        total += value
        if i >= window:
            total -= values[i - window]
        out.append(total / min(i + 1, window))
    return out
