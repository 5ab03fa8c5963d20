"""GRACE on the tiny random Llama of tests/conftest.py: an edit changes the edited input's answer and
leaves unrelated inputs' logits bit-identical; the deferral radius serves inside and not outside, grows
for a same-target edit, splits for a conflicting one; removal removes the key."""

from __future__ import annotations

from dataclasses import replace

import pytest
import torch

from serac.base import load_text_model
from serac.baselines.grace import Codebook, GraceAdaptor, GraceConfig, GraceMethod, decoder_blocks
from serac.errors import ConfigError
from serac.eval.bench import Part, part_method
from serac.eval.methods import METHODS, EvalModels, MethodOptions, build_method
from serac.eval.runner import EvalSettings
from tests.conftest import HashingEncoder

# Enough steps for the tiny random model to learn a short target at block 0 of 2; its prompts' last-token
# states there are ~0.11 long, unrelated prompts ~0.02-0.03 apart and a rephrasing 0.003.
TINY = GraceConfig(layer=0, epsilon=0.008, steps=300, lr=0.05)
EDITED = "who is the prime minister of the united kingdom"
UNRELATED = "the quick brown fox jumps over the lazy dog"


@pytest.fixture
def lm(tiny_causal_dir):
    return load_text_model(str(tiny_causal_dir), max_new_tokens=4, batch_size=1)


def ids_of(lm, text: str) -> list[int]:
    return lm.tokenizer(lm.format(text), add_special_tokens=False)["input_ids"]


def logits(lm, text: str) -> torch.Tensor:
    with torch.inference_mode():
        return lm.model(input_ids=torch.tensor([ids_of(lm, text)])).logits[0]


def unlikely_target(lm, text: str) -> list[int]:
    """One of the least likely next tokens after ``text``. One token: in a 2-block random model with
    RMSNorm, one replaced position cannot dictate the tokens after it (on SmolLM2 multi-token targets
    are learnt; see serac/eval/README.md)."""
    return [int(logits(lm, text)[-1].argsort()[4])]


def greedy(lm, text: str, n: int) -> list[int]:
    with torch.inference_mode():
        out = lm.model.generate(torch.tensor([ids_of(lm, text)]), max_new_tokens=n, do_sample=False,
                                pad_token_id=lm.tokenizer.pad_token_id)
    return out[0, -n:].tolist()


# -- the adaptor on the tiny model --------------------------------------------------------------------
def test_edit_changes_the_answer_and_leaves_unrelated_logits_bit_identical(lm):
    adaptor = GraceAdaptor(lm.model, TINY)
    target = unlikely_target(lm, EDITED)
    base_edited, base_unrelated = logits(lm, EDITED), logits(lm, UNRELATED)
    assert greedy(lm, EDITED, 1) != target
    distance = torch.dist(adaptor.query(ids_of(lm, EDITED)), adaptor.query(ids_of(lm, UNRELATED)))
    assert distance > TINY.epsilon  # the unrelated input is outside the new key's radius

    adaptor.edit(ids_of(lm, EDITED), target, "target", EDITED)

    with adaptor.serve_next():
        assert greedy(lm, EDITED, 1) == target  # the prompt pass is served
    assert adaptor.last_served == [0]
    with adaptor.serve_next():
        after = logits(lm, UNRELATED)
    assert adaptor.last_served == [-1]
    assert torch.equal(after, base_unrelated)
    # Unarmed, the hook is inert: the shared model is the unedited model for everyone else.
    assert torch.equal(logits(lm, EDITED), base_edited)


def test_a_served_row_in_a_batch_leaves_the_other_row_bit_identical(lm):
    adaptor = GraceAdaptor(lm.model, TINY)
    adaptor.edit(ids_of(lm, EDITED), unlikely_target(lm, EDITED), "target", EDITED)
    rows = [ids_of(lm, EDITED), ids_of(lm, UNRELATED)]
    width = max(map(len, rows))
    pad = lm.tokenizer.pad_token_id
    ids = torch.tensor([r + [pad] * (width - len(r)) for r in rows])  # right padding: positions stay put
    mask = torch.tensor([[1] * len(r) + [0] * (width - len(r)) for r in rows])
    with torch.inference_mode():
        before = lm.model(input_ids=ids, attention_mask=mask).logits
        with adaptor.serve_next(torch.tensor([len(r) - 1 for r in rows])):
            after = lm.model(input_ids=ids, attention_mask=mask).logits
    assert adaptor.last_served == [0, -1]
    assert torch.equal(after[1], before[1])
    assert not torch.equal(after[0], before[0])


