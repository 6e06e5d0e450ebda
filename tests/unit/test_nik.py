import datetime as dt

import pytest
from hypothesis import given
from hypothesis import strategies as st
from lokal import parse_nik as reference_parse_nik

from satubus.schemas.nik import InvalidNik, mask_nik, parse_nik

TODAY = dt.date(2026, 11, 28)


def test_male_nik_encodes_birth_date_and_kecamatan() -> None:
    info = parse_nik("3171061508950001", today=TODAY)
    assert info.kecamatan_code == "31.71.06"
    assert info.birth_date == dt.date(1995, 8, 15)
    assert info.sex == "MALE"
    assert info.serial == "0001"


def test_women_have_forty_added_to_the_day() -> None:
    info = parse_nik("3171065508950002", today=TODAY)
    assert info.birth_date == dt.date(1995, 8, 15)
    assert info.sex == "FEMALE"


def test_two_digit_year_never_lands_in_the_future() -> None:
    assert parse_nik("3171060101260001", today=TODAY).birth_date == dt.date(2026, 1, 1)
    assert parse_nik("3171060112260001", today=TODAY).birth_date == dt.date(1926, 12, 1)
    assert parse_nik("3171060101270001", today=TODAY).birth_date == dt.date(1927, 1, 1)


@pytest.mark.parametrize(
    ("nik", "reason"),
    [
        ("317106150895000", "16 digits"),
        ("31710615089500011", "16 digits"),
        ("31710615O8950001", "16 digits"),
        ("3171063102950001", "impossible birth date"),
        ("3171067208950001", "impossible birth date"),  # day 72 - 40 = 32
        ("3171061508950000", "serial 0000"),
    ],
)
def test_invalid_niks_are_refused_with_the_reason(nik: str, reason: str) -> None:
    with pytest.raises(InvalidNik, match=reason) as caught:
        parse_nik(nik, today=TODAY)
    assert nik not in str(caught.value)


@given(
    kecamatan=st.sampled_from(["317106", "310102", "317407", "327101"]),
    birth=st.dates(min_value=dt.date(1927, 1, 1), max_value=TODAY),
    female=st.booleans(),
    serial=st.integers(min_value=1, max_value=9999),
)
def test_agrees_with_an_independent_implementation(kecamatan: str, birth: dt.date, female: bool, serial: int) -> None:
    nik = f"{kecamatan}{birth.day + 40 * female:02d}{birth:%m%y}{serial:04d}"
    ours = parse_nik(nik, today=TODAY)
    theirs = reference_parse_nik(nik, reference_date=TODAY)
    assert theirs.valid
    assert ours.birth_date.isoformat() == theirs.birth_date
    assert ours.sex == ("FEMALE" if theirs.gender == "P" else "MALE")


def test_mask_hides_every_sixteen_digit_run_but_keeps_other_numbers() -> None:
    text = "nik=3171061508950001, kk 3171061234567890; rt 003, phone 081234567890"
    masked = mask_nik(text)
    assert "3171061508950001" not in masked
    assert "3171061234567890" not in masked
    assert "3171************" in masked
    assert "rt 003, phone 081234567890" in masked
    assert mask_nik("0" + "3171061508950001") == "0317*************"  # a NIK touching another digit
    assert mask_nik("123456789012345") == "123456789012345"  # 15 digits: shorter than any NIK
