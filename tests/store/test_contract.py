"""The VectorStore contract, on both real engines (Qdrant Edge, and qdrant-client local mode
standing in for a Qdrant server): nearest by dot product within a domain, exclusions, round
trips, batching, counts and domains, persistence across close and reopen."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest

from inference.errors import ConfigError, StoreError
from store.base import ItemPoint, ItemQuery, UserPoint, VectorStore
from store.overfetch import OVERFETCH
from tests.fixtures.store import Engine, MakeStore

DIM = 8


def _items(n: int, domains: tuple[str, ...], seed: int = 0) -> list[ItemPoint]:
    rng = np.random.default_rng(seed)
    # Different norms on purpose: the score is a dot product, not a cosine.
    vectors = rng.standard_normal((n, DIM)) * rng.uniform(0.5, 2.0, (n, 1))
    return [ItemPoint(f"item-{i}", domains[i % len(domains)], vectors[i]) for i in range(n)]


def _exact(
    points: list[ItemPoint], vector: np.ndarray, domain: str, k: int, exclude: tuple[str, ...] = ()
) -> list[str]:
    cands = [p for p in points if p.domain == domain and p.item_id not in exclude]
    scores = np.array([float(p.vector @ vector) for p in cands])
    return [cands[i].item_id for i in np.argsort(-scores)[:k]]


@pytest.fixture
def loaded(make_store: MakeStore, engine: Engine) -> tuple[VectorStore, list[ItemPoint]]:
    store = make_store(engine, upsert_batch=16)  # several batches per upsert
    store.ensure_collections(DIM)
    points = _items(60, ("food", "kitchen", "books"))
    store.upsert_items(points)
    return store, points


def test_query_returns_nearest_by_dot_product_in_domain_only(loaded) -> None:
    store, points = loaded
    q = np.random.default_rng(1).standard_normal(DIM)
    hits = store.query_items(ItemQuery(q, "kitchen", 5))
    assert [h.item_id for h in hits] == _exact(points, q, "kitchen", 5)
    assert all(h.domain == "kitchen" for h in hits)
    by_id = {p.item_id: p for p in points}
    for h in hits:
        assert h.score == pytest.approx(float(by_id[h.item_id].vector @ q), rel=1e-4, abs=1e-4)
    assert [h.score for h in hits] == sorted((h.score for h in hits), reverse=True)


def test_dot_product_not_cosine(make_store: MakeStore, engine: Engine) -> None:
    store = make_store(engine)
    store.ensure_collections(2)
    # "aligned" has the best cosine to the query, "long" the best dot product.
    store.upsert_items([ItemPoint("aligned", "d", [1.0, 0.0]), ItemPoint("long", "d", [3.0, 3.0])])
    hits = store.query_items(ItemQuery(np.array([1.0, 0.0]), "d", 2))
    assert [h.item_id for h in hits] == ["long", "aligned"]
    assert hits[0].score == pytest.approx(3.0)


def test_excluded_ids_never_returned(loaded) -> None:
    store, points = loaded
    q = np.random.default_rng(2).standard_normal(DIM)
    top = [h.item_id for h in store.query_items(ItemQuery(q, "food", 20))]
    exclude = (*top[:3], "never-stored")
    hits = store.query_items(ItemQuery(q, "food", 20, exclude))
    assert not {h.item_id for h in hits} & set(exclude)
    assert [h.item_id for h in hits] == _exact(points, q, "food", 20, exclude)


@pytest.mark.parametrize("crowd", [OVERFETCH - 1, OVERFETCH + 1])
def test_many_exclusions_among_the_nearest_still_give_k_hits(loaded, crowd: int) -> None:
    # Exclusions are dropped from OVERFETCH extra hits, not sent as a filter; past OVERFETCH
    # of them among the nearest, the page runs short and the query is asked again, filtered.
    store, points = loaded
    q = np.random.default_rng(4).standard_normal(DIM)
    nearest = _exact(points, q, "food", 20)
    exclude = (*nearest[:crowd], "never-stored")
    hits = store.query_items(ItemQuery(q, "food", 3, exclude))
    assert [h.item_id for h in hits] == _exact(points, q, "food", 3, exclude)


def test_k_larger_than_domain_and_unknown_domain(loaded) -> None:
    store, _ = loaded
    q = np.ones(DIM)
    assert len(store.query_items(ItemQuery(q, "books", 1000))) == 20
    assert store.query_items(ItemQuery(q, "no-such-domain", 5)) == []
    assert store.query_items(ItemQuery(q, "books", 0)) == []


def test_batch_query_equals_single_queries(loaded) -> None:
    store, points = loaded
    rng = np.random.default_rng(3)
    qs = [
        ItemQuery(rng.standard_normal(DIM), domain, k, (points[i].item_id,))
        for i, (domain, k) in enumerate([("food", 5), ("kitchen", 3), ("books", 0), ("food", 9)])
    ]
    batch = store.query_items_batch(qs)
    assert batch == [store.query_items(q) for q in qs]
    assert store.query_items_batch([]) == []


def test_get_items_round_trip(loaded) -> None:
    store, points = loaded
    wanted = [points[0].item_id, points[31].item_id, "missing", points[0].item_id]
    got = store.get_items(wanted)
    assert set(got) == {points[0].item_id, points[31].item_id}
    for p in (points[0], points[31]):
        assert got[p.item_id].domain == p.domain
        np.testing.assert_allclose(got[p.item_id].vector, p.vector, rtol=1e-6)
    assert store.get_items([]) == {}


def test_upsert_replaces_and_delete_removes(loaded) -> None:
    store, points = loaded
    moved = ItemPoint(points[0].item_id, "garden", np.full(DIM, 5.0))
    store.upsert_items([moved])
    assert store.get_items([moved.item_id])[moved.item_id].domain == "garden"
    assert store.count_items() == 60
    store.delete_items([moved.item_id, "missing"])
    assert store.get_items([moved.item_id]) == {}
    assert store.count_items() == 59
    assert "garden" not in store.domains()


def test_queries_follow_upserts_and_deletes(loaded) -> None:
    """Hits name the item's current id and domain after the store answered queries already
    (Qdrant Edge maps point ids to names in memory once, then keeps the map in step)."""
    store, points = loaded
    probe = ItemQuery(np.full(DIM, 1.0), "garden", 3)
    assert store.query_items(probe) == []
    store.upsert_items([ItemPoint("g-new", "garden", np.full(DIM, 5.0))])
    store.upsert_items([ItemPoint(points[0].item_id, "garden", np.full(DIM, 4.0))])
    hits = store.query_items(probe)
    assert [(h.item_id, h.domain) for h in hits] == [
        ("g-new", "garden"),
        (points[0].item_id, "garden"),
    ]
    store.delete_items(["g-new"])
    assert [h.item_id for h in store.query_items(probe)] == [points[0].item_id]


def test_users_upsert_and_get(make_store: MakeStore, engine: Engine) -> None:
    store = make_store(engine)
    store.ensure_collections(DIM, user_dim=DIM + 1)
    a, b = np.arange(DIM + 1.0), -np.arange(DIM + 1.0)
    store.upsert_users([UserPoint("u1", "food", a), UserPoint("u1", "kitchen", b)])
    np.testing.assert_allclose(store.get_user("u1", "food"), a)
    np.testing.assert_allclose(store.get_user("u1", "kitchen"), b)
    assert store.get_user("u1", "books") is None
    assert store.get_user("u2", "food") is None
    store.upsert_users([UserPoint("u1", "food", b)])
    np.testing.assert_allclose(store.get_user("u1", "food"), b)


def test_count_and_domains(loaded) -> None:
    store, _ = loaded
    assert store.count_items() == 60
    assert store.count_items("food") == 20
    assert store.count_items("nothing") == 0
    assert store.domains() == {"food", "kitchen", "books"}
    store.upsert_items([ItemPoint("new", "garden", np.ones(DIM))])
    assert store.domains() == {"food", "kitchen", "books", "garden"}
    store.delete_items(
        [p.item_id for p in _items(60, ("food", "kitchen", "books")) if p.domain == "books"]
    )
    assert store.domains() == {"food", "kitchen", "garden"}
    store.upsert_items([ItemPoint("new", "food", np.ones(DIM))])  # garden's one item moves
    assert store.domains() == {"food", "kitchen"}


def test_domains_another_writer_added_show_within_the_ttl(
    make_store: MakeStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Workers sharing a Qdrant server each write their own catalogue partitions: a worker's
    list of domains must not stay what it first read (its queries target those domains)."""
    from store import server

    store = make_store("local")
    store.ensure_collections(DIM)
    store.upsert_items([ItemPoint("a", "food", np.ones(DIM))])
    assert store.domains() == {"food"}
    # local mode locks its directory to one client: this one writes behind the store's back,
    # as another worker would
    store.client.upsert(
        store._items,
        server.qm.Batch(
            ids=[str(server.item_point_id("b"))],
            vectors=[np.ones(DIM).tolist()],
            payloads=[{server.ITEM_ID_KEY: "b", server.DOMAIN_KEY: "books"}],
        ),
        wait=True,
    )
    assert store.domains() == {"food"}  # cached...
    monkeypatch.setattr(server, "DOMAINS_TTL_S", 0.0)
    assert store.domains() == {"food", "books"}  # ...for at most DOMAINS_TTL_S


