"""Vector indexes over edit keys, and their persisted form beside the store.

Three kinds, one interface (``VectorIndex``):

- ``ExactIndex``: every live key as float32 rows, searched by a flat inner-product scan (faiss).
  Removal swaps the last row into the hole, so it is O(1) (faiss ``IndexIDMap2.remove_ids``
  compacts the whole array on every call). Exact, and fast enough below ~50k edits.
- ``IvfIndex`` (the default approximate index): faiss IVF, keys clustered into ~8 sqrt(N) lists
  of 4-bit product-quantised codes (24 bytes per 384-d key, scanned with SIMD table lookups); a query
  scans the lists of its nearest centroids (about ``SCAN_KEYS`` keys). Removal is a tombstone.
- ``HnswIndex``: a usearch HNSW graph over int8 keys, native removal by key.

Both approximate kinds only *propose* candidates: quantisation moves cosines by a few hundredths,
which would move routing decisions at a threshold, so the candidates are re-scored with the exact
float32 keys read from the store (``exact_vectors``), and only exact scores leave the index. IVF
is the default because at 1M real-key edits it routed 99.4% of real queries as exact search did
(HNSW as built here: 94%), in a tenth of the memory, and builds in minutes instead of the graph's hour
(``scripts/scale_bench.py``, benchmarks/extra/scale.md).

An index is a cache of the store: ``save`` writes it to one file tagged with the store's id, the
store version it reflects and the encoder id, with a CRC of the payload; ``load`` returns None for
a file that is missing, unreadable, corrupted or for another store/encoder, so the caller rebuilds
it rather than trusting it, and applies only the store's changes after the tagged version.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import mmap
import os
import struct
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Mapping, Protocol, Sequence

import faiss
import numpy as np

logger = logging.getLogger(__name__)

FILE_FORMAT = 2  # 2: the kind names the structure ("ivf", "hnsw"), not just "approximate"
_MAGIC = b"SERACIX1"
# Candidates the approximate index proposes per query (at least this many, and twice k) before
# exact re-scoring; more than 2k did not raise recall at 100k real-key edits (benchmarks/extra/scale.md).
ANN_CANDIDATES = 16
# The graph's search breadth (HNSW ef): at 100k edits 64 routed 4,000 real queries exactly as exact
# search did, 32 and 48 missed a few; the sweep per size is in benchmarks/extra/scale.md.
EXPANSION_SEARCH = 64
# IVF lists scanned per query: enough lists to cover about SCAN_KEYS keys, and at least PROBES. So the
# cost of a query stays about constant as N grows, and smaller stores are searched more widely. At 1M
# edits (8,192 lists, 34 probed) 99.4% of 4,000 real queries routed as by exact search, in 0.58 ms
# (benchmarks/extra/scale.md).
PROBES = 32
SCAN_KEYS = 4096
# k-means wants ~40 points per centroid; the lists are trained once that many keys are held.
TRAIN_POINTS_PER_LIST = 40
MIN_LISTS = 16
# From this many lists the centroids are found through a small HNSW graph instead of a flat scan:
# at 8,192 lists a flat scan took 0.21 ms of a 1.1 ms search, the graph (ef 96) 0.11 ms, finding
# 98% of the 32 nearest centroids (benchmarks/extra/scale.md).
GRAPH_QUANTIZER_FROM = 1024
QUANTIZER_EF = 96
# An IVF index sized for N serves up to this many times N; beyond, its lists are long and it is
# rebuilt for the new size (like a hash table's doubling: O(1) amortised per edit).
GROWTH = 4

VectorSource = Callable[[Sequence[int]], Mapping[int, np.ndarray]]


class VectorIndex(Protocol):
    """Top-k inner-product search over edit ids. ``add`` replaces an id already present, and
    ``remove`` ignores ids not present, so replaying a change twice is harmless."""

    kind: str
    dim: int

    def __len__(self) -> int: ...
    def __contains__(self, edit_id: int) -> bool: ...
    def add(self, ids: Sequence[int], vectors: np.ndarray, threads: int = 1) -> None:
        """``threads``: for building a graph (0: every core); an exact index ignores it."""
    def remove(self, ids: Sequence[int]) -> None: ...
    def vectors(self, ids: Sequence[int]) -> np.ndarray: ...
    def search(self, queries: np.ndarray, k: int, threads: int = 1) -> tuple[np.ndarray, np.ndarray]: ...
    def to_bytes(self) -> bytes: ...


def _ties_by_id(scores: np.ndarray, ids: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Rows best first, equal scores (stored copies of one key) by lower id: every index kind
    breaks ties alike, so routing does not depend on the index's internal order."""
    order = np.lexsort((ids, -scores), axis=-1)
    return np.take_along_axis(scores, order, -1), np.take_along_axis(ids, order, -1)


