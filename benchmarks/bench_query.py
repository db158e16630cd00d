"""Query latency at 100k chunks: query embedding + search, p50/p95, and search vs raw FAISS, in one run.

The index holds ``--chunks`` random unit vectors (their contents do not matter for latency) with a short text
each, written and reopened through ``FaissStore`` like any index; queries are real sentences embedded by the
bundled MiniLM at the query τ. For each index type:

- embed:       ``TempScaleEmbedding.encode([query], "query")`` on the PyTorch and on the ONNX Runtime backend
- raw FAISS:   ``index.search`` on the same FAISS index object (same vectors, same graph), bypassing the store
- store:       ``FaissStore.search`` (ids and scores), and with the k nodes read back (what the retriever does)
- end to end:  ``TempScaleRetriever.retrieve`` (refresh check, embed, search, nodes → NodeWithScore), per backend

Sides that are compared take turns in blocks of ``--block`` queries, so that machine noise hits them alike while
neither runs right after the other's threads (a thread pool still busy from one side slows the next call of the
other).

    python benchmarks/bench_query.py [--chunks 100000] [--index-types Flat,HNSW32] [--threads 2]
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
import warnings
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import faiss
import numpy as np
import torch
from llama_index.core.schema import TextNode

from tempscale_index.embedding import TempScaleEmbedding
from tempscale_index.index_config import IndexConfig
from tempscale_index.pipeline import TempScaleRetriever, iter_installed_docs
from tempscale_index.store import FaissStore


def queries(count: int) -> list[str]:
    """First sentences of the installed packages' descriptions: real English questions and statements."""
    out = []
    for doc in iter_installed_docs():
        for line in doc.text.splitlines():
            line = line.strip(" #*=-`")
            if 30 <= len(line) <= 160:
                out.append(line)
                break
        if len(out) >= count:
            break
    return out


def build(folder: Path, config: IndexConfig, index_type: str, vectors: np.ndarray, per_doc: int = 100) -> None:
    with FaissStore.create(folder, config, index_factory=index_type) as store:
        for start in range(0, len(vectors), per_doc):
            block = vectors[start : start + per_doc]
            nodes = [
                TextNode(
                    text=f"synthetic chunk {start + i} " + "lorem ipsum " * 40,
                    metadata={"tempscale_tau": 1.0, "file_name": f"doc{start // per_doc}.txt"},
                )
                for i in range(len(block))
            ]
            store.add(f"doc-{start // per_doc}", f"h{start}", nodes, block, {"file_name": f"doc{start // per_doc}.txt"})
        store.commit()


def percentiles(values: list[float]) -> tuple[float, float]:
    ordered = sorted(values)
    return statistics.median(ordered) * 1e3, ordered[int(0.95 * (len(ordered) - 1))] * 1e3


def alternate(functions: dict[str, Callable[[Any], Any]], items: list[Any], block: int) -> dict[str, list[float]]:
    """Seconds per item for each function, the functions taking turns on blocks of ``block`` items."""
    out: dict[str, list[float]] = {name: [] for name in functions}
    for start in range(0, len(items), block):
        for name, function in functions.items():
            for item in items[start : start + block]:
                started = time.perf_counter()
                function(item)
                out[name].append(time.perf_counter() - started)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--chunks", type=int, default=100_000)
    parser.add_argument("--index-types", default="Flat,HNSW32")
    parser.add_argument("--queries", type=int, default=100)
    parser.add_argument("--k", type=int, default=5)
    parser.add_argument("--block", type=int, default=20, help="queries per turn when two sides alternate")
    parser.add_argument("--threads", type=int, default=2, help="torch and FAISS threads (the target is on 2 cores)")
    args = parser.parse_args()
    warnings.filterwarnings("ignore")
    torch.set_num_threads(args.threads)
    faiss.omp_set_num_threads(args.threads)

    backends = {backend: TempScaleEmbedding(backend=backend) for backend in ("torch", "onnx")}
    embedding = backends["torch"]
    config = embedding.index_config()
    texts = queries(args.queries)
    rng = np.random.default_rng(0)
    vectors = rng.standard_normal((args.chunks, embedding.dimension)).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    query_vectors = embedding.encode(texts, "query").embeddings
    encoders = {name: partial(backend.encode, kind="query") for name, backend in backends.items()}
    alternate(encoders, [[text] for text in texts[:5]], args.block)  # warm up
    embed_times = alternate(encoders, [[text] for text in texts], args.block)
    print(
        f"{len(texts)} queries, {args.chunks} chunks, dim {embedding.dimension}, k {args.k}, threads {args.threads}, "
        f"load average {os.getloadavg()[0]:.1f}"
    )
    for name, values in embed_times.items():
        p50, p95 = percentiles(values)
        print(f"query embedding ({name:<5})               p50 {p50:7.2f} ms  p95 {p95:7.2f} ms")
    print(f"torch/onnx p50 ratio {percentiles(embed_times['torch'])[0] / percentiles(embed_times['onnx'])[0]:.2f}")

    with tempfile.TemporaryDirectory() as tmp:
        for index_type in args.index_types.split(","):
            folder = Path(tmp) / index_type.replace(",", "_")
            started = time.perf_counter()
            build(folder, config, index_type, vectors)
            built = time.perf_counter() - started
            retrievers = {
                name: TempScaleRetriever.from_dir(folder, backend, similarity_top_k=args.k)
                for name, backend in backends.items()
            }
            store = retrievers["torch"].store
            # raw FAISS: the very same index object (same graph / lists), searched directly, without the store
            raw = faiss.downcast_index(store.index.index) if isinstance(store.index, faiss.IndexIDMap2) else store.index
            queries_2d = [q[None, :] for q in query_vectors]
            for q in queries_2d[:5]:  # warm up
                raw.search(q, args.k)
                store.search(q, args.k)
            # alternate raw / store per query so that machine noise hits both alike
            raw_times, search_times, store_times = [], [], []
            for q in queries_2d * 3:
                started = time.perf_counter()
                raw.search(q, args.k)
                raw_times.append(time.perf_counter() - started)
                started = time.perf_counter()
                store.search(q, args.k)
                search_times.append(time.perf_counter() - started)
                started = time.perf_counter()
                _, ids = store.search(q, args.k)
                store.get_nodes([i for i in ids[0] if i >= 0])
                store_times.append(time.perf_counter() - started)
            end_to_end = alternate(
                {name: retriever.retrieve for name, retriever in retrievers.items()}, texts, args.block
            )
            r50, r95 = percentiles(raw_times)
            q50, q95 = percentiles(search_times)
            s50, s95 = percentiles(store_times)
            print(f"\n[{index_type}] built and committed in {built:.1f}s")
            print(f"raw FAISS search                      p50 {r50:7.3f} ms  p95 {r95:7.3f} ms")
            print(
                f"FaissStore.search                     p50 {q50:7.3f} ms  p95 {q95:7.3f} ms  "
                f"(store/raw p50 ratio {q50 / r50:.2f})"
            )
            print(
                f"FaissStore.search + node fetch        p50 {s50:7.3f} ms  p95 {s95:7.3f} ms  (ratio {s50 / r50:.2f})"
            )
            for name, values in end_to_end.items():
                e50, e95 = percentiles(values)
                print(f"retriever end to end ({name:<5})         p50 {e50:7.2f} ms  p95 {e95:7.2f} ms")
            for retriever in retrievers.values():
                retriever.store.close()


if __name__ == "__main__":
    main()
