"""The counterfactual model: answers an in-scope input from the retrieved edit(s).

Usually a language model that reads edits plus the input. Before training, an instruct model is
prompted with a few worked examples; ``serac train`` fine-tunes a LoRA adapter on the compact
"trained" format below. For classification tasks it is a pair classifier that reads (the best
edit's input, the query), e.g. (evidence, claim) -> supports/refutes. Which one a config loads is
chosen from the model's own config (:func:`load_counterfactual`); all sit behind the same
``CounterfactualModel`` protocol, so the router never changes.
"""

from __future__ import annotations

from typing import Any, Iterator, Protocol, Sequence, runtime_checkable

from serac.base import (
    GREEDY,
    Generation,
    GenerationOptions,
    HFTextModel,
    Prompt,
    SequenceClassifier,
    TextModel,
    load_options,
    load_text_model,
    query_text,
)
from serac.config import CounterfactualConfig
from serac.edits import Edit
from serac.edits import EVIDENCE_TARGET as EVIDENCE_TARGET  # re-exported: the pair classifier's edits
from serac.errors import ModelNotAvailableError, UnsupportedOptionError


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

    def __init__(self, lm: HFTextModel, prompt: str = "few-shot", num_edits: int = 1, contrast: float = 0.0,
                 plausibility: float = 0.5) -> None:
        self.lm = lm
        self.prompt = prompt
        self.num_edits = num_edits
        self.contrast = contrast  # context-aware decoding weight (serac.contrast); 0: plain decoding
        self.plausibility = plausibility

    @classmethod
    def from_config(cls, config: CounterfactualConfig) -> "LMCounterfactual":
        counterfactual = load_counterfactual(config)
        if not isinstance(counterfactual, cls):
            raise ModelNotAvailableError(f"counterfactual.model {config.model!r} is a sequence classifier, not a "
                                         "language model; load it with serac.counterfactual.load_counterfactual")
        return counterfactual

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

    def plain_prompt(self, query: Prompt) -> Prompt:
        """The prompt without edits: the other side of context-aware decoding."""
        if self.prompt == "trained":
            return format_edit_prompt([], query_text(query)).lstrip("\n")
        messages = few_shot_messages([], query_text(query))
        messages[-1]["content"] = messages[-1]["content"].lstrip("\n")
        return messages

    def generate(
        self,
        queries: Sequence[Prompt],
        edits: Sequence[Sequence[Edit]],
        options: GenerationOptions = GREEDY,
    ) -> list[str]:
        prompts = [self.build_prompt(q, e) for q, e in zip(queries, edits)]
        if not self.contrast:
            return self.lm.generate(prompts, options)
        contrastive = getattr(self.lm, "generate_contrastive", None)
        if contrastive is None:
            raise UnsupportedOptionError(f"counterfactual.contrast needs a local language model; "
                                         f"{type(self.lm).__name__} has no contrastive decoding: set contrast to 0")
        return contrastive(prompts, [self.plain_prompt(q) for q in queries], self.contrast, self.plausibility, options)

    def generate_detailed(
        self,
        queries: Sequence[Prompt],
        edits: Sequence[Sequence[Edit]],
        options: GenerationOptions = GREEDY,
    ) -> list[Generation]:
        """``generate`` with token log-probs when ``options.logprobs`` is set (not with contrast: the
        language model refuses them)."""
        if self.contrast:
            return [Generation(text) for text in self.generate(queries, edits, options)]
        prompts = [self.build_prompt(q, e) for q, e in zip(queries, edits)]
        return self.lm.generate_detailed(prompts, options)

    def stream(
        self, query: Prompt, edits: Sequence[Edit], options: GenerationOptions = GREEDY
    ) -> Iterator[str]:
        """``generate`` for one query, as text pieces while they are generated (with contrast, the
        whole answer as one piece)."""
        if self.contrast:
            return iter(self.generate([query], [edits], options))
        return self.lm.stream(self.build_prompt(query, edits), options)

    def teacher_forced(
        self, queries: Sequence[Prompt], edits: Sequence[Sequence[Edit]], targets: Sequence[str]
    ) -> list[float]:
        prompts = [self.build_prompt(q, e) for q, e in zip(queries, edits)]
        return self.lm.teacher_forced(prompts, targets)


