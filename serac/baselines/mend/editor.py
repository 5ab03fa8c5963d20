"""MEND's editor networks and the artifact they are saved in.

For an edited matrix W (d_out x d_in), the fine-tuning gradient of a batch is a sum of rank-one
pieces, one per token: ``grad W = sum_t delta_t u_t^T`` (u_t: the matrix's input at token t,
delta_t: the loss gradient with respect to its output there). The editor maps each
``z_t = [u_t; delta_t]`` to ``[u~_t; delta~_t]`` and the edit is ``W <- W - alpha * sum_t delta~_t u~_t^T``.

Per matrix shape, one low-rank residual MLP, shared by every matrix of that shape (gate and up
projections of all edited blocks share one, down projections another), as in the paper; per
matrix, a scale and shift of its output and a learned step size ``alpha``. Inputs are normalised by
running statistics gathered in training (frozen afterwards). The MLP's output matrix starts at zero,
so an untrained editor is the identity and its first edit is a plain gradient step of size alpha.
"""

from __future__ import annotations

import json
from pathlib import Path

import torch
from torch import nn

from serac.baselines.mend.config import CONFIG_FILE, WEIGHTS_FILE, MendConfig
from serac.errors import ModelNotAvailableError


def _key(target: str) -> str:
    return target.replace(".", "__")  # module names are not valid ModuleDict keys


def shape_key(shape: tuple[int, int]) -> str:
    return f"{shape[0]}x{shape[1]}"


class LowRankMLP(nn.Module):
    """``z + U relu(V z + b)``, rank ``rank``; U starts at zero (the identity)."""

    def __init__(self, dim: int, rank: int) -> None:
        super().__init__()
        self.down = nn.Linear(dim, rank)
        self.up = nn.Linear(rank, dim, bias=False)
        nn.init.xavier_uniform_(self.down.weight)
        nn.init.zeros_(self.down.bias)
        nn.init.zeros_(self.up.weight)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return z + self.up(torch.relu(self.down(z)))


class MendEditor(nn.Module):
    """The editor for a set of matrices, given as ``{name: (d_out, d_in)}``."""

    def __init__(self, shapes: dict[str, tuple[int, int]], rank: int, alpha_init: float) -> None:
        super().__init__()
        self.shapes = {name: (int(s[0]), int(s[1])) for name, s in shapes.items()}
        self.nets = nn.ModuleDict({shape_key(s): LowRankMLP(s[0] + s[1], rank) for s in set(self.shapes.values())})
        self.scale = nn.ParameterDict({_key(n): nn.Parameter(torch.ones(sum(s))) for n, s in self.shapes.items()})
        self.shift = nn.ParameterDict({_key(n): nn.Parameter(torch.zeros(sum(s))) for n, s in self.shapes.items()})
        self.alpha = nn.ParameterDict({_key(n): nn.Parameter(torch.tensor(float(alpha_init)))
                                       for n in self.shapes})
        for name, s in self.shapes.items():  # running statistics of z = [u; delta] (Welford)
            self.register_buffer(f"count_{_key(name)}", torch.zeros((), dtype=torch.float64))
            self.register_buffer(f"mean_{_key(name)}", torch.zeros(sum(s), dtype=torch.float64))
            self.register_buffer(f"m2_{_key(name)}", torch.zeros(sum(s), dtype=torch.float64))

    def _stats(self, name: str) -> tuple[torch.Tensor, torch.Tensor]:
        key = _key(name)
        count, mean, m2 = (getattr(self, f"{p}_{key}") for p in ("count", "mean", "m2"))
        if float(count) < 2:
            return torch.zeros_like(mean, dtype=torch.float32), torch.ones_like(mean, dtype=torch.float32)
        std = (m2 / (count - 1)).sqrt().clamp(min=1e-8)
        return mean.float(), std.float()

    @torch.no_grad()
    def update_stats(self, name: str, z: torch.Tensor) -> None:
        """Fold the rows of ``z`` (n, d_in + d_out) into the running mean and variance."""
        key = _key(name)
        count, mean, m2 = (getattr(self, f"{p}_{key}") for p in ("count", "mean", "m2"))
        z = z.detach().double()
        n = z.shape[0]
        if n == 0:
            return
        batch_mean = z.mean(0)
        batch_m2 = ((z - batch_mean) ** 2).sum(0)
        total = count + n
        delta = batch_mean - mean
        mean += delta * n / total
        m2 += batch_m2 + delta**2 * count * n / total
        count.fill_(float(total))

    def forward(self, name: str, u: torch.Tensor, delta: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(u~, delta~) for rows u (n, d_in), delta (n, d_out) of matrix ``name``."""
        d_out, d_in = self.shapes[name]
        z = torch.cat([u, delta], dim=-1).float()
        mean, std = self._stats(name)
        normed = (z - mean) / std
        edited = self.nets[shape_key((d_out, d_in))](normed)
        edited = edited * self.scale[_key(name)] + self.shift[_key(name)]
        out = edited * std + mean  # back to the scale of the raw pieces: identity when untrained
        return out[:, :d_in], out[:, d_in:]

    def step_size(self, name: str) -> torch.Tensor:
        return self.alpha[_key(name)]


def save_editor(directory: str | Path, editor: MendEditor, config: MendConfig) -> None:
    """Write the artifact: ``mend_config.json`` (base model, edited matrices, settings) and the weights."""
    from safetensors.torch import save_file

    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    state = {k: v.detach().contiguous().cpu() for k, v in editor.state_dict().items()}
    save_file(state, str(directory / WEIGHTS_FILE))
    data = config.to_dict()
    data["shapes"] = {name: list(shape) for name, shape in editor.shapes.items()}
    (directory / CONFIG_FILE).write_text(json.dumps(data, indent=2) + "\n")


def load_editor(directory: str | Path) -> tuple[MendEditor, MendConfig]:
    """The editor and config :func:`save_editor` wrote, exactly."""
    from safetensors.torch import load_file

    directory = Path(directory)
    path = directory / CONFIG_FILE
    if not path.exists() or not (directory / WEIGHTS_FILE).exists():
        raise ModelNotAvailableError(f"{directory} is not a MEND artifact (no {CONFIG_FILE} and {WEIGHTS_FILE}); "
                                     "run `serac train --method mend`")
    data = json.loads(path.read_text())
    shapes = {name: tuple(shape) for name, shape in data.pop("shapes", {}).items()}
    config = MendConfig.from_dict(data)
    editor = MendEditor(shapes, config.rank, config.alpha_init)  # type: ignore[arg-type]
    editor.load_state_dict(load_file(str(directory / WEIGHTS_FILE)))
    return editor.eval(), config
