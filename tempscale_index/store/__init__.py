"""Persisted FAISS stores: one directory per index, committed atomically, checked on load."""

from tempscale_index.store.errors import (
    CorruptIndexError,
    IndexExistsError,
    IndexLockedError,
    IndexNotFoundError,
    StoreError,
)
from tempscale_index.store.faiss_store import FaissStore
from tempscale_index.store.hashing import content_hash
from tempscale_index.store.records import DocumentRecord
from tempscale_index.store.vector_index import DEFAULT_INDEX_FACTORY, build_faiss_index

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
