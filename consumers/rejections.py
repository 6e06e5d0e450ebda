"""bus.dlq -> bus.rejections: what the bus dead-lettered, as the agency that sent it may read it.

Each letter of the decode or normalize stage (an event of an agency topic that did not decode, or that its mapping
refused) becomes a row made from the letter's headers alone: its reason, its masked message and preview, the
event's id and where it was read. The event's value is not kept (it may hold clear NIKs). A letter repeated by a batch
that ran again is the same row (``letter_id``); letters of the bus's own stages (join, materialize) blame no agency
and are left out. Read by ``GET /v1/agencies/{agency}/rejections`` (consumers/rejection_views.py).
"""

from __future__ import annotations

import datetime as dt
import re
from typing import Any

from satubus.schemas.dead_letters import facts_of
from satubus.schemas.masking import mask_payload, mask_text

AGENCY_STAGES = ("decode", "normalize")
# A topic's Kafka name ends with its contract name; the bus's namespace, if any, comes before it.
_AGENCY_TOPIC = re.compile(r"(?:^|\.)(agency\.([a-z0-9-]+)\.([a-z0-9_]+)\.v\d+)$")

# The row's columns, as the fields of a record (consumers/tables.py derives a table's columns from a schema).
REJECTION_SCHEMA: dict[str, Any] = {
    "type": "record",
    "name": "Rejection",
    "fields": [
        {"name": "letter_id", "type": "string"},
        {"name": "agency", "type": "string"},
        {"name": "dataset", "type": "string"},
        {"name": "event_id", "type": ["null", "string"]},
        {"name": "stage", "type": "string"},
        {"name": "reason", "type": "string"},
        {"name": "message", "type": "string"},
        {"name": "preview", "type": "string"},
        {"name": "topic", "type": "string"},
        {"name": "source_partition", "type": "int"},
        {"name": "source_offset", "type": "long"},
        {"name": "rejected_at", "type": {"type": "long", "logicalType": "timestamp-millis"}},
        {"name": "version", "type": "long"},
    ],
}


def rejection(message: Any) -> dict[str, Any] | None:
    """The row of a message of bus.dlq, or None when it blames no agency."""
    facts = facts_of(message.headers())
    topic = _AGENCY_TOPIC.search(facts.get("topic", ""))
    if facts.get("stage") not in AGENCY_STAGES or topic is None or not facts.get("agency"):
        return None
    contract, agency, dataset = topic.groups()
    partition, offset, stage = int(facts.get("partition", -1)), int(facts.get("offset", -1)), facts["stage"]
    _, millis = message.timestamp()
    return {
        "letter_id": f"{contract}:{partition}:{offset}:{stage}",
        "agency": agency,
        "dataset": dataset,
        "event_id": facts.get("event_id") or None,
        "stage": stage,
        "reason": facts.get("reason", ""),
        # Masked again as today's masking would: letters written by an older version may carry more.
        "message": mask_text(facts.get("message", "")),
        "preview": mask_payload(facts.get("preview", "")),
        "topic": contract,
        "source_partition": partition,
        "source_offset": offset,
        "rejected_at": dt.datetime.fromtimestamp(millis / 1000, dt.UTC),
        "version": message.offset(),
    }
