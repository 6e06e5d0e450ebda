import datetime as dt
import json
import math
from typing import Any

import pytest

from satubus.consumers.tables import FINDING, PARCEL, PERSON, REGION, TableSpec, to_json
from tests.samples import unified_person

AID = {
    "disbursement_id": "D-1",
    "programme": "PKH",
    "period": "2025-01",
    "amount": 750_000,
    "status": "PAID",
    "paid_on": dt.date(2025, 1, 20),
}


def expected_row(spec: TableSpec, record: dict[str, Any]) -> tuple[Any, ...]:
    """Every column in order: jsonb ones as json.dumps text, as the materializer always wrote them, and lists of
    strings (text[] columns) as tuples."""
    return tuple(
        json.dumps(record[c], default=str, sort_keys=True)
        if c in spec.json_columns
        else tuple(record[c])
        if isinstance(record[c], list)
        else record[c]
        for c in spec.columns
    )


def parcel(**fields: Any) -> dict[str, Any]:
    updated = dt.datetime(2025, 3, 1, 8, 30, tzinfo=dt.UTC)
    record = {"nop": "31.71.060.001.001-0001.0", "kelurahan_code": None, "address": None, "tax": None}
    return record | {"zoning": None, "permits": [], "version": 3, "updated_at": updated} | fields


@pytest.mark.parametrize(
    ("spec", "record"),
    [
        (PERSON, unified_person(1)),
        (PERSON, unified_person(2) | {"aid": [AID, AID | {"paid_on": None}], "immunisations": ["BCG"]}),
        (PARCEL, parcel()),
        (PARCEL, parcel(zoning={"zone_code": "R", "max_coverage_pct": 60.5}, permits=[{"status": "ISSUED"}])),
        (PARCEL, parcel(zoning={"zone_code": "R", "max_coverage_pct": math.nan})),  # PostgreSQL refuses this NaN
        (FINDING, dict.fromkeys(FINDING.columns, "x") | {"evidence": {}, "agencies": ["dinsos", "dukcapil"]}),
        (FINDING, dict.fromkeys(FINDING.columns, "x") | {"evidence": {}, "agencies": None}),
        (FINDING, dict.fromkeys(FINDING.columns, "x") | {"evidence": {"b": "2", "a": "1"}, "agencies": []}),
    ],
)
def test_a_row_holds_every_column_in_order_in_the_form_postgresql_takes(
    spec: TableSpec, record: dict[str, Any]
) -> None:
    assert spec.row(record) == expected_row(spec, record)


def test_a_table_without_jsonb_columns_takes_the_values_as_they_are() -> None:
    record = {column: f"value of {column}" for column in reversed(REGION.columns)}
    assert not REGION.json_columns
    assert REGION.row(record) == tuple(f"value of {column}" for column in REGION.columns)


def test_a_record_missing_a_column_is_refused() -> None:
    record = unified_person(4)
    del record["full_name"]
    with pytest.raises(KeyError):
        PERSON.row(record)


@pytest.mark.parametrize("value", [None, [], {}, [{}], {"a": None}, [1, "x", dt.date(2025, 1, 1)]])
def test_empty_values_have_the_text_the_encoder_gives_them(value: Any) -> None:
    assert to_json(value) == json.dumps(value, default=str, sort_keys=True)


def test_text_arrays_are_tuples_so_that_a_row_holds_no_mutable_value() -> None:
    row = PERSON.row(unified_person(5) | {"immunisations": ["BCG", "POLIO"]})
    assert row[PERSON.columns.index("immunisations")] == ("BCG", "POLIO")
    assert not any(isinstance(value, list | dict) for value in row)
