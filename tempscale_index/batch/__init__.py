"""Batch indexing on Ray Data (extra ``tempscale-index[ray]``): resumable, scales out over embedding workers."""

from tempscale_index.batch.job import BatchReport, run_batch_job
from tempscale_index.batch.sinks import BatchSink, CommitLedger, ConnectorSink, FaissShardSink
from tempscale_index.batch.sources import read_documents

__all__ = [
    "BatchReport",
    "BatchSink",
    "CommitLedger",
    "ConnectorSink",
    "FaissShardSink",
    "read_documents",
    "run_batch_job",
]
