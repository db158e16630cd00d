"""Qdrant through ``llama-index-vector-stores-qdrant`` (extra ``tempscale-index[qdrant]``).

``path=`` runs Qdrant's local mode in-process (files in a directory); ``url=`` (and ``api_key=``) points the
same code at a Qdrant server. The ``IndexConfig`` lives in the collection's own metadata (Qdrant's collection
``metadata`` field), written when the collection is created, before any vector.
"""

from __future__ import annotations

from typing import Any

from llama_index.vector_stores.qdrant import QdrantVectorStore
from qdrant_client import QdrantClient
from tempscale_index.connectors.base import CONFIG_KEY, VectorStoreConnector

from tempscale_index.index_config import IndexConfig


class QdrantConnector(VectorStoreConnector):
    """A Qdrant collection whose metadata records the TempScale ``IndexConfig``."""

    store_name = "Qdrant"

    def __init__(
        self,
        collection_name: str,
        *,
        path: str | None = None,
        url: str | None = None,
        api_key: str | None = None,
        client: QdrantClient | None = None,
        **vector_store_kwargs: Any,
    ) -> None:
        super().__init__(collection_name)
        if sum(option is not None for option in (path, url, client)) != 1:
            raise ValueError("QdrantConnector needs exactly one of path= (local mode), url= (server) or client=")
        self._where = str(path or url or "the given client")
        self.client = client or QdrantClient(path=path, url=url, api_key=api_key)
        self._vector_store_kwargs = vector_store_kwargs

    @property
    def location(self) -> str:
        return self._where

    def load_config(self) -> IndexConfig | None:
        if not self.client.collection_exists(self.collection_name):
            return None
        metadata = self.client.get_collection(self.collection_name).config.metadata or {}
        if CONFIG_KEY not in metadata:
            return None
        return IndexConfig.model_validate(metadata[CONFIG_KEY])

    def _create_collection(self, config: IndexConfig) -> QdrantVectorStore:
        store = self._open_collection(config)
        # The integration creates collections lazily on the first add; create it now, with its own schema,
        # so the config is in place before any vector is.
        store._create_collection(self.collection_name, config.dimension)
        self.client.update_collection(self.collection_name, metadata={CONFIG_KEY: config.model_dump(mode="json")})
        return store

    def _open_collection(self, config: IndexConfig) -> QdrantVectorStore:
        return QdrantVectorStore(collection_name=self.collection_name, client=self.client, **self._vector_store_kwargs)

    def close(self) -> None:
        super().close()
        self.client.close()
