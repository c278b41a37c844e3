"""The synthetic drift generator: the truth each stream claims is the truth in its events."""

from __future__ import annotations

from collections import Counter, defaultdict

from synth.drift import SOURCE, SWITCH_BEFORE, SWITCH_TAIL, TARGET, DriftWorld, Scenario


def _topic(item_id: str) -> int:
    return int(item_id.split("-")[1])  # "<domain>-<topic>-<k>"


def test_user_switch_users_change_topic_in_both_domains_at_their_switch() -> None:
    stream = DriftWorld(seed=3).stream(Scenario.USER_SWITCH, 600)
    by_user: dict[str, list[tuple[int, dict]]] = defaultdict(list)
    for k, e in enumerate(stream.events):
        by_user[e["user_id"]].append((k, e))
    assert set(by_user) == set(stream.switch_at) and len(by_user) == 10
    for user, seq in by_user.items():
        assert len(seq) == SWITCH_BEFORE + SWITCH_TAIL
        at = stream.switch_at[user]
        assert seq[SWITCH_BEFORE][0] == at  # the stream index of their first event after it
        for domain in (SOURCE, TARGET):
            # the dominant topic (10% of events are off topic) differs before and after
            before = Counter(
                _topic(e["item_id"]) for k, e in seq if k < at and e["domain"] == domain
            )
            after = Counter(
                _topic(e["item_id"]) for k, e in seq if k >= at and e["domain"] == domain
            )
            assert before.most_common(1)[0][0] != after.most_common(1)[0][0]
    assert stream.onset == min(stream.switch_at.values())


def test_the_no_drift_stream_has_no_switches() -> None:
    stream = DriftWorld(seed=3).stream(Scenario.NONE, 1200)
    assert not stream.switch_at and stream.onset == len(stream.events)
