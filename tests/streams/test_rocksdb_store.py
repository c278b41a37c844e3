"""The worker on Faust's RocksDB table store (what the Docker image and Kubernetes deploy use).

RocksDB keeps one database per partition and reads a key from the partition of the *current
event*; the in-memory store has no partitions, so only this store can show a read made while
another partition's event was current (every user state then looked new: counts restarted,
offsets forgotten, replays applied twice).
"""

from __future__ import annotations

import signal
import time
from collections import Counter

import pytest

from tests.streams.test_end_to_end import events_for, single_topic_world

pytest.importorskip("rocksdict", reason="rocksdb:// needs the rocksdb extra (./dev setup)")
pytestmark = [pytest.mark.broker, pytest.mark.model, pytest.mark.slow]


def test_every_users_state_is_read_back_from_its_own_partition(make_worker, tmp_path) -> None:
    world, users = single_topic_world(seed=13)
    events = events_for(world, users, per_user=9)
    sent = Counter(e["user_id"] for e in events)
    w = make_worker()
    w.extra_env = {
        "WORKER_TABLE_STORE": "rocksdb://",
        "WORKER_DATA_DIR": str(tmp_path / "d"),
        "WORKER_BATCH_SIZE": "8",  # many batches, each read while the one before is in flight
    }
    w.start()
    w.send(w.kafka.catalogue_topic, world.catalogue(), "item_id")
    w.wait_metric("xrec_events_total", len(world.items), outcome="upserted")

    def applied_once_each(until: int, timeout_s: float = 120) -> dict[str, int]:
        deadline = time.monotonic() + timeout_s
        while sum(s.events_applied for s in w.user_states().values()) < until:
            if time.monotonic() > deadline:
                break
            time.sleep(0.5)
        return {u: s.events_applied for u, s in w.user_states().items()}

    # waves: each one reads the state the one before wrote, users on every partition
    quarter = len(events) // 4
    for k in range(3):
        w.send(w.kafka.behaviour_topic, events[k * quarter : (k + 1) * quarter], "user_id")
        w.wait_metric("xrec_events_total", (k + 1) * quarter, outcome="applied", timeout_s=120)
    w.stop(signal.SIGKILL)  # and the local databases must serve a restarted worker too
    w.send(w.kafka.behaviour_topic, events[3 * quarter :], "user_id")
    w.start()
    applied = applied_once_each(len(events))
    assert applied == dict(sent), f"log: {w.log_path}"
