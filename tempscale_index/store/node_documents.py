"""LlamaIndex nodes as store documents: what ``TempScaleFaissVectorStore`` adds, changes and checks.

The store keeps one record per document (its ``ref_doc_id``) and replaces a record whole. LlamaIndex adds and
deletes single nodes, so a partial change re-adds the document's other nodes from their stored vectors (exact
for Flat, HNSW and IVF-Flat indexes; PQ indexes re-add their approximations).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
from llama_index.core.schema import BaseNode

from tempscale_index.index_config import IndexConfig, IndexConfigMismatchError
from tempscale_index.node_metadata import METADATA_KEYS, MODEL_KEY, TAU_KEY, TOKENS_KEY
from tempscale_index.schedules import stored_schedule
from tempscale_index.store.errors import StoreError
from tempscale_index.store.faiss_store import FaissStore, content_hash
from tempscale_index.store.vector_checks import check_vectors

_DOCUMENT_VALUE_TYPES = (str, int, float)
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


def add_to_document(store: FaissStore, doc_id: str, nodes: list[BaseNode], vectors: np.ndarray) -> None:
    """Add ``nodes`` to document ``doc_id``, keeping its other stored nodes; a stored node with the same node id
    is replaced."""
    record = store.documents.get(doc_id)
    if record is not None:
        replaced = {node.node_id for node in nodes}
        kept = [
            (i, node)
            for i, node in zip(record.node_ids, store.get_nodes(record.node_ids))
            if node.node_id not in replaced
        ]
        if kept:
            old = _stored_vectors(store, doc_id, [i for i, _ in kept])
            nodes, vectors = [node for _, node in kept] + nodes, np.vstack([old, vectors])
    _replace_document(store, doc_id, nodes, vectors)


def remove_from_document(store: FaissStore, doc_id: str, removed: set[int]) -> None:
    """Remove the nodes with store ids ``removed`` from document ``doc_id`` (the document when none is left)."""
    remaining = [i for i in store.documents[doc_id].node_ids if i not in removed]
    if not remaining:
        store.delete(doc_id)
        return
    _replace_document(store, doc_id, store.get_nodes(remaining), _stored_vectors(store, doc_id, remaining))


def _replace_document(store: FaissStore, doc_id: str, nodes: Sequence[BaseNode], vectors: np.ndarray) -> None:
    digest = content_hash(doc_id, [node.get_content() for node in nodes])
    store.add(doc_id, digest, nodes, vectors, _shared_metadata(nodes))


def _stored_vectors(store: FaissStore, doc_id: str, ids: list[int]) -> np.ndarray:
    try:
        return store.index.reconstruct_batch(np.asarray(ids, dtype=np.int64)).astype(np.float32)
    except RuntimeError as exc:
        raise StoreError(
            f"cannot change part of document {doc_id!r}: the {store.index_factory} index cannot return the vectors "
            f"of its other nodes ({str(exc).strip().splitlines()[-1]}); add or delete a document's nodes together"
        ) from None


def _shared_metadata(nodes: Sequence[BaseNode]) -> dict[str, Any]:
    """Document-level metadata: the plain values (and lists of them) every node of the document has in common,
    τ keys aside. Metadata filters see these."""
    shared = {key: value for key, value in nodes[0].metadata.items() if _plain(value) and key not in METADATA_KEYS}
    for node in nodes[1:]:
        shared = {key: value for key, value in shared.items() if node.metadata.get(key, object()) == value}
    return shared


def _plain(value: Any) -> bool:
    if isinstance(value, list):
        return all(isinstance(item, _DOCUMENT_VALUE_TYPES) for item in value)
    return isinstance(value, _DOCUMENT_VALUE_TYPES)
