"""Why is the worker's ``store_query`` stage slow? The same batched query, four store states.

``python -m bench.store_probe`` fills a Qdrant Edge store (the worker's :class:`EdgeStore`) with
a catalogue-sized set of clustered 384-d items in two domains (food 24% / kitchen 76%, like
the Food/Kitchen catalogue), then times one worker-shaped micro-batch of queries (per user:
one query per target domain, domain filter, the user's consumed items excluded) as the worker
would leave it without indexing (segments never optimised) and after ``optimize()`` (what the
worker now does when the catalogue goes idle), each with the default search settings (ACORN
below 60% selectivity, so for food only; ef 64) and with ACORN off. Synthetic vectors are
harder for HNSW than real titles: recall is for the settings' comments, measured on titles.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import numpy as np

from bench.report import machine, now_iso


def _store(path: Path, acorn: float | None):
    from store.edge import EdgeStore
    from store.settings import QdrantSettings

    kw = {"path": path}
    if acorn is not None:
        kw["acorn_max_selectivity"] = acorn
    return EdgeStore(QdrantSettings(**kw))


def probe(items: int, users: int, consumed: int, repeat: int, dim: int = 384) -> dict:
    from store.base import ItemPoint, ItemQuery

    rng = np.random.default_rng(0)
    centres = rng.standard_normal((max(items // 100, 1), dim)).astype(np.float32)
    vecs = centres[rng.integers(0, len(centres), items)]
    vecs += 0.5 * rng.standard_normal((items, dim)).astype(np.float32)
    vecs /= np.linalg.norm(vecs, axis=1, keepdims=True)
    domains = np.where(rng.random(items) < 0.24, "food", "kitchen")
    points = [ItemPoint(str(i), str(domains[i]), vecs[i]) for i in range(items)]
    queries = []
    for _ in range(users):
        seen = rng.integers(0, items, consumed)
        q = vecs[seen].mean(0)
        for d in ("food", "kitchen"):
            queries.append(ItemQuery(q, d, 10, tuple(str(i) for i in seen if domains[i] == d)))
    out: dict = {"items": items, "queries_per_batch": len(queries), "consumed": consumed}
    with tempfile.TemporaryDirectory() as tmp:
        for acorn_label, acorn in (("acorn_default", None), ("acorn_off", 0.0)):
            store = _store(Path(tmp) / acorn_label, acorn)
            store.ensure_collections(dim)
            store.upsert_items(points)
            for state in ("as_ingested", "optimized"):
                if state == "optimized":
                    t = time.perf_counter()
                    store.optimize()
                    out[f"optimize_s_{acorn_label}"] = round(time.perf_counter() - t, 2)
                t_req = time.perf_counter()
                for q in queries:
                    store._request(q)
                req_ms = (time.perf_counter() - t_req) * 1e3
                lat = []
                for _ in range(repeat):
                    t = time.perf_counter()
                    store.query_items_batch(queries)
                    lat.append(time.perf_counter() - t)
                ms = 1e3 * float(np.median(lat))
                out[f"{state}/{acorn_label}"] = {
                    "batch_ms_p50": round(ms, 2),
                    "ms_per_query": round(ms / len(queries), 3),
                    "request_build_ms": round(req_ms, 2),
                    "index": store.index_stats(),
                }
            store.close()
    out["numpy_exact"] = _numpy_exact(vecs, domains, queries, repeat)
    return out


def _numpy_exact(vecs: np.ndarray, domains: np.ndarray, queries: list, repeat: int) -> dict:
    """The same batch answered exactly: one float32 matmul per domain, top-k by argpartition
    over k + |excluded| candidates, excluded ids dropped (recall 1.0 by construction)."""
    by_domain = {}
    for d in ("food", "kitchen"):
        idx = np.flatnonzero(domains == d)
        by_domain[d] = (idx, np.ascontiguousarray(vecs[idx]))

    def run() -> list:
        results = []
        for d, (idx, mat) in by_domain.items():
            qs = [q for q in queries if q.domain == d]
            scores = np.stack([q.vector for q in qs]).astype(np.float32) @ mat.T
            for q, row in zip(qs, scores, strict=True):
                extra = len(q.exclude_item_ids)
                top = np.argpartition(-row, q.k + extra)[: q.k + extra]
                top = top[np.argsort(-row[top])]
                excl = set(q.exclude_item_ids)
                results.append([int(idx[t]) for t in top if str(idx[t]) not in excl][: q.k])
        return results

    run()
    lat = []
    for _ in range(repeat):
        t = time.perf_counter()
        run()
        lat.append(time.perf_counter() - t)
    ms = 1e3 * float(np.median(lat))
    return {"batch_ms_p50": round(ms, 2), "ms_per_query": round(ms / len(queries), 3)}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--items", type=int, default=36_298)
    ap.add_argument("--users", type=int, default=128, help="users per micro-batch")
    ap.add_argument("--consumed", type=int, default=10, help="consumed items per user")
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--out", type=Path, default=None)
    a = ap.parse_args(argv)
    doc = {
        "benchmark": "store_probe",
        "date": now_iso(),
        "machine": machine(),
        **probe(a.items, a.users, a.consumed, a.repeat),
    }
    text = json.dumps(doc, indent=2)
    print(text)
    if a.out:
        a.out.write_text(text + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
