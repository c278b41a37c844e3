"""Synthetic catalogue and behaviour with clear topical structure, for the demo, tests and load.

Every item belongs to one topic and one domain, and its title is written from that topic's
vocabulary, so a text encoder places same-topic items together across domains. Every user has
one or two favourite topics and is active in one or more domains; most of what they touch is
on-topic. Everything is seeded, so a run is reproducible.
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from dataclasses import dataclass

TOPICS: dict[str, list[str]] = {
    "coffee": ["espresso", "coffee beans", "latte", "arabica roast", "cold brew", "barista"],
    "hiking": ["hiking trail", "mountain trek", "backpacking", "alpine summit", "trail map"],
    "astronomy": ["telescope", "galaxies", "night sky", "planets", "star charts", "nebula"],
    "gardening": ["garden roses", "vegetable garden", "compost", "seedlings", "pruning shears"],
    "jazz": ["jazz saxophone", "bebop", "swing band", "jazz trumpet", "blue note improvisation"],
    "baking": ["sourdough bread", "pastry", "cake baking", "croissants", "bread flour"],
    "photography": ["camera lens", "portrait photography", "film camera", "tripod", "darkroom"],
    "cycling": ["road bike", "cycling jersey", "mountain biking", "bike helmet", "bicycle repair"],
}
DOMAINS: dict[str, list[str]] = {
    "books": [
        "The Complete Guide to {w}",
        "A History of {w}",
        "{w}: A Beginner's Handbook",
        "Essays on {w}",
        "The Art of {w}",
    ],
    "video": ["{w} documentary", "Learn {w} video course", "{w}: the film", "Masterclass in {w}"],
    "gear": [
        "Premium {w} kit",
        "{w} starter set",
        "Professional {w} accessory",
        "Compact {w} tool",
    ],
}


@dataclass(frozen=True)
class SynthItem:
    item_id: str
    domain: str
    topic: str
    title: str

    def catalogue_event(self) -> dict:
        return {
            "item_id": self.item_id,
            "domain": self.domain,
            "title": self.title,
            "category": self.topic,
        }


@dataclass(frozen=True)
class SynthUser:
    user_id: str
    topics: tuple[str, ...]
    domains: tuple[str, ...]


class SyntheticWorld:
    """A seeded catalogue and population; :meth:`events` yields behaviour events."""

    def __init__(
        self,
        *,
        items_per_topic_domain: int = 6,
        users: int = 50,
        seed: int = 7,
        topics: list[str] | None = None,
        domains: list[str] | None = None,
    ) -> None:
        self.rng = random.Random(seed)
        self.topics = topics or list(TOPICS)
        self.domains = domains or list(DOMAINS)
        self.items: list[SynthItem] = []
        for d in self.domains:
            for t in self.topics:
                for i in range(items_per_topic_domain):
                    tmpl = DOMAINS[d][i % len(DOMAINS[d])]
                    word = TOPICS[t][(i // len(DOMAINS[d]) + i) % len(TOPICS[t])]
                    title = tmpl.format(w=word) + f" ({t} #{i + 1})"
                    self.items.append(SynthItem(f"{d}-{t}-{i}", d, t, title))
        self.by_topic_domain: dict[tuple[str, str], list[SynthItem]] = {}
        for it in self.items:
            self.by_topic_domain.setdefault((it.topic, it.domain), []).append(it)
        self.users = [self._user(i) for i in range(users)]

    def _user(self, i: int) -> SynthUser:
        n_topics = 1 if self.rng.random() < 0.6 else 2
        n_domains = self.rng.choice([1, 2, 2, 3]) if len(self.domains) > 1 else 1
        return SynthUser(
            f"user-{i}",
            tuple(self.rng.sample(self.topics, n_topics)),
            tuple(self.rng.sample(self.domains, min(n_domains, len(self.domains)))),
        )

    def catalogue(self) -> list[dict]:
        """One catalogue event per item."""
        return [it.catalogue_event() for it in self.items]

    def pick(self, user: SynthUser, domain: str, on_topic: float = 0.9) -> SynthItem:
        """An item for ``user`` in ``domain``: on one of their topics with prob ``on_topic``."""
        topic = (
            self.rng.choice(user.topics)
            if self.rng.random() < on_topic
            else self.rng.choice(self.topics)
        )
        return self.rng.choice(self.by_topic_domain[(topic, domain)])

    def events(
        self,
        per_user: int = 6,
        start_time: float = 1.7e9,
        actions: tuple[str, ...] = ("view", "click", "purchase"),
    ) -> Iterator[dict]:
        """Behaviour events, users interleaved, each user's events in time order."""
        t = start_time
        queues = {u.user_id: per_user for u in self.users}
        seq = 0
        while queues:
            uid = self.rng.choice(sorted(queues))
            user = self.users[int(uid.split("-")[1])]
            domain = self.rng.choice(user.domains)
            item = self.pick(user, domain)
            seq += 1
            t += self.rng.uniform(0.5, 5.0)
            yield {
                "event_id": f"ev-{seq}",
                "user_id": uid,
                "domain": domain,
                "action": self.rng.choice(actions),
                "item_id": item.item_id,
                "event_time": t,
            }
            queues[uid] -= 1
            if not queues[uid]:
                del queues[uid]
