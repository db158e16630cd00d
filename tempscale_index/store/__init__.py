"""Persisted FAISS stores: one directory per index, committed atomically, checked on load."""

from tempscale_index.store.errors import (
    CorruptIndexError,
    IndexExistsError,
    IndexLockedError,
    IndexNotFoundError,
    StoreError,
)
from tempscale_index.store.faiss_store import (
    DEFAULT_INDEX_FACTORY,
    DocumentRecord,
    FaissStore,
    build_faiss_index,
    content_hash,
)

__all__ = [
    "DEFAULT_INDEX_FACTORY",
    "CorruptIndexError",
    "DocumentRecord",
    "FaissStore",
    "IndexExistsError",
    "IndexLockedError",
    "IndexNotFoundError",
    "StoreError",
    "build_faiss_index",
    "content_hash",
]
