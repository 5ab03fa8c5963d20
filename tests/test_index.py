"""serac/index.py: exact and approximate indexes, and the persisted file (trusted only when it
matches the store, the version range and the encoder, and its checksum)."""

from __future__ import annotations

import numpy as np
import pytest

from serac.index import ApproximateIndex, ExactIndex, IndexTag, load_index, save_index


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


def test_approximate_index_agrees_with_exact_and_returns_exact_scores():
    rng = np.random.default_rng(1)
    facts = unit_rows(rng, 400)
    vectors = clustered(rng, facts, 3000)
    ids = np.arange(1, 3001)
    table = dict(zip(ids.tolist(), vectors))
    approx = ApproximateIndex(32, lambda wanted: {i: table[i] for i in wanted if i in table})
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


@pytest.mark.parametrize("kind", ["exact", "approximate"])
def test_saved_index_round_trips(tmp_path, kind):
    rng = np.random.default_rng(3)
    vectors = unit_rows(rng, 200)
    table = dict(zip(range(1, 201), vectors))
    source = lambda wanted: {i: table[i] for i in wanted}  # noqa: E731
    index = ExactIndex(32) if kind == "exact" else ApproximateIndex(32, source)
    index.add(np.arange(1, 201), vectors)
    index.remove([5, 6])
    path = tmp_path / "index.bin"
    save_index(path, index, TAG)
    loaded, version = load_index(path, 32, "store-a", "enc-1", 7, source)
    assert version == 7 and loaded.kind == kind and len(loaded) == 198 and 5 not in loaded
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
