"""bus.activity -> bus.agency_activity: each processed batch's counts, added up per agency dataset and minute."""

from __future__ import annotations

import datetime as dt
from collections import defaultdict
from typing import Any

COUNTS = ("events_in", "accepted", "invalid", "dropped")

_ADD = """
INSERT INTO bus.agency_activity AS a (agency, dataset, minute, events_in, accepted, invalid, dropped, last_valid_at)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8)
ON CONFLICT (agency, dataset, minute) DO UPDATE SET
    events_in = a.events_in + EXCLUDED.events_in,
    accepted = a.accepted + EXCLUDED.accepted,
    invalid = a.invalid + EXCLUDED.invalid,
    dropped = a.dropped + EXCLUDED.dropped,
    last_valid_at = GREATEST(a.last_valid_at, EXCLUDED.last_valid_at)
"""


def per_minute(records: list[dict[str, Any]]) -> list[tuple[Any, ...]]:
    """The batches' counts summed per (agency, dataset, minute), with the time of the last batch in each that had a
    valid event: an accepted one. Events dropped as redeliveries or as older than what their key holds are not
    activity: an agency whose events are only redelivered must not stay integrated."""
    sums: dict[tuple[str, str, dt.datetime], list[int]] = defaultdict(lambda: [0] * len(COUNTS))
    last_valid: dict[tuple[str, str, dt.datetime], dt.datetime] = {}
    for record in records:
        at: dt.datetime = record["processed_at"]
        key = (record["agency"], record["dataset"], at.replace(second=0, microsecond=0))
        sums[key] = [total + record[count] for total, count in zip(sums[key], COUNTS, strict=True)]
        if record["accepted"] > 0 and (key not in last_valid or at > last_valid[key]):
            last_valid[key] = at
    return [(*key, *counts, last_valid.get(key)) for key, counts in sums.items()]


async def add(conn: Any, records: list[dict[str, Any]]) -> int:
    """Add the records' counts to the table; returns how many (agency, dataset, minute) rows changed."""
    rows = per_minute(records)
    if rows:
        await conn.executemany(_ADD, rows)
    return len(rows)
