"""Decoded records shown field by field: personal fields masked by kind, the rest readable."""

from __future__ import annotations

import datetime as dt
import json
import uuid
from typing import Any

import pytest

from satubus.schemas.masking import mask_words, star_after_first_digits
from satubus.schemas.personal_data import mask_record, masker_of

NIK = "3171064808850001"
KK = "3171060101200003"
NAME = "SITI RAHMAWATI"
STREET = "Jl. Kebon Sirih No. 12"
EVENT_ID = uuid.UUID("6f1c2a3b-4d5e-4f60-8a7b-9c0d1e2f3a4b")


def penduduk_event(nik: str = NIK, **record: Any) -> dict[str, Any]:
    """A Dukcapil event as the serde decodes it: the key is the NIK."""
    after = {
        "nik": nik,
        "no_kk": KK,
        "nama_lgkp": NAME,
        "tgl_lhr": "08-08-1985",
        "jenis_klmin": "PEREMPUAN",
        "alamat": STREET,
        "no_rt": "3",
        "no_rw": "5",
        "kode_kel": "3171061001",
        "nama_kel": "KAMPUNG MELAYU",
        "stat_hidup": "HIDUP",
        "tgl_mati": None,
    }
    return {
        "event_id": EVENT_ID,
        "op": "c",
        "occurred_at": dt.datetime(2026, 11, 28, 3, 15, tzinfo=dt.UTC),
        "source": {"agency": "dukcapil", "system": "siak", "version": "2.1"},
        "key": nik,
        "version": 3,
        "after": after | record,
        "before": None,
    }


def test_a_residents_personal_fields_are_masked_and_the_rest_is_readable() -> None:
    masked = mask_record(penduduk_event())
    assert masked["after"] == {
        "nik": "3171************",
        "no_kk": "3171************",
        "nama_lgkp": "S*** R********",
        "tgl_lhr": "**-**-1985",
        "jenis_klmin": "PEREMPUAN",
        "alamat": "<masked, 22 chars>",
        "no_rt": "3",
        "no_rw": "5",
        "kode_kel": "3171061001",
        "nama_kel": "KAMPUNG MELAYU",
        "stat_hidup": "HIDUP",
        "tgl_mati": None,
    }
    assert masked["key"] == "3171************"
    assert (masked["event_id"], masked["occurred_at"], masked["version"]) == (
        str(EVENT_ID),
        "2026-11-28T03:15:00+00:00",
        3,
    )
    shown = json.dumps(masked)  # the result is plain JSON
    for clear in (NIK, KK, NAME, "RAHMAWATI", STREET, "Kebon", "08-08-1985"):
        assert clear not in shown


def test_a_malformed_nik_used_as_the_key_is_masked_there_too() -> None:
    short = NIK[:15]  # not 16 digits: free text alone would not know it for a NIK
    masked = mask_record(penduduk_event(short))
    assert masked["key"] == masked["after"]["nik"] == "3171***********"


@pytest.mark.parametrize(
    "hostile",
    ["3171 0648 0885 0001", "317106.480885.0001", "31710648O8850001", " 3171064808850001 ", "3171-06-480885-0001"],
)
def test_a_nik_field_shows_only_its_first_four_digits_whatever_was_written(hostile: str) -> None:
    masked = mask_record(penduduk_event(hostile))
    assert sum(c.isdigit() for c in masked["after"]["nik"]) == 4
    assert sum(c.isdigit() for c in masked["key"]) <= 4


def test_an_enrolment_keeps_the_year_of_birth_and_the_schools_name() -> None:
    enrolment = {
        "nisn": "0012345678",
        "nik": None,
        "nama": "Budi Santoso",
        "tanggal_lahir": dt.date(2012, 5, 17),
        "nama_sekolah": "SD Negeri 01 Menteng",
        "tingkat": 6,
        "penerima_kjp": True,
    }
    assert mask_record(enrolment) == enrolment | {"nama": "B*** S******", "tanggal_lahir": "2012-**-**"}


def test_text_and_binary_values_are_masked_whatever_their_field() -> None:
    masked = mask_record(
        {
            "uraian": "Saya Siti, NIK 3171 0648 0885 0001, lahir 08-08-1985",
            "catatan_petugas": f"ditelepon ke {NIK}",
            "raw": b"\x00\x20SITI RAHMAWATI",
            "data": json.dumps({"full_name": "Siti Rahmawati", "birth_date": "1985-08-08", "address": STREET}),
            "diagnosa_icd10": "J06.9",
            "kode_faskes": "P3171060101",
        }
    )
    assert masked == {
        "uraian": "S*** S***, N** 3171 **** **** ****, l**** **-**-1985",
        "catatan_petugas": "d******** k* 3171************",
        "raw": ". S*** R********",
        "data": '{"full_name": "S*** R********", "birth_date": "1985-**-**", "address": "<masked, 22 chars>"}',
        "diagnosa_icd10": "<masked, 5 chars>",
        "kode_faskes": "P3171060101",
    }


def test_the_fields_a_mapping_declares_as_niks_are_masked_whatever_their_name() -> None:
    masked = mask_record({"id_warga": NIK, "pemilik": NIK[:12]}, identity_fields=["id_warga", "pemilik"])
    assert masked == {"id_warga": "3171************", "pemilik": "3171********"}


@pytest.mark.parametrize(
    ("field", "masker"),
    [
        ("nik", star_after_first_digits),
        ("NIK", star_after_first_digits),
        ("nik_pasien", star_after_first_digits),
        ("nik_wp", star_after_first_digits),
        ("no_kk", star_after_first_digits),
        ("nomor_kartu_keluarga", star_after_first_digits),
        ("no_hp", star_after_first_digits),
        ("phoneNumber", star_after_first_digits),
        ("nama_lgkp", mask_words),
        ("nama_penerima", mask_words),
        ("nama_ibu", mask_words),
        ("full_name", mask_words),
        ("fullName", mask_words),
        ("email", mask_words),
        ("tempat_lahir", mask_words),
        ("birth_place", mask_words),
        ("uraian", mask_words),
        ("nama_kel", None),
        ("nama_sekolah", None),
        ("school_name", None),
        ("kode_kel_domisili", None),
        ("nisn", None),
        ("jenis_klmin", None),
        ("tgl_mati", None),
        ("kelurahan_op", None),
        ("status", None),
    ],
)
def test_fields_are_known_by_the_words_of_their_names(field: str, masker: object) -> None:
    assert masker_of(field) is masker


@pytest.mark.parametrize(
    "field", ["tgl_lhr", "tanggal_lahir", "birth_date", "date_of_birth", "dob", "birthDate", "TGL_LAHIR"]
)
def test_dates_of_birth_are_known_in_both_languages(field: str) -> None:
    assert mask_record({field: "1985-08-08"}) == {field: "1985-**-**"}
    assert mask_record({field: dt.date(1985, 8, 8)}) == {field: "1985-**-**"}


@pytest.mark.parametrize("field", ["alamat", "alamat_op", "address", "street", "nama_jalan", "alamat_domisili"])
def test_addresses_are_replaced_whole(field: str) -> None:
    assert mask_record({field: STREET}) == {field: "<masked, 22 chars>"}
