"""bus.activity -> bus.agency_activity: each processed batch's counts, added up per agency dataset and minute.

Each offset of an agency topic is counted once. A record names the partition and the offsets it counts
(satubus/schemas/activity.py); bus.agency_activity_offsets keeps, per partition, the offset after the last one
counted, in the same transaction as the counts. A batch that the stream processor ran again (a worker killed after
sending its outputs, before recording its state) repeats offsets already counted, which are left out.
"""

from __future__ import annotations

import datetime as dt
from collections import defaultdict
from typing import Any

from satubus.schemas import activity
from satubus.schemas.activity import STATUSES

COUNTS = ("events_in", *STATUSES)

Partition = tuple[str, str, int]  # agency, dataset, partition of its topic

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

_COUNTED_UP_TO = """
SELECT agency, dataset, partition, next_offset FROM bus.agency_activity_offsets
WHERE (agency, dataset, partition) IN (SELECT * FROM unnest($1::text[], $2::text[], $3::int[]))
"""

_ADVANCE = """
INSERT INTO bus.agency_activity_offsets AS o (agency, dataset, partition, next_offset) VALUES ($1, $2, $3, $4)
ON CONFLICT (agency, dataset, partition) DO UPDATE SET next_offset = GREATEST(o.next_offset, EXCLUDED.next_offset)
"""


def count_once(
    records: list[dict[str, Any]], next_offsets: dict[Partition, int]
) -> tuple[list[dict[str, Any]], dict[Partition, int]]:
    """The records with only the offsets not counted before (``next_offsets``: per partition, the first offset not
    counted yet), and the next offsets after them. Records of counts only are taken as they are."""
    counted: list[dict[str, Any]] = []
    after = dict(next_offsets)
    for record in records:
        if not activity.has_offsets(record):
            counted.append(record)
            continue
        where = (record["agency"], record["dataset"], record["partition"])
        statuses = list(activity.statuses_from(record, after.get(where, 0)))
        after[where] = max(after.get(where, 0), activity.last_offset(record) + 1)
        if statuses:
            counts = {status: statuses.count(status) for status in STATUSES}
            counted.append(record | counts | {"events_in": len(statuses)})
    return counted, {where: offset for where, offset in after.items() if next_offsets.get(where) != offset}


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
    """Add the counts of the records' offsets not counted before to the table; returns how many (agency, dataset,
    minute) rows changed."""
    partitions = {(r["agency"], r["dataset"], r["partition"]) for r in records if activity.has_offsets(r)}
    stored: dict[Partition, int] = {}
    if partitions:
        agencies, datasets, numbers = zip(*partitions, strict=True)
        for row in await conn.fetch(_COUNTED_UP_TO, list(agencies), list(datasets), list(numbers)):
            stored[(row["agency"], row["dataset"], row["partition"])] = row["next_offset"]
    counted, advanced = count_once(records, stored)
    rows = per_minute(counted)
    if rows:
        await conn.executemany(_ADD, rows)
    if advanced:
        await conn.executemany(_ADVANCE, [(*where, offset) for where, offset in advanced.items()])
    return len(rows)
