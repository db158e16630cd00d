"""The FAISS side of a store: build an index from an index_factory string, train, add, remove, search.

FAISS ids are the store's node ids. Flat, PQ and HNSW indexes sit inside ``IndexIDMap2`` (ids and
reconstruction by id); IVF indexes hold the ids themselves, with a hash-table direct map for reconstruct and
remove. HNSW cannot remove vectors: removals are marked, hidden from searches, and applied by one rebuild when
the writer commits, however many documents went. An untrained (IVF) index keeps the vectors added before its
training in a side buffer that searches score exactly and merge with the index's hits, so they are visible at
once; the commit (or ``train_size`` vectors) trains and moves them into the index.
"""

from __future__ import annotations

import logging
from pathlib import Path

import faiss
import numpy as np

from tempscale_index.store.errors import CorruptIndexError, StoreError

DEFAULT_INDEX_FACTORY = "Flat"
DEFAULT_TRAIN_SIZE = 20_000
DEFAULT_NPROBE = 16
DEFAULT_EF_SEARCH = 64
EXACT_FILTER_LIMIT = 20_000  # filtered searches over at most this many chunks are scored exactly
INDEX_EXAMPLES = "Flat, HNSW32, IVF256,Flat, IVF256,PQ16"

logger = logging.getLogger(__name__)


def faiss_message(exc: BaseException) -> str:
    """The one informative line of a FAISS C++ exception (its text also holds file names and line numbers)."""
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    message = next((line for line in reversed(lines) if not line.startswith("Error in")), lines[-1] if lines else "")
    return message.removeprefix("Error: ").strip("' ")


def build_faiss_index(index_factory: str, dimension: int) -> faiss.Index:
    """An empty index for ``index_factory`` (inner product), able to hold the store's own int64 ids.

    Raises ``ValueError`` with one line (no FAISS internals) when the string is not a usable factory string.
    """
    spec = index_factory.strip()
    if not spec or spec.upper().startswith("IDMAP"):
        raise ValueError(
            f"index type {index_factory!r}: give a FAISS index_factory string such as {INDEX_EXAMPLES} "
            "(ids are managed by the store, so no IDMap prefix)"
        )
    try:
        base = faiss.index_factory(int(dimension), spec, faiss.METRIC_INNER_PRODUCT)
    except RuntimeError:
        raise ValueError(
            f"index type {index_factory!r} is not a FAISS index_factory string for {int(dimension)}-dimensional "
            f"vectors (examples: {INDEX_EXAMPLES})"
        ) from None
    ivf = faiss.try_extract_index_ivf(base)
    if ivf is not None:  # IVF indexes store ids themselves; a hash table maps ids back for reconstruct/remove
        ivf.set_direct_map_type(faiss.DirectMap.Hashtable)
        # FAISS prints "WARNING clustering n points to k centroids" on stderr for small training sets; the
        # store logs its own line instead (VectorIndex.train_on_pending)
        ivf.cp.min_points_per_centroid = 0
        return base
    return faiss.IndexIDMap2(base)


def rebuild_without(index: faiss.Index, index_factory: str, removed: np.ndarray) -> faiss.Index:
    """A new index holding ``index``'s vectors less ``removed`` (for types that cannot remove, HNSW)."""
    all_ids = faiss.vector_to_array(index.id_map).astype(np.int64)
    keep = ~np.isin(all_ids, removed)
    rebuilt = build_faiss_index(index_factory, index.d)
    if keep.any():
        vectors = index.index.reconstruct_n(0, index.ntotal)[keep]
        if not rebuilt.is_trained:
            rebuilt.train(vectors)
        rebuilt.add_with_ids(np.ascontiguousarray(vectors), all_ids[keep])
    return rebuilt


def top_k(scores: np.ndarray, k: int) -> np.ndarray:
    """Column positions of each row's ``k`` highest scores, best first (a partial selection, then a sort of k)."""
    take = min(k, scores.shape[1])
    if take < scores.shape[1]:
        candidates = np.argpartition(-scores, take - 1, axis=1)[:, :take]
    else:
        candidates = np.broadcast_to(np.arange(take), scores.shape).copy()
    order = np.argsort(-np.take_along_axis(scores, candidates, axis=1), axis=1, kind="stable")
    return np.take_along_axis(candidates, order, axis=1)


