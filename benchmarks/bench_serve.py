"""``tempscale-index serve`` under load: 8 concurrent clients against a 100k-chunk HNSW32 index, batching on and off,
then the same load mixed with bad requests and injected worker faults.

The server runs as the CLI starts it (a separate process, torch-free query path); the clients are threads of this
process, each with its own HTTP connection, sending real queries back to back. Batching on (``--max-batch 16``)
and off (``--max-batch 1``) take turns for ``--rounds`` rounds, each on a freshly started server; queries/s,
p50 and p95 latency are printed side by side with the load averages. Target: ≥ 100 queries/s with p95 ≤ 50 ms.

The load-with-faults run (batching on) makes every ``--bad-every``-th request a bad one (wrong content type, 200,000
nested brackets, a 2 MiB body, broken JSON, k = 0: each must get its 4xx) and injects a worker fault into every
``--fault-every``-th batch (``$TEMPSCALE_INDEX_SERVE_FAULT_EVERY``: that batch's queries get a 500, the worker
restarts). Nothing may hang (every request has a 30 s timeout; hangs are counted), and the good requests' p50/p95
are printed beside the fault-free run's.

``--baseline DIR`` (a source tree of another revision, e.g. ``git archive main | tar -x -C DIR``) also runs that
tree's ``serve`` (batching on) in turns with this one's, so that a change is judged by a ratio measured under the
same load rather than by absolute numbers on a shared machine.

    python benchmarks/bench_serve.py [--index DIR] [--reuse] [--clients 8] [--requests 60] [--rounds 2]
                                     [--bad-every 4] [--fault-every 20] [--baseline DIR]
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
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
from bench_cli import CLI, QUERIES, REPO, ensure_index

MODES = {"batching on": ["--max-batch", "16", "--max-wait-ms", "2"], "batching off": ["--max-batch", "1"]}
JSON = "application/json"
BAD_REQUESTS = [  # (content type, body, the status it must get)
    ("text/plain", b'{"text": "a"}', 415),
    (JSON, b"[" * 200_000, 400),
    (JSON, b" " * (2 << 20), 413),
    (JSON, b'{"text": ', 400),
    (JSON, b'{"text": "a", "k": 0}', 400),
]
FAULT_ENV = (
    "TEMPSCALE_INDEX_SERVE_FAULT_EVERY"  # tempscale_index.serving.batcher.FAULT_ENV (not imported: no server code here)
)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def start_server(
    index: Path, options: list[str], env: dict[str, str] | None = None, tree: Path = REPO
) -> tuple[subprocess.Popen[bytes], str]:
    port = free_port()
    server = subprocess.Popen(
        [*CLI, "serve", str(index), "--port", str(port), *options],
        env={**os.environ, "PYTHONPATH": str(tree), **(env or {})},
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


def load_with_faults(url: str, clients: int, requests: int, bad_every: int) -> tuple[float, list[float], Counter]:
    """Like ``load``, with every ``bad_every``-th request a bad one. Returns the good requests' rate and latencies
    (answered 200) and a count of outcomes: good 200, good 500 (an injected fault), bad answered as expected,
    unexpected statuses, and hung requests (timed out)."""

    def client(number: int) -> tuple[list[float], Counter]:
        latencies, outcomes = [], Counter()
        with httpx.Client(base_url=url, timeout=30) as session:
            for i in range(requests):
                bad = BAD_REQUESTS[(number + i) % len(BAD_REQUESTS)] if i % bad_every == bad_every - 1 else None
                started = time.perf_counter()
                try:
                    if bad is None:
                        text = QUERIES[(number + i) % len(QUERIES)]
                        response = session.post("/query", json={"text": text, "k": 5})
                    else:
                        response = session.post("/query", content=bad[1], headers={"content-type": bad[0]})
                except httpx.TimeoutException:
                    outcomes["hung"] += 1
                    continue
                elapsed = time.perf_counter() - started
                if bad is not None:
                    outcomes["bad: expected 4xx" if response.status_code == bad[2] else "bad: unexpected status"] += 1
                elif response.status_code == 200:
                    latencies.append(elapsed)
                    outcomes["good: 200"] += 1
                else:
                    outcomes[f"good: {response.status_code}"] += 1
        return latencies, outcomes

    started = time.perf_counter()
    with ThreadPoolExecutor(clients) as pool:
        runs = list(pool.map(client, range(clients)))
    elapsed = time.perf_counter() - started
    latencies = [value for values, _ in runs for value in values]
    return len(latencies) / elapsed, latencies, sum((outcomes for _, outcomes in runs), Counter())


def percentiles(latencies: list[float]) -> tuple[float, float]:
    ordered = sorted(latencies)
    return statistics.median(ordered) * 1e3, ordered[int(0.95 * (len(ordered) - 1))] * 1e3


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--index", type=Path, default=Path(tempfile.gettempdir()) / "tempscale-bench-100k-HNSW32")
    parser.add_argument("--reuse", action="store_true", help="Reuse the index at --index if there is one.")
    parser.add_argument("--chunks", type=int, default=100_000)
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--requests", type=int, default=60, help="Queries per client per round.")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--bad-every", type=int, default=4, help="Every Nth request of the faults run is bad.")
    parser.add_argument("--fault-every", type=int, default=20, help="A worker fault in every Nth batch.")
    parser.add_argument("--baseline", type=Path, help="Another source tree to serve in turns (batching on).")
    args = parser.parse_args()
    index = ensure_index(args.index, args.chunks, "HNSW32", args.reuse)
    results: dict[str, list[tuple[float, list[float]]]] = {mode: [] for mode in MODES}
    load_before = os.getloadavg()
    trees = {"this tree": REPO, "baseline": args.baseline} if args.baseline else {}
    compared: dict[str, list[tuple[float, list[float]]]] = {name: [] for name in trees}
    for _ in range(args.rounds):
        for name, tree in trees.items():
            server, url = start_server(index, MODES["batching on"], tree=tree)
            try:
                load(url, args.clients, 5)
                compared[name].append(load(url, args.clients, args.requests))
            finally:
                server.terminate()
                server.wait(30)
        for mode, options in MODES.items():
            server, url = start_server(index, options)
            try:
                load(url, args.clients, 5)  # warm-up: sessions, page cache, connections
                results[mode].append(load(url, args.clients, args.requests))
            finally:
                server.terminate()
                server.wait(30)
    server, url = start_server(index, MODES["batching on"], {FAULT_ENV: str(args.fault_every)})
    try:
        load(url, args.clients, 5)
        faults = load_with_faults(url, args.clients, args.requests * args.rounds, args.bad_every)
        health = httpx.get(f"{url}/health", timeout=30).json()
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
        qps = statistics.median(rate for rate, _ in runs)
        p50, p95 = percentiles([value for _, values in runs for value in values])
        summary[mode] = qps
        print(
            f"{mode:<13} {qps:7.1f} queries/s  p50 {p50:6.1f} ms  p95 {p95:6.1f} ms  "
            f"(rounds: {', '.join(f'{rate:.0f}' for rate, _ in runs)} q/s)"
        )
    print(f"batching on / off: {summary['batching on'] / summary['batching off']:.2f}x queries/s")
    for name, runs in compared.items():
        qps = statistics.median(rate for rate, _ in runs)
        p50, p95 = percentiles([value for _, values in runs for value in values])
        summary[name] = qps
        print(f"{name:<13} {qps:7.1f} queries/s  p50 {p50:6.1f} ms  p95 {p95:6.1f} ms  ({trees[name]}, batching on)")
    if compared:
        print(f"this tree / baseline: {summary['this tree'] / summary['baseline']:.2f}x queries/s")
    clean = percentiles([value for _, values in results["batching on"] for value in values])
    rate, latencies, outcomes = faults
    with_faults = percentiles(latencies)
    print(
        f"\nload with faults (batching on; 1 request in {args.bad_every} bad, a worker fault every "
        f"{args.fault_every} batches): good requests side by side"
    )
    print(f"{'':<22} {'p50 ms':>8} {'p95 ms':>8} {'good q/s':>9}")
    print(f"{'no faults':<22} {clean[0]:8.1f} {clean[1]:8.1f} {summary['batching on']:9.1f}")
    print(f"{'bad requests + faults':<22} {with_faults[0]:8.1f} {with_faults[1]:8.1f} {rate:9.1f}")
    print(f"p95 with / without faults: {with_faults[1] / clean[1]:.2f}x")
    print("outcomes: " + ", ".join(f"{key} {value}" for key, value in sorted(outcomes.items())))
    print(f"worker after the run: {health['worker']}")
    if outcomes["hung"] or outcomes["bad: unexpected status"]:
        raise SystemExit("FAILED: a request hung or a bad request got the wrong status")


if __name__ == "__main__":
    sys.exit(main())
