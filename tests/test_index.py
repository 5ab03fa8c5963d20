"""serac/index.py: exact and approximate (IVF, HNSW) indexes, and the persisted file (trusted only when it
matches the store, the version range and the encoder, and its checksum)."""

from __future__ import annotations

import numpy as np
import pytest

from serac.index import (
    TRAIN_POINTS_PER_LIST, ExactIndex, IndexTag, IvfIndex, lists_for, load_index, new_index, save_index,
)


def unit_rows(rng, n, dim=32):
    x = rng.standard_normal((n, dim)).astype(np.float32)
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def brute_force(ids, vectors, queries, k):
    scores = queries @ vectors.T
    order = np.argsort(-scores, axis=1, kind="stable")[:, :k]
    return np.take_along_axis(scores, order, 1), np.asarray(ids)[order]


def test_exact_index_matches_brute_force_through_adds_removes_and_re_adds():
    rng = np.random.default_rng(0)
    vectors = unit_rows(rng, 500)
    index = ExactIndex(32)
    live: dict[int, np.ndarray] = {}
    for step in range(30):
        new = rng.choice(500, size=40, replace=False)
        index.add(new + 1, vectors[new])  # some ids re-added while present: replaced, not doubled
        live.update((int(i) + 1, vectors[i]) for i in new)
        gone = rng.choice(sorted(live), size=min(25, len(live)), replace=False)
        index.remove(list(gone) + [10_000])  # an unknown id is ignored
        for i in gone:
            live.pop(int(i))
        assert len(index) == len(live)
        queries = unit_rows(rng, 3)
        scores, ids = index.search(queries, 5)
        ref_scores, ref_ids = brute_force(list(live), np.stack(list(live.values())), queries, 5)
        np.testing.assert_allclose(scores, ref_scores, rtol=1e-5)
        np.testing.assert_array_equal(ids, ref_ids)
    some = list(live)[:4]
    np.testing.assert_array_equal(index.vectors(some), np.stack([live[i] for i in some]))


def clustered(rng, centers, n):
    """Points around centres, like rephrasings of the same facts: near-ties, harder than uniform noise."""
    x = centers[rng.integers(0, len(centers), n)]
    x = x + 0.5 * rng.standard_normal(x.shape).astype(np.float32) / np.sqrt(x.shape[1])
    return (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)


@pytest.mark.parametrize("kind", ["ivf", "hnsw"])
def test_approximate_index_agrees_with_exact_and_returns_exact_scores(kind):
    rng = np.random.default_rng(1)
    facts = unit_rows(rng, 400)
    vectors = clustered(rng, facts, 3000)
    ids = np.arange(1, 3001)
    table = dict(zip(ids.tolist(), vectors))
    approx = new_index(kind, 32, lambda wanted: {i: table[i] for i in wanted if i in table})
    assert approx.kind == kind
    exact = ExactIndex(32)
    for index in (approx, exact):
        index.add(ids, vectors)
    removed = ids[::7]
    for index in (approx, exact):
        index.remove(removed)
    for i in removed:
        table.pop(int(i))
    assert len(approx) == len(exact) == 3000 - len(removed)
    queries = clustered(rng, facts, 300)
    a_scores, a_ids = approx.search(queries, 5)
    e_scores, e_ids = exact.search(queries, 5)
    assert not set(a_ids.reshape(-1).tolist()) & set(removed.tolist())
    assert (a_ids[:, 0] == e_ids[:, 0]).mean() >= 0.98
    recall = np.mean([len(set(a) & set(e)) / 5 for a, e in zip(a_ids, e_ids)])
    assert recall >= 0.95
    # Scores are the exact float32 cosines of the returned ids, not int8 approximations.
    for row in range(20):
        expected = np.stack([table[int(i)] for i in a_ids[row]]) @ queries[row]
        np.testing.assert_allclose(a_scores[row], expected, rtol=1e-5)
    # A removed id can come back (a rollback re-adds it).
    approx.add(removed[:1], vectors[removed[0] - 1 : removed[0]])
    table[int(removed[0])] = vectors[removed[0] - 1]
    _, found = approx.search(vectors[removed[0] - 1 : removed[0]], 1)
    assert found[0, 0] == removed[0]


TAG = IndexTag("store-a", 7, "enc-1")


