"""Checkpoints a training loop can resume from: trainable weights, optimizer, schedule, RNG, losses.

Batches are a pure function of (seed, step) (see ``step_rng``), and the torch RNG state (dropout)
is restored, so a resumed run takes exactly the steps an uninterrupted one would have taken.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np
import torch


def step_rng(seed: int, step: int, stream: int = 0) -> np.random.Generator:
    """The generator for one step's sampling: independent of every step before it."""
    return np.random.default_rng([seed, stream, step])


def trainable_state(module: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {name: p.detach().clone() for name, p in module.named_parameters() if p.requires_grad}


def load_trainable_state(module: torch.nn.Module, state: dict[str, torch.Tensor]) -> None:
    params = dict(module.named_parameters())
    missing = [name for name in state if name not in params]
    if missing:
        raise ValueError(f"checkpoint holds parameters the model lacks: {', '.join(missing[:5])}")
    with torch.no_grad():
        for name, value in state.items():
            params[name].copy_(value)


def save_checkpoint(
    path: str | Path,
    *,
    step: int,
    modules: dict[str, torch.nn.Module],
    optimizer: torch.optim.Optimizer,
    scheduler: Any,
    losses: list[float],
    extra: dict[str, Any] | None = None,
) -> None:
    """Write atomically (temp file, then rename): a run killed mid-save keeps its last checkpoint."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    state = {
        "step": step,
        "modules": {name: trainable_state(m) for name, m in modules.items()},
        "optimizer": optimizer.state_dict(),
        "scheduler": scheduler.state_dict(),
        "torch_rng": torch.get_rng_state(),
        "losses": list(losses),
        "extra": extra or {},
    }
    tmp = path.with_name(path.name + ".tmp")
    torch.save(state, tmp)
    os.replace(tmp, path)


def load_checkpoint(
    path: str | Path,
    *,
    modules: dict[str, torch.nn.Module],
    optimizer: torch.optim.Optimizer,
    scheduler: Any,
) -> dict[str, Any]:
    """Restore everything ``save_checkpoint`` wrote; returns the step, losses and extras."""
    state = torch.load(Path(path), map_location="cpu", weights_only=True)
    for name, module in modules.items():
        load_trainable_state(module, state["modules"][name])
    optimizer.load_state_dict(state["optimizer"])
    scheduler.load_state_dict(state["scheduler"])
    torch.set_rng_state(state["torch_rng"])
    return {"step": int(state["step"]), "losses": list(state["losses"]), "extra": state.get("extra", {})}


def linear_schedule(optimizer: torch.optim.Optimizer, steps: int, warmup: float) -> torch.optim.lr_scheduler.LambdaLR:
    """Linear warm-up over ``warmup`` of the steps, then linear decay to zero."""
    warm = max(1, int(round(steps * warmup)))

    def factor(step: int) -> float:
        if step < warm:
            return (step + 1) / warm
        return max(0.0, (steps - step) / max(1, steps - warm))

    return torch.optim.lr_scheduler.LambdaLR(optimizer, factor)
