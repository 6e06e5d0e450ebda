"""A first draft of a new dataset from a sample of its rows (``satubus dataset init``): the agency's Avro schema, with
the types its values have, and a mapping that makes the dataset a record of its own (``entity: record``), with the
fields that look like a kelurahan, a NIK, a date or a time guessed and marked ``# REVIEW``. ``satubus dataset
apply`` refuses a draft until every mark is gone: a person must look at what was guessed.

An .xlsx sample's date and time cells (``date`` and ``datetime`` values) make text fields read in ISO 8601, as
``satubus upload`` writes such cells; cells of a time of day alone, which upload refuses, are marked too.
"""

from __future__ import annotations

import datetime as dt
import json
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from satubus.schemas.nik import InvalidNik, parse_nik
from satubus.schemas.regions import Regions

REVIEW = "# REVIEW"  # the mark of a guess in a draft
TO_FILL = "ISI:"  # the start of a text a person must write ("isi": fill in)
TO_DESCRIBE = f"{TO_FILL} arti kolom ini (what this field means)."  # the doc of a field nobody has described yet
SHARE_TO_GUESS = 0.8  # of a column's non-empty values that must fit a guess
DATE_FORMATS = ("%Y-%m-%d", "%d-%m-%Y", "%d/%m/%Y")
DATETIME_FORMATS = (
    "%Y-%m-%d %H:%M:%S",
    "%Y-%m-%d %H:%M",
    "%Y-%m-%dT%H:%M:%S",
    "%Y-%m-%dT%H:%M",
    "%d-%m-%Y %H:%M:%S",
    "%d-%m-%Y %H:%M",
    "%d/%m/%Y %H:%M:%S",
    "%d/%m/%Y %H:%M",
)
CELL_FORMATS = {"date": "%Y-%m-%d", "datetime": "%Y-%m-%dT%H:%M:%S"}  # of a spreadsheet's date or time cells
_TRUE_FALSE = {"true", "false", "ya", "tidak", "yes", "no"}
_KEY_NAMES = re.compile(r"^(id|kode|no|nomor)(_|$)|_id$")


@dataclass
class Column:
    """What the sample says of one column."""

    name: str
    avro: str = "string"
    nullable: bool = False
    unique: bool = False
    kind: str | None = None  # kelurahan, nik, date or datetime
    format: str | None = None  # of a date or time
    notes: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class Draft:
    schema: dict[str, Any]
    mapping: str  # YAML text, with its # REVIEW marks
    metadata: str  # the Satu Data Indonesia metadata (schemas/metadata.py), YAML text with its # REVIEW marks
    columns: tuple[Column, ...]

    @property
    def schema_text(self) -> str:
        fields = ",\n".join(f"    {json.dumps(f, ensure_ascii=False)}" for f in self.schema["fields"])
        head = {k: v for k, v in self.schema.items() if k != "fields"}
        return json.dumps(head, indent=2, ensure_ascii=False)[:-2] + f',\n  "fields": [\n{fields}\n  ]\n}}\n'


def field_name(header: str) -> str:
    """A column header as an Avro field name: lower case, words joined by _."""
    name = re.sub(r"[^0-9a-zA-Z]+", "_", header.strip()).strip("_").lower() or "column"
    return f"f_{name}" if name[0].isdigit() else name


def draft(agency: str, dataset: str, rows: Sequence[dict[str, Any]], regions: Regions, today: dt.date) -> Draft:
    """The draft of ``agency``'s ``dataset`` from sample ``rows`` ({header: cell}); headers become field names."""
    if not rows:
        raise ValueError("the sample has no rows: give a file with a header and a few typical rows")
    headers = [h for h in rows[0] if h]
    columns = tuple(_column(h, [row.get(h) for row in rows], regions, today) for h in headers)
    key = next((c for c in columns if c.unique and _KEY_NAMES.search(c.name)), None) or next(
        (c for c in columns if c.unique), None
    )
    if key is None:
        raise ValueError("no column of the sample has a value in every row, all different: a dataset needs a key")
    schema = {
        "type": "record",
        "name": "".join(part.capitalize() for part in field_name(dataset).split("_")),
        "namespace": f"id.go.jakarta.agency.{field_name(agency)}",
        "doc": f"ISI: what one record of {agency}'s {dataset} is.",
        "fields": [_avro_field(c) for c in columns],
    }
    return Draft(
        schema, _mapping_text(agency, dataset, columns, key), _metadata_text(agency, dataset, columns), columns
    )


