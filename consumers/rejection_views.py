"""An agency's own rejections, newest first: ``GET /v1/agencies/{agency}/rejections`` (consumers/api.py).

The rows come from bus.rejections (consumers/rejections.py); none holds the event's value, and the message and
preview are masked.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from pydantic import BaseModel

# The columns shown, by the names the API gives them.
SHOWN = {
    "event_id": "event_id",
    "dataset": "dataset",
    "stage": "stage",
    "reason": "reason",
    "message": "message",
    "preview": "preview",
    "topic": "topic",
    "partition": "source_partition",
    "offset": "source_offset",
    "rejected_at": "rejected_at",
}


class Rejection(BaseModel):
    event_id: str | None
    dataset: str
    stage: str
    reason: str
    message: str
    preview: str
    topic: str
    partition: int
    offset: int
    rejected_at: dt.datetime


class RejectionsPage(BaseModel):
    agency: str
    total: int
    limit: int
    offset: int
    items: list[Rejection]


async def rejections(
    conn: Any,
    agency: str,
    *,
    dataset: str | None = None,
    reason: str | None = None,
    since: dt.datetime | None = None,
    limit: int = 100,
    offset: int = 0,
) -> RejectionsPage:
    where = (
        "agency = $1 AND ($2::text IS NULL OR dataset = $2) AND ($3::text IS NULL OR reason = $3) "
        "AND ($4::timestamptz IS NULL OR rejected_at >= $4)"
    )
    args = (agency, dataset, reason, since)
    total = await conn.fetchval(f"SELECT count(*) FROM bus.rejections WHERE {where}", *args)
    shown = ", ".join(f'{column} AS "{name}"' for name, column in SHOWN.items())
    rows = await conn.fetch(
        f"SELECT {shown} FROM bus.rejections WHERE {where} ORDER BY rejected_at DESC, letter_id LIMIT $5 OFFSET $6",
        *args,
        limit,
        offset,
    )
    items = [Rejection(**dict(row)) for row in rows]
    return RejectionsPage(agency=agency, total=total, limit=limit, offset=offset, items=items)
