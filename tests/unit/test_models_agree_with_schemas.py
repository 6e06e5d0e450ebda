"""The pydantic models and the Avro schemas of the unified entities describe the same records, field by field."""

from __future__ import annotations

import datetime as dt
import io
import types
import typing
from typing import Any

import fastavro
import pytest
from pydantic import AwareDatetime, BaseModel

from satubus.schemas.envelope import unified_schema
from satubus.schemas.models import UNIFIED_MODELS, BuildingPermit, Finding, Parcel, ParcelTax, ParcelZoning

PRIMITIVES: dict[str, Any] = {"string": str, "long": int, "int": int, "boolean": bool, "double": float, "float": float}


def expected_type(avro: Any, records: dict[str, type[BaseModel]]) -> Any:
    """The Python type a pydantic field must have to hold values of this Avro type."""
    if isinstance(avro, list):
        branches = [b for b in avro if b != "null"]
        assert len(branches) == 1, f"only optional unions are used: {avro}"
        return expected_type(branches[0], records) | None
    if isinstance(avro, str):
        return PRIMITIVES[avro] if avro in PRIMITIVES else records[avro.rsplit(".", 1)[-1]]
    logical = avro.get("logicalType")
    if logical == "date":
        return dt.date
    if logical == "timestamp-millis":
        return AwareDatetime  # timestamps are UTC instants: a naive datetime must not validate
    kind = avro["type"]
    if kind == "enum":
        return typing.Literal[tuple(avro["symbols"])]
    if kind == "array":
        return list[expected_type(avro["items"], records)]  # type: ignore[misc]
    if kind == "map":
        return dict[str, expected_type(avro["values"], records)]  # type: ignore[misc]
    if kind == "record":
        return records[avro["name"]]
    return expected_type(kind, records)


def actual_type(annotation: Any) -> Any:
    """Strip pydantic's Annotated wrappers (AwareDatetime is Annotated[datetime, ...])."""
    if typing.get_origin(annotation) is typing.Annotated:
        return actual_type(typing.get_args(annotation)[0])
    if isinstance(annotation, types.UnionType):
        return typing.Union[tuple(actual_type(a) for a in typing.get_args(annotation))]  # noqa: UP007
    return annotation


def nested_models(model: type[BaseModel]) -> dict[str, type[BaseModel]]:
    found = {model.__name__: model}
    for field in model.model_fields.values():
        for arg in [field.annotation, *typing.get_args(field.annotation)]:
            for inner in [arg, *typing.get_args(arg)]:
                if isinstance(inner, type) and issubclass(inner, BaseModel):
                    found |= nested_models(inner)
    return found


def records_of(schema: Any) -> list[dict[str, Any]]:
    if isinstance(schema, list):
        return [r for branch in schema for r in records_of(branch)]
    if not isinstance(schema, dict):
        return []
    if schema.get("type") == "record":
        return [schema, *(r for f in schema["fields"] for r in records_of(f["type"]))]
    return records_of(schema.get("items") or schema.get("values") or schema.get("type"))


@pytest.mark.parametrize("entity", sorted(UNIFIED_MODELS))
def test_every_record_and_field_agrees(entity: str) -> None:
    models = nested_models(UNIFIED_MODELS[entity])
    for record in records_of(unified_schema(entity)):
        model = models[record["name"]]
        assert list(model.model_fields) == [f["name"] for f in record["fields"]], record["name"]
        for avro_field in record["fields"]:
            field = model.model_fields[avro_field["name"]]
            where = f"{record['name']}.{avro_field['name']}"
            assert actual_type(field.annotation) == expected_type(avro_field["type"], models), where
            if "default" in avro_field:
                assert not field.is_required(), f"{where} has a default in Avro, none in pydantic"
                assert field.get_default(call_default_factory=True) == avro_field["default"], where
            else:
                assert field.is_required(), f"{where} is required in Avro, optional in pydantic"


def test_a_model_round_trips_through_its_avro_schema() -> None:
    now = dt.datetime(2026, 11, 28, 5, 0, tzinfo=dt.UTC)
    parcel = Parcel(
        nop="317101000100100010",
        kelurahan_code="31.71.01.1001",
        tax=ParcelTax(
            tax_year=2026,
            land_area_m2=120,
            building_area_m2=90,
            assessed_value=10**9,
            tax_due=10**6,
            payment_status="PAID",
        ),
        zoning=ParcelZoning(zone_code="R", max_coverage_pct=60, max_floor_area_ratio=1.2, max_storeys=3),
        permits=[
            BuildingPermit(
                application_id="A1",
                function="RESIDENTIAL",
                floor_area_m2=90,
                storeys=2,
                status="ISSUED",
                issued_on=dt.date(2026, 1, 5),
            )
        ],
        version=3,
        updated_at=now,
    )
    finding = Finding(
        finding_id="f1",
        kind="AID_TO_DECEASED",
        severity="CRITICAL",
        subject_type="person",
        subject_id="a" * 64,
        agencies=["dinsos", "dukcapil"],
        description="Aid paid after the recorded date of death.",
        evidence={"programme": "PKH"},
        status="OPEN",
        detected_at=now,
        version=1,
        updated_at=now,
    )
    for entity, model in (("parcel", parcel), ("finding", finding)):
        schema = fastavro.parse_schema(unified_schema(entity))
        buffer = io.BytesIO()
        fastavro.schemaless_writer(buffer, schema, model.to_avro())
        buffer.seek(0)
        assert type(model).model_validate(fastavro.schemaless_reader(buffer, schema, None)) == model
