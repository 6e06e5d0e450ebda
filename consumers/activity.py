"""bus.activity -> bus.agency_activity: each processed batch's counts, added up per agency dataset and minute.

Each offset of an agency topic is counted once. A record names the partition and the offsets it covers
(satubus/schemas/activity.py); bus.agency_activity_offsets keeps, per partition, the offset after the last one
counted and the offsets before it that no batch has held yet (its holes), in the same transaction as the counts.
A batch that the stream processor ran again (a worker killed after sending its outputs, before recording its state)
repeats offsets already counted, which are left out; an event a worker dropped while it started (faust-streaming
#596) is read again after later ones were counted, and fills its hole.
"""

from __future__ import annotations

import datetime as dt
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any

from satubus.schemas import activity
from satubus.schemas.activity import STATUSES

COUNTS = ("events_in", *STATUSES)
# Holes further back than this are forgotten: an offset a batch skipped that long ago was no event (a transaction's
# marker), or its event was counted when it was dead-lettered or dropped.
HOLES_KEPT = 10_000

Partition = tuple[str, str, int]  # agency, dataset, partition of its topic


@dataclass
class Counted:
    """Where a partition's offsets were counted up to (``next_offset``), and the offsets before it not counted."""

    next_offset: int = 0
    holes: set[int] = field(default_factory=set)


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
SELECT agency, dataset, partition, next_offset, holes FROM bus.agency_activity_offsets
WHERE (agency, dataset, partition) IN (SELECT * FROM unnest($1::text[], $2::text[], $3::int[]))
"""

_RECORD = """
INSERT INTO bus.agency_activity_offsets AS o (agency, dataset, partition, next_offset, holes)
VALUES ($1, $2, $3, $4, $5)
ON CONFLICT (agency, dataset, partition) DO UPDATE SET next_offset = EXCLUDED.next_offset, holes = EXCLUDED.holes
"""


def count_once(
    records: list[dict[str, Any]], counted: dict[Partition, Counted]
) -> tuple[list[dict[str, Any]], dict[Partition, Counted]]:
    """The records with only their offsets not counted before (``counted``: per partition, as stored), and the
    partitions' new state where it changed. Records of counts only are taken as they are."""
    result: list[dict[str, Any]] = []
    after: dict[Partition, Counted] = {}
    for record in records:
        if not activity.has_offsets(record):
            result.append(record)
            continue
        where = (record["agency"], record["dataset"], record["partition"])
        first = record["first_offset"]
        if where not in after:
            # A partition's first record: the events before it in the topic were not counted either (a worker that
            # starts may drop the first it fetched), as far back as holes are kept.
            stored = counted.get(where, Counted(max(0, first - HOLES_KEPT)))
            after[where] = Counted(stored.next_offset, set(stored.holes))
        state = after[where]
        state.holes.update(range(state.next_offset, first))  # skipped between the last batch and this one
        statuses = []
        for offset, status in activity.outcomes(record):
            if offset >= state.next_offset:
                if status is None:
                    state.holes.add(offset)
                else:
                    statuses.append(status)
            elif status is not None and offset in state.holes:
                state.holes.discard(offset)
                statuses.append(status)
        state.next_offset = max(state.next_offset, activity.last_offset(record) + 1)
        state.holes = {offset for offset in state.holes if offset >= state.next_offset - HOLES_KEPT}
        if statuses:
            counts = {status: statuses.count(status) for status in STATUSES}
            result.append(record | counts | {"events_in": len(statuses)})
    changed = {where: state for where, state in after.items() if state != counted.get(where, Counted(-1))}
    return result, changed


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
    stored: dict[Partition, Counted] = {}
    if partitions:
        agencies, datasets, numbers = zip(*partitions, strict=True)
        for row in await conn.fetch(_COUNTED_UP_TO, list(agencies), list(datasets), list(numbers)):
            where = (row["agency"], row["dataset"], row["partition"])
            stored[where] = Counted(row["next_offset"], set(row["holes"]))
    counted, changed = count_once(records, stored)
    rows = per_minute(counted)
    if rows:
        await conn.executemany(_ADD, rows)
    if changed:
        await conn.executemany(
            _RECORD, [(*where, state.next_offset, sorted(state.holes)) for where, state in changed.items()]
        )
    return len(rows)
