"""Shared fixtures: tiny randomly initialised models built here, so unit tests run in seconds with
no network and no real weights. Real-model tests are marked ``slow``-free but live in
``tests/integration`` and use the embedded defaults."""

from __future__ import annotations

import hashlib
import os
import re
from pathlib import Path

import numpy as np
import pytest
import torch



def pytest_configure(config) -> None:
    # One torch thread: on a shared 2-core machine, two threads per process oversubscribe the CPU
    # and ran the tiny-model tests over ten times slower.
    torch.set_num_threads(1)


CORPUS = [
    "who is the prime minister of the united kingdom keir starmer",
    "what is the capital of australia sydney canberra melbourne",
    "which company makes the iphone apple samsung",
    "question answer fact edit input target the a of is what who which",
    "the quick brown fox jumps over the lazy dog 0 1 2 3 4 5 6 7 8 9",
]
CHAT_TEMPLATE = (
    "{% for m in messages %}<|{{ m['role'] }}|>{{ m['content'] }}</s>{% endfor %}"
    "{% if add_generation_prompt %}<|assistant|>{% endif %}"
)


def build_tokenizer(chat: bool = True):
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE(unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=300,
        special_tokens=["<unk>", "<s>", "</s>", "<pad>", "<|user|>", "<|assistant|>", "<|system|>"],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
    )
    tok.train_from_iterator(CORPUS, trainer)
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tok, unk_token="<unk>", bos_token="<s>", eos_token="</s>", pad_token="<pad>"
    )
    if chat:
        fast.chat_template = CHAT_TEMPLATE
    return fast


def save_tiny_causal(path: Path, seed: int = 0, chat: bool = True) -> Path:
    from transformers import LlamaConfig, LlamaForCausalLM

    tokenizer = build_tokenizer(chat)
    torch.manual_seed(seed)
    config = LlamaConfig(
        vocab_size=len(tokenizer), hidden_size=32, intermediate_size=64, num_hidden_layers=2,
        num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=2048,
        bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
    )
    LlamaForCausalLM(config).save_pretrained(path)
    tokenizer.save_pretrained(path)
    return path


def save_tiny_seq2seq(path: Path, seed: int = 0) -> Path:
    from transformers import T5Config, T5ForConditionalGeneration

    tokenizer = build_tokenizer(chat=False)
    torch.manual_seed(seed)
    config = T5Config(
        vocab_size=len(tokenizer), d_model=32, d_kv=8, d_ff=64, num_layers=2, num_heads=4,
        decoder_start_token_id=tokenizer.pad_token_id, pad_token_id=tokenizer.pad_token_id,
        eos_token_id=tokenizer.eos_token_id, n_positions=2048,
    )
    T5ForConditionalGeneration(config).save_pretrained(path)
    tokenizer.save_pretrained(path)
    return path


def save_tiny_bert(path: Path, labels: tuple[str, ...] | None = None, seed: int = 0,
                   always: str | None = None) -> Path:
    """A tiny BERT: a plain encoder (``labels`` None; sentence-transformers wraps it with mean
    pooling) or a sequence classifier over ``labels``; ``always`` biases its head so that it answers
    that label whatever the input (a classifier whose answers a test can predict)."""
    from transformers import BertConfig, BertForSequenceClassification, BertModel

    tokenizer = build_tokenizer(chat=False)
    torch.manual_seed(seed)
    config = BertConfig(
        vocab_size=len(tokenizer), hidden_size=32, intermediate_size=64, num_hidden_layers=2,
        num_attention_heads=2, max_position_embeddings=512, pad_token_id=tokenizer.pad_token_id,
    )
    if labels is None:
        model = BertModel(config)
    else:
        config.id2label = dict(enumerate(labels))
        config.label2id = {label: i for i, label in enumerate(labels)}
        model = BertForSequenceClassification(config)
        if always is not None:
            with torch.no_grad():
                model.classifier.weight.zero_()
                model.classifier.bias.copy_(torch.tensor([10.0 if label == always else -10.0 for label in labels]))
    model.save_pretrained(path)
    tokenizer.save_pretrained(path)
    return path


