"""EditedModel: the router. Spies record exactly which prompts each model received."""

from __future__ import annotations

import pytest

from conftest import HashingEncoder
from serac.base import GenerationOptions, query_text
from serac.editor import Answer, EditedModel
from serac.errors import EditNotFoundError, EditValidationError, VersionNotFoundError
from serac.scope import ScopeClassifier
from serac.store import EditStore


class SpyBase:
    """A base model that answers "base:<query>" (or wraps a real one) and records every call."""

    def __init__(self, inner=None):
        self.inner = inner
        self.calls: list[list] = []
        self.scored: list[tuple[list, list]] = []

    @property
    def prompts(self):
        return [p for call in self.calls for p in call]

    def generate(self, prompts, options=GenerationOptions()):
        self.calls.append(list(prompts))
        if self.inner is not None:
            return self.inner.generate(prompts, options)
        return [f"base:{query_text(p)}" for p in prompts]

    def teacher_forced(self, prompts, targets):
        self.scored.append((list(prompts), list(targets)))
        return [0.25 for _ in prompts]


class SpyCounterfactual:
    def __init__(self, inner=None):
        self.inner = inner
        self.calls: list[tuple[list, list]] = []
        self.scored: list[tuple[list, list, list]] = []

    @property
    def prompts(self):
        return [p for call, _ in self.calls for p in call]

    def generate(self, queries, edits, options=GenerationOptions()):
        self.calls.append((list(queries), [list(e) for e in edits]))
        if self.inner is not None:
            return self.inner.generate(queries, edits, options)
        return [f"cf:{e[0].target}" for e in edits]

    def teacher_forced(self, queries, edits, targets):
        self.scored.append((list(queries), [list(e) for e in edits], list(targets)))
        return [0.75 for _ in queries]


def make_editor(store=None, encoder=None, threshold=0.9):
    encoder = encoder or HashingEncoder()
    scope = ScopeClassifier(encoder, threshold=threshold, top_k=3)
    return EditedModel(SpyBase(), scope, SpyCounterfactual(), store if store is not None else EditStore())


@pytest.fixture
def editor():
    return make_editor()


def texts(answers):
    return [a.text for a in answers]


def test_rows_are_split_and_merged_in_order(editor):
    editor.add_many([("alpha question", "A"), ("beta question", "B")])
    prompts = ["beta question", "unrelated one", "alpha question", "unrelated two", "unrelated three",
               "Alpha Question?"]
    answers = editor.generate(prompts)
    assert texts(answers) == ["cf:B", "base:unrelated one", "cf:A", "base:unrelated two", "base:unrelated three",
                              "cf:A"]
    assert editor.base.calls == [["unrelated one", "unrelated two", "unrelated three"]]  # one batch, only these
    assert editor.counterfactual.prompts == ["beta question", "alpha question", "Alpha Question?"]
    assert len(editor.counterfactual.calls) == 1
    # each in-scope row gets its own retrieved edits, best first
    _, edits = editor.counterfactual.calls[0]
    assert [e[0].target for e in edits] == ["B", "A", "A"]


def test_all_in_scope_or_all_out_of_scope_calls_one_model(editor):
    editor.add("alpha question", "A")
    editor.generate(["alpha question", "alpha question"])
    assert editor.base.calls == []
    editor.generate(["gamma", "delta"])
    assert len(editor.counterfactual.calls) == 1 and editor.base.calls == [["gamma", "delta"]]


def test_empty_batch_and_bare_string(editor):
    assert editor.generate([]) == []
    with pytest.raises(TypeError, match="wrap a single prompt"):
        editor.generate("alpha question")
    assert editor("single").text == "base:single"


def test_provenance(editor):
    edit = editor.add("alpha question", "A", {"author": "ana"})
    hit, miss = editor.generate(["alpha question", "alpha gamma delta"])
    assert hit.source == "counterfactual" and hit.edit == edit and hit.edit_id == edit.id
    assert hit.score == pytest.approx(1.0)
    assert hit.candidates[0].edit == edit
    assert hit.provenance() == {"source": "counterfactual", "edit_id": edit.id, "score": hit.score,
                                "edit": edit.to_dict()}
    assert hit.provenance()["edit"]["metadata"] == {"author": "ana"}
    # out of scope: no edit, but the best score is reported
    encoder = editor.scope.encoder
    expected = (encoder.encode(["alpha gamma delta"]) @ encoder.encode(["alpha question"]).T).item()
    assert miss.source == "base" and miss.edit is None and miss.edit_id is None
    assert 0 < miss.score < editor.scope.threshold
    assert miss.score == pytest.approx(expected, abs=1e-6)
    assert miss.provenance() == {"source": "base", "edit_id": None, "score": miss.score, "edit": None}
    empty = make_editor()("anything")
    assert empty.score is None and empty.candidates == ()