class VectorIndex:
    """A FAISS index plus what a writer has not applied yet: vectors waiting for training, marked removals."""

    def __init__(self, index: faiss.Index, index_factory: str, train_size: int = DEFAULT_TRAIN_SIZE) -> None:
        self.index = index
        self.index_factory = index_factory.strip()
        self.train_size = int(train_size)
        self.nprobe, self.ef_search = DEFAULT_NPROBE, DEFAULT_EF_SEARCH
        self._pending_ids: list[np.ndarray] = []
        self._pending_vectors: list[np.ndarray] = []
        self._pending_joined: tuple[np.ndarray, np.ndarray] | None = None
        self._removed = np.zeros(0, dtype=np.int64)  # marked, not yet applied (index types that cannot remove)
        self._can_remove = True
        self._id_map_cache: tuple[faiss.Index, np.ndarray] | None = None

    @classmethod
    def empty(cls, index_factory: str, dimension: int, train_size: int = DEFAULT_TRAIN_SIZE) -> VectorIndex:
        return cls(build_faiss_index(index_factory, dimension), index_factory, train_size)

    @classmethod
    def read(cls, path: Path, index_factory: str, train_size: int = DEFAULT_TRAIN_SIZE) -> VectorIndex:
        try:
            index = faiss.read_index(str(path))
        except RuntimeError as exc:
            raise CorruptIndexError(f"{path} cannot be read by FAISS: {faiss_message(exc)}") from None
        return cls(index, index_factory, train_size)

    def write(self, path: Path) -> None:
        faiss.write_index(self.index, str(path))

    @property
    def dimension(self) -> int:
        return int(self.index.d)

    @property
    def ntotal(self) -> int:
        """Vectors in the index, less marked removals (buffered vectors waiting for training aside)."""
        return int(self.index.ntotal) - len(self._removed)

    @property
    def pending(self) -> tuple[np.ndarray, np.ndarray]:
        """(ids, vectors) buffered until training, joined once per change."""
        if self._pending_joined is None:
            if self._pending_ids:
                self._pending_joined = (np.concatenate(self._pending_ids), np.concatenate(self._pending_vectors))
            else:
                self._pending_joined = (np.zeros(0, dtype=np.int64), np.zeros((0, self.dimension), dtype=np.float32))
        return self._pending_joined

    def tune(self, nprobe: int | None = None, ef_search: int | None = None) -> None:
        """Search-time settings: IVF cells probed, HNSW candidate list size."""
        self.nprobe = int(nprobe) if nprobe is not None else self.nprobe
        self.ef_search = int(ef_search) if ef_search is not None else self.ef_search
        ivf = faiss.try_extract_index_ivf(self.index)
        if ivf is not None:
            ivf.nprobe = max(1, min(self.nprobe, int(ivf.nlist)))
        inner = faiss.downcast_index(self.index.index) if isinstance(self.index, faiss.IndexIDMap2) else self.index
        if hasattr(inner, "hnsw"):
            inner.hnsw.efSearch = self.ef_search

    # -- changes -----------------------------------------------------------------------------------------

    def add(self, ids: np.ndarray, vectors: np.ndarray) -> None:
        """Add vectors; an untrained index buffers them until ``train_size`` have come, then trains on them."""
        if self.index.is_trained:
            self.index.add_with_ids(vectors, ids)
            self._id_map_cache = None
            return
        self._pending_ids.append(ids)
        self._pending_vectors.append(vectors)
        self._pending_joined = None
        if sum(len(block) for block in self._pending_ids) >= self.train_size:
            self.train_on_pending()

    def train_on_pending(self) -> None:
        """Train on the buffered vectors and add them (commit calls this for corpora under ``train_size``)."""
        if not self._pending_ids:
            return
        ids, vectors = self.pending
        ivf = faiss.try_extract_index_ivf(self.index)
        if ivf is not None and len(vectors) < 39 * ivf.nlist:
            logger.info(
                "training %s on %d vectors (FAISS advises at least %d); recall may be low until the index is "
                "rebuilt on more text",
                self.index_factory,
                len(vectors),
                39 * ivf.nlist,
            )
        try:
            self.index.train(vectors)
        except RuntimeError as exc:
            raise StoreError(
                f"FAISS could not train a {self.index_factory!r} index on the {len(vectors)} chunks ingested: "
                f"{faiss_message(exc)}; ingest more text or choose an index that needs no training (Flat, HNSW32)"
            ) from None
        self.index.add_with_ids(vectors, ids)
        self._id_map_cache = None
        self._pending_ids, self._pending_vectors, self._pending_joined = [], [], None

    def remove(self, ids: np.ndarray) -> None:
        """Remove vectors by id: at once where FAISS can, otherwise marked until :meth:`apply_removals`."""
        ids = np.ascontiguousarray(ids, dtype=np.int64)
        if self._pending_ids:
            keep = [~np.isin(block, ids) for block in self._pending_ids]
            self._pending_vectors = [block[mask] for block, mask in zip(self._pending_vectors, keep)]
            self._pending_ids = [block[mask] for block, mask in zip(self._pending_ids, keep)]
            self._pending_joined = None
        if not self.index.ntotal or not len(ids):
            return
        if self._can_remove:
            try:
                self.index.remove_ids(ids)
                self._id_map_cache = None
                return
            except RuntimeError:
                self._can_remove = False  # HNSW: no removal in FAISS
        self._removed = np.union1d(self._removed, ids)

    def apply_removals(self) -> None:
        """Rebuild once without every marked vector (commit calls this)."""
        if len(self._removed):
            self.index = rebuild_without(self.index, self.index_factory, self._removed)
            self._removed = np.zeros(0, dtype=np.int64)
            self._id_map_cache = None
            self.tune()

    # -- reading -----------------------------------------------------------------------------------------

    def search(self, queries: np.ndarray, k: int, allowed: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
        """Top-``k`` (scores, ids) per query row, ids -1 where fewer qualify; ``allowed`` restricts the ids.

        Small allowed sets are scored exactly from the stored vectors, large ones go through an id selector;
        vectors waiting for training are scored exactly and merged in.
        """
        if allowed is not None:
            if len(self._removed):  # (an isin over 100k ids costs more than the search it restricts)
                allowed = allowed[~np.isin(allowed, self._removed)]
            if 0 < len(allowed) <= EXACT_FILTER_LIMIT:
                return _exact(queries, self.reconstruct(allowed), allowed, k)
        pending_ids, pending_vectors = self.pending
        if allowed is not None and len(pending_ids):
            keep = np.isin(pending_ids, allowed)
            pending_ids, pending_vectors = pending_ids[keep], pending_vectors[keep]
        found = _exact(queries, pending_vectors, pending_ids, k)
        if self.ntotal == 0 or (allowed is not None and len(allowed) == 0):
            return found  # an emptied IDMap index would map FAISS's -1 labels through an empty id table
        searched = self._search(queries, k, allowed)
        if not len(pending_ids):
            return searched
        scores, ids = np.hstack([searched[0], found[0]]), np.hstack([searched[1], found[1]])
        top = top_k(np.where(ids >= 0, scores, -np.inf), k)
        return np.take_along_axis(scores, top, axis=1), np.take_along_axis(ids, top, axis=1)

    def _search(self, queries: np.ndarray, k: int, allowed: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
        """Search FAISS; ``IndexIDMap2`` is bypassed (its id translation runs an OpenMP region that costs
        milliseconds on a busy machine, ten times an HNSW search) and ids are mapped back with numpy."""
        ivf = faiss.try_extract_index_ivf(self.index)
        if ivf is not None:  # IVF indexes hold the store's ids themselves and remove at once
            if allowed is None:
                return self.index.search(queries, k)
            params = faiss.SearchParametersIVF(sel=faiss.IDSelectorBatch(allowed), nprobe=ivf.nprobe)
            return self.index.search(queries, k, params=params)
        inner, id_map = self._id_mapping()
        if allowed is not None:
            chosen = faiss.IDSelectorBatch(np.flatnonzero(np.isin(id_map, allowed)).astype(np.int64))
            scores, labels = inner.search(queries, k, params=faiss.SearchParameters(sel=chosen))
        elif len(self._removed):
            hidden = faiss.IDSelectorBatch(np.flatnonzero(np.isin(id_map, self._removed)).astype(np.int64))
            visible = faiss.IDSelectorNot(hidden)
            scores, labels = inner.search(queries, k, params=faiss.SearchParameters(sel=visible))
        else:
            scores, labels = inner.search(queries, k)
        return scores, np.where(labels >= 0, id_map[np.maximum(labels, 0)], -1)

    def _id_mapping(self) -> tuple[faiss.Index, np.ndarray]:
        """The index inside ``IndexIDMap2`` and its position → node id table (cached until the index changes)."""
        if self._id_map_cache is None:
            self._id_map_cache = (
                faiss.downcast_index(self.index.index),
                faiss.vector_to_array(self.index.id_map).astype(np.int64),
            )
        return self._id_map_cache

    def reconstruct(self, ids: np.ndarray) -> np.ndarray:
        """The stored vectors of ``ids`` in one FAISS call (approximate for compressed indexes); vectors waiting
        for training come from the buffer."""
        ids = np.ascontiguousarray(ids, dtype=np.int64)
        pending_ids, pending_vectors = self.pending
        if not len(pending_ids):
            return self._reconstruct(ids)
        in_buffer = np.isin(ids, pending_ids)
        out = np.zeros((len(ids), self.dimension), dtype=np.float32)
        order = np.argsort(pending_ids)
        out[in_buffer] = pending_vectors[order[np.searchsorted(pending_ids, ids[in_buffer], sorter=order)]]
        if not in_buffer.all():
            out[~in_buffer] = self._reconstruct(np.ascontiguousarray(ids[~in_buffer]))
        return out

    def _reconstruct(self, ids: np.ndarray) -> np.ndarray:
        try:
            return self.index.reconstruct_batch(ids)
        except RuntimeError as exc:
            raise StoreError(f"{self.index_factory} cannot return stored vectors: {faiss_message(exc)}") from None


def _exact(queries: np.ndarray, vectors: np.ndarray, ids: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Top-``k`` (scores, ids) of ``vectors`` (labelled ``ids``) by inner product, padded with -1 ids."""
    scores = np.full((len(queries), k), -np.inf, dtype=np.float32)
    labels = np.full((len(queries), k), -1, dtype=np.int64)
    if len(ids):
        all_scores = queries @ vectors.T
        top = top_k(all_scores, k)
        scores[:, : top.shape[1]] = np.take_along_axis(all_scores, top, axis=1)
        labels[:, : top.shape[1]] = ids[top]
    return scores, labels
