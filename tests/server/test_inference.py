"""Inference through the official openai client against a real uvicorn server (tiny models)."""

from __future__ import annotations

import threading

import pytest

from serac.base import GenerationOptions

QUESTION = "what is the capital of australia"
OTHER = "which company makes the iphone"


def _add_edit(http, input=QUESTION, target="sydney"):
    response = http.post("/v1/edits", json={"input": input, "target": target})
    assert response.status_code == 201, response.text
    return response.json()["data"][0]


def _serac(choice) -> dict:
    return choice.model_extra["serac"]


def test_chat_without_edits_is_exactly_the_base_model(server, openai_client):
    messages = [{"role": "user", "content": QUESTION}]
    completion = openai_client.chat.completions.create(model="serac", messages=messages, max_tokens=5)

    assert completion.object == "chat.completion" and completion.id.startswith("chatcmpl-")
    assert completion.model == "serac" and len(completion.choices) == 1
    choice = completion.choices[0]
    assert choice.message.role == "assistant"
    assert (
        choice.message.content
        == server.editor.base.generate([messages], GenerationOptions(max_new_tokens=5))[0]
    )
    assert _serac(choice) == {
        "source": "base",
        "edit_id": None,
        "score": None,
        "edit": None,
        "store_version": server.editor.version,
    }
    assert choice.finish_reason in ("stop", "length")
    usage = completion.usage
    assert usage.prompt_tokens > 0 and usage.total_tokens == usage.prompt_tokens + usage.completion_tokens


def test_a_new_edit_routes_the_very_next_request_and_removal_undoes_it(server, http, openai_client):
    edit = _add_edit(http)
    messages = [
        {"role": "system", "content": "be brief"},
        {"role": "user", "content": "What is the capital of Australia?"},
    ]

    routed = openai_client.chat.completions.create(model="serac", messages=messages).choices[0]
    info = _serac(routed)
    assert info["source"] == "counterfactual" and info["edit_id"] == edit["id"]
    assert info["score"] >= server.editor.scope.threshold
    assert info["edit"]["target"] == "sydney" and info["store_version"] == server.editor.version
    expected = server.editor.generate([messages])[0]
    assert routed.message.content == expected.text and expected.edit_id == edit["id"]

    unrelated = openai_client.chat.completions.create(
        model="serac", messages=[{"role": "user", "content": OTHER}]
    )
    assert _serac(unrelated.choices[0])["source"] == "base"

    assert http.delete(f"/v1/edits/{edit['id']}").status_code == 200
    after = openai_client.chat.completions.create(model="serac", messages=messages).choices[0]
    assert _serac(after)["source"] == "base" and _serac(after)["edit_id"] is None


def test_completions_take_one_prompt_or_a_list_in_order(server, http, openai_client):
    edit = _add_edit(http)
    single = openai_client.completions.create(model="serac", prompt=OTHER, max_tokens=4)
    assert single.object == "text_completion" and single.id.startswith("cmpl-")
    assert (
        single.choices[0].text == server.editor.generate([OTHER], GenerationOptions(max_new_tokens=4))[0].text
    )

    several = openai_client.completions.create(model="serac", prompt=[OTHER, QUESTION, "hello"], max_tokens=4)
    assert [c.index for c in several.choices] == [0, 1, 2]
    assert [_serac(c)["source"] for c in several.choices] == ["base", "counterfactual", "base"]
    assert _serac(several.choices[1])["edit_id"] == edit["id"]
    expected = server.editor.generate([OTHER, QUESTION, "hello"], GenerationOptions(max_new_tokens=4))
    assert [c.text for c in several.choices] == [a.text for a in expected]


@pytest.mark.parametrize("with_edit", [False, True], ids=["base", "edited"])
def test_streamed_chat_equals_the_non_streamed_answer(server, http, openai_client, with_edit):
    if with_edit:
        _add_edit(http)
    messages = [{"role": "user", "content": QUESTION}]
    whole = openai_client.chat.completions.create(model="serac", messages=messages, max_tokens=8)
    chunks = list(
        openai_client.chat.completions.create(model="serac", messages=messages, max_tokens=8, stream=True)
    )

    assert all(c.object == "chat.completion.chunk" and c.id == chunks[0].id for c in chunks)
    assert chunks[0].choices[0].delta.role == "assistant"
    text = "".join(c.choices[0].delta.content or "" for c in chunks)
    assert text == whole.choices[0].message.content
    assert chunks[-1].choices[0].finish_reason in ("stop", "length")
    source = "counterfactual" if with_edit else "base"
    assert _serac(chunks[0].choices[0])["source"] == source == _serac(chunks[-1].choices[0])["source"]


def test_streamed_completions_with_usage(server, http, openai_client):
    _add_edit(http)
    stream = openai_client.completions.create(
        model="serac",
        prompt=[OTHER, QUESTION],
        max_tokens=5,
        stream=True,
        stream_options={"include_usage": True},
    )
    chunks = list(stream)
    texts = {0: "", 1: ""}
    for chunk in chunks[:-1]:
        for choice in chunk.choices:
            texts[choice.index] += choice.text
    expected = server.editor.generate([OTHER, QUESTION], GenerationOptions(max_new_tokens=5))
    assert [texts[0], texts[1]] == [a.text for a in expected]
    assert chunks[-1].choices == [] and chunks[-1].usage.total_tokens > 0
    finals = [c.choices[0] for c in chunks[:-1] if c.choices[0].finish_reason]
    assert [(_serac(c)["source"], c.index) for c in finals] == [("base", 0), ("counterfactual", 1)]


def test_stop_sequences_cut_the_answer(server, openai_client):
    prompt = "the quick brown fox"
    full = openai_client.completions.create(model="serac", prompt=prompt, max_tokens=8).choices[0].text
    assert len(full) >= 4, "the tiny model should produce a few characters"
    stop = full[2:4]
    cut = (
        openai_client.completions.create(model="serac", prompt=prompt, max_tokens=8, stop=[stop])
        .choices[0]
        .text
    )
    assert cut == full[: full.find(stop)].strip()


def test_seeded_sampling_is_reproducible(server, openai_client):
    def sample() -> str:
        return (
            openai_client.completions.create(
                model="serac", prompt="hello", max_tokens=6, temperature=1.0, seed=7
            )
            .choices[0]
            .text
        )

    assert sample() == sample()


def test_concurrent_requests_are_batched_through_the_router(server, http):
    metrics = server.app.state.metrics

    def batches_and_singles() -> tuple[float, float]:
        return metrics.value("serac_batch_size_count"), metrics.value("serac_batch_size_bucket", le="1.0")

    before_batches, before_singles = batches_and_singles()
    results: list[int] = []
    barrier = threading.Barrier(8)

    def ask(i: int) -> None:
        with server.client() as client:
            barrier.wait()
            response = client.post("/v1/completions", json={"prompt": f"{QUESTION} {i}", "max_tokens": 4})
            results.append(response.status_code)

    threads = [threading.Thread(target=ask, args=(i,)) for i in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert results == [200] * 8
    after_batches, after_singles = batches_and_singles()
    batches, singles = after_batches - before_batches, after_singles - before_singles
    assert batches < 8 and singles < batches, "8 simultaneous requests should share router calls"


def test_models_lists_the_served_model(http):
    body = http.get("/v1/models").json()
    assert body["object"] == "list" and [m["id"] for m in body["data"]] == ["serac"]
