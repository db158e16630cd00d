"""LanceDB through ``llama-index-vector-stores-lancedb`` (extra ``tempscale-index[lancedb]``).

``uri="./dir"`` is LanceDB on local disk; ``uri="db://..."`` (and ``api_key=``) or an object-store URI points
the same code at LanceDB Cloud/S3. A LanceDB table has no free-form collection metadata that every backend
supports, so the ``IndexConfig`` lives in a one-row side table ``<table>__tempscale`` in the same database,
written before the first vector. Search is exact (no ANN index is built); vectors are normalized, so LanceDB's
L2 ranking equals the inner-product ranking.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import lancedb
from llama_index.core.schema import BaseNode
from llama_index.vector_stores.lancedb import LanceDBVectorStore
from tempscale_index.connectors.base import CONFIG_KEY, VectorStoreConnector

from tempscale_index.index_config import IndexConfig

CONFIG_TABLE_SUFFIX = "__tempscale"


class LanceDBConnector(VectorStoreConnector):
    """A LanceDB table with a side table holding the TempScale ``IndexConfig``."""

    store_name = "LanceDB"

    def __init__(self, collection_name: str, *, uri: str, api_key: str | None = None, **vector_store_kwargs: Any):
        super().__init__(collection_name)
        self.uri = str(uri)
        self.connection = lancedb.connect(self.uri, api_key=api_key) if api_key else lancedb.connect(self.uri)
        self._vector_store_kwargs = vector_store_kwargs

    @property
    def location(self) -> str:
        return self.uri

    @property
    def config_table_name(self) -> str:
        return self.collection_name + CONFIG_TABLE_SUFFIX

    def load_config(self) -> IndexConfig | None:
        if self.config_table_name not in self.connection.list_tables().tables:
            return None
        rows = self.connection.open_table(self.config_table_name).to_arrow().to_pylist()
        if len(rows) != 1:
            raise ValueError(f"{self.describe()}: config table {self.config_table_name!r} has {len(rows)} rows, not 1")
        return IndexConfig.model_validate_json(rows[0][CONFIG_KEY])

    def _create_collection(self, config: IndexConfig) -> LanceDBVectorStore:
        self.connection.create_table(self.config_table_name, [{CONFIG_KEY: config.model_dump_json()}], mode="overwrite")
        return self._open_collection(config)

    def _open_collection(self, config: IndexConfig) -> LanceDBVectorStore:
        # mode="overwrite" only applies when the integration creates the table on its first add.
        return LanceDBVectorStore(
            connection=self.connection, table_name=self.collection_name, mode="overwrite", **self._vector_store_kwargs
        )

    def _table_exists(self) -> bool:
        return self.collection_name in self.connection.list_tables().tables

    def _upsert(self, nodes: Sequence[BaseNode]) -> list[str]:
        # LanceDB appends; deleting the ids first makes a retried batch replace its nodes, never duplicate them.
        self._delete_where("id", [node.node_id for node in nodes])
        return self.vector_store.add(list(nodes))

    def delete_document(self, ref_doc_id: str) -> None:
        self._delete_where(self.vector_store.doc_id_key, [ref_doc_id])

    def _delete_where(self, column: str, values: Sequence[str]) -> None:
        """Delete rows whose ``column`` is in ``values`` (the integration's own delete double-quotes string
        literals, which LanceDB's SQL reads as column names)."""
        if not values or not self._table_exists():  # the integration creates the table on its first add
            return
        literals = ", ".join("'" + value.replace("'", "''") + "'" for value in values)
        self.vector_store.table.delete(f"{column} IN ({literals})")
