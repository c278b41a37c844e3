"""Real-data drift scenarios: permuted cross-domain links, checked on a world of known groups."""

from __future__ import annotations

from collections import defaultdict

import numpy as np
import pytest

from synth.drift import Scenario
from synth.drift_real import LinkedWorld, kmeans

GROUPS, PER_GROUP = 4, 12


@pytest.fixture
def world() -> LinkedWorld:
    # user u of taste group u % GROUPS; their items name them: f<u>-<k> and k<u>-<k>
    users = GROUPS * PER_GROUP
    taste = np.eye(GROUPS)[np.arange(users) % GROUPS] + 0.01 * np.random.default_rng(3).normal(
        size=(users, GROUPS)
    )
    sources = [[f"f{u}-{k}" for k in range(6)] for u in range(users)]
    targets = [[f"k{u}-{k}" for k in range(4)] for u in range(users)]
    return LinkedWorld(
        sources, targets, taste, "food", "kitchen", groups=GROUPS, seed=1, switch_per_domain=4
    )


def _owner(item_id: str) -> int:
    """The real user an item of the fixture names (f<u>-<k> or k<u>-<k>)."""
    return int(item_id[1:].split("-")[0])


def _owners(events: list[dict]) -> dict[str, dict[str, list[int]]]:
    """stream user -> domain -> the real users whose items they touched, in order."""
    out: dict[str, dict[str, list[int]]] = defaultdict(lambda: defaultdict(list))
    for e in events:
        out[e["user_id"]][e["domain"]].append(_owner(e["item_id"]))
    return out


def test_kmeans_finds_separated_groups() -> None:
    x = np.repeat(np.eye(3) * 10, 20, axis=0) + np.random.default_rng(0).normal(size=(60, 3))
    labels = kmeans(x, 3, seed=0)
    assert len(set(labels)) == 3
    assert all(len(set(labels[k * 20 : (k + 1) * 20])) == 1 for k in range(3))


def test_without_drift_every_user_keeps_their_real_link(world: LinkedWorld) -> None:
    s = world.stream(Scenario.NONE)
    owners = _owners(s.events)
    assert len(owners) == GROUPS * PER_GROUP  # every real user once
    for domains in owners.values():
        assert set(domains["food"]) == set(domains["kitchen"])
        assert domains["food"] == sorted(domains["food"])  # source events come first
    assert s.onset == len(s.events) and s.scored_domain == "kitchen"


def test_a_population_swap_permutes_the_link_from_the_onset(world: LinkedWorld) -> None:
    assert all(world.new_link != np.arange(GROUPS))  # a derangement
    swap, none = world.stream(Scenario.POPULATION_SWAP), world.stream(Scenario.NONE)
    assert swap.events[: swap.onset] == none.events[: swap.onset]  # same stream until drift
    first = {}
    for k, e in enumerate(swap.events):
        first.setdefault(e["user_id"], k)
    for user, domains in _owners(swap.events).items():
        (u,) = set(domains["food"])
        (donor,) = set(domains["kitchen"])
        if first[user] < swap.onset:
            assert donor == u
        else:
            assert world.group[donor] == world.new_link[world.group[u]]


def test_gradual_drift_moves_a_growing_share(world: LinkedWorld) -> None:
    s = world.stream(Scenario.GRADUAL)
    arrivals = sorted(_owners(s.events).items(), key=lambda kv: int(kv[0].split("a")[-1]))
    moved = [set(d["food"]) != set(d["kitchen"]) for _, d in arrivals]
    half = len(moved) // 2
    assert not any(moved[:half]) and all(moved[half + len(moved) // 4 + 1 :])
    assert 0 < sum(moved[half : half + len(moved) // 4]) < len(moved) // 4


def test_switching_users_take_on_another_groups_behaviour(world: LinkedWorld) -> None:
    s = world.stream(Scenario.USER_SWITCH)
    assert s.switch_at and s.scored_domain is None
    for user, at in s.switch_at.items():
        mine = [e for e in s.events if e["user_id"] == user]
        k = next(i for i, e in enumerate(mine) if e is s.events[at])
        before = {_owner(e["item_id"]) for e in mine[:k]}
        after = {_owner(e["item_id"]) for e in mine[k:]}
        (u,), (v,) = before, after
        assert world.group[u] != world.group[v]


def test_only_users_with_long_histories_switch(world: LinkedWorld) -> None:
    # every third user gets 6 kitchen events; the rest keep 4 (too few for 5 per half)
    targets = [
        [f"k{u}-{k}" for k in range(6 if u % 3 == 0 else 4)] for u in range(len(world.group))
    ]
    long = LinkedWorld(
        world.sources,
        targets,
        world.taste,
        "food",
        "kitchen",
        groups=GROUPS,
        seed=1,
        switch_per_domain=5,
    )
    s = long.stream(Scenario.USER_SWITCH)
    assert s.switch_at
    for user in {e["user_id"] for e in s.events}:
        mine = [e for e in s.events if e["user_id"] == user]
        assert len(mine) == 20  # 5 per domain, before and after the switch
        assert all(_owner(e["item_id"]) % 3 == 0 for e in mine)
