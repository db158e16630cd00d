"""Peak memory while ingesting 200k chunks: the pipeline streams, so RSS beyond the FAISS index stays flat.

The embedding model here is a tiny random-weight BERT built from a config (1 layer, hidden ``--dim``) with
MiniLM's tokenizer, so that 200k chunks embed in minutes on two cores; memory is what is measured, and the
pipeline (reading, chunking, batching, staging nodes on disk, committing) is the real one. The corpus is
generated on the fly (a generator: never held in memory) from words of the installed packages' documentation.

RSS is sampled every 20 ms from a thread; "beyond the index" = peak RSS − RSS before ingesting − the FAISS
index's own bytes (ntotal × dim × 4 for Flat).

    python benchmarks/bench_memory.py [--chunks 200000] [--chunk-size 32] [--dim 128]
"""

from __future__ import annotations

import argparse
import os
import random
import re
import tempfile
import threading
import time
import warnings
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import psutil
import torch
from llama_index.core import Document
from sentence_transformers import SentenceTransformer
from sentence_transformers.sentence_transformer.modules import Pooling, Transformer
from transformers import AutoTokenizer, BertConfig, BertModel

from tempscale_index.embedding import TempScaleEmbedding
from tempscale_index.models import resolve_model_path
from tempscale_index.pipeline import ingest, iter_installed_docs


def tiny_bert(folder: Path, dim: int) -> Path:
    tokenizer = AutoTokenizer.from_pretrained(resolve_model_path("sentence-transformers/all-MiniLM-L6-v2"))
    config = BertConfig(
        vocab_size=tokenizer.vocab_size,
        hidden_size=dim,
        num_hidden_layers=1,
        num_attention_heads=2,
        intermediate_size=2 * dim,
        max_position_embeddings=512,
    )
    hf_dir = folder / "hf"
    BertModel(config).save_pretrained(hf_dir)
    tokenizer.save_pretrained(hf_dir)
    transformer = Transformer(str(hf_dir), max_seq_length=128)
    model = SentenceTransformer(modules=[transformer, Pooling(dim, pooling_mode="mean")])
    model.save(str(folder / "st"))
    return folder / "st"


def corpus(chunks: int, chunk_words: int, per_doc: int, deadline: float = float("inf"), seed: int = 0):
    """Generated documents of about ``per_doc`` chunks each; stops early once ``deadline`` (perf_counter) passes."""
    words = sorted({w.lower() for doc in iter_installed_docs() for w in re.findall(r"[A-Za-z]{3,12}", doc.text)})
    rng = random.Random(seed)
    docs = (chunks + per_doc - 1) // per_doc
    for number in range(docs):
        if time.perf_counter() > deadline:
            print(f"\ntime limit reached after {number} documents", flush=True)
            return
        sentences = []
        for _ in range(per_doc * chunk_words // 12):
            sentence = " ".join(rng.choice(words) for _ in range(rng.randint(8, 16)))
            sentences.append(sentence.capitalize() + ".")
        yield Document(id_=f"synthetic-{number}", text=" ".join(sentences))


class PeakRSS:
    def __init__(self) -> None:
        self.process = psutil.Process()
        self.peak = self.process.memory_info().rss
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            self.peak = max(self.peak, self.process.memory_info().rss)
            time.sleep(0.02)

    def __enter__(self) -> PeakRSS:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--chunks", type=int, default=200_000)
    parser.add_argument("--chunk-size", type=int, default=32, help="model tokens per chunk")
    parser.add_argument("--dim", type=int, default=128, help="hidden size of the tiny BERT = vector dimension")
    parser.add_argument("--per-doc", type=int, default=100, help="chunks per generated document")
    parser.add_argument("--time-limit", type=float, default=1500, help="stop feeding documents after this many s")
    parser.add_argument("--threads", type=int, default=None, help="torch threads")
    args = parser.parse_args()
    warnings.filterwarnings("ignore")
    if args.threads:
        torch.set_num_threads(args.threads)
    with tempfile.TemporaryDirectory() as tmp:
        model_dir = tiny_bert(Path(tmp), args.dim)
        embedding = TempScaleEmbedding(
            model_name=str(model_dir), document_temperature=1.0, query_temperature=1.0, embed_batch_size=128
        )
        _ = embedding.weights_sha256
        baseline = psutil.Process().memory_info().rss
        started = time.perf_counter()
        # ~0.45 words per wordpiece with these words; the splitter decides the real chunk boundaries
        documents = corpus(args.chunks, int(args.chunk_size * 0.45), args.per_doc, started + args.time_limit)
        with PeakRSS() as rss:
            report = ingest(
                documents,
                Path(tmp) / "index",
                embedding,
                chunk_size=args.chunk_size,
                chunk_overlap=0,
                batch_chunks=1024,
                show_progress=True,
            )
        seconds = time.perf_counter() - started
        index_bytes = report.chunks_total * args.dim * 4
        on_disk = sum(p.stat().st_size for p in (Path(tmp) / "index").rglob("*") if p.is_file())
    beyond = rss.peak - baseline - index_bytes
    print(
        f"\n{report.chunks_total} chunks in {report.documents_total} documents ingested in {seconds:.0f}s "
        f"({report.chunks_total / seconds:.0f} chunks/s, tiny random BERT dim {args.dim}); "
        f"load average {os.getloadavg()[0]:.1f}"
    )
    print(
        f"RSS before ingest {baseline / 2**20:.0f} MiB, peak {rss.peak / 2**20:.0f} MiB; FAISS index "
        f"{index_bytes / 2**20:.0f} MiB; index directory on disk {on_disk / 2**20:.0f} MiB"
    )
    print(f"peak RSS beyond the index: {beyond / 2**20:.0f} MiB (target <= 2048 MiB)")


if __name__ == "__main__":
    main()
