"""The counterfactual model: answers an in-scope input from the retrieved edit(s).

It is a language model that reads edits plus the input. Before training, an instruct model is
prompted with a few worked examples; ``serac train`` fine-tunes a LoRA adapter on the compact
"trained" format below. Both sit behind the same ``CounterfactualModel`` protocol, so the router
never changes when a trained adapter drops in.
"""

from __future__ import annotations

from typing import Any, Iterator, Protocol, Sequence, runtime_checkable

from serac.base import (
    GREEDY,
    Generation,
    GenerationOptions,
    HFTextModel,
    Prompt,
    load_options,
    load_text_model,
    query_text,
)
from serac.config import CounterfactualConfig
from serac.edits import Edit
from serac.errors import ModelNotAvailableError


@runtime_checkable
class CounterfactualModel(Protocol):
    def generate(
        self,
        queries: Sequence[Prompt],
        edits: Sequence[Sequence[Edit]],
        options: GenerationOptions = GREEDY,
    ) -> list[str]:
        """``edits[i]`` holds the edits retrieved for ``queries[i]``, best match first."""
        ...

    def teacher_forced(
        self, queries: Sequence[Prompt], edits: Sequence[Sequence[Edit]], targets: Sequence[str]
    ) -> list[float]:
        """Per row, the share of target tokens predicted given the edits, query and gold prefix."""
        ...


FEW_SHOT_SYSTEM = "You answer from the given fact only. Reply with the answer only."
# (edit input, edit target, query): worked examples shown before the real one. They teach the
# untrained model the reply format. The facts are invented, so no example's answer is a plausible
# answer to a real question (an early set used real places and leaked "Melbourne" into answers).
# Measured on 96 zsRE edit inputs and rephrasings: 69% exact match, vs 51% for the first set.
FEW_SHOT_EXAMPLES: tuple[tuple[str, str, str], ...] = (
    ("Who is the head coach of the Chicago Bulls?", "Marta Lindqvist", "Who coaches the Bulls?"),
    ("In which year was the Zorvan Bridge opened?", "1874", "When did the Zorvan Bridge open?"),
    ("The mother tongue of Pablo Picasso is", "Dutch", "Pablo Picasso grew up speaking"),
    ("Which river flows through Kelmora?", "the Tessin", "What river runs through Kelmora?"),
)


def format_edit_prompt(edits: Sequence[Edit | tuple[str, str]], query: str) -> str:
    """The compact format the trained counterfactual model reads (training uses this too)."""
    lines = [f"Edit: {_pair(e)[0]} -> {_pair(e)[1]}" for e in edits]
    return "\n".join(lines) + f"\nInput: {query}\nAnswer:"


def _pair(edit: Edit | tuple[str, str]) -> tuple[str, str]:
    return (edit.input, edit.target) if isinstance(edit, Edit) else edit


def few_shot_messages(edits: Sequence[Edit | tuple[str, str]], query: str) -> list[dict[str, str]]:
    def user(facts: Sequence[Edit | tuple[str, str]], question: str) -> str:
        lines = [f"Fact: Q: {_pair(f)[0]} A: {_pair(f)[1]}" for f in facts]
        return "\n".join(lines) + f"\nQuestion: {question}"

    messages = [{"role": "system", "content": FEW_SHOT_SYSTEM}]
    for edit_input, target, example_query in FEW_SHOT_EXAMPLES:
        messages.append({"role": "user", "content": user([(edit_input, target)], example_query)})
        messages.append({"role": "assistant", "content": target})
    messages.append({"role": "user", "content": user(edits, query)})
    return messages


class LMCounterfactual:
    """A (possibly LoRA-adapted) language model conditioned on edits through its prompt."""

    def __init__(self, lm: HFTextModel, prompt: str = "few-shot", num_edits: int = 1) -> None:
        self.lm = lm
        self.prompt = prompt
        self.num_edits = num_edits

    @classmethod
    def from_config(cls, config: CounterfactualConfig) -> "LMCounterfactual":
        lm = load_text_model(
            config.model, config.kind, max_new_tokens=config.max_new_tokens, batch_size=config.batch_size,
            **load_options(config),
        )
        if config.adapter:
            lm.model = with_adapter(lm.model, config.adapter)
        return cls(lm, config.prompt, config.num_edits)

    def build_prompt(self, query: Prompt, edits: Sequence[Edit]) -> Prompt:
        edits = list(edits)[: self.num_edits]
        if self.prompt == "trained":
            # Oldest first, newest last (store ids grow with time): `serac train` teaches the model to
            # pick the edit that matches the query wherever it stands, and, among edits of the same
            # fact, the newest, as the store lets the newest edit of an input win.
            if all(isinstance(e, Edit) for e in edits):
                return format_edit_prompt(sorted(edits, key=lambda e: e.id), query_text(query))
            return format_edit_prompt(list(reversed(edits)), query_text(query))
        # Best match last in the prompt: small models attend most to the nearest context.
        ordered = list(reversed(edits))
        return few_shot_messages(ordered, query_text(query))

    def generate(
        self,
        queries: Sequence[Prompt],
        edits: Sequence[Sequence[Edit]],
        options: GenerationOptions = GREEDY,
    ) -> list[str]:
        prompts = [self.build_prompt(q, e) for q, e in zip(queries, edits)]
        return self.lm.generate(prompts, options)

    def generate_detailed(
        self,
        queries: Sequence[Prompt],
        edits: Sequence[Sequence[Edit]],
        options: GenerationOptions = GREEDY,
    ) -> list[Generation]:
        """``generate`` with token log-probs when ``options.logprobs`` is set."""
        prompts = [self.build_prompt(q, e) for q, e in zip(queries, edits)]
        return self.lm.generate_detailed(prompts, options)

    def stream(
        self, query: Prompt, edits: Sequence[Edit], options: GenerationOptions = GREEDY
    ) -> Iterator[str]:
        """``generate`` for one query, as text pieces while they are generated."""
        return self.lm.stream(self.build_prompt(query, edits), options)

    def teacher_forced(
        self, queries: Sequence[Prompt], edits: Sequence[Sequence[Edit]], targets: Sequence[str]
    ) -> list[float]:
        prompts = [self.build_prompt(q, e) for q, e in zip(queries, edits)]
        return self.lm.teacher_forced(prompts, targets)


def with_adapter(model: Any, adapter: str) -> Any:
    """``model`` wrapped with the trained LoRA adapter saved in ``adapter`` (a `serac train` output)."""
    try:
        from peft import PeftModel

        return PeftModel.from_pretrained(model, adapter).eval()
    except (OSError, ValueError) as exc:
        raise ModelNotAvailableError(
            f"could not load the counterfactual adapter from {adapter}: {exc}; point "
            "counterfactual.adapter at a directory written by `serac train`"
        ) from None

