"""The one query path of an index, whichever face a user opens: the vector store, the retriever, the searcher.

``search_hits`` / ``search_node_dicts``: FAISS search (restricted to the ids filters allow), FAISS's ``-1`` ids
dropped, node dicts fetched; torch- and LlamaIndex-free, for ``tempscale-index query``/``serve``.
``query_nodes``: the LlamaIndex side on top (query modes, filter-only queries, embeddings on returned nodes),
so that MMR, filters and embeddings behave alike in ``TempScaleFaissVectorStore`` and ``TempScaleRetriever``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from tempscale_index.store.faiss_store import FaissStore

if TYPE_CHECKING:
    from llama_index.core.schema import BaseNode
    from llama_index.core.vector_stores.types import VectorStoreQuery, VectorStoreQueryResult

DEFAULT_MMR_PREFETCH_FACTOR = 4  # MMR re-ranks this many times similarity_top_k dense candidates

Hit = tuple[int, float]  # store id, score


def search_hits(
    store: FaissStore, queries: np.ndarray, k: int, allowed: Sequence[int] | None = None
) -> list[list[Hit]]:
    """Top-``k`` (store id, score) per query row, best first, without FAISS's ``-1`` padding."""
    scores, ids = store.search(queries, k, allowed)
    return [
        [(int(i), float(s)) for i, s in zip(row_ids, row_scores) if i >= 0] for row_ids, row_scores in zip(ids, scores)
    ]


def search_node_dicts(
    store: FaissStore, queries: np.ndarray, k: int, allowed: Sequence[int] | None = None
) -> list[list[tuple[float, dict[str, Any]]]]:
    """Top-``k`` (score, stored node dict) per query row, best first."""
    out = []
    for hits in search_hits(store, queries, k, allowed):
        nodes = store.get_node_dicts([i for i, _ in hits])
        out.append([(score, node) for (_, score), node in zip(hits, nodes)])
    return out


def fetch_nodes(store: FaissStore, ids: Sequence[int], with_embeddings: bool = False) -> list[BaseNode]:
    """The stored nodes of ``ids``, each of its own class; with their vectors as ``embedding`` when asked (as
    the index holds them: exact for Flat, HNSW and IVF-Flat, approximations for PQ indexes)."""
    nodes = store.get_nodes(ids)
    if with_embeddings and nodes:
        for node, vector in zip(nodes, store.vectors.reconstruct(np.asarray(ids, dtype=np.int64))):
            node.embedding = vector.tolist()
    return nodes


def query_nodes(
    store: FaissStore,
    query: VectorStoreQuery,
    allowed: Sequence[int] | None,
    *,
    with_embeddings: bool = False,
    mmr_threshold: float | None = None,
    mmr_prefetch_factor: int = DEFAULT_MMR_PREFETCH_FACTOR,
) -> VectorStoreQueryResult:
    """Answer a LlamaIndex ``VectorStoreQuery`` among the store ids ``allowed`` (None: all).

    Modes: ``default`` (dense top-k by inner product) and ``mmr`` (LlamaIndex's ``get_top_k_mmr_embeddings`` over
    ``mmr_prefetch_factor × k`` dense candidates). Sparse, hybrid and text-search modes need a text index this
    store does not keep, and are refused. Without a query embedding, a query restricted by filters, ``doc_ids``
    or ``node_ids`` returns up to ``similarity_top_k`` matching nodes, unscored, as Chroma and Qdrant do.
    """
    from llama_index.core.vector_stores.types import VectorStoreQueryMode, VectorStoreQueryResult

    mode = VectorStoreQueryMode(query.mode)
    if mode not in (VectorStoreQueryMode.DEFAULT, VectorStoreQueryMode.MMR):
        raise NotImplementedError(
            f"query mode {mode.value!r} is not supported: this store keeps dense vectors only (modes: default, mmr)"
        )
    k = query.similarity_top_k
    if k <= 0:
        raise ValueError(f"similarity_top_k must be positive, got {k}")
    if query.query_embedding is None:
        if allowed is None:
            raise ValueError(
                "a query without an embedding needs filters, doc_ids or node_ids (a filter-only query); "
                "to search by text, query through an index with an embed_model"
            )
        nodes = fetch_nodes(store, list(allowed)[:k], with_embeddings)
        return VectorStoreQueryResult(nodes=nodes, similarities=None, ids=[node.node_id for node in nodes])
    vector = np.asarray(query.query_embedding, dtype=np.float32).reshape(1, -1)
    if vector.shape[1] != store.config.dimension:
        raise ValueError(
            f"query embedding has dimension {vector.shape[1]}; the index holds "
            f"{store.config.dimension}-dimensional vectors"
        )
    if mode == VectorStoreQueryMode.MMR:
        hits = _mmr(store, vector, k, allowed, query.mmr_threshold or mmr_threshold, mmr_prefetch_factor)
    else:
        hits = search_hits(store, vector, k, allowed)[0]
    nodes = fetch_nodes(store, [i for i, _ in hits], with_embeddings)
    return VectorStoreQueryResult(
        nodes=nodes, similarities=[score for _, score in hits], ids=[node.node_id for node in nodes]
    )


def _mmr(
    store: FaissStore,
    vector: np.ndarray,
    k: int,
    allowed: Sequence[int] | None,
    threshold: float | None,
    prefetch_factor: int,
) -> list[Hit]:
    """Maximal marginal relevance among the dense candidates (MMR scores, as LlamaIndex's stores report them)."""
    from llama_index.core.indices.query.embedding_utils import get_top_k_mmr_embeddings

    candidates = [i for i, _ in search_hits(store, vector, k * max(1, int(prefetch_factor)), allowed)[0]]
    if not candidates:
        return []
    vectors = store.vectors.reconstruct(np.asarray(candidates, dtype=np.int64))
    scores, chosen = get_top_k_mmr_embeddings(
        vector[0].tolist(), vectors.tolist(), similarity_top_k=k, embedding_ids=candidates, mmr_threshold=threshold
    )
    return [(int(i), float(s)) for i, s in zip(chosen, scores)]
