"""Free-text masking: no NIK or KK survives, however written and whatever surrounds it; dates of birth keep their
year; what is not personal stays readable."""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Callable

import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from satubus.schemas.masking import (
    mask_payload,
    mask_payload_start,
    mask_text,
    mask_words,
    star_after_first_digits,
)
from satubus.schemas.nik import mask_nik

NIK = "3171064808850001"
ALPHANUMERIC = re.compile(r"[^\W_]")
MASKERS: list[Callable[[str], str]] = [mask_nik, mask_text, mask_words, mask_payload]

# Every separator people put between a NIK's digit groups, one or several at a time.
SEPARATORS = " ._/-\t\n\u00a0\u2013\u2014\x00\ufffd"
digit = st.one_of(st.sampled_from("0123456789"), st.characters(categories=["Nd"]))
random_nik = st.lists(digit, min_size=16, max_size=16).map("".join)
valid_looking_nik = st.builds(
    lambda kecamatan, born, female, serial: f"{kecamatan}{born.day + 40 * female:02d}{born:%m%y}{serial:04d}",
    st.sampled_from(["317106", "310102", "317407", "327101", "317505"]),
    st.dates(min_value=dt.date(1930, 1, 1), max_value=dt.date(2026, 1, 1)),
    st.booleans(),
    st.integers(min_value=1, max_value=9999),
)


@st.composite
def written(draw: st.DrawFn, nik: st.SearchStrategy[str]) -> tuple[str, list[int]]:
    """A NIK written in groups of any sizes with any separators: the text, and where each of its digits is."""
    digits = draw(nik)
    cuts = sorted(draw(st.sets(st.integers(min_value=1, max_value=15), max_size=15)))
    text, positions = "", []
    for index, char in enumerate(digits):
        if index in cuts:
            text += draw(st.text(alphabet=SEPARATORS, min_size=1, max_size=4))
        positions.append(len(text))
        text += char
    return text, positions


@given(
    nik=st.one_of(written(random_nik), written(valid_looking_nik)),
    before=st.text(max_size=40),
    after=st.text(max_size=40),
    mask=st.sampled_from(MASKERS),
)
@example(nik=(NIK, list(range(16))), before="nik=", after=", kk", mask=mask_nik)
@example(
    nik=("317106.480885.0001", [0, 1, 2, 3, 4, 5, 7, 8, 9, 10, 11, 12, 14, 15, 16, 17]),
    before="",
    after="",
    mask=mask_text,
)
def test_no_digit_of_a_nik_after_its_fourth_survives_masking(
    nik: tuple[str, list[int]], before: str, after: str, mask: Callable[[str], str]
) -> None:
    text, positions = nik
    masked = mask(before + text + after)
    # Masking replaces character for character, so each of the NIK's digits is where it was written.
    assert len(masked) == len(before + text + after)
    hidden = [masked[len(before) + at] for at in positions[4:]]
    assert not any(char.isdecimal() for char in hidden), (text, masked)


@pytest.mark.parametrize(
    ("text", "masked"),
    [
        ("nik=3171064808850001, kk 3171061234567890", "nik=3171************, kk 3171************"),
        ("NIK 3171 0648 0885 0001.", "NIK 3171 **** **** ****."),
        ("317106.480885.0001", "3171**.******.****"),
        ("3171-06-480885-0001", "3171-**-******-****"),
        ("31 71 06 48 08 85 00 01", "31 71 ** ** ** ** ** **"),
        ("3171 / 0648 / 0885 / 0001", "3171 / **** / **** / ****"),
        ("0 3171064808850001", "0 317*************"),  # a digit that touches a NIK is starred with it
    ],
)
def test_niks_and_kks_keep_only_their_first_four_digits(text: str, masked: str) -> None:
    assert mask_text(text) == masked
    assert mask_nik(text) == masked


