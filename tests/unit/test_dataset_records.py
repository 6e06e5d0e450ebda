"""Datasets that are records of their own (entity: record) and the value rules of mappings, on the worked example
docs/examples/dlh-ritase (DLH's waste-collection trips)."""

from __future__ import annotations

import csv
import datetime as dt
import shutil
from pathlib import Path
from typing import Any

import fastavro
import pytest
import yaml

from satubus.consumers.dataset_tables import aggregate_ddl, column_type, table_ddl
from satubus.consumers.tables import record_table
from satubus.schemas.dataset_records import check_aggregates, dataset_records
from satubus.schemas.mapping_spec import MappingError, MappingFile
from satubus.schemas.regions import load_regions
from satubus.schemas.topics import record_contract
from satubus.streams.errors import Rejected
from satubus.streams.mapping import DatasetMapping, Deletion, load_mapping

EXAMPLE = Path(__file__).parents[2] / "docs" / "examples" / "dlh-ritase"
KEY = b"unit-test-key"
NOW = dt.datetime(2026, 11, 30, 12, 0, tzinfo=dt.UTC)


@pytest.fixture
def root(tmp_path: Path) -> Path:
    (tmp_path / "dlh").mkdir()
    for name in ("ritase.avsc", "ritase.mapping.yaml"):
        shutil.copy(EXAMPLE / name, tmp_path / "dlh" / name)
    return tmp_path


def rows() -> list[dict[str, Any]]:
    with (EXAMPLE / "ritase.csv").open(encoding="utf-8") as f:
        return [{**row, "tonase": float(row["tonase"])} for row in csv.DictReader(f)]


def apply(mapping: DatasetMapping, row: dict[str, Any] | None, op: str = "c") -> Any:
    event = {"event_id": "e1", "op": op, "occurred_at": NOW, "key": "RT-1", "version": 3, "after": row}
    return mapping.apply(event, regions=load_regions(), pseudonym_key=KEY, now=NOW)


def edit(root: Path, change: Any) -> None:
    path = root / "dlh" / "ritase.mapping.yaml"
    spec = yaml.safe_load(path.read_text(encoding="utf-8"))
    change(spec)
    path.write_text(yaml.safe_dump(spec, sort_keys=False), encoding="utf-8")


def test_the_schema_is_derived_from_the_mapping_with_typed_fields(root: Path) -> None:
    record = load_mapping("dlh", "ritase", root).record
    assert record is not None and record.name == "dlh.ritase"
    types = {f["name"]: f["type"] for f in record.schema["fields"]}
    assert types["tonnes"] == "double"  # the agency's type
    assert types["kelurahan_code"] == "string"
    assert types["driver_id"] == ["null", "string"]  # optional
    assert types["departed_at"] == {"type": "long", "logicalType": "timestamp-millis"}
    assert types["version"] == "long" and "updated_at" in types
    fastavro.parse_schema(record.schema)  # a valid Avro schema
    contract = record_contract(record)
    assert contract.name == "unified.dlh.ritase.v1" and contract.compacted and contract.pseudonymous
    assert [r.name for r in dataset_records(root)] == ["dlh.ritase"]


def test_a_valid_row_is_normalized_and_round_trips_through_its_avro_schema(root: Path) -> None:
    mapping = load_mapping("dlh", "ritase", root)
    record = apply(mapping, rows()[0]).model_dump()
    assert record["kelurahan_code"] == "31.71.01.1001" and record["kecamatan_code"] == "31.71.01"
    assert record["waste_kind"] == "ORGANIC"
    assert len(record["driver_id"]) == 64 and "3171011505850001" not in str(record)
    # 05:10 in Jakarta (the mapping's time zone) is 22:10 UTC the day before.
    assert record["departed_at"] == dt.datetime(2026, 11, 29, 22, 10, tzinfo=dt.UTC)
    assert (record["version"], record["updated_at"]) == (3, NOW)
    assert mapping.record is not None
    schema = fastavro.parse_schema(mapping.record.schema)
    assert fastavro.validate(record, schema)


