"""Quick throughput/latency check of the Qdrant Edge store (a script, not a test).

    python -m store.benchmark --items 30000 --dim 384

Items are clustered random vectors (like text embeddings) in two domains drawn independently
of the clusters; each domain is its own shard. Prints one line per figure; the machine's load
is the caller's business (say it with the numbers). ``python -m bench.store_probe`` compares
the layouts and measures recall.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

from store.base import ItemPoint, ItemQuery, UserPoint
from store.edge import EdgeStore
from store.settings import QdrantSettings


def _latencies_ms(fn: Callable[[], object], repeat: int) -> np.ndarray:
    out = np.empty(repeat)
    for i in range(repeat):
        t = time.perf_counter()
        fn()
        out[i] = (time.perf_counter() - t) * 1e3
    return out


def _report(label: str, ms: np.ndarray) -> None:
    p50, p95, p99 = np.percentile(ms, [50, 95, 99])
    print(f"{label:<44} p50 {p50:7.2f} ms  p95 {p95:7.2f} ms  p99 {p99:7.2f} ms")


def main() -> None:
    """Measure bulk and single upserts, optimize, and query latency at the given size."""
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--items", type=int, default=30_000)
    ap.add_argument("--dim", type=int, default=384)
    ap.add_argument("--queries", type=int, default=300)
    ap.add_argument("--k", type=int, default=10)
    args = ap.parse_args()
    n, dim = args.items, args.dim
    rng = np.random.default_rng(0)
    centres = rng.standard_normal((max(n // 100, 1), dim)).astype(np.float32)
    vectors = centres[rng.integers(0, len(centres), n)]
    vectors += 0.5 * rng.standard_normal((n, dim)).astype(np.float32)
    domains = np.where(rng.random(n) < 0.5, "food", "kitchen")
    points = [ItemPoint(f"i{i}", str(domains[i]), vectors[i]) for i in range(n)]
    picks = rng.integers(0, n, args.queries)
    queries = [
        ItemQuery(vectors[i] + 0.3 * rng.standard_normal(dim), "food", args.k, (f"i{i}",))
        for i in picks
    ]
    print(f"qdrant-edge store: {n} items x {dim} d, {os.cpu_count()} CPUs")

    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "qdrant"
        store = EdgeStore(QdrantSettings(path=path))
        store.ensure_collections(dim)
        t = time.perf_counter()
        store.upsert_items(points)
        dt = time.perf_counter() - t
        print(f"bulk upsert (batches of 256)                 {n / dt:9.0f} items/s ({dt:.2f} s)")

        users = [UserPoint(f"u{i}", "food", vectors[i]) for i in range(min(n, 5000))]
        t = time.perf_counter()
        for u in users:
            store.upsert_users([u])
        dt = time.perf_counter() - t
        print(f"single-point upserts (users)                 {len(users) / dt:9.0f} points/s")

        _report("query before optimize (plain segment)", _q(store, queries))
        t = time.perf_counter()
        store.optimize()
        print(f"optimize (HNSW build)                        {time.perf_counter() - t:9.2f} s")
        print(f"index: {store.index_stats()}")
        _report("query after optimize", _q(store, queries))
        size = min(64, len(queries))
        _report(f"query batch of {size}, per query", _batch(store, queries, size))
        t = time.perf_counter()
        store.close()
        again = EdgeStore(QdrantSettings(path=path))
        again.ensure_collections(dim)
        print(f"close + reopen                               {time.perf_counter() - t:9.2f} s")
        _report("query after reopen", _q(again, queries))
        again.close()


def _q(store: EdgeStore, queries: list[ItemQuery]) -> np.ndarray:
    it = iter(queries * 2)
    for q in queries[:20]:  # warm the page cache and the search pool
        store.query_items(q)
    return _latencies_ms(lambda: store.query_items(next(it)), len(queries))


def _batch(store: EdgeStore, queries: list[ItemQuery], size: int) -> np.ndarray:
    groups = [queries[i : i + size] for i in range(0, len(queries) - size + 1, size)]
    it = iter(groups)
    return _latencies_ms(lambda: store.query_items_batch(next(it)), len(groups)) / size


if __name__ == "__main__":
    main()
