"""Cost of the unsupervised τ selector against ingesting a 2,000-chunk corpus, side by side in one run.

Ingest is ``tempscale_index.pipeline.ingest`` of whole QMSum meetings (chunking, embedding at τ = 1, FAISS,
commit) until about ``--chunks`` chunks; the selector is ``select_document_schedule`` on the same chunk texts
(its fixed-size sample, embedded at τ = 1 and τ = 0.8). The target is a ratio of at most 0.10, independent of
corpus size: the selector's sample does not grow with the corpus.

    python benchmarks/bench_selector.py [--qmsum ../shared/datasets/qmsum/test] [--chunks 2000] [--rounds 2]
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

from llama_index.core import Document

from tempscale_index.embedding import TempScaleEmbedding
from tempscale_index.evaluation import load_qmsum
from tempscale_index.evaluation.embedded import chunk_dataset
from tempscale_index.pipeline import ingest
from tempscale_index.selection import select_document_schedule

DEFAULT_QMSUM = Path(__file__).resolve().parents[1] / "tests" / "fixtures" / "qmsum" / "test"  # shipped


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--qmsum", type=Path, default=DEFAULT_QMSUM)
    parser.add_argument("--chunks", type=int, default=2000)
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args()

    embedding = TempScaleEmbedding(document_temperature=1.0, query_temperature=1.0)
    dataset = load_qmsum(args.qmsum)
    chunks = chunk_dataset(dataset, embedding)
    counts: dict[str, int] = {}
    for chunk in chunks:
        counts[chunk.doc_id] = counts.get(chunk.doc_id, 0) + 1
    kept_docs: list[str] = []
    for doc_id in counts:
        if sum(counts[d] for d in kept_docs) >= args.chunks:
            break
        kept_docs.append(doc_id)
    kept = [chunk for chunk in chunks if chunk.doc_id in kept_docs]
    documents = [Document(id_=doc_id, text=dataset.corpus[doc_id]) for doc_id in kept_docs]
    texts, groups = [chunk.text for chunk in kept], [chunk.doc_id for chunk in kept]

    ingest_times, select_times = [], []
    for _ in range(args.rounds):
        with tempfile.TemporaryDirectory() as tmp:
            started = time.perf_counter()
            ingest(documents, Path(tmp) / "index", embedding)
            ingest_times.append(time.perf_counter() - started)
        started = time.perf_counter()
        selection = select_document_schedule(embedding, texts, groups)
        select_times.append(time.perf_counter() - started)
    ingest_s, select_s = statistics.median(ingest_times), statistics.median(select_times)
    print(f"corpus: {len(kept)} chunks from {len(documents)} QMSum meetings; {args.rounds} rounds, medians")
    print(f"ingest (τ = 1):  {ingest_s:8.1f} s")
    print(f"selector:        {select_s:8.1f} s  ({selection.evidence['n_sampled']} chunks sampled)")
    print(f"ratio selector / ingest: {select_s / ingest_s:.3f} (target <= 0.10)")
    print(f"choice: {selection.schedule.to_dict()} — {selection.reason}")


if __name__ == "__main__":
    main()
