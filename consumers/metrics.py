"""Metrics of the materializer and of the live API's scoreboard (see DESIGN.md §5)."""

import datetime as dt
from collections import Counter as Tally
from collections.abc import Iterable

from prometheus_client import Counter, Gauge, Histogram

from consumers.scoreboard import AgencyStatus
from satubus.metrics import NAMESPACE, REGISTRY

ROWS_UPSERTED = Counter(
    "rows_upserted",
    "Rows written to the unified view (stale versions skipped excluded)",
    ["entity"],
    namespace=NAMESPACE,
    registry=REGISTRY,
)
ROWS_DELETED = Counter(
    "rows_deleted",
    "Rows deleted from the unified view by tombstones",
    ["entity"],
    namespace=NAMESPACE,
    registry=REGISTRY,
)
STALE_SKIPPED = Counter(
    "rows_stale_skipped",
    "Records not written because the view already holds a newer version",
    ["entity"],
    namespace=NAMESPACE,
    registry=REGISTRY,
)
BATCH_SIZE = Histogram(
    "materializer_batch_size",
    "Messages per materializer transaction",
    ["entity"],
    namespace=NAMESPACE,
    registry=REGISTRY,
    buckets=(1, 10, 50, 100, 250, 500, 1000, 2500, 5000),
)
COMMIT_SECONDS = Histogram(
    "materializer_commit_seconds",
    "Time of one materializer transaction",
    ["entity"],
    namespace=NAMESPACE,
    registry=REGISTRY,
)
END_TO_END_SECONDS = Histogram(
    "end_to_end_latency_seconds",
    "From the event's occurred_at to its row committed in PostgreSQL",
    ["entity"],
    namespace=NAMESPACE,
    registry=REGISTRY,
    buckets=(0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300),
)
FENCED = Counter(
    "materializer_fenced",
    "Transactions rolled back because another instance advanced the offsets",
    ["entity"],
    namespace=NAMESPACE,
    registry=REGISTRY,
)
CONSUMER_LAG = Gauge(
    "consumer_lag_messages",
    "Messages of the topic not yet materialized (high watermark minus position, summed over partitions)",
    ["entity"],
    namespace=NAMESPACE,
    registry=REGISTRY,
)

AGENCIES_INTEGRATED = Gauge(
    "agencies_integrated",
    "Catalogue agencies integrated: a valid event within the freshness SLA, invalid ratio under the threshold",
    namespace=NAMESPACE,
    registry=REGISTRY,
)
AGENCIES = Gauge(
    "agencies", "Catalogue agencies by scoreboard status", ["status"], namespace=NAMESPACE, registry=REGISTRY
)
AGENCY_FRESHNESS = Gauge(
    "agency_freshness_seconds",
    "Seconds since the agency's last valid event (absent for an agency never heard from)",
    ["agency"],
    namespace=NAMESPACE,
    registry=REGISTRY,
)
AGENCY_INTEGRATED = Gauge(
    "agency_integrated",
    "1 when the agency is integrated, else 0",
    ["agency"],
    namespace=NAMESPACE,
    registry=REGISTRY,
)


def record_scoreboard(statuses: Iterable[AgencyStatus], now: dt.datetime) -> None:
    by_status = Tally[str]()
    for status in statuses:
        by_status[status.status] += 1
        AGENCY_INTEGRATED.labels(status.code).set(status.status == "integrated")
        if status.last_valid_at is not None:
            AGENCY_FRESHNESS.labels(status.code).set((now - status.last_valid_at).total_seconds())
    for name in ("integrated", "stale", "silent"):
        AGENCIES.labels(name).set(by_status[name])
    AGENCIES_INTEGRATED.set(by_status["integrated"])