@pytest.mark.parametrize("kind, lists", [("exact", 0), ("hnsw", 0), ("ivf", 4), ("ivf", 16)])
def test_saved_index_round_trips(tmp_path, kind, lists):
    """IVF with 4 lists is clustered (160 keys train it); with 16 it still holds its keys exactly."""
    rng = np.random.default_rng(3)
    vectors = unit_rows(rng, 200)
    table = dict(zip(range(1, 201), vectors))
    source = lambda wanted: {i: table[i] for i in wanted}  # noqa: E731
    index = IvfIndex(32, source, lists=lists) if kind == "ivf" else new_index(kind, 32, source)
    index.add(np.arange(1, 201), vectors)
    assert kind != "ivf" or index.trained == (lists == 4)
    index.remove([5, 6])
    path = tmp_path / "index.bin"
    save_index(path, index, TAG)
    loaded, version = load_index(path, 32, "store-a", "enc-1", 7, source)
    assert version == 7 and loaded.kind == kind and len(loaded) == 198 and 5 not in loaded and 7 in loaded
    queries = unit_rows(rng, 10)
    for got, want in zip(loaded.search(queries, 3), index.search(queries, 3)):
        np.testing.assert_array_equal(got, want)


@pytest.mark.parametrize(
    "store_id, encoder, max_version, dim, why",
    [
        ("store-b", "enc-1", 9, 32, "belongs to another store"),
        ("store-a", "enc-2", 9, 32, "built with encoder 'enc-1'"),
        ("store-a", "enc-1", 6, 32, "newer than the store's 6"),  # the store was restored from a backup
        ("store-a", "enc-1", 9, 16, "dimension 32"),
    ],
)
def test_foreign_or_stale_index_is_not_trusted(tmp_path, caplog, store_id, encoder, max_version, dim, why):
    index = ExactIndex(32)
    index.add([1], unit_rows(np.random.default_rng(0), 1))
    save_index(tmp_path / "index.bin", index, TAG)
    assert load_index(tmp_path / "index.bin", dim, store_id, encoder, max_version, dict) is None
    assert why in caplog.text and "rebuilding it" in caplog.text