def _column(header: str, cells: list[Any], regions: Regions, today: dt.date) -> Column:
    column = Column(field_name(header))
    values = [c.strip() if isinstance(c, str) else c for c in cells if c not in (None, "")]
    values = [v for v in values if v != ""]
    column.nullable = len(values) < len(cells)
    column.unique = not column.nullable and len({str(v) for v in values}) == len(values)
    texts = [str(v) for v in values]
    if values and all(isinstance(v, bool) or str(v).lower() in _TRUE_FALSE for v in values):
        column.avro = "boolean"
    elif values and all(_is_int(v) for v in values) and not _looks_like_a_code(texts):
        column.avro = "long"
    elif values and all(_is_number(v) for v in values) and not _looks_like_a_code(texts):
        column.avro = "double"
    if column.avro != "string" or not texts:
        return column
    times = [v for v in values if isinstance(v, dt.date)]  # a datetime too
    if len(times) >= SHARE_TO_GUESS * len(values):
        column.kind = "datetime" if any(isinstance(v, dt.datetime) for v in times) else "date"
        column.format = CELL_FORMATS[column.kind]
        word = "time" if column.kind == "datetime" else "date"
        column.notes.append(f"looks like a {word}: spreadsheet {word} cells, written {column.format} on upload")
    elif any(isinstance(v, dt.time) for v in values):
        column.notes.append(
            "has spreadsheet cells of a time of day alone, which upload refuses: put the date in them too, or "
            "format the column as text"
        )
    elif _share(texts, lambda t: _is_nik(t, today)) >= SHARE_TO_GUESS or "nik" in column.name.split("_"):
        column.kind = "nik"
        column.notes.append("looks like a NIK: only its pseudonym is published")
    elif _share(texts, lambda t: _is_kelurahan(t, regions)) >= SHARE_TO_GUESS:
        column.kind = "kelurahan"
        column.notes.append("looks like a kelurahan (name or Kemendagri code)")
    else:
        for kind, formats in (("datetime", DATETIME_FORMATS), ("date", DATE_FORMATS)):
            fmt = next((f for f in formats if _share(texts, lambda t, f=f: _parses(t, f)) >= SHARE_TO_GUESS), None)
            if fmt is not None:
                column.kind, column.format = kind, fmt
                column.notes.append(f"looks like a {'time' if kind == 'datetime' else 'date'} written {fmt}")
                break
    return column


def _share(texts: list[str], test: Any) -> float:
    return sum(1 for t in texts if test(t)) / len(texts)


def _is_int(value: Any) -> bool:
    return (isinstance(value, int) and not isinstance(value, bool)) or bool(re.fullmatch(r"-?\d+", str(value)))


def _is_number(value: Any) -> bool:
    return (isinstance(value, int | float) and not isinstance(value, bool)) or bool(
        re.fullmatch(r"-?\d+([.,]\d+)?", str(value))
    )


def _looks_like_a_code(texts: list[str]) -> bool:
    """Digits kept as text: a leading zero, or as long as an identifier (NIK, NOP, phone numbers)."""
    return any(re.match(r"0\d", t) for t in texts) or any(len(t.lstrip("-")) >= 10 for t in texts)


def _is_nik(text: str, today: dt.date) -> bool:
    try:
        parse_nik(re.sub(r"\D", "", text), today=today)
    except InvalidNik:
        return False
    return len(re.sub(r"\D", "", text)) == 16


def _is_kelurahan(text: str, regions: Regions) -> bool:
    return regions.kelurahan(text) is not None or regions.kelurahan_named(text) is not None


def _parses(text: str, fmt: str) -> bool:
    try:
        dt.datetime.strptime(text, fmt)
    except ValueError:
        return False
    return True


def _avro_field(column: Column) -> dict[str, Any]:
    doc = TO_DESCRIBE
    if column.kind == "nik":
        doc = "ISI: whose NIK this is (personal data: published only as a pseudonym)."
    elif column.format is not None:
        doc = f"ISI: what this time is; written {column.format}, local time."
    entry: dict[str, Any] = {"name": column.name, "type": ["null", column.avro] if column.nullable else column.avro}
    if column.nullable:
        entry["default"] = None
    entry["doc"] = doc
    return entry


