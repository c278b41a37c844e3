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
            # In KB of vectors: a filter matching less (~6.6k 384-d items) is answered
            # by exact search over the payload index instead of the graph.
            m=s.hnsw_m,
            ef_construct=s.hnsw_ef_construct,
            full_scan_threshold=10_000,
        ),
        quantization_config=quantization,
        optimizers=qe.EdgeOptimizersConfig(indexing_threshold=s.indexing_threshold_kb),
    )


def search_params(settings: QdrantSettings) -> qe.SearchParams:
    """Search parameters of every item query (HNSW breadth, ACORN below a selectivity)."""
    # Plain filtered HNSW loses recall when the domain filter drops half the graph: measured
    # on 20k clustered 384-d items, recall@10 0.79 with some queries getting 1 hit of 10;
    # ACORN (neighbours of neighbours) brings it to 0.99 at about twice the latency.
    acorn = None
    if settings.acorn_max_selectivity > 0:
        acorn = qe.AcornSearchParams(enable=True, max_selectivity=settings.acorn_max_selectivity)
    return qe.SearchParams(hnsw_ef=settings.hnsw_ef, acorn=acorn)
