"""The scoreboard's metrics, served by the live API only (another process would export them as zeros)."""

import datetime as dt
from collections import Counter as Tally
from collections.abc import Iterable

from prometheus_client import Gauge

from satubus.consumers.scoreboard import AgencyStatus
from satubus.metrics import NAMESPACE, REGISTRY

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


def record(statuses: Iterable[AgencyStatus], now: dt.datetime) -> None:
    by_status = Tally[str]()
    for status in statuses:
        by_status[status.status] += 1
        AGENCY_INTEGRATED.labels(status.code).set(status.status == "integrated")
        if status.last_valid_at is not None:
            AGENCY_FRESHNESS.labels(status.code).set((now - status.last_valid_at).total_seconds())
    for name in ("integrated", "stale", "silent", "blocked"):
        AGENCIES.labels(name).set(by_status[name])
    AGENCIES_INTEGRATED.set(by_status["integrated"])
