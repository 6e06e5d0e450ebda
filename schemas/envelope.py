"""The change-event envelope (Debezium style) that wraps every agency record.

Each agency dataset's ``.avsc`` holds only the agency's own record shape; the envelope around it is built here,
so every agency topic carries the same ``event_id``/``op``/``occurred_at``/``source``/``key``/``version``.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

ENVELOPE_NAMESPACE = "id.go.jakarta.satubus.envelope"
AGENCIES_DIR = Path(__file__).parent / "agencies"
UNIFIED_DIR = Path(__file__).parent / "unified"
CANONICAL_DIR = Path(__file__).parent / "canonical"
BUS_DIR = Path(__file__).parent / "bus"
RESTRICTED_DIR = Path(__file__).parent / "restricted"


def envelope_schema(record: dict[str, Any]) -> dict[str, Any]:
    record_name = f"{record['namespace']}.{record['name']}"
    return {
        "type": "record",
        "name": f"{record['name']}Changed",
        "namespace": record["namespace"],
        "doc": f"A change to one {record['name']} record at its source.",
        "fields": [
            {
                "name": "event_id",
                "type": {"type": "string", "logicalType": "uuid"},
                "doc": "Unique id of this event; consumers drop a second event with the same id.",
            },
            {
                "name": "op",
                "type": {
                    "type": "enum",
                    "name": "Op",
                    "namespace": ENVELOPE_NAMESPACE,
                    "doc": "Kind of change, as Debezium names them.",
                    "symbols": ["c", "u", "d", "r"],
                },
                "doc": "c create, u update, d delete, r snapshot read.",
            },
            {
                "name": "occurred_at",
                "type": {"type": "long", "logicalType": "timestamp-millis"},
                "doc": "When the change happened at the source (event time, UTC).",
            },
            {
                "name": "source",
                "type": {
                    "type": "record",
                    "name": "Source",
                    "namespace": ENVELOPE_NAMESPACE,
                    "doc": "Which system emitted the event.",
                    "fields": [
                        {
                            "name": "agency",
                            "type": "string",
                            "doc": "Agency code from the catalogue, e.g. dukcapil.",
                        },
                        {
                            "name": "system",
                            "type": "string",
                            "doc": "The agency system that emitted the event.",
                        },
                        {
                            "name": "version",
                            "type": "string",
                            "doc": "Version of that system or its connector.",
                        },
                    ],
                },
                "doc": "Provenance of the event.",
            },
            {"name": "key", "type": "string", "doc": "The agency's natural key of the record."},
            {"name": "version", "type": "long", "doc": "Monotonic per key at the source; higher wins."},
            {
                "name": "after",
                "type": ["null", record],
                "default": None,
                "doc": "The record after the change; null on delete.",
            },
            {
                "name": "before",
                "type": ["null", record_name],
                "default": None,
                "doc": "The record before the change, when the source knows it.",
            },
        ],
    }


def agency_schema_path(agency: str, dataset: str, root: Path = AGENCIES_DIR) -> Path:
    """An agency's own schema for the dataset, else the shared one in ``agencies/common/``."""
    own = root / agency / f"{dataset}.avsc"
    return own if own.exists() else root / "common" / f"{dataset}.avsc"


def agency_record_schema(agency: str, dataset: str, root: Path = AGENCIES_DIR) -> dict[str, Any]:
    return dict(json.loads(agency_schema_path(agency, dataset, root).read_text(encoding="utf-8")))


def agency_event_schema(agency: str, dataset: str, root: Path = AGENCIES_DIR) -> dict[str, Any]:
    return envelope_schema(agency_record_schema(agency, dataset, root))


def unified_schema(entity: str) -> dict[str, Any]:
    return dict(json.loads((UNIFIED_DIR / f"{entity}.avsc").read_text(encoding="utf-8")))


def part_schema() -> dict[str, Any]:
    return dict(json.loads((CANONICAL_DIR / "part.avsc").read_text(encoding="utf-8")))


def part_batch_schema() -> dict[str, Any]:
    """Parts for one partition of ``canonical.<entity>.v2``: the normalizer (and the person joiner, for regions)
    sends the parts of a batch in one record per partition, so that the joiner pays Kafka's and faust's per-message
    costs once per batch rather than once per part."""
    return {
        "type": "record",
        "name": "PartBatch",
        "namespace": "id.go.jakarta.satubus.canonical",
        "doc": "Parts of joined entities that share one partition of canonical.<entity>.v2, in the order they were "
        "decided; every part of an entity key goes to the same partition (crc32 of the key).",
        "fields": [{"name": "parts", "type": {"type": "array", "items": part_schema()}, "doc": "The parts, in order."}],
    }


def activity_schema() -> dict[str, Any]:
    return dict(json.loads((BUS_DIR / "activity.avsc").read_text(encoding="utf-8")))


def person_nik_schema() -> dict[str, Any]:
    return dict(json.loads((RESTRICTED_DIR / "person_nik.avsc").read_text(encoding="utf-8")))