def test_serve_next_serves_one_pass_only(lm):
    adaptor = GraceAdaptor(lm.model, TINY)
    adaptor.edit(ids_of(lm, EDITED), unlikely_target(lm, EDITED), "target", EDITED)
    base = logits(lm, EDITED)
    with adaptor.serve_next():
        first = logits(lm, EDITED)
        second = logits(lm, EDITED)
    assert not torch.equal(first, base)
    assert torch.equal(second, base)


def test_deferral_radius_on_the_model(lm):
    """A query within the key's radius is served, one outside is not: radius set between the two."""
    near = "who is the prime minister of the united kingdom now"
    adaptor = GraceAdaptor(lm.model, TINY)
    key = adaptor.query(ids_of(lm, EDITED))
    d_near = float(torch.dist(key, adaptor.query(ids_of(lm, near))))
    d_far = float(torch.dist(key, adaptor.query(ids_of(lm, UNRELATED))))
    assert d_near < d_far
    adaptor.codebook.epsilon = (d_near + d_far) / 2
    adaptor.edit(ids_of(lm, EDITED), unlikely_target(lm, EDITED), "target", EDITED)
    served = adaptor.codebook.lookup(torch.stack([adaptor.query(ids_of(lm, t)) for t in (EDITED, near, UNRELATED)]))
    assert served.tolist() == [0, 0, -1]


def test_decoder_blocks_are_found_by_type_and_size(lm, tiny_seq2seq_dir):
    decoder, blocks = decoder_blocks(lm.model)
    assert len(blocks) == lm.model.config.num_hidden_layers and decoder is lm.model.get_decoder()
    t5 = load_text_model(str(tiny_seq2seq_dir))
    with pytest.raises(ConfigError, match="decoder-only model"):
        GraceAdaptor(t5.model)
    with pytest.raises(ConfigError, match=r"grace.layer is 5; this model has 2 decoder blocks \(valid: -2 to 1"):
        GraceAdaptor(lm.model, GraceConfig(layer=5))
    assert GraceAdaptor(lm.model).index == 1  # default: 4/5 of the depth


# -- the codebook's rules ---------------------------------------------------------------------------
def point(x: float, y: float = 0.0) -> torch.Tensor:
    return torch.tensor([x, y])


def book_with(epsilon: float = 1.0, **entries: tuple[torch.Tensor, str]) -> Codebook:
    book = Codebook(epsilon)
    for edit, (key, target) in entries.items():
        radius = book.place(key, target, edit)
        assert radius is not None
        book.add(key, torch.zeros(2), radius, target, edit)
    return book


def test_lookup_serves_inside_the_radius_only():
    book = book_with(a=(point(0), "x"))
    assert book.entries[0].radius == 1.0
    queries = torch.stack([point(0), point(0.99), point(0, -0.5), point(1.01), point(5)])
    assert book.lookup(queries).tolist() == [0, 0, 0, -1, -1]
    assert Codebook(1.0).lookup(queries).tolist() == [-1] * 5


def test_a_far_edit_adds_a_key_with_the_initial_radius():
    book = book_with(a=(point(0), "x"), b=(point(2.5), "y"))  # 2.5 > radius 1 + epsilon 1: no overlap
    assert [e.radius for e in book.entries] == [1.0, 1.0]
    assert book.lookup(torch.stack([point(0.2), point(2.4), point(1.25)])).tolist() == [0, 1, -1]


def test_same_target_expands_the_nearest_radius():
    book = book_with(a=(point(0), "x"))
    assert book.place(point(1.6), "x", "a2") is None  # within radius + epsilon, same target: no new key
    assert len(book) == 1 and book.entries[0].radius == pytest.approx(1.6)
    assert book.entries[0].edits == ["a", "a2"]
    assert book.lookup(point(1.5)[None]).tolist() == [0]  # served now, was outside before


def test_different_target_splits_both_radii():
    book = book_with(a=(point(0), "x"))
    radius = book.place(point(1.6), "y", "b")
    assert radius == pytest.approx(0.8) and book.entries[0].radius == pytest.approx(0.8)
    book.add(point(1.6), torch.ones(2), radius, "y", "b")
    assert book.lookup(torch.stack([point(0.7), point(0.9), point(1.0), point(1.5)])).tolist() == [0, 1, 1, 1]
    assert book.lookup(point(0.79)[None]).tolist() == [0]


