"""Ingestion into a persisted FAISS store, updates, and retrieval with TempScale embeddings.

Names load on first use (PEP 562), so ``tempscale_index.pipeline.readers`` alone loads no torch.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from tempscale_index._lazy import lazy_exports

if TYPE_CHECKING:  # the same names, eagerly, for type checkers and IDEs
    from tempscale_index.pipeline.ingest import (
        EmptyCorpusError as EmptyCorpusError,
    )
    from tempscale_index.pipeline.ingest import (
        IngestionPipeline as IngestionPipeline,
    )
    from tempscale_index.pipeline.ingest import (
        IngestReport as IngestReport,
    )
    from tempscale_index.pipeline.ingest import (
        delete_documents as delete_documents,
    )
    from tempscale_index.pipeline.ingest import (
        documents_from_paths as documents_from_paths,
    )
    from tempscale_index.pipeline.ingest import (
        ingest as ingest,
    )
    from tempscale_index.pipeline.readers import (
        iter_file_documents as iter_file_documents,
    )
    from tempscale_index.pipeline.readers import (
        iter_installed_docs as iter_installed_docs,
    )
    from tempscale_index.pipeline.readers import (
        list_files as list_files,
    )
    from tempscale_index.pipeline.retriever import (
        TempScaleRetriever as TempScaleRetriever,
    )
    from tempscale_index.pipeline.retriever import (
        allowed_node_ids as allowed_node_ids,
    )

_EXPORTS = {
    "EmptyCorpusError": ".ingest",
    "IngestReport": ".ingest",
    "IngestionPipeline": ".ingest",
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