def _empty_result(n: int) -> tuple[np.ndarray, np.ndarray]:
    return np.zeros((n, 0), dtype=np.float32), np.zeros((n, 0), dtype=np.int64)


class ExactIndex:
    """Exact inner-product (cosine, for unit vectors) search; rows in no particular order."""

    kind = "exact"

    def __init__(self, dim: int) -> None:
        self.dim = dim
        self._vectors = np.zeros((0, dim), dtype=np.float32)
        self._ids = np.zeros(0, dtype=np.int64)
        self._row_of = np.full(0, -1, dtype=np.int64)  # edit id -> row; ids are dense and grow
        self._n = 0

    def __len__(self) -> int:
        return self._n

    def __contains__(self, edit_id: int) -> bool:
        return 0 <= edit_id < len(self._row_of) and self._row_of[edit_id] >= 0

    def _reserve(self, rows: int, max_id: int) -> None:
        if rows > len(self._vectors):
            grown = np.zeros((max(rows, 2 * len(self._vectors), 1024), self.dim), dtype=np.float32)
            grown[: self._n] = self._vectors[: self._n]
            self._vectors = grown
            ids = np.zeros(len(grown), dtype=np.int64)
            ids[: self._n] = self._ids[: self._n]
            self._ids = ids
        if max_id >= len(self._row_of):
            row_of = np.full(max(max_id + 1, 2 * len(self._row_of), 1024), -1, dtype=np.int64)
            row_of[: len(self._row_of)] = self._row_of
            self._row_of = row_of

    def add(self, ids: Sequence[int], vectors: np.ndarray, threads: int = 1) -> None:
        ids = np.asarray(ids, dtype=np.int64)
        if not len(ids):
            return
        self.remove(ids)
        vectors = np.asarray(vectors, dtype=np.float32).reshape(len(ids), self.dim)
        self._reserve(self._n + len(ids), int(ids.max()))
        rows = np.arange(self._n, self._n + len(ids))
        self._vectors[rows] = vectors
        self._ids[rows] = ids
        self._row_of[ids] = rows
        self._n += len(ids)

    def remove(self, ids: Sequence[int]) -> None:
        ids = np.asarray(ids, dtype=np.int64)
        known = ids[(ids >= 0) & (ids < len(self._row_of))]
        for edit_id in known[self._row_of[known] >= 0]:
            if self._row_of[edit_id] < 0:  # listed twice
                continue
            row, last = int(self._row_of[edit_id]), self._n - 1
            if row != last:  # move the last row into the hole: O(1), no compaction
                moved = int(self._ids[last])
                self._vectors[row] = self._vectors[last]
                self._ids[row] = moved
                self._row_of[moved] = row
            self._row_of[edit_id] = -1
            self._n -= 1

    def vectors(self, ids: Sequence[int]) -> np.ndarray:
        return self._vectors[self._row_of[np.asarray(ids, dtype=np.int64)]]

    def search(self, queries: np.ndarray, k: int, threads: int = 1) -> tuple[np.ndarray, np.ndarray]:
        """(scores, ids), each (n_queries, k'), best first; k' = min(k, len(self))."""
        queries = np.ascontiguousarray(queries, dtype=np.float32)
        k = min(k, self._n)
        if k == 0:
            return _empty_result(len(queries))
        _set_threads(threads)
        scores, rows = faiss.knn(queries, self._vectors[: self._n], k, metric=faiss.METRIC_INNER_PRODUCT)
        return _ties_by_id(scores, self._ids[rows])

    def to_bytes(self) -> bytes:
        return self._ids[: self._n].tobytes() + self._vectors[: self._n].tobytes()

    @classmethod
    def from_bytes(cls, dim: int, count: int, payload: bytes | memoryview) -> "ExactIndex":
        index = cls(dim)
        ids = np.frombuffer(payload, dtype=np.int64, count=count)
        vectors = np.frombuffer(payload, dtype=np.float32, offset=8 * count).reshape(count, dim)
        index.add(ids, vectors)
        return index


