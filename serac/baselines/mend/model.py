"""Where MEND edits, and a forward pass split around the edited blocks.

The edited matrices are found from the module structure and the model config, never from a model's
name: the decoder blocks are the ``nn.ModuleList`` of ``config.num_hidden_layers`` modules, and in
each of the last blocks the MLP's matrices are the ``nn.Linear`` modules with
``config.intermediate_size`` as their input or output size (gate/up/down in a Llama block).

Only the top blocks change during an edit, so :class:`SplitLM` runs the frozen bottom blocks once
(``bottom``) and the top blocks and output head as often as needed (``top``): training evaluates the
edited model three times per step and pays for the bottom once.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

import torch
from torch import nn

from serac.errors import ModelNotAvailableError


def decoder_blocks(model: nn.Module) -> tuple[nn.Module, str, nn.ModuleList]:
    """(owner, attribute, blocks): the module list holding the ``config.num_hidden_layers`` decoder blocks."""
    count = getattr(model.config, "num_hidden_layers", None)
    for _, owner in model.named_modules():
        for attribute, child in owner.named_children():
            if isinstance(child, nn.ModuleList) and len(child) == count:
                return owner, attribute, child
    raise ModelNotAvailableError(
        f"MEND needs a decoder-only model whose blocks form one list of config.num_hidden_layers ({count}) "
        f"modules; {type(model).__name__} has none"
    )


def find_targets(model: nn.Module, num_layers: int) -> list[str]:
    """Full names of the MLP matrices of the last ``num_layers`` blocks, bottom block first."""
    width = getattr(model.config, "intermediate_size", None)
    _, _, blocks = decoder_blocks(model)
    if num_layers > len(blocks):
        raise ModelNotAvailableError(f"num_layers is {num_layers} but the model has {len(blocks)} blocks")
    by_module = {module: name for name, module in model.named_modules()}
    names = []
    for block in list(blocks)[-num_layers:]:
        found = [by_module[m] for m in block.modules()
                 if isinstance(m, nn.Linear) and width in (m.in_features, m.out_features)]
        if not found:
            raise ModelNotAvailableError(
                f"no linear module with config.intermediate_size ({width}) in a {type(block).__name__}; "
                "set MendConfig.targets to the names of the matrices to edit")
        names += found
    return names


def target_modules(model: nn.Module, targets: list[str]) -> dict[str, nn.Linear]:
    """The named linear modules, checked: each must exist and be an ``nn.Linear``."""
    modules = dict(model.named_modules())
    out = {}
    for name in targets:
        module = modules.get(name)
        if not isinstance(module, nn.Linear):
            raise ModelNotAvailableError(
                f"the MEND editor edits {name!r}, which this model has not as a linear module; was the editor "
                "trained for another base model? Retrain with `serac train --method mend`")
        out[name] = module
    return out


class SplitLM:
    """A causal LM's forward pass cut below the lowest edited block: ``top(bottom(ids))`` gives the
    same logits as the whole model (checked in tests)."""

    def __init__(self, model: nn.Module, targets: list[str]) -> None:
        self.model = model
        self.owner, self.attribute, self.blocks = decoder_blocks(model)
        self.decoder = self.owner
        self.head = model.get_output_embeddings()
        self.modules = target_modules(model, targets)
        in_block = [i for i, block in enumerate(self.blocks)
                    if any(m is t for m in block.modules() for t in self.modules.values())]
        if not in_block:
            raise ModelNotAvailableError("no edited matrix lies inside a decoder block")
        self.cut = min(in_block)  # blocks[cut:] are recomputed; blocks[:cut] are frozen

    @contextlib.contextmanager
    def _blocks(self, blocks: list[nn.Module]) -> Iterator[None]:
        """Run the decoder over ``blocks`` only (the full list is put back afterwards)."""
        setattr(self.owner, self.attribute, nn.ModuleList(blocks))
        try:
            yield
        finally:
            setattr(self.owner, self.attribute, self.blocks)

    @torch.no_grad()
    def bottom(self, ids: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """Hidden states entering block ``cut``: (batch, seq, hidden)."""
        if self.cut == 0:
            return self.decoder.get_input_embeddings()(ids)
        seen: list[torch.Tensor] = []

        def keep(_module: nn.Module, _inputs: Any, output: Any) -> None:
            seen.append(output[0] if isinstance(output, tuple) else output)

        handle = self.blocks[self.cut - 1].register_forward_hook(keep)
        try:
            with self._blocks(list(self.blocks)[: self.cut]):
                self.decoder(input_ids=ids, attention_mask=mask, use_cache=False)
        finally:
            handle.remove()
        return seen[-1]

    def top(self, hidden: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """Final hidden states (after the last norm) from the output of ``bottom``: (batch, seq, hidden)."""
        with self._blocks(list(self.blocks)[self.cut :]):
            return self.decoder(inputs_embeds=hidden, attention_mask=mask, use_cache=False).last_hidden_state

    def logits(self, final: torch.Tensor, rows: torch.Tensor, cols: torch.Tensor) -> torch.Tensor:
        """Logits at the chosen positions only (the output head is the costly part): (n, vocab)."""
        return self.head(final[rows, cols]).float()
