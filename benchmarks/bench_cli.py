"""Cold CLI start: ``tempscale-index --help`` and a cold ``query`` against a 100k-chunk index, beside ``import torch``.

Each measurement is a fresh process, as a user's shell would start it. The three commands take turns within every
round, so machine noise (2 shared cores) hits them alike; medians and their ratios to the yardstick
``python -c "import torch"`` are printed with the load averages.

The index holds ``--chunks`` random unit vectors with short synthetic texts (written through ``FaissStore`` like any
index, ``benchmarks/bench_query.py``'s builder); the query itself is real: the bundled MiniLM's verified ONNX graph,
recorded as the torch-free query path before the first round.

With ``--first-query`` it measures instead the first query after an ``ingest`` against the later cold queries,
side by side: each side starts from an empty graph cache, ingests one file into a new index, then queries it
``--rounds`` times. "prepared" is the default (ingest records the torch-free query path); "lazy"
(``TEMPSCALE_INDEX_QUERY_PATH=lazy``, the behaviour before) leaves the ONNX export to the first query. Target:
the first query ≤ 5 s.

    python benchmarks/bench_cli.py [--index DIR] [--reuse] [--chunks 100000] [--index-type HNSW32] [--rounds 7]
    python benchmarks/bench_cli.py --first-query [--rounds 3]
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

REPO = Path(__file__).resolve().parents[1]
CLI = [sys.executable, "-c", "from tempscale_index.cli import main; main()"]
QUERIES = [
    "how do I persist a FAISS index",
    "attention temperature for long documents",
    "parse YAML files safely",
    "progress bar for loops",
    "vector similarity search on CPU",
]


def ensure_index(folder: Path, chunks: int, index_type: str, reuse: bool) -> Path:
    """The benchmark index (built unless ``reuse`` finds one), with the model's query path recorded."""
    from tempscale_index.embedding import TempScaleEmbedding
    from tempscale_index.serving.query_encoder import record_query_path
    from tempscale_index.store import FaissStore

    embedding = TempScaleEmbedding(backend="onnx", document_temperature=1.0)  # random vectors: no corpus for auto
    if record_query_path(embedding) is None:
        raise SystemExit("the bundled model has no torch-free query path")
    if reuse and FaissStore.exists(folder):
        print(f"reusing {folder}")
        return folder
    sys.path.insert(0, str(REPO / "benchmarks"))
    import numpy as np
    from bench_query import build

    shutil.rmtree(folder, ignore_errors=True)
    vectors = np.random.default_rng(0).standard_normal((chunks, embedding.dimension)).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    started = time.perf_counter()
    build(folder, embedding.index_config(), index_type, vectors)
    print(f"built {folder}: {chunks} chunks, {index_type}, {time.perf_counter() - started:.0f} s")
    return folder


def timed(command: list[str]) -> float:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    started = time.perf_counter()
    done = subprocess.run(command, capture_output=True, text=True, env=env, timeout=300)
    elapsed = time.perf_counter() - started
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(command)} failed ({done.returncode}): {done.stderr.strip()}")
    return elapsed


def first_query_after_ingest(rounds: int) -> None:
    """First vs later cold queries after an ingest, with the query path prepared by ingest and left lazy."""
    print(f"{'side':<10} {'ingest':>8} {'first query':>12} {'later cold (median)':>20}  first / later")
    for side in ("prepared", "lazy"):
        with tempfile.TemporaryDirectory(prefix=f"tempscale-first-{side}-") as folder:
            root = Path(folder)
            os.environ["TEMPSCALE_INDEX_CACHE"] = str(root / "cache")
            os.environ.pop("TEMPSCALE_INDEX_QUERY_PATH", None)
            if side == "lazy":
                os.environ["TEMPSCALE_INDEX_QUERY_PATH"] = "lazy"
            (root / "notes.md").write_text(" ".join(QUERIES * 40))
            ingest = timed([*CLI, "ingest", str(root / "notes.md"), "--index", str(root / "index"),
                            "--doc-temperature", "1.0", "--no-progress"])  # fmt: skip
            query = [*CLI, "query", str(root / "index"), QUERIES[0], "-k", "3"]
            first = timed(query)
            later = statistics.median(timed(query) for _ in range(rounds))
            print(f"{side:<10} {ingest:7.1f}s {first:11.2f}s {later:19.2f}s  {first / later:6.2f}x")
    os.environ.pop("TEMPSCALE_INDEX_QUERY_PATH", None)
    print("target: first query <= 5 s")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--index", type=Path, default=Path(tempfile.gettempdir()) / "tempscale-bench-100k-HNSW32")
    parser.add_argument("--reuse", action="store_true", help="Reuse the index at --index if there is one.")
    parser.add_argument("--chunks", type=int, default=100_000)
    parser.add_argument("--index-type", default="HNSW32")
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--first-query", action="store_true", help="First query after ingest vs later ones.")
    args = parser.parse_args()
    if args.first_query:
        first_query_after_ingest(args.rounds)
        return
    index = ensure_index(args.index, args.chunks, args.index_type, args.reuse)
    sides = {
        "python -c 'import torch'": lambda _: [sys.executable, "-c", "import torch"],
        "tempscale-index --help": lambda _: [*CLI, "--help"],
        "tempscale-index query (cold)": lambda r: [*CLI, "query", str(index), QUERIES[r % len(QUERIES)], "-k", "5"],
    }
    timed(sides["tempscale-index query (cold)"](0))  # one untimed run: page cache warm for every side alike
    load_before = os.getloadavg()
    times: dict[str, list[float]] = {name: [] for name in sides}
    for round_number in range(args.rounds):
        names = list(sides)[round_number % 3 :] + list(sides)[: round_number % 3]  # rotate who goes first
        for name in names:
            times[name].append(timed(sides[name](round_number)))
    load_after = os.getloadavg()
    yardstick = statistics.median(times["python -c 'import torch'"])
    print(
        f"\n{args.rounds} rounds, {os.cpu_count()} CPUs, load average before {load_before[0]:.2f} "
        f"after {load_after[0]:.2f} (1 min)"
    )
    for name, values in times.items():
        median = statistics.median(values)
        print(
            f"{name:<30} median {median:6.2f} s  min {min(values):6.2f} s  max {max(values):6.2f} s  "
            f"/ import torch {median / yardstick:5.2f}"
        )


if __name__ == "__main__":
    main()
