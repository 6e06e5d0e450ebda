import datetime as dt
import json

import pytest

from satubus.producers.sheets import Limits, read_rows
from satubus.producers.upload import columns_of, field_key, header_problems, to_record
from satubus.schemas.envelope import agency_record_schema
from satubus.schemas.record_models import RecordRejected, agency_model, validate_json

COLUMNS = columns_of(agency_record_schema("disdik", "peserta_didik"))
LIMITS = Limits(max_file_bytes=1_000_000, max_rows=50, max_cell_chars=100)


def row(**cells: object) -> dict[str, object]:
    base = {
        "NISN": "0012345678",
        "Nama": "Ani",
        "Tanggal Lahir": "2015-02-03",
        "JK": "P",
        "NPSN": "20100001",
        "Nama Sekolah": "SDN Menteng 01",
        "Bentuk Pendidikan": "SD",
        "Tingkat": "5",
        "Status": "AKTIF",
        "Penerima KJP": "ya",
        "Kode Wilayah": "3173020001",
        "Tahun Ajaran": "2026/2027",
        "Catatan": "ignored",
    }
    return base | cells


def test_headers_match_fields_ignoring_case_spaces_and_dashes() -> None:
    assert field_key(" Tanggal-Lahir ") == "tanggal_lahir"
    record = to_record(row(), COLUMNS, {})
    assert record["tingkat"] == 5 and record["penerima_kjp"] is True and "Catatan" not in record
    assert validate_json(agency_model("disdik", "peserta_didik"), json.dumps(record), "x")["tanggal_lahir"] == (
        dt.date(2015, 2, 3)
    )


def test_spreadsheet_cell_types_are_converted() -> None:
    record = to_record(
        row(**{"Tanggal Lahir": dt.datetime(2015, 2, 3), "Tingkat": 5.0, "Kode Wilayah": 3173020001.0}), COLUMNS, {}
    )
    assert (record["tanggal_lahir"], record["tingkat"], record["kode_wilayah"]) == ("2015-02-03", 5, "3173020001")


def test_a_mapping_renames_columns() -> None:
    cells = row()
    cells["Nomor Induk"] = cells.pop("NISN")
    assert to_record(cells, COLUMNS, {"Nomor Induk": "nisn"})["nisn"] == "0012345678"


def test_every_bad_cell_is_reported_by_field() -> None:
    with pytest.raises(RecordRejected) as caught:
        to_record(row(Tingkat="lima", **{"Penerima KJP": "mungkin"}), COLUMNS, {})
    assert {(e.field, e.reason) for e in caught.value.errors} == {
        ("tingkat", "'lima' is not a valid int"),
        ("penerima_kjp", "'mungkin' is not a valid boolean"),
    }


def test_csv_rows_are_numbered_as_in_the_spreadsheet(tmp_path) -> None:  # type: ignore[no-untyped-def]
    path = tmp_path / "x.csv"
    path.write_text("a,b\n1,2\n,\n3,4\n", encoding="utf-8")
    assert list(read_rows(path, LIMITS)) == [(2, {"a": "1", "b": "2"}), (4, {"a": "3", "b": "4"})]


def test_a_nik_in_a_bad_cell_is_masked_before_it_is_shortened() -> None:
    with pytest.raises(RecordRejected) as caught:
        to_record(row(Tingkat="kelas " + "x" * 24 + " 3171064808850001"), COLUMNS, {})
    (error,) = caught.value.errors
    assert "31710648" not in error.reason


def test_header_problems_name_every_ambiguity() -> None:
    header = ["NISN", "Nama", "nama", "Nama", "Tingkat"]
    assert header_problems(header, COLUMNS, {"Kelas": "tingkat", "Tingkat": "kelas"}) == [
        "column 'Nama' appears more than once",
        "--map Kelas=tingkat: the file has no column 'Kelas'",
        "--map Tingkat=kelas: 'kelas' is not a field; fields: " + ", ".join(sorted(COLUMNS)),
        "columns 'Nama' and 'nama' both fill field nama",
    ]
    assert header_problems(["NISN", "Kelas"], COLUMNS, {"Kelas": "tingkat"}) == []


def test_a_cell_longer_than_the_limit_rejects_its_row_by_field_or_by_column() -> None:
    with pytest.raises(RecordRejected) as caught:
        to_record(row(Nama="A" * 101, Catatan="n" * 500), COLUMNS, {}, LIMITS)
    assert {(e.field, e.reason) for e in caught.value.errors} == {
        ("nama", "101 characters, more than 100 (SATUBUS_UPLOAD_MAX_CELL_CHARS)"),
        ("Catatan", "500 characters, more than 100 (SATUBUS_UPLOAD_MAX_CELL_CHARS)"),  # a column of no field
    }
    assert to_record(row(Nama="A" * 100), COLUMNS, {}, LIMITS)["nama"] == "A" * 100