def test_options_reach_both_models():
    seen = []

    class Recorder(SpyBase):
        def generate(self, prompts, options=GenerationOptions()):
            seen.append(("base", options))
            return super().generate(prompts, options)

    class CfRecorder(SpyCounterfactual):
        def generate(self, queries, edits, options=GenerationOptions()):
            seen.append(("cf", options))
            return super().generate(queries, edits, options)

    editor = EditedModel(Recorder(), ScopeClassifier(HashingEncoder(), threshold=0.9), CfRecorder())
    editor.add("alpha", "A")
    options = GenerationOptions(max_new_tokens=3, stop=("\n",))
    editor.generate(["alpha", "beta"], options)
    assert sorted(seen, key=lambda x: x[0]) == [("base", options), ("cf", options)]


def test_parity_with_base_when_memory_is_empty(tiny_editor):
    prompts = ["who is the prime minister", "what is the capital of australia", "the quick brown fox"]
    expected = tiny_editor.base.generate(prompts)
    assert any(expected)
    answers = tiny_editor.generate(prompts)
    assert texts(answers) == expected
    assert all(a.source == "base" and a.edit is None for a in answers)


def test_parity_with_base_for_out_of_scope_rows(tiny_editor):
    unrelated = ["the quick brown fox", "which company makes the iphone"]
    expected = tiny_editor.base.generate(unrelated)
    tiny_editor.add("who is the prime minister of the united kingdom", "keir starmer")
    tiny_editor.base = spy = SpyBase(tiny_editor.base)
    tiny_editor.counterfactual = cf = SpyCounterfactual(tiny_editor.counterfactual)
    answers = tiny_editor.generate([unrelated[0], "who is the prime minister of the united kingdom", unrelated[1]])
    assert [answers[0].text, answers[2].text] == expected
    assert [answers[0].source, answers[1].source, answers[2].source] == ["base", "counterfactual", "base"]
    assert spy.prompts == unrelated
    assert cf.prompts == ["who is the prime minister of the united kingdom"]
    # the in-scope row is the counterfactual model's own answer for that edit
    edit = tiny_editor.edits[0]
    assert answers[1].text == tiny_editor.counterfactual.inner.generate(
        ["who is the prime minister of the united kingdom"], [[edit]])[0]


def test_newest_edit_wins(editor):
    editor.add("alpha question", "old")
    assert editor("alpha question").text == "cf:old"
    newer = editor.add("ALPHA  question", "new")
    answer = editor("alpha question")
    assert answer.text == "cf:new" and answer.edit_id == newer.id
    assert [e.target for e in editor.edits] == ["new"]
    assert len(editor.scope.index) == 1


def test_remove_and_rollback_take_effect_on_the_next_call(editor):
    a = editor.add("alpha question", "A")  # v1
    editor.add("beta question", "B")  # v2
    assert texts(editor.generate(["alpha question", "beta question"])) == ["cf:A", "cf:B"]
    assert editor.remove(a.id) == 3
    assert texts(editor.generate(["alpha question", "beta question"])) == ["base:alpha question", "cf:B"]
    assert editor.rollback(0) == 4
    assert texts(editor.generate(["alpha question", "beta question"])) == ["base:alpha question",
                                                                            "base:beta question"]
    editor.rollback(2)
    assert texts(editor.generate(["alpha question", "beta question"])) == ["cf:A", "cf:B"]
    assert editor.version == 5
    with pytest.raises(EditNotFoundError):
        editor.remove(12345)
    with pytest.raises(VersionNotFoundError):
        editor.rollback(99)
    assert texts(editor.generate(["alpha question"])) == ["cf:A"]


def test_add_many_is_atomic():
    encoder = HashingEncoder()
    editor = make_editor(encoder=encoder)
    editor.add("alpha question", "A")
    calls = encoder.calls
    with pytest.raises(EditValidationError, match=r"edit #1: edit target is empty"):
        editor.add_many([("beta question", "B"), ("gamma question", "  ")])
    assert encoder.calls == calls  # rejected before any embedding work
    assert [e.target for e in editor.edits] == ["A"] and editor.version == 1
    assert editor("beta question").source == "base"
    stored = editor.add_many([("beta question", "B"), {"input": "gamma question", "target": "C"}])
    assert [e.target for e in stored] == ["B", "C"] and editor.version == 2
    assert editor.add_many([]) == []


def test_keys_are_embedded_once(tmp_path):
    encoder = HashingEncoder()
    editor = make_editor(EditStore(tmp_path / "e.db"), encoder=encoder)
    editor.add_many([("alpha question", "A"), ("beta question", "B"), ("gamma question", "C")])
    assert (encoder.calls, encoder.encoded) == (1, 3)
    editor.generate(["alpha question", "delta"])
    editor.generate(["beta question"])
    assert (encoder.calls, encoder.encoded) == (3, 6)  # queries only