def _set_threads(threads: int) -> None:
    """faiss's OpenMP thread count is process-wide: set it for every call. 0: every core."""
    faiss.omp_set_num_threads(threads or os.cpu_count() or 1)


def _candidates(k: int) -> int:
    return max(2 * k, ANN_CANDIDATES)


def _rescore(queries: np.ndarray, proposed: Sequence[np.ndarray], k: int,
             exact_vectors: VectorSource) -> tuple[np.ndarray, np.ndarray]:
    """The best k of each query's proposed ids by their exact float32 cosine; -inf / -1 pad rows
    with fewer. Ids the store no longer has (removed since) are dropped."""
    exact = exact_vectors(sorted({int(i) for ids in proposed for i in ids}))
    scores = np.full((len(queries), k), -np.inf, dtype=np.float32)
    out = np.full((len(queries), k), -1, dtype=np.int64)
    for row, ids in enumerate(proposed):
        ids = np.asarray([i for i in ids if int(i) in exact], dtype=np.int64)
        if not len(ids):
            continue
        row_scores = np.stack([exact[int(i)] for i in ids]) @ queries[row]
        order = np.lexsort((ids, -row_scores))[:k]  # equal scores (copies of one key): lower id first
        scores[row, : len(order)], out[row, : len(order)] = row_scores[order], ids[order]
    return scores, out


def lists_for(n: int) -> int:
    """About 8 sqrt(n) lists (a power of two), and no more than n keys can train."""
    lists = 2 ** round(math.log2(8 * math.sqrt(max(n, 1))))
    while lists > MIN_LISTS and lists * TRAIN_POINTS_PER_LIST > n:
        lists //= 2
    return max(lists, MIN_LISTS)


