"""What every vector-database connector shares: the collection's ``IndexConfig`` travels with its vectors.

A collection in Qdrant, Milvus or LanceDB outlives the process that filled it. Each connector stores the
``IndexConfig`` (model, weights hash, document and query schedules) inside the database next to the vectors, so
that whoever opens the collection later embeds queries with the τ the vectors were built for — or is refused
with ``IndexConfigMismatchError`` when they ask for something else. The vectors themselves go through the
store's maintained LlamaIndex integration; every node carries ``tempscale_tau``/``tempscale_tokens``/
``tempscale_model`` in its metadata.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from typing import Any

from llama_index.core import VectorStoreIndex
from llama_index.core.schema import BaseNode, Document
from llama_index.core.vector_stores.types import BasePydanticVectorStore

from tempscale_index.chunking import chunk_nodes, model_token_splitter
from tempscale_index.embedding import TempScaleEmbedding
from tempscale_index.index_config import IndexConfig
from tempscale_index.node_metadata import METADATA_KEYS
from tempscale_index.store.vector_checks import check_vectors

# Name under which the serialised IndexConfig is stored (collection metadata, property or side-table row).
CONFIG_KEY = "tempscale_index_config"


class MissingIndexConfigError(LookupError):
    """The collection holds no TempScale configuration, so the query τ it needs is unknown."""


class VectorStoreConnector(ABC):
    """One collection of one vector database, opened with the embedding configuration it was built with.

    ``attach()`` binds the connector to a ``TempScaleEmbedding``: a new collection records the embedding's
    ``IndexConfig``; an existing one checks it (or, with no embedding given, builds the one it records).
    """

    store_name: str = "vector store"

    def __init__(self, collection_name: str) -> None:
        if not isinstance(collection_name, str) or not collection_name.strip():
            raise ValueError(f"collection_name must be a non-empty string, got {collection_name!r}")
        self.collection_name = collection_name
        self._embedding: TempScaleEmbedding | None = None
        self._vector_store: BasePydanticVectorStore | None = None

    # -- what each store implements -----------------------------------------------------------------

    @property
    @abstractmethod
    def location(self) -> str:
        """Where the database lives (path or server URL), for messages."""

    @abstractmethod
    def load_config(self) -> IndexConfig | None:
        """The ``IndexConfig`` stored with the collection, or None when the collection does not exist yet."""

    @abstractmethod
    def _create_collection(self, config: IndexConfig) -> BasePydanticVectorStore:
        """Create the collection with ``config`` stored beside it and return its LlamaIndex vector store."""

    @abstractmethod
    def _open_collection(self, config: IndexConfig) -> BasePydanticVectorStore:
        """The LlamaIndex vector store of the existing collection."""

    def _upsert(self, nodes: Sequence[BaseNode]) -> list[str]:
        """Write ``nodes``, replacing any stored node with the same id (so a retried batch never duplicates)."""
        return self.vector_store.add(list(nodes))

    # -- shared behaviour -----------------------------------------------------------------------------

    def describe(self) -> str:
        return f"{self.store_name} collection {self.collection_name!r} at {self.location}"

    def attach(
        self, embedding: TempScaleEmbedding | None = None, *, trust_callable_schedules: bool = False
    ) -> TempScaleEmbedding:
        """Bind to the collection and return the embedding its queries must use.

        A missing collection is created with ``embedding``'s config (for an 'auto' document τ, by the first
        nodes added, once they have decided it); an existing one lends its recorded schedule to an 'auto'
        ``embedding``, refuses one built differently (``IndexConfigMismatchError``), and with no ``embedding``
        builds the recorded one. A recorded callable schedule (it runs code) needs ``trust_callable_schedules``.
        """
        stored = self.load_config()
        if stored is None:
            if embedding is None:
                raise MissingIndexConfigError(
                    f"{self.describe()} does not exist or was not written by tempscale-index; pass the "
                    "TempScaleEmbedding to create it with"
                )
            if not embedding.auto_pending:
                self._vector_store = self._create_collection(embedding.index_config())
        else:
            if embedding is None:
                embedding = TempScaleEmbedding.from_index_config(
                    stored, trust_callable_schedules=trust_callable_schedules
                )
            else:  # a collection never re-decides
                embedding.match_index(stored, where=self.describe(), trust_callable_schedules=trust_callable_schedules)
            self._vector_store = self._open_collection(stored)
        self._embedding = embedding
        return embedding

    @property
    def embedding(self) -> TempScaleEmbedding:
        if self._embedding is None:
            self.attach()
        assert self._embedding is not None
        return self._embedding

    @property
    def vector_store(self) -> BasePydanticVectorStore:
        if self._vector_store is None:
            self.attach(self._embedding)
        if self._vector_store is None:
            raise RuntimeError(f"{self.describe()} is created by the first nodes added ('auto' document τ)")
        return self._vector_store

    def as_index(self, **kwargs: Any) -> VectorStoreIndex:
        """A LlamaIndex ``VectorStoreIndex`` over the collection whose queries are embedded at the query τ."""
        return VectorStoreIndex.from_vector_store(self.vector_store, embed_model=self.embedding, **kwargs)

    def add_nodes(self, nodes: Sequence[BaseNode]) -> list[str]:
        """Embed the nodes that have no vector yet (recording their τ) and upsert all of them."""
        nodes = list(nodes)
        if not nodes:
            return []
        if self.embedding.auto_pending:  # decide on all of them before embedding any, or settle τ = 1
            self.embedding.calibrate(nodes)
            if self.embedding.auto_pending:
                self.embedding.settle_pending()
        missing = [node for node in nodes if node.embedding is None]
        if missing:
            self.embedding(missing)
        for node in nodes:
            absent = [key for key in METADATA_KEYS if key not in node.metadata]
            if absent:
                raise ValueError(
                    f"node {node.node_id} has a vector but no {', '.join(absent)} metadata: embed it with "
                    "TempScaleEmbedding (as a transformation) or leave node.embedding unset"
                )
        vectors = [node.get_embedding() for node in nodes]
        check_vectors(vectors, self.embedding.normalize, self.describe(), [node.node_id for node in nodes])
        return self._upsert(nodes)

    def add_documents(
        self, documents: Sequence[Document], chunk_size: int | None = None, chunk_overlap: int = 32
    ) -> list[str]:
        """Chunk ``documents`` in the model's tokens, embed each chunk at its document τ, and replace whatever
        the collection held for those document ids with the new chunks."""
        splitter = model_token_splitter(self.embedding, chunk_size=chunk_size, chunk_overlap=chunk_overlap)
        nodes = [node for document in documents for node in chunk_nodes(splitter, document)]
        created = self._vector_store is not None or not self.embedding.auto_pending  # else the nodes create it
        for document in documents if created else ():
            self.delete_document(document.doc_id)
        return self.add_nodes(nodes)

    def delete_document(self, ref_doc_id: str) -> None:
        self.vector_store.delete(ref_doc_id)

    def close(self) -> None:
        """Release the database handles (local engines lock their files while open); reattach to reuse."""
        self._vector_store = None
