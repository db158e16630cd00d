"""Ingestion throughput: tempscale-index vs LlamaIndex, side by side in one run (compare ratios, not times).

Both sides turn the same Documents into a persisted FAISS index on disk, with the same model (the bundled
all-MiniLM-L6-v2, loaded before timing), the same chunks (``model_token_splitter``), at τ = 1 (the math of
the plain model, so the comparison is about the pipeline):

- ours:       ``tempscale_index.pipeline.ingest`` (batched, length-sorted embedding, FAISS Flat, atomic commit),
              with its default CPU workers (one single-threaded forward pass per core) and with one worker
              (one forward pass on all of torch's threads, as LlamaIndex runs it); with ``--int8`` also
              ``precision="int8"`` (ONNX Runtime, quantized weights: other numbers, so a separate row)
- LlamaIndex: ``HuggingFaceEmbedding`` + ``FaissVectorStore(IndexFlatIP)`` + ``VectorStoreIndex`` +
              ``storage_context.persist``, at its default ``embed_batch_size`` and at ours (32).

The corpus is the installed packages' documentation (``--installed-docs`` corpus) or QMSum meetings
(``--qmsum DIR``), cut to ``--max-chunks`` chunks. Each side runs ``--rounds`` times, alternating; medians.

    python benchmarks/bench_ingest.py [--qmsum ../shared/datasets/qmsum/test] [--max-chunks 600] [--rounds 2] [--int8]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import tempfile
import time
import warnings
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import faiss
import torch
from llama_index.core import Document, StorageContext, VectorStoreIndex
from llama_index.embeddings.huggingface import HuggingFaceEmbedding
from llama_index.vector_stores.faiss import FaissVectorStore

from tempscale_index.chunking import model_token_splitter
from tempscale_index.embedding import TempScaleEmbedding
from tempscale_index.models import resolve_model_path
from tempscale_index.pipeline import ingest, iter_installed_docs


def load_corpus(qmsum: Path | None, max_chunks: int, splitter) -> list[Document]:
    """Documents (no metadata, so that both pipelines cut identical chunks) totalling about ``max_chunks``."""
    if qmsum is not None:
        texts = []
        for path in sorted(qmsum.glob("*.json")):
            turns = json.loads(path.read_text())["meeting_transcripts"]
            texts.append((path.stem, "\n".join(f"{turn['speaker']}: {turn['content']}" for turn in turns)))
    else:
        texts = [(doc.doc_id, doc.text) for doc in iter_installed_docs()]
    docs, chunks = [], 0
    for doc_id, text in texts:
        count = len(splitter.split_text(text))
        docs.append(Document(id_=doc_id, text=text))
        chunks += count
        if chunks >= max_chunks:
            break
    return docs


def run_ours(docs, embedding, chunk_size, folder: Path) -> tuple[float, int]:
    started = time.perf_counter()
    report = ingest(docs, folder, embedding, chunk_size=chunk_size, chunk_overlap=32)
    return time.perf_counter() - started, report.chunks_total


def run_llamaindex(docs, embed_model, splitter, dimension, folder: Path) -> tuple[float, int]:
    started = time.perf_counter()
    store = FaissVectorStore(faiss_index=faiss.IndexFlatIP(dimension))
    context = StorageContext.from_defaults(vector_store=store)
    index = VectorStoreIndex.from_documents(
        docs, storage_context=context, embed_model=embed_model, transformations=[splitter]
    )
    context.persist(persist_dir=str(folder))
    return time.perf_counter() - started, len(index.docstore.docs)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--qmsum", type=Path, default=None, help="QMSum test folder (default: installed docs)")
    parser.add_argument("--max-chunks", type=int, default=600)
    parser.add_argument("--chunk-size", type=int, default=None, help="model tokens (default: the model window)")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's choice)")
    parser.add_argument("--int8", action="store_true", help="also time precision='int8' (ONNX Runtime)")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    warnings.filterwarnings("ignore")

    ours_embedding = TempScaleEmbedding(document_temperature=1.0, query_temperature=1.0)
    one_worker = TempScaleEmbedding(document_temperature=1.0, query_temperature=1.0, cpu_workers=1)
    ours = {"tempscale-index": ours_embedding, "tempscale-index (1 worker)": one_worker}
    if args.int8:
        ours["tempscale-index (int8)"] = TempScaleEmbedding(
            document_temperature=1.0, query_temperature=1.0, backend="onnx", precision="int8"
        )
    for embedding in ours.values():
        _ = embedding.weights_sha256  # hashed once per model load, outside the timing
    splitter = model_token_splitter(ours_embedding, args.chunk_size, 32)
    chunk_size = splitter.chunk_size
    docs = load_corpus(args.qmsum, args.max_chunks, splitter)
    path = resolve_model_path("sentence-transformers/all-MiniLM-L6-v2")
    baselines = {
        "llamaindex (default batch)": HuggingFaceEmbedding(model_name=path, device="cpu"),
        "llamaindex (batch 32)": HuggingFaceEmbedding(model_name=path, device="cpu", embed_batch_size=32),
    }
    # warm every model once
    for embedding in ours.values():
        embedding.encode(["warm up"] * 4)
    for model in baselines.values():
        model.get_text_embedding_batch(["warm up"] * 4)

    times: dict[str, list[float]] = {name: [] for name in [*ours, *baselines]}
    chunks: dict[str, int] = {}
    with tempfile.TemporaryDirectory() as tmp:
        for round_index in range(args.rounds):
            for name, embedding in ours.items():
                folder = Path(tmp) / f"ours-{round_index}"
                seconds, chunks[name] = run_ours(docs, embedding, chunk_size, folder)
                times[name].append(seconds)
                shutil.rmtree(folder)
            for name, model in baselines.items():
                folder = Path(tmp) / f"li-{round_index}"
                seconds, chunks[name] = run_llamaindex(docs, model, splitter, ours_embedding.dimension, folder)
                times[name].append(seconds)
                shutil.rmtree(folder)
            print(f"round {round_index + 1}: " + ", ".join(f"{k} {v[-1]:.1f}s" for k, v in times.items()), flush=True)

    print(
        f"\ncorpus: {len(docs)} documents, {chunks['tempscale-index']} chunks of <= {chunk_size} model tokens "
        f"({'QMSum' if args.qmsum else 'installed docs'}); torch threads {torch.get_num_threads()}; "
        f"load average {os.getloadavg()[0]:.1f}"
    )
    reference = statistics.median(times["tempscale-index"])
    print(f"{'pipeline':<28} {'median s':>9} {'chunks/s':>9} {'ours ×':>7}")
    for name, values in times.items():
        median = statistics.median(values)
        print(f"{name:<28} {median:>9.2f} {chunks[name] / median:>9.1f} {median / reference:>7.2f}")
    if len(set(chunks.values())) != 1:
        print(f"warning: chunk counts differ: {chunks}")


if __name__ == "__main__":
    main()