def test_each_rule_rejects_naming_the_agency_field_and_the_rule(root: Path) -> None:
    mapping = load_mapping("dlh", "ritase", root)
    rejections = {}
    for row in rows():
        try:
            apply(mapping, row)
        except Rejected as exc:
            rejections[row["id_ritase"]] = (exc.field, exc.reason, str(exc))
    assert rejections["RT-2026-000104"][:2] == ("tonase", "out_of_range")
    assert "rule min" in rejections["RT-2026-000104"][2]
    assert rejections["RT-2026-000105"][:2] == ("waktu_tiba", "failed_rule")
    assert "arrived_at >= departed_at" in rejections["RT-2026-000105"][2]
    assert rejections["RT-2026-000106"][:2] == ("kelurahan", "unknown_region")
    assert len(rejections) == 3


def test_one_of_and_length_rules(root: Path) -> None:
    def rules(spec: dict[str, Any]) -> None:
        spec["fields"]["tps_code"].update(one_of=["TPS-GMB-01"], max_length=9)

    edit(root, rules)
    mapping = load_mapping("dlh", "ritase", root)
    with pytest.raises(Rejected) as caught:
        apply(mapping, rows()[1])
    assert (caught.value.field, caught.value.reason) == ("kode_tps", "not_allowed")
    with pytest.raises(Rejected) as caught:
        apply(mapping, rows()[0])
    assert (caught.value.field, caught.value.reason) == ("kode_tps", "invalid_length")


def test_a_number_rule_on_a_text_that_is_not_a_number_says_so(root: Path) -> None:
    with pytest.raises(Rejected) as caught:
        apply(load_mapping("dlh", "ritase", root), {**rows()[0], "tonase": "tujuh"})
    assert caught.value.reason == "invalid_value" and "not a number" in str(caught.value)


def test_a_local_time_in_a_format_it_is_not_says_which_is_wanted(root: Path) -> None:
    with pytest.raises(Rejected) as caught:
        apply(load_mapping("dlh", "ritase", root), {**rows()[0], "waktu_berangkat": "30/11/2026 05.10"})
    assert "2026-11-30 14:05 (%Y-%m-%d %H:%M)" in str(caught.value)


def test_a_deletion_is_a_tombstone_for_the_record_key(root: Path) -> None:
    deletion = apply(load_mapping("dlh", "ritase", root), None, op="d")
    assert deletion == Deletion("dlh.ritase", "RT-1")


@pytest.mark.parametrize(
    ("change", "problem"),
    [
        (lambda s: s["fields"]["driver_id"].pop("pseudonym"), "a NIK is personal data"),
        (lambda s: s["fields"].__setitem__("version", {"from": "$version"}), "every record has version"),
        (lambda s: s.__setitem__("checks", [{"rule": "arrived_at >= left_at"}]), "left_at is not mapped"),
        (lambda s: s.__setitem__("checks", [{"rule": "arrived_at after departed_at"}]), "is not '<field> <op>"),
        (lambda s: s["fields"]["tonnes"].update(min=5, max=1), "min 5.0 is above max 1.0"),
        (lambda s: s.__setitem__("timezone", "Asia/Bandung"), "unknown time zone Asia/Bandung"),
        (lambda s: s.__setitem__("restricted_nik", "nik_pengemudi"), "restricted_nik"),
        (lambda s: s["aggregates"].__setitem__("Per Day", {"time": "departed_at"}), "lower-case letters"),
        (lambda s: s["aggregates"]["tonnes_per_day"].update(sum=["weight"]), "no field 'weight'"),
        (lambda s: s["aggregates"]["tonnes_per_day"].update(per="week"), "'day' or 'month'"),
        (lambda s: s["fields"].pop("kecamatan_code") and s["fields"].pop("kelurahan_code"), "needs a kelurahan_code"),
    ],
)
def test_a_bad_record_mapping_is_refused_saying_why(root: Path, change: Any, problem: str) -> None:
    edit(root, change)
    with pytest.raises(MappingError, match=problem):
        load_mapping("dlh", "ritase", root)