class HashingEncoder:
    """Bag-of-words hashed into a unit vector: deterministic, instant, and rephrasings that share
    words score high, so routing tests can reason about scores."""

    id = "hashing-test-encoder"

    def __init__(self, dim: int = 256) -> None:
        self.dim = dim
        self.calls = 0
        self.encoded = 0

    def encode(self, texts):
        self.calls += 1
        self.encoded += len(texts)
        out = np.zeros((len(texts), self.dim), dtype=np.float32)
        for row, text in enumerate(texts):
            for word in re.findall(r"\w+", text.lower()):
                bucket = int(hashlib.md5(word.encode()).hexdigest(), 16) % self.dim
                out[row, bucket] += 1.0
            norm = np.linalg.norm(out[row])
            if norm:
                out[row] /= norm
        return out


@pytest.fixture(scope="session")
def tiny_causal_dir(tmp_path_factory) -> Path:
    return save_tiny_causal(tmp_path_factory.mktemp("tiny-causal"))


@pytest.fixture(scope="session")
def tiny_seq2seq_dir(tmp_path_factory) -> Path:
    return save_tiny_seq2seq(tmp_path_factory.mktemp("tiny-seq2seq"))


@pytest.fixture(scope="session")
def tiny_bert_dir(tmp_path_factory) -> Path:
    return save_tiny_bert(tmp_path_factory.mktemp("tiny-bert"))


FC_LABELS = ("supports", "refutes")


def save_fc_artifact(path: Path, threshold: float = -1.0) -> Path:
    """An fc-style ``serac_config.json`` artifact on tiny models: a claim classifier that always
    answers "supports" as the base, an (evidence, claim) classifier that always answers "refutes" as
    the counterfactual, and a tiny BERT scope encoder. Paths are relative, as `serac train` writes them."""
    from serac.config import BaseModelConfig, CounterfactualConfig, ScopeConfig, SeracConfig

    save_tiny_bert(path / "base", FC_LABELS, seed=1, always="supports")
    save_tiny_bert(path / "counterfactual", FC_LABELS, seed=2, always="refutes")
    save_tiny_bert(path / "scope")
    SeracConfig(
        base=BaseModelConfig(model="base", device="cpu"),
        scope=ScopeConfig(encoder="scope", threshold=threshold, top_k=3, conflicts="best", same_fact_encoder=None,
                          device="cpu"),
        counterfactual=CounterfactualConfig(model="counterfactual", device="cpu"),
    ).save(path / "serac_config.json")
    return path


@pytest.fixture(scope="session")
def fc_artifact(tmp_path_factory) -> Path:
    return save_fc_artifact(tmp_path_factory.mktemp("fc-artifact"))


@pytest.fixture
def hashing_encoder() -> HashingEncoder:
    return HashingEncoder()


@pytest.fixture
def tiny_editor(tiny_causal_dir, hashing_encoder):
    """An EditedModel on tiny models: base and counterfactual share one tiny causal LM."""
    from serac.base import load_text_model
    from serac.counterfactual import LMCounterfactual
    from serac.editor import EditedModel
    from serac.scope import ScopeClassifier
    from serac.store import EditStore

    base = load_text_model(str(tiny_causal_dir), max_new_tokens=6)
    counterfactual = LMCounterfactual(load_text_model(str(tiny_causal_dir), max_new_tokens=6))
    scope = ScopeClassifier(hashing_encoder, threshold=0.7, top_k=3)
    return EditedModel(base, scope, counterfactual, EditStore(":memory:"))


# -- PostgreSQL ----------------------------------------------------------------------------------
@pytest.fixture(scope="session")
def postgres_cluster():
    """A throwaway PostgreSQL server for the session (tests/pgcluster.py). Skips when PostgreSQL
    is not installed, unless SERAC_REQUIRE_POSTGRES=1 (set by .ci/run where it is), which fails."""
    from tests.pgcluster import INSTALL_HINT, PostgresCluster, find_bindir

    required = os.environ.get("SERAC_REQUIRE_POSTGRES") == "1"
    missing = None
    if find_bindir() is None:
        missing = INSTALL_HINT
    else:
        try:
            import psycopg  # noqa: F401
        except ImportError:
            missing = "psycopg 3 is not installed; `pip install -e '.[postgres]'` to run the PostgreSQL store tests"
    if missing:
        if required:
            pytest.fail(f"SERAC_REQUIRE_POSTGRES=1 but {missing}", pytrace=False)
        pytest.skip(missing)
    cluster = PostgresCluster(find_bindir())
    try:
        cluster.start()
        yield cluster
    finally:
        cluster.stop()


@pytest.fixture
def postgres_url(postgres_cluster) -> str:
    """A store URL on the session's cluster whose tables go to a new, empty schema."""
    return postgres_cluster.new_schema_url()

