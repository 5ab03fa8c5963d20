"""The ConvSent-style data recipe: topics, replies of both sentiments, sentiment labels.

No ConvSent copy is available, so the data is built the way the paper built it: topics are
entities (here the subjects of zsRE / CounterFact records), the chat model writes opinion replies
under a positive and a negative instruction for a few of the 13 templates, and a sentiment
classifier (VADER) labels each reply; a reply is kept only when its label agrees with the
instruction. The output is JSON lines written to a directory of your choice (by default under
``$SERAC_HOME``), never into the repository.

``serac train --task sentiment`` builds it (from the zsRE / CounterFact *train* files) when it is missing.
"""

from __future__ import annotations

import json
import logging
import random
import re
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Callable, ClassVar, Iterable, Sequence

from serac.base import GenerationOptions, TextModel
from serac.config import DEFAULT_LM, INTEGER, MODEL_NAME, POSITIVE_INT, Check, Config, option
from serac.data.examples import EditExample, Probe, normalize_text
from serac.data.io import PathArg, iter_jsonl
from serac.errors import DataError
from serac.models import serac_home
from serac.tasks.sentiment.prompts import INSTRUCTIONS, SENTIMENTS, TEMPLATES, edit_input, edit_target, opinion_prompt

logger = logging.getLogger(__name__)

DATA_FILE = "sentiment.jsonl"
RECIPE_FILE = "recipe.json"
SPLITS = ("train", "eval")
NEUTRAL = "neutral"
VADER_MARGIN = 0.05  # VADER's own convention: compound >= 0.05 positive, <= -0.05 negative


def default_data_dir() -> Path:
    return serac_home() / "tasks" / "sentiment-data"


# -- sentiment judge ---------------------------------------------------------------------------
def vader_label(compound: float, margin: float = VADER_MARGIN) -> str:
    if compound >= margin:
        return "positive"
    if compound <= -margin:
        return "negative"
    return NEUTRAL


class VaderJudge:
    """VADER (the ``vadersentiment`` package): text -> (label, compound score in [-1, 1])."""

    def __init__(self, margin: float = VADER_MARGIN) -> None:
        from serac.extras import require

        vader = require("vaderSentiment.vaderSentiment", "tasks", "the sentiment task's VADER judge")
        self.analyzer = vader.SentimentIntensityAnalyzer()
        self.margin = margin

    def __call__(self, texts: Sequence[str]) -> list[tuple[str, float]]:
        out = []
        for text in texts:
            compound = float(self.analyzer.polarity_scores(text)["compound"])
            out.append((vader_label(compound, self.margin), compound))
        return out


Judge = Callable[[Sequence[str]], list[tuple[str, float]]]


# -- records -----------------------------------------------------------------------------------
@dataclass(frozen=True)
class Reply:
    template: int  # index into TEMPLATES
    prompt: str
    text: str
    instructed: str  # the sentiment the chat model was told to write
    label: str  # the judge's label: positive / negative / neutral
    compound: float


@dataclass(frozen=True)
class TopicRecord:
    topic: str
    split: str
    replies: tuple[Reply, ...]

    def kept(self, sentiment: str) -> tuple[Reply, ...]:
        """Replies written under ``sentiment`` and judged to have it."""
        return tuple(r for r in self.replies if r.instructed == sentiment and r.label == sentiment)

    @property
    def usable(self) -> bool:
        return all(self.kept(s) for s in SENTIMENTS)


# -- topics ------------------------------------------------------------------------------------
_TOPIC_OK = re.compile(r"^[A-Z][A-Za-z0-9'.&\- ]{1,38}[A-Za-z0-9.]$")


def clean_topics(subjects: Iterable[str], *, max_words: int = 4) -> list[str]:
    """Distinct, plausible opinion topics: a capitalised name of 1-``max_words`` words made of
    letters, digits and light punctuation (drops dates, codes, long titles), first spelling kept."""
    seen, out = set(), []
    for subject in subjects:
        subject = " ".join(subject.split())
        key = normalize_text(subject)
        if key in seen or not _TOPIC_OK.match(subject) or len(subject.split()) > max_words:
            continue
        if sum(c.isdigit() for c in subject) > 0:
            continue
        seen.add(key)
        out.append(subject)
    return out


def load_subjects(counterfact: PathArg | None = None, zsre: PathArg | None = None) -> list[str]:
    """Subjects of CounterFact and zsRE records, in file order."""
    from serac.data import load_counterfact, load_zsre

    subjects: list[str] = []
    if counterfact is not None:
        subjects += [e.subject for e in load_counterfact(counterfact, skip_malformed=True) if e.subject]
    if zsre is not None:
        subjects += [e.subject for e in load_zsre(zsre, skip_malformed=True) if e.subject]
    if not subjects:
        raise DataError("no topic source: pass a CounterFact and/or zsRE file (or topics directly)")
    return subjects


