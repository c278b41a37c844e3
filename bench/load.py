"""The stream benchmark's load generator: a paced producer and a recommendations reader.

One asyncio loop holds an aiokafka producer (behaviour events, keyed by user id, sent in small
bursts every few milliseconds), an aiokafka consumer of the recommendations topic, and a lag
probe. Latency is timed with one monotonic clock in this process: from just before an event
is handed to the producer to the moment the first recommendation covering it is read back.
"""

from __future__ import annotations

import asyncio
import json
import os
import time
import uuid
from collections import deque
from dataclasses import dataclass, field

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

from bench.kafka_probe import LagProbe
from bench.report import cpu_seconds, percentile_ms
from bench.workload import Workload
from streams.processes import metric_sum, scrape
from streams.settings import KafkaSettings

TICK_S = 0.005  # the producer sends rate x 5 ms events per burst


@dataclass
class StepResult:
    label: str
    rate: float
    wall_s: float
    produced: int
    processed: int  # applied + duplicate + dead-lettered during the step
    applied: int
    lag_end: int | None
    backlog_end: int
    drain_s: float
    drained: bool
    latencies: list[float] = field(default_factory=list)  # every covered event, seconds
    source_latencies: list[float] = field(default_factory=list)  # source events only
    worker_cores: float = 0.0
    # runs of the worker's garbage collector and seconds in them, by generation (step deltas)
    worker_gc: dict[str, tuple[float, float]] = field(default_factory=dict)
    loadgen_cores: float = 0.0
    broker_cores: float | None = None  # the local broker's process, when this run started it
    load_avg: float = 0.0  # the machine's 1-minute load average at the end of the step

    @property
    def events_per_s(self) -> float:
        return self.applied / self.wall_s if self.wall_s else 0.0

    @property
    def p50_ms(self) -> float | None:
        return percentile_ms(self.latencies, 50)

    @property
    def p99_ms(self) -> float | None:
        return percentile_ms(self.latencies, 99)

    @property
    def kept_up(self) -> bool:
        """Drained after the step within max(3 s, 15% of the step): the backlog at the end
        was what was in flight, not a queue that grew all along."""
        return self.drained and self.drain_s <= max(3.0, 0.15 * self.wall_s)

    def extra(self) -> dict:
        return {
            "rate_produced": round(self.produced / self.wall_s, 1) if self.wall_s else 0.0,
            "kept_up": self.kept_up,
            "backlog_end": self.backlog_end,
            "drain_s": round(self.drain_s, 2),
            "events_with_latency": len(self.latencies),
            "source_events": len(self.source_latencies),
            "source_p50_ms": percentile_ms(self.source_latencies, 50),
            "source_p99_ms": percentile_ms(self.source_latencies, 99),
            "max_ms": percentile_ms(self.latencies, 100),
            "worker_cores_busy": round(self.worker_cores, 3),
            # CPU per applied event and the collector's part of it: steadier than events/s on
            # a shared machine, and what the worker's own changes move
            "worker_cpu_ms_per_event": (
                round(1e3 * self.worker_cores * self.wall_s / self.applied, 3)
                if self.applied
                else None
            ),
            "worker_gc_share_of_cpu": (
                round(
                    sum(s for _, s in self.worker_gc.values()) / (self.worker_cores * self.wall_s),
                    3,
                )
                if self.worker_cores
                else None
            ),
            "worker_gc_by_generation": {
                g: {"runs": int(n), "ms_mean": round(1e3 * s / n, 2) if n else None}
                for g, (n, s) in sorted(self.worker_gc.items())
            },
            "loadgen_cores_busy": round(self.loadgen_cores, 3),
            "broker_cores_busy": (
                round(self.broker_cores, 3) if self.broker_cores is not None else None
            ),
            "load_avg_1m": self.load_avg,
        }


