"""``satubus dataset init`` from the samples agencies' Excel makes: an .xlsx with date and time cells, a CSV separated
by semicolons with decimal commas."""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from openpyxl import Workbook

from satubus.cli import main
from satubus.schemas.drafting import REVIEW, draft
from satubus.schemas.regions import load_regions
from satubus.settings import get_settings

TODAY = dt.date(2026, 11, 30)


@pytest.fixture
def drafts(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    root = tmp_path / "agencies"
    monkeypatch.setenv("SATUBUS_MAPPINGS_DIR", str(root))
    get_settings.cache_clear()
    yield root
    get_settings.cache_clear()


def init(sample: Path, drafts: Path) -> str:
    """The mapping ``dataset init`` drafts from ``sample``."""
    assert main(["dataset", "init", "dlh", "ritase", "--sample", str(sample), "--dir", str(drafts)]) == 0
    return (drafts / "dlh" / "ritase.mapping.yaml").read_text(encoding="utf-8")


def line_of(mapping: str, name: str) -> str:
    return next(line for line in mapping.splitlines() if line.startswith(f"  {name}:"))


def test_xlsx_date_and_time_cells_are_drafted_as_times_to_review(
    drafts: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    book = Workbook()
    sheet = book.active
    sheet.append(["ID Trip", "Berat", "Berangkat", "Tanggal Lapor"])
    sheet.append(["T1", 7.5, dt.datetime(2026, 11, 30, 5, 10), dt.date(2026, 11, 30)])
    sheet.append(["T2", 3, dt.datetime(2026, 11, 30, 7, 0), dt.date(2026, 11, 29)])
    sheet.append(["T3", 0.5, dt.datetime(2026, 11, 30, 0, 0), None])
    sample = tmp_path / "ritase.xlsx"
    book.save(sample)

    mapping = init(sample, drafts)

    assert "datetime: '%Y-%m-%dT%H:%M:%S'" in line_of(mapping, "berangkat")
    assert line_of(mapping, "berangkat").endswith(
        f"{REVIEW}: looks like a time: spreadsheet time cells, written %Y-%m-%dT%H:%M:%S on upload"
    )
    assert "date: '%Y-%m-%d', optional: true}" in line_of(mapping, "tanggal_lapor")
    assert REVIEW in line_of(mapping, "tanggal_lapor")
    schema = json.loads((drafts / "dlh" / "ritase.avsc").read_text(encoding="utf-8"))
    types = {f["name"]: f["type"] for f in schema["fields"]}
    assert types == {"id_trip": "string", "berat": "double", "berangkat": "string", "tanggal_lapor": ["null", "string"]}
    capsys.readouterr()

    # The draft reads the sample's cells as upload writes them: Jakarta local times.
    mapping_file = drafts / "dlh" / "ritase.mapping.yaml"
    assert main(["dataset", "test", str(mapping_file), "--sample", str(sample), "--json"]) == 0
    records = [json.loads(line)["record"] for line in capsys.readouterr().out.splitlines()]
    assert [(r["berangkat"], r["tanggal_lapor"]) for r in records] == [
        ("2026-11-29T22:10:00Z", "2026-11-30"),
        ("2026-11-30T00:00:00Z", "2026-11-29"),
        ("2026-11-29T17:00:00Z", None),
    ]


def test_time_of_day_cells_are_marked_for_review() -> None:
    rows = [{"ID": "T1", "Jam": dt.time(5, 10)}, {"ID": "T2", "Jam": dt.time(7, 0)}]
    drafted = draft("dlh", "ritase", rows, load_regions(), TODAY)
    jam = next(c for c in drafted.columns if c.name == "jam")
    assert (jam.avro, jam.kind) == ("string", None)
    assert jam.notes == [
        "has spreadsheet cells of a time of day alone, which upload refuses: put the date in them too, or format "
        "the column as text"
    ]
    assert f"{REVIEW}: has spreadsheet cells of a time of day alone" in drafted.mapping


def test_a_semicolon_csv_with_decimal_commas_is_drafted(drafts: Path, tmp_path: Path) -> None:
    sample = tmp_path / "ritase.csv"
    sample.write_text(
        "ID Trip;Berat;Jam;Catatan\r\nT1;7,5;30-11-2026 05:10;ok, lengkap\r\nT2;3;30-11-2026 07:00;\r\n",
        encoding="utf-8-sig",
    )

    mapping = init(sample, drafts)

    schema = json.loads((drafts / "dlh" / "ritase.avsc").read_text(encoding="utf-8"))
    types = {f["name"]: f["type"] for f in schema["fields"]}
    assert types == {"id_trip": "string", "berat": "double", "jam": "string", "catatan": ["null", "string"]}
    assert "datetime: '%d-%m-%Y %H:%M'" in line_of(mapping, "jam")
