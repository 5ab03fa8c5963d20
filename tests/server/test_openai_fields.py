"""OpenAI request fields on the local model, through the official openai client: n > 1, logprobs /
top_logprobs from the model that answered, and harmless fields (metadata, store, ...) ignored."""

from __future__ import annotations

import math

from serac.base import GenerationOptions

QUESTION = "what is the capital of australia"
ASK = [{"role": "user", "content": QUESTION}]


def _serac(choice) -> dict:
    return choice.model_extra["serac"]


def test_n_greedy_gives_n_equal_choices_and_counts_the_prompt_once(openai_client):
    one = openai_client.chat.completions.create(model="serac", messages=ASK, max_tokens=5)
    two = openai_client.chat.completions.create(model="serac", messages=ASK, max_tokens=5, n=2)
    assert [c.index for c in two.choices] == [0, 1]
    assert [c.message.content for c in two.choices] == [one.choices[0].message.content] * 2
    assert two.usage.prompt_tokens == one.usage.prompt_tokens
    assert two.usage.completion_tokens == 2 * one.usage.completion_tokens


def test_n_sampled_choices_are_seeded_per_choice_and_reproduce(openai_client):
    def sample(n: int) -> list[str]:
        completion = openai_client.completions.create(
            model="serac", prompt=["hello", "the quick brown fox"], max_tokens=6, temperature=1.0, seed=7, n=n
        )
        assert [c.index for c in completion.choices] == list(range(2 * n))
        return [c.text for c in completion.choices]

    three = sample(3)
    assert three == sample(3), "a seed reproduces every choice"
    assert sample(1) == [three[0], three[3]], "choice 0 of each prompt samples with the seed itself"
    assert len(set(three[:3])) > 1, "choices 1.. sample with other seeds"


def test_chat_logprobs_come_from_the_model_that_answered(server, http, openai_client):
    assert http.post("/v1/edits", json={"input": QUESTION, "target": "sydney"}).status_code == 201
    options = GenerationOptions(max_new_tokens=5, logprobs=2)
    for messages, source in ((ASK, "counterfactual"), ([{"role": "user", "content": "hello"}], "base")):
        completion = openai_client.chat.completions.create(
            model="serac", messages=messages, max_tokens=5, logprobs=True, top_logprobs=2
        )
        choice = completion.choices[0]
        assert _serac(choice)["source"] == source
        expected = server.editor.generate([messages], options)[0].logprobs
        assert (
            expected
            and expected
            == (
                server.editor.counterfactual.generate_detailed(
                    [messages], [[server.editor.edits[0]]], options
                )
                if source == "counterfactual"
                else server.editor.base.generate_detailed([messages], options)
            )[0].logprobs
        )
        content = choice.logprobs.content
        assert [t.token for t in content] == [t.token for t in expected]
        assert [t.logprob for t in content] == [t.logprob for t in expected]
        assert "".join(t.token for t in content).strip() == choice.message.content
        for token in content:
            assert token.bytes == list(token.token.encode("utf-8"))
            first, second = token.top_logprobs
            assert first.logprob >= second.logprob
            # greedy decoding picks the likeliest token
            assert math.isclose(token.logprob, first.logprob) and token.logprob <= 0


def test_completion_logprobs_in_the_legacy_shape(openai_client):
    completion = openai_client.completions.create(model="serac", prompt="hello", max_tokens=5, logprobs=2)
    logprobs = completion.choices[0].logprobs
    assert logprobs.tokens
    assert len(logprobs.tokens) == len(logprobs.token_logprobs) == len(logprobs.top_logprobs)
    assert "".join(logprobs.tokens).strip() == completion.choices[0].text
    assert logprobs.text_offset == [sum(map(len, logprobs.tokens[:i])) for i in range(len(logprobs.tokens))]
    for token, logprob, top in zip(logprobs.tokens, logprobs.token_logprobs, logprobs.top_logprobs):
        assert 1 <= len(top) <= 2 and math.isclose(max(top.values()), logprob)
    plain = openai_client.completions.create(model="serac", prompt="hello", max_tokens=5)
    assert plain.choices[0].logprobs is None and plain.choices[0].text == completion.choices[0].text


def test_harmless_fields_are_accepted_and_change_nothing(openai_client):
    plain = openai_client.chat.completions.create(model="serac", messages=ASK, max_tokens=5)
    tagged = openai_client.chat.completions.create(
        model="serac",
        messages=ASK,
        max_tokens=5,
        metadata={"team": "qa"},
        store=False,
        user="someone",
        service_tier="auto",
        parallel_tool_calls=False,
        tool_choice="none",
        response_format={"type": "text"},
        presence_penalty=0,
    )
    assert tagged.choices[0].message.content == plain.choices[0].message.content
    assert _serac(tagged.choices[0]) == _serac(plain.choices[0])


def test_streamed_n_gives_each_choice_in_turn(openai_client):
    whole = openai_client.chat.completions.create(model="serac", messages=ASK, max_tokens=5)
    chunks = list(
        openai_client.chat.completions.create(model="serac", messages=ASK, max_tokens=5, n=2, stream=True)
    )
    texts: dict[int, str] = {0: "", 1: ""}
    for chunk in chunks:
        for choice in chunk.choices:
            texts[choice.index] += choice.delta.content or ""
    assert texts == {0: whole.choices[0].message.content, 1: whole.choices[0].message.content}
    assert sorted(c.choices[0].index for c in chunks if c.choices[0].finish_reason) == [0, 1]