def _mapping_text(agency: str, dataset: str, columns: tuple[Column, ...], key: Column) -> str:
    lines = [
        f"# {agency}'s {dataset} ({dataset}.avsc) -> records of their own on unified.{agency}.{dataset}.v1.",
        "# Drafted by `satubus dataset init` from a sample. Check every line marked REVIEW, then delete the mark;",
        "# `satubus dataset test` shows what each sample row becomes. Vocabulary: docs/mapping.md.",
        "entity: record",
        f"key: {key.name}",
        "timezone: Asia/Jakarta  # of times written without an offset",
        "",
        "fields:",
    ]
    width = max(len(c.name) for c in columns) + 14
    for column in columns:
        name, spec = column.name, _spec(column)
        if column.kind == "kelurahan":
            name = "kelurahan_code" if column.name.startswith("kel") else f"{column.name}_code"
        elif column.kind == "nik":
            name = "person_id" if column.name == "nik" else f"{column.name}_id"
        line = f"  {name + ':':<{width}} {spec}"
        lines.append(f"{line}  {REVIEW}: {'; '.join(column.notes)}" if column.notes else line)
        if column.kind == "kelurahan":
            lines.append(f"  {'kecamatan_code:':<{width}} {{parent_of: {name}, level: kecamatan}}")
    lines += [
        "",
        "# Value rules, e.g.: {from: tonase, min: 0, max: 30}; {from: jenis, one_of: [A, B]}; and over two fields:",
        "# checks:",
        "#   - rule: arrived_at >= departed_at",
        "",
    ]
    return "\n".join(lines)


def _metadata_text(agency: str, dataset: str, columns: tuple[Column, ...]) -> str:
    places = [c.name for c in columns if c.kind == "kelurahan"]
    personal = any(c.kind == "nik" for c in columns)
    lines = [
        f"# Satu Data Indonesia metadata of {agency}'s {dataset}; schemas/metadata.py explains each field.",
        "# Drafted by `satubus dataset init`: write each ISI: text, check each line marked REVIEW, delete the mark.",
        f"title: '{TO_FILL} judul dataset'  {REVIEW}",
        f"description: '{TO_FILL} apa isi satu baris, dan apakah memuat data pribadi.'  {REVIEW}",
        "walidata: diskominfotik",
        f"periodicity: harian  {REVIEW}: real-time, harian, mingguan, bulanan, triwulanan, semesteran, tahunan or "
        "tidak-tentu",
        f"classification: terbatas  {REVIEW}: publik (open data, no personal data), terbatas or rahasia"
        + ("; the NIK makes it terbatas at least" if personal else ""),
        "licence: tidak-terbuka  # for a publik dataset an open licence: CC-BY-4.0, CC-BY-SA-4.0, CC0-1.0 or ODbL-1.0",
        "reference_codes:" + ("" if places else " []"),
    ]
    if places:
        lines += [
            "  - name: Kode dan nama wilayah kelurahan Kemendagri",
            "    source: Kepmendagri 300.2.2-2138/2025",
            f"    fields: [{', '.join(places)}]",
        ]
    lines += [
        "contact:",
        f"  name: '{TO_FILL} nama unit yang menjawab pertanyaan tentang dataset'  {REVIEW}",
        f"  email: {field_name(agency)}@jakarta.go.id  {REVIEW}",
        f"keywords: [{field_name(dataset)}, {field_name(agency)}]  {REVIEW}",
        'spatial: ["31"]',
        "",
    ]
    return "\n".join(lines)


def _spec(column: Column) -> str:
    parts = [f"from: {column.name}"]
    if column.kind == "nik":
        parts += ["nik: true", "pseudonym: nik"]
    elif column.kind == "kelurahan":
        parts += ["region: kelurahan", "region_by: [name, code]"]
    elif column.kind == "date":
        parts.append(f"date: '{column.format}'")
    elif column.kind == "datetime":
        parts.append(f"datetime: '{column.format}'")
    if column.nullable:
        parts.append("optional: true")
    return "{" + ", ".join(parts) + "}"