def pq_subvectors(dim: int) -> int:
    """Product-quantiser sub-vectors: 8 dimensions each for sentence-encoder sizes (24 bytes per
    384-d key), 2 each for small keys, where 8 dimensions in 4 bits would lose too much."""
    per = 8 if dim >= 128 else 2
    return next(m for m in (dim // per, dim // 4, dim // 2, dim) if m and dim % m == 0)


class IvfIndex:
    """faiss IVF with 4-bit product-quantised keys (fast-scan SIMD lookups) proposing candidates;
    exact float32 re-scoring of them.

    The lists are trained on the first ``TRAIN_POINTS_PER_LIST * lists`` keys it is given; until
    then keys are held in an ``ExactIndex`` and searched exactly (a small store never clusters).
    faiss's fast-scan lists cannot delete in place, so a removal is a tombstone: the id is marked
    absent and filtered out of every search, its code stays until the index is rebuilt (``outgrown``
    once tombstones reach a quarter of the live keys: O(1) amortised per removal)."""

    kind = "ivf"

    def __init__(self, dim: int, exact_vectors: VectorSource, lists: int | None = None, sized_for: int = 0) -> None:
        self.dim = dim
        self.exact_vectors = exact_vectors
        self.lists = lists or lists_for(sized_for)
        self.sized_for = max(sized_for, self.lists * TRAIN_POINTS_PER_LIST)
        self.params = {"lists": self.lists, "sized_for": self.sized_for}
        self._pending = ExactIndex(dim)  # keys not yet clustered (before training)
        self._ivf: faiss.IndexIVFPQFastScan | None = None
        self._present = np.zeros(0, dtype=bool)  # edit id -> live; ids are dense and grow
        self._n = 0
        self.probes: int | None = None  # lists scanned per query; None: from SCAN_KEYS

    def __len__(self) -> int:
        return self._n

    def __contains__(self, edit_id: int) -> bool:
        return 0 <= edit_id < len(self._present) and bool(self._present[edit_id])

    @property
    def trained(self) -> bool:
        return self._ivf is not None

    @property
    def stale(self) -> int:
        """Codes of removed or replaced keys still in the lists."""
        return 0 if self._ivf is None else self._ivf.ntotal - self._n

    @property
    def outgrown(self) -> bool:
        """Lists too long for its size, or too many tombstones: rebuild it for today's N."""
        return self.trained and (self._n > GROWTH * self.sized_for or self.stale > max(self._n // 4, 1000))

    def probes_now(self) -> int:
        if self.probes:
            return min(self.probes, self.lists)
        return min(self.lists, max(PROBES, round(SCAN_KEYS * self.lists / max(self._n, 1))))

    def _mark(self, ids: np.ndarray, present: bool) -> None:
        if len(ids) and ids.max() >= len(self._present):
            grown = np.zeros(max(int(ids.max()) + 1, 2 * len(self._present), 1024), dtype=bool)
            grown[: len(self._present)] = self._present
            self._present = grown
        self._present[ids] = present

    def add(self, ids: Sequence[int], vectors: np.ndarray, threads: int = 1) -> None:
        ids = np.asarray(ids, dtype=np.int64)
        if not len(ids):
            return
        self.remove(ids)  # a re-added id's old code becomes a tombstone
        vectors = np.ascontiguousarray(vectors, dtype=np.float32).reshape(len(ids), self.dim)
        if self._ivf is None:
            self._pending.add(ids, vectors)
        else:
            _set_threads(threads)
            self._ivf.add_with_ids(vectors, ids)
        self._mark(ids, True)
        self._n += len(ids)
        if self._ivf is None and len(self._pending) >= self.lists * TRAIN_POINTS_PER_LIST:
            self._train(threads)

    def _train(self, threads: int) -> None:
        """Cluster the held keys into lists and move them in: once, O(held keys)."""
        n = len(self._pending)
        ids, vectors = self._pending._ids[:n], self._pending._vectors[:n]
        logger.info("clustering %d edit keys into %d lists", n, self.lists)
        _set_threads(threads)
        flat = faiss.IndexFlatIP(self.dim)
        if self.lists >= GRAPH_QUANTIZER_FROM:
            quantizer = faiss.IndexHNSWFlat(self.dim, 32, faiss.METRIC_INNER_PRODUCT)
            quantizer.hnsw.efConstruction = 80
            quantizer.hnsw.efSearch = QUANTIZER_EF
        else:
            quantizer = flat
        ivf = faiss.IndexIVFPQFastScan(quantizer, self.dim, self.lists, pq_subvectors(self.dim), 4,
                                       faiss.METRIC_INNER_PRODUCT)
        quantizer.this.disown()  # the IVF index owns (and frees) its quantizer
        ivf.own_fields = True
        if quantizer is not flat:
            ivf.clustering_index = flat  # k-means assigns by a flat scan; the centroids then fill the graph
        ivf.cp.niter = 10  # enough for routing (the candidates are re-scored exactly); 25 is 2.5x slower
        ivf.train(vectors)
        ivf.clustering_index = None
        ivf.add_with_ids(vectors, ids)
        self._ivf, self._pending = ivf, ExactIndex(self.dim)

    def remove(self, ids: Sequence[int]) -> None:
        ids = np.unique(np.asarray(ids, dtype=np.int64))
        known = ids[(ids >= 0) & (ids < len(self._present))]
        known = known[self._present[known]]
        if not len(known):
            return
        if self._ivf is None:
            self._pending.remove(known)
        self._mark(known, False)
        self._n -= len(known)

    def vectors(self, ids: Sequence[int]) -> np.ndarray:
        if self._ivf is None:
            return self._pending.vectors(ids)
        found = self.exact_vectors([int(i) for i in ids])
        return np.stack([found[int(i)] for i in ids])

    def search(self, queries: np.ndarray, k: int, threads: int = 1) -> tuple[np.ndarray, np.ndarray]:
        queries = np.ascontiguousarray(queries, dtype=np.float32).reshape(-1, self.dim)
        k = min(k, self._n)
        if k == 0:
            return _empty_result(len(queries))
        if self._ivf is None:
            return self._pending.search(queries, k, threads)
        _set_threads(threads)
        self._ivf.nprobe = self.probes_now()
        wanted = _candidates(k)
        _, proposed = self._ivf.search(queries, wanted + min(wanted, self.stale))  # room for tombstones
        live = [np.unique(row[row >= 0]) for row in proposed]
        return _rescore(queries, [row[self._present[row]] for row in live], k, self.exact_vectors)

    def to_bytes(self) -> bytes:
        if self._ivf is None:
            return b"E" + self._pending.to_bytes()
        live = np.flatnonzero(self._present).astype(np.int64)
        return b"I" + struct.pack("<Q", len(live)) + live.tobytes() + faiss.serialize_index(self._ivf).tobytes()

    @classmethod
    def from_bytes(cls, dim: int, count: int, payload: bytes | memoryview, exact_vectors: VectorSource,
                   params: Mapping[str, int]) -> "IvfIndex":
        index = cls(dim, exact_vectors, lists=params["lists"], sized_for=params["sized_for"])
        form, body = bytes(payload[:1]), payload[1:]
        if form == b"E":
            index._pending = ExactIndex.from_bytes(dim, count, body)
            ids = index._pending._ids[:count]
        elif form == b"I":
            (live,) = struct.unpack("<Q", body[:8])
            ids = np.frombuffer(body, dtype=np.int64, count=live, offset=8).copy()
            codes = np.frombuffer(body, dtype=np.uint8, offset=8 + 8 * live)
            ivf = faiss.deserialize_index(codes)  # an owning, typed object
            if not isinstance(ivf, faiss.IndexIVFPQFastScan) or ivf.d != dim or ivf.ntotal < live:
                raise ValueError("its payload is not an IVF index of this dimension")
            quantizer = faiss.downcast_index(ivf.quantizer)  # a view; the IVF index owns it
            if isinstance(quantizer, faiss.IndexHNSWFlat):
                quantizer.hnsw.efSearch = QUANTIZER_EF
            index._ivf = ivf
        else:
            raise ValueError(f"unknown IVF payload form {form!r}")
        index._mark(ids, True)
        index._n = len(ids)
        return index


class HnswIndex:
    """usearch HNSW over int8 keys proposing candidates; exact float32 re-scoring of them."""

    kind = "hnsw"

    def __init__(self, dim: int, exact_vectors: VectorSource, connectivity: int = 16,
                 expansion_add: int = 64, expansion_search: int = EXPANSION_SEARCH) -> None:
        from usearch.index import Index

        self.dim = dim
        self.exact_vectors = exact_vectors
        self.params = {"connectivity": connectivity, "expansion_add": expansion_add,
                       "expansion_search": expansion_search}
        self._index = Index(ndim=dim, metric="cos", dtype="i8", **self.params)

    def __len__(self) -> int:
        return len(self._index)

    def __contains__(self, edit_id: int) -> bool:
        return bool(self._index.contains(int(edit_id)))

    def add(self, ids: Sequence[int], vectors: np.ndarray, threads: int = 1) -> None:
        ids = np.asarray(ids, dtype=np.uint64)
        if not len(ids):
            return
        self.remove(ids)
        self._index.add(ids, np.asarray(vectors, dtype=np.float32).reshape(len(ids), self.dim), threads=threads)

    def remove(self, ids: Sequence[int]) -> None:
        ids = np.asarray(ids, dtype=np.uint64)
        if len(ids):
            present = ids[np.asarray(self._index.contains(ids), dtype=bool).reshape(-1)]
            if len(present):
                self._index.remove(present)

    def vectors(self, ids: Sequence[int]) -> np.ndarray:
        found = self.exact_vectors([int(i) for i in ids])
        return np.stack([found[int(i)] for i in ids])

    def search(self, queries: np.ndarray, k: int, threads: int = 1) -> tuple[np.ndarray, np.ndarray]:
        queries = np.ascontiguousarray(queries, dtype=np.float32).reshape(-1, self.dim)
        k = min(k, len(self))
        if k == 0:
            return _empty_result(len(queries))
        matches = self._index.search(queries, _candidates(k), threads=threads)
        keys = np.asarray(matches.keys, dtype=np.int64).reshape(len(queries), -1)
        # one query gives a Matches of the hits found; several give BatchMatches padded to k
        counts = np.asarray(getattr(matches, "counts", [keys.shape[1]])).reshape(-1)
        return _rescore(queries, [keys[row, : counts[row]] for row in range(len(queries))], k, self.exact_vectors)

    def to_bytes(self) -> bytes:
        return self._index.save()

    @classmethod
    def from_bytes(cls, dim: int, payload: bytes | memoryview, exact_vectors: VectorSource,
                   params: Mapping[str, int]) -> "HnswIndex":
        # the graph's shape comes from the file; the search breadth is today's setting
        index = cls(dim, exact_vectors, **{**params, "expansion_search": EXPANSION_SEARCH})
        index._index.load(payload)  # copied into the index's own memory
        index._index.expansion_search = EXPANSION_SEARCH
        return index


def new_index(kind: str, dim: int, exact_vectors: VectorSource, sized_for: int = 0) -> VectorIndex:
    """An empty index of ``kind`` ("exact", "ivf" or "hnsw"); ``sized_for``: the edits it is built for."""
    if kind == "ivf":
        return IvfIndex(dim, exact_vectors, sized_for=sized_for)
    if kind == "hnsw":
        return HnswIndex(dim, exact_vectors)
    return ExactIndex(dim)


@dataclass(frozen=True)
class IndexTag:
    """What a persisted index is a cache of: which store, at which version, under which encoder."""

    store_id: str
    version: int
    encoder: str


def index_file(directory: Path, encoder: str) -> Path:
    """One file per encoder (an encoder id may contain any character, so it is hashed)."""
    return directory / f"index-{hashlib.sha256(encoder.encode()).hexdigest()[:16]}.bin"


def save_index(path: Path, index: VectorIndex, tag: IndexTag) -> None:
    """Write atomically (temp file, fsync, rename): a reader sees the old file or the new one."""
    payload = index.to_bytes()
    header = json.dumps({
        "format": FILE_FORMAT, "kind": index.kind, "dim": index.dim, "count": len(index),
        "store_id": tag.store_id, "version": tag.version, "encoder": tag.encoder,
        "params": getattr(index, "params", {}), "payload_len": len(payload), "crc32": zlib.crc32(payload),
    }).encode()
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f"{path.name}.{os.getpid()}.tmp")
    with open(tmp, "wb") as f:
        f.write(_MAGIC + struct.pack("<I", len(header)) + header)
        f.write(payload)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def load_index(path: Path, dim: int, store_id: str, encoder: str, max_version: int,
               exact_vectors: VectorSource) -> tuple[VectorIndex, int] | None:
    """(index, the store version it reflects), or None when the file must not be trusted."""
    try:
        with open(path, "rb") as f:
            # mapped, not read: the file's pages are not copied into a second buffer
            mapped = mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) if os.fstat(f.fileno()).st_size else None
    except FileNotFoundError:
        return None
    except OSError as exc:
        logger.warning("cannot read the persisted index (%s); rebuilding it", exc.strerror or exc)
        return None
    try:
        with memoryview(mapped if mapped is not None else b"") as data:
            return _parse(path, data, dim, store_id, encoder, max_version, exact_vectors)
    finally:
        if mapped is not None:
            mapped.close()


def _parse(path: Path, data: memoryview, dim: int, store_id: str, encoder: str, max_version: int,
           exact_vectors: VectorSource) -> tuple[VectorIndex, int] | None:
    why = None
    try:
        if bytes(data[:8]) != _MAGIC:
            raise ValueError("not a serac index file")
        (header_len,) = struct.unpack("<I", data[8:12])
        header = json.loads(bytes(data[12 : 12 + header_len]))
        payload = data[12 + header_len :]
        if header.get("format") != FILE_FORMAT:
            why = f"file format {header.get('format')}"
        elif header["store_id"] != store_id:
            why = "it belongs to another store"
        elif header["encoder"] != encoder:
            why = f"it was built with encoder {header['encoder']!r}"
        elif header["dim"] != dim:
            why = f"it has dimension {header['dim']}"
        elif not 0 <= header["version"] <= max_version:
            why = f"it is at version {header['version']}, newer than the store's {max_version}"
        elif header["payload_len"] != len(payload) or zlib.crc32(payload) != header["crc32"]:
            why = "its checksum does not match (truncated or corrupted)"
        if why is None:
            if header["kind"] == "exact":
                index: VectorIndex = ExactIndex.from_bytes(dim, header["count"], payload)
            elif header["kind"] == "ivf":
                index = IvfIndex.from_bytes(dim, header["count"], payload, exact_vectors, header["params"])
            elif header["kind"] == "hnsw":
                index = HnswIndex.from_bytes(dim, payload, exact_vectors, header["params"])
            else:
                raise ValueError(f"unknown index kind {header['kind']!r}")
            payload.release()
            if len(index) != header["count"]:
                raise ValueError(f"holds {len(index)} keys, its header says {header['count']}")
            return index, int(header["version"])
    except (ValueError, KeyError, TypeError, struct.error, RuntimeError) as exc:
        why = f"it is unreadable ({exc})"
    logger.warning("not using the persisted index %s: %s; rebuilding it from the store", path.name, why)
    return None
