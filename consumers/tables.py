"""Which unified topic lands in which PostgreSQL table; columns are the Avro fields, by name."""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import cached_property
from typing import Any

from satubus.schemas.topics import ACTIVITY, PERSON_NIK, UNIFIED_PERSON, TopicContract, unified_contract

_JSON = json.JSONEncoder(default=str, sort_keys=True)  # one encoder: json.dumps with options makes one per call


def _is_json(avro_type: Any) -> bool:
    """Records, maps and arrays of records are stored as jsonb; arrays of strings as text[]."""
    if isinstance(avro_type, list):
        return any(_is_json(t) for t in avro_type if t != "null")
    if isinstance(avro_type, dict):
        kind = avro_type["type"]
        return kind in ("record", "map") or (kind == "array" and _is_json(avro_type["items"]))
    return False


@dataclass(frozen=True)
class TableSpec:
    entity: str
    contract: TopicContract
    table: str
    key: str
    additive: bool = False  # records are counts to add up (consumers/activity.py), not states to upsert

    @cached_property
    def columns(self) -> tuple[str, ...]:
        return tuple(f["name"] for f in self.contract.value_schema()["fields"])

    @cached_property
    def json_columns(self) -> frozenset[str]:
        """Fields holding Avro records, maps or arrays of records: jsonb columns."""
        return frozenset(f["name"] for f in self.contract.value_schema()["fields"] if _is_json(f["type"]))

    def row(self, record: dict[str, Any]) -> tuple[Any, ...]:
        return tuple(_JSON.encode(record[c]) if c in self.json_columns else record[c] for c in self.columns)

    @property
    def staging(self) -> str:
        return f"staging_{self.entity}"


PERSON = TableSpec("person", UNIFIED_PERSON, "unified.person", "person_id")
PARCEL = TableSpec("parcel", unified_contract("parcel"), "unified.parcel", "nop")
REGION = TableSpec("region", unified_contract("region"), "unified.region", "kelurahan_code")
INCIDENT = TableSpec("incident", unified_contract("incident"), "unified.incident", "incident_id")
FINDING = TableSpec("finding", unified_contract("finding"), "unified.finding", "finding_id")
TABLES = {spec.entity: spec for spec in (PERSON, PARCEL, REGION, INCIDENT, FINDING)}  # the unified view
AGENCY_ACTIVITY = TableSpec("activity", ACTIVITY, "bus.agency_activity", "agency", additive=True)
RESTRICTED_PERSON_NIK = TableSpec("person_nik", PERSON_NIK, "restricted.person_nik", "person_id")
MATERIALIZED = {spec.entity: spec for spec in (*TABLES.values(), AGENCY_ACTIVITY, RESTRICTED_PERSON_NIK)}
