"""MEND's training loop (``serac train --method mend``).

Each step draws ``edits_per_step`` training records (zsRE and CounterFact training files only), takes
the gradient pieces of their edit loss, turns them into one combined update with the editor, and
scores the edited model: the edit loss is the target NLL on the edit inputs and their rephrasings
after the update, the locality loss the KL divergence from the unedited to the edited model's
next-token distributions on unrelated inputs (each record's zsRE NQ question or CounterFact
same-relation prompt, at its answer tokens). Only the editor learns; the base model is frozen.

Batches are a pure function of (seed, step) and a checkpoint is written every ``checkpoint_every``
steps, so an interrupted run resumes to the same editor.
"""

from __future__ import annotations

import json
import resource
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from serac.base import HFTextModel, load_text_model
from serac.baselines.mend.config import CONFIG_FILE, REPORT_FILE, MendConfig
from serac.baselines.mend.edit import Batch, edit_factors, edited, encode, gradient_pieces, target_nll
from serac.baselines.mend.editor import MendEditor, save_editor
from serac.baselines.mend.model import SplitLM, find_targets
from serac.data import load_counterfact, load_zsre
from serac.errors import ConfigError
from serac.train.checkpoint import linear_schedule, load_checkpoint, save_checkpoint, step_rng

CHECKPOINT = Path("checkpoints") / "mend.pt"
HELD_OUT = 10  # records per file kept out of training to measure the editor before and after


@dataclass(frozen=True)
class Record:
    """One training edit: its input and target, a rephrasing, and an unrelated input with its answer."""

    input: str
    target: str
    rephrase: str
    loc_input: str
    loc_answer: str


def load_records(config: MendConfig) -> dict[str, list[Record]]:
    """Training records per source (the files' malformed records skipped)."""
    sources = {"zsre": (config.zsre_train, load_zsre), "counterfact": (config.counterfact_train, load_counterfact)}
    out: dict[str, list[Record]] = {}
    for source, (path, loader) in sources.items():
        if not path:
            continue
        examples = loader(path, skip_malformed=True)
        out[source] = [Record(e.edit_input, e.edit_target, e.in_scope[1].input if len(e.in_scope) > 1
                              else e.edit_input, e.out_of_scope[0].input, e.out_of_scope[0].target or "")
                       for e in examples if e.out_of_scope]
    if not out:
        raise ConfigError("MEND training has no data: set zsre_train and/or counterfact_train "
                          "(serac train --method mend --data-dir DIR)")
    return out


def kl_divergence(before: torch.Tensor, after: torch.Tensor) -> torch.Tensor:
    """Mean over positions of KL(before || after), both given as logits (n, vocab)."""
    log_p = torch.log_softmax(before, dim=-1)
    log_q = torch.log_softmax(after, dim=-1)
    return (log_p.exp() * (log_p - log_q)).sum(-1).mean()


class MendObjective:
    """The loss of one combined edit of some records, and its parts."""

    def __init__(self, lm: HFTextModel, split: SplitLM, editor: MendEditor, c_loc: float) -> None:
        self.lm, self.split, self.editor, self.c_loc = lm, split, editor, c_loc

    def __call__(self, records: list[Record], learn_stats: bool = False) -> dict[str, torch.Tensor]:
        n = len(records)
        scoped = encode(self.lm, [(r.input, r.target) for r in records] + [(r.rephrase, r.target) for r in records])
        loc = encode(self.lm, [(r.loc_input, r.loc_answer) for r in records], eos=False)
        hidden = self.split.bottom(scoped.ids, scoped.mask)  # (2n, seq, hidden): frozen part, once
        hidden_loc = self.split.bottom(loc.ids, loc.mask)
        # 1. gradient pieces of the edit loss on the edit inputs (the first n rows)
        edit = Batch(scoped.ids[:n], scoped.mask[:n], scoped.labels[:n])
        pieces, before = gradient_pieces(self.split, hidden[:n], edit)
        if learn_stats:
            for name, (u, delta) in pieces.items():
                self.editor.update_stats(name, torch.cat([u, delta], dim=-1))
        factors = edit_factors(self.editor, pieces)
        # 2. the unedited model's answers on the unrelated inputs
        rows, cols, _ = loc.label_positions()
        with torch.no_grad():
            loc_before = self.split.logits(self.split.top(hidden_loc, loc.mask), rows, cols)
        # 3. the edited model: edit loss on inputs + rephrasings, KL on the unrelated inputs
        with edited(self.split, factors):
            after = target_nll(self.split, self.split.top(hidden, scoped.mask), scoped)
            loc_after = self.split.logits(self.split.top(hidden_loc, loc.mask), rows, cols)
        kl = kl_divergence(loc_before, loc_after)
        edit_loss = after.mean()
        return {"loss": edit_loss + self.c_loc * kl, "edit_loss": edit_loss, "kl": kl,
                "before": before.mean(), "rephrase_after": after[n:].mean()}


