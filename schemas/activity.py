"""The records of ``bus.activity``: what the stream processor did with the events of one partition of an agency
dataset's topic in one batch, as a letter per offset, so that a batch that runs again (a worker killed between
sending its outputs and recording its state) is counted once: the materializer counts each offset of a partition
once (consumers/activity.py).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator, Mapping
from typing import Any, Literal

Status = Literal["accepted", "invalid", "dropped"]
STATUSES: tuple[Status, ...] = ("accepted", "invalid", "dropped")
LETTERS: dict[Status, str] = {"accepted": "a", "invalid": "i", "dropped": "d"}
NOT_IN_BATCH = "-"  # an offset between two of the batch that it did not hold
_STATUS_OF = {letter: status for status, letter in LETTERS.items()}


def record(
    agency: str, dataset: str, partition: int, statuses: Mapping[int, Status], processed_at: dt.datetime
) -> dict[str, Any]:
    """The activity record of a batch's events of one partition: ``statuses`` by offset."""
    first, last = min(statuses), max(statuses)
    outcomes = "".join(LETTERS[statuses[o]] if o in statuses else NOT_IN_BATCH for o in range(first, last + 1))
    counted: dict[str, int] = {s: sum(1 for v in statuses.values() if v == s) for s in STATUSES}
    return {
        "agency": agency,
        "dataset": dataset,
        "processed_at": processed_at,
        "events_in": len(statuses),
        **counted,
        "partition": partition,
        "first_offset": first,
        "outcomes": outcomes,
    }


def outcomes(activity: Mapping[str, Any]) -> Iterator[tuple[int, Status | None]]:
    """Each offset the record covers, with the status of its event; None where the batch held no event."""
    first: int = activity["first_offset"]
    for n, letter in enumerate(activity["outcomes"]):
        yield first + n, None if letter == NOT_IN_BATCH else _STATUS_OF[letter]


def last_offset(activity: Mapping[str, Any]) -> int:
    return int(activity["first_offset"]) + len(activity["outcomes"]) - 1


def has_offsets(activity: Mapping[str, Any]) -> bool:
    """Records written before the offsets were (or by hand) carry only counts, added as they are."""
    return activity.get("partition", -1) >= 0 and bool(activity.get("outcomes"))
