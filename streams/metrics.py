"""Metrics of the stream processors (see DESIGN.md §5)."""

from prometheus_client import Counter, Gauge, Histogram

from satubus.metrics import NAMESPACE, REGISTRY

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
    "Time to decode, normalize and hand one event to the producer",
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