def _freeze(model: torch.nn.Module) -> None:
    model.eval()
    for p in model.parameters():
        p.requires_grad_(False)


def build(config: MendConfig, lm: HFTextModel) -> tuple[MendConfig, SplitLM, MendEditor]:
    """The editor for ``lm``'s model (targets found from its structure unless the config names them)."""
    _freeze(lm.model)
    targets = config.targets or find_targets(lm.model, config.num_layers)
    config = config.replace(targets=targets)
    split = SplitLM(lm.model, targets)
    shapes = {n: (m.out_features, m.in_features) for n, m in split.modules.items()}
    return config, split, MendEditor(shapes, config.rank, config.alpha_init)


def make_optimizer(editor: MendEditor, config: MendConfig) -> torch.optim.Optimizer:
    alphas = list(editor.alpha.parameters())
    others = [p for n, p in editor.named_parameters() if not n.startswith("alpha.")]
    return torch.optim.Adam([{"params": others, "lr": config.lr}, {"params": alphas, "lr": config.alpha_lr}])


def evaluate(objective: MendObjective, records: list[Record]) -> dict[str, float]:
    """Mean losses of one edit at a time over held-out records (no learning)."""
    sums: dict[str, float] = {}
    for record in records:
        with torch.no_grad():
            parts = objective([record])
        for key, value in parts.items():
            sums[key] = sums.get(key, 0.0) + float(value)
    return {k: round(v / max(1, len(records)), 4) for k, v in sums.items()}


