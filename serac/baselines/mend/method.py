"""``mend`` as an evaluation method: a trained MEND editor (``serac train --method mend``) editing a
copy of the shared base model. ``apply(edits)`` makes one combined update from all the edits it is
given (batch editing); successive calls add their updates to the weights already edited (sequential
editing); ``reset`` copies the original matrices back, bit for bit."""

from __future__ import annotations

import copy
import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch

from serac.base import HFCausalLM
from serac.baselines.mend.edit import edit_factors, encode, gradient_pieces, weight_updates
from serac.baselines.mend.editor import MendEditor, load_editor
from serac.baselines.mend.model import SplitLM
from serac.errors import ModelNotAvailableError

logger = logging.getLogger(__name__)

EditPair = tuple[str, str]  # (input, target)


class MendMethod:
    """MEND on a copy of the evaluation base model."""

    name = "mend"

    def __init__(self, models: Any, editor: MendEditor, targets: list[str]) -> None:
        """``models``: the evaluation's shared models (``serac.eval.methods.EvalModels``)."""
        base = models.base.lm
        if base.is_encoder_decoder or not isinstance(base, HFCausalLM):
            raise ModelNotAvailableError("the mend baseline supports causal language models only")
        self.models = models
        self.model = copy.deepcopy(base.model)
        for p in self.model.parameters():
            p.requires_grad_(False)
        adapter = HFCausalLM(self.model, base.tokenizer, chat_template=base.use_chat_template,
                             system_prompt=base.system_prompt, max_new_tokens=base.max_new_tokens,
                             batch_size=base.batch_size)
        self.lm = models.cached(adapter, "mend")
        self.editor = editor.eval()
        self.split = SplitLM(self.model, targets)
        self._original = {n: m.weight.detach().clone() for n, m in self.split.modules.items()}
        self.edits_applied = 0

    def reset(self) -> None:
        with torch.no_grad():
            for name, module in self.split.modules.items():
                module.weight.copy_(self._original[name])
        self.edits_applied = 0
        self.lm.clear()

    @torch.no_grad()
    def apply(self, edits: Sequence[EditPair]) -> None:
        """One MEND update from all ``edits`` together, added to the current weights."""
        edits = list(edits)
        if not edits:
            return
        batch = encode(self.lm.lm, edits)
        hidden = self.split.bottom(batch.ids, batch.mask)
        pieces, _ = gradient_pieces(self.split, hidden, batch)
        for name, update in weight_updates(edit_factors(self.editor, pieces)).items():
            weight = self.split.modules[name].weight
            weight.add_(update.to(weight.dtype))
        self.edits_applied += len(edits)
        self.lm.clear()

    def predict(self, prompts: Sequence[str]) -> list[str]:
        return self.lm.generate(list(prompts), self.models.options)

    def teacher_forced(self, prompts: Sequence[str], targets: Sequence[str]) -> list[float]:
        return self.lm.teacher_forced(list(prompts), list(targets))


def load_method(models: Any, directory: Path) -> MendMethod:
    """The MEND artifact in ``directory`` over the evaluation's base model."""
    editor, config = load_editor(directory)
    if config.base_model != models.base_spec and models.base_spec != "custom":
        logger.warning("the MEND editor was trained for %s, the evaluation base is %s", config.base_model,
                       models.base_spec)
    return MendMethod(models, editor, config.targets or [])
