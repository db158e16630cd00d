"""``tempscale-index serve`` under load: 8 concurrent clients against a 100k-chunk HNSW32 index, batching on and off.

The server runs as the CLI starts it (a separate process, torch-free query path); the clients are threads of this
process, each with its own HTTP connection, sending real queries back to back. Batching on (``--max-batch 16``)
and off (``--max-batch 1``) take turns for ``--rounds`` rounds, each on a freshly started server; queries/s,
p50 and p95 latency are printed side by side with the load averages. Target: ≥ 100 queries/s with p95 ≤ 50 ms.

    python benchmarks/bench_serve.py [--index DIR] [--reuse] [--clients 8] [--requests 60] [--rounds 2]
"""

from __future__ import annotations

import argparse
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
from bench_cli import CLI, QUERIES, REPO, ensure_index

MODES = {"batching on": ["--max-batch", "16", "--max-wait-ms", "2"], "batching off": ["--max-batch", "1"]}


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def start_server(index: Path, options: list[str]) -> tuple[subprocess.Popen[bytes], str]:
    port = free_port()
    server = subprocess.Popen(
        [*CLI, "serve", str(index), "--port", str(port), *options],
        env={**os.environ, "PYTHONPATH": str(REPO)},
        stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"{url}/health", timeout=1).status_code == 200:
                return server, url
        except httpx.TransportError:
            time.sleep(0.2)
    server.kill()
    raise SystemExit("the server did not start")


def load(url: str, clients: int, requests: int) -> tuple[float, list[float]]:
    """(queries per second, latencies in s) for ``clients`` threads sending ``requests`` queries each."""

    def client(number: int) -> list[float]:
        latencies = []
        with httpx.Client(base_url=url, timeout=30) as session:
            for i in range(requests):
                started = time.perf_counter()
                response = session.post("/query", json={"text": QUERIES[(number + i) % len(QUERIES)], "k": 5})
                latencies.append(time.perf_counter() - started)
                if response.status_code != 200 or len(response.json()["results"]) != 5:
                    raise SystemExit(f"bad answer: {response.status_code} {response.text[:200]}")
        return latencies

    started = time.perf_counter()
    with ThreadPoolExecutor(clients) as pool:
        latencies = [value for values in pool.map(client, range(clients)) for value in values]
    return len(latencies) / (time.perf_counter() - started), latencies


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--index", type=Path, default=Path(tempfile.gettempdir()) / "tempscale-bench-100k-HNSW32")
    parser.add_argument("--reuse", action="store_true", help="Reuse the index at --index if there is one.")
    parser.add_argument("--chunks", type=int, default=100_000)
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--requests", type=int, default=60, help="Queries per client per round.")
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args()
    index = ensure_index(args.index, args.chunks, "HNSW32", args.reuse)
    results: dict[str, list[tuple[float, list[float]]]] = {mode: [] for mode in MODES}
    load_before = os.getloadavg()
    for _ in range(args.rounds):
        for mode, options in MODES.items():
            server, url = start_server(index, options)
            try:
                load(url, args.clients, 5)  # warm-up: sessions, page cache, connections
                results[mode].append(load(url, args.clients, args.requests))
            finally:
                server.terminate()
                server.wait(30)
    load_after = os.getloadavg()
    print(
        f"\n{args.clients} clients x {args.requests} queries x {args.rounds} rounds, {os.cpu_count()} CPUs, "
        f"load average before {load_before[0]:.2f} after {load_after[0]:.2f} (1 min)"
    )
    summary = {}
    for mode, runs in results.items():
        latencies = sorted(value for _, values in runs for value in values)
        qps = statistics.median(rate for rate, _ in runs)
        p50, p95 = statistics.median(latencies) * 1e3, latencies[int(0.95 * (len(latencies) - 1))] * 1e3
        summary[mode] = qps
        print(
            f"{mode:<13} {qps:7.1f} queries/s  p50 {p50:6.1f} ms  p95 {p95:6.1f} ms  "
            f"(rounds: {', '.join(f'{rate:.0f}' for rate, _ in runs)} q/s)"
        )
    print(f"batching on / off: {summary['batching on'] / summary['batching off']:.2f}x queries/s")


if __name__ == "__main__":
    sys.exit(main())
