"""A real worker with samples in every metric family a dashboard or alert reads.

Shared by the exported-metrics test and the Prometheus test: a tiny synthetic catalogue, a few
behaviour events, a search (so the encoder runs on the behaviour path) and one malformed event
(so the dead-letter counter has a sample with its labels).
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable

from synth.generator import SyntheticWorld
from tests.fixtures.worker import WorkerHandle

_SAMPLE = re.compile(r"^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? \S+$")
_LABEL = re.compile(r'(\w+)="')


def fed_worker(make_worker: Callable[..., WorkerHandle]) -> WorkerHandle:
    world = SyntheticWorld(items_per_topic_domain=2, users=6, seed=11)
    events = list(world.events(per_user=3, start_time=time.time() - 600))
    search = {
        **events[0],
        "event_id": "search-1",
        "action": "search",
        "item_id": None,
        "text": "espresso and cold brew",
    }
    w = make_worker()
    w.start()
    w.send(w.kafka.catalogue_topic, world.catalogue(), "item_id")
    w.wait_metric("xrec_events_total", len(world.items), outcome="upserted")
    w.send(w.kafka.behaviour_topic, [*events, search, b"{not json"], "user_id")
    w.wait_metric("xrec_events_total", len(events) + 1, outcome="applied")
    w.wait_metric("xrec_dead_letters_total", 1)
    w.wait_metric("xrec_recommendations_total", 1)
    return w


def exposition(text: str) -> tuple[set[str], dict[str, set[str]]]:
    """(names declared by # TYPE lines, sample name -> label names seen on its samples)."""
    declared: set[str] = set()
    samples: dict[str, set[str]] = {}
    for line in text.splitlines():
        if line.startswith("# TYPE "):
            declared.add(line.split()[2])
        elif m := _SAMPLE.match(line):
            samples.setdefault(m.group(1), set()).update(_LABEL.findall(m.group(2) or ""))
    return declared, samples
