"""A resumable Ray Data batch job: QMSum meetings as JSON Lines → chunks → embedding workers → FAISS index.

    python examples/batch_job.py [QMSUM_DIR] --out ./batch-index --workers 2 [--address auto]

Kill it at any point and run it again: documents already committed are skipped, none is lost or duplicated.
The same job writes into Qdrant/Milvus/LanceDB with a ``ConnectorSink`` (or ``tempscale-index batch --qdrant``).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from tempscale_index import TempScaleEmbedding
from tempscale_index.batch import FaissShardSink, run_batch_job
from tempscale_index.store import FaissStore

DEFAULT_QMSUM = Path(__file__).resolve().parents[1] / "tests" / "fixtures" / "qmsum" / "test"  # shipped


def write_jsonl(qmsum_dir: Path, target: Path) -> Path:
    """One JSON line per meeting: {"id", "text"} — the shape a batch job usually reads."""
    with open(target, "w", encoding="utf-8") as out:
        for file in sorted(qmsum_dir.glob("*.json")):
            turns = json.loads(file.read_text())["meeting_transcripts"]
            text = "\n".join(f"{turn['speaker']}: {turn['content']}" for turn in turns)
            out.write(json.dumps({"id": file.stem, "text": text}) + "\n")
    return target


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("qmsum_dir", nargs="?", type=Path, default=DEFAULT_QMSUM)
    parser.add_argument("--out", type=Path, default=Path("./batch-index"))
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--address", default=None, help="Ray cluster address; default: a local Ray")
    args = parser.parse_args()

    args.out.mkdir(parents=True, exist_ok=True)
    source = write_jsonl(args.qmsum_dir, args.out.parent / "qmsum-meetings.jsonl")
    config = TempScaleEmbedding().index_config()  # workers rebuild exactly this embedding
    report = run_batch_job([source], FaissShardSink(args.out, config), workers=args.workers, address=args.address)
    print(
        f"{report.committed_documents} documents, {report.committed_chunks} chunks committed "
        f"({report.chunks_per_second:.1f} chunks/s); {report.already_committed} were already committed"
    )
    store = FaissStore.open(args.out)
    print(store.info()["documents"], "documents,", store.info()["nodes"], "chunks in", args.out)
    store.close()


if __name__ == "__main__":
    main()
