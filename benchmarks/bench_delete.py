"""Replacing changed documents in an HNSW index: one rebuild per removed document (before) vs one per commit (now).

HNSW cannot remove vectors, so the store rebuilds the graph from the remaining vectors. It used to do that once
per removed document; now removals are marked (hidden from searches) and applied by a single rebuild at commit.
The index holds ``--chunks`` random unit vectors in documents of ``--chunks-per-doc`` chunks, written through
``FaissStore``; then ``--replace`` documents get new vectors (``FaissStore.add`` replaces a document with the same
id) and the change is committed, on two copies of the same committed index:

- before: each replacement is followed by ``VectorIndex.apply_removals()``, i.e. the old one-rebuild-per-document
- after:  the replacements, then ``commit()`` applies every removal with one rebuild

Both sides end with the same commit (writing the new version), and the results are checked to be the same
documents and chunk counts.

    python benchmarks/bench_delete.py [--chunks 10000] [--replace 100] [--dim 384] [--index-type HNSW32]
"""

from __future__ import annotations

import argparse
import shutil
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import faiss
import numpy as np

from tempscale_index.index_config import IndexConfig
from tempscale_index.store import FaissStore


class Chunk:
    """The least a node must offer the store (``to_dict``); real TextNodes would only add import time."""

    def __init__(self, text: str) -> None:
        self.text = text

    def to_dict(self) -> dict[str, Any]:
        return {"text": self.text, "metadata": {}}


def unit_vectors(rng: np.random.Generator, n: int, dim: int) -> np.ndarray:
    vectors = rng.standard_normal((n, dim)).astype(np.float32)
    return vectors / np.linalg.norm(vectors, axis=1, keepdims=True)


def random_config(dim: int) -> IndexConfig:
    return IndexConfig(
        model_name="random-unit-vectors",
        weights_sha256="0" * 64,
        dimension=dim,
        max_length=512,
        normalize=True,
        query_instruction="",
        text_instruction="",
        document_temperature={"type": "constant", "value": 1.0},
        query_temperature={"type": "constant", "value": 1.0},
    )


def build(folder: Path, args: argparse.Namespace) -> None:
    rng = np.random.default_rng(0)
    with FaissStore.create(folder, random_config(args.dim), index_factory=args.index_type) as store:
        for doc in range(args.chunks // args.chunks_per_doc):
            chunks = [Chunk(f"doc {doc} chunk {i}") for i in range(args.chunks_per_doc)]
            store.add(f"doc-{doc}", f"hash-{doc}", chunks, unit_vectors(rng, args.chunks_per_doc, args.dim))
        store.commit()


def replace_and_commit(folder: Path, args: argparse.Namespace, after_each: Callable[[FaissStore], None]) -> float:
    """Seconds to replace ``--replace`` documents (spread over the index) and commit."""
    rng = np.random.default_rng(1)
    documents = args.chunks // args.chunks_per_doc
    targets = np.linspace(0, documents - 1, args.replace).astype(int)
    with FaissStore.open(folder, writable=True) as store:
        started = time.perf_counter()
        for doc in targets.tolist():
            chunks = [Chunk(f"doc {doc} chunk {i} v2") for i in range(args.chunks_per_doc)]
            store.add(f"doc-{doc}", f"hash-{doc}-v2", chunks, unit_vectors(rng, args.chunks_per_doc, args.dim))
            after_each(store)
        store.commit()
        return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--chunks", type=int, default=10_000, help="chunks in the index")
    parser.add_argument("--chunks-per-doc", type=int, default=10)
    parser.add_argument("--replace", type=int, default=100, help="documents replaced in one commit")
    parser.add_argument("--dim", type=int, default=384, help="vector dimension (384: the bundled MiniLM)")
    parser.add_argument("--index-type", default="HNSW32")
    parser.add_argument("--threads", type=int, default=0, help="FAISS threads (0: FAISS's default)")
    args = parser.parse_args()
    if args.threads:
        faiss.omp_set_num_threads(args.threads)
    with tempfile.TemporaryDirectory() as tmp:
        base = Path(tmp) / "base"
        started = time.perf_counter()
        build(base, args)
        print(
            f"{args.index_type}: {args.chunks} chunks of dimension {args.dim} built in "
            f"{time.perf_counter() - started:.1f} s; replacing {args.replace} documents of {args.chunks_per_doc} "
            f"chunks, FAISS threads {faiss.omp_get_max_threads()}"
        )
        shutil.copytree(base, before_dir := Path(tmp) / "before")
        shutil.copytree(base, after_dir := Path(tmp) / "after")
        before = replace_and_commit(before_dir, args, lambda store: store.vectors.apply_removals())
        after = replace_and_commit(after_dir, args, lambda store: None)
        with FaissStore.open(before_dir) as old, FaissStore.open(after_dir) as new:
            same = {k: r.node_ids for k, r in old.documents.items()} == {
                k: r.node_ids for k, r in new.documents.items()
            }
            assert same and old.index.ntotal == new.index.ntotal == args.chunks, "the two strategies disagree"
    print(f"{'':34}{'before (rebuild per doc)':>26}{'after (rebuild per commit)':>28}{'ratio':>8}")
    print(f"{'replace + commit, seconds':34}{before:>26.2f}{after:>28.2f}{before / after:>7.1f}x")


if __name__ == "__main__":
    main()
