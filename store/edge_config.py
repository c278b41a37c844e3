"""How Qdrant Edge shards are configured and searched (settings -> engine parameters).

The figures behind the defaults are in ``store.settings`` (ACORN, hnsw_ef) and below.
"""

from __future__ import annotations

import qdrant_edge as qe

from store.settings import QdrantSettings


def edge_config(s: QdrantSettings, role: str, dim: int) -> qe.EdgeConfig:
    """The shard config of ``role`` ("items" or "users") for ``dim``-dimensional vectors."""
    if role == "users":
        # Users are only ever fetched by id, never searched: an HNSW graph over them would
        # cost an optimize() of ~50 s per 40k points for nothing. 0 = never index.
        return qe.EdgeConfig(
            vectors=qe.EdgeVectorParams(size=dim, distance=qe.Distance.Dot),
            optimizers=qe.EdgeOptimizersConfig(indexing_threshold=0),
        )
    quantization = None
    if s.quantization:
        # int8 copy for the graph walk, float32 rescoring of the candidates: measured on
        # the Food/Kitchen titles, optimize() 2x faster and queries ~1.3x, same recall.
        quantization = qe.ScalarQuantizationConfig(type=qe.ScalarType.Int8, always_ram=True)
    return qe.EdgeConfig(
        vectors=qe.EdgeVectorParams(size=dim, distance=qe.Distance.Dot),
        hnsw_config=qe.HnswIndexConfig(
            # In KB of vectors: a domain smaller than this (~6.6k 384-d items) is searched
            # exactly instead of through the graph.
            m=s.hnsw_m,
            ef_construct=s.hnsw_ef_construct,
            full_scan_threshold=10_000,
        ),
        quantization_config=quantization,
        optimizers=qe.EdgeOptimizersConfig(indexing_threshold=s.indexing_threshold_kb),
    )


def search_params(settings: QdrantSettings) -> qe.SearchParams:
    """Search parameters of every item query: the HNSW breadth.

    No ACORN: each domain has its own shard (``store.edge_domains``), so queries carry no
    domain filter, only the user's consumed items, which drop a negligible share of a graph.
    """
    return qe.SearchParams(hnsw_ef=settings.hnsw_ef)
