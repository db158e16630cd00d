"""Ingestion into a persisted FAISS store, updates, and retrieval with TempScale embeddings.

Names load on first use (PEP 562), so ``tempscale_index.pipeline.readers`` alone loads no torch.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from tempscale_index._lazy import lazy_exports

if TYPE_CHECKING:  # the same names, eagerly, for type checkers and IDEs (re-exported lazily below)
    from tempscale_index.pipeline.ingest import (  # noqa: F401
        EmptyCorpusError,
        FaissIngestor,
        IngestReport,
        delete_documents,
        documents_from_paths,
        ingest,
    )
    from tempscale_index.pipeline.readers import iter_file_documents, iter_installed_docs, list_files  # noqa: F401
    from tempscale_index.pipeline.retriever import TempScaleRetriever, allowed_node_ids  # noqa: F401

_EXPORTS = {
    "EmptyCorpusError": ".ingest",
    "IngestReport": ".ingest",
    "FaissIngestor": ".ingest",
    "TempScaleRetriever": ".retriever",
    "allowed_node_ids": ".retriever",
    "delete_documents": ".ingest",
    "documents_from_paths": ".ingest",
    "ingest": ".ingest",
    "iter_file_documents": ".readers",
    "iter_installed_docs": ".readers",
    "list_files": ".readers",
}
__all__ = sorted(_EXPORTS)
__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
