"""Prompt templates and instructions for sentiment editing.

The 13 opinion templates follow ConvSent's (Mitchell et al. 2022): three direct questions and ten
"What is your <position> <topic>?" forms. Edits use the paper's descriptor format.
"""

from __future__ import annotations

from serac.errors import EditValidationError

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

def edit_input(topic: str) -> str:
    return f"Topic: {topic}"


def edit_target(sentiment: str) -> str:
    if sentiment not in SENTIMENTS:
        raise EditValidationError(f"sentiment is {sentiment!r}; valid: {', '.join(SENTIMENTS)}")
    return f"Sentiment: {sentiment}"


def opinion_prompt(template: int, topic: str) -> str:
    return TEMPLATES[template].format(topic)

