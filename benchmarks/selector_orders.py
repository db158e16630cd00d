"""``auto``'s choice on one corpus in five orders, with the sample size it used: one answer per corpus.

The corpus is a QMSum split (meeting transcripts) chunked as ingestion chunks it (250 model tokens for the bundled
MiniLM); each order is ``tempscale_index.evaluation.orders.reordered``. Prints one line per order and whether the
five ``Selection``s (evidence included) are identical.

    python benchmarks/selector_orders.py [--qmsum ../shared/datasets/qmsum/test] [--orders 5]
"""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

from tempscale_index.embedding import TempScaleEmbedding
from tempscale_index.evaluation import load_qmsum
from tempscale_index.evaluation.embedded import chunk_dataset
from tempscale_index.evaluation.orders import reordered
from tempscale_index.selection import select_document_schedule

DEFAULT_QMSUM = Path(__file__).resolve().parents[2] / "shared" / "datasets" / "qmsum" / "test"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--qmsum", type=Path, default=DEFAULT_QMSUM)
    parser.add_argument("--orders", type=int, default=5)
    args = parser.parse_args()

    embedding = TempScaleEmbedding(document_temperature=1.0, query_temperature=1.0)
    chunks = chunk_dataset(load_qmsum(args.qmsum), embedding)
    texts, groups = [chunk.text for chunk in chunks], [chunk.doc_id for chunk in chunks]
    print(f"{len(texts)} chunks of {len(set(groups))} documents")
    selections = []
    for order in range(args.orders):
        started = time.perf_counter()
        selection = select_document_schedule(embedding, *reordered(texts, groups, order))
        selections.append(selection.to_dict())
        evidence = selection.evidence
        print(
            f"order {order}: {selection.schedule.to_dict()} | n_sampled {evidence['n_sampled']} from "
            f"{evidence['n_documents']} documents, {evidence.get('looks')} look(s) | "
            f"{time.perf_counter() - started:.1f} s | {selection.reason}"
        )
    identical = all(selection == selections[0] for selection in selections)
    print(f"identical Selection (evidence included) in all {args.orders} orders: {identical}")


if __name__ == "__main__":
    main()
