"""Embedding throughput, measured side by side in one run (these machines are noisy: compare ratios, not times).

(a) TempScaleEmbedding at τ = 0.8 vs plain SentenceTransformer.encode at τ = 1, same texts   (target >= 0.97)
(b) TempScale hooks on SDPA vs the eager reference TempScale (explicit attention) at 512 tokens (target >= 1.8)
(c) TempScaleEmbedding vs LlamaIndex HuggingFaceEmbedding on mixed-length texts               (target >= 1.2)

Texts are chunks of the QMSum test transcripts. Each pair runs alternately, ``--rounds`` times; the ratio of
median throughputs is printed.

    python benchmarks/bench_embedding.py [--qmsum ../shared/datasets/qmsum/test] [--rounds 3]
"""

from __future__ import annotations

import argparse
import json
import os
import random
import statistics
import time
import warnings
from collections.abc import Callable
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

from llama_index.embeddings.huggingface import HuggingFaceEmbedding

from tempscale_index.embedding import TempScaleEmbedding
from tempscale_index.engine.reference import eager_reference_temperature
from tempscale_index.models import resolve_model_path

DEFAULT_QMSUM = Path(__file__).resolve().parents[1] / "tests" / "fixtures" / "qmsum" / "test"  # shipped


def meeting_texts(qmsum: Path) -> list[str]:
    texts = []
    for path in sorted(qmsum.glob("*.json")):
        turns = json.loads(path.read_text())["meeting_transcripts"]
        texts.append("\n".join(f"{turn['speaker']}: {turn['content']}" for turn in turns))
    return texts


def word_chunks(texts: list[str], words: int, count: int, seed: int = 0) -> list[str]:
    rng = random.Random(seed)
    pool = [" ".join(t.split()[i : i + words]) for t in texts for i in range(0, len(t.split()) - words, words)]
    return rng.sample(pool, min(count, len(pool)))


def mixed_length_chunks(texts: list[str], count: int, seed: int = 0) -> list[str]:
    """Chunks of 5 to 200 words, shuffled: what a corpus of short and long passages looks like."""
    rng = random.Random(seed)
    words = " ".join(texts).split()
    chunks = []
    for _ in range(count):
        length = int(rng.choice([5, 10, 20, 40, 80, 120, 200]))
        start = rng.randrange(0, len(words) - length)
        chunks.append(" ".join(words[start : start + length]))
    return chunks


def throughput(run: Callable[[], object], n_texts: int) -> float:
    start = time.perf_counter()
    run()
    return n_texts / (time.perf_counter() - start)


def compare(
    name: str, target: float, ours: Callable[[], object], theirs: Callable[[], object], n: int, rounds: int
) -> dict:
    ours(), theirs()  # warm-up
    ours_tp, theirs_tp = [], []
    for _ in range(rounds):
        ours_tp.append(throughput(ours, n))
        theirs_tp.append(throughput(theirs, n))
    ratio = statistics.median(ours_tp) / statistics.median(theirs_tp)
    verdict = "PASS" if ratio >= target else "MISS"
    print(
        f"{name}: ours {statistics.median(ours_tp):8.1f} texts/s | baseline {statistics.median(theirs_tp):8.1f}"
        f" texts/s | ratio {ratio:.3f} (target >= {target}) {verdict}",
        flush=True,
    )
    return {"name": name, "ours": ours_tp, "baseline": theirs_tp, "ratio": ratio, "target": target}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--qmsum", type=Path, default=DEFAULT_QMSUM)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--batch-size", type=int, default=32)
    args = parser.parse_args()
    warnings.simplefilter("ignore")
    texts = meeting_texts(args.qmsum)
    results = []

    # (a) same texts (~200-word chunks, near the 256-token window), τ = 0.8 vs plain encode at τ = 1
    ours = TempScaleEmbedding(document_temperature=0.8, embed_batch_size=args.batch_size)
    st = ours.sentence_transformer
    chunks = word_chunks(texts, 180, 128)
    results.append(
        compare(
            "(a) TempScale τ=0.8 vs SentenceTransformer.encode τ=1",
            0.97,
            lambda: ours.encode(chunks),
            lambda: st.encode(chunks, batch_size=args.batch_size, normalize_embeddings=True),
            len(chunks),
            args.rounds,
        )
    )

    # (b) 512-token inputs: hooks on SDPA vs explicit (eager) attention with τ applied to the logits
    fast = TempScaleEmbedding(document_temperature=0.8, max_length=512, embed_batch_size=16)
    eager = TempScaleEmbedding(document_temperature=1.0, max_length=512, embed_batch_size=16)
    eager_model = eager.sentence_transformer[0].auto_model
    eager_model.set_attn_implementation("eager")
    long_chunks = word_chunks(texts, 600, 32, seed=1)
    assert min(fast.token_counts(long_chunks)) == 512, "every text must fill the 512-token window"

    def eager_reference() -> object:
        with eager_reference_temperature(eager_model, 0.8):
            return eager.encode(long_chunks)

    results.append(
        compare(
            "(b) TempScale (SDPA + hooks) vs eager reference TempScale, 512 tokens",
            1.8,
            lambda: fast.encode(long_chunks),
            eager_reference,
            len(long_chunks),
            args.rounds,
        )
    )

    # (c) mixed lengths through LlamaIndex's own batching, same model, same batch size
    hf = HuggingFaceEmbedding(model_name=resolve_model_path("all-MiniLM-L6-v2"), embed_batch_size=args.batch_size)
    mixed = mixed_length_chunks(texts, 256)
    results.append(
        compare(
            "(c) TempScaleEmbedding vs HuggingFaceEmbedding, mixed lengths",
            1.2,
            lambda: ours.get_text_embedding_batch(mixed),
            lambda: hf.get_text_embedding_batch(mixed),
            len(mixed),
            args.rounds,
        )
    )
    print(json.dumps({r["name"]: round(r["ratio"], 3) for r in results}, indent=1, ensure_ascii=False))


if __name__ == "__main__":
    main()
