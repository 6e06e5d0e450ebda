"""Metrics of the stream processors (see DESIGN.md §5)."""

import time
from collections import Counter as Tally
from collections.abc import Sequence

from prometheus_client import Counter, Gauge, Histogram

from satubus.metrics import DEAD_LETTERED, NAMESPACE, REGISTRY
from satubus.schemas.activity import Status
from satubus.schemas.dead_letters import HEADER_PREFIX
from satubus.schemas.topics import DEAD_LETTERS, unified_topic
from satubus.streams.processor import Input, Result

FINDING_TOPIC = unified_topic("finding")
STAGE_HEADER, REASON_HEADER = f"{HEADER_PREFIX}stage", f"{HEADER_PREFIX}reason"

EVENTS_IN = Counter("events_in", "Agency events read", ["agency", "dataset"], namespace=NAMESPACE, registry=REGISTRY)
EVENTS_ACCEPTED = Counter(
    "events_accepted",
    "Agency events normalized and passed on (to canonical.<entity> for joined entities, else to the unified topic)",
    ["agency", "dataset"],
    namespace=NAMESPACE,
    registry=REGISTRY,
)
PARTS_IN = Counter(
    "join_parts_in", "Canonical parts read by the joiners", ["entity"], namespace=NAMESPACE, registry=REGISTRY
)
PARTS_DROPPED = Counter(
    "join_parts_dropped",
    "Canonical parts dropped by the joiners as redeliveries (duplicate) or older than the part they hold (stale)",
    ["entity", "reason"],
    namespace=NAMESPACE,
    registry=REGISTRY,
)
FINDINGS = Counter(
    "findings",
    "Findings raised (OPEN) and resolved (RESOLVED)",
    ["kind", "status"],
    namespace=NAMESPACE,
    registry=REGISTRY,
)
EVENTS_OUT = Counter(
    "events_out",
    "Unified records written (tombstones included, findings not)",
    ["entity"],
    namespace=NAMESPACE,
    registry=REGISTRY,
)
EVENTS_INVALID = Counter(
    "events_invalid",
    "Agency events rejected and dead-lettered",
    ["agency", "dataset", "stage", "reason"],
    namespace=NAMESPACE,
    registry=REGISTRY,
)
EVENTS_DROPPED = Counter(
    "events_dropped",
    "Agency events dropped as redeliveries (duplicate), older than the key's applied version (stale), or parts of "
    "no entity (unlinked: e.g. an enrolment without NIK)",
    ["agency", "dataset", "reason"],
    namespace=NAMESPACE,
    registry=REGISTRY,
)
PROCESSING_SECONDS = Histogram(
    "stream_processing_seconds",
    "Time to process a batch and have its outputs acknowledged, per event of the batch",
    ["stage"],
    namespace=NAMESPACE,
    registry=REGISTRY,
    buckets=(0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1),
)
LAST_VALID_EVENT = Gauge(
    "agency_last_valid_event_timestamp_seconds",
    "Unix time of the last valid event per agency and dataset",
    ["agency", "dataset"],
    namespace=NAMESPACE,
    registry=REGISTRY,
)


class Meter:
    """Counts a processed batch into the metrics: one increment per label set and batch, not one per event."""

    def batch(self, stage: str, batch: Sequence[Input], result: Result, seconds: float) -> None:
        if not batch:
            return
        outcomes = Tally((o.source, o.status, o.reason, o.stage) for o in result.outcomes)
        if stage == "normalize":
            _normalized(outcomes)
        else:
            _joined(outcomes)
        out, findings, letters = Tally[str](), Tally[tuple[str, str]](), Tally[tuple[str, str]]()
        for output in result.outputs:
            if output.topic == FINDING_TOPIC and isinstance(output.value, dict):
                findings[(output.value["kind"], output.value["status"])] += 1
            elif output.topic.startswith("unified."):
                out[output.topic.split(".")[1]] += 1
            elif output.topic == DEAD_LETTERS.name:
                facts = dict(output.headers)
                letters[(facts[STAGE_HEADER].decode(), facts[REASON_HEADER].decode())] += 1
        for entity, n in out.items():
            EVENTS_OUT.labels(entity).inc(n)
        for (kind, status), n in findings.items():
            FINDINGS.labels(kind, status).inc(n)
        for (where, reason), n in letters.items():
            DEAD_LETTERED.labels(where, reason).inc(n)
        PROCESSING_SECONDS.labels(stage).observe(seconds / len(batch))


Tallied = Tally[tuple[str, Status, str | None, str | None]]


def _normalized(outcomes: Tallied) -> None:
    for (source, status, reason, stage), n in outcomes.items():
        agency, dataset = source.split(".", 1)
        EVENTS_IN.labels(agency, dataset).inc(n)
        if status == "accepted":
            EVENTS_ACCEPTED.labels(agency, dataset).inc(n)
        elif status == "dropped":
            EVENTS_DROPPED.labels(agency, dataset, reason).inc(n)
        else:
            EVENTS_INVALID.labels(agency, dataset, stage, reason).inc(n)
        if status == "accepted" or reason == "unlinked":  # valid data, even when it links to no entity
            LAST_VALID_EVENT.labels(agency, dataset).set(time.time())


def _joined(outcomes: Tallied) -> None:
    for (entity, status, reason, stage), n in outcomes.items():
        PARTS_IN.labels(entity).inc(n)
        if status == "dropped":
            PARTS_DROPPED.labels(entity, reason).inc(n)
        elif status == "invalid":
            EVENTS_INVALID.labels("bus", entity, stage, reason).inc(n)


CONFIGURATION = Gauge(
    "configuration_info",
    "The configuration (mappings, schemas, code lists, catalogue) this worker runs with: 1 for its fingerprint",
    ["fingerprint"],
    namespace=NAMESPACE,
    registry=REGISTRY,
)
CONFIGURATION_REFUSED = Counter(
    "configuration_refused",
    "New configurations that did not load and were not taken up (the log says why)",
    namespace=NAMESPACE,
    registry=REGISTRY,
)