# -- the recipe --------------------------------------------------------------------------------
@dataclass
class SentimentRecipe(Config):
    """How the sentiment data set is built. Sized for a shared 2-core CPU: 130 topics x 2 sentiments x
    1 template = 260 replies. Eval topics need no kept reply to be edited (only the paper's
    teacher-forced ES reads them), so 65% eval leaves >= 75 edits for the k=75 batch; train topics
    need both sentiments."""

    section: ClassVar[str] = "recipe"

    n_topics: int = option(130, "Topics drawn from the CounterFact / zsRE subjects.", check=POSITIVE_INT)
    eval_fraction: float = option(0.65, "Share of topics kept for evaluation (strictly between 0 and 1).",
                                  check=Check(lambda v: isinstance(v, (int, float)) and 0.0 < v < 1.0,
                                              "{name} must be in (0, 1), got {value}"))
    templates_per_sentiment: int = option(1, f"Opinion templates per sentiment (1..{len(TEMPLATES)}).",
                                          check=Check(lambda v: isinstance(v, int) and 1 <= v <= len(TEMPLATES),
                                                      f"{{name}} must be in 1..{len(TEMPLATES)}, got {{value}}"))
    max_new_tokens: int = option(32, "Reply length cap.", check=POSITIVE_INT)
    batch_size: int = option(16, "Rows per generate call.", check=POSITIVE_INT)
    model: str = option(DEFAULT_LM, "The chat model that writes the replies.", check=MODEL_NAME)
    seed: int = option(0, "Random seed.", check=INTEGER)


def plan_prompts(topics: Sequence[str], recipe: SentimentRecipe) -> list[tuple[str, str, int]]:
    """(topic, sentiment, template) triples: per topic and sentiment, a seeded choice of templates."""
    rng = random.Random(recipe.seed)
    return [
        (topic, sentiment, template)
        for topic in topics
        for sentiment in SENTIMENTS
        for template in sorted(rng.sample(range(len(TEMPLATES)), recipe.templates_per_sentiment))
    ]


def generate_records(
    topics: Sequence[str], lm: TextModel, judge: Judge, recipe: SentimentRecipe
) -> list[TopicRecord]:
    """Replies for every planned (topic, sentiment, template), judged; topics split train/eval."""
    plan = plan_prompts(topics, recipe)
    chats = [
        [
            {"role": "system", "content": INSTRUCTIONS[sentiment].format(topic=topic)},
            {"role": "user", "content": opinion_prompt(template, topic)},
        ]
        for topic, sentiment, template in plan
    ]
    texts = lm.generate(chats, GenerationOptions(max_new_tokens=recipe.max_new_tokens))
    judged = judge(texts)
    by_topic: dict[str, list[Reply]] = {t: [] for t in topics}
    for (topic, sentiment, template), text, (label, compound) in zip(plan, texts, judged):
        by_topic[topic].append(
            Reply(template, opinion_prompt(template, topic), text, sentiment, label, compound)
        )
    order = list(topics)
    random.Random(recipe.seed + 1).shuffle(order)
    n_eval = round(len(order) * recipe.eval_fraction)
    split = {t: ("eval" if i < n_eval else "train") for i, t in enumerate(order)}
    return [TopicRecord(t, split[t], tuple(by_topic[t])) for t in topics]


def write_records(
    records: Sequence[TopicRecord], out_dir: str | Path, recipe: SentimentRecipe, stats: dict
) -> Path:
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    path = out / DATA_FILE
    with path.open("w") as f:
        for record in records:
            f.write(
                json.dumps(
                    {
                        "topic": record.topic,
                        "split": record.split,
                        "replies": [asdict(r) for r in record.replies],
                    }
                )
                + "\n"
            )
    (out / RECIPE_FILE).write_text(json.dumps({"recipe": asdict(recipe), "stats": stats}, indent=2) + "\n")
    return path


