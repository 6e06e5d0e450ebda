"""Which fields of a decoded record hold personal data, and the record with them masked, for people to read.

A field is personal by its name, in Indonesian or English, whatever the agency: the name is cut into words
('tgl_lhr' -> tgl, lhr; 'birthDate' -> birth, date) and the words decide. Each kind is masked its own way:

- NIK, KK and other identity numbers, phone numbers: the first 4 digits, every other letter and digit starred;
- names, e-mail addresses, places of birth and free text: every word cut to its first letter ('S*** R********');
- addresses and health data: replaced whole by a marker;
- dates of birth: the year only.

Every other text is passed through ``mask_text`` (NIKs and dates of birth written anywhere), and any text that
holds the clear value of a personal field of the same record (a NIK used as the record's key) has it masked too.
A text that holds a JSON object (a canonical part's ``data``) is masked field by field in the same way.

Masking a field that is not personal costs an operator a little reading; missing one that is would show personal
data. So a name ('nama_*', '*_name') is personal unless its other words say what it names (a kelurahan, a school).
"""

from __future__ import annotations

import datetime as dt
import json
import re
from collections.abc import Callable, Collection, Iterator, Mapping
from typing import Any

from satubus.schemas.masking import mask_payload, mask_text, mask_words, star_after_first_digits

Masker = Callable[[str], str]

_BIRTH = frozenset({"lahir", "lhr", "birth", "birthdate", "dob", "born"})
_PLACE = frozenset({"tempat", "tmp", "tmpt", "place", "kota", "city"})
_ADDRESS = frozenset({"alamat", "address", "addr", "street", "jalan", "jln"})
_HEALTH = frozenset({"diagnosa", "diagnosis", "icd10", "penyakit", "keluhan"})  # UU PDP: specific personal data
_NUMBER = frozenset(
    {"nik", "kk", "nkk", "kependudukan", "npwp", "bpjs", "paspor", "passport", "hp", "telepon", "telp", "tlp"}
    | {"phone", "handphone", "ponsel", "mobile"}
)
_FAMILY_CARD = frozenset({"kartu", "keluarga"})  # nomor_kartu_keluarga
_EMAIL = frozenset({"email", "surel"})
_NAME = frozenset({"nama", "name", "nm", "fullname", "firstname", "lastname", "surname"})
# Words that say a name is not a person's: nama_kel, nama_sekolah, school_name.
_NAMED_THING = frozenset(
    {"kel", "kelurahan", "desa", "kec", "kecamatan", "kab", "kabupaten", "prov", "provinsi", "wilayah", "region"}
    | {"sekolah", "school", "faskes", "facility", "puskesmas", "program", "programme", "instansi", "agency", "dinas"}
    | {"usaha", "perusahaan", "company", "bank", "zona", "zone", "layanan", "service", "vaksin", "vaccine"}
    | {"kategori", "category", "dataset", "topic", "schema", "file", "field"}
)
_FREE_TEXT = frozenset({"uraian", "keterangan", "catatan", "komentar", "pesan"})
_WORD_BREAK = re.compile(r"(?<=[a-z0-9])(?=[A-Z])|[^A-Za-z0-9]+")
_YEAR = re.compile(r"(?<!\d)(?:19|20)\d\d(?!\d)")
_ALPHANUMERIC = re.compile(r"[^\W_]")
MIN_SECRET_CHARS = 6  # a shorter clear value would mask common words and numbers elsewhere in the record


def _hidden(text: str) -> str:
    return f"<masked, {len(text)} chars>"


def _year_only(text: str) -> str:
    year = _YEAR.search(text)
    if year is None:
        return _ALPHANUMERIC.sub("*", text)
    return _ALPHANUMERIC.sub("*", text[: year.start()]) + year.group(0) + _ALPHANUMERIC.sub("*", text[year.end() :])


def masker_of(field: str, identity_fields: Collection[str] = ()) -> Masker | None:
    """How the field named ``field`` is masked, or None when it is not personal. ``identity_fields`` are more
    fields known to hold a NIK or KK (a mapping's ``nik``/``pseudonym`` sources), in lower case."""
    if field.lower() in identity_fields:
        return star_after_first_digits
    words = {word.lower() for word in _WORD_BREAK.split(field) if word}
    if words & _BIRTH:
        return mask_words if words & _PLACE else _year_only
    if words & (_ADDRESS | _HEALTH):
        return _hidden
    if words & _NUMBER or words >= _FAMILY_CARD:
        return star_after_first_digits
    if words & _EMAIL or words & _FREE_TEXT or (words & _NAME and not words & _NAMED_THING):
        return mask_words
    return None


def mask_record(record: Mapping[str, Any], *, identity_fields: Collection[str] = ()) -> dict[str, Any]:
    """A copy of a decoded record, safe to show: personal fields masked by kind, every other text through
    ``mask_text``, dates as ISO text, bytes as a masked preview. The result is plain JSON data."""
    known = frozenset(name.lower() for name in identity_fields)
    clear = sorted(set(_personal_texts(record, known)), key=len, reverse=True)
    secrets = re.compile("|".join(map(re.escape, clear)), re.IGNORECASE) if clear else None
    return _mask_mapping(record, None, known, secrets)


def _mask_mapping(
    record: Mapping[str, Any], inherited: Masker | None, known: frozenset[str], secrets: re.Pattern[str] | None
) -> dict[str, Any]:
    return {
        name: _mask_value(value, masker_of(name, known) or inherited, known, secrets) for name, value in record.items()
    }


def _mask_value(value: Any, masker: Masker | None, known: frozenset[str], secrets: re.Pattern[str] | None) -> Any:
    if value is None or isinstance(value, bool):
        return value
    if isinstance(value, Mapping):
        return _mask_mapping(value, masker, known, secrets)
    if isinstance(value, list | tuple):
        return [_mask_value(item, masker, known, secrets) for item in value]
    if masker is None and isinstance(value, int | float):
        return value
    if masker is _year_only and isinstance(value, dt.date):
        return f"{value.year:04d}-**-**"
    if isinstance(value, bytes):
        return mask_payload(value.decode("ascii", errors="replace"))  # as a dead letter's preview
    text = value.isoformat() if isinstance(value, dt.date | dt.time) else str(value)
    if masker is not None:
        return masker(text)
    embedded = _json_object(text)
    if embedded is not None:
        return json.dumps(_mask_mapping(embedded, None, known, secrets), ensure_ascii=False)
    if secrets is not None:
        text = secrets.sub(lambda found: star_after_first_digits(found.group(0)), text)
    return mask_text(text)


def _json_object(text: str) -> dict[str, Any] | None:
    if not text.startswith("{"):
        return None
    try:
        parsed = json.loads(text)
    except ValueError:
        return None
    return parsed if isinstance(parsed, dict) else None


def _personal_texts(value: Any, known: frozenset[str], masker: Masker | None = None) -> Iterator[str]:
    """The clear texts of the record's personal fields, but short ones."""
    if isinstance(value, Mapping):
        for name, item in value.items():
            yield from _personal_texts(item, known, masker_of(name, known) or masker)
    elif isinstance(value, list | tuple):
        for item in value:
            yield from _personal_texts(item, known, masker)
    elif masker is not None and isinstance(value, str | int) and not isinstance(value, bool):
        text = str(value).strip()
        if len(text) >= MIN_SECRET_CHARS:
            yield text
