"""``satubus upload`` of the files agencies' Excel makes: semicolon CSVs with decimal commas, and an .xlsx's date and
time cells, which are the agency's local times, for each kind of field they may fill."""

from __future__ import annotations

import argparse
import csv
import datetime as dt
import json
from pathlib import Path
from typing import Any

import pytest
from openpyxl import Workbook

from satubus.producers import upload
from satubus.producers.upload import as_mapped, columns_of, to_record
from satubus.schemas.envelope import AGENCIES_DIR, agency_record_schema
from satubus.schemas.mapping_spec import mapping_path, read_mapping_file
from satubus.schemas.record_models import RecordRejected, agency_model, validate_json
from satubus.settings import Settings
from tests.unit.fake_kafka import Fakes, install

TIME_CELL = (
    "05:10:00 is a time of day without a date (an Excel time cell): write the date and the time in one cell, or "
    "format the column as text"
)


def mapped_columns(agency: str, dataset: str, **spec: Any) -> dict[str, upload.Column]:
    """The dataset's columns as upload reads them with its mapping (``spec``: changes to the mapping)."""
    mapping = read_mapping_file(mapping_path(agency, dataset, AGENCIES_DIR)).model_copy(update=spec)
    return as_mapped(columns_of(agency_record_schema(agency, dataset)), mapping)


def kejadian(**cells: object) -> dict[str, object]:
    base = {"id_kejadian": "B-1", "jenis": "BANJIR", "kelurahan": "Kampung Melayu", "status": "BERLANGSUNG"}
    return base | {"waktu_kejadian": dt.datetime(2026, 11, 30, 5, 10)} | cells


def rejected(cells: dict[str, object], columns: dict[str, upload.Column]) -> list[tuple[str, str]]:
    with pytest.raises(RecordRejected) as caught:
        to_record(cells, columns, {})
    return [(e.field, e.reason) for e in caught.value.errors]


def test_a_spreadsheet_time_for_a_timestamp_is_a_local_time_of_the_agency() -> None:
    columns = mapped_columns("bpbd", "kejadian")
    record = to_record(kejadian(), columns, {})
    assert record["waktu_kejadian"] == "2026-11-30T05:10:00+07:00"  # Asia/Jakarta, the default
    instant = validate_json(agency_model("bpbd", "kejadian"), json.dumps(record), "x")["waktu_kejadian"]
    assert instant == dt.datetime(2026, 11, 29, 22, 10, tzinfo=dt.UTC)

    makassar = mapped_columns("bpbd", "kejadian", timezone="Asia/Makassar")
    assert to_record(kejadian(), makassar, {})["waktu_kejadian"] == "2026-11-30T05:10:00+08:00"
    assert to_record(kejadian(), columns_of(agency_record_schema("bpbd", "kejadian")), {})["waktu_kejadian"] == (
        "2026-11-30T05:10:00+07:00"  # without a mapping: Asia/Jakarta
    )
    texts = to_record(kejadian(waktu_kejadian="2026-11-29T22:10:00+00:00"), columns, {})
    assert texts["waktu_kejadian"] == "2026-11-29T22:10:00+00:00"  # a text is the agency's to write with an offset


def test_a_date_or_a_time_of_day_alone_is_refused_for_a_timestamp() -> None:
    columns = mapped_columns("bpbd", "kejadian")
    assert rejected(kejadian(waktu_kejadian=dt.date(2026, 11, 30)), columns) == [
        (
            "waktu_kejadian",
            "2026-11-30 is a date without a time of day: give the time too (format the cell as a date and time)",
        )
    ]
    assert rejected(kejadian(waktu_kejadian=dt.time(5, 10)), columns) == [("waktu_kejadian", TIME_CELL)]


