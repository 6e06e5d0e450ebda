"""``satubus dataset init`` and ``test`` on the worked example's sample, and what ``apply`` refuses before it needs
any service."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import pytest

from satubus.cli import main
from satubus.schemas.drafting import REVIEW, draft, field_name
from satubus.schemas.metadata import load_metadata
from satubus.schemas.regions import load_regions
from satubus.settings import get_settings

EXAMPLE = Path(__file__).parents[2] / "docs" / "examples" / "dlh-ritase"
SAMPLE = EXAMPLE / "ritase.csv"


@pytest.fixture
def agencies(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    root = tmp_path / "agencies"
    monkeypatch.setenv("SATUBUS_MAPPINGS_DIR", str(root))
    get_settings.cache_clear()
    yield root
    get_settings.cache_clear()


def test_the_draft_guesses_types_key_kelurahan_nik_and_times() -> None:
    rows = [
        {"ID Trip": "T1", "Kelurahan": "Gambir", "NIK": "3171011505850001", "Berat": "7,5", "Jam": "30-11-2026 05:10"},
        {"ID Trip": "T2", "Kelurahan": "Menteng", "NIK": "3172020101800002", "Berat": "3", "Jam": "30-11-2026 07:00"},
        {"ID Trip": "T3", "Kelurahan": "31.71.01.1005", "NIK": "", "Berat": "0.5", "Jam": "30-11-2026 09:45"},
    ]
    drafted = draft("dlh", "ritase", rows, load_regions(), dt.date(2026, 11, 30))
    types = {f["name"]: f["type"] for f in drafted.schema["fields"]}
    assert types == {
        "id_trip": "string",
        "kelurahan": "string",
        "nik": ["null", "string"],
        "berat": "double",
        "jam": "string",
    }
    assert "key: id_trip" in drafted.mapping
    assert "kelurahan_code:" in drafted.mapping and "kecamatan_code:" in drafted.mapping
    assert "person_id:" in drafted.mapping and "pseudonym: nik" in drafted.mapping
    assert "datetime: '%d-%m-%Y %H:%M'" in drafted.mapping
    assert drafted.mapping.count(REVIEW) == 3  # kelurahan, NIK, time
    assert field_name("No. Polisi") == "no_polisi" and field_name("2nd") == "f_2nd"


def test_a_sample_without_a_possible_key_is_refused() -> None:
    with pytest.raises(ValueError, match="needs a key"):
        draft("dlh", "x", [{"a": "1"}, {"a": "1"}], load_regions(), dt.date(2026, 11, 30))


def test_init_then_test_shows_each_row_and_apply_refuses_a_draft_still_marked(
    agencies: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["dataset", "init", "dlh", "ritase", "--sample", str(SAMPLE), "--dir", str(agencies)]) == 0
    mapping = agencies / "dlh" / "ritase.mapping.yaml"
    assert REVIEW in mapping.read_text(encoding="utf-8")
    again = ["dataset", "init", "dlh", "ritase", "--sample", str(SAMPLE), "--dir", str(agencies)]
    assert main(again) == 2  # the draft exists: --force to draft it again
    capsys.readouterr()

    # apply refuses each file until it is reviewed: the schema's docs, then the metadata, then the mapping's guesses.
    assert main(["dataset", "apply", "dlh", "ritase", "--dir", str(agencies)]) != 0
    assert "ritase.avsc: line(s) 5, 7, 8" in capsys.readouterr().err
    reviewed("ritase.avsc", agencies)
    assert main(["dataset", "apply", "dlh", "ritase", "--dir", str(agencies)]) != 0
    assert "ritase.metadata.yaml: line(s) 3, 4, 6, 7, 14, 15, 16 still carry # REVIEW" in capsys.readouterr().err
    reviewed("ritase.metadata.yaml", agencies)
    assert main(["dataset", "apply", "dlh", "ritase", "--dir", str(agencies)]) != 0
    assert "ritase.mapping.yaml: line(s) 12, 14, 17, 18 still carry # REVIEW" in capsys.readouterr().err
    reviewed("ritase.mapping.yaml", agencies)  # with its value rules: three of the six rows break one
    assert load_metadata("dlh", "ritase", agencies).classification == "terbatas"

    report = agencies / "rejected.csv"
    assert main(["dataset", "test", str(mapping), "--sample", str(SAMPLE), "--json", "--report", str(report)]) == 1
    rows = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [r["row"] for r in rows] == [2, 3, 4, 5, 6, 7]
    assert [bool(r["record"]) for r in rows] == [True, True, True, False, False, False]
    assert rows[0]["record"]["kelurahan_code"] == "31.71.01.1001"
    assert "3171011505850001" not in json.dumps(rows)
    assert rows[3]["problems"] == ["tonase: rule min: -2 is below 0 [out_of_range]"]
    assert "[failed_rule]" in rows[4]["problems"][0] and "[unknown_region]" in rows[5]["problems"][0]
    assert report.read_text(encoding="utf-8").splitlines()[0] == "row,problem"


def reviewed(name: str, agencies: Path) -> None:
    """The worked example's file, as a person leaves it after reviewing the draft."""
    (agencies / "dlh" / name).write_text((EXAMPLE / name).read_text(encoding="utf-8"), encoding="utf-8")


def test_a_row_that_does_not_fit_the_schema_names_the_field(agencies: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (agencies / "dlh").mkdir(parents=True)
    for name in ("ritase.avsc", "ritase.mapping.yaml"):
        (agencies / "dlh" / name).write_text((EXAMPLE / name).read_text(encoding="utf-8"), encoding="utf-8")
    sample = agencies / "one.json"
    row = {"id_ritase": "R1", "no_polisi": "B 1 A", "kode_tps": "T", "kelurahan": "Gambir", "jenis_sampah": "B3"}
    sample.write_text(json.dumps([{**row, "tonase": "banyak", "waktu_berangkat": "x", "waktu_tiba": "y"}]))
    assert main(["dataset", "test", str(agencies / "dlh" / "ritase.mapping.yaml"), "--sample", str(sample)]) == 1
    out = capsys.readouterr().out
    assert out.startswith("row 1: REJECTED tonase:") and "[schema]" in out
