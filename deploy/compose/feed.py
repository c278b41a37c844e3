"""Synthetic load for the compose stack: the catalogue once, then behaviour events forever.

Runs in the worker image (``docker compose --profile demo up -d feed``), so it uses the same
settings (KAFKA_*) and the same synthetic world as the demo. Behaviour events start once the
workers report the catalogue indexed (summed over every replica behind FEED_WORKERS_HOST), as
events naming an unknown item are dead-lettered. FEED_RATE events per second; FEED_BAD_SHARE of
them are malformed on purpose so the dead-letter panels show something.
"""

from __future__ import annotations

import asyncio
import json
import os
import random
import socket
import time
import urllib.request
import uuid

from aiokafka import AIOKafkaProducer

from streams.settings import KafkaSettings
from synth.generator import SyntheticWorld

RATE = float(os.environ.get("FEED_RATE", "50"))
BAD_SHARE = float(os.environ.get("FEED_BAD_SHARE", "0.01"))
WORKERS_HOST = os.environ.get("FEED_WORKERS_HOST", "worker")
WORKERS_PORT = int(os.environ.get("FEED_WORKERS_PORT", "6066"))
CATALOGUE_WAIT_S = float(os.environ.get("FEED_CATALOGUE_WAIT_S", "300"))


def items_indexed() -> float:
    """Catalogue events upserted, summed over every worker replica the host name resolves to."""
    total = 0.0
    addresses = {a[4][0] for a in socket.getaddrinfo(WORKERS_HOST, WORKERS_PORT, socket.AF_INET)}
    for address in addresses:
        try:
            url = f"http://{address}:{WORKERS_PORT}/metrics"
            with urllib.request.urlopen(url, timeout=2) as r:
                lines = r.read().decode().splitlines()
        except OSError:
            continue  # a replica still starting
        total += sum(
            float(line.rsplit(" ", 1)[1])
            for line in lines
            if line.startswith("xrec_events_total{") and 'outcome="upserted"' in line
        )
    return total


async def wait_for_catalogue(n_items: int) -> None:
    deadline = time.monotonic() + CATALOGUE_WAIT_S
    while time.monotonic() < deadline:
        try:
            if items_indexed() >= n_items:
                return
        except OSError:
            pass  # no worker resolvable yet
        await asyncio.sleep(2)
    print(f"catalogue not reported indexed after {CATALOGUE_WAIT_S:.0f}s; feeding anyway")


async def main() -> None:
    kafka = KafkaSettings()
    world = SyntheticWorld(users=500)
    producer = AIOKafkaProducer(**kafka.aiokafka_kwargs(), linger_ms=5, acks="all")
    await producer.start()
    try:
        for item in world.catalogue():
            await producer.send(
                kafka.catalogue_topic, json.dumps(item).encode(), key=item["item_id"].encode()
            )
        await producer.flush()
        print(f"catalogue: {len(world.items)} items sent", flush=True)
        await wait_for_catalogue(len(world.items))
        print("catalogue indexed; feeding behaviour events", flush=True)
        run, seq, rng = uuid.uuid4().hex[:8], 0, random.Random()
        while True:
            start = time.monotonic()
            for event in world.events(per_user=1, start_time=time.time()):
                seq += 1
                # Event ids must be unique: the worker drops a repeated id as a duplicate.
                event["event_id"] = f"feed-{run}-{seq}"
                event["event_time"] = time.time()
                value = json.dumps(event).encode()
                if rng.random() < BAD_SHARE:
                    value = value[: len(value) // 2]  # truncated JSON: unparseable
                await producer.send(kafka.behaviour_topic, value, key=event["user_id"].encode())
                if seq % max(1, int(RATE)) == 0:
                    await producer.flush()
                    await asyncio.sleep(max(0.0, 1.0 - (time.monotonic() - start)))
                    start = time.monotonic()
    finally:
        await producer.stop()


if __name__ == "__main__":
    asyncio.run(main())
