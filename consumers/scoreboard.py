"""The integration scoreboard of the catalogue's agencies, from what the stream processor did with their events
(``bus.agency_activity``, see consumers/activity.py).

An agency is **integrated** when a valid event of it arrived within the freshness SLA and at most the allowed share
of its events in the ratio window were invalid; **stale** when it has sent valid events, but not recently enough or
with too many invalid ones; **silent** when no valid event of it ever arrived. A valid event is one the stream
processor accepted: neither invalid nor dropped as a redelivery or as older than its key's version. An agency
the province has **blocked** (``satubus agency block``) is shown so whatever it sent, with who blocked it and why.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

from satubus.schemas.catalogue import Agency

Status = Literal["integrated", "stale", "silent", "blocked"]


@dataclass(frozen=True, slots=True)
class Rules:
    freshness: dt.timedelta = dt.timedelta(hours=1)
    max_invalid_ratio: float = 0.1
    ratio_window: dt.timedelta = dt.timedelta(hours=24)
    rate_window: dt.timedelta = dt.timedelta(minutes=5)


@dataclass(frozen=True, slots=True)
class Activity:
    """One agency's figures, all datasets together."""

    last_valid_at: dt.datetime | None
    recent_events: int  # within the rate window
    window_events: int  # within the ratio window
    window_invalid: int


@dataclass(frozen=True, slots=True)
class Block:
    blocked_at: dt.datetime
    blocked_by: str
    reason: str


@dataclass(frozen=True, slots=True)
class AgencyStatus:
    code: str
    name: str
    kind: str
    datasets: tuple[str, ...]
    status: Status
    reason: str
    last_valid_at: dt.datetime | None
    events_per_minute: float
    invalid_ratio: float | None  # None: no events in the ratio window


def assess(
    agency: Agency, activity: Activity | None, now: dt.datetime, rules: Rules, block: Block | None = None
) -> AgencyStatus:
    activity = activity or Activity(None, 0, 0, 0)
    ratio = activity.window_invalid / activity.window_events if activity.window_events else None
    status: Status
    if block is not None:
        status = "blocked"
        reason = f"blocked by {block.blocked_by} at {block.blocked_at:%Y-%m-%d %H:%M} UTC: {block.reason}"
    elif activity.last_valid_at is None:
        status = "silent"
        reason = "no valid event has arrived"
    elif (age := now - activity.last_valid_at) > rules.freshness:
        status, reason = "stale", f"last valid event {_duration(age)} ago, more than {_duration(rules.freshness)}"
    elif ratio is not None and ratio > rules.max_invalid_ratio:
        status = "stale"
        reason = f"{ratio:.0%} of events invalid in the last {_duration(rules.ratio_window)}, over the allowed"
        reason += f" {rules.max_invalid_ratio:.0%}"
    else:
        status, reason = "integrated", f"valid events within {_duration(rules.freshness)}"
    return AgencyStatus(
        code=agency.code,
        name=agency.name,
        kind=agency.kind,
        datasets=agency.datasets,
        status=status,
        reason=reason,
        last_valid_at=activity.last_valid_at,
        events_per_minute=round(activity.recent_events / (rules.rate_window.total_seconds() / 60), 2),
        invalid_ratio=None if ratio is None else round(ratio, 4),
    )


def scoreboard(
    catalogue: Sequence[Agency],
    activity: dict[str, Activity],
    now: dt.datetime,
    rules: Rules,
    blocks: dict[str, Block] | None = None,
) -> list[AgencyStatus]:
    """Every catalogue agency, integrated first, then by code."""
    order = {"integrated": 0, "stale": 1, "silent": 2, "blocked": 3}
    blocks = blocks or {}
    statuses = [assess(a, activity.get(a.code), now, rules, blocks.get(a.code)) for a in catalogue]
    return sorted(statuses, key=lambda s: (order[s.status], s.code))


_QUERY = """
SELECT agency,
       max(last_valid_at) AS last_valid_at,
       coalesce(sum(events_in) FILTER (WHERE minute >= $2), 0)::bigint AS recent_events,
       coalesce(sum(events_in) FILTER (WHERE minute >= $1), 0)::bigint AS window_events,
       coalesce(sum(invalid) FILTER (WHERE minute >= $1), 0)::bigint AS window_invalid
FROM bus.agency_activity
GROUP BY agency
"""


async def load_activity(conn: Any, now: dt.datetime, rules: Rules) -> dict[str, Activity]:
    rows = await conn.fetch(_QUERY, now - rules.ratio_window, now - rules.rate_window)
    return {
        r["agency"]: Activity(r["last_valid_at"], r["recent_events"], r["window_events"], r["window_invalid"])
        for r in rows
    }


async def load_blocks(conn: Any) -> dict[str, Block]:
    rows = await conn.fetch("SELECT agency, blocked_at, blocked_by, reason FROM bus.agency_blocks")
    return {r["agency"]: Block(r["blocked_at"], r["blocked_by"], r["reason"]) for r in rows}


def _duration(delta: dt.timedelta) -> str:
    seconds = int(delta.total_seconds())
    if seconds < 120:
        return f"{seconds} s"
    if seconds < 7200:
        return f"{seconds // 60} min"
    return f"{seconds // 3600} h"
