"""One MEND edit, step by step: encode the (input, target) pairs as the base model sees them, take
the rank-one pieces of the edit loss's gradient at each edited matrix, pass them through the editor,
and either add the resulting update to the weights (:func:`weight_updates`) or, in training, apply
it on the fly with forward hooks so the loss after the edit is differentiable in the editor
(:func:`edited`)."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from serac.base import HFTextModel
from serac.baselines.mend.editor import MendEditor
from serac.baselines.mend.model import SplitLM


@dataclass
class Batch:
    """Right-padded token ids, attention mask and labels (-100 outside the target tokens)."""

    ids: torch.Tensor  # (batch, seq)
    mask: torch.Tensor  # (batch, seq)
    labels: torch.Tensor  # (batch, seq)

    def label_positions(self) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(rows, positions whose logits predict a label, the labels): logits at p predict token p+1."""
        rows, cols = torch.nonzero(self.labels[:, 1:] != -100, as_tuple=True)
        return rows, cols, self.labels[rows, cols + 1]


def encode(lm: HFTextModel, pairs: Sequence[tuple[str, str]], eos: bool = True) -> Batch:
    """Each (prompt, target) formatted as ``lm`` formats prompts (its chat template), the target's
    tokens as ``lm`` scores them, then end-of-sequence when ``eos`` (the answer should stop there)."""
    tokenizer = lm.tokenizer
    rows = []
    for prompt, target in pairs:
        text = lm.format(prompt)
        prompt_ids = tokenizer(text, add_special_tokens=not lm.use_chat_template)["input_ids"]
        target_ids = lm._target_ids(text, target) + ([tokenizer.eos_token_id] if eos else [])
        rows.append((prompt_ids, target_ids))
    width = max(len(p) + len(t) for p, t in rows)
    ids = torch.full((len(rows), width), tokenizer.pad_token_id, dtype=torch.long)
    labels = torch.full((len(rows), width), -100, dtype=torch.long)
    mask = torch.zeros((len(rows), width), dtype=torch.long)
    for r, (p, t) in enumerate(rows):
        seq = p + t
        ids[r, : len(seq)] = torch.tensor(seq)
        labels[r, len(p) : len(seq)] = torch.tensor(t)
        mask[r, : len(seq)] = 1
    return Batch(ids, mask, labels)


def target_nll(split: SplitLM, final: torch.Tensor, batch: Batch) -> torch.Tensor:
    """Per row, the mean negative log-likelihood of its target tokens: (batch,)."""
    rows, cols, gold = batch.label_positions()
    logits = split.logits(final, rows, cols)
    nll = torch.nn.functional.cross_entropy(logits, gold, reduction="none")
    per_row = torch.zeros(batch.ids.shape[0], dtype=nll.dtype).index_add(0, rows, nll)
    counts = torch.zeros(batch.ids.shape[0], dtype=nll.dtype).index_add(0, rows, torch.ones_like(nll))
    return per_row / counts.clamp(min=1)


Pieces = dict[str, tuple[torch.Tensor, torch.Tensor]]  # matrix -> (u rows (n, d_in), delta rows (n, d_out))


def gradient_pieces(split: SplitLM, hidden: torch.Tensor, batch: Batch) -> tuple[Pieces, torch.Tensor]:
    """The rank-one pieces of the gradient of the summed edit loss (each edit's mean target NLL) at
    every edited matrix, one row per non-padding token, and the per-edit losses before the edit.
    ``hidden``: ``split.bottom`` of the batch."""
    inputs: dict[str, torch.Tensor] = {}
    outputs: dict[str, torch.Tensor] = {}

    def recorder(name: str) -> Any:
        def hook(_module: nn.Module, args: tuple[torch.Tensor, ...], output: torch.Tensor) -> torch.Tensor:
            inputs[name] = args[0].detach()
            if not output.requires_grad:  # the lowest matrices: nothing below them needs a gradient
                output = output.detach().requires_grad_()
            outputs[name] = output
            return output
        return hook

    handles = [m.register_forward_hook(recorder(n)) for n, m in split.modules.items()]
    try:
        with torch.enable_grad():
            losses = target_nll(split, split.top(hidden, batch.mask), batch)
            names = list(split.modules)
            grads = torch.autograd.grad(losses.sum(), [outputs[n] for n in names], allow_unused=True)
    finally:
        for handle in handles:
            handle.remove()
    keep = batch.mask.bool()
    pieces = {n: (inputs[n][keep], (g if g is not None else torch.zeros_like(outputs[n]))[keep].detach())
              for n, g in zip(names, grads)}
    return pieces, losses.detach()


Factors = dict[str, tuple[torch.Tensor, torch.Tensor, torch.Tensor]]  # matrix -> (alpha, u~, delta~)


def edit_factors(editor: MendEditor, pieces: Pieces) -> Factors:
    """The editor's transformed pieces and step size per matrix (differentiable in the editor)."""
    factors = {}
    for name, (u, delta) in pieces.items():
        u_new, delta_new = editor(name, u, delta)
        factors[name] = (editor.step_size(name), u_new, delta_new)
    return factors


def weight_updates(factors: Factors) -> dict[str, torch.Tensor]:
    """``-alpha * sum_t delta~_t u~_t^T`` per matrix: (d_out, d_in)."""
    return {name: -alpha * (delta.T @ u) for name, (alpha, u, delta) in factors.items()}


@contextlib.contextmanager
def edited(split: SplitLM, factors: Factors) -> Iterator[None]:
    """Inside the block the edited matrices act as ``W - alpha * sum_t delta~_t u~_t^T`` without
    forming the update: ``x W'^T = x W^T - alpha * (x u~^T) delta~``."""

    def adder(alpha: torch.Tensor, u: torch.Tensor, delta: torch.Tensor) -> Any:
        def hook(_module: nn.Module, args: tuple[torch.Tensor, ...], output: torch.Tensor) -> torch.Tensor:
            return output - alpha * ((args[0] @ u.T) @ delta)
        return hook

    handles = [split.modules[n].register_forward_hook(adder(*f)) for n, f in factors.items()]
    try:
        yield
    finally:
        for handle in handles:
            handle.remove()
