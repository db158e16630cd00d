"""Adding nodes one at a time to one document of a ``TempScaleFaissVectorStore``: linear, not quadratic.

Times ``--small`` and ``--large`` single-node ``add`` calls to one document (as ``index.insert_nodes`` in a loop
does), and ``--small`` × 2 single-node documents for reference, on a Flat store with explicit unit vectors (their
τ and token count given, so only the store is timed). Linear appends make the large/small ratio about
large/small (4 by default); rewriting the document on each append makes it about its square (16).
To time another revision with the same script: ``PYTHONPATH=../main python benchmarks/bench_append.py``.

    python benchmarks/bench_append.py [--small 100] [--large 400]
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import numpy as np
from llama_index.core.schema import NodeRelationship, RelatedNodeInfo, TextNode

import tempscale_index
from tempscale_index.embedding import TempScaleEmbedding
from tempscale_index.store.vector_store import TempScaleFaissVectorStore


def timed_adds(folder: Path, embedding: TempScaleEmbedding, count: int, one_document: bool) -> float:
    rng = np.random.default_rng(0)
    vectors = rng.standard_normal((count, embedding.dimension)).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    store = TempScaleFaissVectorStore.create(folder, embed_model=embedding)
    started = time.perf_counter()
    for i, vector in enumerate(vectors):
        document = "doc" if one_document else f"doc-{i}"
        node = TextNode(
            text=f"chunk {i}",
            embedding=vector.tolist(),
            metadata={"tempscale_tau": 1.0, "tempscale_tokens": 4},
            relationships={NodeRelationship.SOURCE: RelatedNodeInfo(node_id=document)},
        )
        store.add([node])
    seconds = time.perf_counter() - started
    store.close()
    return seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--small", type=int, default=100)
    parser.add_argument("--large", type=int, default=400)
    args = parser.parse_args()
    embedding = TempScaleEmbedding(document_temperature=1.0, query_temperature=1.0)
    print(f"tempscale_index from {Path(tempscale_index.__file__).parent}, load average {os.getloadavg()[0]:.1f}")
    with tempfile.TemporaryDirectory() as tmp:
        small = timed_adds(Path(tmp) / "small", embedding, args.small, one_document=True)
        large = timed_adds(Path(tmp) / "large", embedding, args.large, one_document=True)
        separate = timed_adds(Path(tmp) / "separate", embedding, 2 * args.small, one_document=False)
    print(f"{args.small} appends to one document      {small:8.3f} s")
    print(f"{args.large} appends to one document      {large:8.3f} s   ratio {large / small:.1f}")
    print(f"{2 * args.small} single-node documents        {separate:8.3f} s")
    sys.stdout.flush()


if __name__ == "__main__":
    main()
