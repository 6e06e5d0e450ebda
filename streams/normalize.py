"""Dukcapil resident events -> canonical ``Person``: pure functions, no Kafka.

A record is either normalized completely or rejected with the field and the reason; nothing is guessed.
"""

from __future__ import annotations

import datetime as dt
import string
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from schemas.models import Person
from schemas.nik import InvalidNik, NikInfo, Sex, parse_nik
from schemas.pseudonym import PersonId, household_id, person_id
from schemas.regions import Regions
from streams.errors import Rejected

CLOCK_SKEW = dt.timedelta(minutes=5)

_SEX: dict[str, Sex] = {
    "LAKI-LAKI": "MALE",
    "L": "MALE",
    "1": "MALE",
    "PEREMPUAN": "FEMALE",
    "P": "FEMALE",
    "2": "FEMALE",
}
_LIFE = {"HIDUP": False, "MATI": True}


@dataclass(frozen=True, slots=True)
class Deletion:
    """The source deleted the record: the unified topic gets a tombstone for this id."""

    person_id: PersonId


def normalize_resident(
    event: Mapping[str, Any], *, pseudonym_key: bytes, regions: Regions, now: dt.datetime
) -> Person | Deletion:
    occurred_at: dt.datetime = event["occurred_at"]
    if occurred_at > now + CLOCK_SKEW:
        raise Rejected("occurred_at", "future_event", f"event time {occurred_at.isoformat()} is in the future")
    after = event["after"]
    if event["op"] == "d" or after is None:
        nik = event["key"].strip()
        _nik_info(nik, now.date())
        return Deletion(person_id(pseudonym_key, nik))

    nik = after["nik"].strip()
    nik_info = _nik_info(nik, now.date())
    birth_date = _date(after["tgl_lhr"], "tgl_lhr")
    if birth_date > now.date():
        raise Rejected("tgl_lhr", "future_date", "birth date is in the future")
    sex = _SEX.get(after["jenis_klmin"].strip().upper())
    if sex is None:
        raise Rejected("jenis_klmin", "unknown_code", f"{after['jenis_klmin']!r} is not LAKI-LAKI or PEREMPUAN")
    if (nik_info.birth_date.day, nik_info.birth_date.month, nik_info.birth_date.year % 100) != (
        birth_date.day,
        birth_date.month,
        birth_date.year % 100,
    ):
        raise Rejected("nik", "nik_mismatch", "birth date encoded in the NIK differs from tgl_lhr")
    if nik_info.sex != sex:
        raise Rejected("nik", "nik_mismatch", "sex encoded in the NIK differs from jenis_klmin")

    family_card = after["no_kk"].strip()
    if len(family_card) != 16 or not family_card.isdigit():
        raise Rejected("no_kk", "invalid_kk", "family card number must be 16 digits")

    kelurahan = regions.kelurahan(after["kode_kel"])
    if kelurahan is None and after.get("nama_kel"):
        kelurahan = regions.kelurahan_named(after["nama_kel"])
    if kelurahan is None:
        raise Rejected("kode_kel", "unknown_region", f"{after['kode_kel']!r} is not a kelurahan of DKI Jakarta")
    kecamatan_code = kelurahan.parent_code

    life = _LIFE.get(after["stat_hidup"].strip().upper())
    if life is None:
        raise Rejected("stat_hidup", "unknown_code", f"{after['stat_hidup']!r} is not HIDUP or MATI")
    deceased_on = _date(after["tgl_mati"], "tgl_mati") if life and after.get("tgl_mati") else None

    name = " ".join(after["nama_lgkp"].split())
    if not name:
        raise Rejected("nama_lgkp", "missing_value", "name is empty")

    return Person(
        person_id=person_id(pseudonym_key, nik),
        household_id=household_id(pseudonym_key, family_card),
        full_name=string.capwords(name),
        birth_date=birth_date,
        sex=sex,
        address=f"{' '.join(after['alamat'].split())} RT {_unit(after['no_rt'])}/RW {_unit(after['no_rw'])}",
        kelurahan_code=kelurahan.code,
        kecamatan_code=kecamatan_code,
        kota_code=kecamatan_code.rsplit(".", 1)[0],
        is_deceased=life,
        deceased_on=deceased_on,
        version=event["version"],
        updated_at=occurred_at.astimezone(dt.UTC),
        source_event_id=str(event["event_id"]),
    )


def _nik_info(nik: str, today: dt.date) -> NikInfo:
    try:
        return parse_nik(nik, today=today)
    except InvalidNik as exc:
        raise Rejected("nik", "invalid_nik", str(exc)) from exc


def _date(value: str, field: str) -> dt.date:
    try:
        return dt.datetime.strptime(value.strip(), "%d-%m-%Y").date()
    except ValueError as exc:
        raise Rejected(field, "invalid_date", f"{value!r} is not a DD-MM-YYYY date") from exc


def _unit(value: str) -> str:
    """RT/RW numbers are written '3', '03' or '003': always three digits."""
    digits = value.strip()
    return digits.zfill(3) if digits.isdigit() else digits
