"""Online projections count each user once, with their latest pair, however many events they
send (a bundle fitted on planted topics; a -> b maps topic t to topic t)."""

from __future__ import annotations

import numpy as np

from inference.bundle_model import BundleModel
from inference.interest import InterestParams, UserState, apply_event
from inference.interest_codec import dumps, loads
from inference.online_projection import MIN_PAIRS, RELIABLE_EVENTS
from tests.inference.test_bundle_model import planted


def _send(model: BundleModel, st: UserState, items: list[tuple[str, int]], ids, start: int):
    params = model.interest_params(InterestParams())
    for n, (domain, row) in enumerate(items, start):
        apply_event(
            st,
            event_id=f"e{n}",
            domain=domain,
            action="purchase",
            event_time=1e9 + n,
            vector=model.bundle.inputs[row],
            item_id=ids[row],
            rating=None,
            params=params,
            partition=0,
            offset=n,
        )
        model.learn(st, domain, 0, n)
    return start + len(items)


def _rows(ids: list[str], prefix: str) -> list[int]:
    return [k for k, i in enumerate(ids) if i.startswith(prefix)]


def test_one_user_however_active_counts_once() -> None:
    bundle, ids, *_ = planted()
    model = BundleModel(bundle)
    st = UserState()
    a0, b1 = _rows(ids, "a0-"), _rows(ids, "b1-")
    # a contrarian: topic 0 in a, topic 1 in b, and a thousand events in b
    n = _send(model, st, [("a", a0[k]) for k in range(3)], ids, 0)
    n = _send(model, st, [("b", b1[k % len(b1)]) for k in range(1000)], ids, n)
    stats = model.online.parts[0].stats
    assert stats["a->b"].weight <= 1.0 + 1e-6  # one pair, not a thousand
    assert stats["a->b"].weight < MIN_PAIRS
    np.testing.assert_array_equal(model.online.projection("a", "b"), bundle.projection("a", "b"))
    # what is left in the statistics is the user's latest pair alone, weighted by how many
    # events its means rest on (the fewer of the two: 3 in a)
    z, m = st.domains["a"].mean()[:4], st.domains["b"].mean()[:4]
    w = stats["a->b"].weight * 3 / (3 + RELIABLE_EVENTS)
    np.testing.assert_allclose(stats["a->b"].gram, w * np.outer(z, z), atol=1e-6)
    np.testing.assert_allclose(stats["a->b"].cross, w * np.outer(z, m), atol=1e-6)
    # and it survives a restart of the user's state: the next fold still takes it out
    st = loads(dumps(st))
    _send(model, st, [("b", b1[0])], ids, n)
    assert model.online.parts[0].stats["a->b"].weight <= 1.0 + 1e-6


def test_many_users_take_over_from_the_bundle() -> None:
    bundle, ids, *_ = planted()
    model = BundleModel(bundle)
    n = 0
    for u in range(40):  # forty users who agree with the bundle, ten events each
        t = u % 4
        a, b = _rows(ids, f"a{t}-"), _rows(ids, f"b{t}-")
        n = _send(
            model, UserState(), [("a", a[k]) if k % 2 else ("b", b[k]) for k in range(10)], ids, n
        )
    weight = model.online.parts[0].stats["a->b"].weight
    assert MIN_PAIRS <= weight <= 40
    online = model.online.projection("a", "b")
    assert not np.array_equal(online, bundle.projection("a", "b"))  # the stream's now
    rel = np.linalg.norm(online - bundle.projection("a", "b")) / np.linalg.norm(
        bundle.projection("a", "b")
    )
    assert rel < 0.5  # and close to the bundle's, which these users agree with


def test_a_replay_whose_folds_were_kept_leaves_one_pair_per_user() -> None:
    """After a crash between the two changelogs the statistics hold folds the user's stored
    state does not know of; the replay skips the folds, and the user still counts once."""
    bundle, ids, *_ = planted()
    model = BundleModel(bundle)
    a0, b0 = _rows(ids, "a0-"), _rows(ids, "b0-")
    st = UserState()
    n = _send(model, st, [("a", a0[0]), ("b", b0[0])], ids, 0)
    stored = dumps(st)  # the user's last record that reached the changelog
    n = _send(model, st, [("b", b0[k]) for k in range(1, 6)], ids, n)  # folded, state lost
    st = loads(stored)
    _send(model, st, [("b", b0[k]) for k in range(1, 6)], ids, 2)  # the replay: folds skipped
    _send(model, st, [("b", b0[k]) for k in range(6, 9)], ids, n)  # and on
    stats = model.online.parts[0].stats["a->b"]
    # the replayed pairs were folded at ages the replay does not know: taken out a little
    # less than fully (never more, so the statistics stay a sum of pairs)
    assert 1.0 <= stats.weight <= 1.01
    assert np.linalg.eigvalsh(stats.gram).min() >= -1e-12
    z, m = st.domains["a"].mean()[:4], st.domains["b"].mean()[:4]
    pair = np.outer(z, m) / (1 + RELIABLE_EVENTS)  # its means rest on 1 event in a
    np.testing.assert_allclose(stats.cross, pair, atol=0.01 * np.abs(pair).max())


def test_a_pair_folded_into_statistics_since_started_afresh_is_not_taken_out() -> None:
    """Statistics restored as another bundle's start afresh (a new epoch): a user's pair
    folded into the earlier ones is not retracted from the new ones."""
    from inference.online_projection import PartitionStats

    bundle, ids, *_ = planted()
    model = BundleModel(bundle)
    a0, b0, a1, b1 = (_rows(ids, p) for p in ("a0-", "b0-", "a1-", "b1-"))
    user = UserState()
    n = _send(model, user, [("a", a0[0]), ("b", b0[0])], ids, 0)
    model.online.forget({0})
    model.online.restore(0, PartitionStats(offset=n - 1, space="bundle@other").dumps())
    for _ in range(12):  # other users, until the new statistics are older than the user's fold
        n = _send(model, UserState(), [("a", a1[0]), ("b", b1[0])], ids, n)
    before = model.online.parts[0].stats["a->b"].weight
    _send(model, loads(dumps(user)), [("b", b0[1])], ids, n)
    after = model.online.parts[0].stats["a->b"]
    assert after.weight > before  # the user's pair added, nothing taken out
    assert np.linalg.eigvalsh(after.gram).min() >= -1e-12


def test_a_pair_on_few_events_weighs_less() -> None:
    """A user's pair weighs n / (n + RELIABLE_EVENTS), n the fewer events behind its means."""
    bundle, ids, *_ = planted()
    model = BundleModel(bundle)
    a0, b0 = _rows(ids, "a0-"), _rows(ids, "b0-")
    st = UserState()
    n = _send(model, st, [("a", a0[0]), ("b", b0[0])], ids, 0)
    once = model.online.parts[0].stats["a->b"]
    z, m = st.domains["a"].mean()[:4], st.domains["b"].mean()[:4]
    np.testing.assert_allclose(once.cross, np.outer(z, m) / (1 + RELIABLE_EVENTS), atol=1e-7)
    _send(model, st, [("a", a0[k]) for k in range(1, 6)] + [("b", b0[1])], ids, n)
    z, m = st.domains["a"].mean()[:4], st.domains["b"].mean()[:4]
    twice = model.online.parts[0].stats["a->b"]  # now 6 events in a, 2 in b: n = 2
    np.testing.assert_allclose(
        twice.cross, twice.weight * np.outer(z, m) * 2 / (2 + RELIABLE_EVENTS), atol=1e-6
    )
    assert 0.99 < twice.weight <= 1.0  # still one pair
