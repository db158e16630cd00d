"""Opening ``TempScaleFaissVectorStore``'s directory: a new index for an embedding, or an existing one checked
against the embedding given for it (an index never re-decides 'auto')."""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any

from tempscale_index.index_config import IndexConfig
from tempscale_index.store.faiss_store import FaissStore

if TYPE_CHECKING:
    import fsspec

    from tempscale_index.embedding import TempScaleEmbedding


def new_store(
    path: str | os.PathLike[str], embed_model: TempScaleEmbedding | None, index_type: str | None, lock_timeout: float
) -> tuple[FaissStore, TempScaleEmbedding]:
    """A writer over a new index at ``path`` for ``embed_model`` (default ``TempScaleEmbedding()``)."""
    if embed_model is None:
        from tempscale_index.embedding import TempScaleEmbedding

        embed_model = TempScaleEmbedding()
    store = FaissStore.create(path, config_of(embed_model), index_factory=index_type, lock_timeout=lock_timeout)
    return store, embed_model


def config_of(embed_model: TempScaleEmbedding | None) -> IndexConfig | None:
    """What a store for ``embed_model`` records (a pending 'auto' as pending)."""
    return embed_model.index_config(pending_ok=True) if embed_model is not None else None


def match_recorded(embed_model: TempScaleEmbedding | None, config: IndexConfig, path: Any, trust: bool) -> None:
    """An embedding given for an existing index must be the recorded one (a pending 'auto' adopts its schedule)."""
    if embed_model is not None:
        embed_model.match_index(config, where=f"the index at {path}", pending_ok=True, trust_callable_schedules=trust)


def local_only(fs: fsspec.AbstractFileSystem | None) -> None:
    """The index is a local directory (FAISS and the node table are memory-mapped files)."""
    if fs is None:
        return
    from fsspec.implementations.local import LocalFileSystem

    if not isinstance(fs, LocalFileSystem):
        raise NotImplementedError("TempScaleFaissVectorStore keeps its index on the local file system only")
