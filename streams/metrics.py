"""Every Prometheus metric the worker exports, in one place.

Units are seconds; counters end in ``_total``; histograms have explicit buckets; no label ever
carries a user or item id (cardinality stays bounded by topics, stages, reasons and domains).
"""

from __future__ import annotations

from collections.abc import Iterator

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, Info
from prometheus_client.core import Metric, SummaryMetricFamily

REGISTRY = CollectorRegistry(auto_describe=True)

_FAST = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)
_SIZES = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024, 2048)

EVENTS = Counter(
    "xrec_events_total",
    "Events consumed, by topic and outcome (applied, duplicate, deadletter, upserted, deleted)",
    ["topic", "outcome"],
    registry=REGISTRY,
)
DEAD_LETTERS = Counter(
    "xrec_dead_letters_total",
    "Events sent to the dead-letter topic, by source topic and reason",
    ["topic", "reason"],
    registry=REGISTRY,
)
BATCH_SIZE = Histogram(
    "xrec_batch_events",
    "Events per micro-batch taken from a topic",
    ["topic"],
    buckets=_SIZES,
    registry=REGISTRY,
)
STAGE_SECONDS = Histogram(
    "xrec_stage_seconds",
    "Time spent per micro-batch in each pipeline stage",
    ["stage"],
    buckets=_FAST,
    registry=REGISTRY,
)
PUBLISH_ACK_SECONDS = Histogram(
    "xrec_publish_ack_seconds",
    "From a behaviour batch handed over for publishing until the broker acknowledged every "
    "record it produced (its events may be committed from then on)",
    buckets=_FAST,
    registry=REGISTRY,
)
PUBLISH_PENDING_SECONDS = Gauge(
    "xrec_publish_pending_seconds",
    "Age of the oldest behaviour batch on its way to the broker, from its first send until all "
    "of it is acknowledged (0: none); xrec_publish_ack_seconds sees a batch only once "
    "acknowledged, this one while it waits",
    registry=REGISTRY,
)
EVENT_TO_RECOMMENDATION_SECONDS = Histogram(
    "xrec_event_to_recommendation_seconds",
    "From the behaviour event's broker timestamp to its recommendation being sent",
    buckets=_FAST,
    registry=REGISTRY,
)
RECOMMENDATIONS = Counter(
    "xrec_recommendations_total",
    "Recommendation events published, by strategy",
    ["strategy"],
    registry=REGISTRY,
)
STATE_TRIMMED = Counter(
    "xrec_user_state_trimmed_total",
    "User states whose oldest recent items were dropped to fit the changelog's record size",
    registry=REGISTRY,
)
RECOMMENDATION_LIST_COSINE = Histogram(
    "xrec_recommendation_list_cosine",
    "Mean cosine between the items of a published list (1 = all alike); observed only with "
    "the diversity step on (WORKER_DIVERSITY > 0), which fetches the items' vectors",
    buckets=(0.0, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0),
    registry=REGISTRY,
)
RECOMMENDATION_EMPTY = Counter(
    "xrec_recommendations_empty_total",
    "Target-domain recommendations skipped because the user had no usable interest",
    registry=REGISTRY,
)
RECOMMENDATION_SHORT_TERM = Counter(
    "xrec_recommendations_short_term_total",
    "Recommendations whose list holds items of the user's short-term interest's own query (a "
    "second store query each; where the learned short-term weight is above zero)",
    registry=REGISTRY,
)
ENCODER_TEXTS = Counter(
    "xrec_encoder_texts_total",
    "Texts encoded by the text encoder",
    ["source"],
    registry=REGISTRY,
)
ENCODER_BATCH = Histogram(
    "xrec_encoder_batch_texts",
    "Texts per encoder call",
    buckets=_SIZES,
    registry=REGISTRY,
)
ENCODER_SECONDS = Histogram(
    "xrec_encoder_seconds",
    "Wall time of one encoder call (tokenisation included)",
    buckets=_FAST,
    registry=REGISTRY,
)
ENCODER_DEVICE = Gauge(
    "xrec_encoder_device_info",
    "1 for the execution provider the encoder really runs on",
    ["provider"],
    registry=REGISTRY,
)
STORE_SECONDS = Histogram(
    "xrec_store_seconds",
    "Vector-store call latency by operation",
    ["operation"],
    buckets=_FAST,
    registry=REGISTRY,
)
STORE_ERRORS = Counter(
    "xrec_store_errors_total",
    "Failed vector-store calls (each is retried with backoff)",
    ["operation"],
    registry=REGISTRY,
)
STORE_AVAILABLE = Gauge(
    "xrec_store_available",
    "1 while the vector store answers, 0 while the worker backs off",
    registry=REGISTRY,
)
USERS_IN_STATE = Gauge(
    "xrec_users_in_state",
    "Users held in this worker's state table",
    registry=REGISTRY,
)
MODEL = Info("xrec_model", "The model serving recommendations", registry=REGISTRY)
DRIFT_DETECTIONS = Counter(
    "xrec_drift_detections_total",
    "Drift detections: population (the cross-domain projection) or user (a user's interest)",
    ["level"],
    registry=REGISTRY,
)
for _level in ("population", "user"):
    DRIFT_DETECTIONS.labels(_level)  # both series exist from the start (alerts read them)
CATALOGUE_LAG = Gauge(
    "xrec_catalogue_lag_records",
    "Catalogue records not yet in this worker's own store (stores inside the worker read the "
    "whole catalogue topic outside the consumer group; 0 with a Qdrant server)",
    registry=REGISTRY,
)
SHORT_TERM_WEIGHT = Gauge(
    "xrec_short_term_weight",
    "Weight queries give a domain's short-term interest against the long-term one (with a "
    "bundle: learned online from the stream, fitted 0; in the text space: fixed)",
    ["domain"],
    registry=REGISTRY,
)
PROJECTION_UPDATES = Counter(
    "xrec_projection_updates_total",
    "Pairs folded into the online cross-domain projections",
    registry=REGISTRY,
)


class GcPauses:
    """Count and time of the cyclic collector's runs by generation, as ``xrec_gc_pause_seconds``.

    Not a prometheus_client Histogram: the collector runs inside whatever allocation triggered
    it, possibly one made while a metric's (non-reentrant) lock is held by a scrape on the same
    thread, and a callback taking that lock would deadlock. The callback only adds to plain
    numbers here; this collector reads them at scrape time.
    """

    name = "xrec_gc_pause_seconds"
    help = "Runs of Python's cyclic garbage collector and time in them, by generation (2 = full)"

    def __init__(self) -> None:
        self.count = [0, 0, 0]
        self.seconds = [0.0, 0.0, 0.0]

    def add(self, generation: int, seconds: float) -> None:
        """Account one collection (called from the gc callback: no locks, no metric calls)."""
        self.count[generation] += 1
        self.seconds[generation] += seconds

    def _family(self) -> SummaryMetricFamily:
        return SummaryMetricFamily(self.name, self.help, labels=["generation"])

    def describe(self) -> Iterator[Metric]:
        yield self._family()

    def collect(self) -> Iterator[Metric]:
        family = self._family()
        for generation in range(3):
            family.add_metric([str(generation)], self.count[generation], self.seconds[generation])
        yield family


GC_PAUSES = GcPauses()
REGISTRY.register(GC_PAUSES)
GC_FROZEN_OBJECTS = Gauge(
    "xrec_gc_frozen_objects",
    "Objects excluded from garbage collection by gc.freeze (WORKER_GC_FREEZE)",
    registry=REGISTRY,
)