def test_the_same_input_with_a_new_target_replaces_its_key():
    book = book_with(a=(point(0), "x"))
    radius = book.place(point(0), "y", "a-again")
    assert radius == 1.0 and len(book) == 0  # the caller adds the new entry in its place


def test_removal_removes_the_key_once_no_edit_uses_it():
    book = book_with(a=(point(0), "x"), b=(point(5), "y"))
    assert book.place(point(0.5), "x", "a2") is None
    assert book.remove("a") and len(book) == 2  # a2 still uses the first key
    assert book.remove("a2") and len(book) == 1
    assert book.lookup(torch.stack([point(0), point(5)])).tolist() == [-1, 0]
    assert not book.remove("a")


# -- the evaluation method --------------------------------------------------------------------------
@pytest.fixture
def models(tiny_causal_dir) -> EvalModels:
    # One new token: the tiny model learns an edit's first token (see unlikely_target).
    return EvalModels(load_text_model(str(tiny_causal_dir), max_new_tokens=1, batch_size=1), encoder=HashingEncoder(),
                      max_new_tokens=1)


def one_token_targets(models: EvalModels, prompt: str, n: int) -> list[str]:
    """Words that are a single token of the tiny vocabulary and not the base model's answer."""
    answer = models.base.generate([prompt], models.options)[0]
    tokenizer = models.base.lm.tokenizer
    words = [tokenizer.decode([i]).strip() for i in range(200, len(tokenizer))]
    single = [w for w in dict.fromkeys(words) if w.isalpha() and len(tokenizer(w, add_special_tokens=False)["input_ids"]) == 1]
    return [w for w in single if w != answer][:n]


def test_method_edits_answers_and_leaves_others_to_the_base_model(models):
    assert "grace" in METHODS
    method = build_method("grace", models, MethodOptions(grace=TINY))
    assert isinstance(method, GraceMethod)
    before = models.base.generate([EDITED, UNRELATED], models.options)
    (target,) = one_token_targets(models, EDITED, 1)
    method.apply([(EDITED, target)])
    assert method.predict([EDITED, UNRELATED]) == [target, before[1]]
    assert method.last_routes == [True, False]
    assert method.teacher_forced([EDITED], [target]) == [1.0]
    assert method.teacher_forced([UNRELATED], [before[1]]) == models.base.teacher_forced([UNRELATED], [before[1]])
    assert method.remove(EDITED)
    assert method.predict([EDITED]) == [before[0]] and method.last_routes == [False]
    method.apply([(EDITED, target)])
    method.reset()
    assert method.predict([EDITED]) == [before[0]] and method.last_routes == [False]


def test_sequential_edits_accumulate(models):
    method = GraceMethod(models, TINY)
    second = "which company makes the iphone"
    first_target, = one_token_targets(models, EDITED, 1)
    second_target = next(t for t in one_token_targets(models, second, 5) if t != first_target)
    method.apply([(EDITED, first_target)])
    method.apply([(second, second_target)])
    assert len(method.adaptor.codebook) == 2
    assert method.predict([EDITED, second]) == [first_target, second_target]


def test_a_bench_part_with_its_own_radius_runs_a_grace_with_that_radius(models):
    options = MethodOptions(grace=TINY)
    shared = build_method("grace", models, options)
    settings = EvalSettings(mode="sequential", checkpoints=(1,))
    default_part = Part("zsre-sequential", "zsre", "f.json", settings, ("grace",), dd_sample=1)
    own_part = replace(default_part, name="counterfact-sequential", grace_epsilon=TINY.epsilon / 4)
    assert part_method(shared, default_part, models, options) is shared
    assert part_method(shared, replace(default_part, grace_epsilon=TINY.epsilon), models, options) is shared
    own = part_method(shared, own_part, models, options)
    assert own is not shared and own.config.epsilon == TINY.epsilon / 4
    assert (own.config.layer, own.config.steps, own.config.lr) == (TINY.layer, TINY.steps, TINY.lr)
    (target,) = one_token_targets(models, EDITED, 1)
    own.apply([(EDITED, target)])
    assert [e.radius for e in own.adaptor.codebook.entries] == [TINY.epsilon / 4]
    hooks = len(own.adaptor.block._forward_hooks)
    own.close()  # the bench closes it after the part: its hook leaves the shared base model
    assert len(own.adaptor.block._forward_hooks) == hooks - 1
