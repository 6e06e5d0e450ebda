"""Which unified topic lands in which PostgreSQL table; columns are the Avro fields, by name."""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import cached_property
from typing import Any

from schemas.topics import UNIFIED_PERSON, TopicContract, unified_contract


def _holds_records(avro_type: Any) -> bool:
    if isinstance(avro_type, list):
        return any(_holds_records(t) for t in avro_type if t != "null")
    if isinstance(avro_type, dict):
        return avro_type["type"] == "record" or (avro_type["type"] == "array" and _holds_records(avro_type["items"]))
    return False


@dataclass(frozen=True)
class TableSpec:
    entity: str
    contract: TopicContract
    table: str
    key: str

    @cached_property
    def columns(self) -> tuple[str, ...]:
        return tuple(f["name"] for f in self.contract.value_schema()["fields"])

    @cached_property
    def json_columns(self) -> frozenset[str]:
        """Fields holding Avro records or arrays of records: jsonb columns."""
        return frozenset(f["name"] for f in self.contract.value_schema()["fields"] if _holds_records(f["type"]))

    def row(self, record: dict[str, Any]) -> tuple[Any, ...]:
        return tuple(
            json.dumps(record[c], default=str, sort_keys=True) if c in self.json_columns else record[c]
            for c in self.columns
        )

    @property
    def staging(self) -> str:
        return f"staging_{self.entity}"


PERSON = TableSpec("person", UNIFIED_PERSON, "unified.person", "person_id")
INCIDENT = TableSpec("incident", unified_contract("incident"), "unified.incident", "incident_id")
TABLES = {spec.entity: spec for spec in (PERSON, INCIDENT)}
