"""A tiny fact_checking + vitaminc_sample tree, written by the tests (same layout and fields as
../shared/data), with deliberate overlaps between training and test files."""

from __future__ import annotations

import json
from pathlib import Path

# FM2 test claims: two share a sentence (one edit), one stands alone on the same page, one on another
FM2_TEST = [
    {"id": "t1", "text": "The Natural is a boxing novel.", "label": "REFUTES", "wikipedia_page": "The Natural",
     "gold_evidence": [{"text": "The Natural is a 1952 novel about baseball."}]},
    {"id": "t2", "text": "The Natural is about baseball.", "label": "SUPPORTS", "wikipedia_page": "The Natural",
     "gold_evidence": [{"text": "The Natural is a 1952 novel about baseball."},
                       {"text": "Roy Hobbs is its hero."}]},
    {"id": "t3", "text": "A film of The Natural came out in 1984.", "label": "SUPPORTS",
     "wikipedia_page": "The Natural", "gold_evidence": [{"text": "A film adaptation was released in 1984."}]},
    {"id": "t4", "text": "Puyi was the last emperor of China.", "label": "SUPPORTS", "wikipedia_page": "Puyi",
     "gold_evidence": [{"text": "Puyi was the last Emperor of China."}]},
]
FM2_DEV = [
    {"id": "d1", "text": "Mars has two moons.", "label": "SUPPORTS", "wikipedia_page": "Mars",
     "gold_evidence": [{"text": "Mars has two small moons, Phobos and Deimos."}]},
]
SYMMETRIC = {  # one contrast set: two claims x two pieces of evidence
    "dev": [
        ("Colombiana is a French film .", "Colombiana is a 2011 French action film .", "SUPPORTS"),
        ("Colombiana is a French film .", "Colombiana is a 2011 American action film .", "REFUTES"),
        ("Colombiana is an American film .", "Colombiana is a 2011 American action film .", "SUPPORTS"),
        ("Colombiana is an American film .", "Colombiana is a 2011 French action film .", "REFUTES"),
    ],
    "test": [("The Cretaceous ended .", "The Cretaceous ended with a mass extinction .", "SUPPORTS")],
    "generated": [("The Cretaceous ended .", "The Cretaceous ended with an extinction .", "SUPPORTS")],
}
ESNLI = {  # (premise, hypothesis, label); dev's last hypothesis is a Symmetric FEVER test claim
    "dev": [("A man plays a guitar.", "A man plays music.", "entailment"),
            ("A man plays a guitar.", "A woman sleeps.", "contradiction"),
            ("A man plays a guitar.", "The man is famous.", "neutral"),
            ("Rocks on a beach.", "The Cretaceous ended .", "neutral")],
    "test": [("Two dogs run.", "Animals move.", "entailment")],
}
CLIMATE = [  # the second claim is an FM2 test claim: it must never reach training
    {"claim_id": "0", "claim": "Sea level is rising.", "claim_label": "SUPPORTS", "evidences": [
        {"evidence": "Global sea level rose about 20 cm since 1900.", "evidence_label": "SUPPORTS",
         "article": "Sea level rise"},
        {"evidence": "Glaciers are large bodies of ice.", "evidence_label": "NOT_ENOUGH_INFO", "article": "Glacier"},
        {"evidence": "Sea level has fallen since 1900.", "evidence_label": "REFUTES", "article": "Sea level"}]},
    {"claim_id": "1", "claim": "Puyi was the last emperor of China.", "claim_label": "SUPPORTS", "evidences": [
        {"evidence": "Puyi ruled as a child.", "evidence_label": "NOT_ENOUGH_INFO", "article": "Puyi"}]},
]
VITAMINC_TRAIN = [
    {"claim": "The film grossed $5 million.", "evidence": "The film grossed $5 million worldwide.",
     "label": "supports", "id": "v1"},
    {"claim": "The film grossed $9 million.", "evidence": "The film grossed $5 million worldwide.",
     "label": "refutes", "id": "v2"},
    {"claim": "The film was popular.", "evidence": "The film grossed $5 million worldwide.",
     "label": "not enough info", "id": "v3"},
]
VITAMINC_TEST = [
    {"claim": "The town has 900 people.", "evidence": "The town had a population of 900.", "label": "supports",
     "id": "w1"},
    {"claim": "The town is old.", "evidence": "The town had a population of 900.", "label": "not enough info",
     "id": "w2"},
]


def _jsonl(path: Path, rows: list[dict]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(row) + "\n" for row in rows))


def write_tree(root: Path) -> tuple[Path, Path]:
    """(fact_checking dir, vitaminc_sample dir) under ``root``."""
    data, vitaminc = root / "fact_checking", root / "vitaminc_sample"
    for split, rows in ESNLI.items():
        (data / "esnli").mkdir(parents=True, exist_ok=True)
        for index, name in enumerate(("s1", "s2", "labels")):
            (data / "esnli" / f"{name}.{split}").write_text("".join(f"{row[index]} \n" for row in rows))
    _jsonl(data / "climate_fever" / "climate-fever.jsonl", CLIMATE)
    _jsonl(data / "fm2" / "test.jsonl", FM2_TEST)
    _jsonl(data / "fm2" / "dev.jsonl", FM2_DEV)
    for split, rows in SYMMETRIC.items():
        field = "evidence_sentence" if split == "generated" else "evidence"
        _jsonl(data / "fever_symmetric" / f"{split}.jsonl",
               [{"id": str(i), "claim": c, field: e, "label": label} for i, (c, e, label) in enumerate(rows)])
    _jsonl(vitaminc / "train_0.jsonl", VITAMINC_TRAIN)
    _jsonl(vitaminc / "test.jsonl", VITAMINC_TEST)
    return data, vitaminc
