"""What one worker micro-batch of item queries costs, per store layout, with recall.

``python -m bench.store_probe`` fills Qdrant Edge with the Food/Kitchen catalogue's title
vectors (``--data food-kitchen``, the default when ``../shared/datasets`` is there; queries are
the mean title vector of a real training user's items) or a catalogue-sized set of clustered
384-d items in two domains (``--data synthetic``, food 24% / kitchen 76% like the real one;
queries are means of random items), builds HNSW, and times one worker-shaped micro-batch of
queries (per user: one query per target domain, the user's consumed items excluded) three ways
in the same run:

* ``one_shard_filtered``: the layout before, with its defaults: all items in one shard, a
  domain filter on every query, ACORN where the filter keeps at most 60% of the items (food),
  ef 64;
* ``shard_per_domain``: the worker's :class:`EdgeStore` now: one shard per domain, no filter;
  the consumed items are dropped from a few extra hits (``store.overfetch``);
* ``shard_per_domain_filtered``: the same shards with the consumed items sent as an exclusion
  filter instead (the worker's queries before ``store.overfetch``);
* ``numpy_exact``: one float32 matmul per domain (recall 1.0 by construction; the reference).

Recall@10 is against exact search. Synthetic vectors are harder for HNSW than real titles.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

from bench.report import emit_probe

DOMAINS = ("food", "kitchen")


def _median_ms(fns: dict[str, Callable[[], object]], repeat: int) -> dict[str, float]:
    """Median ms of each function, run in interleaved rounds so that a slow spell of a shared
    machine falls on every variant alike."""
    lat: dict[str, list[float]] = {name: [] for name in fns}
    for _ in range(repeat):
        for name, fn in fns.items():
            t = time.perf_counter()
            fn()
            lat[name].append(time.perf_counter() - t)
    return {name: 1e3 * float(np.median(v)) for name, v in lat.items()}


def _one_shard(path: Path, points: list, dim: int) -> Callable[[list], list[list[str]]]:
    """The previous layout, built on the engine directly: one shard, domain filter, ACORN."""
    import qdrant_edge as qe

    from store.base import item_point_id
    from store.edge_config import edge_config
    from store.settings import QdrantSettings

    shard = qe.EdgeShard.create(str(path), edge_config(QdrantSettings(path=path), "items", dim))
    shard.update(qe.UpdateOperation.create_field_index("domain", qe.PayloadSchemaType.Keyword))
    names = {item_point_id(p.item_id): p.item_id for p in points}
    for i in range(0, len(points), 512):
        ops = [
            qe.Point(
                id=item_point_id(p.item_id), vector=p.vector.tolist(), payload={"domain": p.domain}
            )
            for p in points[i : i + 512]
        ]
        shard.update(qe.UpdateOperation.upsert_points(ops))
    shard.optimize()
    acorn = qe.SearchParams(
        hnsw_ef=64, acorn=qe.AcornSearchParams(enable=True, max_selectivity=0.6)
    )

    def run(queries: list) -> list[list[str]]:
        reqs = []
        for q in queries:
            must_not = [qe.HasIdCondition({item_point_id(i) for i in q.exclude_item_ids})]
            flt = qe.Filter(
                must=[qe.FieldCondition(key="domain", match=qe.MatchValue(q.domain))],
                must_not=must_not if q.exclude_item_ids else None,
            )
            reqs.append(
                qe.QueryRequest(
                    limit=q.k,
                    query=qe.Query.Nearest(q.vector.tolist()),
                    filter=flt,
                    with_payload=False,
                    params=acorn,
                )
            )
        return [[names[p.id] for p in r] for r in shard.query_batch(qe.QueryBatchRequest(reqs))]

    return run


def _exact(vecs: np.ndarray, domains: np.ndarray) -> Callable[[list], list[list[str]]]:
    by_domain = {}
    for d in DOMAINS:
        idx = np.flatnonzero(domains == d)
        by_domain[d] = (idx, np.ascontiguousarray(vecs[idx]))

    def run(queries: list) -> list[list[str]]:
        out: list[list[str]] = [[] for _ in queries]
        for d, (idx, mat) in by_domain.items():
            rows = [i for i, q in enumerate(queries) if q.domain == d]
            scores = np.stack([queries[i].vector for i in rows]).astype(np.float32) @ mat.T
            for i, row in zip(rows, scores, strict=True):
                q = queries[i]
                top = np.argpartition(-row, q.k + len(q.exclude_item_ids))[
                    : q.k + len(q.exclude_item_ids)
                ]
                top = top[np.argsort(-row[top])]
                excl = set(q.exclude_item_ids)
                out[i] = [s for s in (str(idx[t]) for t in top) if s not in excl][: q.k]
        return out

    return run


def _synthetic(items: int, users: int, consumed: int, dim: int = 384) -> tuple:
    """Clustered unit vectors, random domains; each user consumed random items."""
    rng = np.random.default_rng(0)
    centres = rng.standard_normal((max(items // 100, 1), dim)).astype(np.float32)
    vecs = centres[rng.integers(0, len(centres), items)]
    vecs += 0.5 * rng.standard_normal((items, dim)).astype(np.float32)
    vecs /= np.linalg.norm(vecs, axis=1, keepdims=True)
    domains = np.where(rng.random(items) < 0.24, "food", "kitchen")
    return vecs, domains, [rng.integers(0, items, consumed) for _ in range(users)]


def _food_kitchen(users: int, consumed: int) -> tuple:
    """The catalogue's title vectors (cached by ``bench.transfer_data``) and real users' items."""
    from bench.transfer_data import load_dataset, title_vectors

    data = load_dataset()
    vecs, _ = title_vectors(data)
    rng = np.random.default_rng(0)
    train = data.train.sequences
    picks = rng.choice(len(train), size=users, replace=False)
    return vecs, np.asarray(data.catalogue.domains), [train[i][-consumed:] for i in picks]


def _crowding(vecs: np.ndarray, domains: np.ndarray, queries: list) -> dict:
    """How many of each query's consumed items are among its exact nearest ``k + OVERFETCH``
    (more than OVERFETCH of them, and the over-fetched page would run short)."""
    from store.overfetch import OVERFETCH

    counts = []
    for d in DOMAINS:
        idx = np.flatnonzero(domains == d)
        rows = [q for q in queries if q.domain == d]
        scores = np.stack([q.vector for q in rows]).astype(np.float32) @ vecs[idx].T
        for q, row in zip(rows, scores, strict=True):
            top = idx[np.argpartition(-row, q.k + OVERFETCH)[: q.k + OVERFETCH]]
            counts.append(len({str(t) for t in top} & set(q.exclude_item_ids)))
    c = np.array(counts)
    per_query = [len(q.exclude_item_ids) for q in queries]
    return {
        "nearest": f"k + {OVERFETCH}",
        "consumed_per_query_mean": round(float(np.mean(per_query)), 2),
        "among_nearest_mean": round(float(c.mean()), 2),
        "among_nearest_p90": float(np.percentile(c, 90)),
        "among_nearest_max": int(c.max()),
        "share_over_overfetch": round(float(np.mean(c > OVERFETCH)), 4),
    }


def _asked_again(store: object, queries: list) -> float:
    """Share of queries whose consumed items crowd out an over-fetched page (asked again),
    counted on the store's own over-fetch path (``store.overfetch.query_batch``)."""
    from store import overfetch

    again = 0
    for d in DOMAINS:
        ask = store._asker(store._items.get(d))

        def counting(requests: list, ask=ask) -> list:
            nonlocal again
            again += sum(filtered for _, _, filtered in requests)
            return ask(requests)

        overfetch.query_batch([q for q in queries if q.domain == d], counting)
    return again / max(len(queries), 1)