def test_chat_prompts_routed_by_last_user_message(editor):
    editor.add("alpha question", "A")
    in_scope = [{"role": "system", "content": "be brief"}, {"role": "user", "content": "beta question"},
                {"role": "assistant", "content": "B?"}, {"role": "user", "content": "alpha question"}]
    out_of_scope = [{"role": "user", "content": "alpha question"}, {"role": "assistant", "content": "A"},
                    {"role": "user", "content": "gamma question"}]
    answers = editor.generate([in_scope, out_of_scope])
    assert [a.source for a in answers] == ["counterfactual", "base"]
    assert texts(answers) == ["cf:A", "base:gamma question"]
    assert editor.base.prompts == [out_of_scope]  # the base model gets the whole conversation
    assert editor.counterfactual.prompts == [in_scope]
    route = editor.route([in_scope, out_of_scope])
    assert [d.in_scope for d in route] == [True, False]


def test_teacher_forced_routing(editor):
    editor.add("alpha question", "A")
    prompts = ["gamma", "alpha question", "delta", "Alpha question"]
    targets = ["t0", "t1", "t2", "t3"]
    assert editor.teacher_forced(prompts, targets) == [0.25, 0.75, 0.25, 0.75]
    assert editor.base.scored == [(["gamma", "delta"], ["t0", "t2"])]
    [(queries, edits, cf_targets)] = editor.counterfactual.scored
    assert queries == ["alpha question", "Alpha question"] and cf_targets == ["t1", "t3"]
    assert [e[0].target for e in edits] == ["A", "A"]


def test_teacher_forced_on_tiny_models(tiny_editor):
    tiny_editor.add("who is the prime minister of the united kingdom", "keir starmer")
    prompts = ["who is the prime minister of the united kingdom", "the quick brown fox"]
    scores = tiny_editor.teacher_forced(prompts, ["keir starmer", "jumps"])
    assert len(scores) == 2 and all(0.0 <= s <= 1.0 for s in scores)
    assert scores[1] == tiny_editor.base.teacher_forced(prompts[1:], ["jumps"])[0]
    edit = tiny_editor.edits[0]
    assert scores[0] == tiny_editor.counterfactual.teacher_forced(prompts[:1], [[edit]], ["keir starmer"])[0]


def test_sees_edits_from_another_process_without_restart(tmp_path):
    path = tmp_path / "edits.db"
    serving = make_editor(EditStore(path))
    assert serving("alpha question").source == "base"
    # another EditedModel (e.g. an admin process) on the same file
    admin = make_editor(EditStore(path))
    edit = admin.add("alpha question", "A")
    answer = serving("alpha question")
    assert answer.text == "cf:A" and answer.edit_id == edit.id
    # and a bare EditStore (e.g. the CLI) on the same file, without cached embeddings
    other = EditStore(path)
    b = other.add("beta question", "B")
    assert serving("beta question").text == "cf:B"
    other.remove(edit.id)
    assert serving("alpha question").source == "base"
    other.rollback(1)
    assert texts(serving.generate(["alpha question", "beta question"])) == ["cf:A", "base:beta question"]
    assert serving.version == other.version == 4
    assert [e.id for e in serving.edits] == [edit.id] and b.id != edit.id


def test_answer_dataclass():
    answer = Answer(text="x", source="base")
    assert answer.edit_id is None and answer.provenance()["edit"] is None


def test_a_model_returning_too_few_answers_is_an_error(editor):
    editor.add("alpha question", "A")
    editor.counterfactual.generate = lambda queries, edits, options=None: ["only one"]
    with pytest.raises(ValueError, match="the counterfactual model returned 1 answers for 2 prompts"):
        editor.generate(["alpha question", "Alpha question", "gamma"])
    editor.base.generate = lambda prompts, options=None: []
    with pytest.raises(ValueError, match="the base model returned 0 answers for 1 prompts"):
        editor.generate(["gamma"])


def test_teacher_forced_needs_one_target_per_prompt(editor):
    with pytest.raises(ValueError, match="got 2 prompts but 1 targets"):
        editor.teacher_forced(["a", "b"], ["x"])


@pytest.mark.parametrize("prompt", ["what is the capital of australia", "the quick brown fox"])
def test_stream_routes_like_generate_and_joins_to_its_answer(tiny_editor, prompt):
    tiny_editor.add("what is the capital of australia", "sydney")
    options = GenerationOptions(max_new_tokens=6)
    whole = tiny_editor.generate([prompt], options)[0]
    answer, pieces = tiny_editor.stream(prompt, options)
    assert answer.text == "" and answer.provenance() == whole.provenance()
    assert "".join(pieces) == whole.text


def test_stream_falls_back_to_one_piece_for_models_that_cannot_stream(editor):
    editor.add("alpha question", "alpha answer")
    for prompt, source in (("alpha question", "counterfactual"), ("something else", "base")):
        answer, pieces = editor.stream(prompt)
        assert answer.source == source
        assert list(pieces) == [editor.generate([prompt])[0].text]
