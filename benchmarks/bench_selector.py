"""Cost of the unsupervised τ selector against ingesting corpora of 2k, 10k and 50k chunks, side by side.

Ingest is ``tempscale_index.pipeline.ingest`` of whole QMSum meetings (chunking, embedding at τ = 1, FAISS,
commit) until about 2,000 chunks, measured in full; for 10k and 50k chunks it is that time **scaled linearly**
(ingest embeds every chunk once, so its time is linear in chunks). The selector is ``select_document_schedule``
on the QMSum chunk texts with the budget it has for a corpus of that size (``cost_cap``); it stops early once its
intervals exclude zero, so the worst case (every look, up to the cap) is printed too, from the measured seconds
per selector embedding. The target is a ratio of at most 0.10 from 2,000 chunks up.

    python benchmarks/bench_selector.py [--qmsum ../shared/datasets/qmsum/test] [--rounds 1]
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
from tempscale_index.selection import CANDIDATE_TAUS, cost_cap, select_document_schedule

DEFAULT_QMSUM = Path(__file__).resolve().parents[1] / "tests" / "fixtures" / "qmsum" / "test"  # shipped
SIZES = (2_000, 10_000, 50_000)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--qmsum", type=Path, default=DEFAULT_QMSUM)
    parser.add_argument("--rounds", type=int, default=1)
    args = parser.parse_args()

    embedding = TempScaleEmbedding(document_temperature=1.0, query_temperature=1.0)
    dataset = load_qmsum(args.qmsum)
    chunks = chunk_dataset(dataset, embedding)
    counts: dict[str, int] = {}
    for chunk in chunks:
        counts[chunk.doc_id] = counts.get(chunk.doc_id, 0) + 1
    kept_docs: list[str] = []
    for doc_id in counts:
        if sum(counts[d] for d in kept_docs) >= SIZES[0]:
            break
        kept_docs.append(doc_id)
    kept = [chunk for chunk in chunks if chunk.doc_id in kept_docs]
    documents = [Document(id_=doc_id, text=dataset.corpus[doc_id]) for doc_id in kept_docs]

    ingest_times = []
    for _ in range(args.rounds):
        with tempfile.TemporaryDirectory() as tmp:
            started = time.perf_counter()
            ingest(documents, Path(tmp) / "index", embedding)
            ingest_times.append(time.perf_counter() - started)
    per_chunk = statistics.median(ingest_times) / len(kept)
    print(
        f"ingest (τ = 1), measured: {len(kept)} chunks of {len(documents)} QMSum meetings in "
        f"{per_chunk * len(kept):.1f} s ({per_chunk * 1000:.1f} ms/chunk, median of {args.rounds})"
    )
    print("corpus   | ingest s             | selector s | sampled | ratio | worst case (cap) ratio | choice")
    for size in SIZES:
        texts, groups = (
            ([c.text for c in kept], [c.doc_id for c in kept])
            if size == SIZES[0]
            else ([c.text for c in chunks], [c.doc_id for c in chunks])
        )
        started = time.perf_counter()
        selection = select_document_schedule(embedding, texts, groups, max_embeddings=cost_cap(size))
        select_s = time.perf_counter() - started
        ingest_s = per_chunk * size
        sampled = selection.evidence["n_sampled"]
        per_embedding = select_s / max(1, sampled * (1 + len(CANDIDATE_TAUS)))
        worst = cost_cap(size) // (1 + len(CANDIDATE_TAUS)) * (1 + len(CANDIDATE_TAUS)) * per_embedding
        how = "measured" if size == SIZES[0] else "scaled linearly"
        print(
            f"{size:>6}   | {ingest_s:7.1f} ({how:>15}) | {select_s:10.1f} | {sampled:7d} | "
            f"{select_s / ingest_s:.3f} | {worst / ingest_s:22.3f} | {selection.schedule.to_dict()}"
        )
    print("target: ratio <= 0.10 from 2,000 chunks up (worst case included)")


if __name__ == "__main__":
    main()
