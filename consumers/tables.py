"""Which unified topic lands in which PostgreSQL table; columns are the Avro fields, by name."""

from __future__ import annotations

from dataclasses import dataclass

from schemas.topics import UNIFIED_PERSON, TopicContract, unified_contract


@dataclass(frozen=True, slots=True)
class TableSpec:
    entity: str
    contract: TopicContract
    table: str
    key: str

    @property
    def columns(self) -> tuple[str, ...]:
        return tuple(f["name"] for f in self.contract.value_schema()["fields"])

    @property
    def staging(self) -> str:
        return f"staging_{self.entity}"


PERSON = TableSpec("person", UNIFIED_PERSON, "unified.person", "person_id")
INCIDENT = TableSpec("incident", unified_contract("incident"), "unified.incident", "incident_id")
TABLES = {spec.entity: spec for spec in (PERSON, INCIDENT)}
