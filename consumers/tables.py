"""Which unified topic lands in which PostgreSQL table; columns are the Avro fields, by name."""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from dataclasses import dataclass
from functools import cached_property
from operator import itemgetter
from typing import Any

from satubus.consumers.rejections import REJECTION_SCHEMA, rejection
from satubus.schemas.dataset_records import DatasetRecord
from satubus.schemas.topics import (
    ACTIVITY,
    DEAD_LETTERS,
    PERSON_NIK,
    UNIFIED_PERSON,
    TopicContract,
    record_contract,
    unified_contract,
)

_JSON = json.JSONEncoder(default=str, sort_keys=True)  # one encoder: json.dumps with options makes one per call
# _JSON's text for the values most jsonb columns hold (no aid, no permits, no zoning), without its per-call setup.
_EMPTY_JSON = {type(None): "null", list: "[]", dict: "{}"}


def to_json(value: Any) -> str:
    """The jsonb text of an Avro record, map or array value."""
    if not value and type(value) in _EMPTY_JSON:
        return _EMPTY_JSON[type(value)]
    return _JSON.encode(value)


def _is_json(avro_type: Any) -> bool:
    """Records, maps and arrays of records are stored as jsonb; arrays of strings as text[]."""
    if isinstance(avro_type, list):
        return any(_is_json(t) for t in avro_type if t != "null")
    if isinstance(avro_type, dict):
        kind = avro_type["type"]
        return kind in ("record", "map") or (kind == "array" and _is_json(avro_type["items"]))
    return False


def _is_array(avro_type: Any) -> bool:
    """Arrays of strings (or of other plain values): text[] columns."""
    if isinstance(avro_type, list):
        return any(_is_array(t) for t in avro_type if t != "null")
    return isinstance(avro_type, dict) and avro_type["type"] == "array" and not _is_json(avro_type)


@dataclass(frozen=True)
class TableSpec:
    entity: str
    contract: TopicContract
    table: str
    key: str
    additive: bool = False  # records are counts to add up (consumers/activity.py), not states to upsert
    # Rows made from the message itself (None: nothing for the table), not decoded from the contract's Avro.
    from_message: Callable[[Any], dict[str, Any] | None] | None = None
    clock: str = "updated_at"  # the column that says when the record was made (for the end-to-end latency)

    @cached_property
    def columns(self) -> tuple[str, ...]:
        return tuple(f["name"] for f in self.contract.value_schema()["fields"])

    @cached_property
    def json_columns(self) -> frozenset[str]:
        """Fields holding Avro records, maps or arrays of records: jsonb columns."""
        return frozenset(f["name"] for f in self.contract.value_schema()["fields"] if _is_json(f["type"]))

    @cached_property
    def _values(self) -> itemgetter[Any]:
        """The record's values in column order, as a tuple (one C call)."""
        return itemgetter(*self.columns)

    @cached_property
    def _json_positions(self) -> tuple[int, ...]:
        return tuple(n for n, column in enumerate(self.columns) if column in self.json_columns)

    @cached_property
    def _array_positions(self) -> tuple[int, ...]:
        return tuple(n for n, f in enumerate(self.contract.value_schema()["fields"]) if _is_array(f["type"]))

    def row(self, record: dict[str, Any]) -> tuple[Any, ...]:
        """The record as a row of ``columns``: jsonb columns as JSON text, text[] ones as tuples. A missing field
        raises KeyError."""
        values: tuple[Any, ...] = self._values(record)
        if not self._json_positions and not self._array_positions:
            return values
        row = list(values)
        for n in self._json_positions:
            row[n] = to_json(row[n])
        # Tuples, not lists: a row of immutable values only is untracked by Python's garbage collector once it has
        # looked at it, so the rows of a batch waiting for their transaction do not make it collect more often.
        for n in self._array_positions:
            if row[n] is not None:
                row[n] = tuple(row[n])
        return tuple(row)

    @property
    def staging(self) -> str:
        return f"staging_{_identifier(self.entity)}"


PERSON = TableSpec("person", UNIFIED_PERSON, "unified.person", "person_id")
PARCEL = TableSpec("parcel", unified_contract("parcel"), "unified.parcel", "nop")
REGION = TableSpec("region", unified_contract("region"), "unified.region", "kelurahan_code")
INCIDENT = TableSpec("incident", unified_contract("incident"), "unified.incident", "incident_id")
FINDING = TableSpec("finding", unified_contract("finding"), "unified.finding", "finding_id")
TABLES = {spec.entity: spec for spec in (PERSON, PARCEL, REGION, INCIDENT, FINDING)}  # the unified view
AGENCY_ACTIVITY = TableSpec("activity", ACTIVITY, "bus.agency_activity", "agency", additive=True)
RESTRICTED_PERSON_NIK = TableSpec("person_nik", PERSON_NIK, "restricted.person_nik", "person_id")
REJECTIONS = TableSpec(
    "rejection",
    TopicContract(DEAD_LETTERS.name, lambda: REJECTION_SCHEMA),
    "bus.rejections",
    "letter_id",
    from_message=rejection,
    clock="rejected_at",
)
MATERIALIZED = {spec.entity: spec for spec in (*TABLES.values(), AGENCY_ACTIVITY, RESTRICTED_PERSON_NIK, REJECTIONS)}


def record_table(record: DatasetRecord) -> TableSpec:
    """The table of a dataset that is a record of its own: ``datasets.<agency>__<dataset>``, keyed by its key."""
    return TableSpec(
        record.name, record_contract(record), f"datasets.{_identifier(record.agency)}__{record.dataset}", record.key
    )


def _identifier(name: str) -> str:
    """``name`` as a plain SQL identifier: what is not a letter, a digit or _ becomes _ ("biro-umum" -> "biro_umum")."""
    return re.sub(r"\W", "_", name)