def test_persistence_across_close_and_reopen(
    make_store: MakeStore, engine: Engine, tmp_path
) -> None:
    path = tmp_path / "persist"
    store = make_store(engine, path=path)
    store.ensure_collections(DIM)
    points = _items(30, ("food", "kitchen"))
    store.upsert_items(points)
    store.upsert_users([UserPoint("u", "food", np.ones(DIM))])
    store.optimize()
    store.close()
    store.close()  # idempotent

    again = make_store(engine, path=path)
    again.ensure_collections(DIM)
    assert again.count_items() == 30
    assert again.domains() == {"food", "kitchen"}
    np.testing.assert_allclose(again.get_user("u", "food"), np.ones(DIM))
    q = np.ones(DIM)
    assert [h.item_id for h in again.query_items(ItemQuery(q, "food", 4))] == _exact(
        points, q, "food", 4
    )


def test_reopen_with_other_dimension_is_a_config_error(
    make_store: MakeStore, engine: Engine, tmp_path
) -> None:
    path = tmp_path / "dims"
    store = make_store(engine, path=path)
    store.ensure_collections(DIM)
    store.close()
    again = make_store(engine, path=path)
    with pytest.raises(ConfigError, match="QDRANT"):
        again.ensure_collections(DIM + 1)


def test_an_open_store_refuses_another_dimension_and_keeps_serving(loaded) -> None:
    """What a bundle reload of another vector size meets: a clear error, the store intact."""
    store, points = loaded
    q = np.ones(DIM)
    before = [h.item_id for h in store.query_items(ItemQuery(q, "food", 4))]
    with pytest.raises(ConfigError, match="QDRANT_"):
        store.ensure_collections(DIM + 1)
    assert store.count_items() == len(points)
    assert [h.item_id for h in store.query_items(ItemQuery(q, "food", 4))] == before
    store.ensure_collections(DIM)  # the size it has: fine


