"""Retrieval evaluation: test collections, IR metrics, paired statistics and retriever scoring.

Names load on first use (PEP 562).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from tempscale_index._lazy import lazy_exports

if TYPE_CHECKING:  # the same names, eagerly, for type checkers and IDEs (re-exported lazily below)
    from tempscale_index.evaluation.datasets import (  # noqa: F401
        DatasetFormatError,
        RetrievalDataset,
        load_beir,
        load_dataset,
        load_llamaindex_qa,
        load_qmsum,
    )
    from tempscale_index.evaluation.metrics import (  # noqa: F401
        DEFAULT_MEASURES,
        chunk_qrels,
        doc_run_from_chunks,
        mean_scores,
        score_run,
    )
    from tempscale_index.evaluation.stats import PairedComparison, paired_comparison  # noqa: F401

_EXPORTS = {
    "DEFAULT_MEASURES": ".metrics",
    "DatasetFormatError": ".datasets",
    "PairedComparison": ".stats",
    "RetrievalDataset": ".datasets",
    "chunk_qrels": ".metrics",
    "doc_run_from_chunks": ".metrics",
    "load_beir": ".datasets",
    "load_dataset": ".datasets",
    "load_llamaindex_qa": ".datasets",
    "load_qmsum": ".datasets",
    "mean_scores": ".metrics",
    "paired_comparison": ".stats",
    "score_run": ".metrics",
}
__all__ = sorted(_EXPORTS)
__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
