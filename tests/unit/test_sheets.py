"""Hostile spreadsheets against producers/sheets.py: each is refused whole, with the limit it broke and what to do,
in bounded time (the timeouts stop a regression that would loop), and reports written back cannot run formulas."""

from __future__ import annotations

import csv
import zipfile
from pathlib import Path

import pytest
from openpyxl import Workbook

from satubus.producers.sheets import Limits, SheetRefused, neutralised, read_header, read_rows, write_report

LIMITS = Limits(max_file_bytes=200_000, max_rows=50, max_cell_chars=100)
SHEET = "xl/worksheets/sheet1.xml"
bounded = pytest.mark.timeout(30, method="thread")


def workbook(tmp_path: Path, rows: list[list[object]]) -> Path:
    book = Workbook()
    for values in rows:
        book.active.append(values)
    path = tmp_path / "siswa.xlsx"
    book.save(path)
    return path


def with_sheet_xml(path: Path, xml: str) -> Path:
    """The workbook with its first sheet's XML replaced, as a hand-made file could have it."""
    hostile = path.with_name("hostile.xlsx")
    with zipfile.ZipFile(path) as original, zipfile.ZipFile(hostile, "w", zipfile.ZIP_DEFLATED) as copy:
        for member in original.infolist():
            copy.writestr(member, xml if member.filename == SHEET else original.read(member))
    return hostile


def sheet_xml(rows: str, *, prologue: str = "", dimension: str = "A1:B2") -> str:
    return (
        f'<?xml version="1.0" encoding="UTF-8"?>{prologue}'
        '<worksheet xmlns="http://schemas.openxmlformats.org/spreadsheetml/2006/main">'
        f'<dimension ref="{dimension}"/><sheetData>{rows}</sheetData></worksheet>'
    )


def inline(ref: str, text: str) -> str:
    return f'<c r="{ref}" t="inlineStr"><is><t>{text}</t></is></c>'


HEADER_ROW = f'<row r="1">{inline("A1", "NISN")}{inline("B1", "Nama")}</row>'


def refused(path: Path) -> str:
    with pytest.raises(SheetRefused) as caught:
        read_header(path, LIMITS)
        list(read_rows(path, LIMITS))
    return str(caught.value)


def test_a_file_over_the_size_limit_is_refused_unopened(tmp_path: Path) -> None:
    path = tmp_path / "siswa.csv"
    path.write_bytes(b"NISN,Nama\n" + b"1,x\n" * 60_000)
    assert "more than 200,000 (SATUBUS_UPLOAD_MAX_FILE_BYTES): split it" in refused(path)


@bounded
def test_a_zip_bomb_is_refused_before_it_is_parsed(tmp_path: Path) -> None:
    padding = " " * 5_000_000  # unpacks to 25 times the file limit; packs to a few kilobytes
    path = with_sheet_xml(workbook(tmp_path, [["NISN"]]), sheet_xml(HEADER_ROW + padding))
    assert path.stat().st_size < LIMITS.max_file_bytes
    assert "more than 2,000,000 (10 times SATUBUS_UPLOAD_MAX_FILE_BYTES)" in refused(path)


@bounded
@pytest.mark.parametrize(
    "prologue",
    [
        '<!DOCTYPE w [<!ENTITY a "aaaaaaaaaa"><!ENTITY b "&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;">]>',  # billion laughs
        '<!DOCTYPE w [<!ENTITY x SYSTEM "file:///etc/passwd">]>',  # XXE
    ],
    ids=["entity expansion", "external entity"],
)
def test_entities_are_refused(tmp_path: Path, prologue: str) -> None:
    rows = HEADER_ROW + f'<row r="2">{inline("A2", "1")}{inline("B2", "&b;&x;")}</row>'
    path = with_sheet_xml(workbook(tmp_path, [["NISN", "Nama"]]), sheet_xml(rows, prologue=prologue))
    message = refused(path)
    assert "cannot be read safely" in message and "Forbidden" in message
    assert "root:" not in message


@bounded
def test_a_sheet_claiming_every_column_and_row_is_read_as_wide_as_its_header(tmp_path: Path) -> None:
    """A few bytes claim 16,384 columns by 1,048,576 rows: openpyxl would pad every row to that width."""
    rows = HEADER_ROW + f'<row r="2">{inline("A2", "1")}{inline("XFD2", "far")}</row>'
    path = with_sheet_xml(workbook(tmp_path, [["NISN"]]), sheet_xml(rows, dimension="A1:XFD1048576"))
    assert read_header(path, LIMITS) == ["NISN", "Nama"]
    assert list(read_rows(path, LIMITS)) == [(2, {"NISN": "1", "Nama": None})]


@bounded
def test_a_row_beyond_the_row_limit_refuses_the_file(tmp_path: Path) -> None:
    far = HEADER_ROW + f'<row r="1048576">{inline("A1048576", "1")}</row>'  # the rows between: empty
    path = with_sheet_xml(workbook(tmp_path, [["NISN"]]), sheet_xml(far))
    assert "a row 52, beyond its first 50 data rows (SATUBUS_UPLOAD_MAX_ROWS)" in refused(path)
    csv_path = tmp_path / "siswa.csv"
    csv_path.write_text("NISN\n" + "1\n" * 51, encoding="utf-8")
    assert "a row 52, beyond its first 50 data rows" in refused(csv_path)
    csv_path.write_text("NISN\n" + "1\n" * 50, encoding="utf-8")
    assert len(list(read_rows(csv_path, LIMITS))) == 50


def test_a_header_wider_than_any_dataset_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "siswa.csv"
    path.write_text(",".join(f"c{n}" for n in range(1001)) + "\n", encoding="utf-8")
    assert "more than 1000 columns" in refused(path)


def test_a_csv_the_csv_module_cannot_read_is_refused_with_its_line(tmp_path: Path) -> None:
    path = tmp_path / "siswa.csv"
    path.write_text("NISN,Nama\n1,x\n2," + "y" * 140_000 + "\n", encoding="utf-8")
    assert "siswa.csv, line 3: field larger than field limit" in refused(path)
    path.write_bytes("NISN,Nama\n1,Siti\n".encode("utf-16"))
    assert "is not UTF-8" in refused(path)


def test_formula_like_cells_written_back_are_made_text(tmp_path: Path) -> None:
    hostile = ['=HYPERLINK("http://x","y")', "+1+1", "-2+3", "@SUM(A1)", "\t=1", "\r=1"]
    path = tmp_path / "report.csv"
    write_report(path, ("row", "field", "reason"), [(2, cell, "ok") for cell in hostile] + [(3, "nisn", "- x")])
    with path.open(newline="", encoding="utf-8") as f:
        written = list(csv.reader(f))
    assert [line[1] for line in written[1:-1]] == ["'" + cell for cell in hostile]
    assert written[-1] == ["3", "nisn", "'- x"]
    assert [neutralised(v) for v in (5, "nisn", "a=b", None)] == [5, "nisn", "a=b", None]
