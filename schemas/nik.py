"""The rules of the NIK (Nomor Induk Kependudukan), as pure functions.

16 digits: province (2) + kota/kabupaten (2) + kecamatan (2) where the NIK was first issued, birth date DDMMYY
with 40 added to the day for women, and a serial 0001-9999. There is no check digit. The kecamatan part is
where the NIK was issued, which may since have been split or renumbered, so an unknown prefix is reported as a
warning rather than a reason to reject the record.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Literal

from satubus.schemas.masking import mask_identity_numbers

Sex = Literal["MALE", "FEMALE"]


@dataclass(frozen=True, slots=True)
class NikInfo:
    kecamatan_code: str  # dotted, e.g. 31.71.06
    birth_date: dt.date
    sex: Sex
    serial: str


class InvalidNik(ValueError):
    """The value cannot be a NIK; the message says why, never the NIK itself."""


def parse_nik(nik: str, *, today: dt.date | None = None) -> NikInfo:
    """Check the structure of a NIK and read what it encodes. Raises ``InvalidNik``."""
    if len(nik) != 16 or not nik.isdigit():
        raise InvalidNik("NIK must be exactly 16 digits")
    day, month, year2 = int(nik[6:8]), int(nik[8:10]), int(nik[10:12])
    sex: Sex = "FEMALE" if day > 40 else "MALE"
    if day > 40:
        day -= 40
    today = today or dt.date.today()
    # Two-digit year: the latest century that does not put the birth date in the future.
    century = 2000 if 2000 + year2 <= today.year else 1900
    try:
        birth_date = dt.date(century + year2, month, day)
    except ValueError as exc:
        raise InvalidNik("NIK encodes an impossible birth date") from exc
    if birth_date > today:
        birth_date = birth_date.replace(year=birth_date.year - 100)
    serial = nik[12:16]
    if serial == "0000":
        raise InvalidNik("NIK serial 0000 is never issued")
    return NikInfo(f"{nik[0:2]}.{nik[2:4]}.{nik[4:6]}", birth_date, sex, serial)


def mask_nik(text: str) -> str:
    """Every NIK and KK number in ``text``, written whole or in groups ('3171 0648 0885 0001'), with only its
    first 4 digits left (see satubus/schemas/masking.py, which also masks dates of birth: ``mask_text``)."""
    return mask_identity_numbers(text)
