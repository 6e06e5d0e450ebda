"""Datasets that become records of their own (``entity: record`` in their mapping): an agency's dataset that fits
none of the joined entities, e.g. the environment agency's waste-collection trips. Each one gets a unified topic,
``unified.<agency>.<dataset>.v1``, whose Avro schema is derived here from the mapping and the agency's schema, and
a table of typed columns in PostgreSQL (consumers/dataset_tables.py) derived from that schema.

A field's type follows what its mapping does: a kelurahan, a pseudonym, a template, a prefix or a text step make a
string; ``date`` a date; ``datetime`` a UTC timestamp; a code list the type of its values; a constant its own type;
anything else keeps the agency field's Avro type. An optional field may be null. Every record also carries
``version`` (the source's) and ``updated_at`` (the event time of its latest change), which order its changes.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any

from pydantic import BaseModel

from satubus.schemas.envelope import AGENCIES_DIR, agency_record_schema
from satubus.schemas.mapping_spec import RECORD, FieldSpec, MappingError, MappingFile, read_mapping_file
from satubus.schemas.record_models import model_for

NAMESPACE = "id.go.jakarta.satubus.unified.datasets"
RESERVED = ("version", "updated_at", "committed_at")  # fields every record has (committed_at: the table's)
DATE = {"type": "int", "logicalType": "date"}
TIMESTAMP = {"type": "long", "logicalType": "timestamp-millis"}
_ENVELOPE_TYPES: dict[str, Any] = {
    "$version": "long",
    "$occurred_at": TIMESTAMP,
    "$event_id": "string",
    "$key": "string",
}
_STRING_STEPS = ("template", "parent_of", "region", "pseudonym", "prefix", "digits", "case", "pad")


@dataclass(frozen=True)
class DatasetRecord:
    """One dataset published as records of its own."""

    agency: str
    dataset: str
    spec: MappingFile
    source: dict[str, Any]  # the agency's record schema

    @property
    def name(self) -> str:
        """``<agency>.<dataset>``: the unified topic is ``unified.<name>.v1``."""
        return f"{self.agency}.{self.dataset}"

    @property
    def key(self) -> str:
        return self.spec.key

    @property
    def pseudonymous(self) -> bool:
        return any(field.pseudonym is not None for field in self.spec.fields.values())

    @cached_property
    def schema(self) -> dict[str, Any]:
        return record_schema(self.agency, self.dataset, self.spec, self.source)

    @cached_property
    def model(self) -> type[BaseModel]:
        """Checks a mapped record against the schema (strictly: the mapping gives each field its type)."""
        return model_for(self.schema)


def record_schema(agency: str, dataset: str, spec: MappingFile, source: dict[str, Any]) -> dict[str, Any]:
    """The Avro schema of the dataset's unified records."""
    source_types = {f["name"]: f["type"] for f in source["fields"]}
    fields = []
    for name, field in spec.fields.items():
        avro_type = field_type(field, spec.code_lists, source_types)
        nullable = field.optional or field.when is not None
        entry: dict[str, Any] = {"name": name, "type": ["null", avro_type] if nullable else avro_type}
        if nullable:
            entry["default"] = None
        entry["doc"] = field.doc or _doc_of(field, spec.code_lists, source)
        fields.append(entry)
    fields += [
        {"name": "version", "type": "long", "doc": "Source version; a newer version always replaces an older one."},
        {"name": "updated_at", "type": TIMESTAMP, "doc": "Event time (UTC) of the latest change."},
    ]
    return {
        "type": "record",
        "name": _avro_name(f"{agency}_{dataset}"),
        "namespace": NAMESPACE,
        "doc": spec.doc or source.get("doc") or f"A record of {agency}'s dataset {dataset}. Keyed by {spec.key}.",
        "fields": fields,
    }


def field_type(field: FieldSpec, code_lists: dict[str, dict[str, Any]], source_types: dict[str, Any]) -> Any:
    """The Avro type of a mapped field's values (never null: ``record_schema`` makes optional ones nullable)."""
    if field.value is not None:
        return _type_of_values([field.value])
    if field.date is not None:
        return DATE
    if field.datetime is not None:
        return TIMESTAMP
    if field.codes is not None:
        return _type_of_values(list(code_lists.get(field.codes, {}).values()))
    if any(getattr(field, step) for step in _STRING_STEPS):
        return "string"
    first = field.sources[0]
    if first in _ENVELOPE_TYPES:
        return _ENVELOPE_TYPES[first]
    return _without_null(source_types.get(first, "string"))


def check_aggregates(record: DatasetRecord) -> None:
    """Each aggregate the mapping declares groups by a date or a time and sums numbers; raises ``MappingError``."""
    types = {f["name"]: _without_null(f["type"]) for f in record.schema["fields"]}
    for name, aggregate in record.spec.aggregates.items():
        time = types[aggregate.time]
        if not (isinstance(time, dict) and time.get("logicalType") in _TIMES):
            raise MappingError(f"aggregate {name}: {aggregate.time} is not a date or a time (it is {time})")
        for field in aggregate.sum:
            if types[field] not in _NUMBERS:
                raise MappingError(f"aggregate {name}: {field} is not a number to sum (it is {types[field]})")


_TIMES = ("date", "timestamp-millis", "timestamp-micros")
_NUMBERS = ("int", "long", "float", "double")


def _without_null(avro_type: Any) -> Any:
    if isinstance(avro_type, list):
        branches = [t for t in avro_type if t != "null"]
        return branches[0] if len(branches) == 1 else branches
    return avro_type


def _type_of_values(values: list[Any]) -> str:
    if values and all(isinstance(v, bool) for v in values):
        return "boolean"
    if values and all(isinstance(v, int) and not isinstance(v, bool) for v in values):
        return "long"
    if values and all(isinstance(v, int | float) and not isinstance(v, bool) for v in values):
        return "double"
    return "string"


def _doc_of(field: FieldSpec, code_lists: dict[str, dict[str, Any]], source: dict[str, Any]) -> str:
    docs = {f["name"]: f.get("doc") for f in source["fields"]}
    if field.region is not None:
        return "Kemendagri kelurahan code, dotted 2-2-2-4."
    if field.parent_of is not None:
        return f"Kemendagri {field.level} code of {field.parent_of}."
    if field.codes is not None:
        values = sorted({str(v) for v in code_lists.get(field.codes, {}).values()})
        return f"One of {', '.join(values)}."
    if field.pseudonym is not None:
        return f"Pseudonym (keyed hash) of the {field.pseudonym.upper()}; never the number itself."
    first = field.sources[0] if field.sources else None
    return (first and docs.get(first)) or (f"From the agency's field {first}." if first else "Derived by the mapping.")


def _avro_name(text: str) -> str:
    name = "".join(c if c.isalnum() or c == "_" else "_" for c in text)
    return name if not name[0].isdigit() else f"_{name}"


def dataset_records(root: Path = AGENCIES_DIR) -> tuple[DatasetRecord, ...]:
    """Every dataset under ``root`` whose mapping makes it a record of its own, by agency and dataset."""
    found = []
    for path in sorted(root.glob("*/*.mapping.yaml")):
        spec = read_mapping_file(path)
        if spec.entity == RECORD:
            agency, dataset = path.parent.name, path.name.removesuffix(".mapping.yaml")
            found.append(DatasetRecord(agency, dataset, spec, agency_record_schema(agency, dataset, root)))
    return tuple(found)
