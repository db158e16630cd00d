"""Stability of the `auto` decision: the selector's choice on each corpus for several sample seeds.

The selector sees a seeded sample of a corpus's chunks; a decision worth shipping must not flip with the seed.
Each corpus is chunked as ingestion chunks it, then ``select_document_schedule`` runs once per seed.

    python benchmarks/selector_seeds.py tests/fixtures/qmsum/test [MORE_DATASETS...] [--seeds 0 1 2 3 4]
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

from tempscale_index.embedding import TempScaleEmbedding
from tempscale_index.evaluation.chunk_tables import chunk_dataset
from tempscale_index.evaluation.datasets import load_dataset
from tempscale_index.selection import select_document_schedule


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("datasets", type=Path, nargs="+", help="BEIR folders, QMSum folders, LlamaIndex QA JSON")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2, 3, 4])
    parser.add_argument("--model", default=None, help="model name or local path (default: the bundled MiniLM)")
    args = parser.parse_args()

    settings = {} if args.model is None else {"model_name": args.model}
    embedding = TempScaleEmbedding(document_temperature=1.0, query_temperature=1.0, **settings)
    print(f"model: {embedding.model_name}")
    for path in args.datasets:
        chunks = chunk_dataset(load_dataset(path), embedding)
        texts, groups = [chunk.text for chunk in chunks], [chunk.doc_id for chunk in chunks]
        chosen = 0
        for seed in args.seeds:
            selection = select_document_schedule(embedding, texts, groups, seed=seed)
            low, high = selection.evidence.get("gain_interval", [float("nan")] * 2)
            lowered = selection.schedule.to_dict() != {"type": "constant", "value": 1.0}
            chosen += lowered
            print(f"{path.name:<12} seed {seed}: {'τ < 1' if lowered else 'τ = 1'}  interval [{low:+.3f}, {high:+.3f}]")
        print(f"{path.name:<12} τ < 1 chosen {chosen}/{len(args.seeds)} seeds ({len(chunks)} chunks)")


if __name__ == "__main__":
    main()
