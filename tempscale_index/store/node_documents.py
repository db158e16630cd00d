"""LlamaIndex nodes as store documents: what ``TempScaleFaissVectorStore`` adds, changes and checks.

The store keeps one record per document (its ``ref_doc_id``). LlamaIndex adds and deletes single nodes, so
:class:`StoredNodes` maps LlamaIndex node ids to store ids and appends or removes just those nodes: adding a
node to a document costs that node, not the document (the map is read from the node table once per version,
then kept current by each change).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

import numpy as np
from llama_index.core.schema import BaseNode

from tempscale_index.index_config import IndexConfig, IndexConfigMismatchError
from tempscale_index.node_metadata import MODEL_KEY, TAU_KEY, TOKENS_KEY, embedded_text
from tempscale_index.schedules import stored_schedule
from tempscale_index.store.faiss_store import FaissStore, content_hash
from tempscale_index.store.vector_checks import check_vectors

if TYPE_CHECKING:
    from tempscale_index.embedding import TempScaleEmbedding

_TAU_TOLERANCE = 1e-5


def checked_vectors(
    config: IndexConfig, nodes: Sequence[BaseNode], where: str, trust_callable_schedules: bool = False
) -> np.ndarray:
    """The nodes' embeddings as one matrix, refused when they cannot come from the index's embedding: another
    dimension, another model (``tempscale_model``), a τ the index's document schedule would not give, or values
    that would break search (``vector_checks``)."""
    vectors = np.asarray([node.get_embedding() for node in nodes], dtype=np.float32)
    if vectors.shape[1] != config.dimension:
        raise ValueError(
            f"nodes have {vectors.shape[1]}-dimensional embeddings; {where} holds {config.dimension}-dimensional ones"
        )
    schedule = stored_schedule(config.document_temperature, f"{where}'s document_temperature", trust_callable_schedules)
    for node in nodes:
        model = node.metadata.get(MODEL_KEY)
        if model is not None and model != config.model_name:
            config.ensure_matches(config.model_copy(update={"model_name": model}), where=where)
        if TAU_KEY in node.metadata and TOKENS_KEY in node.metadata:
            expected = schedule.taus([int(node.metadata[TOKENS_KEY])])[0]
            if abs(float(node.metadata[TAU_KEY]) - expected) > _TAU_TOLERANCE:
                raise IndexConfigMismatchError(
                    f"{where} was built with a different embedding configuration: node {node.node_id} was "
                    f"embedded at τ={node.metadata[TAU_KEY]} for {node.metadata[TOKENS_KEY]} tokens, where the "
                    f"index's document_temperature {config.document_temperature!r} gives τ={expected:.6g}. "
                    "Embed with the store's embed_model."
                )
    check_vectors(vectors, config.normalize, where, [node.node_id for node in nodes])
    return vectors


class StoredNodes:
    """LlamaIndex node id → (store id, document id) for one store version, kept current by :meth:`add` and
    :meth:`remove`. A node id is stored once: adding it again replaces it, in whichever document it was."""

    def __init__(self) -> None:
        self._by_node: dict[str, tuple[int, str]] | None = None
        self._by_store: dict[int, str] = {}

    def reset(self) -> None:
        """Forget the map (another version was loaded); the next use reads it again."""
        self._by_node, self._by_store = None, {}

    def lookup(self, store: FaissStore) -> dict[str, tuple[int, str]]:
        if self._by_node is None:
            self._by_node, self._by_store = {}, {}
            for record in store.documents.values():
                for store_id, data in zip(record.node_ids, store.get_node_dicts(record.node_ids)):
                    self._by_node[data["id_"]] = (store_id, record.doc_id)
                    self._by_store[store_id] = data["id_"]
        return self._by_node

    def add(self, store: FaissStore, nodes: Sequence[BaseNode], vectors: np.ndarray) -> None:
        """Append ``nodes`` to their documents (``ref_doc_id``, else their own id); a stored node with the same
        id is replaced, and of one id given twice the last wins."""
        index = self.lookup(store)
        last = {node.node_id: position for position, node in enumerate(nodes)}
        replaced: dict[str, set[int]] = {}
        for node_id in last:
            if node_id in index:
                store_id, doc_id = index[node_id]
                replaced.setdefault(doc_id, set()).add(store_id)
        self.remove(store, replaced)
        by_document: dict[str, list[int]] = {}
        for position in last.values():
            by_document.setdefault(nodes[position].ref_doc_id or nodes[position].node_id, []).append(position)
        for doc_id, positions in by_document.items():
            group = [nodes[i] for i in positions]
            texts = [node.get_content() for node in group]
            record = store.documents.get(doc_id)
            # a document made in one call hashes as `ingest` hashes it; an append chains onto the old hash
            digest = content_hash(doc_id, texts if record is None else [record.content_hash, *texts])
            for store_id, node in zip(store.extend(doc_id, digest, group, vectors[positions]), group):
                index[node.node_id] = (store_id, doc_id)
                self._by_store[store_id] = node.node_id

    def remove(self, store: FaissStore, selected: dict[str, set[int]]) -> None:
        """Remove the store ids ``selected`` of each document (the document when none is left)."""
        index = self.lookup(store)
        for doc_id, ids in selected.items():
            record = store.documents[doc_id]
            store.remove_nodes(doc_id, ids, content_hash(doc_id, [record.content_hash, *map(str, sorted(ids))]))
            for store_id in ids:
                index.pop(self._by_store.pop(store_id, ""), None)

    def delete_document(self, store: FaissStore, doc_id: str) -> None:
        if self._by_node is not None:
            for store_id in store.documents[doc_id].node_ids:
                self._by_node.pop(self._by_store.pop(store_id, ""), None)
        store.delete(doc_id)


def record_missing_taus(embedding_of: Callable[[], TempScaleEmbedding], nodes: Sequence[BaseNode]) -> None:
    """Nodes embedded by ``VectorStoreIndex`` (not by the embedding as a transformation) carry no τ: give them the
    one the document schedule assigns their embedded text, as the embedding did. ``embedding_of`` is called
    only when a node needs it (building the embedding loads the model)."""
    missing = [node for node in nodes if TAU_KEY not in node.metadata]
    if not missing:
        return
    embedding = embedding_of()
    counts = embedding.token_counts([embedded_text(node) for node in missing])
    for node, tau, count in zip(missing, embedding.schedule_for("document").taus(counts), counts):
        embedding.record_tau(node, tau, count)


def count_missing_tokens(embedding_of: Callable[[], TempScaleEmbedding], nodes: Sequence[BaseNode]) -> None:
    """A node carrying a τ but no token count gets its count from the index's tokenizer, so that the τ check of
    :func:`checked_vectors` still runs (the count is what the schedule maps to a τ)."""
    missing = [node for node in nodes if TAU_KEY in node.metadata and TOKENS_KEY not in node.metadata]
    if not missing:
        return
    counts = embedding_of().token_counts([embedded_text(node) for node in missing])
    for node, count in zip(missing, counts):
        node.metadata[TOKENS_KEY] = int(count)
        for excluded in (node.excluded_embed_metadata_keys, node.excluded_llm_metadata_keys):
            if TOKENS_KEY not in excluded:
                excluded.append(TOKENS_KEY)
