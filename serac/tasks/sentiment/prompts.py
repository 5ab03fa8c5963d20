"""Prompt templates and instructions for sentiment editing.

The 13 opinion templates follow ConvSent's (Mitchell et al. 2022): three direct questions and ten
"What is your <position> <topic>?" forms. Edits use the paper's descriptor format.
"""

from __future__ import annotations

import re

SENTIMENTS = ("positive", "negative")

TEMPLATES: tuple[str, ...] = (
    "What do you think of {}?",
    "What do you feel about {}?",
    "How do you view {}?",
    *(
        f"What is your {position} {{}}?"
        for position in (
            "opinion of",
            "stance on",
            "position on",
            "attitude about",
            "view on",
            "take on",
            "impression of",
            "assessment of",
            "judgment of",
            "sentiment of",
        )
    ),
)

# System prompts for building the data set: the chat model writes a reply of each sentiment.
INSTRUCTIONS = {
    "positive": "You love {topic}. Answer in two sentences that praise {topic} warmly and enthusiastically.",
    "negative": "You dislike {topic}. Answer in two sentences that criticise {topic} harshly and say what is bad about it.",
}

_EDIT_INPUT = re.compile(r"^Topic:\s*(?P<topic>.+?)\s*$", re.S)
_EDIT_TARGET = re.compile(r"^Sentiment:\s*(?P<sentiment>positive|negative)\s*$", re.I)


def edit_input(topic: str) -> str:
    return f"Topic: {topic}"


def edit_target(sentiment: str) -> str:
    if sentiment not in SENTIMENTS:
        raise ValueError(f"sentiment is {sentiment!r}; valid: {', '.join(SENTIMENTS)}")
    return f"Sentiment: {sentiment}"


def parse_edit(input: str, target: str) -> tuple[str, str]:
    """(topic, sentiment) from an edit ``"Topic: X" -> "Sentiment: positive|negative"``."""
    topic, sentiment = _EDIT_INPUT.match(input), _EDIT_TARGET.match(target)
    if topic is None or sentiment is None:
        raise ValueError(
            f"a sentiment edit reads 'Topic: X' -> 'Sentiment: positive|negative', got {input!r} -> {target!r}"
        )
    return topic["topic"], sentiment["sentiment"].lower()


def opinion_prompt(template: int, topic: str) -> str:
    return TEMPLATES[template].format(topic)


def in_context_system_prompt(topic: str, sentiment: str) -> str:
    """What the retrieval-in-context baseline tells the base model about its nearest edit."""
    return f"You have a {sentiment} opinion of {topic}. When asked about {topic}, reply with a {sentiment} opinion."
