"""Retrieval evaluation: test collections, IR metrics, paired statistics and retriever scoring."""

from tempscale_index.evaluation.datasets import (
    DatasetFormatError,
    RetrievalDataset,
    load_beir,
    load_dataset,
    load_llamaindex_qa,
    load_qmsum,
)
from tempscale_index.evaluation.metrics import (
    DEFAULT_MEASURES,
    chunk_qrels,
    doc_run_from_chunks,
    mean_scores,
    score_run,
)
from tempscale_index.evaluation.stats import PairedComparison, paired_comparison

__all__ = [
    "DEFAULT_MEASURES",
    "DatasetFormatError",
    "PairedComparison",
    "RetrievalDataset",
    "chunk_qrels",
    "doc_run_from_chunks",
    "load_beir",
    "load_dataset",
    "load_llamaindex_qa",
    "load_qmsum",
    "mean_scores",
    "paired_comparison",
    "score_run",
]
