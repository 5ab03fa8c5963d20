"""Per-token log-probabilities of replies under a chat model: SERAC's ConvSent training objective
(likelihood on desired-sentiment replies, unlikelihood on the opposite ones)."""

from __future__ import annotations

from typing import Any, Sequence

import torch

from serac.base import HFTextModel, Prompt


def reply_batch(
    lm: HFTextModel, prompts: Sequence[Prompt], replies: Sequence[str], *, eos: bool, max_length: int = 256
) -> dict[str, torch.Tensor]:
    """Token ids of ``format(prompt) + reply`` per row, right-padded, with a mask over the reply
    tokens (the ones a loss or score reads). Prompt and reply are tokenised separately, as
    generation sees them; over-long rows lose the start of the prompt, never the reply."""
    tok = lm.tokenizer
    rows, masks = [], []
    for prompt, reply in zip(prompts, replies):
        prompt_ids = tok(lm.format(prompt), add_special_tokens=not lm.use_chat_template)["input_ids"]
        reply_ids = tok(reply, add_special_tokens=False)["input_ids"]
        if eos and tok.eos_token_id is not None:
            reply_ids = reply_ids + [tok.eos_token_id]
        reply_ids = reply_ids[: max_length - 1]
        prompt_ids = prompt_ids[-(max_length - len(reply_ids)) :]
        rows.append(prompt_ids + reply_ids)
        masks.append([0] * len(prompt_ids) + [1] * len(reply_ids))
    width = max(len(r) for r in rows)
    pad = tok.pad_token_id if tok.pad_token_id is not None else 0
    ids = torch.tensor([r + [pad] * (width - len(r)) for r in rows])
    attention = torch.tensor([[1] * len(r) + [0] * (width - len(r)) for r in rows])
    reply_mask = torch.tensor([m + [0] * (width - len(m)) for m in masks])
    return {name: tensor.to(lm.device) for name, tensor in
            (("input_ids", ids), ("attention_mask", attention), ("reply_mask", reply_mask))}


def token_logprobs(model: Any, batch: dict[str, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
    """(log p of each next token, mask of reply tokens), both (rows, length - 1)."""
    logits = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits.float()
    logp = logits[:, :-1].log_softmax(dim=-1)  # position t predicts token t + 1
    targets = batch["input_ids"][:, 1:]
    return logp.gather(-1, targets.unsqueeze(-1)).squeeze(-1), batch["reply_mask"][:, 1:].bool()


def likelihood_unlikelihood_loss(
    good_logp: torch.Tensor,
    good_mask: torch.Tensor,
    bad_logp: torch.Tensor,
    bad_mask: torch.Tensor,
    unlikelihood_weight: float = 1.0,
    eps: float = 1e-6,
) -> tuple[torch.Tensor, dict[str, float]]:
    """SERAC's ConvSent objective: raise the likelihood of desired-sentiment replies, and push
    down each token of the opposite-sentiment replies with the unlikelihood term log(1 - p).
    Both are token means over the batch."""
    good = (good_logp * good_mask).sum() / good_mask.sum().clamp(min=1)
    bad_p = bad_logp.exp()
    unlikely = ((1 - bad_p + eps).log() * bad_mask).sum() / bad_mask.sum().clamp(min=1)
    loss = -good - unlikelihood_weight * unlikely
    return loss, {
        "nll_good": -good.item(),
        "ul_bad": -unlikely.item(),
        "p_bad": ((bad_p * bad_mask).sum() / bad_mask.sum().clamp(min=1)).item(),
    }