def train_mend(
    config: MendConfig | None,
    output: str | Path,
    *,
    resume: bool = False,
    overwrite: bool = False,
    progress: bool = True,
    log: Callable[[str], None] | None = None,
    lm: HFTextModel | None = None,
) -> dict[str, Any]:
    """Train (or resume) a MEND editor into ``output``; returns the training report. ``lm``: the base
    model already loaded (tests); otherwise ``config.base_model`` is loaded on the CPU."""
    say = log or (lambda _m: None)
    output = Path(output)
    checkpoint = output / CHECKPOINT
    if resume:
        if not checkpoint.exists():
            raise ConfigError(f"nothing to resume in {output}: {checkpoint} does not exist")
        config = MendConfig.from_dict(torch.load(checkpoint, weights_only=True)["extra"]["config"])
    elif output.exists() and any(output.iterdir()) and not overwrite:
        raise ConfigError(f"{output} is not empty; pass --overwrite to replace it, --resume to continue, "
                          "or --output elsewhere")
    elif output.exists() and overwrite:
        shutil.rmtree(output)
    assert config is not None
    began = time.perf_counter()
    records = load_records(config)
    held_out = [r for rs in records.values() for r in rs[-HELD_OUT:]]
    pools = {s: rs[:-HELD_OUT] for s, rs in records.items()}
    lm = lm or load_text_model(config.base_model, max_new_tokens=16, batch_size=1, device="cpu")
    torch.manual_seed(config.seed)  # the editor's initial weights
    config, split, editor = build(config, lm)
    objective = MendObjective(lm, split, editor, config.c_loc)
    optimizer = make_optimizer(editor, config)
    scheduler = linear_schedule(optimizer, config.steps, config.warmup)
    start, curve, report_extra = 0, [], {}
    if resume:
        state = load_checkpoint(checkpoint, modules={"editor": editor}, optimizer=optimizer, scheduler=scheduler)
        editor.load_state_dict({**editor.state_dict(), **state["extra"]["buffers"]})
        start, curve, report_extra = state["step"], state["extra"]["curve"], state["extra"]["report"]
        say(f"resuming at step {start} of {config.steps}")
    else:
        output.mkdir(parents=True, exist_ok=True)
        say(f"editing {len(split.modules)} matrices: {', '.join(split.modules)}")
        report_extra = {"held_out_before": evaluate(objective, held_out)}  # identity editor: a gradient step
        say(f"held-out edits with the untrained editor (a plain gradient step): {report_extra['held_out_before']}")
    sources = sorted(pools)
    from tqdm.auto import tqdm

    bar = tqdm(range(start, config.steps), initial=start, total=config.steps, desc="mend", disable=not progress)
    for step in bar:
        rng = step_rng(config.seed, step)
        chosen = []
        for _ in range(config.edits_per_step):
            source = ("counterfact" if rng.random() < config.counterfact_share else "zsre") if len(sources) > 1 \
                else sources[0]
            chosen.append(pools[source][int(rng.integers(len(pools[source])))])
        parts = objective(chosen, learn_stats=True)
        optimizer.zero_grad(set_to_none=True)
        parts["loss"].backward()
        torch.nn.utils.clip_grad_norm_(editor.parameters(), config.max_grad_norm)
        optimizer.step()
        scheduler.step()
        curve.append({k: round(float(v.detach()), 4) for k, v in parts.items()} | {"step": step + 1})
        bar.set_postfix(before=f"{curve[-1]['before']:.2f}", after=f"{curve[-1]['edit_loss']:.2f}",
                        kl=f"{curve[-1]['kl']:.3f}")
        if (step + 1) % config.checkpoint_every == 0 and step + 1 < config.steps:
            buffers = {n: b.clone() for n, b in editor.named_buffers()}
            save_checkpoint(checkpoint, step=step + 1, modules={"editor": editor}, optimizer=optimizer,
                            scheduler=scheduler, losses=[c["loss"] for c in curve],
                            extra={"buffers": buffers, "curve": curve, "report": report_extra,
                                   "config": config.to_dict()})
    bar.close()
    editor.eval()
    after = evaluate(objective, held_out)
    say(f"held-out edits with the trained editor: {after}")
    save_editor(output, editor, config)
    report = {
        **report_extra, "held_out_after": after, "held_out_records": len(held_out),
        "steps": config.steps, "edits_per_step": config.edits_per_step, "wall_s_this_run": round(time.perf_counter() - began, 1),
        "resumed_at": start, "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
        "threads": torch.get_num_threads(), "targets": config.targets,
        "alpha": {n: round(float(editor.step_size(n).detach()), 6) for n in editor.shapes},
        "training_records": {s: len(rs) for s, rs in pools.items()}, "curve": curve,
    }
    (output / REPORT_FILE).write_text(json.dumps(report, indent=1) + "\n")
    plot_curve(curve, output / "mend_training.png")
    if checkpoint.exists():
        checkpoint.unlink()
    if checkpoint.parent.is_dir() and not any(checkpoint.parent.iterdir()):
        checkpoint.parent.rmdir()
    say(f"wrote {output / CONFIG_FILE}")
    return report


def plot_curve(curve: list[dict[str, float]], path: Path, window: int = 20) -> Path | None:
    """Edit loss before / after the edit and locality KL per step (moving averages); None without matplotlib."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return None
    if not curve:
        return None

    def smooth(key: str) -> list[float]:
        values = [c[key] for c in curve]
        return [sum(values[max(0, i - window + 1) : i + 1]) / len(values[max(0, i - window + 1) : i + 1])
                for i in range(len(values))]

    steps = [c["step"] for c in curve]
    fig, (left, right) = plt.subplots(1, 2, figsize=(10, 3.5))
    left.plot(steps, smooth("before"), label="edit NLL before the edit")
    left.plot(steps, smooth("edit_loss"), label="edit NLL after (inputs + rephrasings)")
    left.plot(steps, smooth("rephrase_after"), label="rephrasings after")
    left.set_xlabel("step")
    left.set_ylabel("target NLL per token")
    left.legend(fontsize=8)
    right.plot(steps, smooth("kl"), color="tab:red")
    right.set_xlabel("step")
    right.set_ylabel("locality KL(unedited || edited)")
    fig.suptitle(f"MEND training (moving average over {window} steps)")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path