def test_wrong_vectors_are_refused_before_the_engine(loaded) -> None:
    store, _ = loaded
    with pytest.raises(ValueError, match="dimensions"):
        store.upsert_items([ItemPoint("short", "food", np.ones(DIM - 1))])
    with pytest.raises(ValueError, match="dimensions"):
        store.query_items(ItemQuery(np.ones(DIM + 1), "food", 3))
    with pytest.raises(ValueError, match="dimensions"):  # a domain with no items as well
        store.query_items(ItemQuery(np.ones(DIM + 1), "no-such-domain", 3))
    with pytest.raises(ValueError, match="finite"):
        ItemPoint("nan", "food", np.full(DIM, np.nan))
    assert store.get_items(["short"]) == {}


def test_engine_failure_is_a_store_error_with_cause(
    make_store: MakeStore, engine: Engine, tmp_path
) -> None:
    path = tmp_path / "locked"
    make_store(engine, path=path).ensure_collections(DIM)
    # A second handle on the same directory is refused by the engine's lock.
    with pytest.raises(StoreError) as info:
        make_store(engine, path=path).ensure_collections(DIM)
    assert info.value.__cause__ is not None


def test_closed_store_raises_store_error(loaded) -> None:
    store, _ = loaded
    store.close()
    with pytest.raises(StoreError):
        store.count_items()
    with pytest.raises(StoreError):  # not an empty answer: a delete would pass for done
        store.get_items(["item-0"])
    with pytest.raises(StoreError):
        store.delete_items(["item-0"])


def test_usable_from_another_thread(make_store: MakeStore, engine: Engine) -> None:
    """The store opened on one thread answers calls from another (the worker calls the
    Qdrant server and local mode from a store thread; Edge inline on the event loop)."""
    store = make_store(engine)
    store.ensure_collections(DIM)
    with ThreadPoolExecutor(max_workers=1) as pool:
        pool.submit(store.upsert_items, _items(10, ("food",))).result()
        hits = pool.submit(store.query_items, ItemQuery(np.ones(DIM), "food", 3)).result()
    assert len(hits) == 3


def test_a_store_names_its_engine_and_where_it_keeps_data(
    make_store: MakeStore, engine: Engine, tmp_path: Path
) -> None:
    store = make_store(engine)  # logged at start: "store <...object at 0x7f...>" told nothing
    expected = {"edge": "Qdrant Edge (embedded) at ", "local": "qdrant-client local mode at "}
    assert repr(store).startswith(expected[engine]) and str(tmp_path) in repr(store)
