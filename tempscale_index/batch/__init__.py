"""Batch indexing on Ray Data (extra ``tempscale-index[ray]``): resumable, scales out over embedding workers.

Names load on first use (PEP 562), so Ray and torch load only when a job runs.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from tempscale_index._lazy import lazy_exports

if TYPE_CHECKING:  # the same names, eagerly, for type checkers and IDEs (re-exported lazily below)
    from tempscale_index.batch.job import BatchReport, run_batch_job  # noqa: F401
    from tempscale_index.batch.sinks import BatchSink, CommitLedger, ConnectorSink, FaissShardSink  # noqa: F401
    from tempscale_index.batch.sources import read_documents  # noqa: F401

_EXPORTS = {
    "BatchReport": ".job",
    "BatchSink": ".sinks",
    "CommitLedger": ".sinks",
    "ConnectorSink": ".sinks",
    "FaissShardSink": ".sinks",
    "read_documents": ".sources",
    "run_batch_job": ".job",
}
__all__ = sorted(_EXPORTS)
__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
