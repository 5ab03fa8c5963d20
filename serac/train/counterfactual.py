"""Fine-tuning of the counterfactual model: (retrieved edits + query) -> the in-scope answer.

The prompt is ``serac.counterfactual.format_edit_prompt`` (what ``LMCounterfactual.build_prompt``
sends for prompt='trained': stored edits oldest first) formatted by ``HFTextModel.format`` (the
chat template, as a user message), so training sees exactly the text inference sends. Each example
holds the right edit and, most of the time, distractors: the edits the pretrained encoder ranks
closest to it (same subject, same relation), at random positions, so the model learns to pick the
edit that matches the query, not the nearest or the last one. Some examples also hold an older,
conflicting edit of the same fact (another phrasing, another answer) before the right one: the
model learns that the newest edit of a fact wins, as the store does for identical inputs. The loss
covers the answer tokens (and the end-of-turn token that stops generation) only.

LoRA (peft, every linear layer but the output head) is the default; ``method='full'`` trains
every weight. Causal and seq2seq models both work, chosen from ``model.config`` by
``serac.base.load_text_model``.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch
from tqdm.auto import tqdm

from serac.base import HFTextModel, load_text_model
from serac.counterfactual import LMCounterfactual, format_edit_prompt
from serac.data.examples import normalize_text
from serac.edits import Edit
from serac.train.checkpoint import linear_schedule, load_checkpoint, save_checkpoint, step_rng
from serac.train.config import CounterfactualTrainConfig
from serac.train.pairs import EditRecord, Neighbours

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class CounterfactualExample:
    query: str
    edits: tuple[tuple[str, str], ...]  # (input, target) in prompt order: oldest first, newest last
    target: str


def sample_example(
    records: Sequence[EditRecord],
    neighbours: Neighbours,
    index: int,
    config: CounterfactualTrainConfig,
    rng: np.random.Generator,
) -> CounterfactualExample:
    """One training example for record ``index``: a query about it, its edit among up to
    ``num_edits - 1`` distractors at random positions and, sometimes, an older conflicting edit of
    the same fact (another phrasing, another answer) placed before it: the answer is the newest."""
    record = records[index]
    if record.positives and rng.random() >= config.edit_input_share:
        query = record.positives[rng.integers(len(record.positives))]
    else:
        query = record.key
    n_edits = 1 if config.num_edits == 1 or rng.random() < config.single_edit_share else int(rng.integers(2, config.num_edits + 1))
    pool = [int(j) for j in neighbours.keys[index] if j >= 0 and records[int(j)].group != record.group]
    conflict = n_edits >= 2 and bool(pool) and rng.random() < config.conflict_share
    chosen = [int(j) for j in rng.permutation(pool)[: n_edits - 1 - int(conflict)]] if pool else []
    edits = [(records[j].key, records[j].target) for j in chosen]
    phrasings = list(record.queries)
    newest_input = phrasings[rng.integers(len(phrasings))] if conflict else record.key
    position = int(rng.integers(len(edits) + 1))
    edits.insert(position, (newest_input, record.target))
    if conflict:
        # The older edit of the same fact: another phrasing when there is one, and a plausible wrong
        # answer (a neighbouring edit's target, usually the same relation).
        others = [q for q in phrasings if q != newest_input] or [newest_input]
        wrong = [records[j].target for j in pool if records[j].target != record.target]
        if wrong:
            older = (others[rng.integers(len(others))], wrong[rng.integers(len(wrong))])
            edits.insert(int(rng.integers(position + 1)), older)
    return CounterfactualExample(query=query, edits=tuple(edits), target=record.target)


class ExampleEncoder:
    """Token ids for training, from the same prompt path as inference."""

    def __init__(self, lm: HFTextModel) -> None:
        self.lm = lm
        self.eos = lm.tokenizer.eos_token_id

    def prompt_text(self, example: CounterfactualExample) -> str:
        # LMCounterfactual.build_prompt (prompt='trained') lists stored edits oldest first, exactly
        # this order; the chat template is applied by the same HFTextModel.format.
        return self.lm.format(format_edit_prompt(example.edits, example.query))

    def encode(self, example: CounterfactualExample) -> tuple[list[int], list[int]]:
        """(input ids, label ids): causal LMs get prompt+answer with the prompt masked (-100)."""
        tok = self.lm.tokenizer
        text = self.prompt_text(example)
        if self.lm.is_encoder_decoder:
            return tok(text)["input_ids"], tok(example.target)["input_ids"]
        prompt = tok(text, add_special_tokens=not self.lm.use_chat_template)["input_ids"]
        answer = tok(example.target, add_special_tokens=False)["input_ids"]
        if self.eos is not None:
            answer = answer + [self.eos]
        return prompt + answer, [-100] * len(prompt) + answer

    def collate(self, rows: list[tuple[list[int], list[int]]]) -> dict[str, torch.Tensor]:
        pad = self.lm.tokenizer.pad_token_id
        if self.lm.is_encoder_decoder:
            width, label_width = max(len(r[0]) for r in rows), max(len(r[1]) for r in rows)
            ids = torch.tensor([r[0] + [pad] * (width - len(r[0])) for r in rows])
            mask = torch.tensor([[1] * len(r[0]) + [0] * (width - len(r[0])) for r in rows])
            labels = torch.tensor([r[1] + [-100] * (label_width - len(r[1])) for r in rows])
            return self._on_device({"input_ids": ids, "attention_mask": mask, "labels": labels})
        width = max(len(r[0]) for r in rows)  # right padding: loss positions stay aligned
        ids = torch.tensor([r[0] + [pad] * (width - len(r[0])) for r in rows])
        mask = torch.tensor([[1] * len(r[0]) + [0] * (width - len(r[0])) for r in rows])
        labels = torch.tensor([r[1] + [-100] * (width - len(r[1])) for r in rows])
        return self._on_device({"input_ids": ids, "attention_mask": mask, "labels": labels})

    def _on_device(self, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        return {name: tensor.to(self.lm.device) for name, tensor in batch.items()}


def load_trainable_lm(
    config: CounterfactualTrainConfig, seed: int = 0, max_new_tokens: int = 32, batch_size: int = 8,
    device: str = "cpu",
) -> HFTextModel:
    """The model to train on ``device``, wrapped for generation; LoRA layers (initialised from
    ``seed``, so a run is reproducible) added when method='lora'."""
    lm = load_text_model(config.model, config.kind, max_new_tokens=max_new_tokens, batch_size=batch_size,
                         device=device)
    if config.method == "lora":
        from peft import LoraConfig, TaskType, get_peft_model

        lora = LoraConfig(
            r=config.lora_r,
            lora_alpha=config.lora_alpha,
            lora_dropout=config.lora_dropout,
            target_modules=config.target_modules,
            task_type=TaskType.SEQ_2_SEQ_LM if lm.is_encoder_decoder else TaskType.CAUSAL_LM,
        )
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            lm.model = get_peft_model(lm.model, lora)
    return lm


def train_counterfactual(
    lm: HFTextModel,
    records: Sequence[EditRecord],
    neighbours: Neighbours,
    config: CounterfactualTrainConfig,
    seed: int,
    checkpoint: str | Path | None = None,
    progress: bool = True,
) -> dict[str, list[float]]:
    """Train ``lm.model`` in place; resume from ``checkpoint`` when it exists. Returns losses."""
    if not records:
        raise ValueError("counterfactual training needs at least one edit record")
    torch.manual_seed(seed)
    encoder = ExampleEncoder(lm)
    model = lm.model
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(params, lr=config.learning_rate, weight_decay=config.weight_decay)
    scheduler = linear_schedule(optimizer, config.steps, config.warmup)
    history: dict[str, list[float]] = {"loss": []}
    start = 0
    modules = {"model": model}
    if checkpoint is not None and Path(checkpoint).exists():
        state = load_checkpoint(checkpoint, modules=modules, optimizer=optimizer, scheduler=scheduler)
        start, history = state["step"], state["extra"].get("history", history)
        logger.info("resuming counterfactual training at step %d of %d", start, config.steps)

    model.train()
    bar = tqdm(total=config.steps, initial=start, desc="counterfactual", disable=not progress, dynamic_ncols=True)
    for step in range(start, config.steps):
        rng = step_rng(seed, step, stream=1)
        rows = []
        for i in rng.choice(len(records), size=min(config.batch_size, len(records)), replace=False):
            row = encoder.encode(sample_example(records, neighbours, int(i), config, rng))
            if len(row[0]) + (len(row[1]) if lm.is_encoder_decoder else 0) <= config.max_length:
                rows.append(row)
        if not rows:
            raise ValueError(f"every example of step {step} is longer than counterfactual.max_length={config.max_length}")
        loss = model(**encoder.collate(rows)).loss
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        optimizer.step()
        scheduler.step()
        value = loss.item()
        history["loss"].append(value)
        bar.update(1)
        bar.set_postfix(loss=f"{value:.3f}")
        done = step + 1
        if checkpoint is not None and done % config.checkpoint_every == 0 and done < config.steps:
            save_checkpoint(checkpoint, step=done, modules=modules, optimizer=optimizer, scheduler=scheduler,
                            losses=history["loss"], extra={"history": history})
    bar.close()
    model.eval()
    return history


def save_counterfactual(lm: HFTextModel, directory: str | Path) -> None:
    """A peft adapter (adapter_config.json + adapter_model.safetensors) for LoRA, else a full
    ``save_pretrained`` model with its tokenizer."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    lm.model.save_pretrained(directory)
    if not _is_peft(lm.model):
        lm.tokenizer.save_pretrained(directory)


