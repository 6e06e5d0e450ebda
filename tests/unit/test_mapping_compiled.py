"""The compiled mapping functions: each spec step behaves as the module docstring says, the fast date path reads
exactly what strptime reads, and remembered region lookups never cross region references."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest

from satubus.schemas.pseudonym import person_id
from satubus.schemas.regions import ReferenceRegion, RegionCode, Regions, load_regions
from satubus.streams.errors import Rejected
from satubus.streams.mapping import Deletion, _time_parser, load_mapping
from tests.samples import DUKCAPIL_RESIDENT, NIK

KEY = b"unit-test-key"
NOW = dt.datetime(2026, 11, 28, 12, 0, tzinfo=dt.UTC)


def apply(agency: str, dataset: str, record: dict[str, Any] | None, regions: Regions | None = None, **env: Any) -> Any:
    event = {"event_id": "e1", "op": "c", "occurred_at": NOW, "key": "k1", "version": 3, "after": record} | env
    mapping = load_mapping(agency, dataset)
    return mapping.apply(event, regions=regions or load_regions(), pseudonym_key=KEY, now=NOW)


def rejection(agency: str, dataset: str, record: dict[str, Any], regions: Regions | None = None) -> tuple[Any, ...]:
    with pytest.raises(Rejected) as caught:
        apply(agency, dataset, record, regions)
    return caught.value.field, caught.value.reason, str(caught.value), caught.value.value


VISIT = {
    "id_kunjungan": "K-1",
    "nik_pasien": NIK,
    "waktu_kunjungan": "2026-11-28 09:30",
    "kode_faskes": "p3171060101",
    "jenis_layanan": "rajal",
    "kode_vaksin": None,
    "diagnosa_icd10": None,
    "kode_kel_domisili": "3171061001",
}

ZONING = {
    "nop": "31.71.060.001.001-0001.0",
    "kode_zona": "r",
    "kode_subzona": None,
    "kdb_maks": 60.0,
    "klb_maks": 1.2,
    "ketinggian_maks": 4,
    "kegiatan_dilarang": ["  industri ", "usaha"],
    "kode_kelurahan": "31.71.06.1001",
    "berlaku_sejak": dt.date(2024, 1, 1),
}


@pytest.mark.parametrize(
    ("fmt", "text"),
    [
        ("%d-%m-%Y", "15-08-1995"),
        ("%d-%m-%Y", "5-8-1995"),  # one-digit day and month: strptime's path
        ("%d-%m-%Y", "31-02-1995"),  # no such day
        ("%d-%m-%Y", "00-01-1995"),
        ("%d-%m-%Y", "15-08-95"),
        ("%d-%m-%Y", "15-08-1995 "),
        ("%d-%m-%Y", "\u0661\u0665-08-1995"),  # Arabic-Indic digits: strptime reads them
        ("%Y/%m/%d", "2024/02/29"),
        ("%Y/%m/%d", "2023/02/29"),
        ("%Y-%m-%d %H:%M", "2026-11-28 09:30"),
        ("%Y-%m-%d %H:%M", "2026-11-28  09:30"),  # strptime takes any run of white space
        ("%Y-%m-%d %H:%M", "2026-11-28 24:00"),
        ("%Y-%m-%d %H:%M", "2026-11-28 9:5"),
        ("%Y-%m-%dT%H:%M:%S", "2026-11-28t09:30:00"),  # strptime ignores case
        ("%Y-%m-%dT%H:%M:%S", "2026-11-28T09:30:60"),
        ("%d/%m %H:%M", "28/11 09:30"),  # no year: strptime's path only
        ("%Y-%m-%d%%", "2026-11-28%"),
        ("%Y-%m-%d %", "2026-11-28 %"),  # a stray % makes the format unusable
    ],
)
def test_the_time_parser_reads_what_strptime_reads_and_refuses_what_it_refuses(fmt: str, text: str) -> None:
    def outcome(parse: Any) -> object:
        try:
            return parse(text)
        except ValueError as exc:
            return ("ValueError", str(exc))

    assert outcome(_time_parser(fmt)) == outcome(lambda t: dt.datetime.strptime(t, fmt))


def test_a_local_time_is_read_in_its_zone_and_a_bad_one_is_refused_in_strptime_terms() -> None:
    assert apply("dinkes", "kunjungan", VISIT).visited_at == dt.datetime(2026, 11, 28, 2, 30, tzinfo=dt.UTC)
    short = VISIT | {"waktu_kunjungan": "2026-11-28 9:30"}
    assert apply("dinkes", "kunjungan", short).visited_at == dt.datetime(2026, 11, 28, 2, 30, tzinfo=dt.UTC)
    assert rejection("dinkes", "kunjungan", VISIT | {"waktu_kunjungan": "2026-11-28 24:00"}) == (
        "waktu_kunjungan",
        "invalid_date",
        "waktu_kunjungan: '2026-11-28 24:00' is not a time like 2026-11-30 14:05 (%Y-%m-%d %H:%M)",
        None,
    )
    assert rejection("dinkes", "kunjungan", VISIT | {"waktu_kunjungan": "2026-11-28 19:30"})[1] == "future_date"


def test_every_step_of_a_field_runs_in_order() -> None:
    visit = apply("dinkes", "kunjungan", VISIT | {"nik_pasien": f" {NIK[:8]} {NIK[8:]} "})
    assert visit.person_id == person_id(KEY, NIK)  # trimmed, digits only, checked as a NIK, pseudonymized
    assert (visit.facility, visit.service, visit.vaccine) == ("P3171060101", "OUTPATIENT", None)
    assert rejection("dinkes", "kunjungan", VISIT | {"nik_pasien": "3171060000000000"})[:2] == (
        "nik_pasien",
        "invalid_nik",
    )
    assert rejection("dinkes", "kunjungan", VISIT | {"kode_faskes": "  "}) == (
        "kode_faskes",
        "missing_value",
        "kode_faskes: kode_faskes is empty",
        None,
    )


def test_a_list_goes_through_the_steps_element_by_element() -> None:
    zoning = apply("citata", "zonasi", ZONING)
    assert (zoning.nop, zoning.zone_code) == ("317106000100100010", "R")
    assert zoning.forbidden_functions == ["INDUSTRIAL", "BUSINESS"]
    assert rejection("citata", "zonasi", ZONING | {"kegiatan_dilarang": ["hunian", "pabrik "]}) == (
        "kegiatan_dilarang",
        "unknown_code",
        "kegiatan_dilarang: 'PABRIK' is not in code list function",
        None,
    )
    assert rejection("citata", "zonasi", ZONING | {"nop": "31.71"}) == (
        "nop",
        "invalid_format",
        "nop: does not match \\d{18}",
        None,
    )


def test_templates_parents_conditions_and_the_first_present_of_several_sources() -> None:
    person = apply("dukcapil", "penduduk", DUKCAPIL_RESIDENT | {"kode_kel": " ", "nama_kel": "Kel. Menteng"})
    assert (person.kelurahan_code, person.kecamatan_code, person.kota_code) == ("31.71.06.1001", "31.71.06", "31.71")
    assert person.address == "Jl. Kenari II No. 5 RT 003/RW 011"
    assert person.deceased_on is None
    living = DUKCAPIL_RESIDENT | {"tgl_mati": "01-02-2024"}
    assert apply("dukcapil", "penduduk", living).deceased_on is None  # only where is_deceased
    assert rejection("dukcapil", "penduduk", DUKCAPIL_RESIDENT | {"kode_kel": "99", "nama_kel": "Atlantis"}) == (
        "kode_kel",
        "unknown_region",
        "kode_kel: '99' / 'Atlantis' is not a kelurahan of DKI Jakarta",
        "99",
    )
    assert rejection("dukcapil", "penduduk", DUKCAPIL_RESIDENT | {"no_rw": None})[:2] == ("no_rw", "missing_value")
    assert rejection("dukcapil", "penduduk", DUKCAPIL_RESIDENT | {"tgl_lhr": "15-08-1996"})[:2] == (
        "nik",
        "nik_mismatch",
    )


def test_envelope_fields_prefixes_padding_and_a_deletion_key() -> None:
    record = {
        "id_kejadian": "B-7",
        "jenis": "banjir",
        "kelurahan": "menteng",
        "waktu_kejadian": NOW - dt.timedelta(hours=1),
        "status": "surut",
        "rw_terdampak": ["3", "12", "RW 4"],
        "tinggi_air_cm": None,
        "pengungsi": 10,
        "meninggal": 0,
        "luka": 1,
        "lintang": None,
        "bujur": None,
    }
    incident = apply("bpbd", "kejadian", record)
    assert (incident.incident_id, incident.agency, incident.version, incident.updated_at) == (
        "bpbd:B-7",
        "bpbd",
        3,
        NOW,
    )
    assert incident.affected_rw == ["003", "012", "RW 4"]
    deletion = apply("bpbd", "kejadian", None, op="d", key=" B-7 ")
    assert deletion == Deletion("incident", "bpbd:B-7")


def test_remembered_region_lookups_belong_to_their_region_reference() -> None:
    menteng = ReferenceRegion(RegionCode("31.71.06.1001"), "kelurahan", "Menteng", RegionCode("31.71.06"))
    other = ReferenceRegion(RegionCode("31.71.06.1002"), "kelurahan", "Pegangsaan", RegionCode("31.71.06"))
    assert apply("citata", "zonasi", ZONING, Regions([menteng])).kelurahan_code == "31.71.06.1001"
    assert rejection("citata", "zonasi", ZONING, Regions([other]))[1] == "unknown_region"
    assert apply("citata", "zonasi", ZONING).kelurahan_code == "31.71.06.1001"
