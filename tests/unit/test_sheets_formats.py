"""What producers/sheets.py reads from the files agencies make: CSVs separated as their Excel saves them, and the
date and time cells of an .xlsx as the kind of value they show."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest
from openpyxl import Workbook

from satubus.producers.sheets import Limits, SheetRefused, delimiter_of, read_header, read_rows

LIMITS = Limits(max_file_bytes=200_000, max_rows=50, max_cell_chars=100)


@pytest.mark.parametrize(
    ("header", "delimiter"),
    [
        ("NISN,Nama,Nilai\r\n", ","),
        ("NISN;Nama;Nilai\r\n", ";"),
        ("NISN\tNama\n", "\t"),
        ("NISN|Nama\n", "|"),
        ("NISN\n", ","),  # one column: nothing to tell
        ("", ","),
        ('"Berat (kg, bersih)";"Nama, lengkap";NISN\n', ";"),  # commas in quotes do not count
        ("Alamat, RT;Nama;NISN\n", ";"),
        ("a;b,c,d\n", ","),
    ],
)
def test_the_delimiter_is_the_one_the_header_uses_most(header: str, delimiter: str) -> None:
    assert delimiter_of(header) == delimiter


def test_a_semicolon_csv_from_excel_is_read_like_a_comma_one(tmp_path: Path) -> None:
    path = tmp_path / "siswa.csv"
    text = 'NISN;Nama;Nilai\r\n0012;"Siti; Aminah";12,5\r\n;;\r\n0013;Budi;"7,25"\r\n'
    path.write_text(text, encoding="utf-8-sig")  # Excel's "CSV UTF-8" starts with a BOM
    assert read_header(path, LIMITS) == ["NISN", "Nama", "Nilai"]
    assert list(read_rows(path, LIMITS)) == [
        (2, {"NISN": "0012", "Nama": "Siti; Aminah", "Nilai": "12,5"}),
        (4, {"NISN": "0013", "Nama": "Budi", "Nilai": "7,25"}),
    ]


def test_tab_separated_and_one_column_files_are_read(tmp_path: Path) -> None:
    path = tmp_path / "siswa.csv"
    path.write_text("NISN\tNama\n0012\tSiti, A\n", encoding="utf-8")
    assert list(read_rows(path, LIMITS)) == [(2, {"NISN": "0012", "Nama": "Siti, A"})]
    path.write_text("NISN\n0012\n0013\n", encoding="utf-8")
    assert list(read_rows(path, LIMITS)) == [(2, {"NISN": "0012"}), (3, {"NISN": "0013"})]


def test_a_semicolon_file_the_csv_module_cannot_read_is_refused_with_its_line(tmp_path: Path) -> None:
    path = tmp_path / "siswa.csv"
    path.write_text("NISN;Nama\n1;x\n2;" + "y" * 140_000 + "\n", encoding="utf-8")
    with pytest.raises(SheetRefused, match=r"siswa\.csv, line 3: field larger than field limit"):
        list(read_rows(path, LIMITS))


def test_xlsx_date_and_time_cells_are_read_as_what_they_show(tmp_path: Path) -> None:
    book = Workbook()
    sheet = book.active
    sheet.append(["tanggal", "waktu", "tengah_malam", "jam", "tersembunyi", "tanggal_id"])
    sheet.append(
        [
            dt.date(2026, 11, 30),  # a date cell
            dt.datetime(2026, 11, 30, 5, 10),  # a date-and-time cell
            dt.datetime(2026, 11, 30, 0, 0),  # shown with its time: a time at midnight, not a date
            dt.time(5, 10),  # a time of day alone
            dt.datetime(2026, 11, 30, 5, 10),  # shown as a date only, but it holds a time: kept
            dt.datetime(2026, 11, 30),
        ]
    )
    sheet["E2"].number_format = "dd/mm/yyyy"
    sheet["F2"].number_format = "[$-421]dd mmmm yyyy;@"  # an Indonesian long date
    path = tmp_path / "kejadian.xlsx"
    book.save(path)

    assert list(read_rows(path, LIMITS)) == [
        (
            2,
            {
                "tanggal": dt.date(2026, 11, 30),
                "waktu": dt.datetime(2026, 11, 30, 5, 10),
                "tengah_malam": dt.datetime(2026, 11, 30),
                "jam": dt.time(5, 10),
                "tersembunyi": dt.datetime(2026, 11, 30, 5, 10),
                "tanggal_id": dt.date(2026, 11, 30),
            },
        )
    ]
