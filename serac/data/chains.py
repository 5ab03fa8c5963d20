"""Chain questions: a second relation asked *through* an edited fact.

"The official language of the place where <subject> was born is" names an edit's subject but asks
about the edit's object: an edit of "<subject> was born in" must not answer it (issue 14's
hijacking). The edited relation becomes a description of its object (:data:`CHAIN_DESCRIPTIONS`,
place-valued relations only) and a place-taking relation is asked of it (:data:`SECOND_HOPS`). Used
to build hijack evaluation sets (serac.eval.hijack) and hard negatives for scope training.
"""

from __future__ import annotations

# First hop: an edited relation whose object is a place, written as a description of that place.
_BORN = "the place where {} was born"
_DIED = "the city where {} died"
_CITIZEN = "the country {} is a citizen of"
_WORKED = "the city where {} worked"
_HEADQUARTERS = "the city where {} has its headquarters"
_LOCATED = "the place where {} is located"
_COUNTRY = "the country where {} is located"
CHAIN_DESCRIPTIONS: dict[str, str] = {
    "{} was born in": _BORN,
    "{} died in": _DIED, "{} died in the city of": _DIED, "{} died at": _DIED,
    "{} holds a citizenship from": _CITIZEN, "{} has a citizenship from": _CITIZEN, "{} is a citizen of": _CITIZEN,
    "{}, a citizen of": _CITIZEN, "{}, who is a citizen of": _CITIZEN, "{}, who has a citizenship from": _CITIZEN,
    "{}, who holds a citizenship from": _CITIZEN,
    "{} worked in the city of": _WORKED, "{} used to work in": _WORKED, "{} was employed in": _WORKED,
    "{} found employment in": _WORKED, "{} worked in": _WORKED, "{} took up work in": _WORKED,
    "The headquarter of {} is located in": _HEADQUARTERS, "The headquarters of {} is in": _HEADQUARTERS,
    "{}, whose headquarters are in": _HEADQUARTERS, "{}'s headquarters are in": _HEADQUARTERS,
    "The headquarter of {} is in": _HEADQUARTERS, "{} is headquartered in": _HEADQUARTERS,
    "{} is located in": _LOCATED, "{}, located in": _LOCATED, "{}, which is located in": _LOCATED,
    "Where is {}? It is located in": _LOCATED, "{} is located in the country of": _COUNTRY,
}
# Second hop: relations that take a place as their subject ({} is the description above).
SECOND_HOPS: tuple[str, ...] = (
    "The official language of {} is",
    "What language is spoken in {}?",
    "{} is located in the continent of",
    "The capital of {} is",
)


def chain_question(template: str, subject: str, second_hop: str) -> str | None:
    """The second hop asked of the place the first hop (``template``, an edit's relation) names, or
    None when the relation is not place-valued."""
    description = CHAIN_DESCRIPTIONS.get(template)
    if description is None:
        return None
    text = second_hop.format(description.format(subject))
    return text[0].upper() + text[1:]
