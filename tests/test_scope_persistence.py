"""The scope index is persisted beside the store: reopening loads it and applies only the newer
events; an index for another store, encoder or a corrupted file is rebuilt, never trusted; above
``approximate_above`` live edits the index turns approximate and routes as the exact one does."""

from __future__ import annotations

import shutil

import numpy as np
import pytest

from conftest import HashingEncoder
from serac.index import index_file
from serac.scope import ScopeClassifier
from serac.store import EditStore


class SpyStore(EditStore):
    """Records the calls that show how much work a sync did."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.full_reads = 0
        self.catch_ups: list[int] = []

    def live_chunks(self, encoder, chunk_size=50_000):
        self.full_reads += 1
        return super().live_chunks(encoder, chunk_size)

    def changes_since(self, version):
        self.catch_ups.append(version)
        return super().changes_since(version)


def answers(scope, store, queries):
    scope.sync(store)
    return [d.edit.target if d.in_scope else None for d in scope.decide(queries)]


def text(i: int) -> str:  # three words of its own per edit: no hashing collisions between edits
    return f"ask{i} about{i} thing{i}"


QUERIES = [text(i) for i in range(30)] + ["something else entirely"]


def fill(path, n=30):
    with EditStore(path) as store:
        store.add_many([(text(i), f"answer {i}") for i in range(n)])
        return store.version


def test_reopen_loads_the_index_and_applies_only_newer_events(tmp_path):
    path = tmp_path / "edits.db"
    fill(path)
    first = SpyStore(path)
    scope = ScopeClassifier(HashingEncoder(), threshold=0.99)
    before = answers(scope, first, QUERIES)
    assert first.full_reads == 1 and index_file(first.index_dir, scope.encoder.id).exists()
    saved_at = first.version
    first.close()

    with EditStore(path) as other:  # changes made while no index was open
        other.remove(4)  # text(3)
        other.add(text(4), "answer 4b")  # supersedes edit 5
        other.add("a brand new question", "new")
    reopened = SpyStore(path)
    encoder = HashingEncoder()
    fresh = ScopeClassifier(encoder, threshold=0.99)
    after = answers(fresh, reopened, QUERIES + ["a brand new question"])
    assert reopened.full_reads == 0 and reopened.catch_ups == [saved_at]
    # the two keys added without vectors, then the queries: no stored key was re-encoded
    assert encoder.encoded == 2 + len(QUERIES) + 1
    assert after[-1] == "new" and "answer 4b" in after and not {"answer 3", "answer 4"} & set(after)
    assert "answer 3" in before and "answer 4" in before
    # ... and the same as an index built from scratch
    shutil.rmtree(reopened.index_dir)
    rebuilt = SpyStore(path)
    assert answers(ScopeClassifier(HashingEncoder(), threshold=0.99), rebuilt, QUERIES + ["a brand new question"]) == after
    assert rebuilt.full_reads == 1


class OtherEncoder(HashingEncoder):
    id = "hashing-test-encoder-v2"


@pytest.mark.parametrize("damage", ["encoder", "foreign", "corrupt", "newer"])
def test_stale_or_foreign_index_is_rebuilt(tmp_path, caplog, damage):
    path = tmp_path / "edits.db"
    fill(path)
    store = SpyStore(path)
    scope = ScopeClassifier(HashingEncoder(), threshold=0.99)
    expected = answers(scope, store, QUERIES)
    encoder = HashingEncoder()
    if damage == "encoder":  # same file name, built under another encoder id
        other = ScopeClassifier(OtherEncoder(), threshold=0.99)
        other.sync(store)
        index_file(store.index_dir, OtherEncoder.id).replace(index_file(store.index_dir, encoder.id))
    elif damage == "foreign":  # an index copied from another store with the same history
        other_path = tmp_path / "other.db"
        fill(other_path)
        other_store = EditStore(other_path)
        ScopeClassifier(HashingEncoder(), threshold=0.99).sync(other_store)
        shutil.copy(index_file(other_store.index_dir, encoder.id), index_file(store.index_dir, encoder.id))
    elif damage == "corrupt":
        file = index_file(store.index_dir, encoder.id)
        data = bytearray(file.read_bytes())
        data[-7] ^= 0x5A
        file.write_bytes(bytes(data))
    else:  # the store was restored from a backup older than the index
        late = store.add("one more", "x")
        newer = ScopeClassifier(HashingEncoder(), threshold=0.99)
        newer.sync(store)
        newer.save()
        for table, column in (("embeddings", "edit_id"), ("events", "edit_id"), ("edits", "id")):
            store._conn.execute(f"DELETE FROM {table} WHERE {column} = ?", (late.id,))
        store._conn.execute("DELETE FROM versions WHERE version = ?", (store.version,))
    reopened = SpyStore(path)
    assert answers(ScopeClassifier(encoder, threshold=0.99), reopened, QUERIES) == expected
    assert reopened.full_reads == 1 and "rebuilding it" in caplog.text


def test_auto_index_turns_approximate_above_the_threshold_and_back(tmp_path):
    path = tmp_path / "edits.db"
    store = EditStore(path)
    auto = ScopeClassifier(HashingEncoder(), threshold=0.99, approximate_above=40)
    exact = ScopeClassifier(HashingEncoder(), threshold=0.99, index="exact")
    queries = [f"fact {i} about something" for i in range(80)] + ["fact 3 about", "unrelated"]
    edits = store.add_many([(f"fact {i} about something", f"t{i}") for i in range(60)])
    auto.sync(store)
    assert auto.index.kind == "ivf"
    assert [d.edit and d.edit.id for d in auto.decide(queries)] == [
        d.edit and d.edit.id for d in (exact.sync(store) or exact.decide(queries))]
    for edit in edits[:45]:
        store.remove(edit.id)
    auto.sync(store)
    assert auto.index.kind == "exact" and len(auto.index) == 15
    # the persisted file follows the kind, and reloads as it
    fresh = ScopeClassifier(HashingEncoder(), threshold=0.99, approximate_above=40)
    store.add_many([(f"more {i}", "m") for i in range(50)])
    fresh.sync(EditStore(path))
    assert fresh.index.kind == "ivf" and len(fresh.index) == 65
    again = ScopeClassifier(HashingEncoder(), threshold=0.99, approximate_above=40)
    again_store = SpyStore(path)
    again.sync(again_store)
    assert again_store.full_reads == 0 and again.index.kind == "ivf"
    np.testing.assert_array_equal(
        again.index.search(HashingEncoder().encode(["more 7"]), 3)[1], fresh.index.search(HashingEncoder().encode(["more 7"]), 3)[1]
    )


def test_close_saves_changes_not_yet_persisted(tmp_path):
    path = tmp_path / "edits.db"
    fill(path)
    store = SpyStore(path)
    scope = ScopeClassifier(HashingEncoder(), threshold=0.99)
    scope.sync(store)
    store.add("late edit", "late")
    scope.sync(store)
    scope.close()
    reopened = SpyStore(path)
    assert answers(ScopeClassifier(HashingEncoder(), threshold=0.99), reopened, ["late edit"]) == ["late"]
    assert reopened.full_reads == 0 and reopened.catch_ups == []


def test_ivf_index_trains_reloads_and_is_rebuilt_for_its_size_as_the_store_grows(tmp_path):
    """Forced approximate: 700 edits cluster the IVF (16 lists); past 4x its size it is rebuilt
    with more lists, routing as exact search throughout."""
    path = tmp_path / "edits.db"
    store = SpyStore(path)
    store.add_many([(text(i), f"answer {i}") for i in range(700)])
    ivf = ScopeClassifier(HashingEncoder(), threshold=0.99, index="approximate")
    exact = ScopeClassifier(HashingEncoder(), threshold=0.99, index="exact")
    exact.save = lambda: None  # the reference must not overwrite the persisted IVF index
    exact_store = EditStore(path)
    queries = [text(i) for i in range(0, 3000, 37)] + ["something else entirely"]
    assert answers(ivf, store, queries) == answers(exact, exact_store, queries)
    assert ivf.index.kind == "ivf" and ivf.index.trained and ivf.index.lists == 16
    reopened = SpyStore(path)
    again = ScopeClassifier(HashingEncoder(), threshold=0.99, index="approximate")
    assert answers(again, reopened, queries) == answers(exact, exact_store, queries)
    assert reopened.full_reads == 0 and again.index.trained  # the clustered index was loaded, not rebuilt
    store.add_many([(text(i), f"answer {i}") for i in range(700, 3000)])
    reads = store.full_reads
    assert answers(ivf, store, queries) == answers(exact, exact_store, queries)
    assert store.full_reads == reads + 1 and ivf.index.lists == 64 and len(ivf.index) == 3000


def test_a_persisted_index_of_another_kind_is_rebuilt_even_when_nothing_changed(tmp_path):
    path = tmp_path / "edits.db"
    fill(path)
    ScopeClassifier(HashingEncoder(), threshold=0.99, index="approximate").sync(EditStore(path))
    exact = ScopeClassifier(HashingEncoder(), threshold=0.99, index="exact")
    store = SpyStore(path)
    assert answers(exact, store, QUERIES)[:3] == ["answer 0", "answer 1", "answer 2"]
    assert exact.index.kind == "exact" and store.full_reads == 1
