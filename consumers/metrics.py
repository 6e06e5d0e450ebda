"""Metrics of the materializer (see DESIGN.md §5)."""

from prometheus_client import Counter, Gauge, Histogram

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