def build_sentiment_data(
    out_dir: str | Path | None = None,
    *,
    topics: Sequence[str] | None = None,
    counterfact: PathArg | None = None,
    zsre: PathArg | None = None,
    recipe: SentimentRecipe | None = None,
    lm: TextModel | None = None,
    judge: Judge | None = None,
) -> Path:
    """Run the recipe and write ``sentiment.jsonl`` (+ ``recipe.json``) under ``out_dir``
    (default ``$SERAC_HOME/tasks/sentiment-data``). Topics come from ``topics`` or are drawn (seeded)
    from the CounterFact / zsRE subjects. Returns the data file's path."""
    recipe = recipe or SentimentRecipe()
    started = time.perf_counter()
    if topics is None:
        pool = clean_topics(load_subjects(counterfact, zsre))
        if len(pool) < recipe.n_topics:
            raise DataError(f"only {len(pool)} usable topics in the sources; lower n_topics to at most that")
        topics = random.Random(recipe.seed).sample(pool, recipe.n_topics)
    if lm is None:
        from serac.base import load_text_model

        lm = load_text_model(recipe.model, max_new_tokens=recipe.max_new_tokens, batch_size=recipe.batch_size)
    records = generate_records(list(topics), lm, judge or VaderJudge(), recipe)
    replies = [r for rec in records for r in rec.replies]
    stats = {
        "topics": len(records),
        "usable_topics": {s: sum(r.usable for r in records if r.split == s) for s in SPLITS},
        "replies": len(replies),
        "kept": {s: sum(r.instructed == s == r.label for r in replies) for s in SENTIMENTS},
        "instructed": {s: sum(r.instructed == s for r in replies) for s in SENTIMENTS},
        "seconds": round(time.perf_counter() - started, 1),
    }
    path = write_records(records, out_dir or default_data_dir(), recipe, stats)
    logger.info("sentiment data written to %s: %s", path, stats)
    return path


def load_sentiment_data(path: PathArg, *, usable_only: bool = True) -> list[TopicRecord]:
    """Read ``sentiment.jsonl`` (a file, or the directory holding it). With ``usable_only``,
    topics lacking a kept reply of either sentiment are dropped."""
    path = Path(path)
    if path.is_dir():
        path = path / DATA_FILE
    records = []
    for where, _, raw in iter_jsonl(path):
        try:
            replies = tuple(Reply(**r) for r in raw["replies"])
            record = TopicRecord(raw["topic"], raw["split"], replies)
        except (KeyError, TypeError) as exc:
            raise DataError(
                f"{where}: not a sentiment record ({exc}); rebuild it (delete the folder and run `serac train --task sentiment`)"
            ) from None
        if record.split not in SPLITS:
            raise DataError(f"{where}: split {record.split!r}; expected one of {', '.join(SPLITS)}")
        if record.usable or not usable_only:
            records.append(record)
    return records


def topic_prompts(topic: str, n: int, seed: int = 0) -> list[str]:
    """``n`` opinion prompts about ``topic`` from distinct templates (seeded by topic)."""
    rng = random.Random(f"{seed}:{topic}")
    return [opinion_prompt(t, topic) for t in sorted(rng.sample(range(len(TEMPLATES)), n))]


def topic_edits(records: Sequence[TopicRecord], prompts_per_edit: int = 2, seed: int = 0
                ) -> list[tuple[TopicRecord, str, list[str]]]:
    """One edit per topic: (record, sentiment, in-scope opinion prompts), in a seeded order with the
    sentiments alternating (half each)."""
    order = list(records)
    random.Random(seed).shuffle(order)
    return [(r, SENTIMENTS[i % 2], topic_prompts(r.topic, prompts_per_edit, seed)) for i, r in enumerate(order)]


def load_sentiment_task(data: PathArg | None = None, limit: int | None = 75, seed: int = 0,
                        prompts_per_edit: int = 2) -> tuple[list[EditExample], list[Probe], str]:
    """The sentiment evaluation: (edits, drawdown prompts, where they come from). Every ``eval`` topic
    (at most ``limit``) is an edit ``Topic: X -> Sentiment: s``; its in-scope probes are opinion prompts
    about X whose target is s (a reply is read by the judge before it is compared). The drawdown set
    is the same prompts about the topics that are never edited: the other eval topics and the train
    topics."""
    records = load_sentiment_data(data or default_data_dir(), usable_only=False)
    edits = topic_edits([r for r in records if r.split == "eval"], prompts_per_edit, seed)
    if not edits:
        raise DataError(f"{data} has no eval topics; rebuild it with `serac train --task sentiment`")
    used, spare = edits[:limit], edits[limit:] if limit is not None else []
    examples = [
        EditExample(edit_input(r.topic), edit_target(s), (Probe(edit_input(r.topic), s), *(Probe(p, s) for p in prompts)),
                    (), subject=r.topic, record_id=f"sentiment:{r.topic}")
        for r, s, prompts in used
    ]
    others = [r.topic for r, _, _ in spare] + [r.topic for r in records if r.split == "train"]
    probes = [Probe(p, None) for topic in others for p in topic_prompts(topic, prompts_per_edit, seed)]
    return examples, probes, f"{len(probes)} opinion prompts about {len(others)} topics never edited"
