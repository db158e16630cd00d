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

``--filtered`` times filtered queries instead (``TempScaleFaissVectorStore.query`` with metadata filters, random
unit query vectors) on an index whose chunks carry a per-chunk ``page`` besides their document's ``file_name``:
a narrow document filter (10 of 1000 documents, scored exactly), a broad one (990 documents, FAISS id selector)
and a per-chunk one (``page == 3``, 10% of the chunks). With ``--compare-ref DIR`` (a checkout of another
revision, e.g. main's worktree) the same index is queried by that revision's code and by this one in separate
processes, taking turns for ``--rounds`` rounds, and the p50s are printed side by side.

    python benchmarks/bench_query.py [--chunks 100000] [--index-types Flat,HNSW32] [--threads 2]
    python benchmarks/bench_query.py --filtered --compare-ref ../main [--index-types "Flat;HNSW32;IVF256,Flat"]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
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


def build(
    folder: Path, config: IndexConfig, index_type: str, vectors: np.ndarray, per_doc: int = 100, pages: bool = False
) -> None:
    with FaissStore.create(folder, config, index_factory=index_type) as store:
        for start in range(0, len(vectors), per_doc):
            block = vectors[start : start + per_doc]
            nodes = [
                TextNode(
                    text=f"synthetic chunk {start + i} " + "lorem ipsum " * 40,
                    metadata={"tempscale_tau": 1.0, "file_name": f"doc{start // per_doc}.txt"}
                    | ({"page": i % 10} if pages else {}),
                )
                for i in range(len(block))
            ]
            store.add(f"doc-{start // per_doc}", f"h{start}", nodes, block, {"file_name": f"doc{start // per_doc}.txt"})
        store.commit()


def index_types(spec: str) -> list[str]:
    """``Flat,HNSW32``, or with ``;`` between them when a type holds a comma (``Flat;IVF256,Flat``)."""
    return spec.split(";") if ";" in spec else spec.split(",")


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


def filters_to_time(documents: int) -> dict[str, Any]:
    from llama_index.core.vector_stores.types import FilterOperator, MetadataFilter, MetadataFilters

    some = [f"doc{i}.txt" for i in range(0, documents, max(1, documents // 10))][:10]
    return {
        "10 documents (exact)": MetadataFilters(
            filters=[MetadataFilter(key="file_name", operator=FilterOperator.IN, value=some)]
        ),
        "all but 10 documents (selector)": MetadataFilters(
            filters=[MetadataFilter(key="file_name", operator=FilterOperator.NIN, value=some)]
        ),
        "per-chunk page == 3": MetadataFilters(filters=[MetadataFilter(key="page", value=3)]),
    }


def filtered_child(folder: Path, k: int, block: int) -> None:
    """Time filtered queries with whichever ``tempscale_index`` this process imports; print JSON to stdout."""
    from llama_index.core.vector_stores.types import VectorStoreQuery

    from tempscale_index.store.vector_store import TempScaleFaissVectorStore

    store = TempScaleFaissVectorStore.from_persist_dir(folder)
    query_vectors = np.load(folder.parent / "queries.npy")
    filters = filters_to_time(store.client.num_documents)
    hits: dict[str, int] = {}

    def runner(name: str) -> Callable[[np.ndarray], Any]:
        def run(vector: np.ndarray) -> None:
            result = store.query(
                VectorStoreQuery(query_embedding=vector.tolist(), similarity_top_k=k, filters=filters[name])
            )
            hits[name] = len(result.ids)

        return run

    for vector in query_vectors[:3]:  # warm up
        for name in filters:
            runner(name)(vector)
    times = alternate({name: runner(name) for name in filters}, list(query_vectors), block)
    print(json.dumps({"times": times, "hits": hits, "module": sys.modules["tempscale_index"].__file__}))


def filtered_comparison(args: argparse.Namespace, config: IndexConfig, vectors: np.ndarray) -> None:
    """Filtered query p50 on one index, this revision against ``--compare-ref``'s, in alternating processes."""
    sides = {"this": str(Path(__file__).resolve().parents[1])}
    if args.compare_ref:
        sides = {"ref": str(Path(args.compare_ref).resolve()), **sides}
    rng = np.random.default_rng(1)
    queries_ = rng.standard_normal((args.queries, vectors.shape[1])).astype(np.float32)
    queries_ /= np.linalg.norm(queries_, axis=1, keepdims=True)
    with tempfile.TemporaryDirectory() as tmp:
        np.save(Path(tmp) / "queries.npy", queries_)
        for index_type in index_types(args.index_types):
            folder = Path(tmp) / index_type.replace(",", "_")
            build(folder, config, index_type, vectors, pages=True)
            times: dict[str, dict[str, list[float]]] = {side: {} for side in sides}
            hits: dict[str, dict[str, int]] = {}
            for round_ in range(args.rounds):  # ABBA order: a drift in machine load hits both sides alike
                for side, root in list(sides.items())[:: 1 if round_ % 2 == 0 else -1]:
                    command = [sys.executable, __file__, "--filtered-child", str(folder), "--k", str(args.k)]
                    command += ["--block", str(args.block), "--threads", str(args.threads)]
                    env = {**os.environ, "PYTHONPATH": root}
                    out = subprocess.run(command, env=env, cwd=tmp, check=True, capture_output=True, text=True)
                    answer = json.loads(out.stdout.strip().splitlines()[-1])
                    hits[side] = answer["hits"]
                    for name, values in answer["times"].items():  # each round's p50
                        times[side].setdefault(name, []).append(percentiles(values)[0])
            print(
                f"\n[{index_type}] filtered query p50 (ms; median of {args.rounds} rounds of {args.queries} queries), "
                f"{args.chunks} chunks, k {args.k}, load average {os.getloadavg()[0]:.1f}"
            )
            for name in filters_to_time(args.chunks // 100):
                p50 = {side: statistics.median(times[side][name]) for side in sides}
                row = "  ".join(f"{side} {p50[side]:8.3f} ({hits[side][name]} hits)" for side in sides)
                ratio = f"  this/ref {p50['this'] / p50['ref']:.2f}" if "ref" in sides else ""
                print(f"{name:<34} {row}{ratio}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--chunks", type=int, default=100_000)
    parser.add_argument("--index-types", default="Flat,HNSW32")
    parser.add_argument("--queries", type=int, default=100)
    parser.add_argument("--k", type=int, default=5)
    parser.add_argument("--block", type=int, default=20, help="queries per turn when two sides alternate")
    parser.add_argument("--threads", type=int, default=2, help="torch and FAISS threads (the target is on 2 cores)")
    parser.add_argument("--filtered", action="store_true", help="time filtered queries (see above)")
    parser.add_argument("--compare-ref", help="with --filtered: a checkout of the revision to compare against")
    parser.add_argument("--rounds", type=int, default=3, help="with --filtered: turns each side takes")
    parser.add_argument("--filtered-child", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    warnings.filterwarnings("ignore")
    torch.set_num_threads(args.threads)
    faiss.omp_set_num_threads(args.threads)
    if args.filtered_child:
        filtered_child(args.filtered_child, args.k, args.block)
        return

    # document τ 1.0, as the synthetic chunks record ('auto', the default, would need a corpus to decide on)
    names = ("torch",) if args.filtered else ("torch", "onnx")
    backends = {name: TempScaleEmbedding(backend=name, document_temperature=1.0) for name in names}
    embedding = backends["torch"]
    config = embedding.index_config()
    texts = queries(args.queries)
    rng = np.random.default_rng(0)
    vectors = rng.standard_normal((args.chunks, embedding.dimension)).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    if args.filtered:
        filtered_comparison(args, config, vectors)
        return
    texts = queries(args.queries)
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
        for index_type in index_types(args.index_types):
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