def test_a_text_field_gets_a_spreadsheet_time_as_its_mapping_reads_it() -> None:
    kunjungan = mapped_columns("dinkes", "kunjungan")  # datetime: '%Y-%m-%d %H:%M'
    cells = {"waktu_kunjungan": dt.datetime(2026, 11, 30, 5, 10), "id_kunjungan": dt.datetime(2026, 11, 30, 5, 10)}
    assert to_record(cells, kunjungan, {}) == {
        "waktu_kunjungan": "2026-11-30 05:10",
        "id_kunjungan": "2026-11-30T05:10:00",  # a field the mapping does not read as a time: ISO 8601, no offset
    }
    penduduk = mapped_columns("dukcapil", "penduduk")  # date: '%d-%m-%Y'
    assert to_record({"tgl_lhr": dt.date(1987, 9, 5)}, penduduk, {}) == {"tgl_lhr": "05-09-1987"}
    assert to_record({"tgl_lhr": dt.datetime(1987, 9, 5)}, penduduk, {}) == {"tgl_lhr": "05-09-1987"}

    unmapped = columns_of(agency_record_schema("dinkes", "kunjungan"))
    assert to_record(cells | {"kode_faskes": dt.date(2026, 11, 30)}, unmapped, {}) == {
        "waktu_kunjungan": "2026-11-30T05:10:00",
        "id_kunjungan": "2026-11-30T05:10:00",
        "kode_faskes": "2026-11-30",
    }
    assert rejected({"waktu_kunjungan": dt.time(5, 10)}, kunjungan) == [("waktu_kunjungan", TIME_CELL)]


def test_a_date_cell_for_a_date_field_stays_a_date() -> None:
    columns = columns_of(agency_record_schema("disdik", "peserta_didik"))  # tanggal_lahir: a date
    for cell in (dt.date(2015, 2, 3), dt.datetime(2015, 2, 3), dt.datetime(2015, 2, 3, 23, 59)):
        assert to_record({"Tanggal Lahir": cell}, columns, {}) == {"tanggal_lahir": "2015-02-03"}
    assert rejected({"Tanggal Lahir": dt.time(5, 10)}, columns) == [("tanggal_lahir", TIME_CELL)]


def test_decimal_commas_are_numbers() -> None:
    columns = columns_of(agency_record_schema("bpbd", "kejadian"))
    record = to_record(kejadian(lintang="-6,2146", bujur="106.8451"), columns, {})
    assert (record["lintang"], record["bujur"]) == (-6.2146, 106.8451)


# A whole upload, with a stand-in broker and registry.


@pytest.fixture
def fakes(monkeypatch: pytest.MonkeyPatch) -> Fakes:
    fakes = install(monkeypatch)
    monkeypatch.setattr(upload, "AvroSerde", fakes.serde)
    return fakes


def run(path: Path, agency: str, dataset: str, key: str) -> int:
    args = argparse.Namespace(file=path, agency=agency, dataset=dataset, key=key, map=[], report=None, timeout=1.0)
    return upload.main(args, Settings(namespace="kota"))


def test_an_xlsx_of_local_times_is_published_as_its_mapping_reads_them(
    fakes: Fakes, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    book = Workbook()
    sheet = book.active
    sheet.append(["ID Kunjungan", "NIK Pasien", "Waktu Kunjungan", "Kode Faskes", "Jenis Layanan", "Kode Kel Domisili"])
    sheet.append(["K-1", "3171011505850001", dt.datetime(2025, 11, 30, 5, 10), "P3171060101", "RAJAL", "3171011001"])
    sheet.append(["K-2", "3171011505850001", dt.time(5, 10), "P3171060101", "RAJAL", "3171011001"])
    path = tmp_path / "kunjungan.xlsx"
    book.save(path)

    assert run(path, "dinkes", "kunjungan", "id_kunjungan") == 1

    assert "1 rows published to kota.agency.dinkes.kunjungan.v1, 1 rejected" in capsys.readouterr().out
    assert [key for _, key, _ in fakes.produced] == [b"K-1"]
    with path.with_name(path.name + ".errors.csv").open(newline="", encoding="utf-8") as f:
        assert list(csv.reader(f)) == [["row", "field", "reason"], ["3", "waktu_kunjungan", TIME_CELL]]


def test_a_semicolon_csv_is_uploaded_and_its_report_is_a_comma_csv(
    fakes: Fakes, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "kejadian.csv"
    path.write_text(
        "id_kejadian;jenis;waktu_kejadian;kelurahan;status;lintang;bujur\r\n"
        "B-1;BANJIR;2025-11-29T22:10:00+00:00;Kampung Melayu;BERLANGSUNG;-6,2146;106,8451\r\n"
        "B-2;BANJIR;2025-11-29T22:10:00+00:00;Kampung Melayu;BERLANGSUNG;-6,2;utara\r\n",
        encoding="utf-8-sig",
    )

    assert run(path, "bpbd", "kejadian", "id_kejadian") == 1

    assert "1 rows published to kota.agency.bpbd.kejadian.v1, 1 rejected" in capsys.readouterr().out
    report = path.with_name(path.name + ".errors.csv").read_text(encoding="utf-8").splitlines()
    assert report == ["row,field,reason", "3,bujur,'utara' is not a valid double"]
