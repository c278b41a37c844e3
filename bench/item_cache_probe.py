"""Item cache probe: the memory one cached Qdrant Edge item costs (``store.item_cache``).

Fills an :class:`~store.item_cache.ItemCache` with ``--items`` points of ``--dim`` float32
values, as ``EdgeStore.get_items`` builds them, in a fresh child process, and reports the RSS
it grew by. ``python -m bench.item_cache_probe --out bench/results/item-cache.json``
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
from pathlib import Path

from bench.report import emit_probe


def _fill(q: mp.Queue, items: int, dim: int) -> None:
    import gc

    import numpy as np

    from bench.report import rss_bytes
    from store.base import ItemPoint, item_point_id
    from store.item_cache import ItemCache

    rng = np.random.default_rng(0)
    cache = ItemCache(items)
    gc.collect()
    before = rss_bytes()
    for k in range(items):
        item_id = f"item-{k:06d}"
        vector = rng.standard_normal(dim).astype(np.float32)
        cache.put(item_point_id(item_id).int, ItemPoint(item_id, "kitchen", vector))
    gc.collect()
    q.put(rss_bytes() - before)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--items", type=int, default=20_000, help="QDRANT_ITEM_CACHE's default")
    ap.add_argument("--dim", type=int, default=384)
    ap.add_argument("--out", type=Path, default=None)
    a = ap.parse_args(argv)
    ctx = mp.get_context("spawn")
    q = ctx.Queue()
    p = ctx.Process(target=_fill, args=(q, a.items, a.dim))
    p.start()
    grown = q.get()
    p.join()
    results = {
        "items": a.items,
        "dim": a.dim,
        "rss_delta_mib": round(grown / 2**20, 1),
        "bytes_per_item": round(grown / a.items),
    }
    return emit_probe(
        "item_cache_probe",
        f"python -m bench.item_cache_probe --items {a.items} --dim {a.dim}",
        results,
        a.out,
    )


if __name__ == "__main__":
    raise SystemExit(main())
