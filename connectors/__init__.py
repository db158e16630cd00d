"""Vector-database connectors (installed as ``tempscale_index.connectors``): τ and the index config travel along.

One module per store, each importing only its own client so the core install pulls none of them:
``tempscale_index.connectors.qdrant`` (extra ``qdrant``), ``.milvus`` (extra ``milvus``), ``.lancedb``
(extra ``lancedb``).
"""

from tempscale_index.connectors.base import CONFIG_KEY, MissingIndexConfigError, VectorStoreConnector

__all__ = ["CONFIG_KEY", "MissingIndexConfigError", "VectorStoreConnector"]
