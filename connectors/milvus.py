"""Milvus through ``llama-index-vector-stores-milvus`` (extra ``tempscale-index[milvus]``).

``uri="./name.db"`` runs Milvus Lite in-process (one local file); ``uri="http://host:19530"`` (and ``token=``)
points the same code at a Milvus server. The ``IndexConfig`` is a collection property (JSON under
``tempscale_index_config``), set in the same call that creates the collection. Vectors use inner product over
an exact ``FLAT`` index by default (normalized vectors: cosine); pass ``index_config=`` for HNSW/IVF on a server.
"""

from __future__ import annotations

from typing import Any

from llama_index.vector_stores.milvus import MilvusVectorStore
from pymilvus import MilvusClient
from tempscale_index.connectors.base import CONFIG_KEY, VectorStoreConnector

from tempscale_index.index_config import IndexConfig


class MilvusConnector(VectorStoreConnector):
    """A Milvus collection whose properties record the TempScale ``IndexConfig``."""

    store_name = "Milvus"

    def __init__(self, collection_name: str, *, uri: str, token: str = "", **vector_store_kwargs: Any) -> None:
        super().__init__(collection_name)
        self.uri, self._token = str(uri), token
        self.client = MilvusClient(uri=self.uri, token=token)
        self._vector_store_kwargs = {
            "similarity_metric": "IP",
            "index_config": {"index_type": "FLAT", "metric_type": "IP"},
            "upsert_mode": True,  # a retried batch replaces its nodes instead of duplicating them
            **vector_store_kwargs,
        }

    @property
    def location(self) -> str:
        return self.uri

    def load_config(self) -> IndexConfig | None:
        if not self.client.has_collection(self.collection_name):
            return None
        properties = self.client.describe_collection(self.collection_name).get("properties") or {}
        if CONFIG_KEY not in properties:
            return None
        return IndexConfig.model_validate_json(properties[CONFIG_KEY])

    def _create_collection(self, config: IndexConfig) -> MilvusVectorStore:
        return self._build_store(config, collection_properties={CONFIG_KEY: config.model_dump_json()})

    def _open_collection(self, config: IndexConfig) -> MilvusVectorStore:
        return self._build_store(config)

    def _build_store(self, config: IndexConfig, **extra: Any) -> MilvusVectorStore:
        return MilvusVectorStore(
            uri=self.uri,
            token=self._token,
            collection_name=self.collection_name,
            dim=config.dimension,
            **self._vector_store_kwargs,
            **extra,
        )

    def close(self) -> None:
        if self._vector_store is not None:
            self._vector_store.client.close()
        super().close()
        self.client.close()
