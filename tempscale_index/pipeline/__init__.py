"""Ingestion into a persisted FAISS store, updates, and retrieval with TempScale embeddings."""

from tempscale_index.pipeline.ingest import (
    EmptyCorpusError,
    FaissIngestor,
    IngestReport,
    delete_documents,
    documents_from_paths,
    ingest,
)
from tempscale_index.pipeline.readers import iter_file_documents, iter_installed_docs, list_files
from tempscale_index.pipeline.retriever import TempScaleRetriever, allowed_node_ids

__all__ = [
    "EmptyCorpusError",
    "FaissIngestor",
    "IngestReport",
    "TempScaleRetriever",
    "allowed_node_ids",
    "delete_documents",
    "documents_from_paths",
    "ingest",
    "iter_file_documents",
    "iter_installed_docs",
    "list_files",
]