class LoadSession:
    """Producer, recommendation reader and lag probe around the running workers of one group.

    Counters are summed over the workers' /metrics, CPU over their processes.
    """

    def __init__(
        self,
        kafka: KafkaSettings,
        group: str,
        ports: list[int],
        worker_pids: list[int],
        workload: Workload,
        drain_timeout_s: float,
        broker_pid: int | None = None,
    ) -> None:
        self.kafka, self.group, self.ports, self.pids = kafka, group, ports, worker_pids
        self.broker_pid = broker_pid
        self.wl = workload
        self.drain_timeout_s = drain_timeout_s
        self.produced = 0
        self.sent_at: dict[str, float] = {}
        self.pending: dict[str, deque[str]] = {}  # user -> event ids not yet covered
        self.latency: dict[str, float] = {}
        self.source_latency: dict[str, float] = {}
        self.snapshot: tuple = ()

    async def start(self) -> None:
        self.producer = AIOKafkaProducer(**self.kafka.aiokafka_kwargs(), acks="all", linger_ms=1)
        self.consumer = AIOKafkaConsumer(
            self.kafka.recommendations_topic,
            **self.kafka.aiokafka_kwargs(),
            group_id=f"bench-reader-{uuid.uuid4().hex[:8]}",
            auto_offset_reset="earliest",
            enable_auto_commit=False,
            fetch_max_wait_ms=20,
        )
        self.probe = LagProbe(self.kafka, self.kafka.behaviour_topic, self.group)
        await self.producer.start()
        await self.consumer.start()
        await self.probe.start()
        self._reader = asyncio.create_task(self._read())

    async def stop(self) -> None:
        self._reader.cancel()
        await asyncio.gather(self._reader, return_exceptions=True)
        await self.probe.stop()
        await self.consumer.stop()
        await self.producer.stop()

    async def _read(self) -> None:
        while True:
            batch = await self.consumer.getmany(timeout_ms=50)
            now = time.perf_counter()
            for msgs in batch.values():
                for m in msgs:
                    rec = json.loads(m.value)
                    self._covered(rec["user_id"], rec["source_event_id"], now)

    def _covered(self, user: str, source: str, now: float) -> None:
        q = self.pending.get(user)
        if not q or source not in self.sent_at or source in self.latency:
            return  # the second domain's recommendation of the same event, or unknown
        self.source_latency[source] = now - self.sent_at[source]
        while q:
            eid = q.popleft()
            self.latency[eid] = now - self.sent_at[eid]
            if eid == source:
                break

    async def _send(self, ev: dict) -> asyncio.Future:
        eid, user = ev["event_id"], ev["user_id"]
        self.sent_at[eid] = time.perf_counter()
        self.pending.setdefault(user, deque()).append(eid)
        self.produced += 1
        return await self.producer.send(
            self.kafka.behaviour_topic, json.dumps(ev).encode(), key=user.encode()
        )

    async def scrape(self) -> str:
        """Every worker's /metrics, one after the other (sums over the text add them up)."""
        return "\n".join([await self._scrape(port) for port in self.ports])

    async def _scrape(self, port: int) -> str:
        """/metrics, retried: a worker busy in a long batch can miss a 2 s scrape timeout."""
        for _ in range(30):
            text = await asyncio.to_thread(scrape, port, 5.0)
            if text:
                return text
            await asyncio.sleep(0.5)
        raise RuntimeError(f"the worker's /metrics on port {port} did not answer")

    def workers_cpu_s(self) -> float:
        return sum(cpu_seconds(pid) for pid in self.pids)

    def broker_cpu_s(self) -> float | None:
        return cpu_seconds(self.broker_pid) if self.broker_pid is not None else None

    def _events(self, text: str, *outcomes: str) -> float:
        topic = self.kafka.behaviour_topic
        return sum(metric_sum(text, "xrec_events_total", topic=topic, outcome=o) for o in outcomes)

    def _counters(self, text: str) -> tuple[float, float, dict[str, tuple[float, float]]]:
        """Applied and processed behaviour events and the collector's (runs, seconds) by
        generation, all from one scrape."""
        gc_runs = {
            g: (
                metric_sum(text, "xrec_gc_pause_seconds_count", generation=g),
                metric_sum(text, "xrec_gc_pause_seconds_sum", generation=g),
            )
            for g in ("0", "1", "2")
        }
        return (
            self._events(text, "applied"),
            self._events(text, "applied", "duplicate", "deadletter"),
            gc_runs,
        )

    async def processed(self) -> float:
        return self._events(await self.scrape(), "applied", "duplicate", "deadletter")

    async def _drain(self, timeout_s: float | None = None) -> tuple[float, bool]:
        t0 = time.monotonic()
        while time.monotonic() - t0 < (timeout_s or self.drain_timeout_s):
            if await self.processed() >= self.produced:
                await asyncio.sleep(0.3)  # the last recommendations are on their way
                return time.monotonic() - t0, True
            await asyncio.sleep(0.1)
        return time.monotonic() - t0, False

    async def preload(self, timeout_s: float) -> dict:
        """One event per user as fast as the producer goes; time the worker's drain."""
        t0 = time.monotonic()
        futs = [await self._send(ev) for ev in self.wl.first_pass("pre")]
        await asyncio.gather(*futs)
        produced_s = time.monotonic() - t0
        _drain_s, ok = await self._drain(timeout_s)
        total = time.monotonic() - t0
        return {
            "events": len(futs),
            "produce_s": round(produced_s, 2),
            "drained": ok,
            "total_s": round(total, 2),
            "backlog_drain_events_per_s": round(len(futs) / total, 1),
            "note": "all users' first events produced at once: the worker drains a backlog "
            "at its own maximum pace (a max-throughput figure, latency not meaningful)",
        }

    async def step(
        self, rate: float, secs: float, label: str | None = None, on_end=None
    ) -> StepResult:
        """Offer ``rate`` ev/s for ``secs``; then measure lag and let the worker drain."""
        label = label or f"r{rate:g}"
        events = self.wl.random_events(label)
        ids: list[str] = []
        applied0, processed0, gc0 = self._counters(await self.scrape())
        cpu_w0, cpu_l0, cpu_b0 = self.workers_cpu_s(), time.process_time(), self.broker_cpu_s()
        futs = []
        t0 = time.perf_counter()
        while (now := time.perf_counter()) - t0 < secs:
            due = int(rate * (now - t0)) - len(ids)
            for _ in range(due):
                ev = next(events)
                ids.append(ev["event_id"])
                futs.append(await self._send(ev))
            await asyncio.sleep(TICK_S)
        wall = time.perf_counter() - t0
        worker_cores = (self.workers_cpu_s() - cpu_w0) / wall
        loadgen_cores = (time.process_time() - cpu_l0) / wall
        cpu_b1 = self.broker_cpu_s()
        broker_cores = (cpu_b1 - cpu_b0) / wall if cpu_b0 is not None and cpu_b1 else None
        applied1, processed1, gc1 = self._counters(await self.scrape())
        if on_end is not None:
            await on_end()
        lag = await self.probe.lag()
        await asyncio.gather(*futs)
        drain_s, drained = await self._drain()
        return StepResult(
            label=label,
            rate=rate,
            wall_s=wall,
            produced=len(ids),
            processed=int(processed1 - processed0),
            applied=int(applied1 - applied0),
            lag_end=lag,
            backlog_end=int(self.produced - processed1),
            drain_s=drain_s,
            drained=drained,
            latencies=[self.latency[e] for e in ids if e in self.latency],
            source_latencies=[self.source_latency[e] for e in ids if e in self.source_latency],
            worker_cores=worker_cores,
            worker_gc={g: (gc1[g][0] - gc0[g][0], gc1[g][1] - gc0[g][1]) for g in gc1},
            loadgen_cores=loadgen_cores,
            broker_cores=broker_cores,
            load_avg=round(os.getloadavg()[0], 2),
        )
