"""Context-aware decoding: make the counterfactual model say what the edit says.

A small counterfactual model conditioned on an edit still drifts toward what it would say without
it ("Three Years' War" for an edit's "Thirty Years' War", "Buda" for "Budapest"). Context-aware
decoding (Shi et al., 2023, "Trusting Your Evidence: Hallucinate Less with Context-aware Decoding")
scores each next token by

    (1 + alpha) * log p(y | edit, query) - alpha * log p(y | query)

so what the edit adds counts double, among the tokens whose p(y | edit, query) is at least
``plausibility`` times the likeliest one's (without that bar, sub-word pieces the plain prompt finds
unlikely win and spell words wrong). The plain side runs as a second, cached forward pass per
generated token, on in-scope inputs only.
"""

from __future__ import annotations

import inspect
import math
from typing import Any

import torch


class ContextContrast:
    """A ``transformers`` logits processor: turns the with-edit logits of each step into the
    context-aware scores, running the model on the plain prompts (left-padded, the same rows) beside
    the generation, one new token per step, with its own KV cache."""

    def __init__(self, model: Any, plain: dict[str, torch.Tensor], alpha: float, plausibility: float) -> None:
        self.model = model
        self.alpha = alpha
        self.log_bar = math.log(plausibility)
        self.ids, self.mask = plain["input_ids"], plain["attention_mask"]
        self.cache: Any = None
        # the KV cache's argument and output name: "cache" from transformers 5, "past_key_values" before
        base = model.get_base_model() if hasattr(model, "get_base_model") else model  # a peft wrapper's model
        self.cache_name = "cache" if "cache" in inspect.signature(base.forward).parameters else "past_key_values"

    def __call__(self, input_ids: torch.LongTensor, scores: torch.FloatTensor) -> torch.FloatTensor:
        if self.cache is None:  # first step: the whole plain prompt
            new, mask = self.ids, self.mask
        else:  # then the token the generation chose last
            new = input_ids[:, -1:]
            mask = torch.cat([self.mask, self.mask.new_ones((self.mask.shape[0], 1))], dim=1)
        # positions count real tokens only, as generate() does for the left-padded main prompts
        positions = (mask.long().cumsum(-1) - 1).clamp(min=0)[:, -new.shape[1]:]
        out = self.model(input_ids=new, attention_mask=mask, position_ids=positions, use_cache=True,
                         **{self.cache_name: self.cache})
        self.cache, self.mask = out[self.cache_name], mask
        with_edit = torch.log_softmax(scores.float(), dim=-1)
        without = torch.log_softmax(out.logits[:, -1].float(), dim=-1)
        plausible = with_edit >= with_edit.max(dim=-1, keepdim=True).values + self.log_bar
        contrast = (1 + self.alpha) * with_edit - self.alpha * without
        return torch.where(plausible, contrast, torch.full_like(contrast, -math.inf)).to(scores.dtype)