def probe(data: str, items: int, users: int, consumed: int, repeat: int) -> dict:
    from store.base import ItemPoint, ItemQuery
    from store.edge import EdgeStore
    from store.settings import QdrantSettings

    if data == "food-kitchen":
        vecs, domains, seen_by_user = _food_kitchen(users, consumed)
    else:
        vecs, domains, seen_by_user = _synthetic(items, users, consumed)
    items, dim = vecs.shape
    points = [ItemPoint(str(i), str(domains[i]), vecs[i]) for i in range(items)]
    queries = []
    for seen in seen_by_user:
        q = vecs[seen].mean(0)
        for d in DOMAINS:
            queries.append(ItemQuery(q, d, 10, tuple(str(i) for i in seen if domains[i] == d)))
    exact = _exact(vecs, domains)
    truth = exact(queries)
    out: dict = {
        "data": data,
        "items": items,
        "queries_per_batch": len(queries),
        "consumed": consumed,
        "consumed_among_nearest": _crowding(vecs, domains, queries),
    }
    with tempfile.TemporaryDirectory() as tmp:
        store = EdgeStore(QdrantSettings(path=Path(tmp) / "per-domain"))
        store.ensure_collections(dim)
        store.upsert_items(points)
        t = time.perf_counter()
        store.optimize()
        build_s = time.perf_counter() - t

        def per_domain(qs: list) -> list[list[str]]:
            return [[h.item_id for h in hits] for hits in store.query_items_batch(qs)]

        def per_domain_filtered(qs: list) -> list[list[str]]:
            out: list[list[str]] = [[] for _ in qs]
            for d in DOMAINS:
                live = [i for i, q in enumerate(qs) if q.domain == d]
                ask = store._asker(store._items.get(d))  # the engine call, filter always on
                for i, (hits, _) in zip(
                    live, ask([(qs[i], qs[i].k, True) for i in live]), strict=True
                ):
                    out[i] = [h.item_id for h in hits]
            return out

        out["asked_again_share"] = round(_asked_again(store, queries), 4)

        old = Path(tmp) / "one-shard"
        old.mkdir()
        t = time.perf_counter()
        one = _one_shard(old, points, dim)
        one_build_s = time.perf_counter() - t
        variants = {
            "one_shard_filtered": one,
            "shard_per_domain": per_domain,
            "shard_per_domain_filtered": per_domain_filtered,
            "numpy_exact": exact,
        }
        answers = {name: run(queries) for name, run in variants.items()}  # also warms each
        timed = _median_ms({n: (lambda r=r: r(queries)) for n, r in variants.items()}, repeat)
        for name, got in answers.items():
            ms = timed[name]
            recall = np.mean(
                [len(set(g) & set(w)) / max(len(w), 1) for g, w in zip(got, truth, strict=True)]
            )
            out[name] = {
                "batch_ms_p50": round(ms, 2),
                "ms_per_query": round(ms / len(queries), 3),
                "recall@10": round(float(recall), 4),
            }
        out["shard_per_domain"]["optimize_s"] = round(build_s, 2)
        out["one_shard_filtered"]["fill_and_optimize_s"] = round(one_build_s, 2)
        base = out["one_shard_filtered"]["batch_ms_p50"]
        out["speedup_vs_one_shard"] = {
            k: round(base / out[k]["batch_ms_p50"], 2)
            for k in ("shard_per_domain", "shard_per_domain_filtered", "numpy_exact")
        }
        filtered_ms = out["shard_per_domain_filtered"]["batch_ms_p50"]
        out["overfetch_speedup_vs_filter"] = round(
            filtered_ms / out["shard_per_domain"]["batch_ms_p50"], 2
        )
        store.close()
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument(
        "--data",
        choices=("food-kitchen", "synthetic"),
        default=None,
        help="default: food-kitchen when ../shared/datasets is there, else synthetic",
    )
    ap.add_argument("--items", type=int, default=36_298, help="synthetic items")
    ap.add_argument("--users", type=int, default=128, help="users per micro-batch")
    ap.add_argument("--consumed", type=int, default=10, help="consumed items per user")
    ap.add_argument("--repeat", type=int, default=21)
    ap.add_argument("--out", type=Path, default=None)
    a = ap.parse_args(argv)
    if a.data is None:
        from bench.transfer_data import resolve_data_dir
        from inference.errors import ConfigError

        try:
            resolve_data_dir()
            a.data = "food-kitchen"
        except ConfigError:
            a.data = "synthetic"
    return emit_probe(
        "store_probe",
        f"python -m bench.store_probe --data {a.data} --items {a.items} --users {a.users} "
        f"--consumed {a.consumed} --repeat {a.repeat}",
        probe(a.data, a.items, a.users, a.consumed, a.repeat),
        a.out,
    )


if __name__ == "__main__":
    raise SystemExit(main())
