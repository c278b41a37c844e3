"""Qdrant Edge's HNSW (after ``optimize``) finds what exact search finds within a domain.

The items are random but clustered, like real text embeddings, whose intrinsic dimension is
far below 384 (isotropic Gaussian vectors are the worst case for any graph index: recall@10
≈ 0.4 at the default search breadth, and they say little about production data). Each item's
domain is drawn independently of its cluster, so a domain holds half of every neighbourhood:
in one shard with a domain filter, plain HNSW stranded its walks there (recall 0.79) and
needed ACORN; with a shard per domain each graph holds only its domain.
"""

from __future__ import annotations

import numpy as np
import pytest

from store.base import ItemPoint, ItemQuery
from store.edge import EdgeStore
from tests.fixtures.store import MakeStore

N, DIM, K, QUERIES = 20_000, 384, 10, 50


@pytest.mark.slow
def test_hnsw_recall_after_optimize(make_store: MakeStore) -> None:
    rng = np.random.default_rng(7)
    centres = rng.standard_normal((200, DIM)).astype(np.float32)
    noise = 0.5 * rng.standard_normal((N, DIM)).astype(np.float32)
    vectors = centres[rng.integers(0, 200, N)] + noise
    domains = np.where(rng.random(N) < 0.5, "food", "kitchen")
    # ef_construct 64 instead of 100 keeps the build a few seconds on a 2-core CI runner.
    store = make_store("edge", upsert_batch=1024, hnsw_ef_construct=64)
    assert isinstance(store, EdgeStore)
    store.ensure_collections(DIM)
    store.upsert_items([ItemPoint(f"i{i}", str(domains[i]), vectors[i]) for i in range(N)])
    store.optimize()
    stats = store.index_stats()
    assert stats["points"] == N
    assert stats["indexed_vectors"] == N, "optimize() must have built HNSW over every item"

    picks = rng.integers(0, N, QUERIES)
    queries = vectors[picks] + 0.3 * rng.standard_normal((QUERIES, DIM)).astype(np.float32)
    hits = store.query_items_batch([ItemQuery(q, "food", K) for q in queries])
    recalls = []
    for q, got in zip(queries, hits, strict=True):
        assert len(got) == K
        assert all(h.domain == "food" for h in got)
        exact_scores = np.where(domains == "food", vectors @ q, -np.inf)
        exact = {f"i{i}" for i in np.argsort(-exact_scores)[:K]}
        recalls.append(len({h.item_id for h in got} & exact) / K)
    assert float(np.mean(recalls)) >= 0.9
