"""Every dashboard and alert query names metrics, and labels, that a running worker exports.

The truth is the /metrics text of a real ``xrec worker`` (real broker, ONNX encoder, embedded
Qdrant) after it has processed catalogue, behaviour, search and malformed events.
"""

from __future__ import annotations

import re

import pytest

from streams.processes import scrape
from tests.deploy.files import (
    alert_queries,
    dashboard_queries,
    family,
    grouping_labels,
    metric_names,
    selector_labels,
)
from tests.deploy.worker_metrics import exposition, fed_worker

pytestmark = [pytest.mark.broker, pytest.mark.model, pytest.mark.slow]

# Exported (declared in /metrics) but with samples only once a store call has failed; its labels
# as streams/metrics.py declares them.
SAMPLES_ONLY_AFTER_FAILURES = {"xrec_store_errors_total": {"operation"}}
# Not the worker's: kafka-exporter's consumer-group lag, with that exporter's labels.
FROM_KAFKA_EXPORTER = {"kafka_consumergroup_lag": {"consumergroup", "topic", "partition"}}
# Added by the scrape (job, instance) and the scrape configuration (accelerator).
TARGET_LABELS = {"job", "instance", "accelerator"}


def test_every_query_names_an_exported_metric_with_its_labels(make_worker) -> None:
    w = fed_worker(make_worker)
    text = scrape(w.web_port)
    declared, samples = exposition(text)
    # read at scrape time from the users table: the six users fed
    assert re.search(r"^xrec_users_in_state 6\.0$", text, re.MULTILINE), "users in state"
    assert "xrec_events_total" in declared, "the worker exports no xrec metrics?"

    labels_of: dict[str, set[str]] = {**FROM_KAFKA_EXPORTER, "up": set()}
    for name, labels in samples.items():
        labels_of.setdefault(family(name), set()).update(labels)
        labels_of.setdefault(name, set()).update(labels)
    for name, labels in SAMPLES_ONLY_AFTER_FAILURES.items():
        labels_of.setdefault(name, set()).update(labels)

    queries = dashboard_queries() + alert_queries()
    assert len(queries) > 20
    problems = []
    for where, expr in queries:
        for name in metric_names(expr):
            fam = family(name)
            if name not in declared and fam not in declared:
                problems.append(f"{where}: {name} is not exported by the worker")
            elif name not in samples and name not in SAMPLES_ONLY_AFTER_FAILURES:
                problems.append(f"{where}: {name} is declared but has no samples")
        for other in set(re.findall(r"\bkafka_[a-z0-9_]+", expr)) - set(FROM_KAFKA_EXPORTER):
            problems.append(f"{where}: {other} comes from no known exporter")
        referenced: set[str] = {"le"} | TARGET_LABELS
        for name, labels in selector_labels(expr):
            known = labels_of.get(name, set()) | TARGET_LABELS
            referenced |= labels_of.get(name, set())
            if unknown := labels - known:
                problems.append(f"{where}: {name} has no label {sorted(unknown)}")
        for name in metric_names(expr):
            referenced |= labels_of.get(name, set()) | labels_of.get(family(name), set())
        if unknown := grouping_labels(expr) - referenced:
            problems.append(f"{where}: groups by {sorted(unknown)}, a label of no metric it reads")
    assert not problems, "\n".join(problems)
    assert samples["xrec_drift_detections_total"] == {"level"}  # population | user, from start