@pytest.mark.parametrize(
    "text",
    [
        "kelurahan 31.71.06.1001",
        "agency.dukcapil.penduduk.v1:3@123456789",
        "event time 2026-11-28T10:15:00+00:00 is in the future",
        "2026-11-28 10:15:00,123 WARNING retrying in 2.5s",
        "rt 003 rw 005, phone 081234567890",
        "123456789012345",  # 15 digits: shorter than any NIK
        "period 2026-11, 42 events",
    ],
)
def test_what_is_not_personal_stays_readable(text: str) -> None:
    assert mask_text(text) == text


@pytest.mark.parametrize(
    ("text", "masked"),
    [
        ("tgl_lhr: '31-08-1980' is not a date", "tgl_lhr: '**-**-1980' is not a date"),
        ("born 31/08/1980", "born **/**/1980"),
        ("born 31.08.1980", "born **.**.1980"),
        ("born 1980-08-31", "born 1980-**-**"),
        ("born 1980/8/31", "born 1980/*/**"),
        ("born 31 Agustus 1980", "born ** ******* 1980"),
        ("born 5 Aug. 1999", "born * ***. 1999"),
        ("1980-08-31 00:00:00", "1980-**-** 00:00:00"),  # a date of birth that went through a spreadsheet
        ("'31-13-1980' is not a date", "'**-**-1980' is not a date"),  # impossible dates too
    ],
)
def test_dates_of_birth_keep_only_their_year(text: str, masked: str) -> None:
    assert mask_text(text) == masked


@given(
    born=st.dates(min_value=dt.date(1900, 1, 1), max_value=dt.date(2099, 12, 31)),
    form=st.sampled_from(["%d-%m-%Y", "%d/%m/%Y", "%d.%m.%Y", "%Y-%m-%d", "%Y/%m/%d", "%d %B %Y", "%d %b %Y"]),
    around=st.sampled_from(["{}", "lahir {}", "'{}' is not a date", "({})"]),
)
def test_a_birth_date_keeps_its_year_and_nothing_else(born: dt.date, form: str, around: str) -> None:
    date = born.strftime(form)
    year = 0 if form.startswith("%Y") else len(date) - 4
    expected = ALPHANUMERIC.sub("*", date[:year]) + date[year : year + 4] + ALPHANUMERIC.sub("*", date[year + 4 :])
    assert mask_text(around.format(date)) == around.format(expected)


def test_words_keep_their_first_letter() -> None:
    assert mask_words("SITI RAHMAWATI") == "S*** R********"
    assert mask_words("siti.rahma@example.id") == "s***.r****@e******.i*"


def test_a_payload_keeps_its_shape_and_nothing_personal() -> None:
    avro_like = (
        "\x00\x00\x00\x00\x01\x20SITI RAHMAWATI\x2cJl. Kebon Sirih No. 12\x02A\x18081234567890\x02B\x1431-08-1980"
    )
    assert mask_payload(avro_like) == "..... S*** R********,J*. K**** S**** N*. 12.A.0812********.B.**-**-1980"
    assert mask_payload("J\u00d3SE\u00e9") == "J.S*."  # non-ASCII: bytes of a binary number read as letters


def test_an_identity_number_field_keeps_its_first_four_digits_whatever_its_shape() -> None:
    assert star_after_first_digits("3171 0648 0885 0001") == "3171 **** **** ****"
    assert star_after_first_digits("31710615O8950001") == "3171************"
    assert star_after_first_digits("0812-3456-789") == "0812-****-***"
    assert star_after_first_digits("12") == "**"


@given(
    text=st.text(alphabet="0123456789 .-/:_\x00\ufffdTAgustus", max_size=300),
    nik=written(random_nik),
    at=st.integers(min_value=0, max_value=300),
    length=st.integers(min_value=0, max_value=300),
)
def test_the_start_of_a_payload_is_masked_as_the_whole_payload_is(
    text: str, nik: tuple[str, list[int]], at: int, length: int
) -> None:
    payload = text[:at] + nik[0] + text[at:]
    assert mask_payload_start(payload, length) == mask_payload(payload)[:length]