class PairClassifierCounterfactual:
    """A counterfactual model that classifies ``(best edit's input, query)`` pairs: for fact-checking
    the edit input is a piece of evidence and the query a claim, and the answer is the label the
    evidence gives the claim (the classifier's ``id2label``). It reads the best-matching edit only.

    A label the base model cannot give (with ``base``, a classifier: a pair classifier's "not enough
    info" beside a supports/refutes base) says the edit does not decide the query, so the base
    model's own answer stands for that row (read from the two models' label sets, not configured)."""

    num_edits = 1

    def __init__(self, classifier: SequenceClassifier, base: TextModel | None = None) -> None:
        self.lm = classifier  # named as LMCounterfactual's model, so evaluation caches wrap either alike
        self.base = base

    @property
    def classifier(self) -> SequenceClassifier:
        return self.lm

    def pairs(self, queries: Sequence[Prompt], edits: Sequence[Sequence[Edit]]) -> list[tuple[str, str]]:
        out = []
        for query, retrieved in zip(queries, edits):
            if not retrieved:
                raise UnsupportedOptionError("the pair-classifier counterfactual got a query with no retrieved edit; "
                                             "the router sends it in-scope queries only")
            out.append((retrieved[0].input, query_text(query)))
        return out

    def deferred_labels(self) -> frozenset[str]:
        """The pair classifier's labels the base model cannot answer (none without a classifier base)."""
        base_labels = getattr(self.base, "labels", None)
        return frozenset(self.lm.labels) - frozenset(base_labels) if base_labels else frozenset()

    def generate(
        self, queries: Sequence[Prompt], edits: Sequence[Sequence[Edit]], options: GenerationOptions = GREEDY
    ) -> list[str]:
        answers = self.lm.generate(self.pairs(queries, edits), options)  # type: ignore[arg-type]
        deferred = self.deferred_labels()
        rows = [i for i, answer in enumerate(answers) if answer in deferred]
        if rows:  # the edit does not decide these queries: the base model answers them
            for i, answer in zip(rows, self.base.generate([queries[i] for i in rows], options)):  # type: ignore[union-attr]
                answers[i] = answer
        return answers

    def teacher_forced(
        self, queries: Sequence[Prompt], edits: Sequence[Sequence[Edit]], targets: Sequence[str]
    ) -> list[float]:
        return [float(answer == target) for answer, target in zip(self.generate(queries, edits), targets)]


def load_counterfactual(config: CounterfactualConfig, base: TextModel | None = None
                        ) -> LMCounterfactual | PairClassifierCounterfactual:
    """The counterfactual model a config names, its kind read from the model's config: a sequence
    classifier (``config.architectures``) becomes a :class:`PairClassifierCounterfactual` (which
    leaves the queries its edit does not decide to ``base``), a language model an
    :class:`LMCounterfactual` (with its trained adapter, if any)."""
    model = load_text_model(
        config.model, config.kind, max_new_tokens=config.max_new_tokens, batch_size=config.batch_size,
        **load_options(config),
    )
    if isinstance(model, SequenceClassifier):
        if config.adapter:
            model.model = with_adapter(model.model, config.adapter)
        return PairClassifierCounterfactual(model, base)
    if config.adapter:
        model.model = with_adapter(model.model, config.adapter)
    return LMCounterfactual(model, config.prompt, config.num_edits, config.contrast, config.contrast_plausibility)


PROMPTED_SYSTEM = (
    "These facts are up to date and override anything you know:\n{facts}\n"
    "Answer the user's question from them."
)


def prompted_messages(prompt: Prompt, edits: Sequence[Edit]) -> list[dict[str, str]]:
    """The conversation with the edits prepended in one system message (merged with the caller's own
    system message, if any: several chat templates accept only one, and only first)."""
    facts = "\n".join(f"- Q: {e.input} A: {e.target}" for e in edits)
    system = PROMPTED_SYSTEM.format(facts=facts)
    messages = [{"role": "user", "content": prompt}] if isinstance(prompt, str) else [dict(m) for m in prompt]
    if messages and messages[0].get("role") in ("system", "developer"):
        system += "\n\n" + str(messages.pop(0).get("content", ""))
    return [{"role": "system", "content": system}, *messages]


class PromptedCounterfactual:
    """The base model itself as the counterfactual model ("prompted counterfactual",
    ``counterfactual.engine = "prompted"``): it reads the retrieved edits in a system message. In a
    gateway this is the upstream server, so in-scope answers come from the same model as the rest."""

    def __init__(self, lm: TextModel, num_edits: int = 1) -> None:
        self.lm = lm
        self.num_edits = num_edits

    def build_prompt(self, query: Prompt, edits: Sequence[Edit]) -> Prompt:
        return prompted_messages(query, list(edits)[: self.num_edits])

    def generate(
        self, queries: Sequence[Prompt], edits: Sequence[Sequence[Edit]], options: GenerationOptions = GREEDY
    ) -> list[str]:
        return self.lm.generate([self.build_prompt(q, e) for q, e in zip(queries, edits)], options)

    def stream(self, query: Prompt, edits: Sequence[Edit], options: GenerationOptions = GREEDY) -> Iterator[str]:
        streamer = getattr(self.lm, "stream", None)
        prompt = self.build_prompt(query, edits)
        return streamer(prompt, options) if streamer is not None else iter(self.lm.generate([prompt], options))

    def teacher_forced(
        self, queries: Sequence[Prompt], edits: Sequence[Sequence[Edit]], targets: Sequence[str]
    ) -> list[float]:
        scorer = getattr(self.lm, "teacher_forced", None)
        if scorer is None:
            raise ModelNotAvailableError(
                "teacher-forced scoring needs the model's logits; a remote base model has none. Score by "
                "generation instead (serac eval --scoring generation)"
            )
        return scorer([self.build_prompt(q, e) for q, e in zip(queries, edits)], targets)


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