def test_the_table_has_a_typed_column_per_field_and_the_key_as_primary_key(root: Path) -> None:
    record = load_mapping("dlh", "ritase", root).record
    assert record is not None
    create, *rest = table_ddl(record)
    assert create.startswith("CREATE TABLE IF NOT EXISTS datasets.dlh__ritase (")
    for column in (
        "tonnes double precision NOT NULL",
        "driver_id text,",
        "departed_at timestamptz NOT NULL",
        "version bigint NOT NULL",
        "PRIMARY KEY (trip_id)",
    ):
        assert column in create
    assert "ALTER TABLE datasets.dlh__ritase ADD COLUMN IF NOT EXISTS tonnes double precision" in rest
    assert record_table(record).staging == "staging_dlh_ritase"


@pytest.mark.parametrize(
    ("avro", "column"),
    [
        ({"type": "int", "logicalType": "date"}, "date"),
        ({"type": "array", "items": "string"}, "text[]"),
        ({"type": "array", "items": {"type": "record", "name": "R", "fields": []}}, "jsonb"),
        ({"type": "map", "values": "long"}, "jsonb"),
        (["null", "boolean"], "boolean"),
        ({"type": "enum", "name": "E", "symbols": ["A"]}, "text"),
    ],
)
def test_column_types(avro: Any, column: str) -> None:
    assert column_type(avro) == column


def test_a_date_of_today_in_jakarta_is_not_in_the_future_before_seven_in_the_morning(root: Path) -> None:
    def dated(spec: dict[str, Any]) -> None:
        spec["fields"]["departed_at"] = {"from": "waktu_berangkat", "date": "%Y-%m-%d", "not_future": True}
        spec["checks"] = []

    edit(root, dated)
    mapping = load_mapping("dlh", "ritase", root)
    early = dt.datetime(2026, 11, 30, 0, 30, tzinfo=dt.UTC) - dt.timedelta(hours=1)  # 06:30 WIB, 30 November
    event = {"event_id": "e", "op": "c", "occurred_at": early, "key": "k", "version": 1}
    row = {**rows()[0], "waktu_berangkat": "2026-11-30"}
    record = mapping.apply({**event, "after": row}, regions=load_regions(), pseudonym_key=KEY, now=early)
    assert record.model_dump()["departed_at"] == dt.date(2026, 11, 30)
    with pytest.raises(Rejected, match="future"):
        mapping.apply(
            {**event, "after": {**row, "waktu_berangkat": "2026-12-01"}},
            regions=load_regions(),
            pseudonym_key=KEY,
            now=early,
        )


def test_an_aggregate_is_a_view_per_kelurahan_and_local_day_of_the_table(root: Path) -> None:
    record = load_mapping("dlh", "ritase", root).record
    assert record is not None
    drop, create = aggregate_ddl(record)
    assert drop == "DROP VIEW IF EXISTS datasets.dlh__ritase__tonnes_per_day"
    assert create == (
        "CREATE VIEW datasets.dlh__ritase__tonnes_per_day AS SELECT kelurahan_code, "
        "date_trunc('day', (departed_at AT TIME ZONE 'Asia/Jakarta'))::date AS period, count(*) AS records, "
        "sum(tonnes) AS tonnes FROM datasets.dlh__ritase "
        "WHERE kelurahan_code IS NOT NULL AND departed_at IS NOT NULL GROUP BY 1, 2"
    )


@pytest.mark.parametrize(
    ("aggregate", "problem"),
    [
        ({"time": "plate"}, "plate is not a date or a time"),
        ({"time": "departed_at", "sum": ["waste_kind"]}, "waste_kind is not a number to sum"),
    ],
)
def test_an_aggregate_over_fields_of_the_wrong_type_is_refused(
    root: Path, aggregate: dict[str, Any], problem: str
) -> None:
    edit(root, lambda s: s.__setitem__("aggregates", {"bad": aggregate}))
    record = load_mapping("dlh", "ritase", root).record
    assert record is not None
    with pytest.raises(MappingError, match=problem):
        check_aggregates(record)


def test_aggregates_are_kept_for_records_of_their_own_only(tmp_path: Path) -> None:
    source = Path(__file__).parents[2] / "schemas" / "agencies" / "bpbd" / "kejadian.mapping.yaml"
    spec = yaml.safe_load(source.read_text(encoding="utf-8"))
    spec["aggregates"] = {"per_day": {"time": "occurred_at"}}
    with pytest.raises(ValueError, match="entity: record"):
        MappingFile.model_validate(spec)
