import datetime as dt
import uuid
from typing import Any

import pytest

from satubus.schemas.pseudonym import household_id, person_id
from satubus.schemas.regions import load_regions
from satubus.streams.errors import Rejected
from satubus.streams.mapping import Deletion, load_mapping
from tests.samples import DUKCAPIL_RESIDENT, NIK

KEY = b"unit-test-key"
NOW = dt.datetime(2026, 11, 28, 12, 0, tzinfo=dt.UTC)


def event(op: str = "c", **changes: Any) -> dict[str, Any]:
    after = DUKCAPIL_RESIDENT | changes
    return {
        "event_id": uuid.UUID("00000000-0000-4000-8000-000000000001"),
        "op": op,
        "occurred_at": NOW - dt.timedelta(seconds=1),
        "source": {"agency": "dukcapil", "system": "siak", "version": "1"},
        "key": NIK,
        "version": 7,
        "after": None if op == "d" else after,
        "before": None,
    }


def normalize(e: dict[str, Any]) -> Any:
    mapping = load_mapping("dukcapil", "penduduk")
    return mapping.apply(e, pseudonym_key=KEY, regions=load_regions(), now=NOW)


def test_a_resident_becomes_the_identity_part_of_a_person() -> None:
    person = normalize(event())
    assert person.model_dump() == {
        "person_id": person_id(KEY, NIK),
        "household_id": household_id(KEY, "3171060101200003"),
        "full_name": "Siti Rahmawati",
        "birth_date": dt.date(1995, 8, 15),
        "sex": "FEMALE",
        "address": "Jl. Kenari II No. 5 RT 003/RW 011",
        "kelurahan_code": "31.71.06.1001",
        "kecamatan_code": "31.71.06",
        "kota_code": "31.71",
        "is_deceased": False,
        "deceased_on": None,
    }


def test_no_clear_nik_in_the_canonical_record() -> None:
    assert NIK not in normalize(event()).model_dump_json()


def test_deceased_residents_carry_the_date_of_death() -> None:
    person = normalize(event(stat_hidup="MATI", tgl_mati="01-02-2024"))
    assert person.is_deceased and person.deceased_on == dt.date(2024, 2, 1)


def test_kelurahan_falls_back_to_the_name_when_the_code_is_unknown() -> None:
    assert normalize(event(kode_kel="9999999999", nama_kel="Kel. Menteng")).kelurahan_code == "31.71.06.1001"


def test_a_delete_becomes_the_removal_of_a_part_whose_person_the_stream_processor_remembers() -> None:
    assert normalize(event(op="d")) == Deletion("person", None)


@pytest.mark.parametrize(
    ("changes", "field", "reason"),
    [
        ({"nik": "31710655089500"}, "nik", "invalid_nik"),
        ({"nik": "3171063102950001"}, "nik", "invalid_nik"),
        ({"nik": "3171061508950002"}, "nik", "nik_mismatch"),  # NIK says male
        ({"tgl_lhr": "16-08-1995"}, "nik", "nik_mismatch"),
        ({"tgl_lhr": "1995-08-15"}, "tgl_lhr", "invalid_date"),
        ({"tgl_lhr": "15-08-2027", "nik": "3171065508270002"}, "tgl_lhr", "future_date"),
        ({"jenis_klmin": "X"}, "jenis_klmin", "unknown_code"),
        ({"no_kk": "12345"}, "no_kk", "invalid_format"),
        ({"kode_kel": "3173020001", "nama_kel": None}, "kode_kel", "unknown_region"),
        ({"stat_hidup": "HILANG"}, "stat_hidup", "unknown_code"),
        ({"nama_lgkp": "   "}, "nama_lgkp", "missing_value"),
    ],
)
def test_bad_records_are_rejected_with_field_and_reason(changes: dict[str, Any], field: str, reason: str) -> None:
    with pytest.raises(Rejected) as caught:
        normalize(event(**changes))
    assert (caught.value.field, caught.value.reason) == (field, reason)
    assert NIK not in str(caught.value)


def test_events_from_the_future_are_rejected() -> None:
    e = event() | {"occurred_at": NOW + dt.timedelta(hours=1)}
    with pytest.raises(Rejected, match="future"):
        normalize(e)
