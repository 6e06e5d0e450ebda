"""``satubus upload`` with real CSV and XLSX files, against the real broker and registry."""

from __future__ import annotations

import csv
import datetime as dt
import subprocess
import sys
from collections import Counter
from pathlib import Path

from openpyxl import Workbook

from satubus.registry import registry_client
from satubus.schemas.topics import agency_topic, value_subject
from satubus.serde import AvroSerde
from satubus.settings import Settings
from tests.integration.conftest import process_env, unanswered_address
from tests.integration.test_dukcapil_end_to_end import read_topic

HEADER = [
    "NISN",
    "Nama",
    "Tanggal Lahir",
    "JK",
    "NPSN",
    "Nama Sekolah",
    "Bentuk Pendidikan",
    "Tingkat",
    "Status",
    "Penerima KJP",
    "Kode Wilayah",
    "Tahun Ajaran",
]
TOPIC = agency_topic("disdik", "peserta_didik")


def student(i: int) -> list[object]:
    return [
        f"{i:010d}",
        f"Siswa {i}",
        "2014-07-01",
        "L" if i % 2 else "P",
        "20100001",
        "SDN Menteng 01",
        "SD",
        str(1 + i % 6),
        "AKTIF",
        "tidak",
        "3173020001",
        "2026/2027",
    ]


def upload(settings: Settings, path: Path, *extra: str, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [
            str(Path(sys.executable).with_name("satubus")),
            "upload",
            "--agency",
            "disdik",
            "--dataset",
            "peserta_didik",
            "--key",
            "NISN",
            str(path),
            *extra,
        ],
        capture_output=True,
        text=True,
        timeout=300,
        env=process_env(settings) | env,
    )


def keys_in_topic(settings: Settings) -> Counter[str]:
    return Counter(m.key().decode() for m in read_topic(settings, TOPIC))


def test_csv_rows_are_published_or_reported_none_lost(bus: Settings, tmp_path: Path) -> None:
    rows = [student(i) for i in range(1, 301)]
    rows[9][7] = "sepuluh"  # spreadsheet row 11: grade is not a number
    rows[99][2] = "31-02-2014"  # row 101: not an ISO date
    rows[199][0] = ""  # row 201: no key
    rows[249][9] = "mungkin"  # row 251: not a boolean
    path = tmp_path / "siswa.csv"
    with path.open("w", newline="", encoding="utf-8") as f:
        csv.writer(f).writerows([HEADER, *rows])
    before = keys_in_topic(bus)

    result = upload(bus, path)
    assert result.returncode == 1, result.stdout + result.stderr
    assert "296 rows published" in result.stdout and "4 rejected" in result.stdout
    assert "300/300 rows" in result.stderr  # the progress bar's last state

    with (tmp_path / "siswa.csv.errors.csv").open(newline="") as f:
        report = [(int(r["row"]), r["field"]) for r in csv.DictReader(f)]
    assert report == [(11, "tingkat"), (101, "tanggal_lahir"), (201, "nisn"), (251, "penerima_kjp")]
    published = keys_in_topic(bus) - before
    assert sum(published.values()) == 296
    assert set(published) == {r[0] for r in rows} - {"", "0000000010", "0000000100", "0000000250"}


def test_xlsx_cells_with_native_types_are_published(bus: Settings, tmp_path: Path) -> None:
    workbook = Workbook()
    sheet = workbook.active
    sheet.append(["Nomor Induk", *HEADER[1:]])
    for i in range(1001, 1051):
        values = student(i)
        values[2] = dt.datetime(2013, 5, 6)  # a date cell
        values[7] = 1 + i % 6  # a number cell
        values[10] = 3173020001  # a code the spreadsheet stored as a number
        sheet.append(values)
    path = tmp_path / "siswa.xlsx"
    workbook.save(path)
    before = keys_in_topic(bus)

    result = upload(bus, path, "--map", "Nomor Induk=nisn", "--key", "Nomor Induk")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "50 rows published" in result.stdout
    with AvroSerde(registry_client(bus)) as serde:
        fresh = [
            serde.decode(m.value(), value_subject(m.topic()))
            for m in read_topic(bus, TOPIC)
            if m.key().decode() not in before
        ]
    assert len(fresh) == 50
    assert {e["after"]["kode_wilayah"] for e in fresh} == {"3173020001"}
    assert {e["after"]["tanggal_lahir"] for e in fresh} == {dt.date(2013, 5, 6)}
    assert {e["op"] for e in fresh} == {"r"}


def test_rows_the_broker_never_acknowledged_are_reported(bus: Settings, tmp_path: Path) -> None:
    down = unanswered_address()
    rows = [student(i) for i in range(1, 21)]
    rows[4][7] = "lima"  # row 6: rejected before sending
    path = tmp_path / "siswa.csv"
    with path.open("w", newline="", encoding="utf-8") as f:
        csv.writer(f).writerows([HEADER, *rows])

    result = upload(bus, path, "--timeout", "3", SATUBUS_KAFKA_BOOTSTRAP=down)
    assert result.returncode == 1, result.stdout + result.stderr
    assert "0 rows published" in result.stdout and "20 rejected" in result.stdout
    with (tmp_path / "siswa.csv.errors.csv").open(newline="") as f:
        report = [(int(r["row"]), r["field"], r["reason"]) for r in csv.DictReader(f)]
    assert [(n, f) for n, f, _ in report] == [(n, "tingkat" if n == 6 else "<broker>") for n in range(2, 22)]
    assert "not published (Local: Message timed out)" in report[0][2]


def test_an_ambiguous_header_publishes_nothing(bus: Settings, tmp_path: Path) -> None:
    path = tmp_path / "siswa.csv"
    with path.open("w", newline="", encoding="utf-8") as f:
        csv.writer(f).writerows([[*HEADER, "Nama"], [*student(1), "Siswa Lain"]])
    before = keys_in_topic(bus)

    result = upload(bus, path, "--map", "Sekolah=nama_sekolah", "--map", "Tingkat=kelas")
    assert result.returncode == 2
    assert "column 'Nama' appears more than once" in result.stderr
    assert "the file has no column 'Sekolah'" in result.stderr
    assert "'kelas' is not a field" in result.stderr
    assert keys_in_topic(bus) == before
