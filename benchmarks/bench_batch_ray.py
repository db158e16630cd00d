"""Batch-job throughput with 1 and 2 embedding workers, side by side in one run (one local Ray instance).

    python benchmarks/bench_batch_ray.py [--meetings 12] [--qmsum DIR] [--documents-per-batch 1]

Each run indexes the same QMSum meetings (JSON Lines) into a fresh FAISS index; throughput is committed chunks
per second of the whole job (reading, chunking, embedding, committing, merging), actor start-up included.
Batches are one meeting each by default: with the job's default of 8 documents per batch, 8 meetings would be a
single batch, and a second worker would have nothing to do.
"""

from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path

import ray

from tempscale_index import TempScaleEmbedding
from tempscale_index.batch import FaissShardSink, run_batch_job

DEFAULT_QMSUM = Path(__file__).resolve().parents[1] / "tests" / "fixtures" / "qmsum" / "test"  # shipped


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--qmsum", type=Path, default=DEFAULT_QMSUM)
    parser.add_argument("--meetings", type=int, default=12)
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--documents-per-batch", type=int, default=1)
    args = parser.parse_args()

    config = TempScaleEmbedding().index_config()
    ray.init(num_cpus=max(args.workers) + 1, include_dashboard=False, log_to_driver=False)
    with tempfile.TemporaryDirectory() as tmp:
        source = Path(tmp) / "meetings.jsonl"
        with open(source, "w", encoding="utf-8") as out:
            for file in sorted(args.qmsum.glob("*.json"))[: args.meetings]:
                turns = json.loads(file.read_text())["meeting_transcripts"]
                text = "\n".join(f"{turn['speaker']}: {turn['content']}" for turn in turns)
                out.write(json.dumps({"id": file.stem, "text": text}) + "\n")
        results = {}
        for workers in args.workers:
            sink = FaissShardSink(Path(tmp) / f"index-{workers}", config)
            report = run_batch_job(
                [source], sink, workers=workers, show_progress=False, documents_per_batch=args.documents_per_batch
            )
            results[workers] = report
            print(
                f"{workers} worker(s): {report.committed_documents} documents, {report.committed_chunks} chunks "
                f"in {report.seconds:.1f}s = {report.chunks_per_second:.1f} chunks/s"
            )
    base = results[args.workers[0]].chunks_per_second
    for workers in args.workers[1:]:
        print(f"scaling {args.workers[0]} -> {workers} workers: {results[workers].chunks_per_second / base:.2f}x")
    ray.shutdown()


if __name__ == "__main__":
    main()
