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
    partition, offset, stage = _number(facts.get("partition")), _number(facts.get("offset")), facts["stage"]
    # The bus always writes where the event was read; a letter without it (written by hand) is still the agency's
    # rejection, named by its own place in bus.dlq.
    located = partition >= 0 and offset >= 0
    where = f"{partition}:{offset}" if located else f"dlq-{message.partition()}-{message.offset()}"
    _, millis = message.timestamp()
    return {
        "letter_id": f"{contract}:{where}:{stage}",
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


def _number(header: str | None) -> int:
    """A partition or offset header, -1 when missing or not a number."""
    return int(header) if header is not None and header.strip().isdigit() else -1
