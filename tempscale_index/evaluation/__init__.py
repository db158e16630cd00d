"""Retrieval evaluation: test collections, IR metrics, paired statistics and retriever scoring.

Names load on first use (PEP 562).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from tempscale_index._lazy import lazy_exports

if TYPE_CHECKING:  # the same names, eagerly, for type checkers and IDEs
    from tempscale_index.evaluation.datasets import (
        DatasetFormatError as DatasetFormatError,
    )
    from tempscale_index.evaluation.datasets import (
        RetrievalDataset as RetrievalDataset,
    )
    from tempscale_index.evaluation.datasets import (
        load_beir as load_beir,
    )
    from tempscale_index.evaluation.datasets import (
        load_dataset as load_dataset,
    )
    from tempscale_index.evaluation.datasets import (
        load_llamaindex_qa as load_llamaindex_qa,
    )
    from tempscale_index.evaluation.datasets import (
        load_qmsum as load_qmsum,
    )
    from tempscale_index.evaluation.metrics import (
        DEFAULT_MEASURES as DEFAULT_MEASURES,
    )
    from tempscale_index.evaluation.metrics import (
        chunk_qrels as chunk_qrels,
    )
    from tempscale_index.evaluation.metrics import (
        doc_run_from_chunks as doc_run_from_chunks,
    )
    from tempscale_index.evaluation.metrics import (
        mean_scores as mean_scores,
    )
    from tempscale_index.evaluation.metrics import (
        score_run as score_run,
    )
    from tempscale_index.evaluation.stats import (
        PairedComparison as PairedComparison,
    )
    from tempscale_index.evaluation.stats import (
        paired_comparison as paired_comparison,
    )

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
