"""The sentiment editor and the in-context baseline's counterfactual.

A trained sentiment artifact is a standard serac artifact (``serac_config.json``: the chat model as
base, the LoRA counterfactual reading the "trained" edit format, the scope encoder), so
``build_editor`` is ``EditedModel.from_pretrained``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

from serac.base import Prompt, query_text
from serac.counterfactual import LMCounterfactual
from serac.edits import Edit
from serac.editor import EditedModel
from serac.store import EditStoreProtocol
from serac.tasks.sentiment.prompts import edit_input, edit_target, in_context_system_prompt, parse_edit


def build_editor(directory: str | Path, store: str | Path | EditStoreProtocol | None = None) -> EditedModel:
    """Load a sentiment artifact; edit with ``editor.add(*sentiment_edit("Paris", "negative"))``."""
    return EditedModel.from_pretrained(directory, store=store)


def sentiment_edit(topic: str, sentiment: str) -> tuple[str, str]:
    """The (input, target) of an edit: ``("Topic: X", "Sentiment: positive|negative")``."""
    return edit_input(topic), edit_target(sentiment)


class InContextCounterfactual(LMCounterfactual):
    """Retrieval in context: the untouched base chat model, told about the nearest edit in a
    system message. With a scope threshold of -1 every prompt takes this path."""

    def __init__(self, lm) -> None:
        super().__init__(lm, prompt="few-shot", num_edits=1)

    def build_prompt(self, query: Prompt, edits: Sequence[Edit]) -> Prompt:
        topic, sentiment = parse_edit(edits[0].input, edits[0].target)
        return [
            {"role": "system", "content": in_context_system_prompt(topic, sentiment)},
            {"role": "user", "content": query_text(query)},
        ]
