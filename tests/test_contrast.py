"""Context-aware decoding (serac.contrast): the score it computes, and the batched, left-padded
generation path against a one-row reference loop on a tiny model."""

from __future__ import annotations

import math

import pytest
import torch

from conftest import save_tiny_causal

from serac.base import GREEDY, GenerationOptions, load_text_model
from serac.contrast import ContextContrast
from serac.counterfactual import LMCounterfactual
from serac.edits import Edit
from serac.errors import UnsupportedOptionError


class Output(dict):
    @property
    def logits(self):
        return self["logits"]


class PlainSide:
    """A stand-in model for the plain prompts: fixed next-token logits, every call recorded."""

    def __init__(self, logits: torch.Tensor) -> None:
        self.next_logits = logits
        self.calls: list[dict] = []

    def forward(self, input_ids=None, attention_mask=None, position_ids=None, past_key_values=None, use_cache=False):
        self.calls.append(dict(input_ids=input_ids, attention_mask=attention_mask, position_ids=position_ids,
                               cache=past_key_values))
        logits = self.next_logits[:, None, :].expand(input_ids.shape[0], input_ids.shape[1], -1)
        return Output(logits=logits, past_key_values=len(self.calls))

    __call__ = forward


def test_the_score_is_the_contrast_among_plausible_tokens():
    with_edit = torch.tensor([[2.0, 1.9, 0.0, -3.0]])
    without = torch.tensor([[3.0, 0.0, 0.0, 0.0]])
    plain = {"input_ids": torch.tensor([[0, 5, 6]]), "attention_mask": torch.tensor([[0, 1, 1]])}
    processor = ContextContrast(PlainSide(without), plain, alpha=1.0, plausibility=0.5)
    assert processor.cache_name == "past_key_values"
    scores = processor(torch.tensor([[7, 8]]), with_edit)
    a, b = torch.log_softmax(with_edit, -1), torch.log_softmax(without, -1)
    expected = 2 * a - b
    # token 0 is likeliest with the edit, but the plain prompt likes it more still: token 1 wins
    assert scores[0, :2].tolist() == pytest.approx(expected[0, :2].tolist(), abs=1e-5)
    assert scores[0, 2:].tolist() == [-math.inf, -math.inf]  # below half the likeliest token's p
    assert int(scores.argmax()) == 1


def test_the_plain_side_reads_its_prompt_once_then_one_token_per_step():
    plain_model = PlainSide(torch.zeros(1, 4))
    plain = {"input_ids": torch.tensor([[0, 0, 5, 6], [4, 5, 6, 7]]),
             "attention_mask": torch.tensor([[0, 0, 1, 1], [1, 1, 1, 1]])}
    processor = ContextContrast(plain_model, plain, alpha=0.5, plausibility=0.1)
    scores = torch.zeros(2, 4)
    processor(torch.tensor([[1, 2], [3, 4]]), scores)
    processor(torch.tensor([[1, 2, 9], [3, 4, 8]]), scores)
    first, second = plain_model.calls
    assert first["input_ids"].tolist() == plain["input_ids"].tolist() and first["cache"] is None
    assert first["position_ids"].tolist() == [[0, 0, 0, 1], [0, 1, 2, 3]]  # padding does not count
    assert second["input_ids"].tolist() == [[9], [8]] and second["cache"] == 1
    assert second["attention_mask"].tolist() == [[0, 0, 1, 1, 1], [1, 1, 1, 1, 1]]
    assert second["position_ids"].tolist() == [[2], [4]]


@pytest.fixture(scope="module")
def lm(tiny_causal_dir):
    return load_text_model(str(tiny_causal_dir), max_new_tokens=6, batch_size=4)


@pytest.fixture(scope="module")
def plain_lm(tmp_path_factory):
    """No chat template: prompts end in their own words, so each row decodes differently."""
    path = save_tiny_causal(tmp_path_factory.mktemp("tiny-causal-contrast"), chat=False)
    return load_text_model(str(path), max_new_tokens=6, batch_size=4)