def _is_peft(model: Any) -> bool:
    try:
        from peft import PeftModel
    except ImportError:  # pragma: no cover - peft is a dependency
        return False
    return isinstance(model, PeftModel)


@dataclass(frozen=True)
class GenerationCase:
    query: str
    edits: tuple[Edit, ...]  # as retrieved, best first (ids give the order they were made in)
    accepted: tuple[str, ...]  # answers counted right (the newest target of the query's fact)


def evaluate_generation(lm: HFTextModel, cases: Sequence[GenerationCase], num_edits: int) -> dict[str, Any]:
    """Exact match (after normalisation) of greedy answers from the retrieved edits."""
    if not cases:
        return {"examples": 0}
    prompter = LMCounterfactual(lm, prompt="trained", num_edits=num_edits)
    answers = prompter.generate([c.query for c in cases], [list(c.edits) for c in cases])
    hits = [normalize_answer(a) in {normalize_answer(t) for t in c.accepted} for a, c in zip(answers, cases)]
    return {
        "examples": len(cases),
        "exact_match": round(float(np.mean(hits)), 4),
        "samples": [
            {"query": c.query, "answer": a, "accepted": list(c.accepted)} for c, a in list(zip(cases, answers))[:5]
        ],
    }


def normalize_answer(text: str) -> str:
    """Lower case, no punctuation or articles, single spaces (SQuAD-style exact match)."""
    import re
    import string

    text = normalize_text(text)
    text = "".join(ch for ch in text if ch not in set(string.punctuation))
    text = re.sub(r"\b(a|an|the)\b", " ", text)
    return " ".join(text.split())
