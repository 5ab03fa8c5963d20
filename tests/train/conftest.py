"""Tiny models and tiny edit datasets for the training tests, all built here (no real weights).

The datasets are synthetic but shaped like the real ones: several edits share a subject (zsRE) or a
relation (CounterFact), rephrasings reword the edit input, CounterFact rephrasings carry an
unrelated prefix sentence and its out-of-scope prompts ask the same relation about another subject.
"""

from __future__ import annotations

import json
import random
import re
from pathlib import Path

import pytest

SUBJECTS = ["alpha", "bravo", "charlie", "delta", "echo", "foxtrot", "golf", "hotel", "india", "juliet",
            "kilo", "lima", "mike", "november", "oscar", "papa", "quebec", "romeo", "sierra", "tango"]
ANSWERS = ["red", "green", "blue", "paris", "rome", "tokyo", "piano", "violin", "english", "french"]
ZSRE_RELATIONS = [
    ("what is the capital of {s} ?", "which city is the capital of {s} ?"),
    ("what instrument does {s} play ?", "which instrument is played by {s} ?"),
    ("what language does {s} speak ?", "{s} speaks which language ?"),
]
CF_RELATIONS = [
    ("the mother tongue of {s} is", "where {s} lives people speak"),
    ("the favourite colour of {s} is", "{s} likes the colour"),
]
PREFIXES = ["the weather was nice today .", "many people enjoy long walks .", "research shows mixed results ."]
NQ = ["who wrote the famous song about rain", "when did the moon landing happen", "how many legs does a spider have",
      "where is the tallest tower", "why is the sky bright during the day"]


def write_zsre(path: Path, n: int = 24, seed: int = 0) -> Path:
    rng = random.Random(seed)
    records = []
    for i in range(n):
        subject = SUBJECTS[i % len(SUBJECTS)]
        src, rephrase = ZSRE_RELATIONS[(i // len(SUBJECTS)) % len(ZSRE_RELATIONS)]  # some subjects get two
        records.append({
            "subject": subject, "src": src.format(s=subject), "rephrase": rephrase.format(s=subject),
            "alt": rng.choice(ANSWERS), "answers": [rng.choice(ANSWERS)], "pred": "x",
            "loc": "nq question: " + NQ[i % len(NQ)], "loc_ans": "someone", "cond": "",
        })
    records.append({**records[0], "alt": ""})  # malformed, like the real training file
    path.write_text(json.dumps(records))
    return path


def write_counterfact(path: Path, n: int = 24, seed: int = 0) -> Path:
    rng = random.Random(seed)
    records = []
    for i in range(n):
        subject = SUBJECTS[(i * 7) % len(SUBJECTS)]
        other = SUBJECTS[(i * 7 + 3) % len(SUBJECTS)]
        prompt, rephrase = CF_RELATIONS[i % len(CF_RELATIONS)]
        records.append({
            "case_id": i, "prompt": prompt.format(s=subject), "target_new": rng.choice(ANSWERS),
            "subject": subject, "ground_truth": rng.choice(ANSWERS),
            "rephrase_prompt": f"{rng.choice(PREFIXES)} {rephrase.format(s=subject)}",
            "locality_prompt": prompt.format(s=other), "locality_ground_truth": rng.choice(ANSWERS),
        })
    path.write_text(json.dumps(records))
    return path


def corpus_words() -> list[str]:
    text = " ".join(
        SUBJECTS + ANSWERS + PREFIXES + NQ
        + [t for pair in ZSRE_RELATIONS + CF_RELATIONS for t in pair]
        + ["edit input answer ->", "?", ":", ".", "-", ">"]
    )
    return sorted(set(re.findall(r"\w+|[^\w\s]", text.lower())))


def save_tiny_bert(path: Path, seed: int = 0) -> Path:
    """A 2-layer BERT with a word-level WordPiece vocabulary of the fixture words."""
    import torch
    from tokenizers import Tokenizer, models, normalizers, pre_tokenizers, processors
    from transformers import BertConfig, BertModel, BertTokenizerFast

    path.mkdir(parents=True, exist_ok=True)
    vocab = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", *corpus_words()]
    tok = Tokenizer(models.WordPiece({w: i for i, w in enumerate(vocab)}, unk_token="[UNK]"))
    tok.normalizer = normalizers.BertNormalizer(lowercase=True)
    tok.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    tok.post_processor = processors.TemplateProcessing(
        single="[CLS] $A [SEP]", pair="[CLS] $A [SEP] $B:1 [SEP]:1", special_tokens=[("[CLS]", 2), ("[SEP]", 3)]
    )
    tokenizer = BertTokenizerFast(tokenizer_object=tok, unk_token="[UNK]", pad_token="[PAD]", cls_token="[CLS]",
                                  sep_token="[SEP]", mask_token="[MASK]")
    torch.manual_seed(seed)
    config = BertConfig(vocab_size=len(vocab), hidden_size=32, num_hidden_layers=2, num_attention_heads=4,
                        intermediate_size=64, max_position_embeddings=128)
    BertModel(config).save_pretrained(path)
    tokenizer.save_pretrained(path)
    return path


def save_tiny_sentence_encoder(path: Path, seed: int = 0) -> Path:
    """The tiny BERT as a sentence-transformers model (Transformer + mean Pooling + Normalize)."""
    from sentence_transformers import SentenceTransformer, models

    bert = save_tiny_bert(path.parent / (path.name + "-bert"), seed)
    transformer = models.Transformer(str(bert))
    pooling = models.Pooling(transformer.get_embedding_dimension(), pooling_mode="mean")
    SentenceTransformer(modules=[transformer, pooling, models.Normalize()], device="cpu").save(
        str(path), create_model_card=False
    )
    return path


@pytest.fixture(scope="session")
def tiny_encoder_dir(tmp_path_factory) -> Path:
    return save_tiny_sentence_encoder(tmp_path_factory.mktemp("tiny-st") / "encoder")


@pytest.fixture(scope="session")
def tiny_bert_dir(tmp_path_factory) -> Path:
    return save_tiny_bert(tmp_path_factory.mktemp("tiny-bert") / "bert")


@pytest.fixture(scope="session")
def data_files(tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("train-data")
    return {"zsre": write_zsre(root / "zsre_train.json"), "counterfact": write_counterfact(root / "cf_train.json")}


@pytest.fixture
def tiny_train_config(tiny_encoder_dir, tiny_causal_dir, data_files):
    """A TrainConfig that runs end to end in seconds on the tiny models and fixture data."""
    from serac.train.config import (
        CounterfactualTrainConfig,
        CrossEncoderTrainConfig,
        DataConfig,
        ScopeTrainConfig,
        TrainConfig,
    )

    return TrainConfig(
        data=DataConfig(zsre_train=str(data_files["zsre"]), counterfact_train=str(data_files["counterfact"]),
                        zsre_val=6, counterfact_val=6),
        scope=ScopeTrainConfig(encoder=str(tiny_encoder_dir), steps=6, batch_records=8, lr=1e-3, mine_k=4,
                               checkpoint_every=3, freeze_embeddings=False),
        cross_encoder=CrossEncoderTrainConfig(steps=4, batch_pairs=8, lr=1e-3, checkpoint_every=2),
        counterfactual=CounterfactualTrainConfig(model=str(tiny_causal_dir), steps=6, batch_size=4, lr=1e-2,
                                                 checkpoint_every=3, eval_examples=4, num_edits=3),
        seed=0,
        base_model=str(tiny_causal_dir),
    )


@pytest.fixture(autouse=True)
def _one_thread():
    """Tiny models run fastest on one thread, and a shared CPU makes extra threads spin."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