@torch.no_grad()
def reference(lm, prompt: str, plain: str, alpha: float, plausibility: float, steps: int) -> str:
    """One row, no padding, no cache: the formula applied step by step."""
    def ids(text):
        return lm.tokenizer(lm.format(text), return_tensors="pt", add_special_tokens=not lm.use_chat_template)["input_ids"]
    with_edit, without, out = ids(prompt), ids(plain), []
    for _ in range(steps):
        a = torch.log_softmax(lm.model(input_ids=with_edit).logits[0, -1].float(), -1)
        b = torch.log_softmax(lm.model(input_ids=without).logits[0, -1].float(), -1)
        score = torch.where(a >= a.max() + math.log(plausibility), (1 + alpha) * a - alpha * b, -math.inf)
        token = int(score.argmax())
        if token == lm.tokenizer.eos_token_id:
            break
        out.append(token)
        with_edit = torch.cat([with_edit, torch.tensor([[token]])], 1)
        without = torch.cat([without, torch.tensor([[token]])], 1)
    return lm.tokenizer.decode(out, skip_special_tokens=True).strip()


def test_batched_contrastive_generation_matches_the_one_row_loop(plain_lm):
    """Rows of different lengths (left padding on both sides) decode as each would alone."""
    lm = plain_lm
    prompts = ["Edit: a b -> c\nInput: a b", "Edit: a much longer edit input here -> d e\nInput: x",
               "Edit: q -> r\nInput: what is q today"]
    plain = ["Input: a b", "Input: x", "Input: what is q today"]
    options = GenerationOptions(max_new_tokens=5)
    got = lm.generate_contrastive(prompts, plain, 2.0, 0.05, options)
    assert got == [reference(lm, p, q, 2.0, 0.05, 5) for p, q in zip(prompts, plain)]
    assert len(set(got)) == 3 and got != lm.generate(prompts, options)  # the contrast changed the answers
    # alpha 0 is greedy decoding, the wiring changes nothing else
    assert lm.generate_contrastive(prompts, plain, 0.0, 0.05, options) == lm.generate(prompts, options)


def test_the_counterfactual_model_decodes_contrastively_when_configured(lm):
    edit = Edit(id=1, input="Who made X?", target="Y", created_at=0.0, metadata={})
    counterfactual = LMCounterfactual(lm, prompt="trained", contrast=1.0, plausibility=0.2)
    assert counterfactual.plain_prompt("Who built X?") == "Input: Who built X?\nAnswer:"
    expected = lm.generate_contrastive([counterfactual.build_prompt("Who built X?", [edit])],
                                       ["Input: Who built X?\nAnswer:"], 1.0, 0.2, GREEDY)
    assert counterfactual.generate(["Who built X?"], [[edit]]) == expected
    assert list(counterfactual.stream("Who built X?", [edit])) == expected  # one piece
    assert [g.text for g in counterfactual.generate_detailed(["Who built X?"], [[edit]])] == expected
    with pytest.raises(UnsupportedOptionError, match="log-probs"):
        counterfactual.generate_detailed(["Who built X?"], [[edit]], GenerationOptions(logprobs=2))
    few_shot = LMCounterfactual(lm, contrast=1.0)
    assert few_shot.plain_prompt("Who built X?")[-1]["content"] == "Question: Who built X?"


def test_contrast_needs_a_local_language_model():
    class Remote:
        def generate(self, prompts, options):
            return ["x"] * len(prompts)

    edit = Edit(id=1, input="q", target="t", created_at=0.0, metadata={})
    with pytest.raises(UnsupportedOptionError, match="local language model"):
        LMCounterfactual(Remote(), prompt="trained", contrast=1.0).generate(["q"], [[edit]])
    assert LMCounterfactual(Remote(), prompt="trained").generate(["q"], [[edit]]) == ["x"]


def test_the_prompted_engine_refuses_contrast(tiny_causal_dir):
    from serac.config import BaseModelConfig, CounterfactualConfig, SeracConfig
    from serac.editor import EditedModel

    config = SeracConfig(base=BaseModelConfig(model=str(tiny_causal_dir)),
                         counterfactual=CounterfactualConfig(engine="prompted", contrast=1.0))
    with pytest.raises(UnsupportedOptionError, match="engine 'local'"):
        EditedModel.from_config(config)
