"""What the stream benchmark feeds the worker: a catalogue, a user population and their events.

The Amazon Food/Kitchen dataset (``../shared/datasets/amazon-food-kitchen``) gives 36k real item
titles in two domains and real user sequences; each benchmark event is the next item of a
randomly chosen user's sequence (cycling), so a user's events stay in their domains. Without the
dataset, :class:`synth.generator.SyntheticWorld` is scaled up to the requested item count.
"""

from __future__ import annotations

import csv
import os
import random
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

DEFAULT_DATA_DIR = Path(
    os.environ.get(
        "XREC_DATA_DIR",
        Path(__file__).resolve().parents[1].parent / "shared" / "datasets" / "amazon-food-kitchen",
    )
)

ACTIONS = ("view", "click", "purchase")
ACTION_WEIGHTS = (0.6, 0.3, 0.1)


@dataclass
class Workload:
    """A catalogue (as catalogue events) and users with their item sequences."""

    source: str
    catalogue: list[dict]
    # user id -> [(item_id, domain)], in time order
    sequences: dict[str, list[tuple[str, str]]]
    seed: int = 7
    _pos: dict[str, int] = field(default_factory=dict)
    _seq: int = 0

    def __post_init__(self) -> None:
        self.rng = random.Random(self.seed)
        self.users = sorted(self.sequences)
        self.t0 = 1.7e9

    @property
    def n_items(self) -> int:
        return len(self.catalogue)

    def _event(self, user: str, prefix: str) -> dict:
        seq = self.sequences[user]
        i = self._pos.get(user, 0)
        self._pos[user] = i + 1
        item_id, domain = seq[i % len(seq)]
        self._seq += 1
        self.t0 += 0.01
        return {
            "event_id": f"{prefix}-{self._seq}",
            "user_id": user,
            "domain": domain,
            "action": self.rng.choices(ACTIONS, ACTION_WEIGHTS)[0],
            "item_id": item_id,
            "event_time": self.t0,
        }

    def first_pass(self, prefix: str = "pre") -> Iterator[dict]:
        """One event per user (the preload that puts every user in state)."""
        for user in self.users:
            yield self._event(user, prefix)

    def random_events(self, prefix: str) -> Iterator[dict]:
        """An endless stream: a uniformly random user's next item each time."""
        users, choice = self.users, self.rng.choice
        while True:
            yield self._event(choice(users), prefix)


def _read_tsv(path: Path) -> Iterator[dict[str, str]]:
    csv.field_size_limit(sys.maxsize)
    with path.open(newline="", encoding="utf-8") as f:
        yield from csv.DictReader(f, delimiter="\t", quoting=csv.QUOTE_NONE)


def dataset_workload(data_dir: Path, users: int, seed: int = 7) -> Workload:
    """The Food/Kitchen catalogue and the first ``users`` (seeded shuffle) training users."""
    catalogue, domain_of = [], {}
    for row in _read_tsv(data_dir / "items.tsv"):
        domain_of[row["item_id"]] = row["domain"]
        catalogue.append(
            {"item_id": row["item_id"], "domain": row["domain"], "title": row["title"]}
        )
    rows = list(_read_tsv(data_dir / "train.tsv"))
    random.Random(seed).shuffle(rows)
    sequences = {}
    for row in rows[:users]:
        items = [i for i in row["item_ids"].split(",") if i in domain_of]
        if items:
            sequences[row["user_id"]] = [(i, domain_of[i]) for i in items]
    return Workload("amazon-food-kitchen", catalogue, sequences, seed)


def synthetic_workload(items: int, users: int, seed: int = 7) -> Workload:
    """A :class:`SyntheticWorld` with at least ``items`` items and ``users`` users."""
    from synth.generator import DOMAINS, TOPICS, SyntheticWorld

    per = max(1, -(-items // (len(DOMAINS) * len(TOPICS))))
    world = SyntheticWorld(items_per_topic_domain=per, users=users, seed=seed)
    sequences = {}
    for u in world.users:
        sequences[u.user_id] = [
            (it.item_id, it.domain)
            for it in (world.pick(u, world.rng.choice(u.domains)) for _ in range(20))
        ]
    return Workload("synthetic", world.catalogue(), sequences, seed)


def load_workload(
    source: str, *, data_dir: Path | None, min_items: int, users: int, seed: int = 7
) -> Workload:
    """``source``: "dataset", "synthetic", or "auto" (the dataset when present, else synthetic)."""
    data_dir = data_dir or DEFAULT_DATA_DIR
    present = (data_dir / "items.tsv").is_file() and (data_dir / "train.tsv").is_file()
    if source == "dataset" or (source == "auto" and present):
        wl = dataset_workload(data_dir, users, seed)
        if wl.n_items < min_items:
            raise ValueError(f"{data_dir} has {wl.n_items} items < the {min_items} asked for")
        return wl
    return synthetic_workload(min_items, users, seed)
