"""pydantic models built from Avro record schemas, so every agency dataset is validated before it is sent
without a line of Python per agency.

Validation is strict: a string where the schema wants a number is an error, not silently converted.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from functools import cache, reduce
from operator import or_
from typing import Annotated, Any, Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, ValidationError, create_model

from satubus.errors import DataError
from satubus.schemas.envelope import agency_record_schema
from satubus.schemas.masking import mask_text

_PRIMITIVES: dict[str, Any] = {"string": str, "long": int, "int": int, "boolean": bool, "double": float, "float": float}
_INT_RANGES = {"int": (-(2**31), 2**31 - 1), "long": (-(2**63), 2**63 - 1)}


@dataclass(frozen=True, slots=True)
class FieldError:
    field: str
    reason: str

    def __str__(self) -> str:
        return f"{self.field}: {self.reason}"


class RecordRejected(DataError):
    """A record that does not fit its dataset's schema; ``errors`` names each bad field and why."""

    def __init__(self, dataset: str, errors: list[FieldError]) -> None:
        super().__init__(f"{dataset} record rejected: " + "; ".join(map(str, errors)))
        self.errors = errors


def model_for(schema: dict[str, Any]) -> type[BaseModel]:
    """A strict pydantic model accepting exactly the records ``schema`` accepts."""
    named: dict[str, type[BaseModel]] = {}
    return _record(schema, named)


@cache
def agency_model(agency: str, dataset: str) -> type[BaseModel]:
    return model_for(agency_record_schema(agency, dataset))


def validate(model: type[BaseModel], record: dict[str, Any], dataset: str) -> dict[str, Any]:
    """The record as Avro wants it, or ``RecordRejected`` listing every bad field. Inputs never appear in the
    message: they may hold personal data."""
    try:
        return model.model_validate(record).model_dump()
    except ValidationError as exc:
        raise RecordRejected(dataset, _field_errors(exc)) from None


def validate_json(model: type[BaseModel], text: str | bytes, dataset: str) -> dict[str, Any]:
    """Like ``validate`` for a JSON document: dates and timestamps come as ISO strings, numbers stay strict."""
    try:
        return model.model_validate_json(text).model_dump()
    except ValidationError as exc:
        raise RecordRejected(dataset, _field_errors(exc)) from None


def _field_errors(exc: ValidationError) -> list[FieldError]:
    return [
        FieldError(".".join(str(part) for part in error["loc"]) or "<record>", mask_text(error["msg"]))
        for error in exc.errors(include_url=False, include_input=False)
    ]


def _record(schema: dict[str, Any], named: dict[str, type[BaseModel]]) -> type[BaseModel]:
    fields: dict[str, Any] = {}
    for field in schema["fields"]:
        annotation = _annotation(field["type"], named)
        if "default" in field:
            default = field["default"]
            fields[field["name"]] = (
                annotation,
                Field(default_factory=lambda d=default: type(d)(d)) if isinstance(default, list | dict) else default,
            )
        else:
            fields[field["name"]] = (annotation, ...)
    model = create_model(schema["name"], __config__=ConfigDict(strict=True, extra="forbid", frozen=True), **fields)
    named[schema["name"]] = model
    named[f"{schema.get('namespace', '')}.{schema['name']}"] = model
    return model  # type: ignore[no-any-return]


def _annotation(avro: Any, named: dict[str, type[BaseModel]]) -> Any:
    if isinstance(avro, list):
        branches = [_annotation(b, named) for b in avro if b != "null"]
        union = reduce(or_, branches)
        return union | None if "null" in avro else union
    if isinstance(avro, str):
        if avro in _INT_RANGES:
            low, high = _INT_RANGES[avro]
            return Annotated[int, Field(ge=low, le=high)]
        if avro in _PRIMITIVES:
            return _PRIMITIVES[avro]
        if avro == "bytes":
            return bytes
        return named[avro]
    logical = avro.get("logicalType")
    if logical == "date":
        return dt.date
    if logical == "timestamp-millis":
        return AwareDatetime
    if logical == "uuid":
        return str
    kind = avro["type"]
    if kind == "record":
        return _record(avro, named)
    if kind == "enum":
        return Literal[tuple(avro["symbols"])]
    if kind == "array":
        return list[_annotation(avro["items"], named)]  # type: ignore[misc]
    if kind == "map":
        return dict[str, _annotation(avro["values"], named)]  # type: ignore[misc]
    return _annotation(kind, named)