@pytest.mark.parametrize("damage", ["flip", "truncate", "garbage", "empty"])
def test_corrupted_index_file_is_not_trusted(tmp_path, caplog, damage):
    index = ExactIndex(32)
    index.add(np.arange(1, 101), unit_rows(np.random.default_rng(0), 100))
    path = tmp_path / "index.bin"
    save_index(path, index, TAG)
    data = bytearray(path.read_bytes())
    if damage == "flip":
        data[-100] ^= 0xFF  # one payload byte: only the checksum can tell
    elif damage == "truncate":
        data = data[: len(data) // 2]
    elif damage == "garbage":
        data = bytearray(b"\x00\x01garbage" * 50)
    else:
        data = bytearray()
    path.write_bytes(bytes(data))
    assert load_index(path, 32, "store-a", "enc-1", 7, dict) is None
    assert "rebuilding it" in caplog.text


def test_missing_index_file_is_silently_none(tmp_path, caplog):
    assert load_index(tmp_path / "nothing.bin", 32, "s", "e", 0, dict) is None
    assert caplog.text == ""


def test_ivf_holds_keys_exactly_until_it_can_train_then_clusters_them():
    rng = np.random.default_rng(5)
    facts = unit_rows(rng, 50)
    vectors = clustered(rng, facts, 400)
    table = dict(zip(range(400), vectors))
    index = IvfIndex(32, lambda wanted: {i: table[i] for i in wanted if i in table}, lists=8)
    exact = ExactIndex(32)
    queries = clustered(rng, facts, 50)
    below = 8 * TRAIN_POINTS_PER_LIST - 1
    for ix in (index, exact):
        ix.add(np.arange(below), vectors[:below])
    assert not index.trained
    for got, want in zip(index.search(queries, 4), exact.search(queries, 4)):
        np.testing.assert_array_equal(got, want)  # exact while unclustered
    for ix in (index, exact):
        ix.add(np.arange(below, 400), vectors[below:])
        ix.remove(np.arange(0, 400, 9))
    assert index.trained and len(index) == len(exact) and 9 not in index and 10 in index
    a_scores, a_ids = index.search(queries, 4)
    e_scores, e_ids = exact.search(queries, 4)
    assert (a_ids[:, 0] == e_ids[:, 0]).mean() >= 0.95
    assert not set(a_ids.reshape(-1).tolist()) & set(range(0, 400, 9))
    index.remove([10, 10, 10_000])  # duplicates and unknown ids are harmless
    assert len(index) == len(exact) - 1


def test_ivf_is_outgrown_past_its_size_and_lists_grow_with_n():
    assert lists_for(0) == 16 and lists_for(100_000) == 2048 and lists_for(1_000_000) == 8192
    assert all(lists_for(n) * TRAIN_POINTS_PER_LIST <= n for n in (1_000, 50_001, 200_000, 1_000_000))
    rng = np.random.default_rng(6)
    vectors = unit_rows(rng, 700)
    index = IvfIndex(32, lambda wanted: {}, lists=4)  # sized for 4 * 40 = 160 keys
    index.add(np.arange(640), vectors[:640])
    assert index.trained and not index.outgrown
    index.add([640], vectors[640:641])
    assert index.outgrown


def test_ivf_with_a_graph_quantizer_round_trips(tmp_path, monkeypatch):
    """Many lists: the centroids are searched through an HNSW graph, persisted with the index."""
    import faiss

    import serac.index

    monkeypatch.setattr(serac.index, "GRAPH_QUANTIZER_FROM", 8)
    rng = np.random.default_rng(7)
    facts = unit_rows(rng, 60)
    vectors = clustered(rng, facts, 600)
    table = dict(zip(range(600), vectors))
    source = lambda wanted: {i: table[i] for i in wanted if i in table}  # noqa: E731
    index = IvfIndex(32, source, lists=8)
    index.add(np.arange(600), vectors)
    assert isinstance(faiss.downcast_index(index._ivf.quantizer), faiss.IndexHNSWFlat)
    save_index(tmp_path / "index.bin", index, TAG)
    loaded, _ = load_index(tmp_path / "index.bin", 32, "store-a", "enc-1", 7, source)
    queries = clustered(rng, facts, 40)
    for got, want in zip(loaded.search(queries, 3), index.search(queries, 3)):
        np.testing.assert_array_equal(got, want)
    exact = ExactIndex(32)
    exact.add(np.arange(600), vectors)
    assert (loaded.search(queries, 1)[1] == exact.search(queries, 1)[1]).mean() >= 0.95


def test_ivf_removal_is_a_tombstone_filtered_from_searches_and_rebuilt_away():
    rng = np.random.default_rng(8)
    vectors = unit_rows(rng, 4000)
    table = dict(zip(range(4000), vectors))
    index = IvfIndex(32, lambda wanted: {i: table[i] for i in wanted}, lists=4, sized_for=5000)
    index.add(np.arange(4000), vectors)
    index.remove(np.arange(1000))
    assert index.stale == 1000 and not index.outgrown and len(index) == 3000
    _, found = index.search(vectors[:50], 3)
    assert not (found[found >= 0] < 1000).any()  # the removed keys' codes are still there, never returned
    index.add([5, 2000], vectors[[5, 2000]])  # a rollback re-adds 5; 2000 is replaced: its old code is stale
    assert len(index) == 3001 and index.stale == 1001
    _, found = index.search(vectors[[5, 2000]], 2)
    assert found[:, 0].tolist() == [5, 2000] and len(set(found[1].tolist())) == 2  # no duplicate of 2000
    index.remove([6, 2001])
    assert index.outgrown  # 1,003 stale codes: past max(1000, live / 4)


@pytest.mark.parametrize("kind", ["exact", "ivf", "hnsw"])
def test_copies_of_one_key_come_back_lower_id_first_in_every_index_kind(kind):
    rng = np.random.default_rng(9)
    vectors = unit_rows(rng, 800)
    vectors[[700, 300, 500]] = vectors[100]  # three later edits share edit 100's key
    table = dict(zip(range(800), vectors))
    index = IvfIndex(32, lambda w: {i: table[i] for i in w}, lists=4) if kind == "ivf" else new_index(
        kind, 32, lambda w: {i: table[i] for i in w})
    order = rng.permutation(800)  # inserted in no particular order
    index.add(order, vectors[order])
    _, ids = index.search(vectors[100:101], 4)
    assert ids[0].tolist() == [100, 300, 500, 700]
